//! The whole team, headless, through `pitcrew run` against the fake model on throwaway
//! repositories: each scenario is a story a user would tell about a run.

use pitcrew_tests::team::script::{
    approve, calls, finish, plan, review, task as spec, when_contains, with, write,
};
use pitcrew_tests::team::{TeamScenario, task};
use serde_json::{Value, json};

const CHECK: &str = "#!/bin/sh\n# Fails when any file says BUG.\n! grep -rl BUG --include='*.txt' . 2>/dev/null | grep -q .\n";

/// Journal time (RFC 3339) to milliseconds of the day, for ordering within a test.
fn millis(time: &Value) -> u64 {
    let text = time.as_str().unwrap();
    let clock = &text[11..23];
    let h: u64 = clock[0..2].parse().unwrap();
    let m: u64 = clock[3..5].parse().unwrap();
    let s: u64 = clock[6..8].parse().unwrap();
    let ms: u64 = clock[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

fn event_time(journal: &[Value], event: &str, task: &str) -> u64 {
    let entry = journal
        .iter()
        .find(|e| e["event"] == event && e["task"] == task)
        .unwrap_or_else(|| panic!("no {event} for {task} in the journal"));
    millis(&entry["time"])
}

#[test]
fn two_independent_tasks_run_at_once_and_a_third_builds_on_both() {
    let slow = |entry: Value| with(entry, "latency_ms", json!(400));
    let scenario = TeamScenario::new(
        &[
            ("check.sh", CHECK),
            ("README.md", "# demo\n"),
            ("notes.txt", "user notes\n"),
        ],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt", &[]),
                spec("c", "Write c.txt from a and b", &["a", "b"]),
            ])),
            slow(write("a", "a.txt", "alpha\n")),
            slow(finish("a", "added a.txt")),
            slow(write("b", "b.txt", "beta\n")),
            slow(finish("b", "added b.txt")),
            calls(
                "implementer",
                Some("c"),
                json!([
                    {"name": "read_file", "arguments": {"path": "a.txt"}},
                    {"name": "read_file", "arguments": {"path": "b.txt"}},
                ]),
            ),
            write("c", "c.txt", "alpha and beta\n"),
            finish("c", "added c.txt, combining a and b"),
            approve("a"),
            approve("b"),
            approve("c"),
        ],
        "implementers = 4",
        "test = \"sh check.sh\"",
    );
    // The user's work in progress, which must survive.
    scenario
        .repo
        .write("notes.txt", "user notes, edited but not committed\n");
    scenario
        .repo
        .write("scratch.txt", "untracked, the user's\n");

    let outcome = scenario.run("Write a, b and c", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());

    // All three landed, and the user's work is intact.
    assert_eq!(scenario.repo.read("a.txt"), "alpha\n");
    assert_eq!(scenario.repo.read("b.txt"), "beta\n");
    assert_eq!(scenario.repo.read("c.txt"), "alpha and beta\n");
    assert_eq!(
        scenario.repo.read("notes.txt"),
        "user notes, edited but not committed\n"
    );
    assert_eq!(scenario.repo.read("scratch.txt"), "untracked, the user's\n");
    let status = scenario.repo.git(&["status", "--porcelain"]);
    assert!(status.contains(" M notes.txt"), "{status}");
    assert!(
        status.contains("?? a.txt"),
        "applied as files, not staged: {status}"
    );

    // a and b ran at the same time: each started before the other committed.
    let journal = scenario.journal();
    let (a_start, a_end) = (
        event_time(&journal, "task_started", "a"),
        event_time(&journal, "committed", "a"),
    );
    let (b_start, b_end) = (
        event_time(&journal, "task_started", "b"),
        event_time(&journal, "committed", "b"),
    );
    assert!(
        a_start < b_end && b_start < a_end,
        "a and b did not overlap: {a_start}-{a_end}, {b_start}-{b_end}"
    );
    // c started only after both were integrated, and saw their files.
    let c_start = event_time(&journal, "task_started", "c");
    assert!(
        c_start >= event_time(&journal, "merged", "a")
            && c_start >= event_time(&journal, "merged", "b")
    );
    let c_requests = scenario.fake.requests_of("implementer", Some("c"));
    let second = c_requests[1]["body"].to_string();
    assert!(
        second.contains("alpha") && second.contains("beta"),
        "c read a's and b's files: {second}"
    );
    assert!(
        second.contains("added a.txt"),
        "c's prompt carries a's handoff"
    );

    // Everything was reviewed, integrated and tested.
    let plan = scenario.plan();
    assert_eq!(plan["status"], "applied");
    for id in ["a", "b", "c"] {
        assert_eq!(task(&plan, id)["status"], "applied");
        assert_eq!(task(&plan, id)["verdict"], "approve");
        assert_eq!(task(&plan, id)["checks"][0]["passed"], true);
    }
    assert_eq!(plan["integration_test"]["passed"], true);
    assert_eq!(scenario.fake.requests_of("reviewer", None).len(), 3);
    // The summary tells the story.
    assert!(outcome.stdout.contains("Plan"), "{}", outcome.stdout);
    assert!(
        outcome
            .stdout
            .contains("Applied to your working tree: 3 written"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn a_reviewer_that_requests_changes_once_gets_them_in_round_two() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("greet", "Write greeting.txt", &[])])),
            write("greet", "greeting.txt", "helo\n"),
            finish("greet", "wrote the greeting"),
            review(
                "greet",
                "request_changes",
                "greeting.txt",
                1,
                "typo: helo should be hello",
            ),
            calls(
                "implementer",
                Some("greet"),
                json!([{"name": "edit_file", "arguments": {"path": "greeting.txt", "old": "helo", "new": "hello"}}]),
            ),
            finish("greet", "fixed the typo"),
            approve("greet"),
        ],
        "review_rounds = 2",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Greet", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert_eq!(scenario.repo.read("greeting.txt"), "hello\n");
    let plan = scenario.plan();
    let greet = task(&plan, "greet");
    assert_eq!(greet["round"], 1, "approved in the second round");
    // Round two was told what to fix.
    let implementer = scenario.fake.requests_of("implementer", Some("greet"));
    assert_eq!(implementer.len(), 4);
    let round_two = implementer[2]["body"].to_string();
    assert!(
        round_two.contains("typo: helo should be hello"),
        "{round_two}"
    );
    assert!(round_two.contains("round 2"), "{round_two}");
}

