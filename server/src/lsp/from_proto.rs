//! Conversions from LSP types to pitcrew's own.

use std::path::PathBuf;

use tower_lsp_server::ls_types::{self as lsp, Uri};

use crate::text;

pub fn position(position: lsp::Position) -> text::Position {
    text::Position::new(position.line, position.character)
}

pub fn range(range: lsp::Range) -> text::Range {
    text::Range::new(position(range.start), position(range.end))
}

pub fn content_change(change: lsp::TextDocumentContentChangeEvent) -> text::ContentChange {
    text::ContentChange {
        range: change.range.map(range),
        text: change.text,
    }
}

/// The local path of a `file:` URI.
pub fn file_path(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|path| path.into_owned())
}
