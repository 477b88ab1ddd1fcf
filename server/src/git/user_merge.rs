//! Merging the agents' result onto the user's newer text (the editor's rebase and
//! `pitcrew apply`), by a rule stated in terms a user can check:
//!
//! Each side's changes are hunks: a run of lines of the snapshot (`base`) replaced by other
//! lines, or an insertion between two lines. Two hunks of different sides conflict when they
//! share a line of the base, when both insert at the same boundary (with different text), or
//! when both change lines and meet at a boundary. An insertion at the boundary of the other
//! side's changed lines does not conflict: the order of the lines is unambiguous. So a line the
//! user typed directly below (or above) lines the agents rewrote merges cleanly, where git's
//! merge (which treats touching hunks as conflicting) would refuse. Branch merges inside the team keep git's behaviour
//! (`merge::merge_text`).

use similar::DiffOp;
use similar::algorithms::{Capture, myers};

use super::merge::{ConflictRegion, TextMerge};

/// One side's change to the base: lines `start..end` of the base replaced by `lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk<'a> {
    start: usize,
    end: usize,
    lines: Vec<&'a str>,
}

impl Hunk<'_> {
    fn is_insertion(&self) -> bool {
        self.start == self.end
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Theirs,
}

/// Merges `theirs` (the agents' result) onto `ours` (the user's text), both descended from
/// `base`, by the rule above. Conflict regions are placed in `ours`.
pub fn merge_onto_user(base: &str, ours: &str, theirs: &str) -> TextMerge {
    if ours == base || ours == theirs {
        return TextMerge::Clean(theirs.to_owned());
    }
    if theirs == base {
        return TextMerge::Clean(ours.to_owned());
    }
    // A last line without its newline is the same line with it: a line appended after it is
    // an insertion, not a change of that line. The texts are merged with their final newlines
    // made whole, and the result ends as the side that changed the ending has it.
    let ends = |text: &str| text.is_empty() || text.ends_with('\n');
    let whole = |text: &str| -> String {
        if ends(text) {
            text.to_owned()
        } else {
            format!("{text}\n")
        }
    };
    let (ours_whole, theirs_whole) = (whole(ours), whole(theirs));
    match merge_whole_lines(&whole(base), &ours_whole, &theirs_whole) {
        TextMerge::Clean(mut merged) => {
            // The merged text's last line is ours, theirs, or both: its ending is theirs.
            let last = |text: &str| text.split_inclusive('\n').next_back().map(str::to_owned);
            let (from_ours, from_theirs) = (
                last(&ours_whole) == last(&merged),
                last(&theirs_whole) == last(&merged),
            );
            let final_newline = match (from_ours, from_theirs) {
                (true, false) => ends(ours),
                (false, true) => ends(theirs),
                (true, true) if ends(ours) != ends(base) => ends(ours),
                (true, true) => ends(theirs),
                (false, false) => true,
            };
            if !final_newline && merged.ends_with('\n') {
                merged.pop();
            }
            TextMerge::Clean(merged)
        }
        conflicts => conflicts,
    }
}

/// `merge_onto_user` on texts whose every line ends with a newline.
fn merge_whole_lines(base: &str, ours: &str, theirs: &str) -> TextMerge {
    let base_lines = lines(base);
    let our_lines = lines(ours);
    let their_lines = lines(theirs);
    let mut hunks: Vec<(Side, Hunk<'_>)> = hunks(&base_lines, &our_lines)
        .into_iter()
        .map(|h| (Side::Ours, h))
        .chain(
            hunks(&base_lines, &their_lines)
                .into_iter()
                .map(|h| (Side::Theirs, h)),
        )
        .collect();
    // By position; at one position an insertion comes before a hunk that replaces lines, since
    // it goes between the line before and those lines.
    hunks.sort_by_key(|(_, h)| (h.start, !h.is_insertion()));

    let mut merged = Merged {
        text: String::with_capacity(ours.len().max(theirs.len())),
        newline: if [base, ours, theirs].iter().any(|t| t.contains("\r\n")) {
            "\r\n"
        } else {
            "\n"
        },
    };
    let mut conflicts = Vec::new();
    // Where we are in the base, and how many lines ours has gained or lost before here.
    let mut at = 0;
    let mut ours_shift: isize = 0;
    let mut index = 0;
    while index < hunks.len() {
        // A cluster: hunks that conflict with the first or with each other, transitively.
        let mut cluster = vec![index];
        let (mut start, mut end) = (hunks[index].1.start, hunks[index].1.end);
        let mut next = index + 1;
        while next < hunks.len() && touches(start, end, &hunks[next].1) {
            cluster.push(next);
            start = start.min(hunks[next].1.start);
            end = end.max(hunks[next].1.end);
            next += 1;
        }
        for line in &base_lines[at..start] {
            merged.push(line);
        }
        let side_text = |side: Side| -> Option<Vec<&str>> {
            let mine: Vec<&Hunk<'_>> = cluster
                .iter()
                .map(|&i| &hunks[i])
                .filter(|(s, _)| *s == side)
                .map(|(_, h)| h)
                .collect();
            if mine.is_empty() {
                return None;
            }
            let mut text = Vec::new();
            let mut position = start;
            for hunk in mine {
                text.extend_from_slice(&base_lines[position..hunk.start]);
                text.extend_from_slice(&hunk.lines);
                position = hunk.end;
            }
            text.extend_from_slice(&base_lines[position..end]);
            Some(text)
        };
        let (our_text, their_text) = (side_text(Side::Ours), side_text(Side::Theirs));
        let ours_start = (start as isize + ours_shift) as usize;
        match (our_text, their_text) {
            (Some(o), Some(t)) if o != t => {
                conflicts.push(ConflictRegion {
                    ours_start_line: ours_start,
                    ours_line_count: o.len(),
                    ours: o.concat(),
                    theirs: t.concat(),
                });
                merged.push(&o.concat());
                ours_shift += o.len() as isize - (end - start) as isize;
            }
            (Some(o), _) => {
                merged.push(&o.concat());
                ours_shift += o.len() as isize - (end - start) as isize;
            }
            (None, Some(t)) => merged.push(&t.concat()),
            (None, None) => {}
        }
        at = end;
        index = next;
    }
    for line in &base_lines[at..] {
        merged.push(line);
    }
    if conflicts.is_empty() {
        TextMerge::Clean(merged.text)
    } else {
        TextMerge::Conflicts(conflicts)
    }
}

/// The merged text being written.
struct Merged {
    text: String,
    /// The line terminator of the texts, for a last line that is no longer last.
    newline: &'static str,
}

impl Merged {
    /// Appends lines; a line without its terminator (a file's last) that something now
    /// follows gets one.
    fn push(&mut self, lines: &str) {
        if lines.is_empty() {
            return;
        }
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push_str(self.newline);
        }
        self.text.push_str(lines);
    }
}

