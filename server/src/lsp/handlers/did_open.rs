//! `textDocument/didOpen`: remember the document exactly as the client has it, and place the
//! findings already known for it.

use tower_lsp_server::ls_types::DidOpenTextDocumentParams;

use crate::lsp::state::GlobalState;
use crate::text::Document;

pub fn handle(state: &GlobalState, params: DidOpenTextDocumentParams) {
    let item = params.text_document;
    let uri = item.uri.as_str().to_owned();
    let document = Document::new(&item.text, item.version, item.language_id);
    let mut documents = state.documents();
    documents.open(uri.clone(), document);
    let placed = match documents.get(&uri) {
        Some(document) => state.findings().on_open(&uri, document.text()),
        None => false,
    };
    drop(documents);
    if placed {
        state.team.republish(uri);
    }
}
