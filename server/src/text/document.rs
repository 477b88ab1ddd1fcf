//! Open documents as ropes, and the store that holds them by URI.

use std::collections::HashMap;
use std::ops::Range as CharRange;

use ropey::Rope;

use super::encoding::{PositionEncoding, Range, range_to_chars};

/// One change from the client: replace `range` with `text`, or the whole document when
/// `range` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentChange {
    pub range: Option<Range>,
    pub text: String,
}

/// What a change did, in chars of the document before it: `removed` was replaced by
/// `inserted_chars` chars. Anything that tracks positions (diagnostics, anchors) shifts by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChange {
    pub removed: CharRange<usize>,
    pub inserted_chars: usize,
}

/// An open document.
#[derive(Debug, Clone)]
pub struct Document {
    /// Always the text of `version`.
    text: Rope,
    version: i32,
    language_id: String,
}

impl Document {
    pub fn new(text: &str, version: i32, language_id: impl Into<String>) -> Self {
        Self {
            text: Rope::from_str(text),
            version,
            language_id: language_id.into(),
        }
    }

    pub fn text(&self) -> &Rope {
        &self.text
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    pub fn language_id(&self) -> &str {
        &self.language_id
    }

    /// Applies one change. Out-of-range positions are clamped (see `encoding`), so this never
    /// fails and never panics.
    pub fn apply_change(
        &mut self,
        change: &ContentChange,
        encoding: PositionEncoding,
    ) -> AppliedChange {
        let removed = match change.range {
            Some(range) => range_to_chars(&self.text, range, encoding),
            None => 0..self.text.len_chars(),
        };
        self.text.remove(removed.clone());
        self.text.insert(removed.start, &change.text);
        AppliedChange {
            removed,
            inserted_chars: change.text.chars().count(),
        }
    }

    /// Applies `changes` in order and moves to `version`.
    pub fn apply_changes(
        &mut self,
        changes: &[ContentChange],
        version: i32,
        encoding: PositionEncoding,
    ) -> Vec<AppliedChange> {
        let applied = changes
            .iter()
            .map(|change| self.apply_change(change, encoding))
            .collect();
        self.version = version;
        applied
    }
}

/// Why a change was not applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    #[error("document {0} is not open")]
    NotOpen(String),
}

/// The documents the client has open, keyed by URI. It holds exactly what the client's
/// buffers hold, including unsaved text.
#[derive(Debug, Default)]
pub struct DocumentStore {
    documents: HashMap<String, Document>,
}

impl DocumentStore {
    pub fn open(&mut self, uri: impl Into<String>, document: Document) {
        self.documents.insert(uri.into(), document);
    }

    pub fn close(&mut self, uri: &str) -> Option<Document> {
        self.documents.remove(uri)
    }

    pub fn get(&self, uri: &str) -> Option<&Document> {
        self.documents.get(uri)
    }

    pub fn change(
        &mut self,
        uri: &str,
        changes: &[ContentChange],
        version: i32,
        encoding: PositionEncoding,
    ) -> Result<Vec<AppliedChange>, DocumentError> {
        let document = self
            .documents
            .get_mut(uri)
            .ok_or_else(|| DocumentError::NotOpen(uri.to_owned()))?;
        Ok(document.apply_changes(changes, version, encoding))
    }

    pub fn len(&self) -> usize {
        self.documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Every open document with its URI, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Document)> {
        self.documents.iter().map(|(uri, doc)| (uri.as_str(), doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Position;

    fn change(start: (u32, u32), end: (u32, u32), text: &str) -> ContentChange {
        ContentChange {
            range: Some(Range::new(
                Position::new(start.0, start.1),
                Position::new(end.0, end.1),
            )),
            text: text.to_owned(),
        }
    }

    #[test]
    fn applies_changes_in_order_and_reports_what_moved() {
        let mut doc = Document::new("hello\nworld\n", 1, "text");
        let applied = doc.apply_changes(
            &[
                change((0, 0), (0, 5), "goodbye"),
                change((1, 0), (1, 0), "big "),
            ],
            2,
            PositionEncoding::Utf16,
        );
        assert_eq!(doc.text().to_string(), "goodbye\nbig world\n");
        assert_eq!(doc.version(), 2);
        assert_eq!(
            applied,
            vec![
                AppliedChange {
                    removed: 0..5,
                    inserted_chars: 7
                },
                AppliedChange {
                    removed: 8..8,
                    inserted_chars: 4
                },
            ]
        );
    }

    #[test]
    fn full_replacement_and_clamped_ranges() {
        let mut doc = Document::new("abc", 1, "text");
        doc.apply_change(
            &ContentChange {
                range: None,
                text: "xyz\n".into(),
            },
            PositionEncoding::Utf8,
        );
        assert_eq!(doc.text().to_string(), "xyz\n");
        // A reversed, out-of-range range is clamped and ordered, not a panic.
        doc.apply_change(&change((9, 9), (0, 1), "!"), PositionEncoding::Utf8);
        assert_eq!(doc.text().to_string(), "x!");
    }

    #[test]
    fn change_to_unknown_document_is_an_error() {
        let mut store = DocumentStore::default();
        let err = store
            .change("file:///nope", &[], 2, PositionEncoding::Utf16)
            .unwrap_err();
        assert_eq!(err, DocumentError::NotOpen("file:///nope".into()));
    }
}