/// Whether a hunk conflicts with a cluster covering base lines `start..end`: they share a line,
/// both insert at the same boundary, or both change lines and meet at a boundary (the user
/// renames `x` on one line, the agents rewrite the next one that uses it: git calls that a
/// conflict, and so do we). Only an insertion next to changed lines merges.
fn touches(start: usize, end: usize, hunk: &Hunk<'_>) -> bool {
    let shares_a_line = hunk.start < end && start < hunk.end;
    let same_insertion_point = start == end && hunk.is_insertion() && hunk.start == start;
    let adjacent_changes =
        start < end && !hunk.is_insertion() && (hunk.start == end || hunk.end == start);
    shares_a_line || same_insertion_point || adjacent_changes
}

/// Lines with their terminators (the last may have none).
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The hunks that turn `base` into `new`: maximal runs of changed lines.
fn hunks<'a>(base: &[&'a str], new: &[&'a str]) -> Vec<Hunk<'a>> {
    // A deadline bounds the work on huge, very different files; past it the diff is less
    // minimal (more lines in hunks, so perhaps a conflict), never wrong.
    let deadline = std::time::Instant::now().checked_add(std::time::Duration::from_secs(5));
    // Plain Myers, captured as it runs: similar's `capture_diff*` also "compacts" the ops,
    // and in 2.7 that can yield ops out of order (`b b a` → `a y a a a` gives an insertion
    // before the deletion it follows), which would misplace lines here.
    let mut capture = Capture::new();
    let Ok(()) = myers::diff_deadline(
        &mut capture,
        base,
        0..base.len(),
        new,
        0..new.len(),
        deadline,
    );
    let ops = capture.into_ops();
    // Positions are counted here rather than read from the ops, whose `old_index` on an
    // insertion does not always say where in the base it goes.
    let mut hunks: Vec<Hunk<'a>> = Vec::new();
    let mut open: Option<Hunk<'a>> = None;
    let mut at = 0;
    for op in ops {
        let (old_len, new_range) = match op {
            DiffOp::Equal { len, .. } => {
                hunks.extend(open.take());
                at += len;
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
        let hunk = open.get_or_insert(Hunk {
            start: at,
            end: at,
            lines: Vec::new(),
        });
        at += old_len;
        hunk.end = at;
        hunk.lines.extend_from_slice(&new[new_range]);
    }
    hunks.extend(open);
    hunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn clean(base: &str, ours: &str, theirs: &str) -> String {
        match merge_onto_user(base, ours, theirs) {
            TextMerge::Clean(text) => text,
            TextMerge::Conflicts(c) => panic!("unexpected conflicts {c:?}"),
        }
    }

    #[track_caller]
    fn conflicts(base: &str, ours: &str, theirs: &str) -> Vec<ConflictRegion> {
        match merge_onto_user(base, ours, theirs) {
            TextMerge::Conflicts(c) => c,
            TextMerge::Clean(text) => panic!("expected a conflict, merged to {text:?}"),
        }
    }

    const FUNCTION: &str = "fn a() {\n    todo\n}\n\nfn b() {}\n";

    #[test]
    fn a_line_typed_right_below_rewritten_lines_merges() {
        let agents = "fn a() {\n    done()\n}\n\nfn b() {}\n";
        let user = "fn a() {\n    todo\n}\n// the user's note\n\nfn b() {}\n";
        assert_eq!(
            clean(FUNCTION, user, agents),
            "fn a() {\n    done()\n}\n// the user's note\n\nfn b() {}\n"
        );
        // Directly below the rewritten line itself, and directly above it.
        let below = "fn a() {\n    todo\n    // below\n}\n\nfn b() {}\n";
        assert_eq!(
            clean(FUNCTION, below, agents),
            "fn a() {\n    done()\n    // below\n}\n\nfn b() {}\n"
        );
        let above = "fn a() {\n    // above\n    todo\n}\n\nfn b() {}\n";
        assert_eq!(
            clean(FUNCTION, above, agents),
            "fn a() {\n    // above\n    done()\n}\n\nfn b() {}\n"
        );
        // And the other way round: the agents insert next to a line the user changed.
        assert_eq!(
            clean(FUNCTION, agents, below),
            "fn a() {\n    done()\n    // below\n}\n\nfn b() {}\n"
        );
    }

    #[test]
    fn the_same_line_or_the_same_boundary_still_conflicts() {
        let user = "fn a() {\n    mine()\n}\n\nfn b() {}\n";
        let agents = "fn a() {\n    theirs()\n}\n\nfn b() {}\n";
        let regions = conflicts(FUNCTION, user, agents);
        assert_eq!(
            regions,
            [ConflictRegion {
                ours_start_line: 1,
                ours_line_count: 1,
                ours: "    mine()\n".into(),
                theirs: "    theirs()\n".into(),
            }]
        );
        let user = "fn a() {\n    todo\n    // mine\n}\n\nfn b() {}\n";
        let agents = "fn a() {\n    todo\n    // theirs\n}\n\nfn b() {}\n";
        assert_eq!(conflicts(FUNCTION, user, agents).len(), 1);
        // An insertion inside lines the other side replaced.
        let base = "1\n2\n3\n";
        assert_eq!(conflicts(base, "1\nX\n", "1\n2\nY\n3\n").len(), 1);
        // At the boundary of the replaced lines, it is not.
        assert_eq!(clean(base, "1\nX\n3\n", "1\n2\nY\n3\n"), "1\nX\nY\n3\n");
        assert_eq!(conflicts(base, "1\n2\nY\n3\n", "1\nZ\nW\n").len(), 1);
    }

    #[test]
    fn changes_on_neighbouring_lines_conflict() {
        let base = "let x = 1;\nuse(x);\n";
        assert_eq!(
            conflicts(base, "let y = 1;\nuse(x);\n", "let x = 1;\nuse(x, 2);\n").len(),
            1
        );
        // A deletion next to a change, too.
        assert_eq!(conflicts("a\nb\nc\n", "a\nc\n", "a\nb\nC\n").len(), 1);
    }

    #[test]
    fn identical_changes_and_files_without_final_newline() {
        let base = "a\nb\nc\n";
        assert_eq!(clean(base, "a\nB\nc\n", "a\nB\nc\nd\n"), "a\nB\nc\nd\n");
        assert_eq!(clean("a\nb", "a\nb\nc", "A\nb"), "A\nb\nc");
        // The agents' last line lost its newline; the user's line after it keeps its own.
        assert_eq!(clean("b\n", "b\na\n", "c"), "c\na\n");
        assert_eq!(
            clean("a\r\nb\r\n", "a\r\nb\r\nc\r\n", "A\r\nb\r\n"),
            "A\r\nb\r\nc\r\n"
        );
        assert_eq!(clean("", "mine\n", ""), "mine\n");
    }

    #[test]
    fn hunks_come_in_order() {
        // similar's compaction once turned this into an insertion before the deletion.
        let base = lines("b\nb\na\n");
        let new = lines("a\ny\na\na\na\n");
        let found = hunks(&base, &new);
        assert!(found.windows(2).all(|w| w[0].end < w[1].start), "{found:?}");
        assert_eq!(
            merge_onto_user("b\nb\na\n", "", "a\ny\na\na\na\n"),
            TextMerge::Conflicts(vec![ConflictRegion {
                ours_start_line: 0,
                ours_line_count: 0,
                ours: String::new(),
                theirs: "a\ny\na\na\na\n".into(),
            }])
        );
    }

    #[test]
    fn conflict_regions_are_placed_in_the_users_text() {
        let base = "1\n2\n3\n4\n5\n";
        let ours = "0\n0\n1\n2\nmine\n4\n5\n";
        let theirs = "1\n2\ntheirs\n4\n5\n";
        let regions = conflicts(base, ours, theirs);
        assert_eq!(regions[0].ours_start_line, 4);
        let lines: Vec<&str> = ours.split_inclusive('\n').collect();
        assert_eq!(lines[4..5].concat(), regions[0].ours);
    }
}
