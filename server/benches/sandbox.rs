//! The sandbox's cost per check: how long a check takes to start and end in bubblewrap, against
//! the same check run unconfined, interleaved, on the same task worktree. Run with
//! `cargo bench -p pitcrew --bench sandbox`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use pitcrew::agents::sandbox::{RunSpec, Sandbox};
use pitcrew::config::{Config, SandboxMode};
use support::{Samples, TABLE_HEADER, machine, report};

/// Runs `script` in `sandbox` in `dir` to its end.
async fn time_one(sandbox: &Sandbox, dir: &Path, script: &str) -> Duration {
    let spec = RunSpec {
        script: script.to_owned(),
        dir: dir.to_path_buf(),
        network: false,
        env: Vec::new(),
        stdin: false,
    };
    let started = Instant::now();
    let running = sandbox.start(&spec).expect("the check starts");
    let output = running
        .child
        .wait_with_output()
        .await
        .expect("the check ends");
    assert!(output.status.success(), "{script} failed");
    started.elapsed()
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 3 } else { 200 };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A real task worktree, so that the sandbox binds a git directory as it does for checks.
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("a.txt")).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("bench", "bench@localhost").unwrap();
    let head = repo
        .commit(Some("HEAD"), &signature, &signature, "a", &tree, &[])
        .unwrap();
    let worktree = pitcrew::git::worktree::ensure(&repo, "bench", "t", head).unwrap();

    let mut config = Config::default();
    let sandboxed = Sandbox::new(&config);
    if let Err(reason) = sandboxed.runner() {
        report(&format!("no sandbox here: {reason}"));
        return;
    }
    config.sandbox.mode = SandboxMode::Off;
    let unconfined = Sandbox::new(&config);

    report(&format!("pitcrew sandbox benchmark on {}\n", machine()));
    report(TABLE_HEADER);
    for (label, script) in [
        ("`true`", "true"),
        ("`git status`", "git status --short >/dev/null"),
    ] {
        let mut inside = Samples::new(format!("{label} in bubblewrap"));
        let mut outside = Samples::new(format!("{label} unconfined"));
        for _ in 0..runs {
            inside.push(runtime.block_on(time_one(&sandboxed, &worktree.path, script)));
            outside.push(runtime.block_on(time_one(&unconfined, &worktree.path, script)));
        }
        report(&inside.row());
        report(&outside.row());
        let added = inside.median().saturating_sub(outside.median());
        report(&format!(
            "| {label}: added by the sandbox (difference of medians) | | {} | | |",
            support::format_duration(added)
        ));
    }
}
