//! `pitcrew/task`: one task in detail (its diff, findings, checks, recent activity, and the
//! files its result changes, with both texts of the one asked for).

use tower_lsp_server::jsonrpc::Result;

use crate::git::diff::{ChangeKind, diff};
use crate::lsp::ext::{TaskDetail, TaskFile, TaskParams};
use crate::lsp::state::GlobalState;
use crate::lsp::team::STARTUP_WAIT;
use crate::lsp::team::{commands::failed, views};

pub async fn handle(state: &GlobalState, params: TaskParams) -> Result<TaskDetail> {
    state.team.wait_started(STARTUP_WAIT).await;
    let team = state.team.get().map_err(failed)?;
    let (plan, task) = team.service.find_task(&params.task_id).map_err(failed)?;
    let mut detail = views::task_detail(&team.service, &plan, &task);
    let (Some(start), Some(result)) = (task.start.clone(), task.result.clone()) else {
        return Ok(detail);
    };
    // Reading the two trees is git work: it runs on the repository's blocking pool, never on
    // the thread that answers the editor's other requests.
    let changes = team
        .repo
        .run_concurrently(move |repo| {
            let oid = |id: &str| {
                git2::Oid::from_str(id)
                    .map_err(|e| crate::git::GitError::Refused(e.message().to_owned()))
            };
            diff(repo, oid(&start)?, oid(&result)?)
        })
        .await
        .map_err(|e| failed(format!("cannot read the result of {}: {e}", params.task_id)))?;
    if let Some(path) = &params.path
        && !changes.iter().any(|c| &c.path == path)
    {
        return Err(failed(format!(
            "task {} does not change {path}",
            params.task_id
        )));
    }
    detail.files = changes
        .into_iter()
        .map(|change| {
            let asked = params.path.as_deref() == Some(change.path.as_str());
            TaskFile {
                change: match change.kind {
                    ChangeKind::Added => "added",
                    ChangeKind::Modified => "modified",
                    ChangeKind::Deleted => "deleted",
                    ChangeKind::Renamed => "renamed",
                }
                .to_owned(),
                base: asked.then_some(change.old_text).flatten(),
                result: asked.then_some(change.new_text).flatten(),
                path: change.path,
                old_path: change.old_path,
                binary: change.binary,
            }
        })
        .collect();
    Ok(detail)
}
