//! Nothing outlives pitcrew: however it ends (SIGTERM to `pitcrew run`, the editor closing the
//! connection, `shutdown` and `exit`), a running check's whole process tree ends with it, daemons
//! that left its process group included, and no task worktree stays locked; in the sandbox and
//! with the sandbox off.

use std::process::Stdio;
use std::time::{Duration, Instant};

use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{finish, plan, task as spec, write};
use serde_json::json;

/// A check that starts a daemon in a new session, a double-forked process, and then waits;
/// each sleeps for a number of seconds no other process on the machine uses, by which the test
/// finds them (pids inside a sandbox's PID namespace are not the ones outside).
fn check(tag: u32) -> String {
    format!(
        "#!/bin/sh\n\
         setsid sh -c 'exec sleep {tag}1' < /dev/null > /dev/null 2>&1 &\n\
         (sh -c 'exec sleep {tag}2' < /dev/null > /dev/null 2>&1 &)\n\
         exec sleep {tag}3\n"
    )
}

/// A unique tag for this test's sleeps.
fn tag() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Large and odd, so no other sleep on the machine has it.
    7_000 + (std::process::id() % 1_000) * 10 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `sandbox`: the `[sandbox]` table of the user's configuration.
fn scenario(tag: u32, sandbox: &str) -> TeamScenario {
    let scenario = TeamScenario::new(
        &[("check.sh", &check(tag))],
        vec![
            plan(json!([spec("t", "Write t.txt", &[])])),
            write("t", "t.txt", "t\n"),
            finish("t", "wrote t.txt"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let config = scenario.home.path().join("config/pitcrew");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!("[sandbox]\n{sandbox}\n"),
    )
    .unwrap();
    scenario
}

/// The pids of the processes running `sleep <tag>N`.
fn pids(tag: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.len() >= 2
                    && args[0].ends_with(b"sleep")
                    && args[1].starts_with(tag.to_string().as_bytes())
            })
        })
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
fn wait_for_check(tag: u32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = pids(tag);
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

/// Whether the process runs in a PID namespace of its own (the sandbox's), not the test's.
fn in_own_pid_namespace(pid: i32) -> bool {
    let namespace = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    namespace(&pid.to_string()) != namespace("self")
}

/// The check ran in the sandbox exactly when the mode says it should.
fn assert_confinement(started: &[i32], mode: &str) {
    let sandboxed = mode != MODES[1];
    for pid in started {
        assert_eq!(
            in_own_pid_namespace(*pid),
            sandboxed,
            "{mode}: process {pid} in a PID namespace of its own"
        );
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

/// Both ways checks run: in the sandbox (the default), and with the sandbox off.
const MODES: [&str; 2] = ["mode = \"auto\"", "mode = \"off\""];

#[test]
fn sigterm_to_pitcrew_run_ends_the_checks_tree_and_unlocks_its_worktree() {
    for mode in MODES {
        let tag = tag();
        let scenario = scenario(tag, mode);
        let mut child = scenario
            .command(&["run", "Write t"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = wait_for_check(tag);
        assert_confinement(&started, mode);
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(143), "{mode}");
        assert_all_ended(&started, &format!("SIGTERM ({mode})"));
        assert_no_locked_worktree(&scenario, "SIGTERM");
        // The plan was interrupted, not cancelled: it resumes with the same goal.
        let plan = scenario.plan();
        assert_ne!(plan["status"], "cancelled", "{plan:#}");
    }
}

#[test]
fn the_editor_closing_the_connection_ends_the_checks_tree() {
    for mode in MODES {
        let tag = tag();
        let scenario = scenario(tag, mode);
        let mut server = scenario
            .lsp()
            .env(
                "XDG_CONFIG_HOME",
                &scenario.home.path().join("config").to_string_lossy(),
            )
            .start();
        server.wait_for_team();
        server
            .command("pitcrew.plan", json!({"goal": "Write t"}))
            .expect("plan starts");
        let started = wait_for_check(tag);
        assert_confinement(&started, mode);
        server.disconnect();
        assert_all_ended(&started, &format!("the editor closed stdin ({mode})"));
        assert_no_locked_worktree(&scenario, "the editor closed stdin");
    }
}

#[test]
fn shutdown_and_exit_while_a_check_runs_end_its_tree() {
    for mode in MODES {
        let tag = tag();
        let scenario = scenario(tag, mode);
        let mut server = scenario
            .lsp()
            .env(
                "XDG_CONFIG_HOME",
                &scenario.home.path().join("config").to_string_lossy(),
            )
            .start();
        server.wait_for_team();
        server
            .command("pitcrew.plan", json!({"goal": "Write t"}))
            .expect("plan starts");
        let started = wait_for_check(tag);
        assert_confinement(&started, mode);
        assert_eq!(server.shutdown(), 0);
        assert_all_ended(&started, &format!("shutdown and exit ({mode})"));
        assert_no_locked_worktree(&scenario, "shutdown and exit");
    }
}
