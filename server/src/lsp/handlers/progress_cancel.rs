//! `window/workDoneProgress/cancel`: the user cancelled an agent's progress; cancel its task
//! (or its plan, for the planner and the integration test).

use tower_lsp_server::ls_types::{NumberOrString, WorkDoneProgressCancelParams};

use crate::lsp::state::GlobalState;
use crate::lsp::team::STARTUP_WAIT;
use crate::team::Command;

pub async fn handle(state: &GlobalState, params: WorkDoneProgressCancelParams) {
    state.team.wait_started(STARTUP_WAIT).await;
    let token = match params.token {
        NumberOrString::String(token) => token,
        NumberOrString::Number(number) => number.to_string(),
    };
    let Some((plan, task)) = state.team.progress().get(&token).cloned() else {
        tracing::debug!("cancel for progress {token}, which is not an agent's");
        return;
    };
    let Ok(team) = state.team.get() else { return };
    let single = team.service.plan(&plan).is_some_and(|p| p.tasks.len() <= 1);
    let command = if single || task == "planner" || task == "verify" {
        Command::Cancel
    } else {
        Command::CancelTask(task.clone())
    };
    tracing::info!("progress {token} cancelled: {command:?} for plan {plan}");
    if let Err(err) = team.service.command(&plan, command) {
        tracing::warn!("cannot cancel {plan}/{task}: {err}");
    }
}
