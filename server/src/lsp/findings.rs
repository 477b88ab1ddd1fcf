//! Findings shown as diagnostics, and the provenance of lines pitcrew wrote, both anchored to
//! the user's buffers so they follow the text: an edit above moves them, an edit of their text
//! clears them.
//!
//! Pure bookkeeping: no I/O, no LSP round trips. The caller holds the documents lock while it
//! calls in (lock order: documents, then findings), so anchors and texts always agree.

use std::collections::{HashMap, HashSet};

use ropey::Rope;
use serde_json::json;
use tower_lsp_server::ls_types::{
    self as lsp, Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location,
    NumberOrString,
};

use crate::team::plan::{Finding, FindingSource, Severity};
use crate::text::{Anchor, AppliedChange, PositionEncoding, chars_to_range};

/// A finding placed in a document.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub finding: Finding,
    pub plan: String,
    /// The task's title, for the diagnostic's related information.
    pub title: String,
    pub uri: String,
    /// Its text in the open document; `None` when the document is closed.
    pub anchor: Option<Anchor>,
    /// Zero-based lines, used while the document is closed.
    pub line: u32,
    pub end_line: u32,
    /// The plan's readable rendering, where the related information points.
    pub plan_document: Option<lsp::Uri>,
    /// Its lines are not in the user's text (a result not applied yet): it is shown near the
    /// lines the result replaces, and edits there move it rather than drop it.
    pub floating: bool,
}

impl Tracked {
    /// The id editors use for it: unique across plans.
    pub fn key(&self) -> String {
        finding_key(&self.plan, &self.finding.id)
    }
}

/// The id of finding `id` of `plan`, as diagnostics carry it.
pub fn finding_key(plan: &str, id: &str) -> String {
    format!("{plan}/{id}")
}

/// What wrote some lines: shown on hover.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub anchor: Anchor,
    pub text: String,
}

/// What an applied edit brings with it, placed once the document shows the edit's text.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The document's text once the edit is applied.
    pub expected: String,
    /// Char ranges of that text, with what wrote them.
    pub provenance: Vec<(Anchor, String)>,
    /// Findings on that text (their anchors in it).
    pub findings: Vec<Tracked>,
}

#[derive(Debug, Default)]
pub struct FindingStore {
    /// By key.
    items: HashMap<String, Tracked>,
    dismissed: HashSet<String>,
    provenance: HashMap<String, Vec<Provenance>>,
    pending: HashMap<String, Placement>,
    /// Findings an edit rewrote away, with the document's text just before that edit: an undo
    /// then a redo brings that text back, and with it the findings. The latest few per
    /// document; the texts are rope clones, which share their nodes with the document.
    rewritten: HashMap<String, Vec<(Rope, Vec<Tracked>)>>,
}

/// How many rewritten states each document remembers.
const REWRITTEN_KEPT: usize = 4;

impl FindingStore {
    /// Replaces the findings of one task; returns the documents whose diagnostics changed.
    pub fn replace_task(
        &mut self,
        plan: &str,
        task: &str,
        findings: Vec<Tracked>,
    ) -> HashSet<String> {
        let mut touched: HashSet<String> = HashSet::new();
        self.items.retain(|_, t| {
            let drop = t.plan == plan && t.finding.task == task;
            if drop {
                touched.insert(t.uri.clone());
            }
            !drop
        });
        // Findings of an earlier review of this task do not come back with an undo.
        for (_, kept) in self.rewritten.values_mut().flatten() {
            kept.retain(|t| !(t.plan == plan && t.finding.task == task));
        }
        for tracked in findings {
            touched.insert(tracked.uri.clone());
            self.insert(tracked);
        }
        touched
    }

    fn insert(&mut self, tracked: Tracked) {
        let key = tracked.key();
        if !self.dismissed.contains(&key) {
            self.items.insert(key, tracked);
        }
    }

