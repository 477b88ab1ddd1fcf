//! Keeping an agent's conversation inside its model's context window.
//!
//! Before each call the tool loop knows the request's size: the input tokens the provider
//! reported for the previous request, plus an estimate of what was added since. Past a
//! threshold it first elides old tool results (the latest turn's stay whole; each elided one
//! leaves a line saying what it was and how to get it back), then, if that is not enough,
//! replaces the earlier turns with a summary the model writes, keeping the task (the first
//! message, with the handoffs it carries) and the files changed so far.

use serde_json::Value;

use crate::model::{Message, ToolSpec};

/// Share of the room (the window less the answer's tokens) a request may fill before old tool
/// results are elided, and before the conversation is compacted.
const ELIDE_AT: f64 = 0.7;
const COMPACT_AT: f64 = 0.85;
/// Tool results shorter than this are kept: a stub would save nothing.
const ELIDE_OVER_BYTES: usize = 400;
/// What of each tool result the summarizer is shown.
const SUMMARY_RESULT_BYTES: usize = 600;

/// Tokens in text, about four bytes a token, as providers' tokenizers average on code; a
/// little more, to err on the safe side.
pub fn estimate(text_len: usize) -> u64 {
    (text_len as u64).div_ceil(3)
}

fn message_len(message: &Message) -> usize {
    match message {
        Message::User { content } => content.len(),
        Message::Assistant {
            content,
            tool_calls,
        } => {
            content.len()
                + tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.to_string().len() + 16)
                    .sum::<usize>()
        }
        Message::Tool { content, .. } => content.len() + 16,
    }
}

/// What the loop should do before its next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// The request fits comfortably.
    Fits,
    /// Old tool results should go.
    Elide,
    /// The earlier turns should become a summary.
    Compact,
}

/// An agent's conversation and what is known of its size.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub messages: Vec<Message>,
    /// The task as first given (instructions and handoffs): what every compaction keeps.
    task: String,
    /// The input tokens the provider reported for the last request, and how many messages
    /// that request held.
    reported: Option<(u64, usize)>,
}

impl Conversation {
    pub fn new(first: String) -> Self {
        Self {
            messages: vec![Message::user(first.clone())],
            task: first,
            reported: None,
        }
    }

    /// Whether there is anything after the task (or the last summary) to compact.
    pub fn has_earlier_turns(&self) -> bool {
        self.messages.len() > 1
    }

    /// The next request's size in tokens: the last reported size and what came since, or an
    /// estimate of everything before the first report.
    pub fn size(&self, system: &str, tools: &[ToolSpec]) -> u64 {
        match self.reported {
            Some((tokens, held)) if held <= self.messages.len() => {
                tokens
                    + self.messages[held..]
                        .iter()
                        .map(|m| estimate(message_len(m)))
                        .sum::<u64>()
            }
            _ => {
                estimate(system.len())
                    + estimate(serde_json::to_string(tools).map_or(0, |t| t.len()))
                    + self
                        .messages
                        .iter()
                        .map(|m| estimate(message_len(m)))
                        .sum::<u64>()
            }
        }
    }

    /// Records the input tokens a provider reported for a request of the conversation as it
    /// is now (estimates are not reports: they are left out).
    pub fn reported(&mut self, input_tokens: u64) {
        self.reported = Some((input_tokens, self.messages.len()));
    }

    /// How close the next request comes to `room` tokens.
    pub fn pressure(&self, system: &str, tools: &[ToolSpec], room: u64) -> Pressure {
        let size = self.size(system, tools) as f64;
        let room = room.max(1) as f64;
        if size > room * COMPACT_AT {
            Pressure::Compact
        } else if size > room * ELIDE_AT {
            Pressure::Elide
        } else {
            Pressure::Fits
        }
    }

