//! Bringing a result onto what the user has, file by file, as a three-way merge of the snapshot
//! the agents started from, the file as it is now, and the result. `plan_file` decides; the
//! headless CLI writes the working tree with `apply_to_workdir`, the editor turns the same
//! decisions into a workspace edit. A file the user changed in a conflicting way is left
//! untouched and reported. The index and HEAD are never written.

use std::path::{Component, Path, PathBuf};

use git2::{Delta, DiffOptions, Oid, Repository};
use serde::Serialize;

use super::merge::{ConflictRegion, TextMerge, merge_text};
use super::{Context, GitError, Result};

/// What applying did, file by file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Written as the result has them (the user had not touched them).
    pub written: Vec<String>,
    /// Written as a merge of the user's newer changes and the result.
    pub merged: Vec<String>,
    pub deleted: Vec<String>,
    /// Already as the result has them.
    pub unchanged: Vec<String>,
    /// Left untouched: the user's changes conflict with the result.
    pub conflicts: Vec<ApplyConflict>,
}

impl ApplyReport {
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyConflict {
    pub path: String,
    pub reason: String,
    pub regions: Vec<ConflictRegion>,
}

/// A file the result changes, with its three versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// Relative to the working tree, with `/` separators.
    pub path: String,
    /// In the snapshot the agents started from; `None` when they created it.
    pub base: Option<Vec<u8>>,
    /// In the result; `None` when they deleted it.
    pub result: Option<Vec<u8>>,
    /// The git file mode of the result (`0o100644`, `0o100755`, `0o120000`).
    pub result_mode: u32,
    /// On disk now.
    pub current: Current,
}

/// What is on disk at a changed file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Missing,
    Content(Vec<u8>),
    /// Not writable by pitcrew: the reason.
    Refused(String),
}

/// What to do with one file to bring the result onto what the user has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePlan {
    /// Already as the result has it.
    Unchanged,
    /// The user had not touched it: write the result.
    Write(Vec<u8>),
    Delete,
    /// The user changed it too: the merge of both.
    Merged(String),
    Conflict {
        reason: String,
        regions: Vec<ConflictRegion>,
    },
}

/// The files that change from commit `base` to commit `result`, with what is on disk now.
pub fn changed_files(repo: &Repository, base: Oid, result: Oid) -> Result<Vec<ChangedFile>> {
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError::Refused("a bare repository has no working tree".into()))?
        .to_path_buf();
    let base_tree = repo
        .find_commit(base)
        .and_then(|c| c.tree())
        .context(|| format!("reading commit {base}"))?;
    let result_tree = repo
        .find_commit(result)
        .and_then(|c| c.tree())
        .context(|| format!("reading commit {result}"))?;
    // No rename detection: a rename applies as a deletion and an addition, each checked.
    let diff = repo
        .diff_tree_to_tree(
            Some(&base_tree),
            Some(&result_tree),
            Some(DiffOptions::new().include_typechange(true)),
        )
        .context(|| "diffing the result".into())?;

    let mut files = Vec::new();
    for delta in diff.deltas() {
        let file = if delta.status() == Delta::Deleted {
            delta.old_file()
        } else {
            delta.new_file()
        };
        let Some(path) = file.path().map(|p| p.to_string_lossy().replace('\\', "/")) else {
            continue;
        };
        let blob = |id: Oid| -> Result<Option<Vec<u8>>> {
            if id.is_zero() {
                return Ok(None);
            }
            Ok(Some(
                repo.find_blob(id)
                    .context(|| format!("reading {path}"))?
                    .content()
                    .to_vec(),
            ))
        };
        let base_content = blob(delta.old_file().id())?;
        let result_content = blob(delta.new_file().id())?;
        let current = match safe_join(&workdir, &path) {
            None => Current::Refused("the path leaves the working tree or enters .git".into()),
            Some(full) => match std::fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => Current::Refused("a directory is in the way".into()),
                Ok(_) => {
                    Current::Content(std::fs::read(&full).context(|| format!("reading {path}"))?)
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Current::Missing,
                Err(err) => {
                    return Err(GitError::Io {
                        context: format!("reading {path}"),
                        source: err,
                    });
                }
            },
        };
        files.push(ChangedFile {
            path,
            base: base_content,
            result: result_content,
            result_mode: u32::from(delta.new_file().mode()),
            current,
        });
    }
    Ok(files)
}