#[test]
fn a_reviewer_that_always_rejects_ends_in_escalation_with_nothing_merged() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("bad", "Write bad.txt", &[])])),
            write("bad", "bad.txt", "questionable\n"),
            finish("bad", "done, I think"),
            with(
                review("bad", "reject", "bad.txt", 1, "this approach is wrong"),
                "repeat",
                json!(true),
            ),
        ],
        "review_rounds = 2",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Something questionable", &["--yes"]);
    assert_ne!(outcome.code, Some(0), "{}", outcome.all());
    assert!(outcome.stdout.contains("rejected"), "{}", outcome.all());
    let plan = scenario.plan();
    assert_eq!(plan["status"], "escalated");
    assert_eq!(task(&plan, "bad")["status"], "escalated");
    assert!(
        task(&plan, "bad")["error"]
            .as_str()
            .unwrap()
            .contains("the reviewer rejected bad")
    );
    // Nothing merged: the integration branch is still the snapshot, and nothing was applied.
    let integration = scenario.repo.git(&[
        "rev-parse",
        &format!("pitcrew/{}/integration", plan["id"].as_str().unwrap()),
    ]);
    assert_eq!(integration.trim(), plan["base"].as_str().unwrap());
    assert!(!scenario.path().join("bad.txt").exists());
    // Bounded: one plan, one implementer run, one review.
    assert_eq!(scenario.fake.requests_of("reviewer", None).len(), 1);
    assert_eq!(scenario.fake.requests_of("implementer", None).len(), 2);
}

