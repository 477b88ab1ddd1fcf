//! The `pitcrew.*` commands. Each answers at once: new work (a delegation, a review, a plan) is
//! registered so that `pitcrew/plan` shows it, and its snapshot and run are spawned; commands to
//! running plans are queued without waiting; applying is spawned (see `apply`).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::{MessageType, ShowDocumentParams, Uri};

use super::{Team, apply};
use crate::config::Role;
use crate::git::snapshot::Buffer;
use crate::lsp::ext::{AnswerArgs, SelectionArgs, Started, TargetArgs, commands};
use crate::lsp::findings::Tracked;
use crate::lsp::state::GlobalState;
use crate::lsp::{from_proto, to_proto};
use crate::team::plan::{Plan, Task, TaskKind, TaskSpec, TaskStatus};
use crate::team::store::JournalEntry;
use crate::team::{self, Command, Event, PlanStatus};
use crate::text::{self, range_to_chars};

/// LSP's `RequestFailed`: the request was valid but could not be carried out.
const REQUEST_FAILED: i64 = -32803;

/// The longest selection quoted into a task's instructions.
const MAX_QUOTED_CHARS: usize = 20_000;

pub fn failed(message: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::ServerError(REQUEST_FAILED),
        message: message.into().into(),
        data: None,
    }
}

pub fn execute(
    state: &Arc<GlobalState>,
    client: &Client,
    command: &str,
    arguments: Vec<Value>,
) -> Result<Option<Value>> {
    if !commands::ALL.contains(&command) {
        return Err(Error::invalid_params(format!(
            "unknown command {command:?}; pitcrew knows {}",
            commands::ALL.join(", ")
        )));
    }
    let team = state.team.get().map_err(failed)?;
    if matches!(
        command,
        commands::DELEGATE
            | commands::REVIEW
            | commands::PLAN
            | commands::RETRY
            | commands::ANSWER
            | commands::SEND_BACK
    ) && let Some(blocker) = state.config_state().blocker()
    {
        return Err(failed(format!("pitcrew: {blocker}")));
    }
    let result = match command {
        commands::DELEGATE => delegate(state, &team, args(command, arguments)?)?,
        commands::REVIEW => review(state, &team, args(command, arguments)?)?,
        commands::PLAN => plan(state, &team, args(command, arguments)?)?,
        commands::APPLY => {
            let target =
                apply::target(&team, &args::<TargetArgs>(command, arguments)?).map_err(failed)?;
            if !team.begin_applying(&target.plan) {
                return Err(failed(format!(
                    "plan {} is being applied already; answer the editor's first",
                    target.plan
                )));
            }
            let response = json!({"planId": target.plan, "taskIds": target.task_ids()});
            apply::spawn(state.clone(), client.clone(), team, target);
            response
        }
        commands::DISCARD => discard(state, &team, args(command, arguments)?)?,
        commands::CANCEL => cancel(&team, args(command, arguments)?)?,
        commands::RETRY => retry(&team, args(command, arguments)?)?,
        commands::SHOW_PLAN => show_plan(state, client, &team, args(command, arguments)?)?,
        commands::DISMISS_FINDING => dismiss(state, &team, args(command, arguments)?)?,
        commands::SEND_BACK => send_back(state, &team, args(command, arguments)?)?,
        commands::ANSWER => answer(&team, args(command, arguments)?)?,
        _ => unreachable!("every command in commands::ALL is handled"),
    };
    Ok(Some(result))
}

/// The command's single argument object (none at all counts as `{}`).
fn args<T: DeserializeOwned + Default>(command: &str, arguments: Vec<Value>) -> Result<T> {
    match arguments.into_iter().next() {
        None | Some(Value::Null) => Ok(T::default()),
        Some(value) => serde_json::from_value(value).map_err(|err| {
            Error::invalid_params(format!(
                "{command}: bad arguments ({err}); see docs/lsp-extensions.md"
            ))
        }),
    }
}