    /// Forgets the findings of some tasks of a plan (they ended without a result).
    pub fn remove_tasks(&mut self, plan: &str, tasks: &[String]) -> HashSet<String> {
        let gone = |t: &Tracked| t.plan == plan && tasks.contains(&t.finding.task);
        let mut touched = HashSet::new();
        self.items.retain(|_, t| {
            if gone(t) {
                touched.insert(t.uri.clone());
                return false;
            }
            true
        });
        for placement in self.pending.values_mut() {
            placement.findings.retain(|t| !gone(t));
        }
        for (_, findings) in self.rewritten.values_mut().flatten() {
            findings.retain(|t| !gone(t));
        }
        touched
    }

    /// Forgets a plan's findings (it was discarded).
    pub fn remove_plan(&mut self, plan: &str) -> HashSet<String> {
        let mut touched = HashSet::new();
        self.items.retain(|_, t| {
            let drop = t.plan == plan;
            if drop {
                touched.insert(t.uri.clone());
            }
            !drop
        });
        for placement in self.pending.values_mut() {
            placement.findings.retain(|t| t.plan != plan);
        }
        for (_, findings) in self.rewritten.values_mut().flatten() {
            findings.retain(|t| t.plan != plan);
        }
        touched
    }

    pub fn get(&self, key: &str) -> Option<&Tracked> {
        self.items.get(key)
    }