#[test]
fn a_merge_conflict_becomes_a_resolve_task_that_succeeds() {
    let fast = |entry: Value| with(entry, "latency_ms", json!(10));
    let slow = |entry: Value| with(entry, "latency_ms", json!(500));
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK), ("shared.txt", "one\ntwo\nthree\n")],
        vec![
            plan(json!([
                spec("left", "Change line two one way", &[]),
                spec("right", "Change line two another way", &[])
            ])),
            fast(calls(
                "implementer",
                Some("left"),
                json!([{"name": "edit_file", "arguments": {"path": "shared.txt", "old": "two", "new": "two (left)"}}]),
            )),
            fast(finish("left", "left's change")),
            slow(calls(
                "implementer",
                Some("right"),
                json!([{"name": "edit_file", "arguments": {"path": "shared.txt", "old": "two", "new": "two (right)"}}]),
            )),
            slow(finish("right", "right's change")),
            approve("left"),
            approve("right"),
            // The resolve task: its id is made by pitcrew, so it is matched by its instructions.
            when_contains(
                calls(
                    "implementer",
                    None,
                    json!([{"name": "edit_file", "arguments": {"path": "shared.txt", "old": "two (left)", "new": "two (left and right)"}}]),
                ),
                "Resolve the conflict of right",
            ),
            when_contains(
                calls(
                    "implementer",
                    None,
                    json!([{"name": "finish", "arguments": {"summary": "kept both"}}]),
                ),
                "Resolve the conflict of right",
            ),
            when_contains(
                calls(
                    "reviewer",
                    None,
                    json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": []}}]),
                ),
                "Resolve the conflict of right",
            ),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Change line two", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert_eq!(
        scenario.repo.read("shared.txt"),
        "one\ntwo (left and right)\nthree\n"
    );
    let plan = scenario.plan();
    let resolve = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"]["kind"] == "resolve")
        .expect("a resolve task");
    assert_eq!(resolve["kind"]["of"], "right");
    assert_eq!(task(&plan, "right")["status"], "applied");
    // The resolve task was told both sides.
    let prompt = scenario
        .fake
        .requests()
        .into_iter()
        .find(|r| {
            r["body"]
                .to_string()
                .contains("Resolve the conflict of right")
        })
        .unwrap()["body"]
        .to_string();
    assert!(
        prompt.contains("two (left)") && prompt.contains("two (right)"),
        "{prompt}"
    );
    assert!(
        scenario
            .journal()
            .iter()
            .any(|e| e["event"] == "merge_conflict")
    );
}

#[test]
fn a_failing_test_on_the_integrated_result_becomes_a_fix_task_that_passes() {
    // Each file alone passes; together they must agree.
    let check = "#!/bin/sh\nif [ -f a.txt ] && [ -f b.txt ] && ! grep -q 'with b' a.txt; then\n  echo 'a.txt:1: error: a.txt must mention b once b exists'\n  exit 1\nfi\n";
    let scenario = TeamScenario::new(
        &[("check.sh", check)],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt", &[])
            ])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "a"),
            write("b", "b.txt", "beta\n"),
            finish("b", "b"),
            approve("a"),
            approve("b"),
            calls(
                "debugger",
                Some("integration"),
                json!([{"name": "submit_diagnosis", "arguments": {
                    "cause": "a.txt:1 does not mention b, which check.sh requires once b.txt exists",
                    "fix_tasks": [{"title": "Mention b in a.txt", "instructions": "In a.txt line 1, write `alpha with b`.", "files": ["a.txt"]}],
                }}]),
            ),
            // The fix task's id is made by pitcrew; it is matched by the debugger's instructions.
            when_contains(
                calls(
                    "implementer",
                    None,
                    json!([{"name": "write_file", "arguments": {"path": "a.txt", "content": "alpha with b\n"}}]),
                ),
                "write `alpha with b`",
            ),
            when_contains(
                calls(
                    "implementer",
                    None,
                    json!([{"name": "finish", "arguments": {"summary": "a.txt mentions b"}}]),
                ),
                "write `alpha with b`",
            ),
            when_contains(
                calls(
                    "reviewer",
                    None,
                    json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": []}}]),
                ),
                "write `alpha with b`",
            ),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a and b", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert_eq!(scenario.repo.read("a.txt"), "alpha with b\n");
    let plan = scenario.plan();
    let fixes: Vec<&Value> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"]["kind"] == "fix")
        .collect();
    assert_eq!(fixes.len(), 1);
    assert_eq!(fixes[0]["status"], "applied");
    assert_eq!(plan["integration_test"]["passed"], true);
    // The debugger saw the failing output and the fix task carries its precise diagnosis.
    let debugger = scenario.fake.requests_of("debugger", Some("integration"));
    let asked = debugger[0]["body"].to_string();
    assert!(asked.contains("a.txt must mention b"));
    // ...and the plan: its goal, its tasks and what they handed off.
    for expected in ["Goal: Write a and b", "a: Write a.txt", "b: Write b.txt"] {
        assert!(asked.contains(expected), "missing {expected:?} in {asked}");
    }
    let fix = scenario
        .fake
        .requests_of("implementer", Some(fixes[0]["id"].as_str().unwrap()));
    assert!(
        fix[0]["body"]
            .to_string()
            .contains("In a.txt line 1, write `alpha with b`")
    );
}

