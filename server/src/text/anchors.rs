//! Anchors: ranges of a document that follow the user's edits.
//!
//! A finding or a line a pitcrew result wrote is anchored to a char range. An edit entirely
//! before the range moves it; an edit entirely after leaves it; an edit that touches it means
//! the text it pointed at was rewritten, and the anchor is gone.

use super::AppliedChange;

/// A char range `start..end` of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor {
    pub start: usize,
    pub end: usize,
}

impl Anchor {
    pub fn new(start: usize, end: usize) -> Self {
        Self {
            start: start.min(end),
            end: start.max(end),
        }
    }

    /// The anchor after `change`, or `None` when the change rewrote its text.
    pub fn shift(self, change: &AppliedChange) -> Option<Anchor> {
        let (removed_start, removed_end) = (change.removed.start, change.removed.end);
        if removed_end <= self.start {
            // Entirely before (an insertion right at the start counts as before).
            let delta = change.inserted_chars as isize - (removed_end - removed_start) as isize;
            let moved = |at: usize| (at as isize + delta).max(0) as usize;
            return Some(Anchor {
                start: moved(self.start),
                end: moved(self.end),
            });
        }
        if removed_start >= self.end {
            return Some(self);
        }
        None
    }

    /// The anchor after a sequence of changes, applied in order.
    pub fn shift_all(self, changes: &[AppliedChange]) -> Option<Anchor> {
        changes
            .iter()
            .try_fold(self, |anchor, change| anchor.shift(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(start: usize, end: usize, inserted: usize) -> AppliedChange {
        AppliedChange {
            removed: start..end,
            inserted_chars: inserted,
        }
    }

    #[test]
    fn edits_before_move_edits_after_leave_edits_inside_clear() {
        let anchor = Anchor::new(10, 20);
        // Three chars typed before it.
        assert_eq!(anchor.shift(&change(2, 2, 3)), Some(Anchor::new(13, 23)));
        // A line deleted before it.
        assert_eq!(anchor.shift(&change(0, 5, 0)), Some(Anchor::new(5, 15)));
        // Typed right at its start: before.
        assert_eq!(anchor.shift(&change(10, 10, 1)), Some(Anchor::new(11, 21)));
        // After it, or right at its end: untouched.
        assert_eq!(anchor.shift(&change(25, 30, 2)), Some(anchor));
        assert_eq!(anchor.shift(&change(20, 20, 4)), Some(anchor));
        // Inside it, or across its edge: its text is rewritten.
        assert_eq!(anchor.shift(&change(15, 15, 1)), None);
        assert_eq!(anchor.shift(&change(5, 12, 0)), None);
        assert_eq!(anchor.shift(&change(19, 22, 1)), None);
        assert_eq!(
            anchor.shift_all(&[change(0, 0, 2), change(0, 1, 0)]),
            Some(Anchor::new(11, 21))
        );
    }
}
