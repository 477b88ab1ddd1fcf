//! A worktree and branch per task, created, reused, locked, removed and recovered only by
//! pitcrew and only its own.
//!
//! Task `t` of plan `p` works in `<git-dir>/pitcrew/worktrees/p-t` on branch `pitcrew/p/t`,
//! registered with git as worktree `pitcrew-p-t` and locked while pitcrew uses it (so a user's
//! `git worktree prune` leaves it alone). A marker file in git's admin directory says the
//! creation finished; a worktree without it was cut short by a crash and is recreated.
//! Nothing is deleted that might hold work: directories pitcrew cannot account for are moved to
//! `<git-dir>/pitcrew/trash/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use git2::{BranchType, Oid, Repository, WorktreeAddOptions, WorktreePruneOptions};

use super::{Context, GitError, Result, check_id, checkout};

/// Locks older than this, in pitcrew's worktrees and branches, were left by a dead process.
pub const STALE_LOCK_AGE: Duration = Duration::from_secs(60);
/// Trash older than this is deleted during recovery.
const TRASH_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Written into git's admin directory for the worktree once creation has finished.
const READY_MARKER: &str = "pitcrew-ready";
const NAME_PREFIX: &str = "pitcrew-";

/// A task's worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskWorktree {
    /// The name git knows the worktree by.
    pub name: String,
    pub path: PathBuf,
    /// The branch, without `refs/heads/`.
    pub branch: String,
    /// The branch's commit when the worktree was handed out.
    pub head: Oid,
    /// True when an existing worktree was reused rather than created.
    pub reused: bool,
}

pub fn branch_name(plan: &str, task: &str) -> String {
    format!("pitcrew/{plan}/{task}")
}

fn worktree_name(plan: &str, task: &str) -> String {
    format!("{NAME_PREFIX}{plan}-{task}")
}

/// `<git-dir>/pitcrew/worktrees`.
pub fn worktrees_dir(repo: &Repository) -> PathBuf {
    repo.commondir().join("pitcrew").join("worktrees")
}

fn worktree_path(repo: &Repository, plan: &str, task: &str) -> PathBuf {
    worktrees_dir(repo).join(format!("{plan}-{task}"))
}

fn admin_dir(repo: &Repository, name: &str) -> PathBuf {
    repo.commondir().join("worktrees").join(name)
}

fn trash_dir(repo: &Repository) -> PathBuf {
    repo.commondir().join("pitcrew").join("trash")
}

/// Returns the worktree of `task`, creating it from `start` if needed. Idempotent: an existing,
/// complete worktree on the right branch is reused as it is, with whatever work it holds; an
/// existing branch is kept (it may hold committed work) and `start` is then ignored.
pub fn ensure(repo: &Repository, plan: &str, task: &str, start: Oid) -> Result<TaskWorktree> {
    let (worktree, checkout) = prepare(repo, plan, task, start)?;
    if let Some(tree) = checkout {
        populate(repo, &worktree, tree)?;
    }
    Ok(worktree)
}

