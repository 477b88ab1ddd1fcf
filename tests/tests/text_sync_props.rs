//! Property tests: random incremental edit sequences applied to a `Document` agree with a
//! plain `String` model that implements the LSP position rules independently.

use pitcrew::text::{ContentChange, Document, Position, PositionEncoding, Range};
use proptest::prelude::*;

/// The model: `pitcrew_tests::text_model`, a naive reading of the LSP rules over a `String`.
mod model {
    use super::*;
    use pitcrew_tests::text_model::{self, Encoding};

    pub fn apply(text: &mut String, change: &ContentChange, encoding: PositionEncoding) {
        let encoding = match encoding {
            PositionEncoding::Utf8 => Encoding::Utf8,
            PositionEncoding::Utf16 => Encoding::Utf16,
            PositionEncoding::Utf32 => Encoding::Utf32,
        };
        match change.range {
            None => *text = change.text.clone(),
            Some(range) => text_model::replace(
                text,
                (range.start.line, range.start.character),
                (range.end.line, range.end.character),
                &change.text,
                encoding,
            ),
        }
    }
}

fn fragment() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "b", "é", "中", "😀", "🎉", "\n", "\r", "\r\n", "\t", " ", "\u{2028}", "ß",
    ]);
    prop::collection::vec(pieces, 0..8).prop_map(|pieces| pieces.concat())
}

/// Positions mostly inside a small document, sometimes well past its end.
fn position() -> impl Strategy<Value = Position> {
    (
        prop_oneof![4 => 0u32..6, 1 => 6u32..1000, 1 => Just(u32::MAX)],
        prop_oneof![4 => 0u32..10, 1 => 10u32..1000, 1 => Just(u32::MAX)],
    )
        .prop_map(|(line, character)| Position::new(line, character))
}

fn change() -> impl Strategy<Value = ContentChange> {
    prop_oneof![
        20 => (position(), position(), fragment()).prop_map(|(start, end, text)| ContentChange {
            range: Some(Range::new(start, end)),
            text,
        }),
        1 => fragment().prop_map(|text| ContentChange { range: None, text }),
    ]
}

fn check_sequence(
    initial: &str,
    changes: &[ContentChange],
    encoding: PositionEncoding,
) -> Result<(), TestCaseError> {
    let mut document = Document::new(initial, 0, "plaintext");
    let mut expected = initial.to_owned();
    for (version, change) in changes.iter().enumerate() {
        document.apply_changes(std::slice::from_ref(change), version as i32 + 1, encoding);
        model::apply(&mut expected, change, encoding);
        prop_assert_eq!(document.text().to_string(), expected.as_str());
    }
    Ok(())
}

const CASES: u32 = 10_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn utf8_edit_sequences_match_string_model(
        initial in fragment(), changes in prop::collection::vec(change(), 1..16)
    ) {
        check_sequence(&initial, &changes, PositionEncoding::Utf8)?;
    }

    #[test]
    fn utf16_edit_sequences_match_string_model(
        initial in fragment(), changes in prop::collection::vec(change(), 1..16)
    ) {
        check_sequence(&initial, &changes, PositionEncoding::Utf16)?;
    }

    #[test]
    fn utf32_edit_sequences_match_string_model(
        initial in fragment(), changes in prop::collection::vec(change(), 1..16)
    ) {
        check_sequence(&initial, &changes, PositionEncoding::Utf32)?;
    }
}
