//! Conversions between LSP positions (line, character in some encoding) and rope char indices.
//!
//! The contract, from the LSP specification and applied the same way in both directions:
//!
//! - Lines are separated by `\n`, `\r\n` or `\r` (and nothing else: the rope is built without
//!   ropey's `unicode_lines`, so U+2028 and friends are ordinary characters).
//! - `character` counts code units of the negotiated encoding (UTF-8 bytes, UTF-16 code units
//!   or Unicode scalar values) from the start of the line.
//! - A `character` past the end of its line means the end of the line, before its terminator.
//! - A `line` past the last line means the end of the document.
//! - A `character` that falls inside a multi-unit character (the middle of a surrogate pair or
//!   of a UTF-8 sequence) rounds down to the start of that character.
//!
//! None of these functions panic, whatever the input.

use ropey::{Rope, RopeSlice};

/// A position in a document: zero-based line and zero-based offset in `encoding` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

impl Position {
    pub const fn new(line: u32, character: u32) -> Self {
        Self { line, character }
    }
}

/// A half-open range between two positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

impl Range {
    pub const fn new(start: Position, end: Position) -> Self {
        Self { start, end }
    }
}

/// The unit in which `Position::character` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PositionEncoding {
    Utf8,
    /// The LSP default, and what a client that says nothing gets.
    #[default]
    Utf16,
    Utf32,
}

impl PositionEncoding {
    pub const ALL: [PositionEncoding; 3] = [Self::Utf8, Self::Utf16, Self::Utf32];

    /// The name used on the wire (`general.positionEncodings`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf16 => "utf-16",
            Self::Utf32 => "utf-32",
        }
    }

    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "utf-8" => Some(Self::Utf8),
            "utf-16" => Some(Self::Utf16),
            "utf-32" => Some(Self::Utf32),
            _ => None,
        }
    }

    /// Picks the encoding from what the client offers: UTF-8 when offered (our rope is UTF-8,
    /// so conversions are cheapest), else UTF-16, which every client must support.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Self {
        let offered: Vec<Self> = offered.into_iter().filter_map(Self::from_wire).collect();
        if offered.contains(&Self::Utf8) {
            Self::Utf8
        } else {
            Self::Utf16
        }
    }

    /// The length of `text` in this encoding's units.
    pub fn len_of(self, text: &str) -> usize {
        match self {
            Self::Utf8 => text.len(),
            Self::Utf16 => text.encode_utf16().count(),
            Self::Utf32 => text.chars().count(),
        }
    }
}

/// The number of chars of the line terminator at the end of `line` (0, 1 or 2).
fn terminator_len(line: RopeSlice<'_>) -> usize {
    let n = line.len_chars();
    if n == 0 {
        return 0;
    }
    match line.char(n - 1) {
        '\n' if n >= 2 && line.char(n - 2) == '\r' => 2,
        '\n' | '\r' => 1,
        _ => 0,
    }
}

/// The char index where line `line_idx` ends, before its terminator. `line_idx` must exist.
fn line_content_end(rope: &Rope, line_idx: usize) -> usize {
    let line = rope.line(line_idx);
    rope.line_to_char(line_idx) + line.len_chars() - terminator_len(line)
}

/// Converts an LSP position to a char index in `rope`, clamping as described in the module docs.
pub fn position_to_char(rope: &Rope, position: Position, encoding: PositionEncoding) -> usize {
    let line_idx = position.line as usize;
    if line_idx >= rope.len_lines() {
        return rope.len_chars();
    }
    let line_start = rope.line_to_char(line_idx);
    let content_end = line_content_end(rope, line_idx);
    let character = position.character as usize;
    match encoding {
        PositionEncoding::Utf32 => line_start + character.min(content_end - line_start),
        PositionEncoding::Utf8 => {
            let start_byte = rope.char_to_byte(line_start);
            let end_byte = rope.char_to_byte(content_end);
            // byte_to_char rounds a byte inside a multi-byte char down to that char.
            rope.byte_to_char(start_byte + character.min(end_byte - start_byte))
        }
        PositionEncoding::Utf16 => {
            let start_cu = rope.char_to_utf16_cu(line_start);
            let end_cu = rope.char_to_utf16_cu(content_end);
            // utf16_cu_to_char rounds the middle of a surrogate pair down to its char.
            rope.utf16_cu_to_char(start_cu + character.min(end_cu - start_cu))
        }
    }
}

/// Converts a char index to an LSP position. An index past the end means the end.
///
/// An index between the `\r` and `\n` of a CRLF (which no LSP position can name) maps to the
/// end of that line's content.
pub fn char_to_position(rope: &Rope, char_idx: usize, encoding: PositionEncoding) -> Position {
    let char_idx = char_idx.min(rope.len_chars());
    let line_idx = rope.char_to_line(char_idx);
    let line_start = rope.line_to_char(line_idx);
    let char_idx = char_idx.min(line_content_end(rope, line_idx));
    let character = match encoding {
        PositionEncoding::Utf32 => char_idx - line_start,
        PositionEncoding::Utf8 => rope.char_to_byte(char_idx) - rope.char_to_byte(line_start),
        PositionEncoding::Utf16 => {
            rope.char_to_utf16_cu(char_idx) - rope.char_to_utf16_cu(line_start)
        }
    };
    Position {
        line: saturating_u32(line_idx),
        character: saturating_u32(character),
    }
}