    /// The findings of `uri`.
    pub fn of_document<'a>(&'a self, uri: &'a str) -> impl Iterator<Item = &'a Tracked> + 'a {
        self.items.values().filter(move |t| t.uri == uri)
    }

    /// Hides a finding for good; returns its document, if it was shown.
    pub fn dismiss(&mut self, key: &str) -> Option<String> {
        self.dismissed.insert(key.to_owned());
        self.items.remove(key).map(|t| t.uri)
    }

    /// Hides these findings without telling anyone (dismissals remembered from earlier).
    pub fn restore_dismissed(&mut self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            self.items.remove(&key);
            self.dismissed.insert(key);
        }
    }

    /// Whether any finding is anchored in `uri` (the caller then keeps the text from before an
    /// edit for [`FindingStore::shift`]).
    pub fn has_findings_in(&self, uri: &str) -> bool {
        self.items
            .values()
            .any(|t| t.uri == uri && t.anchor.is_some())
    }

    /// Follows the user's edits; returns whether any diagnostic moved, appeared or was cleared.
    /// `before` is the text before the edits, when the caller kept it: findings the edits
    /// rewrite are remembered with it, and come back if the text does (undo, then redo).
    pub fn shift(
        &mut self,
        uri: &str,
        changes: &[AppliedChange],
        text: &Rope,
        before: Option<&Rope>,
    ) -> bool {
        let mut changed = false;
        let mut gone = Vec::new();
        self.items.retain(|_, t| {
            if t.uri != uri {
                return true;
            }
            let Some(anchor) = t.anchor else { return true };
            match anchor.shift_all(changes) {
                Some(moved) => {
                    changed |= moved != anchor;
                    t.anchor = Some(moved);
                    true
                }
                // Not the user's code: the finding is about the result, still to come.
                None if t.floating => {
                    let last = text.len_lines().saturating_sub(1) as u32;
                    let line = t.line.min(last);
                    t.anchor = Some(line_anchor(text, line, t.end_line.clamp(line, last)));
                    changed = true;
                    true
                }
                None => {
                    changed = true;
                    gone.push(t.clone());
                    false // its text was rewritten
                }
            }
        });
        if let Some(before) = before
            && !gone.is_empty()
        {
            let kept = self.rewritten.entry(uri.to_owned()).or_default();
            kept.push((before.clone(), gone));
            if kept.len() > REWRITTEN_KEPT {
                kept.remove(0);
            }
        }
        // The text is back as it was before an edit rewrote findings away: they come back.
        if let Some(kept) = self.rewritten.get_mut(uri) {
            kept.retain(|(_, findings)| !findings.is_empty());
        }
        if let Some(kept) = self.rewritten.get_mut(uri)
            && let Some(index) = kept
                .iter()
                .position(|(was, _)| was.len_bytes() == text.len_bytes() && was == text)
        {
            let (_, findings) = kept.remove(index);
            for tracked in findings {
                if !self.items.contains_key(&tracked.key()) {
                    changed = true;
                    self.insert(tracked);
                }
            }
        }
        if let Some(lines) = self.provenance.get_mut(uri) {
            lines.retain_mut(|p| match p.anchor.shift_all(changes) {
                Some(moved) => {
                    p.anchor = moved;
                    true
                }
                None => false,
            });
        }
        // An applied edit shows up as changes: place what it brings once the text matches.
        if self
            .pending
            .get(uri)
            .is_some_and(|pending| shows(text, &pending.expected))
            && let Some(placement) = self.pending.remove(uri)
        {
            changed |= !placement.findings.is_empty();
            self.place(uri, placement);
        }
        changed
    }

    fn place(&mut self, uri: &str, placement: Placement) {
        let lines = self.provenance.entry(uri.to_owned()).or_default();
        lines.extend(
            placement
                .provenance
                .into_iter()
                .map(|(anchor, text)| Provenance { anchor, text }),
        );
        for tracked in placement.findings {
            self.insert(tracked);
        }
    }

    /// A document opened: place its findings by line.
    pub fn on_open(&mut self, uri: &str, text: &Rope) -> bool {
        let mut any = false;
        for tracked in self.items.values_mut().filter(|t| t.uri == uri) {
            tracked.anchor = Some(line_anchor(text, tracked.line, tracked.end_line));
            any = true;
        }
        any
    }

    /// A document closed: remember its findings by line.
    pub fn on_close(&mut self, uri: &str, text: &Rope) {
        for tracked in self.items.values_mut().filter(|t| t.uri == uri) {
            if let Some(anchor) = tracked.anchor.take() {
                let start = anchor.start.min(text.len_chars());
                tracked.line = text.char_to_line(start) as u32;
                tracked.end_line = text.char_to_line(anchor.end.min(text.len_chars())) as u32;
            }
        }
        self.provenance.remove(uri);
        self.pending.remove(uri);
        self.rewritten.remove(uri);
    }

    /// Places `placement` in `uri` now if `text` already shows it or the file is not open, or
    /// when it shows it. Returns whether diagnostics changed now.
    pub fn expect(&mut self, uri: &str, placement: Placement, text: Option<&Rope>) -> bool {
        // A file that is not open takes the edit as a whole: its lines are the applied ones.
        if text.is_none_or(|text| shows(text, &placement.expected)) {
            let any = !placement.findings.is_empty();
            self.place(uri, placement);
            return any;
        }
        self.pending.insert(uri.to_owned(), placement);
        false
    }

    /// What wrote the text at char `at` of `uri`, if pitcrew did.
    pub fn provenance_at(&self, uri: &str, at: usize) -> Option<&Provenance> {
        self.provenance
            .get(uri)?
            .iter()
            .find(|p| p.anchor.start <= at && at <= p.anchor.end)
    }

    /// The diagnostics of `uri`: from anchors in `text` when open, else from lines.
    pub fn diagnostics(
        &self,
        uri: &str,
        text: Option<&Rope>,
        encoding: PositionEncoding,
    ) -> Vec<Diagnostic> {
        let mut tracked: Vec<&Tracked> = self.of_document(uri).collect();
        tracked.sort_by(|a, b| {
            let at = |t: &Tracked| t.anchor.map(|a| a.start).unwrap_or(t.line as usize);
            (at(a), &a.finding.id).cmp(&(at(b), &b.finding.id))
        });
        tracked
            .into_iter()
            .map(|t| diagnostic(t, text, encoding))
            .collect()
    }
}

