//! Throwaway git repositories made with the git command line in a private environment, and a
//! byte-for-byte record of everything of the user's that pitcrew must never change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Oid, Repository};

/// A repository made with the git command line, in a private environment.
pub struct TestRepo {
    dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
}

impl TestRepo {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self::new_in(&std::env::temp_dir())
    }

    /// A repository (and its private home) under `parent` instead of the system's temporary
    /// directory: where `/tmp` being hidden would hide it anyway, tests of what a sandbox
    /// hides need a place it hides on purpose.
    pub fn new_in(parent: &Path) -> Self {
        let repo = Self {
            dir: tempfile::tempdir_in(parent).unwrap(),
            home: tempfile::tempdir_in(parent).unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test User"]);
        repo.git(&["config", "user.email", "user@example.com"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = self.git_raw(args);
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn git_raw(&self, args: &[&str]) -> std::process::Output {
        Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.path().join("gitconfig"))
            .output()
            .expect("run git")
    }

    pub fn write(&self, path: &str, text: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).unwrap()
    }

    pub fn open(&self) -> Repository {
        Repository::open(self.path()).unwrap()
    }

    pub fn head(&self) -> Oid {
        Oid::from_str(self.git(&["rev-parse", "HEAD"]).trim()).unwrap()
    }

    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    pub fn assert_fsck_clean(&self) {
        let output = self.git_raw(&["fsck", "--strict", "--no-progress"]);
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "git fsck: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Everything of the user's that pitcrew must never change.
    pub fn user_state(&self) -> UserState {
        let git_dir = self.path().join(".git");
        let read = |path: PathBuf| std::fs::read(path).unwrap_or_default();
        UserState {
            files: files_of(self.path()),
            index: read(git_dir.join("index")),
            head_file: read(git_dir.join("HEAD")),
            head_commit: self.git(&["rev-parse", "HEAD"]),
            stash: self.git(&["stash", "list", "--format=%H %s"]),
            branches: self.git(&["for-each-ref", "refs/heads/main", "refs/stash"]),
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct UserState {
    pub files: BTreeMap<String, (Vec<u8>, u32)>,
    pub index: Vec<u8>,
    pub head_file: Vec<u8>,
    pub head_commit: String,
    pub stash: String,
    pub branches: String,
}

/// Every file of a working tree (not `.git`) with its bytes and mode; links as their target.
pub fn files_of(root: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if relative == ".git" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                files.insert(
                    relative,
                    (target.to_string_lossy().as_bytes().to_vec(), 0o120000),
                );
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                files.insert(
                    relative,
                    (std::fs::read(&path).unwrap(), meta.permissions().mode()),
                );
            }
        }
    }
    files
}