#[test]
fn a_fix_that_cannot_pass_its_checks_blocks_the_plan() {
    // Each task passes alone; together they fail, and the fix does not help: the fix task's own
    // review sees the same failure and never approves it.
    let check = "#!/bin/sh\nif [ -f a.txt ] && [ -f b.txt ]; then echo 'a.txt:1: error: a and b cannot both exist'; exit 1; fi\n";
    let scenario = TeamScenario::new(
        &[("check.sh", check)],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt", &[])
            ])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "a"),
            write("b", "b.txt", "beta\n"),
            finish("b", "b"),
            with(
                calls(
                    "reviewer",
                    None,
                    json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": []}}]),
                ),
                "repeat",
                json!(true),
            ),
            with(
                calls(
                    "debugger",
                    None,
                    json!([{"name": "submit_diagnosis", "arguments": {
                        "cause": "a.txt and b.txt conflict", "fix_tasks": [{"title": "Try a comment", "instructions": "Add a comment to a.txt."}]
                    }}]),
                ),
                "repeat",
                json!(true),
            ),
            with(
                calls(
                    "implementer",
                    None,
                    json!([{"name": "finish", "arguments": {"summary": "tried"}}]),
                ),
                "repeat",
                json!(true),
            ),
        ],
        "review_rounds = 1",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a and b", &["--yes"]);
    assert_ne!(outcome.code, Some(0), "{}", outcome.all());
    let plan = scenario.plan();
    assert_eq!(plan["status"], "escalated", "{plan:#}");
    assert_eq!(plan["integration_test"]["passed"], false);
    let fix = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"]["kind"] == "fix")
        .expect("a fix task");
    assert_eq!(fix["status"], "escalated");
    assert!(
        fix["error"]
            .as_str()
            .unwrap()
            .contains("still requests changes"),
        "{fix:#}"
    );
    assert!(!scenario.path().join("a.txt").exists(), "nothing applied");
}

#[test]
fn a_test_that_fails_only_when_integrated_ends_after_two_debugger_rounds() {
    // The check fails on the integration's verify branch and nowhere else, so every fix passes
    // its review and the plan relies on the integration test alone.
    let check = "#!/bin/sh\ncase \"$(git rev-parse --abbrev-ref HEAD)\" in */verify) echo 'a.txt:1: error: broken when integrated'; exit 1;; esac\n";
    let scenario = TeamScenario::new(
        &[("check.sh", check)],
        vec![
            plan(json!([spec("a", "Write a.txt", &[])])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "a"),
            with(
                calls(
                    "reviewer",
                    None,
                    json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": []}}]),
                ),
                "repeat",
                json!(true),
            ),
            with(
                calls(
                    "debugger",
                    None,
                    json!([{"name": "submit_diagnosis", "arguments": {
                        "cause": "unknown", "fix_tasks": [{"title": "Try again", "instructions": "Look at a.txt again."}]
                    }}]),
                ),
                "repeat",
                json!(true),
            ),
            with(
                calls(
                    "implementer",
                    None,
                    json!([{"name": "finish", "arguments": {"summary": "tried"}}]),
                ),
                "repeat",
                json!(true),
            ),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    // "retry" by flag gets two more debugger rounds each time, but not forever.
    let outcome = scenario.run("Write a", &["--yes", "--answer", "retry"]);
    assert_ne!(outcome.code, Some(0), "{}", outcome.all());
    let plan = scenario.plan();
    assert_eq!(plan["status"], "escalated", "{plan:#}");
    assert!(
        outcome
            .stdout
            .contains("fails the `test` check after 2 debugger fix rounds"),
        "{}",
        outcome.all()
    );
    assert!(
        outcome.stdout.contains("--answer was used 3 times"),
        "{}",
        outcome.all()
    );
    let fix_ids: Vec<&str> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"]["kind"] == "fix")
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        fix_ids.len(),
        2 + 3 * 2,
        "two fix rounds, then two per retry, three retries"
    );
    let unique: std::collections::HashSet<&&str> = fix_ids.iter().collect();
    assert_eq!(
        unique.len(),
        fix_ids.len(),
        "fix ids never repeat: {fix_ids:?}"
    );
    assert!(!scenario.path().join("a.txt").exists(), "nothing applied");
}

#[test]
fn a_spent_budget_continued_by_flag_finishes_the_plan() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("a", "Write a.txt", &[])])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "added a.txt"),
            approve("a"),
        ],
        // The planner and one implementer call fit; the next call does not.
        "budget_tokens = 240",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a", &["--yes", "--answer", "continue"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert_eq!(scenario.repo.read("a.txt"), "alpha\n");
    let journal = scenario.journal();
    assert!(journal.iter().any(|e| e["event"] == "budget_exceeded"));
    assert!(
        journal
            .iter()
            .any(|e| e["event"] == "answer" && e["reason"] == "continue")
    );
    // The implementer resumed its round: one write, one finish, nothing redone.
    assert_eq!(scenario.fake.requests_of("implementer", Some("a")).len(), 2);
    // The raised limits are kept with the plan, for a resumed run: one raise per "continue".
    let continued = journal
        .iter()
        .filter(|e| e["event"] == "answer" && e["reason"] == "continue")
        .count();
    assert_eq!(scenario.plan()["budget_raises"], json!(continued));
}