/// Whether `text` is exactly `expected`.
fn shows(text: &Rope, expected: &str) -> bool {
    text.len_bytes() == expected.len() && *text == expected
}

fn diagnostic(t: &Tracked, text: Option<&Rope>, encoding: PositionEncoding) -> Diagnostic {
    let range = match (t.anchor, text) {
        (Some(anchor), Some(text)) => {
            let range = chars_to_range(text, anchor.start..anchor.end, encoding);
            super::to_proto::range(range)
        }
        _ => lsp::Range::new(
            lsp::Position::new(t.line, 0),
            lsp::Position::new(t.end_line.max(t.line).saturating_add(1), 0),
        ),
    };
    let code = match &t.finding.source {
        FindingSource::Check { name } if name == "test" => "test-failure".to_owned(),
        FindingSource::Check { name } if name == "lint" => "lint".to_owned(),
        FindingSource::Check { name } => format!("check:{name}"),
        FindingSource::Review => "review".to_owned(),
    };
    let who = match &t.finding.source {
        FindingSource::Check { name } => format!("the {name} check"),
        FindingSource::Review => "the reviewer".to_owned(),
    };
    let related = t.plan_document.as_ref().map(|plan| {
        vec![DiagnosticRelatedInformation {
            location: Location {
                uri: plan.clone(),
                range: lsp::Range::default(),
            },
            message: format!(
                "found by {who} in task {}/{}: {}",
                t.plan, t.finding.task, t.title
            ),
        }]
    });
    let mut message = t.finding.message.clone();
    if let Some(suggestion) = &t.finding.suggestion {
        message.push_str(&format!("\nSuggested:\n{suggestion}"));
    }
    Diagnostic {
        range,
        severity: Some(match t.finding.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Info => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(code)),
        source: Some("pitcrew".to_owned()),
        message,
        related_information: related,
        data: Some(json!({
            "findingId": t.key(),
            "taskId": format!("{}/{}", t.plan, t.finding.task),
            "planId": t.plan,
            "hasSuggestion": t.finding.suggestion.is_some(),
        })),
        ..Diagnostic::default()
    }
}

