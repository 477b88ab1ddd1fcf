//! `textDocument/didSave`: saving `pitcrew.toml` reloads the configuration.

use std::sync::Arc;

use tower_lsp_server::Client;
use tower_lsp_server::ls_types::DidSaveTextDocumentParams;

use crate::config::WORKSPACE_FILE;
use crate::lsp::state::GlobalState;
use crate::lsp::{from_proto, notify};

pub fn handle(state: &Arc<GlobalState>, client: &Client, params: DidSaveTextDocumentParams) {
    let is_config = from_proto::file_path(&params.text_document.uri)
        .is_some_and(|path| path.file_name().is_some_and(|name| name == WORKSPACE_FILE));
    if is_config {
        notify::reload_config(state.clone(), client.clone(), None);
    }
}
