//! `pitcrew/debug/documentText`: the server's copy of a document, for tests and debugging.

use tower_lsp_server::jsonrpc::{Error, Result};

use crate::lsp::ext::{DocumentTextParams, DocumentTextResult};
use crate::lsp::state::GlobalState;

pub fn handle(state: &GlobalState, params: DocumentTextParams) -> Result<DocumentTextResult> {
    let documents = state.documents();
    let document = documents
        .get(&params.uri)
        .ok_or_else(|| Error::invalid_params(format!("{} is not open", params.uri)))?;
    Ok(DocumentTextResult {
        version: document.version(),
        text: document.text().to_string(),
    })
}
