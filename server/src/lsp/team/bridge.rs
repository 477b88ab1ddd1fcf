//! The team's events, rendered for the editor: `$/progress` for every agent at work,
//! diagnostics for findings, questions (a message and code actions that answer; a prompt only
//! where the client asks for one), `pitcrew/planChanged` (at most ten a second), and a message
//! when a plan ends.
//!
//! One task reads the events in order and never waits on the client: everything that does
//! (creating a progress token, asking a question) runs in tasks of its own, each with a timeout.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::request::WorkDoneProgressCreate;
use tower_lsp_server::ls_types::{
    MessageActionItem, MessageType, ProgressParams, ProgressParamsValue, ProgressToken,
    ShowDocumentParams, Uri, WorkDoneProgress, WorkDoneProgressBegin, WorkDoneProgressCreateParams,
    WorkDoneProgressEnd, WorkDoneProgressReport,
};

use super::{Team, placement, views};
use crate::config::Role;
use crate::lsp::ext::{PlanChanged, PlanChangedParams};
use crate::lsp::state::GlobalState;
use crate::team::plan::Escalation;
use crate::team::plan::spend_words;
use crate::team::{Command, Event, PlanStatus};

/// How long the client has to create a progress token.
const CREATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a question waits for an answer before it is left for the plan view.
const QUESTION_TIMEOUT: Duration = Duration::from_secs(3600);
/// The shortest time between two `pitcrew/planChanged` rounds.
const PLAN_CHANGED_INTERVAL: Duration = Duration::from_millis(100);
/// The action that shows a task's diff before answering.
const OPEN_DIFF: &str = "Open diff";

