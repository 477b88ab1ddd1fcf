//! Finding the workspace a CLI command works on.

use std::path::{Path, PathBuf};

/// The nearest ancestor of `start` (itself included) that is a git work tree or holds
/// `pitcrew.toml`; `start` itself when there is none.
pub fn find_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists() || dir.join(crate::config::WORKSPACE_FILE).is_file())
        .unwrap_or(start)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_enclosing_repository() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(find_root(&nested), dir.path());
        let loose = tempfile::tempdir().unwrap();
        assert_eq!(find_root(loose.path()), loose.path());
    }
}
