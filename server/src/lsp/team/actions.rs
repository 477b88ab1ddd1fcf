//! Code actions at a selection: delegate it (with presets, or with the instruction written in a
//! `pitcrew:` comment), review it, plan from it; apply or discard a finished result that touches
//! the file; answer the team's open questions (in every file); and, on the reviewer's
//! diagnostics, apply its fix, send it back, or dismiss it.
//!
//! Answering is cheap (no I/O, plans read in place). Each action carries `data`; when the
//! client can resolve the property, the command or edit is left out and filled in by
//! `codeAction/resolve`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::DocumentChanges;
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Command, Diagnostic, OneOf,
    OptionalVersionedTextDocumentIdentifier, Range, TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};

use super::Team;
use super::commands::{Preset, comment_instruction};
use crate::lsp::ext::commands;
use crate::lsp::state::GlobalState;
use crate::lsp::{from_proto, to_proto};
use crate::team::plan::{PlanStatus, TaskKind};
use crate::text::{chars_to_range, range_to_chars};

/// What an action does, kept in its `data` between the request and `codeAction/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum Action {
    Delegate {
        uri: String,
        range: Range,
        preset: Option<String>,
        instruction: Option<String>,
        diagnostics: Vec<String>,
    },
    Review {
        uri: String,
        range: Option<Range>,
    },
    Plan {
        uri: String,
        range: Range,
        goal: String,
    },
    Apply {
        plan_id: Option<String>,
        task_id: Option<String>,
    },
    Discard {
        plan_id: Option<String>,
        task_id: Option<String>,
    },
    Fix {
        finding_id: String,
    },
    SendBack {
        finding_id: String,
    },
    Dismiss {
        finding_id: String,
    },
    Answer {
        plan_id: String,
        escalation_id: String,
        choice: String,
    },
}

/// An action about to be offered.
struct Offer {
    title: String,
    kind: CodeActionKind,
    action: Action,
    preferred: bool,
    diagnostics: Option<Vec<Diagnostic>>,
}

impl Offer {
    fn new(
        title: impl Into<String>,
        kind: CodeActionKind,
        action: Action,
        preferred: bool,
        diagnostics: Option<Vec<Diagnostic>>,
    ) -> Self {
        Self {
            title: title.into(),
            kind,
            action,
            preferred,
            diagnostics,
        }
    }
}

/// The key under which an action's `data` is kept.
const DATA_KEY: &str = "pitcrew";

/// What the client can do with code actions.
struct Support {
    literals: bool,
    resolve_command: bool,
    resolve_edit: bool,
}

fn support(state: &GlobalState) -> Support {
    let code_action = state
        .session()
        .and_then(|s| s.client_capabilities.text_document.as_ref())
        .and_then(|t| t.code_action.as_ref());
    let data = code_action.and_then(|c| c.data_support).unwrap_or(false);
    let properties: Vec<String> = code_action
        .and_then(|c| c.resolve_support.as_ref())
        .map(|r| r.properties.clone())
        .unwrap_or_default();
    Support {
        literals: code_action.is_some_and(|c| c.code_action_literal_support.is_some()),
        resolve_command: data && properties.iter().any(|p| p == "command"),
        resolve_edit: data && properties.iter().any(|p| p == "edit"),
    }
}

