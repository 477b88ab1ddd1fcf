//! `pitcrew/task`: one task in detail (its diff, findings, checks and recent activity).

use tower_lsp_server::jsonrpc::Result;

use crate::lsp::ext::{TaskDetail, TaskParams};
use crate::lsp::state::GlobalState;
use crate::lsp::team::{commands::failed, views};

pub fn handle(state: &GlobalState, params: TaskParams) -> Result<TaskDetail> {
    let team = state.team.get().map_err(failed)?;
    let (plan, task) = team.service.find_task(&params.task_id).map_err(failed)?;
    Ok(views::task_detail(&team.service, &plan, &task))
}
