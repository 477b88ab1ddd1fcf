//! Property test: pitcrew's trial merge finds exactly the conflicts that
//! `git merge-tree --write-tree` finds, on random pairs of branches from a common base.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use git2::{Oid, Repository};
use pitcrew::git::merge::trial_merge;
use proptest::prelude::*;

const FILES: usize = 4;
const LINES: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    /// Replace a line of a base file.
    Modify {
        file: usize,
        line: usize,
        text: &'static str,
    },
    Delete {
        file: usize,
    },
    /// Add a new file.
    Add {
        name: &'static str,
        text: &'static str,
    },
    Append {
        file: usize,
        text: &'static str,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let text = prop::sample::select(vec!["x", "y", "changed", "same"]);
    prop_oneof![
        6 => (0..FILES, 0..LINES, text.clone()).prop_map(|(file, line, text)| Op::Modify { file, line, text }),
        1 => (0..FILES).prop_map(|file| Op::Delete { file }),
        1 => (prop::sample::select(vec!["n0", "n1"]), text.clone()).prop_map(|(name, text)| Op::Add { name, text }),
        1 => (0..FILES, text).prop_map(|(file, text)| Op::Append { file, text }),
    ]
}

fn base_files() -> BTreeMap<String, String> {
    (0..FILES)
        .map(|f| {
            let text: String = (0..LINES).map(|l| format!("file {f} line {l}\n")).collect();
            (format!("f{f}.txt"), text)
        })
        .collect()
}

fn apply(ops: &[Op]) -> BTreeMap<String, String> {
    let mut files = base_files();
    for op in ops {
        match op {
            Op::Modify { file, line, text } => {
                if let Some(content) = files.get_mut(&format!("f{file}.txt")) {
                    let mut lines: Vec<String> = content.lines().map(str::to_owned).collect();
                    if *line < lines.len() {
                        lines[*line] = (*text).to_owned();
                    }
                    *content = lines.iter().map(|l| format!("{l}\n")).collect();
                }
            }
            Op::Delete { file } => {
                files.remove(&format!("f{file}.txt"));
            }
            Op::Add { name, text } => {
                files.insert(format!("{name}.txt"), format!("{text}\n"));
            }
            Op::Append { file, text } => {
                if let Some(content) = files.get_mut(&format!("f{file}.txt")) {
                    content.push_str(text);
                    content.push('\n');
                }
            }
        }
    }
    files
}

fn commit(repo: &Repository, files: &BTreeMap<String, String>, parent: Option<Oid>) -> Oid {
    let mut index = git2::Index::new().unwrap();
    for (path, text) in files {
        let blob = repo.blob(text.as_bytes()).unwrap();
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: text.len() as u32,
            id: blob,
            flags: path.len() as u16,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).unwrap();
    }
    let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
    let signature = git2::Signature::now("prop", "prop@example.com").unwrap();
    let parents: Vec<git2::Commit<'_>> = parent
        .iter()
        .map(|p| repo.find_commit(*p).unwrap())
        .collect();
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(None, &signature, &signature, "c", &tree, &parent_refs)
        .unwrap()
}

/// The conflicted paths according to git itself.
fn git_conflicts(dir: &Path, a: Oid, b: Oid) -> BTreeSet<String> {
    let output = Command::new("git")
        .args(["merge-tree", "--write-tree", "--name-only", "--no-messages"])
        .arg(a.to_string())
        .arg(b.to_string())
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git merge-tree (git 2.38 or later)");
    match output.status.code() {
        Some(0) => BTreeSet::new(),
        Some(1) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1)
            .take_while(|line| !line.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => panic!(
            "git merge-tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    base: Oid,
}

fn fixture() -> &'static std::sync::Mutex<Fixture> {
    static FIXTURE: std::sync::OnceLock<std::sync::Mutex<Fixture>> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let base = commit(&repo, &base_files(), None);
        let path = dir.path().to_path_buf();
        std::sync::Mutex::new(Fixture {
            _dir: dir,
            path,
            base,
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn trial_merge_agrees_with_git_merge_tree(
        ours in prop::collection::vec(op(), 0..5),
        theirs in prop::collection::vec(op(), 0..5),
    ) {
        let fixture = fixture().lock().unwrap();
        let repo = Repository::open(&fixture.path).unwrap();
        let a = commit(&repo, &apply(&ours), Some(fixture.base));
        let b = commit(&repo, &apply(&theirs), Some(fixture.base));
        let ours_found: BTreeSet<String> = trial_merge(&repo, a, b)
            .unwrap()
            .into_iter()
            .map(|c| c.path)
            .collect();
        let git_found = git_conflicts(&fixture.path, a, b);
        prop_assert_eq!(ours_found, git_found);
    }
}
