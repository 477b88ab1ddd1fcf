//! `textDocument/didClose`: forget the document; the file on disk is the truth again.

use tower_lsp_server::ls_types::DidCloseTextDocumentParams;

use crate::lsp::state::GlobalState;

pub fn handle(state: &GlobalState, params: DidCloseTextDocumentParams) {
    if state
        .documents()
        .close(params.text_document.uri.as_str())
        .is_none()
    {
        tracing::warn!(
            "closed a document that was not open: {}",
            params.text_document.uri.as_str()
        );
    }
}