#[test]
fn a_crossed_budget_stops_the_plan() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt", &[])
            ])),
            with(
                calls(
                    "implementer",
                    None,
                    json!([{"name": "list_files", "arguments": {}}]),
                ),
                "repeat",
                json!(true),
            ),
        ],
        // Every call reports 120 tokens: the planner and two more calls, then no more.
        "budget_tokens = 350\nimplementers = 1",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Busy work", &[]);
    assert_ne!(outcome.code, Some(0), "{}", outcome.all());
    let plan = scenario.plan();
    assert_eq!(plan["status"], "escalated", "{plan:#}");
    assert!(
        outcome.stdout.contains("budget is spent"),
        "{}",
        outcome.all()
    );
    let calls = scenario.fake.requests().len();
    assert!(
        calls <= 4,
        "calls stopped at the budget, not at the turn limit: {calls}"
    );
    assert!(
        scenario
            .journal()
            .iter()
            .any(|e| e["event"] == "budget_exceeded")
    );
}

#[test]
fn every_escape_attempt_is_refused_and_reported_to_the_model() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("sly", "Write sly.txt", &[])])),
            calls(
                "implementer",
                Some("sly"),
                json!([
                    {"name": "write_file", "arguments": {"path": "../escaped.txt", "content": "out"}},
                    {"name": "write_file", "arguments": {"path": "/tmp/pitcrew-absolute-escape.txt", "content": "out"}},
                    {"name": "write_file", "arguments": {"path": "outside/evil.txt", "content": "out"}},
                    {"name": "write_file", "arguments": {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\nrm -rf ~\n"}},
                    {"name": "run_check", "arguments": {"name": "rm -rf /"}},
                    {"name": "submit_plan", "arguments": {"tasks": []}},
                ]),
            ),
            write("sly", "sly.txt", "ok\n"),
            finish("sly", "wrote sly.txt after being refused"),
            approve("sly"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    // A symbolic link in the repository that leads out of it.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), scenario.path().join("outside")).unwrap();
    scenario.repo.commit_all("a link out");

    let outcome = scenario.run("Be sly", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert!(
        !scenario
            .path()
            .parent()
            .unwrap()
            .join("escaped.txt")
            .exists()
    );
    assert!(!std::path::Path::new("/tmp/pitcrew-absolute-escape.txt").exists());
    assert!(!outside.path().join("evil.txt").exists());
    assert!(!scenario.path().join(".git/hooks/pre-commit").exists());
    // Each refusal went back to the model, and into the journal.
    let second = scenario.fake.requests_of("implementer", Some("sly"))[1]["body"].to_string();
    for reason in [
        "`..` is not allowed",
        "absolute paths are not allowed",
        "symbolic links",
        ".git is not part of the code",
        "is not a configured check",
        "`submit_plan` is not one of the implementer's tools",
    ] {
        assert!(second.contains(reason), "missing {reason:?} in {second}");
    }
    let refused = scenario
        .journal()
        .into_iter()
        .filter(|e| e["event"] == "tool_refused")
        .count();
    assert_eq!(refused, 6);
    assert_eq!(scenario.repo.read("sly.txt"), "ok\n");
}

#[test]
fn the_reviewer_reviews_against_the_plan() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt from a", &["a"]),
            ])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "added a.txt with the word alpha"),
            approve("a"),
            write("b", "b.txt", "alpha too\n"),
            finish("b", "added b.txt"),
            approve("b"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a and b, consistently", &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    let review = scenario.fake.requests_of("reviewer", Some("b"))[0]["body"].to_string();
    for expected in [
        "Goal: Write a and b, consistently",
        "a: Write a.txt",
        "b: Write b.txt from a (this one)",
        "added a.txt with the word alpha",
    ] {
        assert!(
            review.contains(expected),
            "missing {expected:?} in {review}"
        );
    }
}

