//! `workspace/didChangeWatchedFiles`: `pitcrew.toml` changed on disk; reload.

use std::sync::Arc;

use tower_lsp_server::Client;
use tower_lsp_server::ls_types::DidChangeWatchedFilesParams;

use crate::config::WORKSPACE_FILE;
use crate::lsp::state::GlobalState;
use crate::lsp::{from_proto, notify};

pub fn handle(state: &Arc<GlobalState>, client: &Client, params: DidChangeWatchedFilesParams) {
    let touches_config = params.changes.iter().any(|change| {
        from_proto::file_path(&change.uri)
            .is_some_and(|path| path.file_name().is_some_and(|name| name == WORKSPACE_FILE))
    });
    if touches_config {
        notify::reload_config(state.clone(), client.clone(), None);
    }
}
