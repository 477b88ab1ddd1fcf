//! A parallel checkout of a tree into an empty worktree, and the worktree index to match.
//!
//! Creating a task's worktree is dominated by writing files. libgit2 (like `git worktree add`
//! with default settings) writes them one at a time; here directories are made first, then
//! files are written by several threads, each with its own `Repository` handle for reading
//! blobs. The index is then built from the tree with the stat data of the written files, so the
//! worktree is clean to `git status` at once. Trees whose `.gitattributes` ask for content
//! filters (end-of-line conversion, `ident`, filter drivers) are left to libgit2's checkout,
//! which applies them.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::{Context, GitError, Result};

/// One file to write.
struct Item {
    path: String,
    id: Oid,
    mode: i32,
}

/// Whether a tree can be checked out without content filters.
pub fn filter_free(repo: &Repository, tree: Oid) -> Result<bool> {
    let tree = repo
        .find_tree(tree)
        .context(|| format!("reading tree {tree}"))?;
    let mut free = true;
    tree.walk(TreeWalkMode::PreOrder, |_, entry| {
        if entry.name().ok() == Some(".gitattributes")
            && let Ok(blob) = repo.find_blob(entry.id())
        {
            let text = String::from_utf8_lossy(blob.content());
            let filtering = [
                "eol",
                "text",
                "crlf",
                "ident",
                "filter",
                "working-tree-encoding",
            ];
            if text.split_whitespace().any(|word| {
                filtering
                    .iter()
                    .any(|f| word.trim_start_matches(['-', '!']).starts_with(f))
            }) {
                free = false;
                return TreeWalkResult::Abort;
            }
        }
        TreeWalkResult::Ok
    })
    .ok();
    Ok(free)
}

/// Writes every file of `tree` under `dest` (which must be empty of them), using `threads`
/// threads, then writes the index of the worktree at `dest`.
pub fn checkout(repo: &Repository, tree_id: Oid, dest: &Path, threads: usize) -> Result<()> {
    let tree = repo
        .find_tree(tree_id)
        .context(|| format!("reading tree {tree_id}"))?;
    let mut items = Vec::new();
    let mut dirs = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = entry.name() else {
            return TreeWalkResult::Skip;
        };
        let path = format!("{dir}{name}");
        match entry.kind() {
            Some(ObjectType::Tree) => dirs.push(path),
            Some(ObjectType::Blob) => items.push(Item {
                path,
                id: entry.id(),
                mode: entry.filemode(),
            }),
            // A submodule: an empty directory, as git leaves it until `submodule update`.
            Some(ObjectType::Commit) => dirs.push(path),
            _ => {}
        }
        TreeWalkResult::Ok
    })
    .context(|| "walking the tree".into())?;

    for dir in &dirs {
        let full = dest.join(dir);
        std::fs::create_dir_all(&full).context(|| format!("creating {}", full.display()))?;
    }

    let git_dir: PathBuf = repo.commondir().to_path_buf();
    let threads = threads.clamp(1, 16).min(items.len().max(1));
    let chunks: Vec<Vec<&Item>> = (0..threads)
        .map(|k| items.iter().skip(k).step_by(threads).collect())
        .collect();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let git_dir = &git_dir;
                scope.spawn(move || -> Result<()> {
                    let reader = Repository::open(git_dir)
                        .context(|| format!("opening {}", git_dir.display()))?;
                    for item in chunk {
                        write_item(&reader, item, dest)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| GitError::Interrupted("a checkout thread panicked".into()))??;
        }
        Ok(())
    })?;

    // The index: the tree's entries, with the stat data of the files just written.
    let worktree = Repository::open(dest).context(|| format!("opening {}", dest.display()))?;
    let mut index = worktree
        .index()
        .context(|| "reading the worktree's index".into())?;
    index
        .read_tree(&tree)
        .context(|| "loading the tree into the index".into())?;
    let entries: Vec<git2::IndexEntry> = index.iter().collect();
    for mut entry in entries {
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        if let Ok(meta) = std::fs::symlink_metadata(dest.join(&path)) {
            stat_into(&mut entry, &meta);
            index.add(&entry).context(|| format!("indexing {path}"))?;
        }
    }
    index
        .write()
        .context(|| "writing the worktree's index".into())
}

fn write_item(repo: &Repository, item: &Item, dest: &Path) -> Result<()> {
    let full = dest.join(&item.path);
    let blob = repo
        .find_blob(item.id)
        .context(|| format!("reading {}", item.path))?;
    if item.mode == 0o120000 {
        let target = String::from_utf8_lossy(blob.content()).into_owned();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &full).context(|| format!("linking {}", item.path))?;
        #[cfg(not(unix))]
        std::fs::write(&full, target).context(|| format!("writing {}", item.path))?;
        return Ok(());
    }
    std::fs::write(&full, blob.content()).context(|| format!("writing {}", item.path))?;
    #[cfg(unix)]
    if item.mode == 0o100755 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755))
            .context(|| format!("making {} executable", item.path))?;
    }
    Ok(())
}

#[cfg(unix)]
fn stat_into(entry: &mut git2::IndexEntry, meta: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    // The index stores 32-bit fields; git truncates the same way.
    entry.ctime = git2::IndexTime::new(meta.ctime() as i32, meta.ctime_nsec() as u32);
    entry.mtime = git2::IndexTime::new(meta.mtime() as i32, meta.mtime_nsec() as u32);
    entry.dev = meta.dev() as u32;
    entry.ino = meta.ino() as u32;
    entry.uid = meta.uid();
    entry.gid = meta.gid();
    entry.file_size = meta.size() as u32;
}

#[cfg(not(unix))]
fn stat_into(entry: &mut git2::IndexEntry, meta: &std::fs::Metadata) {
    entry.file_size = meta.len() as u32;
}
