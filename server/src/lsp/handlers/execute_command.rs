//! `workspace/executeCommand`: the `pitcrew.*` commands (see `team::commands`). Each answers
//! at once; the work it starts reports back through notifications.

use std::sync::Arc;

use serde_json::Value;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::ExecuteCommandParams;

use crate::lsp::state::GlobalState;
use crate::lsp::team::STARTUP_WAIT;
use crate::lsp::team::commands;

pub async fn handle(
    state: &Arc<GlobalState>,
    client: &Client,
    params: ExecuteCommandParams,
) -> Result<Option<Value>> {
    state.team.wait_started(STARTUP_WAIT).await;
    commands::execute(state, client, &params.command, params.arguments)
}
