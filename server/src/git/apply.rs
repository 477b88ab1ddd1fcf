//! Bringing a result onto what the user has, file by file, as a three-way merge of the snapshot
//! the agents started from, the file as it is now, and the result. `plan_file` decides; the
//! headless CLI writes the working tree with `apply_to_workdir`, the editor turns the same
//! decisions into a workspace edit. A result is applied whole or not at all: when one file
//! conflicts with the user's changes, nothing is written and the conflicts are reported. The
//! index and HEAD are never written.

use std::path::{Component, Path, PathBuf};

use git2::{Delta, DiffOptions, Oid, Repository};
use serde::Serialize;

use super::merge::{ConflictRegion, TextMerge};
use super::user_merge::merge_onto_user;
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
        let current = match safe_target(&workdir, &path) {
            Err(reason) => Current::Refused(reason),
            Ok(full) => match std::fs::symlink_metadata(&full) {
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
    Ok(
        match merge_onto_user(base_text, current_text, result_text) {
            // The user's text already holds the result's changes.
            TextMerge::Clean(merged) if merged.as_bytes() == current => FilePlan::Unchanged,
            TextMerge::Clean(merged) => FilePlan::Merged(merged),
            TextMerge::Conflicts(regions) => FilePlan::Conflict {
                reason: "your changes overlap the agents' changes".into(),
                regions,
            },
        },
    )
}

/// Applies the change from commit `base` to commit `result` onto the working tree of `repo`,
/// whole or not at all.
///
/// Every file is merged first; if any conflicts, nothing is written and the report says which.
/// Otherwise the writes are recorded in `<git-dir>/pitcrew/applying/<name>.json` (their new
/// contents as blobs in the object database) before the first file changes, so an apply cut
/// short by a crash is finished by `finish_interrupted` on the next start. `name` identifies the
/// apply (the plan's id).
pub fn apply_to_workdir(
    repo: &Repository,
    name: &str,
    base: Oid,
    result: Oid,
) -> Result<ApplyReport> {
    super::check_id(name)?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError::Refused("a bare repository has no working tree".into()))?
        .to_path_buf();
    let mut report = ApplyReport::default();
    // (path, blob id before, new content or `None` to delete, mode), for every file to change.
    let mut staged = Vec::new();
    for file in changed_files(repo, base, result)? {
        let path = file.path;
        let current = match file.current {
            Current::Refused(reason) => {
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
        let before = current.as_deref().map(blob_id).transpose()?;
        let decision = plan_file(
            file.base.as_deref(),
            current.as_deref(),
            file.result.as_deref(),
        )?;
        let after = match &decision {
            FilePlan::Unchanged => {
                report.unchanged.push(path);
                continue;
            }
            FilePlan::Conflict { reason, regions } => {
                report.conflicts.push(ApplyConflict {
                    path,
                    reason: reason.clone(),
                    regions: regions.clone(),
                });
                continue;
            }
            FilePlan::Write(content) => {
                if file.result_mode == 0o120000 {
                    report.conflicts.push(ApplyConflict {
                        path,
                        reason: "a symbolic link in the result; pitcrew does not write links"
                            .into(),
                        regions: Vec::new(),
                    });
                    continue;
                }
                report.written.push(path.clone());
                Some(content.clone())
            }
            FilePlan::Merged(merged) => {
                report.merged.push(path.clone());
                Some(merged.clone().into_bytes())
            }
            FilePlan::Delete => {
                report.deleted.push(path.clone());
                None
            }
        };
        staged.push((path, before, after, file.result_mode));
    }
    if !report.is_clean() {
        // Whole or not at all: nothing is written while any file conflicts.
        report.written.clear();
        report.merged.clear();
        report.deleted.clear();
        return Ok(report);
    }
    if staged.is_empty() {
        return Ok(report);
    }
    let mut writes = Vec::with_capacity(staged.len());
    for (path, before, after, mode) in staged {
        let after = after
            .map(|content| repo.blob(&content).context(|| format!("staging {path}")))
            .transpose()?;
        writes.push(StagedWrite {
            temp: temp_path(&workdir, &path),
            path,
            before,
            after: after.map(|id| id.to_string()),
            mode,
        });
    }
    let transaction = Transaction {
        name: name.to_owned(),
        head: current_head(repo),
        writes,
    };
    let record = transaction_path(repo, name);
    transaction.save(&record)?;
    // Between the merge and now the user may have saved a file again: then nothing is written.
    for write in &transaction.writes {
        let now = read_current(&workdir, &write.path)?;
        if now.as_deref().map(blob_id).transpose()? != write.before {
            let _ = std::fs::remove_file(&record);
            return Err(GitError::Refused(format!(
                "{} changed while the result was being applied; nothing was written, try again",
                write.path
            )));
        }
    }
    let finished = transaction.carry_out(repo, &workdir)?;
    std::fs::remove_file(&record).context(|| format!("removing {}", record.display()))?;
    if !finished.is_clean() {
        // The user saved a file in the instant between the check above and its write.
        let changed: Vec<&str> = finished.conflicts.iter().map(|c| c.path.as_str()).collect();
        return Err(GitError::Refused(format!(
            "you changed {} while the result was being written: every other file was written, \
             and {} left as you have it; apply again to merge the rest",
            changed.join(", "),
            if changed.len() == 1 {
                "it was"
            } else {
                "they were"
            }
        )));
    }
    Ok(report)
}

/// Whether HEAD has left the commit a plan's snapshot was taken on (the user switched branches,
/// reset or rebased since): what happened, in words for the user, or `None` when HEAD is that
/// commit or one built on it.
pub fn head_moved(repo: &Repository, snapshot: Oid) -> Result<Option<String>> {
    let commit = repo
        .find_commit(snapshot)
        .context(|| format!("reading the snapshot {snapshot}"))?;
    // A snapshot with changes is a commit on top of HEAD; one without is HEAD itself.
    let started_on = if commit.message_bytes().starts_with(b"pitcrew snapshot ") {
        commit.parent_id(0).ok()
    } else {
        Some(commit.id())
    };
    let Some(started_on) = started_on else {
        return Ok(None); // started in a repository without commits
    };
    let head = match repo.head() {
        Ok(head) => head,
        Err(_) => return Ok(None),
    };
    let Ok(head_commit) = head.peel_to_commit() else {
        return Ok(None);
    };
    if head_commit.id() == started_on
        || repo
            .graph_descendant_of(head_commit.id(), started_on)
            .context(|| "comparing history".into())?
    {
        return Ok(None);
    }
    let short = |id: Oid| id.to_string()[..12].to_owned();
    let now = match head.shorthand() {
        Ok(name) if head.is_branch() => format!("branch {name} ({})", short(head_commit.id())),
        _ => format!("a detached HEAD ({})", short(head_commit.id())),
    };
    Ok(Some(format!(
        "the plan started from commit {}, and HEAD is now {now}, which does not contain it: \
         you switched branches, reset or rebased since",
        short(started_on)
    )))
}

/// The names of the applies a crash cut short (their records are still there).
pub fn interrupted(repo: &Repository) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(transactions_dir(repo)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// Finishes the apply `name` that a crash cut short: each file still as it was before the apply
/// gets its new content, a file already written is left, and a file the user changed since is
/// left alone and reported. If HEAD moved since (the user switched branches), nothing more is
/// written. `None` when there was nothing to finish. The caller holds the plan's lock, so that
/// no live apply of it is under way.
pub fn finish_interrupted(repo: &Repository, name: &str) -> Result<Option<ApplyReport>> {
    super::check_id(name)?;
    let record = transaction_path(repo, name);
    let Ok(bytes) = std::fs::read(&record) else {
        return Ok(None);
    };
    let Some(workdir) = repo.workdir().map(Path::to_path_buf) else {
        return Ok(None);
    };
    let Ok(transaction) = serde_json::from_slice::<Transaction>(&bytes) else {
        // Cut short while it was being written: no file had changed yet.
        let _ = std::fs::remove_file(&record);
        return Ok(None);
    };
    let report = if transaction.head.is_some() && transaction.head != current_head(repo) {
        let mut report = ApplyReport::default();
        for write in &transaction.writes {
            let _ = std::fs::remove_file(&write.temp);
            report.conflicts.push(ApplyConflict {
                path: write.path.clone(),
                reason: "HEAD moved since the apply was cut short; not written".into(),
                regions: Vec::new(),
            });
        }
        report
    } else {
        transaction.carry_out(repo, &workdir)?
    };
    std::fs::remove_file(&record).context(|| format!("removing {}", record.display()))?;
    Ok(Some(report))
}

/// HEAD's commit now, as a string.
fn current_head(repo: &Repository) -> Option<String> {
    repo.head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string())
}

/// An apply in progress, as recorded before its first write.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Transaction {
    name: String,
    /// HEAD when the apply began: finishing it after a branch switch would write onto
    /// another branch's files.
    #[serde(default)]
    head: Option<String>,
    writes: Vec<StagedWrite>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct StagedWrite {
    path: String,
    /// Where the new content is written before it is renamed into place.
    temp: PathBuf,
    /// The blob id of the file before the apply; `None` when it did not exist.
    before: Option<String>,
    /// The blob id of its new content; `None` to delete it.
    after: Option<String>,
    mode: u32,
}

impl Transaction {
    fn save(&self, record: &Path) -> Result<()> {
        use std::io::Write;
        let dir = record.parent().unwrap_or(record);
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_vec(self).map_err(|err| GitError::Io {
            context: "recording the apply".into(),
            source: std::io::Error::other(err),
        })?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)
            .context(|| format!("recording the apply in {}", dir.display()))?;
        temp.write_all(&json)
            .and_then(|()| temp.as_file().sync_all())
            .context(|| "recording the apply".into())?;
        temp.persist(record).map_err(|err| GitError::Io {
            context: format!("recording the apply in {}", record.display()),
            source: err.error,
        })?;
        Ok(())
    }

    /// Brings every file to its new content, skipping those already there and leaving those
    /// that are neither before nor after (the user's) alone, as conflicts.
    fn carry_out(&self, repo: &Repository, workdir: &Path) -> Result<ApplyReport> {
        let mut report = ApplyReport::default();
        for write in &self.writes {
            let _ = std::fs::remove_file(&write.temp);
            let now = read_current(workdir, &write.path)?;
            let now = now.as_deref().map(blob_id).transpose()?;
            if now == write.after {
                report.unchanged.push(write.path.clone());
                continue;
            }
            if now != write.before {
                report.conflicts.push(ApplyConflict {
                    path: write.path.clone(),
                    reason: "you changed it while the result was being applied".into(),
                    regions: Vec::new(),
                });
                continue;
            }
            // Checked again just before writing: a link may have appeared since.
            let full = match safe_target(workdir, &write.path) {
                Ok(full) => full,
                Err(reason) => {
                    report.conflicts.push(ApplyConflict {
                        path: write.path.clone(),
                        reason,
                        regions: Vec::new(),
                    });
                    continue;
                }
            };
            match &write.after {
                Some(id) => {
                    let id = Oid::from_str(id).context(|| format!("reading {id}"))?;
                    let blob = repo
                        .find_blob(id)
                        .context(|| format!("reading the new content of {}", write.path))?;
                    write_atomically(&full, &write.temp, blob.content(), write.mode)?;
                    report.written.push(write.path.clone());
                    crate::failpoint::hit("apply-after-first-write");
                }
                None => {
                    std::fs::remove_file(&full).context(|| format!("deleting {}", write.path))?;
                    report.deleted.push(write.path.clone());
                }
            }
        }
        Ok(report)
    }
}

/// `<git-dir>/pitcrew/applying`: applies under way.
fn transactions_dir(repo: &Repository) -> PathBuf {
    repo.commondir().join("pitcrew").join("applying")
}

fn transaction_path(repo: &Repository, name: &str) -> PathBuf {
    transactions_dir(repo).join(format!("{name}.json"))
}

/// The blob id git would give `content`.
fn blob_id(content: &[u8]) -> Result<String> {
    Oid::hash_object(git2::ObjectType::Blob, content)
        .map(|id| id.to_string())
        .context(|| "hashing a file".into())
}

/// The content of `path` in the working tree, `None` when it does not exist.
fn read_current(workdir: &Path, path: &str) -> Result<Option<Vec<u8>>> {
    let Some(full) = safe_join(workdir, path) else {
        return Ok(None);
    };
    match std::fs::read(&full) {
        Ok(content) => Ok(Some(content)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(GitError::Io {
            context: format!("reading {path}"),
            source: err,
        }),
    }
}

/// Where a file's new content is written before it replaces the file: beside it, so the rename
/// stays on one file system.
fn temp_path(workdir: &Path, path: &str) -> PathBuf {
    let full = workdir.join(path);
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    full.with_file_name(format!(".{name}.pitcrew-apply.tmp"))
}

/// `workdir/path` when writing there stays inside the working tree: `safe_join`'s rules, and no
/// existing part of the way (nor the file itself) a symbolic link, which could lead anywhere
/// (an ignored `linked -> /elsewhere` directory, say). The error is for the user.
pub fn safe_target(workdir: &Path, path: &str) -> std::result::Result<PathBuf, String> {
    let full = safe_join(workdir, path)
        .ok_or_else(|| "refused: the path leaves the working tree or enters .git".to_owned())?;
    let mut walked = workdir.to_path_buf();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (index, part) in parts.iter().enumerate() {
        walked.push(part);
        match std::fs::symlink_metadata(&walked) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let what = if index + 1 == parts.len() {
                    "it is a symbolic link in your working tree".to_owned()
                } else {
                    format!(
                        "{} is a symbolic link in your working tree",
                        parts[..=index].join("/")
                    )
                };
                return Err(format!(
                    "refused: {what}; pitcrew does not write through links, which may lead out of the repository"
                ));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(full)
}

/// `workdir/path`, if `path` stays inside the working tree and out of `.git`.
pub fn safe_join(workdir: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let mut normal = 0;
    for component in relative.components() {
        match component {
            Component::Normal(part)
                if part
                    .to_str()
                    .is_none_or(|name| super::paths::component_refusal(name).is_some()) =>
            {
                return None;
            }
            Component::Normal(_) => normal += 1,
            _ => return None,
        }
    }
    (normal > 0).then(|| workdir.join(relative))
}

/// Writes through `temp` and a rename, so a crash never leaves half a file.
fn write_atomically(path: &Path, temp: &Path, content: &[u8], mode: u32) -> Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| GitError::Refused(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    std::fs::write(temp, content).context(|| format!("writing {}", temp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let permissions = if mode == 0o100755 { 0o755 } else { 0o644 };
        std::fs::set_permissions(temp, std::fs::Permissions::from_mode(permissions))
            .context(|| format!("setting the mode of {}", path.display()))?;
    }
    crate::failpoint::hit("apply-before-rename");
    std::fs::rename(temp, path).context(|| format!("replacing {}", path.display()))
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
        assert_eq!(safe_join(root, ".GiT./hooks/post-checkout"), None);
        assert_eq!(safe_join(root, "git~1/config"), None);
        assert_eq!(
            safe_join(root, "docs/.git-notes"),
            Some(PathBuf::from("/w/docs/.git-notes"))
        );
    }
}
