//! A deliberately naive model of LSP text positions over a `String`, independent of the
//! server's rope code: the client side of the harness edits its documents with it, and the
//! property tests check the server against it.

/// The unit of `character` in a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
    Utf32,
}

impl Encoding {
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "utf-8" => Some(Self::Utf8),
            "utf-16" => Some(Self::Utf16),
            "utf-32" => Some(Self::Utf32),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf16 => "utf-16",
            Self::Utf32 => "utf-32",
        }
    }

    fn units(self, c: char) -> usize {
        match self {
            Self::Utf8 => c.len_utf8(),
            Self::Utf16 => c.len_utf16(),
            Self::Utf32 => 1,
        }
    }
}

/// (start byte, end byte of the content before the terminator) for every line. Lines end at
/// `\r\n`, `\r` or `\n`, and nowhere else.
pub fn lines(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                lines.push((start, i));
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => {
                lines.push((start, i));
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    lines.push((start, bytes.len()));
    lines
}

/// The byte offset of (`line`, `character`): past the end of a line means its end, past the last
/// line means the end of the text, inside a character rounds down.
pub fn byte_offset(text: &str, line: u32, character: u32, encoding: Encoding) -> usize {
    let lines = lines(text);
    let Some(&(start, end)) = lines.get(line as usize) else {
        return text.len();
    };
    let mut offset = start;
    let mut seen = 0;
    for c in text[start..end].chars() {
        seen += encoding.units(c);
        if seen > character as usize {
            break;
        }
        offset += c.len_utf8();
    }
    offset
}

/// The position of a byte offset (which must be a char boundary).
pub fn position(text: &str, offset: usize, encoding: Encoding) -> (u32, u32) {
    let offset = offset.min(text.len());
    let lines = lines(text);
    let line = lines
        .iter()
        .rposition(|&(start, _)| start <= offset)
        .unwrap_or(0);
    let (start, end) = lines[line];
    let upto = offset.clamp(start, end);
    let character: usize = text[start..upto].chars().map(|c| encoding.units(c)).sum();
    (line as u32, character as u32)
}

/// Replaces the range `start`..`end` (each `(line, character)`) with `new_text`; a reversed range
/// is reordered.
pub fn replace(
    text: &mut String,
    start: (u32, u32),
    end: (u32, u32),
    new_text: &str,
    encoding: Encoding,
) {
    let a = byte_offset(text, start.0, start.1, encoding);
    let b = byte_offset(text, end.0, end.1, encoding);
    text.replace_range(a.min(b)..a.max(b), new_text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_positions_agree() {
        let text = "a😀\r\nb\rc\n";
        assert_eq!(byte_offset(text, 0, 3, Encoding::Utf16), 5);
        assert_eq!(byte_offset(text, 0, 2, Encoding::Utf16), 1);
        assert_eq!(byte_offset(text, 1, 9, Encoding::Utf8), 8);
        assert_eq!(byte_offset(text, 9, 0, Encoding::Utf8), text.len());
        assert_eq!(position(text, 5, Encoding::Utf16), (0, 3));
        assert_eq!(position(text, 7, Encoding::Utf16), (1, 0));
        assert_eq!(position(text, text.len(), Encoding::Utf32), (3, 0));
    }
}
