//! Applying a result: a `workspace/applyEdit` the user previews, applies or undoes.
//!
//! File by file, the result is brought onto what the user has now, the open buffer's text
//! (unsaved edits included) or the file on disk, by a three-way merge with the snapshot the
//! agents started from. Buffers get `TextDocumentEdit`s versioned against the version the edit
//! was computed for, so a keystroke that lands meanwhile makes the editor refuse the edit rather
//! than lose the keystroke; pitcrew then computes it again on the newer text. A real conflict
//! is reported and nothing is applied. Nothing here writes a file: the editor does, or not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ropey::Rope;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::request::ApplyWorkspaceEdit;
use tower_lsp_server::ls_types::{
    AnnotatedTextEdit, ApplyWorkspaceEditParams, ChangeAnnotation, CreateFile, CreateFileOptions,
    DeleteFile, DeleteFileOptions, DocumentChangeOperation, DocumentChanges, MessageType, OneOf,
    OptionalVersionedTextDocumentIdentifier, ResourceOp, ResourceOperationKind, TextDocumentEdit,
    TextEdit, Uri, WorkspaceEdit,
};

use super::Team;
use crate::config::Role;
use crate::git::apply::{ChangedFile, Current, FilePlan, changed_files, plan_file};
use crate::lsp::ext::TargetArgs;
use crate::lsp::findings::Placement;
use crate::lsp::state::GlobalState;
use crate::lsp::to_proto;
use crate::team::PlanStatus;
use crate::team::plan::{TaskKind, TaskStatus};
use crate::text::edits::{line_edits, map_line};
use crate::text::{Anchor, chars_to_range};

/// Edits computed again, at most, when the user's typing made the editor refuse them.
const MAX_ATTEMPTS: usize = 3;
/// How long the user may take over the preview.
const APPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a refused edit waits for the `didChange` that explains the refusal.
const CHANGE_GRACE: Duration = Duration::from_millis(500);

/// A refusal that takes longer than this came from the user (a preview they declined), not
/// from the editor noticing a stale version: it is not sent again.
const DECLINED_AFTER: Duration = Duration::from_secs(5);

/// The change annotation every edit carries.
const ANNOTATION: &str = "pitcrew";

/// What to apply.
#[derive(Debug, Clone)]
pub struct Target {
    pub plan: String,
    /// The tasks applied; empty for the whole plan.
    pub tasks: Vec<String>,
    base: String,
    result: ResultRef,
    /// What the user sees on the undo stack and in the preview.
    label: String,
    /// What hovering over the lines it writes shows.
    provenance: String,
}

#[derive(Debug, Clone)]
enum ResultRef {
    Branch(String),
    Commit(String),
}

impl Target {
    pub fn task_ids(&self) -> Vec<String> {
        self.tasks
            .iter()
            .map(|t| format!("{}/{t}", self.plan))
            .collect()
    }
}

