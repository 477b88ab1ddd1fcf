//! Which repository paths git itself accepts: a path git refuses (`.git.`, `git~1/x`,
//! `.G\u{200c}it`) must be refused when an agent names it, not when its work is committed.
//! And which paths hold secrets (`is_secret`), which stay out of models' sight and snapshots.
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

/// Whether the file at `path` (relative, `/`-separated) usually holds secrets: keys,
/// credentials, tokens. `content` is asked for only where the name alone does not tell
/// (`.npmrc` and `.pypirc` hold tokens only sometimes).
///
/// Such files are not shown to models, and untracked ones are not copied into snapshots.
pub fn is_secret(path: &str, content: impl FnOnce() -> Option<Vec<u8>>) -> bool {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let exact = [
        ".env",
        ".envrc",
        ".netrc",
        "_netrc",
        ".git-credentials",
        "credentials.json",
        ".htpasswd",
        ".pgpass",
    ];
    let suffixes = [".pem", ".key", ".p12", ".pfx", ".keystore", ".jks", ".env"];
    // `id_rsa`, `id_ed25519`, `id_ecdsa`...: private keys (their `.pub` halves are not).
    let private_key = name.starts_with("id_") && !name.ends_with(".pub") && !name.contains('.');
    let aws = lower == ".aws/credentials" || lower.ends_with("/.aws/credentials");
    let secrets_yaml = name == "secrets.yml" || name == "secrets.yaml";
    if exact.contains(&name)
        || name.starts_with(".env.")
        || suffixes.iter().any(|suffix| name.ends_with(suffix))
        || private_key
        || aws
        || secrets_yaml
    {
        return true;
    }
    if name == ".npmrc" || name == ".pypirc" {
        return content().is_none_or(|content| {
            let text = String::from_utf8_lossy(&content).to_ascii_lowercase();
            ["_auth", "token", "password"]
                .iter()
                .any(|word| text.contains(word))
        });
    }
    false
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

    #[test]
    fn secrets_by_name_and_by_content() {
        let none = || None;
        for secret in [
            ".env",
            "app/.env",
            ".env.local",
            "prod.env",
            ".envrc",
            "id_rsa",
            "home/.ssh/id_ed25519",
            "certs/server.pem",
            "tls.key",
            ".aws/credentials",
            ".git-credentials",
            ".netrc",
            "credentials.json",
            "config/secrets.yml",
            "secrets.yaml",
        ] {
            assert!(is_secret(secret, none), "{secret}");
        }
        for ordinary in [
            "src/env.rs",
            "id_rsa.pub",
            "docs/environment.md",
            "keys.rs",
            "aws/credentials.md",
            "secrets.md",
        ] {
            assert!(!is_secret(ordinary, none), "{ordinary}");
        }
        let with = |text: &'static str| move || Some(text.as_bytes().to_vec());
        assert!(is_secret(
            ".npmrc",
            with("//registry.npmjs.org/:_authToken=abc\n")
        ));
        assert!(!is_secret(
            ".npmrc",
            with("registry=https://registry.npmjs.org/\n")
        ));
        assert!(is_secret("pkg/.pypirc", with("[pypi]\npassword = x\n")));
        assert!(is_secret(".npmrc", none), "unreadable: assume the worst");
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