#[test]
fn names_git_refuses_are_refused_by_the_tool_and_the_task_still_lands() {
    // Before, these were written, and the task then failed when its work was committed.
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("odd", "Write odd.txt", &[])])),
            calls(
                "implementer",
                Some("odd"),
                json!([
                    {"name": "write_file", "arguments": {"path": ".git.", "content": "x"}},
                    {"name": "write_file", "arguments": {"path": "git~1/x", "content": "x"}},
                    {"name": "write_file", "arguments": {"path": ".GiT./x", "content": "x"}},
                ]),
            ),
            write("odd", "odd.txt", "fine\n"),
            finish("odd", "wrote odd.txt"),
            approve("odd"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write odd", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert_eq!(scenario.repo.read("odd.txt"), "fine\n");
    let second = scenario.fake.requests_of("implementer", Some("odd"))[1]["body"].to_string();
    assert!(
        second.contains("names the repository's .git directory on Windows"),
        "the model was told why: {second}"
    );
    let refused = scenario
        .journal()
        .into_iter()
        .filter(|e| e["event"] == "tool_refused")
        .count();
    assert_eq!(refused, 3);
    for path in [".git.", "git~1", ".GiT."] {
        assert!(!scenario.path().join(path).exists(), "{path}");
    }
}

#[test]
fn a_tool_call_cut_off_mid_stream_is_never_executed() {
    let cut = calls(
        "implementer",
        Some("t"),
        json!([{"name": "write_file", "arguments": {"path": "CUT.txt", "content": "this call never arrived whole"}}]),
    );
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("t", "Write t.txt", &[])])),
            with(cut, "fault", json!({"kind": "cut", "after_chunks": 3})),
            write("t", "t.txt", "whole\n"),
            finish("t", "wrote t.txt"),
            approve("t"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write t", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert!(!scenario.path().join("CUT.txt").exists());
    let plan = scenario.plan();
    let branch = task(&plan, "t")["branch"].as_str().unwrap().to_owned();
    let files = scenario
        .repo
        .git(&["ls-tree", "-r", "--name-only", &branch]);
    assert!(!files.contains("CUT.txt"), "{files}");
    assert_eq!(scenario.repo.read("t.txt"), "whole\n");
}

