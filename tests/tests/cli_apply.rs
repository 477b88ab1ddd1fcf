//! `pitcrew apply` as a user meets it: the command every run recommends applies the plan,
//! whole or not at all, keeps what the user typed next to the agents' lines, finishes an apply
//! a crash cut short, and asks before applying onto another branch.

use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{approve, edit, finish, plan, task as spec, with, write};
use serde_json::{Value, json};

const CHECK: &str = "#!/bin/sh\nexit 0\n";
const LIB: &str = "fn parse() {\n    todo!()\n}\n\nfn other() {}\n";
const LIB_DONE: &str = "fn parse() {\n    parse_all()\n}\n\nfn other() {}\n";

/// A plan of two tasks: `lib` rewrites the body of `parse` in lib.rs, `new` adds new.txt.
fn scenario() -> TeamScenario {
    scenario_with_planner_latency(0)
}

fn scenario_with_planner_latency(latency_ms: u64) -> TeamScenario {
    TeamScenario::new(
        &[
            ("check.sh", CHECK),
            ("lib.rs", LIB),
            ("notes.txt", "notes\n"),
        ],
        vec![
            with(
                plan(json!([
                    spec("lib", "Implement parse", &[]),
                    spec("new", "Write new.txt", &[]),
                ])),
                "latency_ms",
                json!(latency_ms),
            ),
            edit("lib", "lib.rs", "    todo!()\n", "    parse_all()\n"),
            finish("lib", "implemented parse"),
            write("new", "new.txt", "new\n"),
            finish("new", "added new.txt"),
            approve("lib"),
            approve("new"),
        ],
        "",
        "test = \"sh check.sh\"",
    )
}

