//! The tool loop every role runs: ask the model, run the tools it calls, give it the results,
//! until it calls its terminal tool. Bounded by turns, budgets and cancellation; every call
//! journaled, every message in the task's transcript.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::tools::{Outcome, RoleTools, Terminal};
use crate::config::Role;
use crate::model::{CallContext, CallError, ChatRequest, Message, ModelClient, StopReason};
use crate::team::budget::Budget;
use crate::team::events::Event;
use crate::team::plan::Spend;
use crate::team::store::{JournalEntry, Store};

/// Why an agent stopped without finishing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Model(Box<CallError>),
    #[error("no result after {0} turns")]
    TurnLimit(u32),
    #[error("cancelled")]
    Cancelled,
    /// The role could not do its job (an invalid plan twice, say).
    #[error("{0}")]
    Gave(String),
    #[error("{0}")]
    Setup(String),
}

impl From<CallError> for AgentError {
    fn from(error: CallError) -> Self {
        AgentError::Model(Box::new(error))
    }
}

/// Who is running, for what, with which means.
#[derive(Clone)]
pub struct AgentContext {
    pub plan: String,
    pub task: String,
    pub role: Role,
    pub model: Arc<ModelClient>,
    pub budget: Arc<Budget>,
    pub store: Arc<Store>,
    pub events: broadcast::Sender<Event>,
    pub cancel: CancellationToken,
    pub max_turns: u32,
    /// What this agent's task has spent, updated after every call.
    pub spend: Arc<Mutex<Spend>>,
}

impl AgentContext {
    fn journal(&self, event: &str) -> JournalEntry {
        JournalEntry::new(&self.plan, event)
            .task(&self.task)
            .role(self.role)
    }

    /// Tells the editor and the CLI what the agent is doing now.
    pub(crate) fn activity(&self, message: impl Into<String>) {
        let spend = *self.spend.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.events.send(Event::Activity {
            plan: self.plan.clone(),
            task: self.task.clone(),
            role: self.role,
            message: message.into(),
            tokens: spend.tokens(),
            cost_usd: spend.cost_usd,
        });
    }

    fn transcript(&self, entry: serde_json::Value) {
        let mut entry = entry;
        entry["time"] = json!(crate::team::now());
        entry["role"] = json!(self.role);
        self.store.transcript(&self.plan, &self.task, &entry);
    }
}