/// The first half of `ensure`, which touches what tasks share (branches, git's worktree
/// registry): reuses a complete worktree, or registers a new one. Returns the tree still to be
/// written into it, when it is new; `populate` does that, and may run concurrently with other
/// tasks' git work.
pub fn prepare(
    repo: &Repository,
    plan: &str,
    task: &str,
    start: Oid,
) -> Result<(TaskWorktree, Option<Oid>)> {
    check_id(plan)?;
    check_id(task)?;
    let name = worktree_name(plan, task);
    let path = worktree_path(repo, plan, task);
    let branch = branch_name(plan, task);

    if let Ok(existing) = repo.find_worktree(&name) {
        let complete = admin_dir(repo, &name).join(READY_MARKER).is_file();
        let valid = existing.validate().is_ok() && same_path(existing.path(), &path);
        if complete && valid && checked_out_branch(existing.path()).as_deref() == Some(&branch) {
            // Locked for this process (a crash's lock names a dead one).
            lock(repo, &name, task)?;
            let head = branch_head(repo, &branch)?;
            let worktree = TaskWorktree {
                name,
                path,
                branch,
                head,
                reused: true,
            };
            return Ok((worktree, None));
        }
        tracing::warn!(worktree = %name, complete, valid, "recreating an unusable worktree");
        let old_path = existing.path().to_path_buf();
        if old_path.starts_with(worktrees_dir(repo)) && old_path.exists() {
            move_to_trash(repo, &old_path)?;
        }
        prune(repo, &name)?;
    }
    if path.exists() {
        move_to_trash(repo, &path)?;
    }

    let reference = match repo.find_branch(&branch, BranchType::Local) {
        Ok(existing) => existing.into_reference(),
        Err(_) => {
            let commit = repo
                .find_commit(start)
                .context(|| format!("finding the start commit {start}"))?;
            repo.branch(&branch, &commit, false)
                .context(|| format!("creating branch {branch}"))?
                .into_reference()
        }
    };
    std::fs::create_dir_all(worktrees_dir(repo))
        .context(|| format!("creating {}", worktrees_dir(repo).display()))?;
    let tree = reference
        .peel_to_tree()
        .context(|| format!("reading the tree of {branch}"))?
        .id();
    let parallel = checkout::filter_free(repo, tree)?;
    if parallel {
        register_empty(repo, &name, &path, &branch)?;
    } else {
        // libgit2 checks out (with the filters the tree asks for) as it registers.
        let mut options = WorktreeAddOptions::new();
        options.lock(true).reference(Some(&reference));
        repo.worktree(&name, &path, Some(&options))
            .context(|| format!("creating worktree {name} at {}", path.display()))?;
    }
    // Created locked (so never unprotected).
    lock(repo, &name, task)?;
    let head = branch_head(repo, &branch)?;
    let worktree = TaskWorktree {
        name,
        path,
        branch,
        head,
        reused: false,
    };
    if parallel {
        Ok((worktree, Some(tree)))
    } else {
        mark_ready(repo, &worktree)?;
        Ok((worktree, None))
    }
}

/// The second half of `ensure`: writes `tree` into a freshly prepared worktree and marks it
/// complete. Touches only that worktree.
pub fn populate(repo: &Repository, worktree: &TaskWorktree, tree: Oid) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    checkout::checkout(repo, tree, &worktree.path, threads)?;
    mark_ready(repo, worktree)
}

fn mark_ready(repo: &Repository, worktree: &TaskWorktree) -> Result<()> {
    std::fs::write(
        admin_dir(repo, &worktree.name).join(READY_MARKER),
        &worktree.branch,
    )
    .context(|| format!("marking worktree {} ready", worktree.name))
}

/// Registers an empty worktree at `path` on `branch`, writing git's worktree layout (see
/// gitrepository-layout(5)) directly: `gitdir`, `commondir` and `HEAD` in the admin directory,
/// and a `.git` file in the worktree. libgit2's `git_worktree_add` would check out as it
/// registers, and its registration alone (with the temporary branch an empty checkout needs)
/// measured near 70 ms on a slow disk, under the repository lock; this is a handful of small
/// files. `populate` writes the files and the index.
fn register_empty(repo: &Repository, name: &str, path: &Path, branch: &str) -> Result<()> {
    let admin = admin_dir(repo, name);
    std::fs::create_dir_all(&admin).context(|| format!("creating {}", admin.display()))?;
    std::fs::create_dir_all(path).context(|| format!("creating {}", path.display()))?;
    let admin = admin
        .canonicalize()
        .context(|| format!("resolving {}", admin.display()))?;
    let worktree = path
        .canonicalize()
        .context(|| format!("resolving {}", path.display()))?;
    let write = |file: PathBuf, text: String| {
        std::fs::write(&file, text).context(|| format!("writing {}", file.display()))
    };
    write(admin.join("commondir"), "../..\n".into())?;
    write(admin.join("HEAD"), format!("ref: refs/heads/{branch}\n"))?;
    write(
        admin.join("gitdir"),
        format!("{}\n", worktree.join(".git").display()),
    )?;
    write(
        worktree.join(".git"),
        format!("gitdir: {}\n", admin.display()),
    )?;
    Ok(())
}

fn lock_reason(task: &str) -> String {
    format!(
        "pitcrew: task {task} in progress (pid {})",
        std::process::id()
    )
}

/// The git directories in which this process has locked worktrees.
static LOCKED_IN: std::sync::LazyLock<std::sync::Mutex<std::collections::BTreeSet<PathBuf>>> =
    std::sync::LazyLock::new(Default::default);

