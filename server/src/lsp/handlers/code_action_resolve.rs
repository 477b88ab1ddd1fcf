//! `codeAction/resolve`: fill in a lazily offered action.

use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::CodeAction;

pub fn handle(action: CodeAction) -> Result<CodeAction> {
    Err(Error::invalid_params(format!(
        "pitcrew offered no action called {:?}",
        action.title
    )))
}
