//! Placing a task's findings on the user's text: each finding names a line of the commit the
//! reviewer read; the line is found in what the user has now (the open buffer, or the file on
//! disk) through a line diff of the two.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ropey::Rope;
use tower_lsp_server::ls_types::Uri;

use super::Team;
use crate::lsp::findings::{Tracked, line_anchor};
use crate::lsp::state::GlobalState;
use crate::team::plan::Finding;
use crate::text::edits::{map_line, map_line_exact};

/// How to place findings whose line the user's text does not have as the reviewer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Just reviewed: near the change that replaced the line (a result not applied yet, or
    /// code the user edited while the reviewer read it).
    Near,
    /// Restored after a restart: only findings whose lines are still there as reviewed; the
    /// others were fixed or rewritten while pitcrew was not watching.
    Exact,
}

/// Tries before placing by line alone: the user's typing can change a buffer while the diff is
/// computed.
const ATTEMPTS: usize = 3;

/// What a finding's file looks like on each side.
struct Sides {
    /// In the commit the reviewer read.
    reviewed: String,
    /// On disk now (used when the document is not open).
    disk: String,
}

/// Replaces the diagnostics of task `task` of `plan` with `findings`, whose lines refer to
/// `commit`.
pub async fn place(
    state: &Arc<GlobalState>,
    team: &Arc<Team>,
    plan: &str,
    task: &str,
    commit: &str,
    findings: Vec<Finding>,
    mode: Mode,
) {
    let title = team
        .service
        .plan(plan)
        .and_then(|p| p.task(task).map(|t| t.title.clone()))
        .unwrap_or_else(|| task.to_owned());
    let paths: BTreeSet<String> = findings.iter().map(|f| f.path.clone()).collect();
    let sides = Arc::new(read_sides(team, commit, paths).await);
    let findings = Arc::new(findings);
    let plan_document = Uri::from_file_path(team.store().plan_markdown_path_of(plan));

    let mut placed = None;
    for attempt in 0..ATTEMPTS {
        // The user's texts as they are now (rope clones are cheap).
        let current: Current = {
            let documents = state.documents();
            sides
                .keys()
                .map(|path| {
                    let uri = team.uri_of(&documents, path);
                    let open = uri
                        .as_deref()
                        .and_then(|u| documents.get(u))
                        .map(|d| (d.version(), d.text().clone()));
                    (path.clone(), (uri, open))
                })
                .collect()
        };
        // Map lines off the lock and off the async workers: diffing a large file takes a while.
        let job = {
            let (sides, findings, plan, title, plan_document) = (
                sides.clone(),
                findings.clone(),
                plan.to_owned(),
                title.clone(),
                plan_document.clone(),
            );
            move || {
                let tracked = map_findings(
                    &sides,
                    &findings,
                    &current,
                    (&plan, &title, plan_document),
                    mode,
                );
                (tracked, current)
            }
        };
        let Ok((mut tracked, current)) = tokio::task::spawn_blocking(job).await else {
            return;
        };
        let documents = state.documents();
        let unchanged = current.values().all(|(uri, open)| {
            let now = uri.as_deref().and_then(|u| documents.get(u));
            match (open, now) {
                (Some((version, _)), Some(doc)) => doc.version() == *version,
                (None, None) => true,
                _ => false,
            }
        });
        if !unchanged && attempt + 1 < ATTEMPTS {
            continue;
        }
        // Anchor in open documents (by line, if they changed meanwhile on the last attempt).
        for t in &mut tracked {
            if let Some(doc) = documents.get(&t.uri) {
                t.anchor = Some(line_anchor(doc.text(), t.line, t.end_line));
            }
        }
        // A plan discarded (or ended without this task's result) while its findings were
        // being placed keeps none.
        let gone = team
            .service
            .plan(plan)
            .is_none_or(|p| !findings_stand(&p, task, team.service.is_running(&p.id)));
        if gone {
            return;
        }
        let touched = state.findings().replace_task(plan, task, tracked);
        drop(documents);
        placed = Some(touched);
        break;
    }
    for uri in placed.into_iter().flatten() {
        state.team.republish(uri);
    }
}

