//! An agent's view of its worktree: file tools that cannot leave it.
//!
//! Every path a model gives is untrusted. It must be relative, without `..`, and not inside
//! `.git`; reading follows symlinks only if they stay inside the worktree, and writing never
//! goes through a symlink. Files git ignores, and files that look like secrets (`.env`, keys),
//! are not shown to models unless the configuration says so. A refusal is an error the model
//! reads, not a crash.

use std::path::{Component, Path, PathBuf};

use regex::Regex;

use crate::config::ContextConfig;

/// Files larger than this are not read at all (a generated file, a data dump).
const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;
/// A file longer than this (in lines, or bytes) is answered a piece at a time.
const PIECE_LINES: usize = 400;
const PIECE_BYTES: usize = 32 * 1024;
/// Entries a listing returns at most.
const MAX_LISTED: usize = 500;
/// Matches a search returns at most.
const MAX_MATCHES: usize = 200;
/// Files larger than this are not searched.
const MAX_SEARCHED_BYTES: u64 = 1024 * 1024;

/// Why a tool call did not do what it asked; shown to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// Not allowed, whatever the arguments mean.
    #[error("refused: {0}")]
    Refused(String),
    /// Allowed, but it did not work.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    pub fn is_refusal(&self) -> bool {
        matches!(self, ToolError::Refused(_))
    }
}

/// An agent's worktree, and what it may see of it.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    /// `root`, with symlinks resolved.
    canonical_root: PathBuf,
    context: ContextConfig,
}

impl Workspace {
    pub fn new(root: &Path, context: ContextConfig) -> std::io::Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            canonical_root: root.canonicalize()?,
            context,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path a model means, checked: relative, no `..`, not in `.git`.
    fn relative(&self, path: &str) -> Result<PathBuf, ToolError> {
        let trimmed = path.trim();
        if trimmed.is_empty() || trimmed == "." {
            return Ok(PathBuf::new());
        }
        if trimmed.contains('\0') {
            return Err(ToolError::Refused("the path contains a NUL byte".into()));
        }
        let candidate = Path::new(trimmed);
        let mut relative = PathBuf::new();
        for component in candidate.components() {
            match component {
                Component::Normal(part) => {
                    let name = part.to_string_lossy();
                    if name.eq_ignore_ascii_case(".git") {
                        return Err(ToolError::Refused(format!(
                            "{path}: .git is not part of the code; agents may not touch it"
                        )));
                    }
                    // A name git would refuse to commit is refused now, with git's reason,
                    // rather than when the task's work is committed.
                    if let Some(reason) = crate::git::paths::component_refusal(&name) {
                        return Err(ToolError::Refused(format!("{path}: {reason}")));
                    }
                    relative.push(part);
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(ToolError::Refused(format!(
                        "{path}: `..` is not allowed; paths are relative to the repository root"
                    )));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(ToolError::Refused(format!(
                        "{path}: absolute paths are not allowed; use a path relative to the repository root"
                    )));
                }
            }
        }
        Ok(relative)
    }

    /// Resolves a path to read: it must exist, and what it resolves to must stay inside.
    fn readable(&self, path: &str) -> Result<(PathBuf, PathBuf), ToolError> {
        let relative = self.relative(path)?;
        let full = self.root.join(&relative);
        let canonical = full
            .canonicalize()
            .map_err(|_| ToolError::Failed(format!("{path}: no such file or directory")))?;
        if !canonical.starts_with(&self.canonical_root) {
            return Err(ToolError::Refused(format!(
                "{path}: a symbolic link that leads outside the repository"
            )));
        }
        if canonical
            .strip_prefix(&self.canonical_root)
            .is_ok_and(|inside| {
                inside
                    .components()
                    .any(|c| c.as_os_str().to_string_lossy().eq_ignore_ascii_case(".git"))
            })
        {
            return Err(ToolError::Refused(format!("{path}: leads into .git")));
        }
        self.check_visible(&relative, path)?;
        // A link to a secret is a secret: what it leads to is checked too.
        if let Ok(target) = canonical.strip_prefix(&self.canonical_root)
            && target != relative
            && !self.context.send_secrets
            && is_secret(&self.canonical_root, target)
        {
            return Err(ToolError::Refused(format!(
                "{path} leads to {}, which looks like a secret (keys, credentials); it is not shared with models",
                target.display()
            )));
        }
        Ok((relative, canonical))
    }