/// Checks that the target can be applied, and what it is (no I/O).
pub fn target(team: &Team, args: &TargetArgs) -> Result<Target, String> {
    let (plan, task) = team
        .service
        .resolve(args.plan_id.as_deref(), args.task_id.as_deref())?;
    // A ready plan's orchestrator may still be tidying its worktrees: the result is final, and
    // what the user does to it now is not undone by that (see `PlanRegistry::save_over`).
    if team.service.is_running(&plan.id) && plan.status != PlanStatus::Ready {
        return Err(format!(
            "plan {} is still running ({}); apply it when it is ready",
            plan.id,
            plan.status.as_str()
        ));
    }
    let config = team.config();
    let model = |role: Role| {
        config
            .model_for(role)
            .map(|m| m.model.clone())
            .unwrap_or_else(|| "no model".into())
    };
    let roles = format!(
        "implementer: {} · reviewer: {}",
        model(Role::Implementer),
        model(Role::Reviewer)
    );
    match task {
        Some(task) if plan.tasks.len() > 1 => {
            if matches!(task.kind, TaskKind::Review { .. }) {
                return Err(format!(
                    "task {} reviews your code; it has nothing to apply",
                    task.id
                ));
            }
            if task.status == TaskStatus::Applied {
                return Err(format!("task {} is already applied", task.id));
            }
            if !task.status.is_integrated() {
                return Err(format!(
                    "task {} is {}; only a ready task can be applied",
                    task.id,
                    task.status.as_str()
                ));
            }
            let (Some(start), Some(result)) = (task.start.clone(), task.result.clone()) else {
                return Err(format!("task {} has no result", task.id));
            };
            Ok(Target {
                plan: plan.id.clone(),
                tasks: vec![task.id.clone()],
                base: start,
                result: ResultRef::Commit(result),
                label: format!("pitcrew: {}", task.title),
                provenance: format!(
                    "**pitcrew** wrote this: task `{}/{}`, {}\n\n{roles} · {} tokens{}",
                    plan.id,
                    task.id,
                    task.title,
                    task.spend.tokens(),
                    cost(task.spend.cost_usd)
                ),
            })
        }
        _ => {
            if plan.is_review() {
                return Err(format!(
                    "plan {} reviews your code; it has nothing to apply",
                    plan.id
                ));
            }
            match plan.status {
                PlanStatus::Ready => {}
                PlanStatus::Applied => {
                    return Err(format!("plan {} is already applied", plan.id));
                }
                status => {
                    let ready = plan
                        .tasks
                        .iter()
                        .filter(|t| t.status.is_integrated())
                        .count();
                    let hint = if ready > 0 && !status.is_terminal() {
                        String::new()
                    } else if ready > 0 {
                        format!(
                            "; its {ready} ready task(s) can be applied one by one with {{\"taskId\": ...}}"
                        )
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "plan {} is {}{}; only a ready plan can be applied{hint}",
                        plan.id,
                        status.as_str(),
                        plan.outcome
                            .as_deref()
                            .map(|o| format!(" ({o})"))
                            .unwrap_or_default()
                    ));
                }
            }
            let goal = plan.goal.lines().next().unwrap_or("").to_owned();
            Ok(Target {
                plan: plan.id.clone(),
                tasks: Vec::new(),
                base: plan.base.clone(),
                result: ResultRef::Branch(plan.integration_branch.clone()),
                label: format!("pitcrew: {goal}"),
                provenance: format!(
                    "**pitcrew** wrote this: plan `{}`, {goal}\n\n{roles} · {} tokens{}",
                    plan.id,
                    plan.spend.tokens(),
                    cost(plan.spend.cost_usd)
                ),
            })
        }
    }
}

fn cost(usd: f64) -> String {
    if usd > 0.0 {
        format!(" · ${usd:.4}")
    } else {
        String::new()
    }
}

/// Applies `target` in the background and tells the user how it went.
pub fn spawn(state: Arc<GlobalState>, client: Client, team: Arc<Team>, target: Target) {
    tokio::spawn(async move {
        let outcome = apply(&state, &client, &team, &target).await;
        team.end_applying(&target.plan);
        let (kind, message) = match outcome {
            Ok(done) => (MessageType::INFO, format!("{}: {done}", target.label)),
            Err(problem) => (
                MessageType::WARNING,
                format!("{}: not applied. {problem}", target.label),
            ),
        };
        tracing::info!("{message}");
        client.show_message(kind, message).await;
    });
}

