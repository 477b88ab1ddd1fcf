//! Conversions from pitcrew's types to LSP types.

use tower_lsp_server::ls_types as lsp;

use crate::text;

pub fn position(position: text::Position) -> lsp::Position {
    lsp::Position::new(position.line, position.character)
}

pub fn range(range: text::Range) -> lsp::Range {
    lsp::Range::new(position(range.start), position(range.end))
}
