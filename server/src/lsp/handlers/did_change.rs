//! `textDocument/didChange`: apply incremental changes, in order, and move what is anchored to
//! the text (findings, provenance) with them.
//!
//! tower-lsp-server may run handlers concurrently, but it first polls them in the order the
//! messages arrived. This handler does all its work synchronously, under the document lock,
//! before it could ever yield, so changes apply in arrival order.

use tower_lsp_server::ls_types::DidChangeTextDocumentParams;

use crate::lsp::from_proto;
use crate::lsp::state::GlobalState;

pub fn handle(state: &GlobalState, params: DidChangeTextDocumentParams) {
    let uri = params.text_document.uri;
    let version = params.text_document.version;
    let changes: Vec<_> = params
        .content_changes
        .into_iter()
        .map(from_proto::content_change)
        .collect();
    let encoding = state.encoding();
    let mut documents = state.documents();
    // The text before the change, when findings are anchored here (a rope clone shares its
    // nodes: no copy), so findings this change rewrites can come back with an undo's redo.
    let before = documents
        .get(uri.as_str())
        .filter(|_| state.findings().has_findings_in(uri.as_str()))
        .map(|d| d.text().clone());
    let applied = match documents.change(uri.as_str(), &changes, version, encoding) {
        Ok(applied) => applied,
        Err(err) => {
            tracing::warn!("ignored a change: {err}");
            return;
        }
    };
    let moved = match documents.get(uri.as_str()) {
        Some(document) => {
            state
                .findings()
                .shift(uri.as_str(), &applied, document.text(), before.as_ref())
        }
        None => false,
    };
    drop(documents);
    if moved {
        state.team.republish(uri.as_str());
    }
}