/// What the user asked an implementer to do, ready-made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Implement,
    Fix,
    Tests,
    Document,
    Simplify,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Implement,
        Preset::Fix,
        Preset::Tests,
        Preset::Document,
        Preset::Simplify,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Preset::Implement => "implement",
            Preset::Fix => "fix",
            Preset::Tests => "tests",
            Preset::Document => "document",
            Preset::Simplify => "simplify",
        }
    }

    fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.id() == name)
            .ok_or_else(|| {
                Error::invalid_params(format!(
                    "unknown preset {name:?}; use one of implement, fix, tests, document, simplify"
                ))
            })
    }

    /// The code action's words for it.
    pub fn label(self) -> &'static str {
        match self {
            Preset::Implement => "implement",
            Preset::Fix => "fix the diagnostics here",
            Preset::Tests => "add tests",
            Preset::Document => "document",
            Preset::Simplify => "simplify",
        }
    }

    fn instructions(self) -> &'static str {
        match self {
            Preset::Implement => {
                "Implement what the selected code describes (its comments, stubs and TODOs), completely, with tests where the project has them."
            }
            Preset::Fix => {
                "Fix the problems reported at the selected code, at their cause. Keep the fix as small as the problem allows."
            }
            Preset::Tests => {
                "Add tests for the selected code, following the project's test conventions. Do not change its behaviour."
            }
            Preset::Document => {
                "Document the selected code: what it does, its inputs, outputs and failure modes, in the project's documentation style. Do not change its behaviour."
            }
            Preset::Simplify => {
                "Simplify the selected code without changing its behaviour: remove duplication and needless complexity, keep its interface."
            }
        }
    }
}

/// The instruction written in a `pitcrew:` comment, if the text holds one.
pub fn comment_instruction(text: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in text.lines() {
        if let Some(at) = line.find("pitcrew:") {
            let rest = line[at + "pitcrew:".len()..]
                .trim()
                .trim_end_matches("*/")
                .trim_end_matches("-->")
                .trim();
            if !rest.is_empty() {
                found = Some(match found {
                    Some(before) => format!("{before} {rest}"),
                    None => rest.to_owned(),
                });
            }
        } else if found.is_some() {
            break;
        }
    }
    found
}

/// The selected text of an open document, with its path and lines.
struct Selection {
    path: String,
    /// One-based, inclusive.
    first_line: u32,
    last_line: u32,
    text: Option<String>,
    language: Option<String>,
}

fn selection(
    state: &GlobalState,
    team: &Team,
    uri: Option<&str>,
    range: Option<tower_lsp_server::ls_types::Range>,
    command: &str,
) -> Result<Selection> {
    let uri = uri.ok_or_else(|| Error::invalid_params(format!("{command} needs a uri")))?;
    let path = team.path_of(uri).ok_or_else(|| {
        failed(format!(
            "{uri} is not a file in the repository at {}",
            team.workdir().display()
        ))
    })?;
    let documents = state.documents();
    let document = documents.get(uri);
    let (first_line, last_line, text) = match (range, document) {
        (Some(range), Some(document)) => {
            let chars = range_to_chars(document.text(), from_proto::range(range), state.encoding());
            let mut last = range.end.line;
            if range.end.character == 0 && range.end.line > range.start.line {
                last -= 1; // a selection of whole lines ends at the start of the next
            }
            let text = document.text().slice(chars).to_string();
            (
                range.start.line.saturating_add(1),
                last.saturating_add(1),
                Some(text),
            )
        }
        (Some(range), None) => (
            range.start.line.saturating_add(1),
            range.end.line.saturating_add(1),
            None,
        ),
        (None, Some(document)) => (
            1,
            document.text().len_lines() as u32,
            Some(document.text().to_string()),
        ),
        (None, None) => (1, 1, None),
    };
    Ok(Selection {
        path,
        first_line,
        last_line: last_line.max(first_line),
        text,
        language: document.map(|d| d.language_id().to_owned()),
    })
}

