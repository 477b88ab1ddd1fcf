//! Provider-neutral conversation types: what pitcrew sends to a model and what comes back.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Role;

/// A tool the model may call, with a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call, echoed back with its result.
    pub id: String,
    pub name: String,
    /// The parsed arguments; `Value::String` of the raw text when they were not valid JSON.
    pub arguments: Value,
    /// Why the arguments could not be parsed, if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_arguments: Option<String>,
}

impl ToolCall {
    /// The arguments to send back to a provider in the conversation history: the JSON the model
    /// wrote, or `{}` when it was not valid (servers reject invalid history; the tool result
    /// tells the model what was wrong).
    pub fn arguments_for_history(&self) -> Value {
        if self.invalid_arguments.is_some() || !self.arguments.is_object() {
            Value::Object(Default::default())
        } else {
            self.arguments.clone()
        }
    }

    /// Builds a call from the raw argument text a provider streamed.
    pub fn from_raw(id: String, name: String, raw_arguments: &str) -> Self {
        let raw = raw_arguments.trim();
        let parsed = if raw.is_empty() {
            Ok(Value::Object(Default::default()))
        } else {
            serde_json::from_str::<Value>(raw)
        };
        match parsed {
            Ok(arguments) => Self {
                id,
                name,
                arguments,
                invalid_arguments: None,
            },
            Err(err) => Self {
                id,
                name,
                arguments: Value::String(raw_arguments.to_owned()),
                invalid_arguments: Some(format!("the arguments are not valid JSON: {err}")),
            },
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    User {
        content: String,
    },
    Assistant {
        #[serde(default)]
        content: String,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, sent back to the model.
    Tool {
        call_id: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Self::User {
            content: content.into(),
        }
    }
}

/// A request for one model turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Overrides the model's configured `max_tokens`.
    pub max_tokens: Option<u32>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    Other(String),
}

/// Tokens of one call, and what they cost.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Every token of the prompt, read from a cache or not.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, those read from the provider's prompt cache (billed at a fraction).
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Of `input_tokens`, those written to the prompt cache (billed at a premium, then read
    /// cheaply by later calls).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// True when the provider did not report usage and these are estimates.
    pub estimated: bool,
    /// US dollars, when the model has a price.
    pub cost_usd: Option<f64>,
    /// US dollars the cache saved against the same call without it (negative when it cost
    /// more: a first write), when the model has a price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_usd: Option<f64>,
    /// Whether the provider reports prompt caching at all (its usage has the fields, even at 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_reported: bool,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Token counts as a provider reported them, normalized: `input` counts every prompt token
/// (Anthropic reports cached ones apart; OpenAI within).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Reported {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// The usage had the provider's cache fields.
    pub cache_reported: bool,
}

/// Who is calling, so that every call can be attributed and budgeted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallContext {
    pub role: Role,
    pub plan: Option<String>,
    pub task: Option<String>,
}

impl CallContext {
    pub fn new(role: Role) -> Self {
        Self {
            role,
            plan: None,
            task: None,
        }
    }
}

/// A finished model turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub stop: StopReason,
    pub usage: Usage,
    /// The configured model name (`[models.<name>]`) and the provider's model.
    pub model_name: String,
    pub model: String,
    /// The model the server said answered, when it said one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    pub context: CallContext,
    /// HTTP attempts made, retries included.
    pub attempts: u32,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
}

/// A `Duration` as whole milliseconds in JSON.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(duration.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// What a wire protocol parsed from one response, before accounting.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Parsed {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// The provider's stop reason, verbatim, if it gave one.
    pub stop: Option<String>,
    /// Tokens, if the provider reported them.
    pub usage: Option<Reported>,
    /// The model the server says answered (local servers answer as whatever they loaded).
    pub model: Option<String>,
}

impl Parsed {
    /// The stop reason, read leniently: a response with tool calls stopped for them, whatever
    /// the provider says (Ollama says `stop`; proxies say `""`), unless it ran out of tokens.
    pub fn stop_reason(&self) -> StopReason {
        if matches!(self.stop.as_deref(), Some("length" | "max_tokens")) {
            return StopReason::MaxTokens;
        }
        if !self.tool_calls.is_empty() {
            return StopReason::ToolUse;
        }
        match self.stop.as_deref() {
            Some("tool_calls" | "tool_use" | "function_call") => StopReason::ToolUse,
            None | Some("" | "stop" | "end_turn" | "stop_sequence") => StopReason::EndTurn,
            Some(other) => StopReason::Other(other.to_owned()),
        }
    }
}

/// A rough token count for text, when a provider reports none (about four bytes a token).
pub(crate) fn estimate_tokens(text_len: usize) -> u64 {
    (text_len as u64).div_ceil(4)
}

/// Whether a name a server gives is the configured model: the same, Ollama's `:latest` tag,
/// or a dated snapshot of an alias (`claude-sonnet-4-5-20250929` for `claude-sonnet-4-5`).
pub fn same_model(served: &str, configured: &str) -> bool {
    served == configured
        || served.strip_suffix(":latest") == Some(configured)
        || configured.strip_suffix(":latest") == Some(served)
        || served
            .strip_prefix(configured)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|date| {
                date.len() >= 8 && date.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_parse_or_say_why_not() {
        let call = ToolCall::from_raw("1".into(), "read_file".into(), r#"{"path":"a"}"#);
        assert_eq!(call.arguments["path"], "a");
        assert!(call.invalid_arguments.is_none());
        let empty = ToolCall::from_raw("2".into(), "list_files".into(), "  ");
        assert_eq!(empty.arguments, serde_json::json!({}));
        let broken = ToolCall::from_raw("3".into(), "write_file".into(), r#"{"path":"#);
        assert_eq!(broken.arguments, Value::String(r#"{"path":"#.into()));
        assert!(broken.invalid_arguments.unwrap().contains("not valid JSON"));
    }

    #[test]
    fn running_out_of_tokens_wins_over_a_tool_call() {
        let cut_short = Parsed {
            tool_calls: vec![ToolCall::from_raw(
                "1".into(),
                "write_file".into(),
                r#"{"pa"#,
            )],
            stop: Some("length".into()),
            ..Parsed::default()
        };
        assert_eq!(cut_short.stop_reason(), StopReason::MaxTokens);
    }

    #[test]
    fn stop_reasons_are_read_leniently() {
        let with_call = Parsed {
            tool_calls: vec![ToolCall::from_raw("1".into(), "x".into(), "{}")],
            stop: Some("stop".into()),
            ..Parsed::default()
        };
        assert_eq!(with_call.stop_reason(), StopReason::ToolUse);
        let cases = [
            (None, StopReason::EndTurn),
            (Some(""), StopReason::EndTurn),
            (Some("length"), StopReason::MaxTokens),
            (Some("max_tokens"), StopReason::MaxTokens),
            (
                Some("content_filter"),
                StopReason::Other("content_filter".into()),
            ),
        ];
        for (stop, expected) in cases {
            let parsed = Parsed {
                stop: stop.map(str::to_owned),
                ..Parsed::default()
            };
            assert_eq!(parsed.stop_reason(), expected, "{stop:?}");
        }
    }
}