pub fn start(state: Arc<GlobalState>, client: Client, team: Arc<Team>) {
    let mut events = team.service.events();
    let plans = plan_notifier(state.clone(), client.clone(), team.clone());
    let supports_progress = state
        .session()
        .and_then(|s| s.client_capabilities.window.as_ref())
        .and_then(|w| w.work_done_progress)
        .unwrap_or(false);
    tokio::spawn(async move {
        let mut bridge = Bridge {
            state,
            client,
            team,
            plans,
            supports_progress,
            agents: HashMap::new(),
            serial: 0,
        };
        loop {
            match events.recv().await {
                Ok(event) => bridge.on_event(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!("the editor bridge missed {missed} team events");
                    for plan in bridge.team.service.plans() {
                        let _ = bridge.plans.send(plan.id);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// A step of an agent's progress.
enum Step {
    Report(String),
    End(String),
}

struct Bridge {
    state: Arc<GlobalState>,
    client: Client,
    team: Arc<Team>,
    plans: mpsc::UnboundedSender<String>,
    supports_progress: bool,
    /// The progress of each agent at work, by (plan, task, role).
    agents: HashMap<(String, String, Role), mpsc::UnboundedSender<Step>>,
    serial: u64,
}

impl Bridge {
    fn on_event(&mut self, event: Event) {
        let _ = self.plans.send(event.plan().to_owned());
        match event {
            Event::AgentStarted { plan, task, role } => self.begin(plan, task, role),
            Event::Activity {
                plan,
                task,
                role,
                message,
                tokens,
                cached_tokens,
                cost_usd,
                saved_usd,
            } => {
                if let Some(agent) = self.agents.get(&(plan, task, role)) {
                    let spend = spend_words(tokens, cached_tokens, cost_usd, saved_usd);
                    let _ = agent.send(Step::Report(format!("{message} · {spend}")));
                }
            }
            Event::AgentFinished {
                plan,
                task,
                role,
                outcome,
            } => {
                if let Some(agent) = self.agents.remove(&(plan, task, role)) {
                    let _ = agent.send(Step::End(outcome));
                }
            }
            Event::Findings {
                plan,
                task,
                commit,
                findings,
            } => {
                let (state, team) = (self.state.clone(), self.team.clone());
                tokio::spawn(async move {
                    placement::place(
                        &state,
                        &team,
                        &plan,
                        &task,
                        &commit,
                        findings,
                        placement::Mode::Near,
                    )
                    .await;
                });
            }
            Event::Escalated { plan, escalation } => {
                let (client, team) = (self.client.clone(), self.team.clone());
                match question_style(&self.state) {
                    QuestionStyle::Prompt => {
                        tokio::spawn(ask(client, team, plan, escalation));
                    }
                    QuestionStyle::Notify => {
                        tokio::spawn(tell(client, team, plan, escalation));
                    }
                    // The client's plugin shows it from `pitcrew/planChanged`.
                    QuestionStyle::Plugin => {}
                }
            }
            Event::Finished {
                plan,
                status,
                outcome,
            } => self.finished(&plan, status, outcome),
            Event::PlanChanged { .. } | Event::TaskChanged { .. } => {}
        }
    }

    /// An agent began: a progress of its own, created, begun, reported and ended in order.
    fn begin(&mut self, plan: String, task: String, role: Role) {
        if !self.supports_progress {
            return;
        }
        self.serial += 1;
        let token = format!("pitcrew/{plan}/{task}/{}/{}", role.as_str(), self.serial);
        let title = match self.team.service.plan(&plan) {
            Some(p) => match p.task(&task) {
                Some(t) => format!("pitcrew {}: {}", role.as_str(), t.title),
                None => format!("pitcrew {}: {}", role.as_str(), first_line(&p.goal)),
            },
            None => format!("pitcrew {}", role.as_str()),
        };
        let (steps, mut receiver) = mpsc::unbounded_channel();
        if let Some(previous) = self
            .agents
            .insert((plan.clone(), task.clone(), role), steps)
        {
            let _ = previous.send(Step::End("restarted".into()));
        }
        self.state
            .team
            .progress()
            .insert(token.clone(), (plan.clone(), task.clone()));
        let (client, state) = (self.client.clone(), self.state.clone());
        tokio::spawn(async move {
            let id = ProgressToken::String(token.clone());
            let created = tokio::time::timeout(
                CREATE_TIMEOUT,
                client.send_request::<WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
                    token: id.clone(),
                }),
            )
            .await;
            if matches!(created, Ok(Ok(()))) {
                let send = |value| {
                    client.send_notification::<Progress>(ProgressParams {
                        token: id.clone(),
                        value: ProgressParamsValue::WorkDone(value),
                    })
                };
                send(WorkDoneProgress::Begin(WorkDoneProgressBegin {
                    title,
                    cancellable: Some(true),
                    message: Some(format!("{} started", role.as_str())),
                    percentage: None,
                }))
                .await;
                let mut ended = false;
                while let Some(step) = receiver.recv().await {
                    match step {
                        Step::Report(message) => {
                            send(WorkDoneProgress::Report(WorkDoneProgressReport {
                                cancellable: Some(true),
                                message: Some(message),
                                percentage: None,
                            }))
                            .await;
                        }
                        Step::End(message) => {
                            send(WorkDoneProgress::End(WorkDoneProgressEnd {
                                message: Some(message),
                            }))
                            .await;
                            ended = true;
                            break;
                        }
                    }
                }
                if !ended {
                    send(WorkDoneProgress::End(WorkDoneProgressEnd {
                        message: Some("stopped".into()),
                    }))
                    .await;
                }
            } else {
                tracing::debug!("the client did not create progress {token}");
            }
            state.team.progress().remove(&token);
        });
    }

    fn finished(&mut self, plan_id: &str, status: PlanStatus, outcome: String) {
        // Agents still shown as at work on this plan are not any more.
        self.agents.retain(|(plan, _, _), agent| {
            if plan == plan_id {
                let _ = agent.send(Step::End("the plan ended".into()));
                false
            } else {
                true
            }
        });
        let Some(plan) = self.team.service.plan(plan_id) else {
            return;
        };
        // A plan that ended without a result to apply (aborted, failed, cancelled) leaves no
        // findings on the user's code: there is nothing they could act on any more (tasks
        // whose result can still be applied alone keep theirs). A retry reviews again and
        // places its own.
        let ended_without: Vec<String> = plan
            .tasks
            .iter()
            .filter(|t| !placement::findings_stand(&plan, &t.id, false))
            .map(|t| t.id.clone())
            .collect();
        if !ended_without.is_empty() {
            let touched = self.state.findings().remove_tasks(plan_id, &ended_without);
            for uri in touched {
                self.state.team.republish(uri);
            }
        }
        if has_plugin(&self.state) {
            return; // the plugin says it, with its own buttons and commands
        }
        let goal = first_line(&plan.goal).to_owned();
        let title = super::actions::result_title(&plan);
        let (kind, message) = match status {
            PlanStatus::Ready if plan.is_review() => {
                let findings: usize = plan.tasks.iter().map(|t| t.findings.len()).sum();
                (
                    MessageType::INFO,
                    format!(
                        "pitcrew: reviewed \"{goal}\": {findings} finding{}, shown as diagnostics.",
                        if findings == 1 { "" } else { "s" }
                    ),
                )
            }
            PlanStatus::Ready => (
                MessageType::INFO,
                format!(
                    "pitcrew: \"{goal}\" is ready ({outcome}). Apply it with the code action \
                     \"Apply result of {title}\" in a file it changes (or discard it with \
                     \"Discard result of {title}\")."
                ),
            ),
            PlanStatus::Applied => return,
            PlanStatus::Cancelled => (
                MessageType::INFO,
                format!("pitcrew: \"{goal}\" was cancelled."),
            ),
            _ => (
                MessageType::WARNING,
                format!("pitcrew: \"{goal}\" ended {}: {outcome}", status.as_str()),
            ),
        };
        let client = self.client.clone();
        tokio::spawn(async move { client.show_message(kind, message).await });
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Sends `pitcrew/planChanged` for the plans named on the returned channel, each at most once
/// per interval, with the plan's state when it is sent.
fn plan_notifier(
    state: Arc<GlobalState>,
    client: Client,
    team: Arc<Team>,
) -> mpsc::UnboundedSender<String> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(first) = receiver.recv().await {
            let mut dirty = BTreeSet::from([first]);
            while let Ok(more) = receiver.try_recv() {
                dirty.insert(more);
            }
            for id in dirty {
                let Some(plan) = team.service.plan(&id) else {
                    continue;
                };
                let snapshot = views::plan_snapshot(&plan, team.service.is_running(&id));
                client
                    .send_notification::<PlanChanged>(PlanChangedParams {
                        plan_id: id,
                        status: snapshot.status.clone(),
                        plan: snapshot,
                    })
                    .await;
            }
            if state.shutdown_requested() {
                return;
            }
            tokio::time::sleep(PLAN_CHANGED_INTERVAL).await;
        }
    });
    sender
}

/// How the client wants the team's questions, from its `experimental.pitcrew.questions`
/// capability. A prompt (`window/showMessageRequest`) takes the keyboard in most editors
/// (Neovim's input list, Emacs' completing-read: whatever the user types goes into it), so it
/// is used only when the client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionStyle {
    /// A `window/showMessage` saying what is asked and how to answer: the code actions
    /// "Answer: …" offered in every file, or the command `pitcrew.answer`. The default.
    Notify,
    /// `window/showMessageRequest` with the choices (and "Open diff").
    Prompt,
    /// Nothing beyond `pitcrew/planChanged`: the client's pitcrew plugin shows the question.
    Plugin,
}

pub fn question_style(state: &GlobalState) -> QuestionStyle {
    let asked = pitcrew_capability(state, "questions");
    match asked.as_ref().and_then(|q| q.as_str()) {
        Some("prompt") => QuestionStyle::Prompt,
        Some("plugin") => QuestionStyle::Plugin,
        _ if has_plugin(state) => QuestionStyle::Plugin,
        _ => QuestionStyle::Notify,
    }
}

/// The client's `experimental.pitcrew.<key>` capability.
fn pitcrew_capability(state: &GlobalState, key: &str) -> Option<serde_json::Value> {
    state
        .session()
        .and_then(|s| s.client_capabilities.experimental.as_ref())
        .and_then(|e| e.get("pitcrew"))
        .and_then(|p| p.get(key))
        .cloned()
}

/// Whether the client runs pitcrew's own plugin (`experimental.pitcrew.plugin = true`: the
/// VS Code extension, the Neovim plugin), which shows questions and the end of plans from
/// `pitcrew/planChanged` with its own commands and buttons; the server then sends no message
/// of its own for them.
pub fn has_plugin(state: &GlobalState) -> bool {
    pitcrew_capability(state, "plugin").and_then(|p| p.as_bool()) == Some(true)
}

/// What a question is about, for messages: " (task t1: Add sub)" or "".
fn about(team: &Team, plan_id: &str, escalation: &Escalation) -> String {
    escalation
        .task
        .as_deref()
        .and_then(|t| team.service.plan(plan_id)?.task(t).cloned())
        .map(|t| format!(" (task {}: {})", t.id, t.title))
        .unwrap_or_default()
}

/// Tells the user a plan's question without taking the keyboard: a message naming the code
/// actions that answer it.
async fn tell(client: Client, team: Arc<Team>, plan_id: String, escalation: Escalation) {
    let answers = escalation
        .choices
        .iter()
        .map(|c| format!("\"{}\"", answer_title(&c.label)))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "pitcrew{} asks: {} Answer with a code action in any file ({answers}), or from the \
         plan view; the plan waits until then.",
        about(&team, &plan_id, &escalation),
        escalation.question.trim_end()
    );
    client.show_message(MessageType::WARNING, text).await;
}

/// The title of the code action that answers a question with `label`.
pub fn answer_title(label: &str) -> String {
    format!("Answer: {label}")
}

/// Asks the user a plan's question; the answer drives the orchestrator. "Open diff" shows the
/// task's diff and asks again. No answer leaves the question in the plan for later.
async fn ask(client: Client, team: Arc<Team>, plan_id: String, escalation: Escalation) {
    let task = escalation
        .task
        .as_deref()
        .and_then(|t| team.service.plan(&plan_id)?.task(t).cloned());
    let mut actions: Vec<MessageActionItem> = escalation
        .choices
        .iter()
        .map(|c| MessageActionItem {
            title: c.label.clone(),
            properties: HashMap::new(),
        })
        .collect();
    let diff = task.as_ref().and_then(|t| t.diff.clone());
    if diff.is_some() {
        actions.push(MessageActionItem {
            title: OPEN_DIFF.to_owned(),
            properties: HashMap::new(),
        });
    }
    let text = format!(
        "pitcrew{}: {}",
        about(&team, &plan_id, &escalation),
        escalation.question
    );
    loop {
        let answer = tokio::time::timeout(
            QUESTION_TIMEOUT,
            client.show_message_request(MessageType::WARNING, text.clone(), Some(actions.clone())),
        )
        .await;
        let title = match answer {
            Ok(Ok(Some(item))) => item.title,
            Ok(Ok(None)) => return, // dismissed: the plan view can still answer
            Ok(Err(err)) => {
                tracing::warn!("showMessageRequest failed: {err}");
                return;
            }
            Err(_) => return,
        };
        if title == OPEN_DIFF {
            if let (Some(diff), Some(task)) = (&diff, &task) {
                show_diff(&client, &team, &plan_id, &task.id, diff).await;
            }
            continue;
        }
        let Some(choice) = escalation.choices.iter().find(|c| c.label == title) else {
            tracing::warn!("the client answered {title:?}, which was not offered");
            return;
        };
        let command = Command::Answer {
            escalation: escalation.id.clone(),
            choice: choice.id.clone(),
        };
        if let Err(err) = team.service.command(&plan_id, command) {
            client
                .show_message(MessageType::ERROR, format!("pitcrew: {err}"))
                .await;
        }
        return;
    }
}

/// Writes a task's diff under the state directory and asks the editor to show it.
async fn show_diff(client: &Client, team: &Arc<Team>, plan: &str, task: &str, diff: &str) {
    let path = team
        .store()
        .dir()
        .join("diffs")
        .join(format!("{plan}-{task}.diff"));
    let written = tokio::task::spawn_blocking({
        let (path, diff) = (path.clone(), diff.to_owned());
        move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            crate::team::store::write_atomically(&path, diff.as_bytes())
        }
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::warn!("cannot write {}", path.display());
        return;
    }
    let Some(uri) = Uri::from_file_path(&path) else {
        return;
    };
    let shown = tokio::time::timeout(
        Duration::from_secs(10),
        client.show_document(ShowDocumentParams {
            uri,
            external: None,
            take_focus: Some(true),
            selection: None,
        }),
    )
    .await;
    if !matches!(shown, Ok(Ok(true))) {
        tracing::debug!("the client did not show {}", path.display());
    }
}