fn quote(selection: &Selection) -> String {
    let mut out = format!(
        "Where: {} lines {}-{} (as the user sees it, unsaved changes included; your workspace has the same text).",
        selection.path, selection.first_line, selection.last_line
    );
    if let Some(text) = &selection.text {
        let mut text: String = text.chars().take(MAX_QUOTED_CHARS).collect();
        if text.len() < selection.text.as_ref().map_or(0, String::len) {
            text.push_str("\n[... the selection goes on; read the file]");
        }
        out.push_str(&format!(
            "\n\n```{}\n{}\n```",
            selection.language.as_deref().unwrap_or(""),
            text.trim_end_matches('\n')
        ));
    }
    out
}

fn require_models(team: &Team, roles: &[Role]) -> Result<()> {
    let config = team.config();
    for role in roles {
        if config.model_for(*role).is_none() {
            return Err(failed(format!(
                "no model is configured for the {role}: add [models.default] to pitcrew.toml (see `pitcrew doctor`)"
            )));
        }
    }
    Ok(())
}

fn delegate(state: &Arc<GlobalState>, team: &Arc<Team>, args: SelectionArgs) -> Result<Value> {
    require_models(team, &[Role::Implementer, Role::Reviewer])?;
    let selection = selection(
        state,
        team,
        args.uri.as_deref(),
        args.range,
        commands::DELEGATE,
    )?;
    let preset = args.preset.as_deref().map(Preset::parse).transpose()?;
    let instruction = args
        .instruction
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .or_else(|| selection.text.as_deref().and_then(comment_instruction));
    let preset = match (preset, &instruction) {
        (Some(preset), _) => Some(preset),
        (None, Some(_)) => None,
        (None, None) => Some(Preset::Implement),
    };
    let mut instructions = String::new();
    if let Some(preset) = preset {
        instructions.push_str(preset.instructions());
        instructions.push('\n');
    }
    if let Some(instruction) = &instruction {
        instructions.push_str(&format!("The user asks: {instruction}\n"));
    }
    if preset == Some(Preset::Fix) {
        let problems = args.diagnostics.unwrap_or_default();
        if !problems.is_empty() {
            instructions.push_str("The problems reported there:\n");
            for problem in problems {
                instructions.push_str(&format!("- {problem}\n"));
            }
        }
    }
    instructions.push('\n');
    instructions.push_str(&quote(&selection));
    let title = match (&instruction, preset) {
        (Some(instruction), _) => truncate(instruction, 72),
        (None, Some(preset)) => format!(
            "{} {}:{}-{}",
            capitalise(preset.label()),
            selection.path,
            selection.first_line,
            selection.last_line
        ),
        (None, None) => "Delegated task".to_owned(),
    };
    let task_id = preset.map(Preset::id).unwrap_or("delegated");
    let spec = TaskSpec {
        id: task_id.to_owned(),
        title: title.clone(),
        instructions,
        depends_on: Vec::new(),
        files: vec![selection.path.clone()],
    };
    let mut plan = Plan::new(team::new_plan_id(), title, String::new());
    plan.preplanned = true;
    plan.tasks.push(Task::new(spec, TaskKind::Implement));
    let started = launch(state, team, plan, Some(task_id));
    Ok(serde_json::to_value(started).unwrap_or_default())
}

fn review(state: &Arc<GlobalState>, team: &Arc<Team>, args: SelectionArgs) -> Result<Value> {
    require_models(team, &[Role::Reviewer])?;
    let selection = selection(
        state,
        team,
        args.uri.as_deref(),
        args.range,
        commands::REVIEW,
    )?;
    let (start_line, end_line, title) = match args.range {
        Some(_) => (
            Some(selection.first_line),
            Some(selection.last_line),
            format!(
                "Review {}:{}-{}",
                selection.path, selection.first_line, selection.last_line
            ),
        ),
        None => (None, None, format!("Review {}", selection.path)),
    };
    let mut instructions = format!(
        "Review the user's code in {} and report what is wrong, with the line of each finding.",
        selection.path
    );
    if let Some(instruction) = args.instruction.filter(|i| !i.trim().is_empty()) {
        instructions.push_str(&format!(" The user asks you to look at: {instruction}"));
    }
    let spec = TaskSpec {
        id: "review".into(),
        title: title.clone(),
        instructions,
        depends_on: Vec::new(),
        files: vec![selection.path.clone()],
    };
    let kind = TaskKind::Review {
        path: selection.path.clone(),
        start_line,
        end_line,
    };
    let mut plan = Plan::new(team::new_plan_id(), title, String::new());
    plan.preplanned = true;
    plan.tasks.push(Task::new(spec, kind));
    let started = launch(state, team, plan, Some("review"));
    Ok(serde_json::to_value(started).unwrap_or_default())
}

