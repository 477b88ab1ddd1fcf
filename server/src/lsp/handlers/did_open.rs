//! `textDocument/didOpen`: remember the document exactly as the client has it.

use tower_lsp_server::ls_types::DidOpenTextDocumentParams;

use crate::lsp::state::GlobalState;
use crate::text::Document;

pub fn handle(state: &GlobalState, params: DidOpenTextDocumentParams) {
    let item = params.text_document;
    let document = Document::new(&item.text, item.version, item.language_id);
    state.documents().open(item.uri.as_str(), document);
}