async fn apply(
    state: &Arc<GlobalState>,
    client: &Client,
    team: &Arc<Team>,
    target: &Target,
) -> Result<String, String> {
    // A result made for another branch is still merged onto what the user has; they are told
    // before the editor shows it, so they look at it with that in mind.
    let base = target.base.clone();
    let moved = team
        .repo
        .run_concurrently(move |repo| {
            let base = git2::Oid::from_str(&base)
                .map_err(|e| crate::git::GitError::Refused(e.message().to_owned()))?;
            crate::git::apply::head_moved(repo, base)
        })
        .await
        .ok()
        .flatten();
    if let Some(moved) = moved {
        client
            .show_message(
                MessageType::WARNING,
                format!(
                    "{}: {moved}. It is merged onto what you have now; look at it before you keep it.",
                    target.label
                ),
            )
            .await;
    }
    for attempt in 1..=MAX_ATTEMPTS {
        // Read on every attempt: files that are not open are edited against what is on disk
        // now, which may have changed while the editor was asked.
        let files = read_changed_files(team, target).await?;
        let built = build(state, team, target, &files)?;
        if built.is_empty() {
            record(state, team, target, built.placements).await;
            return Ok("your files already have it.".into());
        }
        let params = ApplyWorkspaceEditParams {
            label: Some(target.label.clone()),
            edit: built.edit.clone(),
        };
        let asked = tokio::time::Instant::now();
        let response = tokio::time::timeout(
            APPLY_TIMEOUT,
            client.send_request::<ApplyWorkspaceEdit>(params),
        )
        .await;
        let response = match response {
            Err(_) => {
                return Err(format!(
                    "the editor did not answer within {} minutes",
                    APPLY_TIMEOUT.as_secs() / 60
                ));
            }
            Ok(Err(err)) => return Err(format!("the editor could not apply it: {err}")),
            Ok(Ok(response)) => response,
        };
        if response.applied {
            let summary = built.summary();
            record(state, team, target, built.placements).await;
            return Ok(summary);
        }
        // Editors decline without a reason when the user closes a preview (VS Code's
        // Refactor Preview answers `applied: false` and nothing else).
        let reason = match &response.failure_reason {
            Some(reason) => format!("The editor did not apply it: {reason}."),
            None => "The edit was declined in the editor (a preview closed without applying \
                     it, say): nothing was changed. Apply again when you want it."
                .to_owned(),
        };
        // A refusal after a while is the user declining the preview, whatever they typed
        // meanwhile: never ask again.
        if asked.elapsed() > DECLINED_AFTER {
            return Err(reason);
        }
        // An editor refuses a stale edit after it sent the change that made it stale, but
        // the answer can overtake that `didChange` on the way through the server: give it a
        // moment to land before concluding that nothing moved.
        let moved_on = async {
            let deadline = tokio::time::Instant::now() + CHANGE_GRACE;
            loop {
                let moved = {
                    let documents = state.documents();
                    built.versions.iter().any(|(uri, version)| {
                        documents.get(uri).map(|d| d.version()) != Some(*version)
                    })
                };
                if moved || tokio::time::Instant::now() >= deadline {
                    return moved;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        .await;
        if !moved_on {
            return Err(reason);
        }
        if attempt == MAX_ATTEMPTS {
            return Err(format!(
                "The editor refused the edit {MAX_ATTEMPTS} times because the files kept \
                 changing as it arrived: nothing was changed. Apply again when you pause."
            ));
        }
        tracing::info!("the edit was refused ({reason}) after the user typed; computing it again");
    }
    unreachable!("the last attempt returns")
}

/// The files the result changes, with what is on disk now.
async fn read_changed_files(team: &Arc<Team>, target: &Target) -> Result<Vec<ChangedFile>, String> {
    let (base, result) = (target.base.clone(), target.result.clone());
    team.repo
        .run_concurrently(move |repo| {
            let refused = |e: git2::Error| crate::git::GitError::Refused(e.message().to_owned());
            let base = git2::Oid::from_str(&base).map_err(refused)?;
            let result = match result {
                ResultRef::Commit(commit) => git2::Oid::from_str(&commit).map_err(refused)?,
                ResultRef::Branch(name) => repo
                    .find_branch(&name, git2::BranchType::Local)
                    .and_then(|b| b.get().peel_to_commit())
                    .map_err(refused)?
                    .id(),
            };
            changed_files(repo, base, result)
        })
        .await
        .map_err(|e| format!("cannot read the result: {e}"))
}

/// A workspace edit and what it brings.
struct Built {
    edit: WorkspaceEdit,
    /// The versions of open documents the edit was computed for.
    versions: Vec<(String, i32)>,
    placements: Vec<(String, Placement)>,
    written: usize,
    merged: usize,
    created: usize,
    deleted: usize,
}

impl Built {
    fn is_empty(&self) -> bool {
        self.written + self.merged + self.created + self.deleted == 0
    }

    fn summary(&self) -> String {
        let mut parts = Vec::new();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if self.written > 0 {
            parts.push(format!(
                "{} file{} changed",
                self.written,
                plural(self.written)
            ));
        }
        if self.merged > 0 {
            parts.push(format!("{} merged with your edits", self.merged));
        }
        if self.created > 0 {
            parts.push(format!("{} created", self.created));
        }
        if self.deleted > 0 {
            parts.push(format!("{} deleted", self.deleted));
        }
        format!("applied ({}).", parts.join(", "))
    }
}

/// What the client can take.
struct Abilities {
    document_changes: bool,
    create: bool,
    delete: bool,
    annotations: bool,
}

fn abilities(state: &GlobalState) -> Abilities {
    let edit = state
        .session()
        .and_then(|s| s.client_capabilities.workspace.as_ref())
        .and_then(|w| w.workspace_edit.as_ref());
    let operations = edit
        .and_then(|e| e.resource_operations.clone())
        .unwrap_or_default();
    Abilities {
        document_changes: edit.and_then(|e| e.document_changes).unwrap_or(false),
        create: operations.contains(&ResourceOperationKind::Create),
        delete: operations.contains(&ResourceOperationKind::Delete),
        annotations: edit.is_some_and(|e| e.change_annotation_support.is_some()),
    }
}

/// Computes the edit against what the user has now (under the documents lock).
fn build(
    state: &GlobalState,
    team: &Team,
    target: &Target,
    files: &[ChangedFile],
) -> Result<Built, String> {
    let abilities = abilities(state);
    let encoding = state.encoding();
    let annotation = abilities.annotations.then(|| ANNOTATION.to_owned());
    let mut operations: Vec<DocumentChangeOperation> = Vec::new();
    let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
    let mut built = Built {
        edit: WorkspaceEdit::default(),
        versions: Vec::new(),
        placements: Vec::new(),
        written: 0,
        merged: 0,
        created: 0,
        deleted: 0,
    };
    let mut problems: Vec<String> = Vec::new();

    let documents = state.documents();
    for file in files {
        let path = &file.path;
        let Some(uri_text) = team.uri_of(&documents, path) else {
            problems.push(format!("{path}: refused: the path leaves the working tree"));
            continue;
        };
        let Ok(uri) = uri_text.parse::<Uri>() else {
            problems.push(format!("{path}: no URI for it"));
            continue;
        };
        let open = documents.get(&uri_text);
        let current: Option<Vec<u8>> = match (open, &file.current) {
            // Refused whether or not it is open (a link on the way may lead anywhere).
            (_, Current::Refused(reason)) => {
                problems.push(format!("{path}: {reason}"));
                continue;
            }
            (Some(document), _) => Some(document.text().to_string().into_bytes()),
            (None, Current::Content(bytes)) => Some(bytes.clone()),
            (None, Current::Missing) => None,
        };
        let decision = plan_file(
            file.base.as_deref(),
            current.as_deref(),
            file.result.as_deref(),
        )
        .map_err(|e| format!("cannot merge {path}: {e}"))?;
        let (new_text, merged) = match decision {
            FilePlan::Unchanged => continue,
            FilePlan::Conflict { reason, regions } => {
                let lines: Vec<String> = regions
                    .iter()
                    .map(|r| {
                        let first = r.ours_start_line + 1;
                        let last = r.ours_start_line + r.ours_line_count.max(1);
                        if first == last {
                            format!("line {first}")
                        } else {
                            format!("lines {first}-{last}")
                        }
                    })
                    .collect();
                problems.push(if lines.is_empty() {
                    format!("{path}: {reason}")
                } else {
                    format!("{path}: {reason} ({})", lines.join(", "))
                });
                continue;
            }
            FilePlan::Delete => {
                if !abilities.document_changes || !abilities.delete {
                    problems.push(format!(
                        "{path}: the result deletes it, and your editor cannot delete files through LSP (use `pitcrew apply` in a terminal)"
                    ));
                    continue;
                }
                operations.push(DocumentChangeOperation::Op(ResourceOp::Delete(
                    DeleteFile {
                        uri,
                        options: Some(DeleteFileOptions {
                            recursive: Some(false),
                            ignore_if_not_exists: Some(true),
                        }),
                        annotation_id: annotation.clone(),
                    },
                )));
                built.deleted += 1;
                continue;
            }
            FilePlan::Write(bytes) => match String::from_utf8(bytes) {
                Ok(text) => (text, false),
                Err(_) => {
                    problems.push(format!(
                        "{path}: the result is not text; apply it with `pitcrew apply` in a terminal"
                    ));
                    continue;
                }
            },
            FilePlan::Merged(text) => (text, true),
        };
        let Some(current) = current else {
            // A new file.
            if !abilities.document_changes || !abilities.create {
                problems.push(format!(
                    "{path}: the result creates it, and your editor cannot create files through LSP (use `pitcrew apply` in a terminal)"
                ));
                continue;
            }
            operations.push(DocumentChangeOperation::Op(ResourceOp::Create(
                CreateFile {
                    uri: uri.clone(),
                    options: Some(CreateFileOptions {
                        overwrite: Some(false),
                        ignore_if_exists: Some(true),
                    }),
                    annotation_id: annotation.clone(),
                },
            )));
            if !new_text.is_empty() {
                operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
                    text_document: OptionalVersionedTextDocumentIdentifier { uri, version: None },
                    edits: vec![annotated(
                        TextEdit::new(Default::default(), new_text),
                        &annotation,
                    )],
                }));
            }
            built.created += 1;
            continue;
        };
        let Ok(current) = String::from_utf8(current) else {
            problems.push(format!(
                "{path}: your file is not text; apply with `pitcrew apply` in a terminal"
            ));
            continue;
        };
        let rope = Rope::from_str(&current);
        let edits = line_edits(&current, &new_text);
        let text_edits: Vec<TextEdit> = edits
            .iter()
            .map(|(chars, text)| {
                TextEdit::new(
                    to_proto::range(chars_to_range(&rope, chars.clone(), encoding)),
                    text.clone(),
                )
            })
            .collect();
        if let Some(document) = open {
            built.versions.push((uri_text.clone(), document.version()));
        }
        // Open or not: a file that is not open now gets its findings and provenance when it
        // opens with the applied text.
        built.placements.push((
            uri_text.clone(),
            placement(state, target, &new_text, &edits, file, &uri_text),
        ));
        if abilities.document_changes {
            operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
                text_document: OptionalVersionedTextDocumentIdentifier {
                    uri,
                    version: open.map(|d| d.version()),
                },
                edits: text_edits
                    .into_iter()
                    .map(|e| annotated(e, &annotation))
                    .collect(),
            }));
        } else {
            changes.insert(uri, text_edits);
        }
        if merged {
            built.merged += 1;
        } else {
            built.written += 1;
        }
    }
    drop(documents);
    if !problems.is_empty() {
        return Err(format!(
            "Nothing was changed:\n{}",
            problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    built.edit = if abilities.document_changes {
        WorkspaceEdit {
            changes: None,
            document_changes: Some(DocumentChanges::Operations(operations)),
            change_annotations: annotation.map(|id| {
                HashMap::from([(
                    id,
                    ChangeAnnotation {
                        label: target.label.clone(),
                        // No confirmation: VS Code would open its Refactor Preview with
                        // every change unticked, and the first Apply would apply nothing.
                        // Users see the result before applying in the plan's diff views.
                        needs_confirmation: Some(false),
                        description: Some(
                            "The team's reviewed result, merged with your edits since it started"
                                .into(),
                        ),
                    },
                )])
            }),
        }
    } else {
        WorkspaceEdit {
            changes: Some(changes),
            document_changes: None,
            change_annotations: None,
        }
    };
    Ok(built)
}

fn annotated(edit: TextEdit, annotation: &Option<String>) -> OneOf<TextEdit, AnnotatedTextEdit> {
    match annotation {
        Some(id) => OneOf::Right(AnnotatedTextEdit {
            text_edit: edit,
            annotation_id: id.clone(),
        }),
        None => OneOf::Left(edit),
    }
}

/// What the edit of one open document brings: the provenance of the lines it writes, and the
/// applied tasks' findings placed on the new text.
fn placement(
    state: &GlobalState,
    target: &Target,
    new_text: &str,
    edits: &[(std::ops::Range<usize>, String)],
    file: &ChangedFile,
    uri: &str,
) -> Placement {
    let mut provenance = Vec::new();
    let mut delta: isize = 0;
    for (chars, text) in edits {
        let start = (chars.start as isize + delta) as usize;
        let inserted = text.chars().count();
        let mut end = start + inserted;
        // Leave the last line break out, as finding anchors do.
        if text.ends_with('\n') && end > start {
            end -= 1;
        }
        if inserted > 0 {
            provenance.push((Anchor::new(start, end), target.provenance.clone()));
        }
        delta += inserted as isize - chars.len() as isize;
    }
    let result_text = file
        .result
        .as_deref()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default();
    let new_rope = Rope::from_str(new_text);
    let findings = state
        .findings()
        .of_document(uri)
        .filter(|t| {
            t.plan == target.plan
                && (target.tasks.is_empty() || target.tasks.contains(&t.finding.task))
        })
        .map(|t| {
            let mut placed = t.clone();
            let lines = result_text.lines().count().max(1);
            let first = (t.finding.line.saturating_sub(1) as usize).min(lines - 1);
            let last = t
                .finding
                .end_line
                .map(|l| (l.saturating_sub(1) as usize).min(lines - 1))
                .unwrap_or(first)
                .max(first);
            let line = map_line(&result_text, new_text, first);
            let end_line = map_line(&result_text, new_text, last).max(line);
            placed.line = line as u32;
            placed.end_line = end_line as u32;
            // In the user's text now: edits to its lines drop it, as for any finding.
            placed.floating = false;
            placed.anchor = Some(crate::lsp::findings::line_anchor(
                &new_rope,
                line as u32,
                end_line as u32,
            ));
            placed
        })
        .collect();
    Placement {
        expected: new_text.to_owned(),
        provenance,
        findings,
    }
}

/// Records an applied result: on the plan, and in the documents that show it.
async fn record(
    state: &Arc<GlobalState>,
    team: &Arc<Team>,
    target: &Target,
    placements: Vec<(String, Placement)>,
) {
    {
        let documents = state.documents();
        let mut findings = state.findings();
        for (uri, placement) in placements {
            let text = documents.get(&uri).map(|d| d.text());
            if findings.expect(&uri, placement, text) {
                state.team.republish(uri);
            }
        }
    }
    let (service, plan, tasks) = (
        team.service.clone(),
        target.plan.clone(),
        target.tasks.clone(),
    );
    let _ = tokio::task::spawn_blocking(move || {
        service.mark_applied(&plan, &tasks, "applied in the editor")
    })
    .await;
}