fn plan(state: &Arc<GlobalState>, team: &Arc<Team>, args: SelectionArgs) -> Result<Value> {
    let goal = args
        .goal
        .or(args.instruction)
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .ok_or_else(|| Error::invalid_params("pitcrew.plan needs a goal"))?;
    require_models(team, &[Role::Planner, Role::Implementer, Role::Reviewer])?;
    let mut full_goal = goal;
    if args.uri.is_some() {
        let selection = selection(state, team, args.uri.as_deref(), args.range, commands::PLAN)?;
        full_goal.push_str(&format!(
            "\n\nThe user pointed at {} lines {}-{}.",
            selection.path, selection.first_line, selection.last_line
        ));
    }
    let plan = Plan::new(team::new_plan_id(), full_goal, String::new());
    let started = launch(state, team, plan, None);
    Ok(serde_json::to_value(started).unwrap_or_default())
}

/// Makes a new plan visible at once, then snapshots what the user sees (open buffers
/// included) and runs it, in the background.
fn launch(
    state: &Arc<GlobalState>,
    team: &Arc<Team>,
    mut plan: Plan,
    task: Option<&str>,
) -> Started {
    let started = Started {
        plan_id: plan.id.clone(),
        task_id: task.map(|t| format!("{}/{t}", plan.id)),
    };
    team.launching(&plan.id);
    team.service.registry().update(&plan);
    team.service.publish(Event::PlanChanged {
        plan: plan.id.clone(),
        status: plan.status,
    });
    let buffers = open_buffers(state, team);
    let team = team.clone();
    let client = state.client().cloned();
    tokio::spawn(async move {
        let id = plan.id.clone();
        let snapshot = team
            .repo
            .run(move |repo| crate::git::snapshot::create(repo, &id, &buffers))
            .await;
        let error = match snapshot {
            Ok(snapshot) => {
                for (path, reason) in &snapshot.skipped_buffers {
                    tracing::info!("left {path} out of the snapshot: {reason}");
                }
                plan.base = snapshot.commit.to_string();
                if team.launch_cancelled(&plan.id, false) {
                    return cancelled_before_start(&team, &plan.id).await;
                }
                // Saved through the service, so that a discard meanwhile is never undone.
                let saved = tokio::task::spawn_blocking({
                    let (team, plan) = (team.clone(), plan.clone());
                    move || {
                        team.service.save(
                            &plan,
                            JournalEntry::new(&plan.id, "plan_created").reason(plan.goal.clone()),
                        );
                        team.service.plan(&plan.id)
                    }
                })
                .await;
                match saved {
                    Ok(Some(saved)) if saved.status == plan.status => {
                        match team.service.start(saved) {
                            Ok(()) => {
                                // A cancel that came between the check above and the start.
                                if team.launch_cancelled(&plan.id, true) {
                                    let _ = team.service.command(&plan.id, Command::Cancel);
                                }
                                return;
                            }
                            Err(err) => err,
                        }
                    }
                    Ok(_) => return cancelled_before_start(&team, &plan.id).await,
                    Err(err) => format!("cannot save the plan: {err}"),
                }
            }
            Err(err) => format!("cannot snapshot your files: {err}"),
        };
        team.launch_cancelled(&plan.id, true);
        tracing::error!("plan {} did not start: {error}", plan.id);
        plan.status = PlanStatus::Failed;
        plan.outcome = Some(error.clone());
        for task in &mut plan.tasks {
            task.status = TaskStatus::Failed;
            task.error = Some(error.clone());
        }
        team.service.registry().update(&plan);
        team.service.publish(Event::PlanChanged {
            plan: plan.id.clone(),
            status: plan.status,
        });
        if let Some(client) = client {
            client
                .show_message(MessageType::ERROR, format!("pitcrew: {error}"))
                .await;
        }
    });
    started
}

