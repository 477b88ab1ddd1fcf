//! `textDocument/didClose`: forget the document; the file on disk is the truth again. Its
//! findings are kept by line.

use tower_lsp_server::ls_types::DidCloseTextDocumentParams;

use crate::lsp::state::GlobalState;

pub fn handle(state: &GlobalState, params: DidCloseTextDocumentParams) {
    let uri = params.text_document.uri.as_str();
    let mut documents = state.documents();
    match documents.close(uri) {
        Some(document) => state.findings().on_close(uri, document.text()),
        None => tracing::warn!("closed a document that was not open: {uri}"),
    }
}
