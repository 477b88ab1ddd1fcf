//! Snapshots: a commit of exactly what the user sees, made without touching what they have.
//!
//! What the user sees is HEAD, plus staged and unstaged changes, plus untracked files that git
//! does not ignore (but for secrets: `.env`, keys), plus the unsaved text of open buffers. The snapshot builds that tree in an
//! in-memory index (never the repository's index), writes it as a commit whose parent is HEAD,
//! and keeps it alive with `refs/pitcrew/snapshots/<id>`. HEAD, the index, the working tree and
//! the stash are only read.

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Index, IndexEntry, IndexTime, Oid, Repository, Status, StatusOptions};

use super::{Context, GitError, Result, check_id, relative_path, signature};

/// The unsaved text of an open buffer.
#[derive(Debug, Clone)]
pub struct Buffer {
    /// Absolute, or relative to the working tree.
    pub path: PathBuf,
    pub text: String,
}

/// A snapshot commit and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub commit: Oid,
    /// HEAD when the snapshot was taken; `None` in a repository without commits.
    pub head: Option<Oid>,
    pub reference: String,
    /// Buffers left out, with the reason (ignored by git, outside the repository).
    pub skipped_buffers: Vec<(String, String)>,
}

/// The ref that keeps snapshot `id` alive.
pub fn reference_name(id: &str) -> String {
    format!("refs/pitcrew/snapshots/{id}")
}

/// Takes a snapshot named `id` of the working tree of `repo` with `buffers` laid over it.
pub fn create(repo: &Repository, id: &str, buffers: &[Buffer]) -> Result<Snapshot> {
    check_id(id)?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError::Refused("a bare repository has no working tree".into()))?
        .to_path_buf();
    let head = head_commit(repo)?;

    let mut index = Index::new().context(|| "creating an in-memory index".into())?;
    if let Some(head) = &head {
        let tree = head.tree().context(|| "reading HEAD's tree".into())?;
        index
            .read_tree(&tree)
            .context(|| "loading HEAD into the in-memory index".into())?;
    }

    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false)
        .exclude_submodules(true)
        .renames_head_to_index(false)
        .renames_index_to_workdir(false);
    let statuses = repo
        .statuses(Some(&mut options))
        .context(|| "reading the status of the working tree".into())?;
    for entry in statuses.iter() {
        let status = entry.status();
        if status.is_ignored() || status == Status::CURRENT {
            continue;
        }
        // Paths that are not UTF-8 are left as HEAD has them.
        let Ok(path) = entry.path() else { continue };
        let full = workdir.join(path);
        // An untracked secret (`.env`, a key) is the user's alone: it is not copied into the
        // snapshot, so no worktree, check or model ever has it.
        if status.is_wt_new() && super::paths::is_secret(path, || std::fs::read(&full).ok()) {
            continue;
        }
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => add_from_disk(repo, &mut index, path, &full, &meta)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // Deleted in the working tree: the user does not see it.
                let _ = index.remove_path(Path::new(path));
            }
            Err(err) => {
                return Err(GitError::Io {
                    context: format!("reading {path}"),
                    source: err,
                });
            }
        }
    }

    let mut skipped_buffers = Vec::new();
    for buffer in buffers {
        let Some(path) = relative_path(&workdir, &buffer.path) else {
            skipped_buffers.push((
                buffer.path.display().to_string(),
                "outside the repository".into(),
            ));
            continue;
        };
        if path == ".git" || path.starts_with(".git/") {
            skipped_buffers.push((path, "inside .git".into()));
            continue;
        }
        if repo.is_path_ignored(&path).unwrap_or(false) {
            skipped_buffers.push((path, "ignored by git".into()));
            continue;
        }
        if index.get_path(Path::new(&path), 0).is_none()
            && super::paths::is_secret(&path, || Some(buffer.text.as_bytes().to_vec()))
        {
            skipped_buffers.push((path, "an untracked file that holds secrets".into()));
            continue;
        }
        let blob = repo
            .blob(buffer.text.as_bytes())
            .context(|| format!("storing the buffer of {path}"))?;
        let mode = index
            .get_path(Path::new(&path), 0)
            .map(|e| e.mode)
            .filter(|mode| *mode == 0o100644 || *mode == 0o100755)
            .unwrap_or(0o100644);
        index
            .add(&entry(&path, blob, mode, buffer.text.len()))
            .context(|| format!("adding the buffer of {path}"))?;
    }

    let tree_id = index
        .write_tree_to(repo)
        .context(|| "writing the snapshot tree".into())?;
    let commit = match &head {
        // Nothing differs from HEAD: HEAD is the snapshot.
        Some(head) if head.tree_id() == tree_id => head.id(),
        _ => {
            let tree = repo
                .find_tree(tree_id)
                .context(|| "reading the snapshot tree".into())?;
            let signature = signature("snapshot")?;
            let parents: Vec<&git2::Commit<'_>> = head.iter().collect();
            let message = format!(
                "pitcrew snapshot {id}\n\nWhat the user saw: HEAD, staged and unstaged changes, \
                 untracked files, and {} unsaved buffer(s).\n",
                buffers.len() - skipped_buffers.len()
            );
            repo.commit(None, &signature, &signature, &message, &tree, &parents)
                .context(|| "writing the snapshot commit".into())?
        }
    };
    let reference = reference_name(id);
    repo.reference(&reference, commit, true, "pitcrew: snapshot")
        .context(|| format!("updating {reference}"))?;
    Ok(Snapshot {
        commit,
        head: head.map(|h| h.id()),
        reference,
        skipped_buffers,
    })
}

/// HEAD's commit, or `None` when HEAD is unborn.
pub fn head_commit(repo: &Repository) -> Result<Option<git2::Commit<'_>>> {
    match repo.head() {
        Ok(reference) => reference
            .peel_to_commit()
            .map(Some)
            .context(|| "reading HEAD's commit".into()),
        Err(err) if matches!(err.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
        Err(err) => Err(GitError::Git {
            context: "reading HEAD".into(),
            source: err,
        }),
    }
}

/// Adds a file from the working tree, as a regular file, an executable or a symlink.
fn add_from_disk(
    repo: &Repository,
    index: &mut Index,
    path: &str,
    full: &Path,
    meta: &std::fs::Metadata,
) -> Result<()> {
    let (content, mode) = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(full).context(|| format!("reading the link {path}"))?;
        (path_bytes(&target), 0o120000)
    } else {
        let content = std::fs::read(full).context(|| format!("reading {path}"))?;
        (
            content,
            if is_executable(meta) {
                0o100755
            } else {
                0o100644
            },
        )
    };
    let blob = repo.blob(&content).context(|| format!("storing {path}"))?;
    index
        .add(&entry(path, blob, mode, content.len()))
        .context(|| format!("adding {path} to the snapshot"))
}

/// An index entry for `path`; the stat fields are irrelevant to an in-memory index.
pub(crate) fn entry(path: &str, id: Oid, mode: u32, size: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(size).unwrap_or(u32::MAX),
        id,
        flags: path.len().min(0xfff) as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().replace('\\', "/").into_bytes()
}