#[test]
fn a_killed_run_resumes_without_redoing_finished_work() {
    // b writes its file, then takes its time to finish: the run is killed in between. On the
    // rerun b must start clean: its write must *create* b.txt again (not overwrite a leftover),
    // or the script has no answer for it.
    let b_finish = when_contains(
        with(
            with(finish("b", "added b.txt"), "latency_ms", json!(1500)),
            "repeat",
            json!(true),
        ),
        "created b.txt",
    );
    let b_write = with(write("b", "b.txt", "beta\n"), "repeat", json!(true));
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt", &[])
            ])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "added a.txt"),
            approve("a"),
            b_finish,
            b_write,
            with(approve("b"), "repeat", json!(true)),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let mut first = scenario
        .command(&["run", "Write a and b", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill -9 once a is merged and b has written its file but not finished.
    let journal_path = scenario.path().join(".git/pitcrew/journal.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let journal = std::fs::read_to_string(&journal_path).unwrap_or_default();
        let merged_a = journal
            .lines()
            .any(|l| l.contains("\"event\":\"merged\"") && l.contains("\"task\":\"a\""));
        let b_calls = journal
            .lines()
            .filter(|l| l.contains("\"event\":\"model_call\"") && l.contains("\"task\":\"b\""))
            .count();
        if merged_a && b_calls >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never got there: {journal}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let plan = scenario.plan();
    assert_eq!(task(&plan, "a")["status"], "ready");
    assert_eq!(task(&plan, "b")["status"], "running");
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    assert!(
        scenario
            .path()
            .join(format!(".git/pitcrew/worktrees/{plan_id}-b/b.txt"))
            .exists()
    );

    let outcome = scenario.run("Write a and b", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert!(
        outcome.stdout.contains(&format!("Resuming plan {plan_id}")),
        "{}",
        outcome.stdout
    );
    assert_eq!(scenario.plans().len(), 1, "the same plan, not a new one");
    assert_eq!(scenario.repo.read("a.txt"), "alpha\n");
    assert_eq!(scenario.repo.read("b.txt"), "beta\n");
    // a was not redone: two implementer calls and one review in all.
    assert_eq!(scenario.fake.requests_of("implementer", Some("a")).len(), 2);
    assert_eq!(scenario.fake.requests_of("reviewer", Some("a")).len(), 1);
    // No commit was duplicated: each task's branch is one commit on the snapshot.
    let plan = scenario.plan();
    for id in ["a", "b"] {
        let branch = task(&plan, id)["branch"].as_str().unwrap().to_owned();
        let count = scenario.repo.git(&[
            "rev-list",
            "--count",
            &format!("{}..{branch}", plan["base"].as_str().unwrap()),
        ]);
        assert_eq!(count.trim(), "1", "{id}'s branch");
    }
    // b restarted from a clean worktree: its rerun created b.txt afresh.
    let b_results: Vec<String> = scenario
        .fake
        .requests_of("implementer", Some("b"))
        .iter()
        .map(|r| r["body"].to_string())
        .collect();
    assert!(b_results.len() >= 4, "b ran twice: {}", b_results.len());
    assert!(scenario.journal().iter().any(|e| e["event"] == "resumed"));
}

#[test]
fn the_repositorys_conventions_reach_every_role() {
    let scenario = TeamScenario::new(
        &[
            ("check.sh", CHECK),
            (
                "AGENTS.md",
                "House rule: every text file ends with a newline.\n",
            ),
        ],
        vec![
            plan(json!([spec("a", "Write a.txt", &[])])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "added a.txt"),
            approve("a"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a", &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    for role in ["planner", "implementer", "reviewer"] {
        let body = scenario.fake.requests_of(role, None)[0]["body"].to_string();
        assert!(
            body.contains("House rule: every text file ends with a newline."),
            "{role}"
        );
    }
}

#[test]
fn one_failing_branch_does_not_take_the_others_down() {
    let broken = with(
        calls("implementer", Some("a"), json!([])),
        "fault",
        json!({"kind": "status", "status": 400, "message": "the model refuses this task"}),
    );
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt", &[]),
                spec("c", "Build on a", &["a"]),
            ])),
            broken,
            write("b", "b.txt", "beta\n"),
            finish("b", "added b.txt"),
            approve("b"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a, b, c", &["--yes"]);
    assert_ne!(outcome.code, Some(0));
    let plan = scenario.plan();
    assert_eq!(plan["status"], "failed");
    assert_eq!(task(&plan, "a")["status"], "failed");
    assert!(
        task(&plan, "a")["error"]
            .as_str()
            .unwrap()
            .contains("the model refuses this task")
    );
    assert_eq!(task(&plan, "c")["status"], "cancelled");
    assert!(task(&plan, "c")["error"].is_null());
    assert_eq!(task(&plan, "b")["status"], "ready", "b went on regardless");
    let integrated = scenario.repo.git(&[
        "show",
        &format!("{}:b.txt", plan["integration_branch"].as_str().unwrap()),
    ]);
    assert_eq!(integrated, "beta\n");
    assert!(
        !scenario.path().join("b.txt").exists(),
        "a failed plan is not applied"
    );
    assert!(
        scenario
            .fake
            .requests_of("implementer", Some("c"))
            .is_empty()
    );
}

#[test]
fn interrupting_a_run_cancels_its_model_calls_promptly() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("slow", "Take forever", &[])])),
            with(
                write("slow", "slow.txt", "x\n"),
                "latency_ms",
                json!(30_000),
            ),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let mut child = scenario
        .command(&["run", "Take forever"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while scenario
        .fake
        .requests_of("implementer", Some("slow"))
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let interrupted = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        interrupted.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        interrupted.elapsed()
    );
    assert_eq!(status.code(), Some(1));
    let plan = scenario.plan();
    assert_eq!(plan["status"], "cancelled");
    assert_eq!(task(&plan, "slow")["status"], "cancelled");
    // The model call itself was abandoned, not waited for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while scenario.fake.requests_of("implementer", Some("slow"))[0]["disconnected"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTP request was not stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_plans_wall_time_budget_stops_it() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("slow", "Take a while", &[])])),
            with(
                write("slow", "slow.txt", "x\n"),
                "latency_ms",
                json!(30_000),
            ),
        ],
        "timeout_s = 1",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Take a while", &[]);
    assert_ne!(outcome.code, Some(0));
    assert!(
        outcome.elapsed < std::time::Duration::from_secs(10),
        "{:?}",
        outcome.elapsed
    );
    assert!(
        outcome.stdout.contains("wall-time budget"),
        "{}",
        outcome.all()
    );
    assert_eq!(scenario.plan()["status"], "escalated");
}

#[test]
fn an_answer_given_by_flag_sends_the_task_back_for_another_round() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([spec("t", "Write t.txt", &[])])),
            write("t", "t.txt", "draft\n"),
            finish("t", "draft"),
            review("t", "request_changes", "t.txt", 1, "say final, not draft"),
            write("t", "t.txt", "final\n"),
            finish("t", "final"),
            approve("t"),
        ],
        "review_rounds = 0",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write t", &["--yes", "--answer", "send_back"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert!(
        outcome
            .stdout
            .contains("answering \"send_back\" (--answer)"),
        "{}",
        outcome.stdout
    );
    assert_eq!(scenario.repo.read("t.txt"), "final\n");
}

