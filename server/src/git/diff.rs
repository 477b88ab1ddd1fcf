//! What changed between two commits, per file and per hunk, with the texts on both sides.

use std::cell::RefCell;

use git2::{Delta, DiffFindOptions, DiffOptions, Oid, Repository};
use serde::Serialize;

use super::{Context, Result};

/// Texts larger than this are treated as binary: nobody reviews a 4 MB diff line by line.
const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
}

/// One line of a hunk: `origin` is `+`, `-` or ` `.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub origin: char,
    pub content: String,
}

/// A hunk, with one-based line numbers as in a unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hunk {
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
    pub lines: Vec<DiffLine>,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    /// The path before a rename.
    pub old_path: Option<String>,
    pub kind: ChangeKind,
    pub binary: bool,
    /// The file's mode after the change (0 when deleted).
    pub new_mode: u32,
    /// Both texts, when the file is text on both sides that exist.
    pub old_text: Option<String>,
    pub new_text: Option<String>,
    pub hunks: Vec<Hunk>,
}

/// The changes from `base` to `head`, renames detected.
pub fn diff(repo: &Repository, base: Oid, head: Oid) -> Result<Vec<FileChange>> {
    let base_tree = repo
        .find_commit(base)
        .and_then(|c| c.tree())
        .context(|| format!("reading commit {base}"))?;
    let head_tree = repo
        .find_commit(head)
        .and_then(|c| c.tree())
        .context(|| format!("reading commit {head}"))?;
    let mut options = DiffOptions::new();
    options.context_lines(3);
    let mut diff = repo
        .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), Some(&mut options))
        .context(|| "diffing the trees".into())?;
    diff.find_similar(Some(DiffFindOptions::new().renames(true)))
        .context(|| "finding renames".into())?;

    let blob_text = |id: Oid| -> Option<String> {
        if id.is_zero() {
            return None;
        }
        let blob = repo.find_blob(id).ok()?;
        if blob.is_binary() || blob.size() > MAX_TEXT_BYTES {
            return None;
        }
        String::from_utf8(blob.content().to_vec()).ok()
    };

    let files: RefCell<Vec<FileChange>> = RefCell::new(Vec::new());
    diff.foreach(
        &mut |delta, _| {
            let kind = match delta.status() {
                Delta::Added | Delta::Untracked | Delta::Copied => ChangeKind::Added,
                Delta::Deleted => ChangeKind::Deleted,
                Delta::Renamed => ChangeKind::Renamed,
                _ => ChangeKind::Modified,
            };
            let new_path = delta
                .new_file()
                .path()
                .map(|p| p.to_string_lossy().replace('\\', "/"));
            let old_path = delta
                .old_file()
                .path()
                .map(|p| p.to_string_lossy().replace('\\', "/"));
            let path = match kind {
                ChangeKind::Deleted => old_path.clone(),
                _ => new_path.clone(),
            }
            .unwrap_or_default();
            let old_text = blob_text(delta.old_file().id());
            let new_text = blob_text(delta.new_file().id());
            let binary = (!delta.old_file().id().is_zero() && old_text.is_none())
                || (!delta.new_file().id().is_zero() && new_text.is_none());
            files.borrow_mut().push(FileChange {
                path,
                old_path: (kind == ChangeKind::Renamed).then(|| old_path.unwrap_or_default()),
                kind,
                binary,
                new_mode: u32::from(delta.new_file().mode()),
                old_text,
                new_text,
                hunks: Vec::new(),
            });
            true
        },
        None,
        Some(&mut |_, hunk| {
            if let Some(file) = files.borrow_mut().last_mut() {
                file.hunks.push(Hunk {
                    old_start: hunk.old_start(),
                    old_lines: hunk.old_lines(),
                    new_start: hunk.new_start(),
                    new_lines: hunk.new_lines(),
                    lines: Vec::new(),
                });
            }
            true
        }),
        Some(&mut |_, _, line| {
            if let Some(hunk) = files
                .borrow_mut()
                .last_mut()
                .and_then(|f| f.hunks.last_mut())
                && matches!(line.origin(), '+' | '-' | ' ')
            {
                hunk.lines.push(DiffLine {
                    origin: line.origin(),
                    content: String::from_utf8_lossy(line.content()).into_owned(),
                });
            }
            true
        }),
    )
    .context(|| "walking the diff".into())?;
    Ok(files.into_inner())
}

/// The unified diff from `base` to `head`, as `git diff` prints it.
pub fn patch_text(repo: &Repository, base: Oid, head: Oid) -> Result<String> {
    let base_tree = repo
        .find_commit(base)
        .and_then(|c| c.tree())
        .context(|| format!("reading commit {base}"))?;
    let head_tree = repo
        .find_commit(head)
        .and_then(|c| c.tree())
        .context(|| format!("reading commit {head}"))?;
    let mut diff = repo
        .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), None)
        .context(|| "diffing the trees".into())?;
    diff.find_similar(Some(DiffFindOptions::new().renames(true)))
        .context(|| "finding renames".into())?;
    let mut text = String::new();
    diff.print(git2::DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            text.push(line.origin());
        }
        text.push_str(&String::from_utf8_lossy(line.content()));
        true
    })
    .context(|| "printing the diff".into())?;
    Ok(text)
}
