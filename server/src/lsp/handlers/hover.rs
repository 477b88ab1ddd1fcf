//! `textDocument/hover`: on lines a pitcrew result wrote, what wrote them (task, roles, models,
//! spend).

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::{Hover, HoverContents, HoverParams, MarkupContent, MarkupKind};

use crate::lsp::state::GlobalState;
use crate::lsp::{from_proto, to_proto};
use crate::text::{chars_to_range, position_to_char};

pub fn handle(state: &GlobalState, params: HoverParams) -> Result<Option<Hover>> {
    let position = params.text_document_position_params;
    let uri = position.text_document.uri.as_str();
    let documents = state.documents();
    let Some(document) = documents.get(uri) else {
        return Ok(None);
    };
    let encoding = state.encoding();
    let at = position_to_char(
        document.text(),
        from_proto::position(position.position),
        encoding,
    );
    let findings = state.findings();
    let Some(provenance) = findings.provenance_at(uri, at) else {
        return Ok(None);
    };
    Ok(Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: provenance.text.clone(),
        }),
        range: Some(to_proto::range(chars_to_range(
            document.text(),
            provenance.anchor.start..provenance.anchor.end,
            encoding,
        ))),
    }))
}
