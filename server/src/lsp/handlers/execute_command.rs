//! `workspace/executeCommand`: the `pitcrew.*` commands.

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::ExecuteCommandParams;

use crate::lsp::ext::commands;

/// LSP's `RequestFailed`: the request was valid but could not be carried out.
const REQUEST_FAILED: i64 = -32803;

pub fn handle(params: ExecuteCommandParams) -> Result<Option<Value>> {
    let command = params.command.as_str();
    if !commands::ALL.contains(&command) {
        return Err(Error::invalid_params(format!(
            "unknown command {command:?}; pitcrew knows {}",
            commands::ALL.join(", ")
        )));
    }
    Err(Error {
        code: ErrorCode::ServerError(REQUEST_FAILED),
        message: format!("{command} is not yet available in this build of pitcrew").into(),
        data: None,
    })
}
