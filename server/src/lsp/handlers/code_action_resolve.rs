//! `codeAction/resolve`: fill in a lazily offered action's command or edit.

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::CodeAction;

use crate::lsp::state::GlobalState;
use crate::lsp::team::STARTUP_WAIT;
use crate::lsp::team::actions;

pub async fn handle(state: &GlobalState, action: CodeAction) -> Result<CodeAction> {
    state.team.wait_started(STARTUP_WAIT).await;
    actions::resolve(state, action)
}
