//! Nothing outlives pitcrew: however it ends (SIGTERM to `pitcrew run`, the editor closing the
//! connection, `shutdown` and `exit`), a running check's whole process tree ends with it, daemons
//! that left its process group included, and no task worktree stays locked.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{finish, plan, task as spec, write};
use serde_json::json;

/// A check that starts a daemon in a new session, a double-forked process, and then waits; each
/// writes its pid to `$PITCREW_TEST_PIDS`.
const CHECK: &str = r#"#!/bin/sh
setsid sh -c 'echo $$ >> "$PITCREW_TEST_PIDS"; exec sleep 300' < /dev/null > /dev/null 2>&1 &
(sh -c 'echo $$ >> "$PITCREW_TEST_PIDS"; exec sleep 300' < /dev/null > /dev/null 2>&1 &)
echo $$ >> "$PITCREW_TEST_PIDS"
exec sleep 300
"#;

fn scenario() -> TeamScenario {
    TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("t", "Write t.txt", &[])])),
            write("t", "t.txt", "t\n"),
            finish("t", "wrote t.txt"),
        ],
        "",
        "test = \"sh check.sh\"",
    )
}

fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// Waits until the check's three processes run.
fn wait_for_check(file: &Path) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = pids(file);
        if found.len() >= 3 && found.iter().all(|p| alive(*p)) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the check never started: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_all_ended(started: &[i32], how: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<i32> = started.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            // Do not leave them behind for the next test either.
            for pid in &left {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
            panic!("after {how}, the check's processes {left:?} are still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_no_locked_worktree(scenario: &TeamScenario, how: &str) {
    let list = scenario.repo.git(&["worktree", "list", "--porcelain"]);
    assert!(
        list.contains("pitcrew"),
        "the task's worktree is kept: {list}"
    );
    assert!(
        !list.contains("locked"),
        "after {how}, a worktree is still locked: {list}"
    );
}

fn pid_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pids");
    (dir, file)
}

#[test]
fn sigterm_to_pitcrew_run_ends_the_checks_tree_and_unlocks_its_worktree() {
    let scenario = scenario();
    let (_dir, file) = pid_file();
    let mut child = scenario
        .command(&["run", "Write t"])
        .env("PITCREW_TEST_PIDS", &file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_for_check(&file);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert_all_ended(&started, "SIGTERM");
    assert_no_locked_worktree(&scenario, "SIGTERM");
    // The plan was interrupted, not cancelled: it resumes with the same goal.
    let plan = scenario.plan();
    assert_ne!(plan["status"], "cancelled", "{plan:#}");
}

#[test]
fn the_editor_closing_the_connection_ends_the_checks_tree() {
    let scenario = scenario();
    let (_dir, file) = pid_file();
    let mut server = scenario
        .lsp()
        .env("PITCREW_TEST_PIDS", &file.to_string_lossy())
        .start();
    server.wait_for_team();
    server
        .command("pitcrew.plan", json!({"goal": "Write t"}))
        .expect("plan starts");
    let started = wait_for_check(&file);
    server.disconnect();
    assert_all_ended(&started, "the editor closed stdin");
    assert_no_locked_worktree(&scenario, "the editor closed stdin");
}

#[test]
fn shutdown_and_exit_while_a_check_runs_end_its_tree() {
    let scenario = scenario();
    let (_dir, file) = pid_file();
    let mut server = scenario
        .lsp()
        .env("PITCREW_TEST_PIDS", &file.to_string_lossy())
        .start();
    server.wait_for_team();
    server
        .command("pitcrew.plan", json!({"goal": "Write t"}))
        .expect("plan starts");
    let started = wait_for_check(&file);
    assert_eq!(server.shutdown(), 0);
    assert_all_ended(&started, "shutdown and exit");
    assert_no_locked_worktree(&scenario, "shutdown and exit");
}
