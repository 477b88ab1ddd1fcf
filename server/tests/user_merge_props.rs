//! Property test: merging the agents' result onto the user's text follows its rule. Each side's
//! changes are generated as hunks of a base (a run of base lines replaced, or an insertion
//! between two lines, separated from the same side's other hunks by an unchanged line); the
//! merge conflicts exactly when two hunks of different sides share a base line, insert at the
//! same boundary with different text, or both change lines and meet at a boundary, and
//! otherwise holds every change of both sides, in order.

use pitcrew::git::merge::TextMerge;
use pitcrew::git::user_merge::merge_onto_user;
use proptest::prelude::*;

const BASE_LINES: usize = 12;

/// A hunk as generated: base lines `start..end` replaced by `lines` new lines.
#[derive(Debug, Clone)]
struct Hunk {
    start: usize,
    end: usize,
    lines: usize,
}

/// Hunks of one side: sorted, each separated from the next by at least one unchanged line, and
/// each changing something (an insertion inserts at least one line).
fn side() -> impl Strategy<Value = Vec<Hunk>> {
    prop::collection::vec((0..=BASE_LINES, 0usize..3, 0usize..3), 0..5).prop_map(|raw| {
        let mut hunks: Vec<Hunk> = Vec::new();
        let mut candidates: Vec<(usize, usize, usize)> = raw;
        candidates.sort();
        for (start, len, lines) in candidates {
            let end = (start + len).min(BASE_LINES);
            let lines = if start == end { lines.max(1) } else { lines };
            let separated = hunks.last().is_none_or(|last| start > last.end);
            if separated {
                hunks.push(Hunk { start, end, lines });
            }
        }
        hunks
    })
}

fn base() -> Vec<String> {
    (0..BASE_LINES).map(|i| format!("base {i}\n")).collect()
}

/// The side's text, with new lines unique to the side and hunk (so no diff can align them
/// otherwise than as generated).
fn text_of(side: &str, hunks: &[Hunk]) -> String {
    let base = base();
    let mut text = String::new();
    let mut at = 0;
    for (h, hunk) in hunks.iter().enumerate() {
        text.push_str(&base[at..hunk.start].concat());
        for line in 0..hunk.lines {
            text.push_str(&format!("{side} {h}.{line}\n"));
        }
        at = hunk.end;
    }
    text.push_str(&base[at..].concat());
    text
}

/// Both sides deleting the same lines is the same change, not a conflict.
fn same_deletion(o: &Hunk, t: &Hunk) -> bool {
    (o.start, o.end, o.lines) == (t.start, t.end, 0) && t.lines == 0
}

fn conflicts(ours: &[Hunk], theirs: &[Hunk]) -> bool {
    ours.iter().any(|o| {
        theirs.iter().any(|t| {
            if same_deletion(o, t) {
                return false;
            }
            let share_a_line = o.start < t.end && t.start < o.end;
            let same_boundary = o.start == o.end && t.start == t.end && o.start == t.start;
            let neighbours =
                o.start < o.end && t.start < t.end && (o.end == t.start || t.end == o.start);
            share_a_line || same_boundary || neighbours
        })
    })
}

/// Both sides' changes applied to the base, an insertion before a replacement at one boundary.
fn expected(ours: &[Hunk], theirs: &[Hunk]) -> String {
    let base = base();
    let mut all: Vec<(&str, usize, &Hunk)> = ours
        .iter()
        .enumerate()
        .map(|(i, h)| ("ours", i, h))
        .chain(
            theirs
                .iter()
                .enumerate()
                .filter(|(_, t)| !ours.iter().any(|o| same_deletion(o, t)))
                .map(|(i, h)| ("theirs", i, h)),
        )
        .collect();
    all.sort_by_key(|(_, _, h)| (h.start, h.start != h.end));
    let mut text = String::new();
    let mut at = 0;
    for (side, index, hunk) in all {
        text.push_str(&base[at..hunk.start].concat());
        for line in 0..hunk.lines {
            text.push_str(&format!("{side} {index}.{line}\n"));
        }
        at = at.max(hunk.end);
    }
    text.push_str(&base[at..].concat());
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn merges_follow_the_rule(ours in side(), theirs in side()) {
        let base = base().concat();
        let our_text = text_of("ours", &ours);
        let their_text = text_of("theirs", &theirs);
        let merged = merge_onto_user(&base, &our_text, &their_text);
        if conflicts(&ours, &theirs) {
            let TextMerge::Conflicts(regions) = merged else {
                panic!("expected a conflict for {ours:?} / {theirs:?}, got {merged:?}");
            };
            // Every region is where it says in the user's text.
            let lines: Vec<&str> = our_text.split_inclusive('\n').collect();
            for region in regions {
                let end = region.ours_start_line + region.ours_line_count;
                prop_assert!(end <= lines.len());
                prop_assert_eq!(lines[region.ours_start_line..end].concat(), region.ours);
            }
        } else {
            prop_assert_eq!(merged, TextMerge::Clean(expected(&ours, &theirs)));
        }
    }

    /// On any texts (repeated lines, no final newline): no panic, and one side unchanged gives
    /// the other side.
    #[test]
    fn any_texts_merge_without_surprises(
        base in prop::collection::vec(prop::sample::select(vec!["a\n", "b\n", "\n", "c"]), 0..10),
        ours in prop::collection::vec(prop::sample::select(vec!["a\n", "b\n", "\n", "x\n"]), 0..10),
        theirs in prop::collection::vec(prop::sample::select(vec!["a\n", "b\n", "y\n", "c"]), 0..10),
    ) {
        let (base, ours, theirs) = (base.concat(), ours.concat(), theirs.concat());
        // Merging is symmetric in which side conflicts.
        let forward = merge_onto_user(&base, &ours, &theirs);
        let backward = merge_onto_user(&base, &theirs, &ours);
        prop_assert_eq!(
            matches!(forward, TextMerge::Clean(_)),
            matches!(backward, TextMerge::Clean(_))
        );
        if let TextMerge::Clean(merged) = forward {
            // A clean merge holds each side's lines, each at least as often as that side has
            // more of them than the base.
            for line in ours.split_inclusive('\n').chain(theirs.split_inclusive('\n')) {
                // A last line without its newline gets one when something follows it now.
                let count = |t: &str| {
                    t.split_inclusive('\n')
                        .filter(|l| l.trim_end_matches('\n') == line.trim_end_matches('\n'))
                        .count()
                };
                let wanted = count(&ours).saturating_sub(count(&base))
                    .max(count(&theirs).saturating_sub(count(&base)));
                prop_assert!(count(&merged) >= wanted, "{line:?} in {merged:?}");
            }
        }
    }
}