/// Runs the loop until the terminal tool is called.
pub async fn run(
    context: &AgentContext,
    system: String,
    user: String,
    tools: &mut RoleTools,
) -> Result<Terminal, AgentError> {
    context.transcript(json!({"type": "start", "system": system, "user": user}));
    let mut messages = vec![Message::user(user)];
    let specs = tools.specs();
    let terminal = tools.terminal_name();
    for turn in 0..context.max_turns {
        if context.cancel.is_cancelled() {
            return Err(AgentError::Cancelled);
        }
        // Over a budget, wait here (work and conversation intact) until the user decides.
        if context
            .budget
            .check(context.role, Some(&context.task))
            .is_err()
        {
            context.activity("waiting: a budget is spent");
        }
        match context
            .budget
            .admit(context.role, Some(&context.task), &context.cancel)
            .await
        {
            Ok(true) => context.store.journal(&context.journal("budget_raised")),
            Ok(false) => {}
            // Stopped while waiting: the user aborted, or cancelled.
            Err(_) => return Err(AgentError::Cancelled),
        }
        context.activity(if turn == 0 { "thinking" } else { "working" });
        let request = ChatRequest {
            system: system.clone(),
            messages: messages.clone(),
            tools: specs.clone(),
            max_tokens: None,
        };
        let call_context = CallContext {
            role: context.role,
            plan: Some(context.plan.clone()),
            task: Some(context.task.clone()),
        };
        let started = Instant::now();
        let completion = match context
            .model
            .complete(&request, call_context, &context.cancel)
            .await
        {
            Ok(completion) => completion,
            Err(error) => {
                if matches!(error.failure, crate::model::Failure::Cancelled) {
                    return Err(AgentError::Cancelled);
                }
                let mut entry = context.journal("model_error").reason(error.to_string());
                entry.model = Some(error.model.clone());
                entry.duration_ms = Some(started.elapsed().as_millis() as u64);
                context.store.journal(&entry);
                return Err(error.into());
            }
        };
        context
            .budget
            .record(context.role, Some(&context.task), &completion.usage);
        context
            .spend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&completion.usage);
        let mut entry = context.journal("model_call");
        entry.model = Some(completion.model.clone());
        entry.input_tokens = Some(completion.usage.input_tokens);
        entry.output_tokens = Some(completion.usage.output_tokens);
        let usage = &completion.usage;
        entry.cache_read_tokens = (usage.cache_read_tokens > 0).then_some(usage.cache_read_tokens);
        entry.cache_write_tokens =
            (usage.cache_write_tokens > 0).then_some(usage.cache_write_tokens);
        entry.cost_usd = completion.usage.cost_usd;
        entry.saved_usd = completion.usage.saved_usd.filter(|s| *s != 0.0);
        entry.duration_ms = Some(completion.duration.as_millis() as u64);
        if completion.usage.estimated {
            entry.reason = Some("tokens estimated: the provider reported none".into());
        }
        context.store.journal(&entry);
        context.transcript(json!({
            "type": "assistant", "turn": turn, "text": completion.text,
            "tool_calls": completion.tool_calls, "stop": completion.stop,
            "usage": completion.usage,
        }));

        let mut calls = completion.tool_calls.clone();
        if completion.stop == StopReason::MaxTokens {
            // A call cut off by the token limit is not a call.
            calls.retain(|call| call.invalid_arguments.is_none());
        }
        messages.push(Message::Assistant {
            content: completion.text.clone(),
            tool_calls: calls.clone(),
        });
        if calls.is_empty() {
            let nudge = if completion.stop == StopReason::MaxTokens {
                format!(
                    "Your answer was cut off at the token limit. Continue with smaller steps, using your tools; call `{terminal}` when you are done."
                )
            } else {
                format!("Use your tools to do the work. When you are done, call `{terminal}`.")
            };
            messages.push(Message::user(nudge));
            continue;
        }
        for call in &calls {
            context.activity(describe(call));
            let outcome = tools.call(call).await;
            match outcome {
                Outcome::Done(result) => {
                    context.transcript(
                        json!({"type": "done", "tool": call.name, "arguments": call.arguments}),
                    );
                    return Ok(result);
                }
                Outcome::Abort(reason) => {
                    context
                        .store
                        .journal(&context.journal("gave_up").reason(reason.clone()));
                    return Err(AgentError::Gave(reason));
                }
                Outcome::Result(text) => {
                    context.transcript(json!({"type": "tool_result", "tool": call.name, "arguments": call.arguments, "result": text}));
                    messages.push(Message::Tool {
                        call_id: call.id.clone(),
                        content: text,
                        is_error: false,
                    });
                }
                Outcome::Error { message, refused } => {
                    if refused {
                        context.store.journal(
                            &context
                                .journal("tool_refused")
                                .reason(format!("{}: {message}", call.name)),
                        );
                    }
                    context.transcript(json!({"type": "tool_error", "tool": call.name, "arguments": call.arguments, "error": message, "refused": refused}));
                    messages.push(Message::Tool {
                        call_id: call.id.clone(),
                        content: message,
                        is_error: true,
                    });
                }
            }
            if context.cancel.is_cancelled() {
                return Err(AgentError::Cancelled);
            }
        }
    }
    Err(AgentError::TurnLimit(context.max_turns))
}

/// A short description of a tool call, for progress.
fn describe(call: &crate::model::ToolCall) -> String {
    let arg = |key: &str| {
        call.arguments
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .chars()
            .take(60)
            .collect::<String>()
    };
    match call.name.as_str() {
        "read_file" => format!("reading {}", arg("path")),
        "write_file" | "edit_file" => format!("editing {}", arg("path")),
        "list_files" => "listing files".into(),
        "search" => format!("searching for {}", arg("pattern")),
        "run_check" => format!("running check {}", arg("name")),
        other => other.replace('_', " "),
    }
}