/// A plan cancelled or discarded while its snapshot was taken: it never starts, and it is
/// recorded as cancelled unless a discard already did so.
async fn cancelled_before_start(team: &Arc<Team>, id: &str) {
    team.launch_cancelled(id, true);
    tracing::info!("plan {id} was cancelled before it started");
    let (team, id) = (team.clone(), id.to_owned());
    let _ = tokio::task::spawn_blocking(move || {
        let Some(mut plan) = team.service.plan(&id) else {
            return;
        };
        if plan.status == PlanStatus::Cancelled {
            return;
        }
        plan.status = PlanStatus::Cancelled;
        plan.outcome = Some("cancelled before it started".into());
        for task in &mut plan.tasks {
            task.status = TaskStatus::Cancelled;
        }
        team.service.save(
            &plan,
            JournalEntry::new(&id, "cancelled").reason("before it started"),
        );
    })
    .await;
}

/// The unsaved text of every open document in the repository.
fn open_buffers(state: &GlobalState, team: &Team) -> Vec<Buffer> {
    let documents = state.documents();
    documents
        .iter()
        .filter_map(|(uri, document)| {
            let uri: Uri = uri.parse().ok()?;
            let path = from_proto::file_path(&uri)?;
            path.starts_with(team.workdir()).then(|| Buffer {
                path,
                text: document.text().to_string(),
            })
        })
        .collect()
}

/// A plan and, optionally, one of its tasks, from `{taskId}` or `{planId}`.
fn target_of(team: &Team, args: &TargetArgs) -> std::result::Result<(Plan, Option<Task>), String> {
    team.service
        .resolve(args.plan_id.as_deref(), args.task_id.as_deref())
}