/// Converts an LSP range to a char range, clamped, with `start <= end`.
pub fn range_to_chars(
    rope: &Rope,
    range: Range,
    encoding: PositionEncoding,
) -> std::ops::Range<usize> {
    let start = position_to_char(rope, range.start, encoding);
    let end = position_to_char(rope, range.end, encoding);
    start.min(end)..start.max(end)
}

/// Converts a char range to an LSP range.
pub fn chars_to_range(
    rope: &Rope,
    chars: std::ops::Range<usize>,
    encoding: PositionEncoding,
) -> Range {
    Range {
        start: char_to_position(rope, chars.start, encoding),
        end: char_to_position(rope, chars.end, encoding),
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PositionEncoding::{Utf8, Utf16, Utf32};

    /// `text`, a position, and the char index it must map to in each encoding.
    #[track_caller]
    fn check(text: &str, (line, character): (u32, u32), expected: [usize; 3]) {
        let rope = Rope::from_str(text);
        for (encoding, expected) in [Utf8, Utf16, Utf32].into_iter().zip(expected) {
            let got = position_to_char(&rope, Position::new(line, character), encoding);
            assert_eq!(
                got, expected,
                "{text:?} ({line}, {character}) in {encoding:?}"
            );
        }
    }

    #[test]
    fn positions_to_chars() {
        check("", (0, 0), [0, 0, 0]);
        check("", (u32::MAX, u32::MAX), [0, 0, 0]);
        check("\n\n", (3, 0), [2, 2, 2]);
        check("\n\n", (2, 0), [2, 2, 2]);
        check("abc", (0, 99), [3, 3, 3]);
        check("abc\ndef", (0, 99), [3, 3, 3]);
        check("abc\ndef", (1, 1), [5, 5, 5]);
        // CRLF: the end of line 0 is before the \r, whatever the character asks for.
        check("ab\r\ncd", (0, 3), [2, 2, 2]);
        check("ab\r\ncd", (1, 0), [4, 4, 4]);
        // A lone \r ends a line too.
        check("ab\rcd", (1, 1), [4, 4, 4]);
        check("ab\rcd", (0, 9), [2, 2, 2]);
        // é is 2 UTF-8 bytes, 1 UTF-16 unit, 1 scalar.
        check("é!", (0, 1), [0, 1, 1]);
        check("é!", (0, 2), [1, 2, 2]);
        // 😀 is 4 UTF-8 bytes, 2 UTF-16 units (a surrogate pair), 1 scalar.
        check("😀x", (0, 1), [0, 0, 1]);
        check("😀x", (0, 2), [0, 1, 2]);
        check("😀x", (0, 4), [1, 2, 2]);
        check("😀x", (0, 5), [2, 2, 2]);
        // U+2028 is not a line terminator in LSP.
        check("a\u{2028}b", (0, 2), [1, 2, 2]);
        check("a\u{2028}b\nc", (1, 0), [4, 4, 4]);
        // Past the last line: end of document, even when the last line is empty.
        check("a\n", (1, 5), [2, 2, 2]);
        check("a\n", (7, 0), [2, 2, 2]);
    }

    #[test]
    fn chars_to_positions() {
        let rope = Rope::from_str("a😀\r\nb");
        assert_eq!(char_to_position(&rope, 2, Utf16), Position::new(0, 3));
        assert_eq!(char_to_position(&rope, 2, Utf8), Position::new(0, 5));
        assert_eq!(char_to_position(&rope, 2, Utf32), Position::new(0, 2));
        // Between \r and \n: end of line 0's content.
        assert_eq!(char_to_position(&rope, 3, Utf16), Position::new(0, 3));
        assert_eq!(char_to_position(&rope, 4, Utf16), Position::new(1, 0));
        assert_eq!(char_to_position(&rope, 99, Utf16), Position::new(1, 1));
    }

    /// Every char boundary of a varied sample survives the round trip in every encoding.
    #[test]
    fn round_trip_every_char() {
        let text = "fn main() {\r\n    let 😀 = \"é\";\r\r\n\tß\u{2028}中文\n\n😀😀\r";
        let rope = Rope::from_str(text);
        for encoding in PositionEncoding::ALL {
            for char_idx in 0..=rope.len_chars() {
                let is_mid_crlf = char_idx > 0
                    && char_idx < rope.len_chars()
                    && rope.char(char_idx - 1) == '\r'
                    && rope.char(char_idx) == '\n';
                if is_mid_crlf {
                    continue;
                }
                let position = char_to_position(&rope, char_idx, encoding);
                assert_eq!(
                    position_to_char(&rope, position, encoding),
                    char_idx,
                    "char {char_idx} via {position:?} in {encoding:?}"
                );
            }
        }
    }

    #[test]
    fn negotiation_prefers_utf8_then_utf16() {
        assert_eq!(PositionEncoding::negotiate(["utf-16", "utf-8"]), Utf8);
        assert_eq!(PositionEncoding::negotiate(["utf-32", "utf-16"]), Utf16);
        assert_eq!(PositionEncoding::negotiate(["utf-32"]), Utf16);
        assert_eq!(PositionEncoding::negotiate([]), Utf16);
        assert_eq!(PositionEncoding::negotiate(["latin-1"]), Utf16);
    }
}