/// Locks worktree `name` for this process; the reason says whose lock it is, as
/// `git worktree lock --reason` would write it.
fn lock(repo: &Repository, name: &str, task: &str) -> Result<()> {
    std::fs::write(admin_dir(repo, name).join("locked"), lock_reason(task))
        .context(|| format!("locking worktree {name}"))?;
    LOCKED_IN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(repo.commondir().to_path_buf());
    Ok(())
}

/// Unlocks every worktree this process locked and still holds: called on the way out, so a
/// task interrupted by pitcrew's end leaves its worktree (kept for the resumed plan) unlocked.
pub fn release_process_locks() {
    let dirs = LOCKED_IN.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ours = format!("(pid {})", std::process::id());
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join("worktrees")) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(NAME_PREFIX) {
                continue;
            }
            let locked = entry.path().join("locked");
            if std::fs::read_to_string(&locked).is_ok_and(|reason| reason.ends_with(&ours)) {
                let _ = std::fs::remove_file(&locked);
            }
        }
    }
}

/// Unlocks a task's worktree; it stays on disk for inspection or reuse.
pub fn release(repo: &Repository, plan: &str, task: &str) -> Result<()> {
    let name = worktree_name(plan, task);
    match repo.find_worktree(&name) {
        Ok(worktree) => {
            if matches!(
                worktree.is_locked(),
                Ok(git2::WorktreeLockStatus::Locked(_))
            ) {
                worktree
                    .unlock()
                    .context(|| format!("unlocking worktree {name}"))?;
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Removes a task's worktree (and, with `delete_branch`, its branch). Only pitcrew's own.
pub fn remove(repo: &Repository, plan: &str, task: &str, delete_branch: bool) -> Result<()> {
    check_id(plan)?;
    check_id(task)?;
    let name = worktree_name(plan, task);
    if repo.find_worktree(&name).is_ok() {
        prune(repo, &name)?;
    }
    let path = worktree_path(repo, plan, task);
    if path.exists() {
        std::fs::remove_dir_all(&path).context(|| format!("removing {}", path.display()))?;
    }
    if delete_branch
        && let Ok(mut branch) = repo.find_branch(&branch_name(plan, task), BranchType::Local)
    {
        branch
            .delete()
            .context(|| format!("deleting branch {}", branch_name(plan, task)))?;
    }
    Ok(())
}

/// Forgets worktree `name` in git. Its working directory, if any is left, is the caller's to
/// remove or keep.
fn prune(repo: &Repository, name: &str) -> Result<()> {
    if !name.starts_with(NAME_PREFIX) {
        return Err(GitError::Refused(format!(
            "worktree {name} is not pitcrew's; leaving it alone"
        )));
    }
    let worktree = repo
        .find_worktree(name)
        .context(|| format!("finding worktree {name}"))?;
    let mut options = WorktreePruneOptions::new();
    options.valid(true).locked(true).working_tree(false);
    worktree
        .prune(Some(&mut options))
        .context(|| format!("pruning worktree {name}"))?;
    // libgit2 leaves the admin directory behind when the working tree is already gone.
    let admin = admin_dir(repo, name);
    if admin.exists() {
        std::fs::remove_dir_all(&admin).context(|| format!("removing {}", admin.display()))?;
    }
    Ok(())
}

/// What recovery found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Worktrees whose creation a crash cut short, now forgotten.
    pub pruned: Vec<String>,
    /// Directories pitcrew could not account for, moved to the trash.
    pub trashed: Vec<PathBuf>,
    /// Locks left by dead processes, removed.
    pub stale_locks_removed: Vec<PathBuf>,
    /// Locks young enough to belong to a live process, kept.
    pub fresh_locks_kept: Vec<PathBuf>,
}

/// Repairs what a crashed pitcrew left behind: half-created worktrees, stray directories, and
/// stale lock files in pitcrew's own worktrees and branches. Never touches anything else.
pub fn recover(repo: &Repository) -> Result<Recovery> {
    recover_plans(repo, |_| true, false)
}

/// The plan a worktree name (`pitcrew-<plan>-<task>`), directory (`<plan>-<task>`) or branch
/// path (`<plan>/...`) belongs to: plan ids have no `-` or `/`.
fn plan_of(name: &str) -> &str {
    let name = name.strip_prefix(NAME_PREFIX).unwrap_or(name);
    name.split(['-', '/']).next().unwrap_or(name)
}

/// `recover`, for the plans `mine` accepts only: another process may be creating worktrees of
/// the plans it runs, and those are not leftovers. `mine` vouches that no other process runs
/// the plans it accepts (their plan lock was free), so their locks are a crash's, however
/// young they are.
pub fn recover_where(repo: &Repository, mine: impl Fn(&str) -> bool) -> Result<Recovery> {
    recover_plans(repo, mine, true)
}

fn recover_plans(repo: &Repository, mine: impl Fn(&str) -> bool, owned: bool) -> Result<Recovery> {
    let mut recovery = Recovery::default();
    let names = repo.worktrees().context(|| "listing worktrees".into())?;
    let mut registered = Vec::new();
    let names: Vec<&str> = names.iter().filter_map(|n| n.ok().flatten()).collect();
    for name in names
        .into_iter()
        .filter(|n| n.starts_with(NAME_PREFIX) && mine(plan_of(n)))
    {
        let complete = admin_dir(repo, name).join(READY_MARKER).is_file();
        let valid = repo.find_worktree(name).is_ok_and(|w| w.validate().is_ok());
        if complete && valid {
            if let Ok(worktree) = repo.find_worktree(name) {
                registered.push(worktree.path().to_path_buf());
            }
            continue;
        }
        if let Ok(worktree) = repo.find_worktree(name) {
            let path = worktree.path().to_path_buf();
            if path.starts_with(worktrees_dir(repo)) && path.exists() {
                move_to_trash(repo, &path)?;
                recovery.trashed.push(path);
            }
        }
        prune(repo, name)?;
        recovery.pruned.push(name.to_owned());
    }

    // Directories in pitcrew's worktrees directory that git does not know.
    if let Ok(entries) = std::fs::read_dir(worktrees_dir(repo)) {
        for entry in entries.flatten() {
            let path = entry.path();
            let plan = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir()
                && mine(plan_of(&plan))
                && !registered.iter().any(|known| same_path(known, &path))
            {
                move_to_trash(repo, &path)?;
                recovery.trashed.push(path);
            }
        }
    }

    // Lock files in pitcrew's admin directories and under its branches.
    let mut lock_dirs: Vec<PathBuf> = std::fs::read_dir(repo.commondir().join("worktrees"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(NAME_PREFIX) && mine(plan_of(&name))
        })
        .map(|e| e.path())
        .collect();
    if let Ok(plans) = std::fs::read_dir(repo.commondir().join("refs/heads/pitcrew")) {
        lock_dirs.extend(
            plans
                .flatten()
                .filter(|e| mine(&e.file_name().to_string_lossy()))
                .map(|e| e.path()),
        );
    }
    // When `mine` vouches for them, those belong to plans no other pitcrew runs, and nothing
    // else writes there: a lock left in them is a crash's, however young. Otherwise, and for
    // the shared refs/pitcrew (snapshots), only locks older than a minute are stale.
    let owned = if owned { lock_dirs.len() } else { 0 };
    lock_dirs.push(repo.commondir().join("refs/pitcrew"));
    let now = SystemTime::now();
    for (index, dir) in lock_dirs.into_iter().enumerate() {
        for lock in lock_files(&dir) {
            let age = std::fs::metadata(&lock)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .unwrap_or_default();
            if index < owned || age >= STALE_LOCK_AGE {
                std::fs::remove_file(&lock).context(|| format!("removing {}", lock.display()))?;
                recovery.stale_locks_removed.push(lock);
            } else {
                recovery.fresh_locks_kept.push(lock);
            }
        }
    }

    // Old trash.
    if let Ok(entries) = std::fs::read_dir(trash_dir(repo)) {
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > TRASH_RETENTION);
            if old {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(recovery)
}

/// `*.lock` files under `dir`, recursively.
fn lock_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(lock_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "lock") {
            found.push(path);
        }
    }
    found
}

fn move_to_trash(repo: &Repository, path: &Path) -> Result<()> {
    let trash = trash_dir(repo);
    std::fs::create_dir_all(&trash).context(|| format!("creating {}", trash.display()))?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "worktree".into());
    let target = trash.join(format!("{file_name}-{stamp}"));
    tracing::warn!(
        "moving {} to {} (pitcrew could not account for it)",
        path.display(),
        target.display()
    );
    std::fs::rename(path, &target).context(|| format!("moving {} to the trash", path.display()))
}

fn branch_head(repo: &Repository, branch: &str) -> Result<Oid> {
    repo.find_branch(branch, BranchType::Local)
        .context(|| format!("finding branch {branch}"))?
        .get()
        .peel_to_commit()
        .map(|c| c.id())
        .context(|| format!("reading branch {branch}"))
}

/// The git directories of the task worktree at `path`, from pitcrew's own layout, never from
/// the worktree's `.git` file (which code running in the worktree can rewrite): the worktree's
/// admin directory and the repository's common git directory. `None` when `path` is not a
/// task worktree.
pub fn task_dirs(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let path = path.canonicalize().ok()?;
    let name = path.file_name()?.to_str()?;
    let worktrees = path.parent()?;
    let state = worktrees.parent()?;
    if worktrees.file_name()? != "worktrees" || state.file_name()? != "pitcrew" {
        return None;
    }
    let common = state.parent()?.to_path_buf();
    let admin = common
        .join("worktrees")
        .join(format!("{NAME_PREFIX}{name}"));
    admin.is_dir().then_some((admin, common))
}

/// Opens the task worktree at `path`, after putting its `.git` file back to what pitcrew wrote:
/// a check may have pointed it at another repository (the user's, say), and pitcrew commits and
/// resets there. Any other path is opened as it is.
pub fn open_task(path: &Path) -> Result<Repository> {
    repair_pointer(path)?;
    Repository::open(path).context(|| format!("opening {}", path.display()))
}

/// Restores the `.git` file of the task worktree at `path` to point at its admin directory.
pub fn repair_pointer(path: &Path) -> Result<()> {
    let Some((admin, _)) = task_dirs(path) else {
        return Ok(());
    };
    let pointer = path.join(".git");
    let expected = format!("gitdir: {}\n", admin.display());
    let current = std::fs::symlink_metadata(&pointer)
        .ok()
        .filter(|meta| meta.is_file())
        .and_then(|_| std::fs::read_to_string(&pointer).ok());
    if current.as_deref() != Some(expected.as_str()) {
        tracing::warn!(
            "the .git file of {} was changed; putting it back",
            path.display()
        );
        if std::fs::symlink_metadata(&pointer).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&pointer)
        } else {
            std::fs::remove_file(&pointer).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
        }
        .context(|| format!("removing {}", pointer.display()))?;
        std::fs::write(&pointer, expected).context(|| format!("writing {}", pointer.display()))?;
    }
    Ok(())
}

