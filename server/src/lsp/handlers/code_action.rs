//! `textDocument/codeAction`: the actions pitcrew offers at a selection (see `team::actions`).

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::{CodeActionParams, CodeActionResponse};

use crate::lsp::state::GlobalState;
use crate::lsp::team::STARTUP_WAIT;
use crate::lsp::team::actions;

pub async fn handle(
    state: &GlobalState,
    params: CodeActionParams,
) -> Result<Option<CodeActionResponse>> {
    state.team.wait_started(STARTUP_WAIT).await;
    Ok(Some(actions::code_actions(state, params)))
}
