//! Applying a result to the working tree, for the headless CLI: file by file, as a three-way
//! merge of the snapshot the agents started from, the file as it is now, and the result. A file
//! the user changed in a conflicting way is left untouched and reported. The index and HEAD are
//! never written.

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

/// Applies the change from commit `base` to commit `result` onto the working tree of `repo`.
pub fn apply_to_workdir(repo: &Repository, base: Oid, result: Oid) -> Result<ApplyReport> {
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

    let mut report = ApplyReport::default();
    for delta in diff.deltas() {
        let file = if delta.status() == Delta::Deleted {
            delta.old_file()
        } else {
            delta.new_file()
        };
        let Some(path) = file.path().map(|p| p.to_string_lossy().replace('\\', "/")) else {
            continue;
        };
        let Some(full) = safe_join(&workdir, &path) else {
            report.conflicts.push(ApplyConflict {
                path,
                reason: "refused: the path leaves the working tree or enters .git".into(),
                regions: Vec::new(),
            });
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
        let result_mode = u32::from(delta.new_file().mode());
        let current = match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => {
                report.conflicts.push(ApplyConflict {
                    path,
                    reason: "a directory is in the way".into(),
                    regions: Vec::new(),
                });
                continue;
            }
            Ok(_) => Some(std::fs::read(&full).context(|| format!("reading {path}"))?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(GitError::Io {
                    context: format!("reading {path}"),
                    source: err,
                });
            }
        };

        if current == result_content {
            report.unchanged.push(path);
            continue;
        }
        if current == base_content {
            match &result_content {
                Some(content) => {
                    write_atomically(&full, content, result_mode)?;
                    report.written.push(path);
                }
                None => {
                    std::fs::remove_file(&full).context(|| format!("deleting {path}"))?;
                    report.deleted.push(path);
                }
            }
            continue;
        }
        // The user changed the file since the snapshot: merge, if both sides are text.
        let as_text = |bytes: &Option<Vec<u8>>| -> Option<String> {
            match bytes {
                None => Some(String::new()),
                Some(bytes) => String::from_utf8(bytes.clone()).ok(),
            }
        };
        let (Some(base_text), Some(current_text), Some(result_text)) = (
            as_text(&base_content),
            as_text(&current),
            as_text(&result_content),
        ) else {
            report.conflicts.push(ApplyConflict {
                path,
                reason: "changed by you and by the agents, and not text".into(),
                regions: Vec::new(),
            });
            continue;
        };
        if current.is_none() || result_content.is_none() {
            report.conflicts.push(ApplyConflict {
                path,
                reason: if current.is_none() {
                    "you deleted it; the agents changed it".into()
                } else {
                    "you changed it; the agents deleted it".into()
                },
                regions: Vec::new(),
            });
            continue;
        }
        match merge_text(&base_text, &current_text, &result_text)? {
            TextMerge::Clean(merged) => {
                write_atomically(&full, merged.as_bytes(), result_mode)?;
                report.merged.push(path);
            }
            TextMerge::Conflicts(regions) => report.conflicts.push(ApplyConflict {
                path,
                reason: "your changes overlap the agents' changes".into(),
                regions,
            }),
        }
    }
    Ok(report)
}

/// `workdir/path`, if `path` stays inside the working tree and out of `.git`.
fn safe_join(workdir: &Path, path: &str) -> Option<PathBuf> {
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