/// The branch checked out in the worktree at `path`, without `refs/heads/`.
fn checked_out_branch(path: &Path) -> Option<String> {
    let repo = open_task(path).ok()?;
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok()??;
    target.strip_prefix("refs/heads/").map(str::to_owned)
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Discards what is not committed in the worktree at `path`: changes are reset to HEAD and
/// untracked files removed (ignored ones, like build output, stay).
pub fn reset_clean(path: &Path) -> Result<()> {
    let worktree = open_task(path)?;
    let head = worktree
        .head()
        .and_then(|h| h.peel_to_commit())
        .context(|| "reading the worktree's HEAD".into())?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.force();
    worktree
        .reset(head.as_object(), git2::ResetType::Hard, Some(&mut checkout))
        .context(|| format!("resetting {}", path.display()))?;
    // A hard reset leaves untracked files (as `git reset --hard` does); remove them as
    // `git clean -fd` would, leaving ignored ones.
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = worktree
        .statuses(Some(&mut options))
        .context(|| format!("reading the status of {}", path.display()))?;
    let mut dirs = std::collections::BTreeSet::new();
    for entry in statuses.iter() {
        if !entry.status().contains(git2::Status::WT_NEW) {
            continue;
        }
        let Ok(relative) = entry.path() else { continue };
        let full = path.join(relative);
        std::fs::remove_file(&full).context(|| format!("removing {}", full.display()))?;
        let mut parent = Path::new(relative).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    // Deepest first; a directory that still holds something (an ignored file) stays.
    for dir in dirs.iter().rev() {
        let _ = std::fs::remove_dir(path.join(dir));
    }
    Ok(())
}

/// Moves a task's branch to `commit` and its worktree with it (only changed files are written).
pub fn move_to(repo: &Repository, worktree: &TaskWorktree, commit: Oid) -> Result<()> {
    let target = repo
        .find_commit(commit)
        .context(|| format!("finding {commit}"))?;
    repo.branch(&worktree.branch, &target, true)
        .context(|| format!("moving branch {}", worktree.branch))?;
    reset_clean(&worktree.path)
}