#[test]
fn pitcrew_plan_plans_and_pitcrew_run_carries_it_out() {
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![
            plan(json!([
                spec("a", "Write a.txt", &[]),
                spec("b", "Write b.txt after a", &["a"])
            ])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "added a.txt"),
            approve("a"),
            write("b", "b.txt", "beta\n"),
            finish("b", "added b.txt"),
            approve("b"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let planned = scenario
        .command(&["plan", "Write a then b"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&planned.stdout);
    assert_eq!(planned.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("b                Write b.txt after a (after a)"),
        "{stdout}"
    );
    assert!(
        scenario.fake.requests_of("implementer", None).is_empty(),
        "nothing ran"
    );
    let outcome = scenario.run("Write a then b", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert_eq!(
        scenario.fake.requests_of("planner", None).len(),
        1,
        "not planned twice"
    );
    assert_eq!(scenario.repo.read("b.txt"), "beta\n");
}

#[test]
fn a_bad_plan_is_sent_back_once_with_the_reason_then_escalated() {
    let cyclic = plan(json!([spec("a", "A", &["b"]), spec("b", "B", &["a"])]));
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        vec![with(cyclic, "times", json!(2))],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Go in circles", &[]);
    assert_ne!(outcome.code, Some(0));
    let planner = scenario.fake.requests_of("planner", None);
    assert_eq!(planner.len(), 2, "sent back once, not more");
    assert!(
        planner[1]["body"]
            .to_string()
            .contains("the dependencies form a cycle")
    );
    assert!(
        outcome.stdout.contains("the planner could not plan"),
        "{}",
        outcome.all()
    );
    assert_eq!(scenario.plan()["status"], "escalated");
}

#[test]
fn a_debugger_that_twice_gives_nothing_to_do_ends_its_attempt_and_the_plan_asks() {
    // The integrated result fails its test; the debugger answers with a cause and no fix task,
    // then again. It is refused once with what to fix, then stopped: the plan escalates with
    // the reason instead of asking the debugger again until its turns run out.
    let check = "#!/bin/sh\ncase \"$(git rev-parse --abbrev-ref HEAD)\" in */verify) echo 'broken when integrated'; exit 1;; esac\n";
    let scenario = TeamScenario::new(
        &[("check.sh", check)],
        vec![
            plan(json!([spec("a", "Write a.txt", &[])])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "a"),
            approve("a"),
            with(
                calls(
                    "debugger",
                    None,
                    json!([{"name": "submit_diagnosis", "arguments": {"cause": "the test is broken", "fix_tasks": []}}]),
                ),
                "repeat",
                json!(true),
            ),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a", &["--yes"]);
    assert_ne!(outcome.code, Some(0), "{}", outcome.all());
    let plan = scenario.plan();
    assert_eq!(plan["status"], "escalated", "{plan:#}");
    assert!(
        outcome.stdout.contains(
            "the debugger could not say how to fix it: the debugger submitted an unusable \
             `submit_diagnosis` twice; last: give the `cause` and at least one fix task"
        ),
        "{}",
        outcome.all()
    );
    let debugger_calls = scenario
        .journal()
        .iter()
        .filter(|e| e["event"] == "model_call" && e["role"] == "debugger")
        .count();
    assert_eq!(debugger_calls, 2, "asked once more, then stopped");
}

#[test]
fn two_unusable_answers_in_one_turn_are_one_mistake_and_the_next_turn_can_fix_it() {
    // The planner submits two empty plans in one turn: it sees both refusals only after the
    // turn, so that counts once; its next turn's valid plan runs.
    let empty = json!({"name": "submit_plan", "arguments": {"tasks": []}});
    let scenario = TeamScenario::new(
        &[("check.sh", "#!/bin/sh\nexit 0\n")],
        vec![
            calls("planner", None, json!([empty.clone(), empty])),
            plan(json!([spec("a", "Write a.txt", &[])])),
            write("a", "a.txt", "alpha\n"),
            finish("a", "a"),
            approve("a"),
        ],
        "",
        "test = \"sh check.sh\"",
    );
    let outcome = scenario.run("Write a", &["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());
    assert_eq!(scenario.repo.read("a.txt"), "alpha\n");
}