pub fn code_actions(state: &GlobalState, params: CodeActionParams) -> Vec<CodeActionOrCommand> {
    let Ok(team) = state.team.get() else {
        return Vec::new(); // no repository: nothing pitcrew could do here
    };
    let uri = params.text_document.uri.as_str().to_owned();
    let Some(path) = team.path_of(&uri) else {
        return Vec::new();
    };
    let range = params.range;
    let mut offered: Vec<Offer> = Vec::new();

    // The selection's text (the whole line at a bare cursor), for a `pitcrew:` comment.
    let selected = {
        let documents = state.documents();
        documents.get(&uri).map(|document| {
            let text = document.text();
            let chars = range_to_chars(text, from_proto::range(range), state.encoding());
            if chars.is_empty() {
                let line = text.char_to_line(chars.start.min(text.len_chars()));
                text.line(line).to_string()
            } else {
                text.slice(chars).to_string()
            }
        })
    };
    if let Some(instruction) = selected.as_deref().and_then(comment_instruction) {
        offered.push(Offer::new(
            format!("Delegate: {}", short(&instruction)),
            CodeActionKind::REFACTOR_REWRITE,
            Action::Delegate {
                uri: uri.clone(),
                range,
                preset: None,
                instruction: Some(instruction.clone()),
                diagnostics: Vec::new(),
            },
            true,
            None,
        ));
        offered.push(Offer::new(
            format!("Plan: {}", short(&instruction)),
            CodeActionKind::REFACTOR_REWRITE,
            Action::Plan {
                uri: uri.clone(),
                range,
                goal: instruction,
            },
            false,
            None,
        ));
    }

    // Other tools' diagnostics here: the "fix" preset.
    let others: Vec<String> = params
        .context
        .diagnostics
        .iter()
        .filter(|d| d.source.as_deref() != Some("pitcrew"))
        .map(|d| match &d.source {
            Some(source) => format!("{source}: {}", d.message),
            None => d.message.clone(),
        })
        .collect();
    for preset in Preset::ALL {
        if preset == Preset::Fix && others.is_empty() {
            continue;
        }
        offered.push(Offer::new(
            format!("Delegate to implementer: {}", preset.label()),
            CodeActionKind::REFACTOR_REWRITE,
            Action::Delegate {
                uri: uri.clone(),
                range,
                preset: Some(preset.id().to_owned()),
                instruction: None,
                diagnostics: if preset == Preset::Fix {
                    others.clone()
                } else {
                    Vec::new()
                },
            },
            false,
            None,
        ));
    }
    if range.start != range.end {
        offered.push(Offer::new(
            "Review selection",
            CodeActionKind::REFACTOR_REWRITE,
            Action::Review {
                uri: uri.clone(),
                range: Some(range),
            },
            false,
            None,
        ));
    }
    offered.push(Offer::new(
        "Review file",
        CodeActionKind::REFACTOR_REWRITE,
        Action::Review {
            uri: uri.clone(),
            range: None,
        },
        false,
        None,
    ));

    // Finished results that touch this file.
    for (title, target_plan, target_task) in results_touching(&team, &path) {
        offered.push(Offer::new(
            format!("Apply result of {title}"),
            CodeActionKind::REFACTOR_REWRITE,
            Action::Apply {
                plan_id: target_plan.clone(),
                task_id: target_task.clone(),
            },
            false,
            None,
        ));
        offered.push(Offer::new(
            format!("Discard result of {title}"),
            CodeActionKind::REFACTOR_REWRITE,
            Action::Discard {
                plan_id: target_plan,
                task_id: target_task,
            },
            false,
            None,
        ));
    }

    // The team's open questions, answerable from any file: no prompt takes the keyboard.
    // Clients with pitcrew's plugin answer from its own commands (no lightbulb everywhere).
    let questions = if super::bridge::has_plugin(state) {
        Vec::new()
    } else {
        open_questions(&team)
    };
    for (plan_id, escalation) in questions {
        for choice in &escalation.choices {
            offered.push(Offer::new(
                // Which question each answer belongs to: several may be open at once.
                format!(
                    "{} (plan {plan_id}: {})",
                    super::bridge::answer_title(&choice.label),
                    short(&escalation.question)
                ),
                CodeActionKind::QUICKFIX,
                Action::Answer {
                    plan_id: plan_id.clone(),
                    escalation_id: escalation.id.clone(),
                    choice: choice.id.clone(),
                },
                false,
                None,
            ));
        }
    }

    // The reviewer's diagnostics in the request. With more than one, each action says which
    // finding it is about, so two "Dismiss finding"s are never told apart by position alone.
    {
        let findings = state.findings();
        let ours = params
            .context
            .diagnostics
            .iter()
            .filter(|d| d.source.as_deref() == Some("pitcrew"))
            .count();
        for diagnostic in &params.context.diagnostics {
            if diagnostic.source.as_deref() != Some("pitcrew") {
                continue;
            }
            let Some(key) = diagnostic
                .data
                .as_ref()
                .and_then(|d| d.get("findingId"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let Some(tracked) = findings.get(key) else {
                continue;
            };
            let attached = Some(vec![diagnostic.clone()]);
            let about = |title: &str| {
                if ours > 1 {
                    format!("{title}: {}", short(&tracked.finding.message))
                } else {
                    title.to_owned()
                }
            };
            if tracked.finding.suggestion.is_some() {
                offered.push(Offer::new(
                    about("Apply reviewer's fix"),
                    CodeActionKind::QUICKFIX,
                    Action::Fix {
                        finding_id: key.to_owned(),
                    },
                    true,
                    attached.clone(),
                ));
            }
            offered.push(Offer::new(
                about("Send back to an implementer"),
                CodeActionKind::QUICKFIX,
                Action::SendBack {
                    finding_id: key.to_owned(),
                },
                tracked.finding.suggestion.is_none(),
                attached.clone(),
            ));
            offered.push(Offer::new(
                about("Dismiss finding"),
                CodeActionKind::QUICKFIX,
                Action::Dismiss {
                    finding_id: key.to_owned(),
                },
                false,
                attached,
            ));
        }
    }

    let only = params.context.only.unwrap_or_default();
    let wanted = |kind: &CodeActionKind| {
        only.is_empty()
            || only.iter().any(|o| {
                kind.as_str() == o.as_str()
                    || kind.as_str().starts_with(&format!("{}.", o.as_str()))
            })
    };
    let support = support(state);
    offered
        .into_iter()
        .filter(|offer| wanted(&offer.kind))
        .filter_map(|offer| {
            let Offer {
                title,
                kind,
                action,
                preferred,
                diagnostics,
            } = offer;
            if !support.literals {
                // An old client: commands only.
                return command_of(&action, &title).map(CodeActionOrCommand::Command);
            }
            let mut code_action = CodeAction {
                title,
                kind: Some(kind),
                diagnostics,
                is_preferred: preferred.then_some(true),
                data: Some(json!({ DATA_KEY: action })),
                ..CodeAction::default()
            };
            let lazy = match action {
                Action::Fix { .. } => support.resolve_edit,
                _ => support.resolve_command,
            };
            if !lazy {
                fill(state, &mut code_action, &action).ok()?;
            }
            Some(CodeActionOrCommand::CodeAction(code_action))
        })
        .collect()
}

/// `codeAction/resolve`: fills in the command or the edit.
pub fn resolve(state: &GlobalState, mut action: CodeAction) -> Result<CodeAction> {
    let data = action
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .cloned()
        .ok_or_else(|| {
            Error::invalid_params(format!(
                "pitcrew offered no action called {:?}",
                action.title
            ))
        })?;
    let what: Action = serde_json::from_value(data)
        .map_err(|e| Error::invalid_params(format!("this action's data is not pitcrew's: {e}")))?;
    fill(state, &mut action, &what)?;
    Ok(action)
}

fn fill(state: &GlobalState, code_action: &mut CodeAction, action: &Action) -> Result<()> {
    match action {
        Action::Fix { finding_id } => {
            code_action.edit = Some(fix_edit(state, finding_id)?);
        }
        _ => code_action.command = command_of(action, &code_action.title),
    }
    Ok(())
}

/// The command an action runs (the reviewer's fix is an edit instead).
fn command_of(action: &Action, title: &str) -> Option<Command> {
    let (command, arguments) = match action {
        Action::Delegate {
            uri,
            range,
            preset,
            instruction,
            diagnostics,
        } => (
            commands::DELEGATE,
            json!({"uri": uri, "range": range, "preset": preset, "instruction": instruction, "diagnostics": diagnostics}),
        ),
        Action::Review { uri, range } => (commands::REVIEW, json!({"uri": uri, "range": range})),
        Action::Plan { uri, range, goal } => (
            commands::PLAN,
            json!({"uri": uri, "range": range, "goal": goal}),
        ),
        Action::Apply { plan_id, task_id } => (
            commands::APPLY,
            json!({"planId": plan_id, "taskId": task_id}),
        ),
        Action::Discard { plan_id, task_id } => (
            commands::DISCARD,
            json!({"planId": plan_id, "taskId": task_id}),
        ),
        Action::SendBack { finding_id } => (commands::SEND_BACK, json!({"findingId": finding_id})),
        Action::Dismiss { finding_id } => {
            (commands::DISMISS_FINDING, json!({"findingId": finding_id}))
        }
        Action::Answer {
            plan_id,
            escalation_id,
            choice,
        } => (
            commands::ANSWER,
            json!({"planId": plan_id, "escalationId": escalation_id, "choice": choice}),
        ),
        Action::Fix { .. } => return None,
    };
    Some(Command {
        title: title.to_owned(),
        command: command.to_owned(),
        arguments: Some(vec![arguments]),
    })
}

/// The reviewer's suggestion in place of the lines it is about, versioned against the buffer.
fn fix_edit(state: &GlobalState, key: &str) -> Result<WorkspaceEdit> {
    let documents = state.documents();
    let findings = state.findings();
    let gone = || {
        super::commands::failed(format!(
            "finding {key} is gone: dismissed, fixed, or its text was rewritten"
        ))
    };
    let tracked = findings.get(key).ok_or_else(gone)?;
    let suggestion = tracked
        .finding
        .suggestion
        .clone()
        .ok_or_else(|| super::commands::failed(format!("finding {key} suggests no fix")))?;
    let document = documents.get(&tracked.uri).ok_or_else(|| {
        super::commands::failed("open the file to apply the reviewer's fix".to_owned())
    })?;
    let anchor = tracked.anchor.ok_or_else(gone)?;
    let range = to_proto::range(chars_to_range(
        document.text(),
        anchor.start..anchor.end,
        state.encoding(),
    ));
    let uri: Uri = tracked
        .uri
        .parse()
        .map_err(|_| super::commands::failed("the finding's document has no valid URI"))?;
    let edit = TextEdit::new(range, suggestion.trim_end_matches('\n').to_owned());
    let supports_versions = state
        .session()
        .and_then(|s| s.client_capabilities.workspace.as_ref())
        .and_then(|w| w.workspace_edit.as_ref())
        .and_then(|e| e.document_changes)
        .unwrap_or(false);
    Ok(if supports_versions {
        WorkspaceEdit {
            document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                text_document: OptionalVersionedTextDocumentIdentifier {
                    uri,
                    version: Some(document.version()),
                },
                edits: vec![OneOf::Left(edit)],
            }])),
            ..WorkspaceEdit::default()
        }
    } else {
        WorkspaceEdit {
            changes: Some(HashMap::from([(uri, vec![edit])])),
            ..WorkspaceEdit::default()
        }
    })
}