    /// Resolves a path to write: no symlink on the way, and the parent stays inside.
    fn writable(&self, path: &str) -> Result<(PathBuf, PathBuf), ToolError> {
        let relative = self.relative(path)?;
        if relative.as_os_str().is_empty() {
            return Err(ToolError::Refused("a file path is needed".into()));
        }
        let full = self.root.join(&relative);
        // Every part that exists must be a real directory (or, last, a real file) inside.
        let mut walked = self.root.clone();
        for component in relative.components() {
            walked.push(component);
            match std::fs::symlink_metadata(&walked) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(ToolError::Refused(format!(
                        "{path}: writes do not go through symbolic links"
                    )));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.check_visible(&relative, path)?;
        Ok((relative, full))
    }

    /// Refuses secrets and ignored files unless the configuration allows them.
    fn check_visible(&self, relative: &Path, path: &str) -> Result<(), ToolError> {
        if !self.context.send_secrets && is_secret(&self.root, relative) {
            return Err(ToolError::Refused(format!(
                "{path} looks like a secret (keys, credentials); it is not shared with models"
            )));
        }
        if !self.context.send_ignored && self.is_ignored(relative) {
            return Err(ToolError::Refused(format!(
                "{path} is ignored by git; it is not shared with models"
            )));
        }
        Ok(())
    }

    fn is_ignored(&self, relative: &Path) -> bool {
        if relative.as_os_str().is_empty() {
            return false;
        }
        crate::git::worktree::open_task(&self.root)
            .ok()
            .and_then(|repo| repo.is_path_ignored(relative).ok())
            .unwrap_or(false)
    }

    /// The whole text of a file.
    pub fn read_file(&self, path: &str) -> Result<String, ToolError> {
        self.read_text(path)
    }

    fn read_text(&self, path: &str) -> Result<String, ToolError> {
        let (_, canonical) = self.readable(path)?;
        let meta =
            std::fs::metadata(&canonical).map_err(|e| ToolError::Failed(format!("{path}: {e}")))?;
        if meta.is_dir() {
            return Err(ToolError::Failed(format!(
                "{path} is a directory; use list_files"
            )));
        }
        if meta.len() > MAX_READ_BYTES {
            return Err(ToolError::Failed(format!(
                "{path} is {} bytes, more than {MAX_READ_BYTES}; search it instead",
                meta.len()
            )));
        }
        let bytes =
            std::fs::read(&canonical).map_err(|e| ToolError::Failed(format!("{path}: {e}")))?;
        String::from_utf8(bytes).map_err(|_| ToolError::Failed(format!("{path} is not UTF-8 text")))
    }

    /// What the `read_file` tool answers: the file's text, or with a line range (one-based,
    /// inclusive) those lines. A file too long for one answer comes in pieces: the first,
    /// headed by the lines it holds and how to read on, so a long file never floods the
    /// model's context.
    pub fn read_lines(
        &self,
        path: &str,
        start_line: Option<usize>,
        end_line: Option<usize>,
    ) -> Result<String, ToolError> {
        let text = self.read_text(path)?;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let total = lines.len();
        let ranged = start_line.is_some() || end_line.is_some();
        if !ranged && total <= PIECE_LINES && text.len() <= PIECE_BYTES {
            return Ok(text);
        }
        let first = start_line.unwrap_or(1).max(1);
        if first > total.max(1) {
            return Err(ToolError::Failed(format!(
                "{path} has {total} lines; start_line {first} is past its end"
            )));
        }
        let wanted_end = end_line.unwrap_or(first + PIECE_LINES - 1).max(first);
        let mut piece = String::new();
        let mut last = first - 1;
        for line in lines.iter().skip(first - 1).take(wanted_end + 1 - first) {
            if piece.len() + line.len() > PIECE_BYTES && last >= first {
                break;
            }
            piece.push_str(line);
            last += 1;
        }
        let mut header = format!("[{path}: lines {first}-{last} of {total}");
        if last < total {
            header.push_str(&format!("; read on with start_line={}", last + 1));
        }
        header.push_str("]\n");
        Ok(header + &piece)
    }

    /// Files under `path` (the root by default), one per line, as git sees them: ignored files
    /// and `.git` left out.
    pub fn list_files(&self, path: Option<&str>) -> Result<String, ToolError> {
        let start = match path {
            Some(path) => self.readable(path)?.0,
            None => PathBuf::new(),
        };
        let files = self.walk(&start)?;
        let total = files.len();
        let mut out: Vec<String> = files.into_iter().take(MAX_LISTED).collect();
        if total > MAX_LISTED {
            out.push(format!(
                "... and {} more; list a subdirectory",
                total - MAX_LISTED
            ));
        }
        if out.is_empty() {
            return Ok("(no files)".into());
        }
        Ok(out.join("\n"))
    }

    /// Visible files under `start`, sorted, relative with `/`.
    fn walk(&self, start: &Path) -> Result<Vec<String>, ToolError> {
        let mut builder = ignore::WalkBuilder::new(self.root.join(start));
        builder
            .hidden(false)
            .git_ignore(!self.context.send_ignored)
            .git_exclude(!self.context.send_ignored)
            .git_global(false)
            .parents(true)
            .require_git(false)
            .follow_links(false)
            .filter_entry(|entry| entry.file_name() != ".git");
        let mut files = Vec::new();
        for entry in builder.build().flatten() {
            if !entry
                .file_type()
                .is_some_and(|t| t.is_file() || t.is_symlink())
            {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(&self.root) else {
                continue;
            };
            if !self.context.send_secrets && is_secret(&self.root, relative) {
                continue;
            }
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
        files.sort();
        Ok(files)
    }

    /// Lines matching the regular expression `pattern`, as `path:line: text`.
    pub fn search(&self, pattern: &str, path: Option<&str>) -> Result<String, ToolError> {
        let regex = Regex::new(pattern)
            .map_err(|e| ToolError::Failed(format!("invalid regular expression: {e}")))?;
        let start = match path {
            Some(path) => self.readable(path)?.0,
            None => PathBuf::new(),
        };
        let mut matches = Vec::new();
        // Beyond the cap, matches are counted, not shown, so the model knows what it missed.
        let (mut left_out, mut files_left_out) = (0usize, 0usize);
        'files: for file in self.walk(&start)? {
            let full = self.root.join(&file);
            // Links are not followed: one may lead outside, or into `.git`.
            let Ok(meta) = std::fs::symlink_metadata(&full) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_SEARCHED_BYTES {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&full) else {
                continue;
            };
            let mut in_this_file = false;
            for (number, line) in text.lines().enumerate() {
                if regex.is_match(line) {
                    if matches.len() >= MAX_MATCHES {
                        left_out += 1;
                        if !in_this_file {
                            files_left_out += 1;
                            in_this_file = true;
                        }
                        continue;
                    }
                    let line: String = line.chars().take(300).collect();
                    matches.push(format!("{file}:{}: {line}", number + 1));
                }
            }
            if left_out > 100_000 {
                matches.push("... and too many more to count; narrow the search".into());
                break 'files;
            }
        }
        if matches.is_empty() {
            return Ok("(no matches)".into());
        }
        if left_out > 0 {
            matches.push(format!(
                "... and {left_out} more matches in {files_left_out} files; narrow the search"
            ));
        }
        Ok(matches.join("\n"))
    }

    pub fn write_file(&self, path: &str, content: &str) -> Result<String, ToolError> {
        let (relative, full) = self.writable(path)?;
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ToolError::Failed(format!("{path}: {e}")))?;
            // The parent, now that it exists, must still be inside.
            let parent = parent
                .canonicalize()
                .map_err(|e| ToolError::Failed(format!("{path}: {e}")))?;
            if !parent.starts_with(&self.canonical_root) {
                return Err(ToolError::Refused(format!(
                    "{path}: leads outside the repository"
                )));
            }
        }
        let existing = std::fs::symlink_metadata(&full).ok();
        let existed = existing.is_some();
        // Keep the file's permissions (an edited script stays executable).
        let permissions = existing
            .filter(|m| m.is_file())
            .map(|m| m.permissions())
            .or_else(default_permissions);
        crate::team::store::write_atomically_with(&full, content.as_bytes(), permissions)
            .map_err(|e| ToolError::Failed(format!("{path}: {e}")))?;
        Ok(format!(
            "{} {} ({} lines)",
            if existed { "wrote" } else { "created" },
            relative.to_string_lossy(),
            content.lines().count()
        ))
    }

