//! Open documents and position encodings: the text the user sees, exactly.
//!
//! A leaf module: it knows nothing of LSP types (the `lsp` layer converts) and nothing of the
//! team.

mod anchors;
mod document;
pub mod edits;
mod encoding;

pub use anchors::Anchor;
pub use document::{AppliedChange, ContentChange, Document, DocumentError, DocumentStore};
pub use encoding::{
    Position, PositionEncoding, Range, char_to_position, chars_to_range, position_to_char,
    range_to_chars,
};