/// What "Apply result of …" calls a ready plan: its task's title, or the plan's goal.
pub fn result_title(plan: &crate::team::plan::Plan) -> String {
    if plan.tasks.len() == 1 {
        plan.tasks[0].title.clone()
    } else {
        format!("plan \"{}\"", short(&plan.goal))
    }
}

/// The plans waiting on a question, oldest first.
fn open_questions(team: &Team) -> Vec<(String, crate::team::plan::Escalation)> {
    team.service.registry().inspect(|plans| {
        let mut open: Vec<_> = plans
            .values()
            .filter_map(|p| Some((p.created_at.clone(), p.id.clone(), p.escalation.clone()?)))
            .collect();
        open.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        open.into_iter().map(|(_, id, e)| (id, e)).collect()
    })
}

/// Finished results whose diff touches `path`: (title, planId, taskId).
fn results_touching(team: &Team, path: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let running_plans = team.service.running_plans();
    let running = |id: &str| running_plans.contains(id);
    team.service.registry().inspect(|plans| {
        let mut found = Vec::new();
        let mut ids: Vec<&String> = plans.keys().collect();
        ids.sort();
        for id in ids {
            let plan = &plans[id];
            if running(&plan.id) || plan.is_review() {
                continue;
            }
            let touches = |task: &crate::team::plan::Task| {
                task.diff.as_deref().is_some_and(|diff| {
                    team.touched_files(&plan.id, &task.id, diff)
                        .iter()
                        .any(|p| p == path)
                })
            };
            if plan.status == PlanStatus::Ready {
                if plan.tasks.iter().any(touches) {
                    found.push((result_title(plan), Some(plan.id.clone()), None));
                }
                continue;
            }
            if matches!(plan.status, PlanStatus::Applied | PlanStatus::Cancelled) {
                continue;
            }
            // A plan that ended short of ready: its ready tasks, one by one.
            if plan.tasks.len() > 1 {
                for task in &plan.tasks {
                    if task.status.is_integrated()
                        && task.status != crate::team::TaskStatus::Applied
                        && !matches!(task.kind, TaskKind::Review { .. })
                        && touches(task)
                    {
                        found.push((
                            task.title.clone(),
                            None,
                            Some(format!("{}/{}", plan.id, task.id)),
                        ));
                    }
                }
            }
        }
        found
    })
}

/// A title-sized version of `text`.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= 60 {
        line.to_owned()
    } else {
        let mut out: String = line.chars().take(59).collect();
        out.push('…');
        out
    }
}