    /// Replaces the one occurrence of `old` with `new`.
    pub fn edit_file(&self, path: &str, old: &str, new: &str) -> Result<String, ToolError> {
        if old.is_empty() {
            return Err(ToolError::Failed(
                "`old` is empty; give the exact text to replace, or use write_file".into(),
            ));
        }
        let text = self.read_file(path)?;
        let count = text.matches(old).count();
        match count {
            0 => Err(ToolError::Failed(format!(
                "{path}: `old` does not occur; read the file and copy the text exactly, whitespace included"
            ))),
            1 => {
                let updated = text.replacen(old, new, 1);
                self.write_file(path, &updated)?;
                Ok(format!("edited {path}"))
            }
            n => Err(ToolError::Failed(format!(
                "{path}: `old` occurs {n} times; include more surrounding text so it occurs once"
            ))),
        }
    }
}

/// What a new file gets: readable by all, as with the usual umask.
#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}

/// Whether a file of the worktree (`relative` to `root`) usually holds secrets.
pub fn is_secret(root: &Path, relative: &Path) -> bool {
    let path = relative.to_string_lossy().replace('\\', "/");
    crate::git::paths::is_secret(&path, || std::fs::read(root.join(relative)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        git2::Repository::init(dir.path()).unwrap();
        std::fs::write(dir.path().join(".gitignore"), "target/\n").unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "fn a() {}\nfn b() {}\n").unwrap();
        std::fs::write(dir.path().join(".env"), "TOKEN=x\n").unwrap();
        std::fs::create_dir_all(dir.path().join("target")).unwrap();
        std::fs::write(dir.path().join("target/out"), "built\n").unwrap();
        let context = ContextConfig {
            send_ignored: false,
            send_secrets: false,
        };
        let ws = Workspace::new(dir.path(), context).unwrap();
        (dir, ws)
    }

    #[test]
    fn long_files_come_in_pieces_and_ranges_are_read() {
        let (dir, ws) = workspace();
        let long: String = (1..=1000).map(|n| format!("line {n}\n")).collect();
        std::fs::write(dir.path().join("src/long.rs"), &long).unwrap();
        let first = ws.read_lines("src/long.rs", None, None).unwrap();
        assert!(
            first.starts_with(
                "[src/long.rs: lines 1-400 of 1000; read on with start_line=401]\nline 1\n"
            ),
            "{}",
            &first[..80]
        );
        assert!(first.ends_with("line 400\n"));
        let range = ws.read_lines("src/long.rs", Some(998), Some(2000)).unwrap();
        assert_eq!(
            range,
            "[src/long.rs: lines 998-1000 of 1000]\nline 998\nline 999\nline 1000\n"
        );
        assert!(ws.read_lines("src/long.rs", Some(5000), None).is_err());
        // A short file comes whole, as it is.
        assert_eq!(
            ws.read_lines("src/lib.rs", None, None).unwrap(),
            "fn a() {}\nfn b() {}\n"
        );
        // Searches and listings say what they left out.
        let many: String = (0..300).map(|n| format!("needle {n}\n")).collect();
        std::fs::write(dir.path().join("src/many.rs"), many).unwrap();
        let found = ws.search("needle", None).unwrap();
        assert!(
            found.ends_with("... and 100 more matches in 1 files; narrow the search"),
            "{}",
            &found[found.len() - 80..]
        );
    }

    #[test]
    fn a_link_to_a_secret_is_a_secret() {
        let (dir, ws) = workspace();
        std::os::unix::fs::symlink(".env", dir.path().join("settings.txt")).unwrap();
        std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
        std::fs::write(dir.path().join("deploy/prod.env"), "TOKEN=y\n").unwrap();
        std::fs::write(dir.path().join(".npmrc"), "registry=https://example.org/\n").unwrap();
        let refused = ws.read_file("settings.txt");
        assert!(
            matches!(&refused, Err(ToolError::Refused(reason)) if reason.contains("leads to .env")),
            "{refused:?}"
        );
        assert!(matches!(
            ws.read_file("deploy/prod.env"),
            Err(ToolError::Refused(_))
        ));
        assert!(
            ws.read_file(".npmrc").is_ok(),
            "an .npmrc without tokens is not a secret"
        );
        std::fs::write(dir.path().join(".npmrc"), "//r/:_authToken=abc\n").unwrap();
        assert!(matches!(ws.read_file(".npmrc"), Err(ToolError::Refused(_))));
    }

    #[test]
    fn paths_outside_or_into_git_are_refused() {
        let (dir, ws) = workspace();
        for bad in [
            "../x",
            "/etc/passwd",
            "src/../../x",
            ".git/config",
            ".git/hooks/pre-commit",
            "a/.GIT/x",
            // Names git refuses to commit: refused with git's reason, before any work is lost.
            ".git.",
            "git~1/x",
            ".GiT./x",
            ".g\u{200c}it/config",
        ] {
            let read = ws.read_file(bad);
            let write = ws.write_file(bad, "x");
            assert!(
                matches!(write, Err(ToolError::Refused(_))),
                "writing {bad}: {write:?}"
            );
            assert!(read.is_err(), "reading {bad}");
        }
        std::os::unix::fs::symlink("/etc", dir.path().join("out")).unwrap();
        assert!(matches!(
            ws.read_file("out/passwd"),
            Err(ToolError::Refused(_))
        ));
        assert!(matches!(
            ws.write_file("out/evil", "x"),
            Err(ToolError::Refused(_))
        ));
        std::os::unix::fs::symlink("src/lib.rs", dir.path().join("inside")).unwrap();
        assert!(
            ws.read_file("inside").unwrap().contains("fn a"),
            "an inner link reads"
        );
        assert!(matches!(
            ws.write_file("inside", "x"),
            Err(ToolError::Refused(_))
        ));
        assert!(!Path::new("/etc/evil").exists());
    }

    #[test]
    fn secrets_and_ignored_files_stay_private() {
        let (_dir, ws) = workspace();
        assert!(matches!(ws.read_file(".env"), Err(ToolError::Refused(_))));
        assert!(matches!(
            ws.read_file("target/out"),
            Err(ToolError::Refused(_))
        ));
        let listing = ws.list_files(None).unwrap();
        assert_eq!(listing, ".gitignore\nsrc/lib.rs");
        assert_eq!(ws.search("TOKEN", None).unwrap(), "(no matches)");
        assert_eq!(ws.search("fn b", None).unwrap(), "src/lib.rs:2: fn b() {}");
    }

    #[test]
    fn writes_keep_the_executable_bit_and_search_does_not_follow_links() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, ws) = workspace();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "echo one\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        ws.edit_file("run.sh", "one", "two").unwrap();
        assert_eq!(
            std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "PASSWORD=hunter2\n").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            dir.path().join("leak.txt"),
        )
        .unwrap();
        assert_eq!(ws.search("hunter2", None).unwrap(), "(no matches)");
    }

    #[test]
    fn edits_need_exactly_one_occurrence() {
        let (dir, ws) = workspace();
        assert_eq!(
            ws.edit_file("src/lib.rs", "fn a() {}", "fn a() { 1 }")
                .unwrap(),
            "edited src/lib.rs"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("src/lib.rs")).unwrap(),
            "fn a() { 1 }\nfn b() {}\n"
        );
        let missing = ws.edit_file("src/lib.rs", "fn c", "x").unwrap_err();
        assert!(missing.to_string().contains("does not occur"));
        let twice = ws.edit_file("src/lib.rs", "fn ", "x").unwrap_err();
        assert!(twice.to_string().contains("occurs 2 times"));
        assert!(
            ws.write_file("new/dir/file.rs", "x\n")
                .unwrap()
                .starts_with("created")
        );
    }
}
