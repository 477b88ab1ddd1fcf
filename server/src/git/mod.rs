//! Git as the coordination protocol: snapshots of what the user sees, a worktree and branch per
//! task, commits, diffs, three-way merges, and applying results, all through git2 and none of it
//! touching the user's working tree, index, HEAD or stash (except `apply`, which the user asks
//! for, and which writes only files).
//!
//! The functions in the submodules are synchronous and take a `&git2::Repository`, so they are
//! easy to test. `GitRepo` is the handle the rest of pitcrew uses: it opens a fresh
//! `Repository` per operation on a blocking thread (a `Repository` is not `Sync`) and serialises
//! the operations of one process on one repository.

pub mod apply;
pub mod checkout;
pub mod cleanup;
pub mod commit;
pub mod diff;
pub mod merge;
pub mod paths;
pub mod snapshot;
pub mod user_merge;
pub mod worktree;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::Repository;

/// What went wrong in the git layer.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{context}: {source}")]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not inside a git repository")]
    NotARepository(PathBuf),
    #[error(
        "{} is a bare repository: pitcrew needs a working tree to snapshot and apply to \
         (clone it, or add one with `git worktree add <dir>` and run pitcrew there)",
        .0.display()
    )]
    Bare(PathBuf),
    #[error("invalid identifier {0:?}: use letters, digits, `.`, `_` and `-`")]
    InvalidId(String),
    #[error("{0}")]
    Refused(String),
    #[error("the git operation was interrupted: {0}")]
    Interrupted(String),
}

pub type Result<T> = std::result::Result<T, GitError>;

/// Adds context to git2 and io errors.
pub(crate) trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, git2::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| GitError::Git {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| GitError::Io {
            context: context(),
            source,
        })
    }
}

/// Checks that `id` can be part of a branch name and a directory name.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with(['.', '-'])
        && !id.ends_with(".lock")
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(GitError::InvalidId(id.to_owned()))
    }
}

/// The signature pitcrew commits with, whatever the user's configuration says.
pub fn signature(role: &str) -> Result<git2::Signature<'static>> {
    git2::Signature::now(&format!("pitcrew {role}"), "pitcrew@localhost")
        .context(|| "making a signature".into())
}

/// A repository, as the rest of pitcrew uses it.
#[derive(Debug, Clone)]
pub struct GitRepo {
    /// The main working tree.
    workdir: PathBuf,
    /// The common git directory (`.git` of the main working tree).
    git_dir: PathBuf,
    /// Serialises this process's operations on the repository.
    lock: Arc<Mutex<()>>,
}

impl GitRepo {
    /// Finds the repository containing `path`. Inside a linked worktree, it is the main one,
    /// unless the main repository is bare (then the linked worktree is the user's).
    pub fn discover(path: &Path) -> Result<Self> {
        let repo =
            Repository::discover(path).map_err(|_| GitError::NotARepository(path.to_owned()))?;
        let git_dir = repo.commondir().to_path_buf();
        let main =
            Repository::open(&git_dir).context(|| format!("opening {}", git_dir.display()))?;
        let workdir = main
            .workdir()
            .or_else(|| repo.workdir())
            .map(Path::to_path_buf)
            .ok_or_else(|| GitError::Bare(git_dir.clone()))?;
        Ok(Self {
            workdir,
            git_dir,
            lock: Arc::new(Mutex::new(())),
        })
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// `<git-dir>/pitcrew`: everything pitcrew keeps, outside the user's working tree.
    pub fn state_dir(&self) -> PathBuf {
        self.git_dir.join("pitcrew")
    }

    /// Opens the repository now, for synchronous use on the current thread.
    pub fn open(&self) -> Result<Repository> {
        Repository::open(&self.workdir).context(|| format!("opening {}", self.workdir.display()))
    }

    /// Runs `operation` on a blocking thread with a freshly opened repository, one such
    /// operation of this process at a time: for what touches state tasks share (the snapshot
    /// refs, git's worktree registry, the integration branch).
    pub async fn run<T, F>(&self, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Repository) -> Result<T> + Send + 'static,
    {
        self.spawn(true, operation).await
    }

    /// Like `run`, without waiting for other operations: for reads, and for work confined to one
    /// task's own worktree and branch (writing its files, committing, resetting it).
    pub async fn run_concurrently<T, F>(&self, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Repository) -> Result<T> + Send + 'static,
    {
        self.spawn(false, operation).await
    }

    async fn spawn<T, F>(&self, serial: bool, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Repository) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _serial = serial.then(|| this.lock.lock().unwrap_or_else(|p| p.into_inner()));
            let started = std::time::Instant::now();
            let repo = this.open()?;
            let result = operation(&repo);
            GIT_NANOS.fetch_add(
                started.elapsed().as_nanos() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            result
        })
        .await
        .map_err(|err| GitError::Interrupted(err.to_string()))?
    }

    /// A task's worktree, ready: registered under the lock, its files written concurrently with
    /// other tasks' git work.
    pub async fn ensure_worktree(
        &self,
        plan: &str,
        task: &str,
        start: git2::Oid,
    ) -> Result<worktree::TaskWorktree> {
        let (plan, task) = (plan.to_owned(), task.to_owned());
        let (prepared, checkout) = self
            .run(move |repo| worktree::prepare(repo, &plan, &task, start))
            .await?;
        if let Some(tree) = checkout {
            let ready = prepared.clone();
            self.run_concurrently(move |repo| worktree::populate(repo, &ready, tree))
                .await?;
        }
        Ok(prepared)
    }
}

/// Time spent in git operations by this process, for benchmarks that separate pitcrew's own
/// time from git's.
static GIT_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The total time this process has spent in git operations run through `GitRepo`.
pub fn time_in_git() -> std::time::Duration {
    std::time::Duration::from_nanos(GIT_NANOS.load(std::sync::atomic::Ordering::Relaxed))
}

/// A repository-relative path with `/` separators, from a path that may be absolute.
pub fn relative_path(workdir: &Path, path: &Path) -> Option<String> {
    let relative = if path.is_absolute() {
        path.strip_prefix(workdir).ok()?
    } else {
        path
    };
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            std::path::Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_safe_for_refs_and_paths() {
        for good in ["t1", "plan-3", "a.b_c-9"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in [
            "", "..", "a..b", ".hidden", "-x", "x.lock", "a/b", "a b", "ü",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths() {
        let root = Path::new("/repo");
        assert_eq!(
            relative_path(root, Path::new("/repo/src/a.rs")).as_deref(),
            Some("src/a.rs")
        );
        assert_eq!(
            relative_path(root, Path::new("src/./a.rs")).as_deref(),
            Some("src/a.rs")
        );
        assert_eq!(relative_path(root, Path::new("/elsewhere/a.rs")), None);
        assert_eq!(relative_path(root, Path::new("../a.rs")), None);
        assert_eq!(relative_path(root, Path::new("/repo")), None);
    }
}
