//! What the orchestrator tells the world: typed events for the CLI and the LSP layer to render.
//! The team never imports `lsp`; it publishes these on a broadcast channel and moves on.

use serde::Serialize;

use super::plan::{Escalation, Finding, PlanStatus, TaskStatus};
use crate::config::Role;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    PlanChanged {
        plan: String,
        status: PlanStatus,
    },
    TaskChanged {
        plan: String,
        task: String,
        title: String,
        status: TaskStatus,
        role: Option<Role>,
        /// Why, when it failed, escalated or went back for changes.
        reason: Option<String>,
    },
    /// An agent began work on a task (LSP: `$/progress` begin).
    AgentStarted {
        plan: String,
        task: String,
        role: Role,
    },
    /// What an agent is doing, and its spend so far on the task.
    Activity {
        plan: String,
        task: String,
        role: Role,
        message: String,
        tokens: u64,
        /// Of `tokens`, read from a prompt cache.
        #[serde(default)]
        cached_tokens: u64,
        cost_usd: f64,
        /// What the cache saved, in US dollars.
        #[serde(default)]
        saved_usd: f64,
    },
    /// An agent stopped work on a task (LSP: `$/progress` end).
    AgentFinished {
        plan: String,
        task: String,
        role: Role,
        outcome: String,
    },
    Findings {
        plan: String,
        task: String,
        /// The commit whose files the findings' lines refer to.
        commit: String,
        findings: Vec<Finding>,
    },
    Escalated {
        plan: String,
        escalation: Escalation,
    },
    Finished {
        plan: String,
        status: PlanStatus,
        outcome: String,
    },
}

impl Event {
    pub fn plan(&self) -> &str {
        match self {
            Event::PlanChanged { plan, .. }
            | Event::TaskChanged { plan, .. }
            | Event::AgentStarted { plan, .. }
            | Event::Activity { plan, .. }
            | Event::AgentFinished { plan, .. }
            | Event::Findings { plan, .. }
            | Event::Escalated { plan, .. }
            | Event::Finished { plan, .. } => plan,
        }
    }
}