/// The text of lines `first..=last` (zero-based, clamped), without the final line break.
pub fn line_anchor(text: &Rope, first: u32, last: u32) -> Anchor {
    let lines = text.len_lines();
    let first = (first as usize).min(lines.saturating_sub(1));
    let last = (last as usize).clamp(first, lines.saturating_sub(1));
    let start = text.line_to_char(first);
    let line = text.line(last);
    let mut end = text.line_to_char(last) + line.len_chars();
    // Leave the terminator out: typing at the start of the next line is not an edit of this one.
    while end > start && matches!(text.char(end - 1), '\n' | '\r') {
        end -= 1;
    }
    Anchor::new(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::plan::FindingSource;

    fn tracked(id: &str, line: u32) -> Tracked {
        Tracked {
            finding: Finding {
                id: id.into(),
                task: "t1".into(),
                path: "a.rs".into(),
                line: line + 1,
                end_line: None,
                severity: Severity::Warning,
                message: "check this".into(),
                suggestion: None,
                source: FindingSource::Review,
            },
            plan: "p1".into(),
            title: "task".into(),
            uri: "file:///a.rs".into(),
            anchor: None,
            floating: false,
            line,
            end_line: line,
            plan_document: None,
        }
    }

    fn lines_of(store: &FindingStore, text: &Rope) -> Vec<u32> {
        store
            .diagnostics("file:///a.rs", Some(text), PositionEncoding::Utf16)
            .iter()
            .map(|d| d.range.start.line)
            .collect()
    }

    #[test]
    fn findings_follow_edits_and_clear_when_their_text_is_rewritten() {
        let mut text = Rope::from_str("one\ntwo\nthree\n");
        let mut store = FindingStore::default();
        store.replace_task("p1", "t1", vec![tracked("f1", 1), tracked("f2", 2)]);
        store.on_open("file:///a.rs", &text);
        // A line inserted above: both move down.
        text.insert(0, "zero\n");
        let inserted = AppliedChange {
            removed: 0..0,
            inserted_chars: 5,
        };
        assert!(store.shift("file:///a.rs", &[inserted], &text, None));
        assert_eq!(lines_of(&store, &text), [2, 3]);
        // "two" rewritten: its finding is gone; "three" stays.
        let two = text.line_to_char(2);
        let rewrite = |text: &mut Rope, with: &str| {
            let before = text.clone();
            text.remove(two..two + 3);
            text.insert(two, with);
            let change = AppliedChange {
                removed: two..two + 3,
                inserted_chars: 3,
            };
            (before, change)
        };
        let (before, change) = rewrite(&mut text, "TWO");
        store.shift("file:///a.rs", &[change], &text, Some(&before));
        assert_eq!(lines_of(&store, &text), [3]);
        // Undone: the text is back as it was, and so is its finding; redone: gone again.
        let (before, change) = rewrite(&mut text, "two");
        assert!(store.shift("file:///a.rs", &[change], &text, Some(&before)));
        assert_eq!(lines_of(&store, &text), [2, 3]);
        let (before, change) = rewrite(&mut text, "TWO");
        store.shift("file:///a.rs", &[change], &text, Some(&before));
        let diagnostics = store.diagnostics("file:///a.rs", Some(&text), PositionEncoding::Utf16);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].range.start.line, 3);
        assert_eq!(diagnostics[0].source.as_deref(), Some("pitcrew"));
        assert_eq!(diagnostics[0].data.as_ref().unwrap()["findingId"], "p1/f2");
        // Dismissed: gone, and stays gone when the task is reviewed again.
        assert_eq!(store.dismiss("p1/f2").as_deref(), Some("file:///a.rs"));
        store.replace_task("p1", "t1", vec![tracked("f2", 2)]);
        assert!(lines_of(&store, &text).is_empty());
    }

    #[test]
    fn closed_documents_keep_findings_by_line() {
        let mut store = FindingStore::default();
        let text = Rope::from_str("a\nb\nc\n");
        store.replace_task("p1", "t1", vec![tracked("f1", 2)]);
        store.on_open("file:///a.rs", &text);
        store.on_close("file:///a.rs", &text);
        let closed = store.diagnostics("file:///a.rs", None, PositionEncoding::Utf16);
        assert_eq!(closed[0].range.start.line, 2);
        let reopened = Rope::from_str("x\na\nb\nc\n");
        // Reopened with a different text: placed by the remembered line.
        store.on_open("file:///a.rs", &reopened);
        assert_eq!(lines_of(&store, &reopened), [2]);
    }

    #[test]
    fn placements_wait_for_the_text_they_were_made_for() {
        let mut store = FindingStore::default();
        let before = Rope::from_str("a\n");
        let expected = "a\nnew\n";
        let mut finding = tracked("f1", 1);
        finding.anchor = Some(Anchor::new(2, 5));
        let placement = Placement {
            expected: expected.into(),
            provenance: vec![(Anchor::new(2, 5), "task t1".into())],
            findings: vec![finding],
        };
        assert!(!store.expect("file:///a.rs", placement, Some(&before)));
        assert!(store.provenance_at("file:///a.rs", 3).is_none());
        let after = Rope::from_str(expected);
        let change = AppliedChange {
            removed: 2..2,
            inserted_chars: 4,
        };
        assert!(store.shift("file:///a.rs", &[change], &after, None));
        assert_eq!(
            store
                .provenance_at("file:///a.rs", 3)
                .map(|p| p.text.as_str()),
            Some("task t1")
        );
        assert_eq!(lines_of(&store, &after), [1]);
    }
}
