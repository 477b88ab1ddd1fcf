//! `codeAction/resolve`: fill in a lazily offered action's command or edit.

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::CodeAction;

use crate::lsp::state::GlobalState;
use crate::lsp::team::actions;

pub fn handle(state: &GlobalState, action: CodeAction) -> Result<CodeAction> {
    actions::resolve(state, action)
}
