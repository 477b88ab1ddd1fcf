//! Committing an agent's work in its worktree.

use std::path::Path;

use git2::{IndexAddOption, Oid};

use super::{Context, Result, signature};

/// Commits everything in the worktree at `path` (new, changed and deleted files; not what git
/// ignores) on its branch, signed by pitcrew in `role`. Returns `None` when there is nothing to
/// commit, so calling it twice never makes two commits.
pub fn commit_all(path: &Path, message: &str, role: &str) -> Result<Option<Oid>> {
    // The worktree's `.git` file is put back first: code that ran there may have pointed it
    // at another repository.
    let repo = super::worktree::open_task(path)?;
    let mut index = repo
        .index()
        .context(|| "reading the worktree's index".into())?;
    index
        .add_all(["*"].iter(), IndexAddOption::DEFAULT, None)
        .context(|| "staging the worktree's files".into())?;
    index
        .update_all(["*"].iter(), None)
        .context(|| "staging deletions".into())?;
    index
        .write()
        .context(|| "writing the worktree's index".into())?;
    let tree_id = index
        .write_tree()
        .context(|| "writing the worktree's tree".into())?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .context(|| "reading the worktree's HEAD".into())?;
    if head.tree_id() == tree_id {
        return Ok(None);
    }
    let tree = repo
        .find_tree(tree_id)
        .context(|| "reading the new tree".into())?;
    let signature = signature(role)?;
    let commit = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &[&head],
        )
        .context(|| "committing the worktree".into())?;
    Ok(Some(commit))
}