fn discard(state: &Arc<GlobalState>, team: &Arc<Team>, args: TargetArgs) -> Result<Value> {
    let (plan, task) = target_of(team, &args).map_err(failed)?;
    if let Some(task) = task
        && plan.tasks.len() > 1
    {
        // One task of a larger plan: stop it; the rest of the plan goes on.
        if team.service.is_running(&plan.id) {
            team.service
                .command(&plan.id, Command::CancelTask(task.id.clone()))
                .map_err(failed)?;
            return Ok(Value::Null);
        }
        return Err(failed(format!(
            "task {} is part of plan {}, which has finished; discard the plan",
            task.id, plan.id
        )));
    }
    if plan.status == PlanStatus::Applied {
        return Err(failed(format!(
            "plan {} is already applied; undo it in the editor",
            plan.id
        )));
    }
    if !team.cancel_launch(&plan.id) && team.service.is_running(&plan.id) {
        team.service
            .command(&plan.id, Command::Cancel)
            .map_err(failed)?;
    }
    let touched = state.findings().remove_plan(&plan.id);
    for uri in touched {
        state.team.republish(uri);
    }
    let team = team.clone();
    tokio::spawn(async move {
        // Let the orchestrator see the cancellation before the plan is marked discarded.
        for _ in 0..100 {
            if !team.service.is_running(&plan.id) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let id = plan.id.clone();
        let service = team.service.clone();
        let _ = tokio::task::spawn_blocking(move || service.mark_discarded(&id)).await;
        // What is discarded goes: its worktrees, branches and snapshot.
        match crate::team::housekeeping::reclaim(&team.repo, team.store(), &plan.id).await {
            Ok(_) => {
                // The registry learns that the plan was reclaimed (so a retry says so).
                if let Ok(saved) = team.store().load_plan(&plan.id) {
                    team.service.registry().update(&saved);
                }
            }
            Err(err) => tracing::warn!("cannot remove what plan {} kept: {err}", plan.id),
        }
    });
    Ok(Value::Null)
}

fn cancel(team: &Arc<Team>, args: TargetArgs) -> Result<Value> {
    let (plan, task) = target_of(team, &args).map_err(failed)?;
    if team.cancel_launch(&plan.id) {
        return Ok(Value::Null);
    }
    let command = match task {
        Some(task) if plan.tasks.len() > 1 => Command::CancelTask(task.id),
        _ => Command::Cancel,
    };
    team.service.command(&plan.id, command).map_err(failed)?;
    Ok(Value::Null)
}

fn retry(team: &Arc<Team>, args: TargetArgs) -> Result<Value> {
    let (plan, task) = target_of(team, &args).map_err(failed)?;
    if let Some(task) = task {
        team.service
            .command(&plan.id, Command::Retry(task.id))
            .map_err(failed)?;
        return Ok(Value::Null);
    }
    // A question that offers a retry: answer it.
    if let Some(question) = &plan.escalation
        && question.choices.iter().any(|c| c.id == "retry")
    {
        team.service
            .command(
                &plan.id,
                Command::Answer {
                    escalation: question.id.clone(),
                    choice: "retry".into(),
                },
            )
            .map_err(failed)?;
        return Ok(Value::Null);
    }
    let retryable: Vec<String> = plan
        .tasks
        .iter()
        .filter(|t| {
            matches!(
                t.status,
                TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Escalated
            )
        })
        .map(|t| t.id.clone())
        .collect();
    if retryable.is_empty() {
        if !plan.status.is_terminal() && !team.service.is_running(&plan.id) && !plan.base.is_empty()
        {
            // Interrupted (the editor closed): resume it.
            team.service.start(plan).map_err(failed)?;
            return Ok(Value::Null);
        }
        return Err(failed(format!(
            "plan {} has no failed, cancelled or escalated task to retry",
            plan.id
        )));
    }
    for task in retryable {
        team.service
            .command(&plan.id, Command::Retry(task))
            .map_err(failed)?;
    }
    Ok(Value::Null)
}

fn answer(team: &Arc<Team>, args: AnswerArgs) -> Result<Value> {
    if args.plan_id.is_empty() || args.escalation_id.is_empty() || args.choice.is_empty() {
        return Err(Error::invalid_params(
            "pitcrew.answer: give planId, escalationId and choice",
        ));
    }
    let plan = team
        .service
        .plan(&args.plan_id)
        .ok_or_else(|| failed(format!("no plan {}", args.plan_id)))?;
    let question = plan
        .escalation
        .as_ref()
        .filter(|e| e.id == args.escalation_id)
        .ok_or_else(|| {
            failed(format!(
                "plan {} has no pending question {}",
                plan.id, args.escalation_id
            ))
        })?;
    if !question.choices.iter().any(|c| c.id == args.choice) {
        return Err(Error::invalid_params(format!(
            "{:?} is not an answer to this question; choose one of {}",
            args.choice,
            question
                .choices
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    team.service
        .command(
            &plan.id,
            Command::Answer {
                escalation: args.escalation_id,
                choice: args.choice,
            },
        )
        .map_err(failed)?;
    Ok(Value::Null)
}

fn show_plan(
    state: &Arc<GlobalState>,
    client: &Client,
    team: &Arc<Team>,
    args: TargetArgs,
) -> Result<Value> {
    let plan = match &args.plan_id {
        Some(id) => team
            .service
            .plan(id)
            .ok_or_else(|| failed(format!("no plan {id}")))?,
        None => team
            .service
            .latest_plan()
            .ok_or_else(|| failed("there is no plan yet: delegate a task or plan a goal"))?,
    };
    let path = team.store().plan_markdown_path();
    let uri = Uri::from_file_path(&path)
        .ok_or_else(|| failed(format!("{} cannot be a URI", path.display())))?;
    let can_show = state
        .session()
        .and_then(|s| s.client_capabilities.window.as_ref())
        .and_then(|w| w.show_document.as_ref())
        .is_some_and(|s| s.support);
    let client = client.clone();
    let response = json!({"uri": uri.as_str(), "planId": plan.id});
    tokio::spawn(async move {
        let markdown = team::store::render_markdown(&plan);
        let written = tokio::task::spawn_blocking({
            let path = path.clone();
            move || team::store::write_atomically(&path, markdown.as_bytes())
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            client
                .show_message(
                    MessageType::ERROR,
                    format!("pitcrew: cannot write {}", path.display()),
                )
                .await;
            return;
        }
        let shown = if can_show {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                client.show_document(ShowDocumentParams {
                    uri,
                    external: Some(false),
                    take_focus: Some(true),
                    selection: None,
                }),
            )
            .await
            .is_ok_and(|r| r.unwrap_or(false))
        } else {
            false
        };
        if !shown {
            client
                .show_message(
                    MessageType::INFO,
                    format!("pitcrew: the plan is in {}", path.display()),
                )
                .await;
        }
    });
    Ok(response)
}

fn finding(state: &GlobalState, args: &TargetArgs) -> Result<Tracked> {
    let key = args
        .finding_id
        .as_deref()
        .ok_or_else(|| Error::invalid_params("give a findingId"))?;
    state.findings().get(key).cloned().ok_or_else(|| {
        failed(format!(
            "no finding {key}: it was dismissed, fixed, or its text was rewritten"
        ))
    })
}

fn dismiss(state: &Arc<GlobalState>, team: &Arc<Team>, args: TargetArgs) -> Result<Value> {
    let tracked = finding(state, &args)?;
    let key = tracked.key();
    if let Some(uri) = state.findings().dismiss(&key) {
        state.team.republish(uri);
    }
    let team = team.clone();
    tokio::task::spawn_blocking(move || team.remember_dismissed(&key));
    Ok(Value::Null)
}

fn send_back(state: &Arc<GlobalState>, team: &Arc<Team>, args: TargetArgs) -> Result<Value> {
    let tracked = finding(state, &args)?;
    // Where the finding is now in the user's text.
    let range = {
        let documents = state.documents();
        match (documents.get(&tracked.uri), tracked.anchor) {
            (Some(document), Some(anchor)) => Some(to_proto::range(text::chars_to_range(
                document.text(),
                anchor.start..anchor.end,
                state.encoding(),
            ))),
            _ => Some(tower_lsp_server::ls_types::Range::new(
                tower_lsp_server::ls_types::Position::new(tracked.line, 0),
                tower_lsp_server::ls_types::Position::new(tracked.end_line.saturating_add(1), 0),
            )),
        }
    };
    let mut instruction = format!(
        "Fix what {} found here: {}",
        match tracked.finding.source {
            crate::team::plan::FindingSource::Review => "the reviewer".to_owned(),
            crate::team::plan::FindingSource::Check { ref name } => format!("the {name} check"),
        },
        tracked.finding.message
    );
    if let Some(suggestion) = &tracked.finding.suggestion {
        instruction.push_str(&format!("\nThe reviewer suggested:\n{suggestion}"));
    }
    delegate(
        state,
        team,
        SelectionArgs {
            uri: Some(tracked.uri.clone()),
            range,
            instruction: Some(instruction),
            preset: Some(Preset::Fix.id().to_owned()),
            diagnostics: Some(vec![tracked.finding.message.clone()]),
            goal: None,
        },
    )
}

fn truncate(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_in_comments() {
        assert_eq!(
            comment_instruction("fn f() {\n    // pitcrew: return the sum\n    todo!()\n}"),
            Some("return the sum".into())
        );
        assert_eq!(
            comment_instruction("/* pitcrew: validate the input */"),
            Some("validate the input".into())
        );
        assert_eq!(
            comment_instruction("# pitcrew: parse the header\n# pitcrew: and the body\nx = 1"),
            Some("parse the header and the body".into())
        );
        assert_eq!(comment_instruction("// nothing to see\n"), None);
        assert_eq!(comment_instruction("// pitcrew:   \n"), None);
    }

    #[test]
    fn long_titles_are_cut_at_a_char_boundary() {
        assert_eq!(truncate("short", 72), "short");
        let long = "é".repeat(100);
        assert_eq!(truncate(&long, 10).chars().count(), 10);
        assert_eq!(truncate("first\nsecond", 72), "first");
    }
}