/// Decides how to bring a result onto `current` (what the user has: on disk, or in a buffer;
/// `None` when the file does not exist), given the snapshot `base` the agents started from.
pub fn plan_file(
    base: Option<&[u8]>,
    current: Option<&[u8]>,
    result: Option<&[u8]>,
) -> Result<FilePlan> {
    if current == result {
        return Ok(FilePlan::Unchanged);
    }
    if current == base {
        return Ok(match result {
            Some(content) => FilePlan::Write(content.to_vec()),
            None => FilePlan::Delete,
        });
    }
    // The user changed the file since the snapshot: merge, if both sides are text.
    let conflict = |reason: &str| FilePlan::Conflict {
        reason: reason.to_owned(),
        regions: Vec::new(),
    };
    let (Some(current), Some(result)) = (current, result) else {
        return Ok(conflict(if current.is_none() {
            "you deleted it; the agents changed it"
        } else {
            "you changed it; the agents deleted it"
        }));
    };
    fn as_text(bytes: Option<&[u8]>) -> Option<&str> {
        match bytes {
            None => Some(""),
            Some(bytes) => std::str::from_utf8(bytes).ok(),
        }
    }
    let (Some(base_text), Some(current_text), Some(result_text)) =
        (as_text(base), as_text(Some(current)), as_text(Some(result)))
    else {
        return Ok(conflict("changed by you and by the agents, and not text"));
    };
    Ok(match merge_text(base_text, current_text, result_text)? {
        TextMerge::Clean(merged) => FilePlan::Merged(merged),
        TextMerge::Conflicts(regions) => FilePlan::Conflict {
            reason: "your changes overlap the agents' changes".into(),
            regions,
        },
    })
}

/// Applies the change from commit `base` to commit `result` onto the working tree of `repo`.
pub fn apply_to_workdir(repo: &Repository, base: Oid, result: Oid) -> Result<ApplyReport> {
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError::Refused("a bare repository has no working tree".into()))?
        .to_path_buf();
    let mut report = ApplyReport::default();
    for file in changed_files(repo, base, result)? {
        let path = file.path;
        let current = match file.current {
            Current::Refused(reason) => {
                let reason = if reason.starts_with("the path") {
                    format!("refused: {reason}")
                } else {
                    reason
                };
                report.conflicts.push(ApplyConflict {
                    path,
                    reason,
                    regions: Vec::new(),
                });
                continue;
            }
            Current::Missing => None,
            Current::Content(content) => Some(content),
        };
        let Some(full) = safe_join(&workdir, &path) else {
            continue; // reported as Refused above
        };
        match plan_file(
            file.base.as_deref(),
            current.as_deref(),
            file.result.as_deref(),
        )? {
            FilePlan::Unchanged => report.unchanged.push(path),
            FilePlan::Write(content) => {
                write_atomically(&full, &content, file.result_mode)?;
                report.written.push(path);
            }
            FilePlan::Delete => {
                std::fs::remove_file(&full).context(|| format!("deleting {path}"))?;
                report.deleted.push(path);
            }
            FilePlan::Merged(merged) => {
                write_atomically(&full, merged.as_bytes(), file.result_mode)?;
                report.merged.push(path);
            }
            FilePlan::Conflict { reason, regions } => report.conflicts.push(ApplyConflict {
                path,
                reason,
                regions,
            }),
        }
    }
    Ok(report)
}

/// `workdir/path`, if `path` stays inside the working tree and out of `.git`.
pub fn safe_join(workdir: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let mut normal = 0;
    for component in relative.components() {
        match component {
            Component::Normal(part) if part == ".git" => return None,
            Component::Normal(_) => normal += 1,
            _ => return None,
        }
    }
    (normal > 0).then(|| workdir.join(relative))
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
fn write_atomically(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| GitError::Refused(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    if mode == 0o120000 {
        return Err(GitError::Refused(format!(
            "{} is a symbolic link in the result; pitcrew does not write links",
            path.display()
        )));
    }
    let temp = parent.join(format!(
        ".{}.pitcrew-{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&temp, content).context(|| format!("writing {}", temp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let permissions = if mode == 0o100755 { 0o755 } else { 0o644 };
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(permissions))
            .context(|| format!("setting the mode of {}", path.display()))?;
    }
    std::fs::rename(&temp, path).context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_working_tree() {
        let root = Path::new("/w");
        assert_eq!(
            safe_join(root, "src/a.rs"),
            Some(PathBuf::from("/w/src/a.rs"))
        );
        assert_eq!(safe_join(root, "../etc/passwd"), None);
        assert_eq!(safe_join(root, "/etc/passwd"), None);
        assert_eq!(safe_join(root, ".git/hooks/pre-commit"), None);
        assert_eq!(safe_join(root, "a/../../b"), None);
        assert_eq!(safe_join(root, "vendor/lib/.git/config"), None);
        assert_eq!(
            safe_join(root, "docs/.git-notes"),
            Some(PathBuf::from("/w/docs/.git-notes"))
        );
    }
}