fn pitcrew(scenario: &TeamScenario, args: &[&str]) -> (Option<i32>, String, String) {
    let output = scenario.command(args).output().expect("run pitcrew");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ready_plan(scenario: &TeamScenario) -> String {
    let outcome = scenario.run("Implement parse and add new", &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert!(
        outcome.stdout.contains("Apply it with `pitcrew apply"),
        "{}",
        outcome.all()
    );
    let plan = scenario.plan();
    assert_eq!(plan["status"], "ready", "{plan:#}");
    plan["id"].as_str().unwrap().to_owned()
}

fn status_of(scenario: &TeamScenario, id: &str) -> Value {
    scenario
        .plans()
        .into_iter()
        .find(|p| p["id"] == id)
        .unwrap()["status"]
        .clone()
}

#[test]
fn apply_applies_the_ready_plan_and_says_so_the_second_time() {
    let scenario = scenario();
    let id = ready_plan(&scenario);
    // Nothing of the result is in the working tree before the user applies it.
    assert_eq!(scenario.repo.read("lib.rs"), LIB);
    assert!(!scenario.path().join("new.txt").exists());

    let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Applied to your working tree"), "{stdout}");
    assert_eq!(scenario.repo.read("lib.rs"), LIB_DONE);
    assert_eq!(scenario.repo.read("new.txt"), "new\n");
    assert_eq!(status_of(&scenario, &id), "applied");
    // Applied as files: nothing staged, nothing committed.
    let status = scenario.repo.git(&["status", "--porcelain"]);
    assert!(
        status.contains(" M lib.rs") && status.contains("?? new.txt"),
        "{status}"
    );

    for args in [&["apply", &id][..], &["apply"]] {
        let (code, stdout, stderr) = pitcrew(&scenario, args);
        assert_eq!(code, Some(0), "{args:?}: {stdout}\n{stderr}");
        assert!(stdout.contains("already applied"), "{args:?}: {stdout}");
    }
    assert_eq!(scenario.repo.read("lib.rs"), LIB_DONE);
}

#[test]
fn apply_by_plan_id_applies_that_plan() {
    let scenario = scenario();
    let id = ready_plan(&scenario);
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply", &id]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(scenario.repo.read("new.txt"), "new\n");
    assert_eq!(status_of(&scenario, &id), "applied");
    let (code, _, stderr) = pitcrew(&scenario, &["apply", "pnosuchplan"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("there is no plan pnosuchplan"), "{stderr}");
}

#[test]
fn a_line_typed_right_below_the_agents_lines_is_kept_not_a_conflict() {
    let scenario = scenario();
    ready_plan(&scenario);
    // While the team worked, the user typed a line directly below the function it rewrote.
    let typed =
        "fn parse() {\n    todo!()\n}\n// parse is being done by pitcrew\n\nfn other() {}\n";
    scenario.repo.write("lib.rs", typed);
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        scenario.repo.read("lib.rs"),
        "fn parse() {\n    parse_all()\n}\n// parse is being done by pitcrew\n\nfn other() {}\n"
    );
    assert!(stdout.contains("1 merged with your edits"), "{stdout}");
}

#[test]
fn a_conflict_in_one_file_applies_nothing_until_it_is_resolved() {
    let scenario = scenario();
    let id = ready_plan(&scenario);
    // The user changed the very line the agents rewrote.
    let mine = "fn parse() {\n    parse_mine()\n}\n\nfn other() {}\n";
    scenario.repo.write("lib.rs", mine);
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("Nothing was applied"), "{stdout}");
    assert!(stdout.contains("lib.rs: your changes overlap"), "{stdout}");
    assert!(
        stdout.contains("parse_mine()"),
        "the user sees both sides: {stdout}"
    );
    // Whole or not at all: the file that did not conflict was not written either.
    assert!(!scenario.path().join("new.txt").exists());
    assert_eq!(scenario.repo.read("lib.rs"), mine);
    assert_eq!(status_of(&scenario, &id), "ready");

    // Resolved (the user takes the agents' line back out of their edit): it all applies.
    scenario.repo.write("lib.rs", LIB);
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(scenario.repo.read("lib.rs"), LIB_DONE);
    assert_eq!(scenario.repo.read("new.txt"), "new\n");
}

#[test]
fn run_with_yes_applies_nothing_when_one_file_conflicts() {
    // The user changes the line the agents rewrite while the planner thinks.
    let scenario = scenario_with_planner_latency(1500);
    let child = scenario
        .command(&["run", "Implement parse and add new", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the plan to exist (its snapshot is taken), then edit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while scenario.plans().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no plan appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mine = "fn parse() {\n    parse_mine()\n}\n\nfn other() {}\n";
    scenario.repo.write("lib.rs", mine);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Nothing was applied"), "{stdout}");
    assert!(!scenario.path().join("new.txt").exists(), "{stdout}");
    assert_eq!(scenario.repo.read("lib.rs"), mine);
}

#[test]
fn an_apply_killed_half_way_is_finished_on_the_next_start() {
    for failpoint in ["apply-after-first-write", "apply-before-rename"] {
        let scenario = scenario();
        let id = ready_plan(&scenario);
        let output = scenario
            .command(&["apply"])
            .env("PITCREW_FAILPOINT", failpoint)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            None,
            "{failpoint}: killed by a signal"
        );
        // Half done: lib.rs written and new.txt not, or lib.rs's new content only in a
        // temporary file beside it; the plan not applied.
        assert!(!scenario.path().join("new.txt").exists(), "{failpoint}");
        if failpoint == "apply-after-first-write" {
            assert_eq!(scenario.repo.read("lib.rs"), LIB_DONE);
        } else {
            assert_eq!(scenario.repo.read("lib.rs"), LIB);
            assert!(scenario.path().join(".lib.rs.pitcrew-apply.tmp").exists());
        }
        assert_eq!(status_of(&scenario, &id), "ready", "{failpoint}");

        // Any pitcrew command that opens the repository finishes it first.
        let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
        assert_eq!(code, Some(0), "{failpoint}: {stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("The apply of plan {id} was cut short")),
            "{failpoint}: {stdout}"
        );
        assert!(stdout.contains("already applied"), "{failpoint}: {stdout}");
        assert_eq!(scenario.repo.read("lib.rs"), LIB_DONE, "{failpoint}");
        assert_eq!(scenario.repo.read("new.txt"), "new\n", "{failpoint}");
        assert_eq!(status_of(&scenario, &id), "applied", "{failpoint}");
        // No temporary file is left in the user's tree.
        let status = scenario.repo.git(&["status", "--porcelain", "--ignored"]);
        assert!(!status.contains(".tmp"), "{failpoint}: {status}");
        assert!(
            !scenario
                .path()
                .join(format!(".git/pitcrew/applying/{id}.json"))
                .exists()
        );
    }
}

#[test]
fn applying_onto_another_branch_is_refused_without_a_terminal_and_forced_by_flag() {
    let scenario = scenario();
    let id = ready_plan(&scenario);
    // The user moves to a branch that does not contain the commit the plan started from.
    scenario
        .repo
        .git(&["checkout", "-q", "--orphan", "elsewhere"]);
    scenario.repo.git(&["commit", "-q", "-m", "elsewhere"]);
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("not applied"), "{stderr}");
    assert!(stderr.contains("branch elsewhere"), "{stderr}");
    assert!(stderr.contains("you switched branches"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(!scenario.path().join("new.txt").exists());
    assert_eq!(status_of(&scenario, &id), "ready");

    let (code, stdout, stderr) = pitcrew(&scenario, &["apply", "--force"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(scenario.repo.read("new.txt"), "new\n");
    assert_eq!(status_of(&scenario, &id), "applied");
}

#[test]
fn committing_on_the_same_branch_is_not_a_branch_switch() {
    let scenario = scenario();
    ready_plan(&scenario);
    scenario.repo.write("notes.txt", "notes, committed later\n");
    scenario
        .repo
        .git(&["commit", "-q", "-am", "the user's commit"]);
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(scenario.repo.read("new.txt"), "new\n");
}

#[test]
fn apply_never_writes_through_a_link_out_of_the_repository() {
    let outside = tempfile::tempdir().unwrap();
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK), (".gitignore", "linked\n")],
        vec![
            plan(json!([spec("sly", "Write linked/pwned.txt", &[])])),
            // The model un-ignores the link's name and writes "into" it.
            write("sly", ".gitignore", ""),
            write("sly", "linked/pwned.txt", "pwned\n"),
            finish("sly", "done"),
            approve("sly"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    // An ignored link in the user's tree to a directory elsewhere.
    std::os::unix::fs::symlink(outside.path(), scenario.path().join("linked")).unwrap();
    let outcome = scenario.run("Write linked/pwned.txt", &["--yes"]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.all());
    assert!(
        outcome.stdout.contains("Nothing was applied"),
        "{}",
        outcome.all()
    );
    assert!(
        outcome
            .stdout
            .contains("linked is a symbolic link in your working tree"),
        "{}",
        outcome.all()
    );
    assert!(
        !outside.path().join("pwned.txt").exists(),
        "written outside"
    );
    assert_eq!(
        scenario.repo.read(".gitignore"),
        "linked\n",
        "whole or nothing"
    );
}
