//! Benchmark: a task's worktree against `git worktree add` on generated repositories, and a
//! snapshot with 50 open buffers. Run with `cargo bench -p pitcrew --bench git`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use git2::Repository;
use pitcrew::git::snapshot::{self, Buffer};
use pitcrew::git::worktree;
use support::{Samples, TABLE_HEADER, machine, report};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

/// A repository of `n_files` source-like files of about 1 KB in 100 directories.
fn generate(n_files: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    for i in 0..n_files {
        let path = dir
            .path()
            .join(format!("src/m{:03}/file{i:05}.rs", i % 100));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body: String = (0..24)
            .map(|line| format!("pub fn f{i}_{line}() -> u64 {{ {line} }}\n"))
            .collect();
        std::fs::write(path, body).unwrap();
    }
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "generated"]);
    dir
}

fn bench_worktrees(n_files: usize, runs: usize) -> (Samples, Samples) {
    let dir = generate(n_files);
    let repo = Repository::open(dir.path()).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap().id();
    let mut ours = Samples::new(format!("pitcrew task worktree, {n_files} files"));
    let mut theirs = Samples::new(format!("git worktree add, {n_files} files"));
    let elsewhere = tempfile::tempdir().unwrap();
    // Warm the page cache for both.
    worktree::ensure(&repo, "bench", "warm", head).unwrap();
    worktree::remove(&repo, "bench", "warm", true).unwrap();
    for run in 0..runs {
        let task = format!("t{run}");
        let started = Instant::now();
        let created = worktree::ensure(&repo, "bench", &task, head).unwrap();
        ours.push(started.elapsed());
        assert!(created.path.join("src/m000/file00000.rs").is_file());
        worktree::remove(&repo, "bench", &task, true).unwrap();

        let path = elsewhere.path().join(format!("git-{run}"));
        let branch = format!("bench-git-{run}");
        let started = Instant::now();
        git(
            dir.path(),
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &branch,
                path.to_str().unwrap(),
                "HEAD",
            ],
        );
        theirs.push(started.elapsed());
        git(
            dir.path(),
            &["worktree", "remove", "--force", path.to_str().unwrap()],
        );
    }
    (ours, theirs)
}

fn bench_snapshot(n_files: usize, n_buffers: usize, runs: usize) -> Samples {
    let dir = generate(n_files);
    // Some work in progress besides the buffers.
    for i in 0..20 {
        std::fs::write(
            dir.path()
                .join(format!("src/m001/file{:05}.rs", i * 100 + 1)),
            "edited\n",
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("untracked.rs"), "new\n").unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    let buffers: Vec<Buffer> = (0..n_buffers)
        .map(|i| Buffer {
            path: format!("src/m{:03}/file{:05}.rs", i % 100, i).into(),
            text: format!("// unsaved edit {i}\n"),
        })
        .collect();
    let mut samples = Samples::new(format!(
        "snapshot, {n_files} files, {n_buffers} open buffers"
    ));
    snapshot::create(&repo, "warm", &buffers).unwrap();
    for run in 0..runs {
        let started = Instant::now();
        snapshot::create(&repo, &format!("s{run}"), &buffers).unwrap();
        samples.push(started.elapsed());
    }
    samples
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent; keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (small_runs, large_runs) = if quick { (2, 1) } else { (30, 15) };
    let large = if quick { 2_000 } else { 20_000 };
    report(&format!("pitcrew git benchmark on {}\n", machine()));
    report(TABLE_HEADER);
    for (n_files, runs) in [(2_000, small_runs), (large, large_runs)] {
        let (ours, theirs) = bench_worktrees(n_files, runs);
        report(&ours.row());
        report(&theirs.row());
    }
    report(&bench_snapshot(2_000, 50, small_runs).row());
    report(&bench_snapshot(large, 50, large_runs).row());
}