    /// Replaces every tool result but those of the latest turn that called tools with a line
    /// saying what it was and how to get it again. Returns how many were elided.
    pub fn elide_old_results(&mut self) -> usize {
        let Some(last_assistant) = self.messages.iter().rposition(
            |m| matches!(m, Message::Assistant { tool_calls, .. } if !tool_calls.is_empty()),
        ) else {
            return 0;
        };
        let calls: Vec<(String, String, Value)> = self
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::Assistant { tool_calls, .. } => Some(tool_calls),
                _ => None,
            })
            .flatten()
            .map(|c| (c.id.clone(), c.name.clone(), c.arguments.clone()))
            .collect();
        let mut elided = 0;
        let (mut removed, mut added) = (0, 0);
        for message in &mut self.messages[..last_assistant] {
            let Message::Tool {
                call_id, content, ..
            } = message
            else {
                continue;
            };
            if content.len() <= ELIDE_OVER_BYTES || content.starts_with("[elided") {
                continue;
            }
            let (name, arguments) = calls
                .iter()
                .find(|(id, _, _)| id == call_id)
                .map(|(_, name, args)| (name.as_str(), args.to_string()))
                .unwrap_or(("a tool", String::new()));
            let stub = format!(
                "[elided to keep the conversation inside the model's context: the result of \
                 `{name}` {arguments} ({} lines). Call it again if you need it.]",
                content.lines().count()
            );
            removed += content.len();
            added += stub.len();
            *content = stub;
            elided += 1;
        }
        // The provider's report, less what went (counted at four bytes a token, so as not to
        // take off more than went) and plus the stubs.
        if let Some((tokens, _)) = &mut self.reported {
            *tokens = tokens.saturating_sub(removed as u64 / 4) + estimate(added);
        }
        elided
    }

    /// The conversation since the task, as text for a model to summarize, within `budget`
    /// bytes (the oldest parts are dropped first).
    pub fn transcript_for_summary(&self, budget: usize) -> String {
        let mut parts: Vec<String> = Vec::new();
        for message in self.messages.iter().skip(1) {
            parts.push(match message {
                Message::User { content } => format!("[user]\n{content}\n"),
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    let mut part = format!("[you]\n{content}\n");
                    for call in tool_calls {
                        let arguments: String =
                            call.arguments.to_string().chars().take(300).collect();
                        part.push_str(&format!("(called `{}` {arguments})\n", call.name));
                    }
                    part
                }
                Message::Tool {
                    content, is_error, ..
                } => {
                    let shown: String = content.chars().take(SUMMARY_RESULT_BYTES).collect();
                    format!(
                        "[{}]\n{shown}{}\n",
                        if *is_error {
                            "tool error"
                        } else {
                            "tool result"
                        },
                        if shown.len() < content.len() {
                            " [...]"
                        } else {
                            ""
                        }
                    )
                }
            });
        }
        let mut kept: Vec<String> = Vec::new();
        let mut used = 0;
        for part in parts.into_iter().rev() {
            if used + part.len() > budget {
                kept.push("[... earlier turns left out]\n".into());
                break;
            }
            used += part.len();
            kept.push(part);
        }
        kept.reverse();
        kept.concat()
    }

    /// Replaces the earlier turns with `summary`: the conversation becomes the task (the first
    /// message, which carries the instructions and handoffs), the summary, and the files
    /// changed so far.
    pub fn compact(&mut self, summary: &str, changed: &[String]) {
        let task = &self.task;
        let mut text = format!(
            "{task}\n\n## Where your work stands\nThe conversation so far was summarized to keep \
             it inside the model's context:\n\n{}\n",
            summary.trim()
        );
        if !changed.is_empty() {
            text.push_str(&format!(
                "\nFiles you have changed so far: {}\n",
                changed.join(", ")
            ));
        }
        text.push_str("\nContinue the task from here.");
        self.messages = vec![Message::user(text)];
        self.reported = None;
    }
}

/// `text` cut to about `max_bytes` at a line's end, saying how much was left out and how to
/// see it; whole when it fits.
pub fn fit(text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = text[..cut].rfind('\n').map_or(cut, |n| n + 1);
    let left = text[cut..].lines().count();
    format!(
        "{}[cut to fit the model's context: {left} more lines not shown; ask for a narrower \
         range or a more specific search]",
        &text[..cut]
    )
}

/// What the summarizer is told.
pub const SUMMARIZE: &str = "You summarize a coding agent's conversation so that it can go on \
    with its task in a fresh context. Write, in plain prose and lists: what the task is, what \
    has been done (files read, changed and why, checks run and their results), what was learned \
    that matters, and what remains to do. Keep file paths, function names and line numbers \
    exact. Do not call tools; answer with the summary only.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ToolCall;
    use serde_json::json;

    fn call(id: &str, path: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "read_file".into(),
            arguments: json!({"path": path}),
            invalid_arguments: None,
        }
    }

    fn turn(conversation: &mut Conversation, id: &str, path: &str, result: &str) {
        conversation.messages.push(Message::Assistant {
            content: String::new(),
            tool_calls: vec![call(id, path)],
        });
        conversation.messages.push(Message::Tool {
            call_id: id.into(),
            content: result.into(),
            is_error: false,
        });
    }

    #[test]
    fn old_results_are_elided_and_the_latest_kept() {
        let mut conversation = Conversation::new("the task".into());
        let big = "x\n".repeat(1000);
        turn(&mut conversation, "1", "a.rs", &big);
        turn(&mut conversation, "2", "b.rs", "short");
        turn(&mut conversation, "3", "c.rs", &big);
        let before = conversation.size("", &[]);
        assert_eq!(conversation.elide_old_results(), 1);
        let Message::Tool { content, .. } = &conversation.messages[2] else {
            panic!()
        };
        assert!(
            content.contains("`read_file` {\"path\":\"a.rs\"} (1000 lines)"),
            "{content}"
        );
        let Message::Tool { content, .. } = &conversation.messages[6] else {
            panic!()
        };
        assert_eq!(content, &big, "the latest result stays whole");
        assert!(conversation.size("", &[]) < before);
        assert_eq!(conversation.elide_old_results(), 0, "nothing left to elide");
    }

    #[test]
    fn the_size_follows_the_providers_report() {
        let mut conversation = Conversation::new("task".into());
        conversation.reported(5_000);
        assert_eq!(conversation.size("system", &[]), 5_000);
        turn(&mut conversation, "1", "a.rs", &"y".repeat(300));
        assert_eq!(conversation.size("system", &[]), 5_000 + 14 + 106);
        assert_eq!(conversation.pressure("", &[], 10_000), Pressure::Fits);
        assert_eq!(conversation.pressure("", &[], 7_000), Pressure::Elide);
        assert_eq!(conversation.pressure("", &[], 5_000), Pressure::Compact);
    }

    #[test]
    fn compaction_keeps_the_task_the_summary_and_the_files() {
        let mut conversation = Conversation::new("Task id: t\nDo the thing".into());
        turn(&mut conversation, "1", "a.rs", "contents");
        conversation.compact("Read a.rs; changed it.", &["a.rs".into()]);
        assert_eq!(conversation.messages.len(), 1);
        let Message::User { content } = &conversation.messages[0] else {
            panic!()
        };
        assert!(content.starts_with("Task id: t\nDo the thing"));
        assert!(content.contains("Read a.rs; changed it."));
        assert!(content.contains("Files you have changed so far: a.rs"));
        let text = Conversation::new("t".into()).transcript_for_summary(100);
        assert_eq!(text, "");
    }
}