/// Each finding with its lines in what the user has now.
fn map_findings(
    sides: &HashMap<String, Sides>,
    findings: &[Finding],
    current: &Current,
    (plan, title, plan_document): (&str, &str, Option<Uri>),
    mode: Mode,
) -> Vec<Tracked> {
    let mut texts: HashMap<&str, String> = HashMap::new();
    let mut tracked = Vec::new();
    for finding in findings {
        let (Some(side), Some((Some(uri), open))) =
            (sides.get(&finding.path), current.get(&finding.path))
        else {
            continue; // a path outside the working tree, or unreadable
        };
        let now = texts
            .entry(finding.path.as_str())
            .or_insert_with(|| match open {
                Some((_, rope)) => rope.to_string(),
                None => side.disk.clone(),
            });
        // Lines come from a model: keep them within the reviewed text.
        let lines = side.reviewed.lines().count().max(1);
        let first = (finding.line.saturating_sub(1) as usize).min(lines - 1);
        let last = finding
            .end_line
            .map(|l| (l.saturating_sub(1) as usize).min(lines - 1))
            .unwrap_or(first)
            .max(first);
        let mut floating = false;
        let (line, end_line) = match mode {
            Mode::Near => {
                let line = map_line(&side.reviewed, now, first);
                floating = map_line_exact(&side.reviewed, now, first).is_none();
                (line, map_line(&side.reviewed, now, last).max(line))
            }
            Mode::Exact => {
                let Some(line) = map_line_exact(&side.reviewed, now, first) else {
                    continue;
                };
                let end = map_line_exact(&side.reviewed, now, last).unwrap_or(line);
                (line, end.max(line))
            }
        };
        let (line, end_line) = (
            u32::try_from(line).unwrap_or(u32::MAX - 1),
            u32::try_from(end_line).unwrap_or(u32::MAX - 1),
        );
        tracked.push(Tracked {
            finding: finding.clone(),
            plan: plan.to_owned(),
            title: title.to_owned(),
            uri: uri.clone(),
            anchor: None,
            line,
            end_line,
            floating,
            plan_document: plan_document.clone(),
        });
    }
    tracked
}

/// The user's text of each path: its URI, and the open document's version and text.
type Current = HashMap<String, (Option<String>, Option<(i32, Rope)>)>;

/// Reads each path at `commit` and on disk (blocking work, off the async workers).
async fn read_sides(
    team: &Arc<Team>,
    commit: &str,
    paths: BTreeSet<String>,
) -> HashMap<String, Sides> {
    let Ok(commit) = git2::Oid::from_str(commit) else {
        tracing::warn!("findings refer to {commit:?}, which is not a commit");
        return HashMap::new();
    };
    let workdir = team.workdir().to_path_buf();
    let read = team
        .repo
        .run_concurrently(move |repo| {
            let tree = repo
                .find_commit(commit)
                .and_then(|c| c.tree())
                .map_err(|e| crate::git::GitError::Refused(e.message().to_owned()))?;
            let mut sides = HashMap::new();
            for path in paths {
                let Some(full) = crate::git::apply::safe_join(&workdir, &path) else {
                    continue;
                };
                let reviewed = tree
                    .get_path(std::path::Path::new(&path))
                    .ok()
                    .and_then(|entry| repo.find_blob(entry.id()).ok())
                    .map(|blob| String::from_utf8_lossy(blob.content()).into_owned())
                    .unwrap_or_default();
                let disk = std::fs::read(&full)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default();
                sides.insert(path, Sides { reviewed, disk });
            }
            Ok(sides)
        })
        .await;
    read.unwrap_or_else(|err| {
        tracing::warn!("cannot read the files findings refer to: {err}");
        HashMap::new()
    })
}

/// Whether the findings of `task` belong on the user's code: while its plan is at work or
/// waiting on a question, and after it only if the task's result can still be applied (or
/// was). A plan that ended without a result (aborted, failed, discarded) leaves none; a
/// failed plan's tasks that did reach a result keep theirs, since each can be applied alone.
pub fn findings_stand(plan: &crate::team::plan::Plan, task: &str, running: bool) -> bool {
    use crate::team::PlanStatus;
    use crate::team::plan::TaskStatus;
    if plan.status == PlanStatus::Cancelled {
        return false;
    }
    if running || plan.escalation.is_some() {
        return true;
    }
    if matches!(plan.status, PlanStatus::Ready | PlanStatus::Applied) {
        return true;
    }
    plan.task(task).is_some_and(|t| {
        matches!(t.status, TaskStatus::Ready | TaskStatus::Applied)
            || matches!(t.kind, crate::team::plan::TaskKind::Review { .. })
    })
}
