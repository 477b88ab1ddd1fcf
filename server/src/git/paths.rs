//! Which repository paths git itself accepts: a path git refuses (`.git.`, `git~1/x`,
//! `.G\u{200c}it`) must be refused when an agent names it, not when its work is committed.
//!
//! The rules are libgit2's (`path.c`, with its defaults: `core.protectNTFS` on everywhere and
//! `core.protectHFS` on macOS, which we apply everywhere so that a result is valid on every
//! platform a user may check it out on): no empty, `.` or `..` component, and no component that
//! NTFS or HFS+ would read as `.git`.

/// Why git would refuse `path` (relative, `/`-separated), or `None` when it is acceptable.
pub fn refusal(path: &str) -> Option<String> {
    if path.contains('\0') {
        return Some("the path contains a NUL byte".into());
    }
    if path.starts_with('/') {
        return Some("the path is absolute".into());
    }
    for component in path.split('/') {
        if let Some(reason) = component_refusal(component) {
            return Some(reason);
        }
    }
    None
}

/// Why git would refuse one path component.
pub fn component_refusal(component: &str) -> Option<String> {
    match component {
        "" => return Some("the path has an empty component (`//`, or a trailing `/`)".into()),
        "." | ".." => return Some(format!("the path has a `{component}` component")),
        _ => {}
    }
    if is_dotgit_ntfs(component) {
        return Some(format!(
            "`{component}` names the repository's .git directory on Windows (NTFS); git refuses it"
        ));
    }
    if is_dotgit_hfs(component) {
        return Some(format!(
            "`{component}` names the repository's .git directory on macOS (HFS+); git refuses it"
        ));
    }
    None
}

/// NTFS: `.git` or its 8.3 short name `git~1`, in any case, followed by nothing but dots and
/// spaces (which NTFS drops), or by `:` (an alternate data stream) or `\` (a separator).
fn is_dotgit_ntfs(component: &str) -> bool {
    let lower = component.to_ascii_lowercase();
    [".git", "git~1"].into_iter().any(|reserved| {
        lower.strip_prefix(reserved).is_some_and(|rest| {
            rest.starts_with([':', '\\']) || rest.chars().all(|c| c == '.' || c == ' ')
        })
    })
}

/// HFS+: `.git` once the code points HFS+ ignores are removed, in any case.
fn is_dotgit_hfs(component: &str) -> bool {
    let folded: String = component
        .chars()
        .filter(|c| !is_hfs_ignorable(*c))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    folded == ".git"
}

/// The code points HFS+ ignores in file names (libgit2's `next_hfs_char`).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_git_refuses() {
        for bad in [
            ".git",
            ".GIT",
            ".git.",
            ".git. .",
            ".git ",
            ".GiT./x",
            "src/.git/config",
            "git~1",
            "GIT~1/x",
            "git~1.",
            ".git:$INDEX_ALLOCATION",
            ".git\\hooks",
            ".g\u{200c}it",
            ".\u{feff}GIT",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            "/etc/passwd",
            "a\0b",
        ] {
            assert!(refusal(bad).is_some(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ordinary_names_pass() {
        for good in [
            "src/lib.rs",
            ".gitignore",
            ".github/workflows/ci.yml",
            ".git-blame-ignore-revs",
            "docs/.gitkeep",
            "git~2",
            "git~1x",
            "gitx",
            ".git-x",
            "a.git",
            "notes/.git notes",
            "ü/ñ.txt",
        ] {
            assert_eq!(refusal(good), None, "{good:?} should pass");
        }
    }

    /// The rules match what libgit2 does when the path is added to an index.
    #[test]
    fn agrees_with_libgit2() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        // macOS' protection everywhere, as our rules apply it.
        repo.config()
            .unwrap()
            .set_bool("core.protectHFS", true)
            .unwrap();
        let blob = repo.blob(b"x").unwrap();
        for path in [
            ".git.",
            "git~1/x",
            ".GiT./x",
            ".g\u{200c}it/x",
            ".git:x",
            "src/lib.rs",
            ".gitignore",
            "git~2",
            ".git-x",
        ] {
            let mut index = repo.index().unwrap();
            let added = index.add(&super::super::snapshot::entry(path, blob, 0o100644, 1));
            assert_eq!(
                added.is_err(),
                refusal(path).is_some(),
                "{path:?}: libgit2 says {added:?}"
            );
        }
    }
}
