//! The smallest line edits that turn one text into another, for workspace edits that touch
//! only what changed (so undo, cursors and the user's other edits are disturbed as little as
//! possible).

use std::ops::Range;

use similar::{Algorithm, DiffOp, TextDiff};

/// Replacements of char ranges of `old` (ascending, not overlapping) that produce `new`.
pub fn line_edits(old: &str, new: &str) -> Vec<(Range<usize>, String)> {
    if old == new {
        return Vec::new();
    }
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .diff_lines(old, new);
    let old_lines: Vec<&str> = diff.old_slices().to_vec();
    let new_lines: Vec<&str> = diff.new_slices().to_vec();
    // Char offset where each old line starts.
    let mut starts = Vec::with_capacity(old_lines.len() + 1);
    let mut offset = 0;
    for line in &old_lines {
        starts.push(offset);
        offset += line.chars().count();
    }
    starts.push(offset);

    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    // Where in the old lines the walk is. (An insertion's own `old_index` is not always that:
    // after an equal run it can name the run's start.)
    let mut old_at = 0;
    for op in diff.ops() {
        let (old_len, new_range) = match *op {
            DiffOp::Equal { len, .. } => {
                old_at += len;
                continue;
            }
            DiffOp::Delete { old_len, .. } => (old_len, 0..0),
            DiffOp::Insert {
                new_index, new_len, ..
            } => (0, new_index..new_index + new_len),
            DiffOp::Replace {
                old_len,
                new_index,
                new_len,
                ..
            } => (old_len, new_index..new_index + new_len),
        };
        let chars = starts[old_at]..starts[old_at + old_len];
        old_at += old_len;
        let text: String = new_lines[new_range].concat();
        // Adjacent operations merge into one edit.
        match edits.last_mut() {
            Some((last, last_text)) if last.end == chars.start => {
                last.end = chars.end;
                last_text.push_str(&text);
            }
            _ => edits.push((chars, text)),
        }
    }
    edits
}

/// Where zero-based line `line` of `from` is in `to`: exactly, when the line is unchanged
/// between them; otherwise the start of the region that replaced it.
pub fn map_line(from: &str, to: &str, line: usize) -> usize {
    match locate_line(from, to, line) {
        Located::Same(at) | Located::Replaced(at) => at,
    }
}

/// Where zero-based line `line` of `from` is in `to`, only when `to` still has it unchanged.
pub fn map_line_exact(from: &str, to: &str, line: usize) -> Option<usize> {
    match locate_line(from, to, line) {
        Located::Same(at) => Some(at),
        Located::Replaced(_) => None,
    }
}

enum Located {
    /// The line is unchanged, at this line.
    Same(usize),
    /// The line was changed or deleted; what replaced it starts here.
    Replaced(usize),
}

fn locate_line(from: &str, to: &str, line: usize) -> Located {
    if from == to {
        return Located::Same(line);
    }
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .diff_lines(from, to);
    let (mut old_at, mut new_at) = (0, 0);
    for op in diff.ops() {
        let (old_len, new_len) = match *op {
            DiffOp::Equal { len, .. } => (len, len),
            DiffOp::Delete { old_len, .. } => (old_len, 0),
            DiffOp::Insert { new_len, .. } => (0, new_len),
            DiffOp::Replace {
                old_len, new_len, ..
            } => (old_len, new_len),
        };
        if line < old_at + old_len {
            return match op {
                DiffOp::Equal { .. } => Located::Same(new_at + (line - old_at)),
                _ => Located::Replaced(new_at),
            };
        }
        old_at += old_len;
        new_at += new_len;
    }
    // Past the end of `from`: past the end of `to` by as much.
    Located::Replaced(new_at + line.saturating_sub(old_at))
}

/// Applies edits from `line_edits` to `old`.
pub fn apply(old: &str, edits: &[(Range<usize>, String)]) -> String {
    let chars: Vec<char> = old.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    for (range, text) in edits {
        out.extend(&chars[at..range.start]);
        out.push_str(text);
        at = range.end;
    }
    out.extend(&chars[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_changed_lines_are_edited() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nB\nc\nd\ne\n";
        let edits = line_edits(old, new);
        assert_eq!(
            edits,
            vec![(2..4, "B\n".to_owned()), (8..8, "e\n".to_owned())]
        );
        assert_eq!(apply(old, &edits), new);
        assert!(line_edits(old, old).is_empty());
    }

    #[test]
    fn lines_are_found_across_versions() {
        let from = "a\nb\nc\nd\n";
        let to = "new\na\nb\nC\nd\n";
        assert_eq!(map_line(from, to, 0), 1);
        assert_eq!(map_line(from, to, 1), 2);
        assert_eq!(
            map_line(from, to, 2),
            3,
            "a changed line: where its replacement is"
        );
        assert_eq!(map_line(from, to, 3), 4);
        assert_eq!(map_line(from, from, 2), 2);
        assert_eq!(map_line_exact(from, to, 0), Some(1));
        assert_eq!(map_line_exact(from, to, 3), Some(4));
        assert_eq!(map_line_exact(from, to, 2), None, "a changed line is gone");
    }

    proptest! {
        #[test]
        fn edits_always_reproduce_the_new_text(
            old in prop::collection::vec(prop::sample::select(vec!["a\n", "b\n", "😀\n", "c", "\r\n", ""]), 0..12),
            new in prop::collection::vec(prop::sample::select(vec!["a\n", "b\n", "😀\n", "d\n", "\r\n", "e"]), 0..12),
        ) {
            let (old, new) = (old.concat(), new.concat());
            let edits = line_edits(&old, &new);
            prop_assert_eq!(apply(&old, &edits), new);
            for pair in edits.windows(2) {
                prop_assert!(pair[0].0.end <= pair[1].0.start);
            }
        }
    }
}
