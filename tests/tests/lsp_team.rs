//! The team behind the editor: `pitcrew lsp` driven by the test client, with the fake model,
//! in throwaway repositories. Each scenario is what a user does in their editor and what they
//! must see: code actions, diagnostics that follow the text, versioned edits, progress,
//! questions and the plan.

use std::time::{Duration, Instant};

use pitcrew_tests::client::TestServer;
use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{calls, finish, with, write};
use serde_json::{Value, json};

const ORIGINAL: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    todo!()\n}\n";
/// What the user has in the editor, not saved: a comment that asks for the work.
const UNSAVED: &str =
    "// pitcrew: implement add\npub fn add(a: i32, b: i32) -> i32 {\n    todo!()\n}\n";
/// What the implementer writes: documented, so its lines are not the buffer's lines.
const RESULT: &str = "// pitcrew: implement add\n/// The sum of `a` and `b`.\n/// Overflow panics in debug builds.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";

/// The implementer reads the file (it must see the unsaved text), writes the result, and the
/// reviewer approves with a warning on the new line, with a suggested fix.
fn implement_add(task: &str) -> Vec<Value> {
    vec![
        calls(
            "implementer",
            Some(task),
            json!([{"name": "read_file", "arguments": {"path": "src/lib.rs"}}]),
        ),
        write(task, "src/lib.rs", RESULT),
        finish(task, "implemented add"),
        calls(
            "reviewer",
            Some(task),
            json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": [
                {"path": "src/lib.rs", "line": 5, "severity": "warning",
                 "message": "overflows on large inputs", "suggestion": "    a.wrapping_add(b)"}
            ]}}]),
        ),
    ]
}

/// As `implement_add`, but the reviewer rejects the result: the team asks the user.
fn implement_add_rejected() -> Vec<Value> {
    let mut responses = implement_add("delegated");
    responses[3] = calls(
        "reviewer",
        Some("delegated"),
        json!([{"name": "submit_review", "arguments": {"verdict": "reject", "findings": [
            {"path": "src/lib.rs", "line": 3, "severity": "error", "message": "wrong approach"}
        ]}}]),
    );
    responses
}

fn scenario(responses: Vec<Value>) -> TeamScenario {
    TeamScenario::new(&[("src/lib.rs", ORIGINAL)], responses, "", "")
}

fn start(scenario: &TeamScenario) -> TestServer {
    let mut server = scenario.lsp().start();
    server.wait_for_team();
    server
}

fn range(start: (u32, u32), end: (u32, u32)) -> Value {
    json!({"start": {"line": start.0, "character": start.1}, "end": {"line": end.0, "character": end.1}})
}

fn code_actions(
    server: &mut TestServer,
    uri: &str,
    range: Value,
    diagnostics: Value,
) -> Vec<Value> {
    server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": diagnostics}}),
        )
        .expect("code actions")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn titled<'a>(actions: &'a [Value], title: &str) -> &'a Value {
    actions
        .iter()
        .find(|a| a["title"] == title)
        .unwrap_or_else(|| {
            let titles: Vec<&Value> = actions.iter().map(|a| &a["title"]).collect();
            panic!("no action {title:?} in {titles:?}")
        })
}

/// Resolves a lazily offered action and runs its command, as an editor does.
fn run_action(server: &mut TestServer, action: &Value) -> Value {
    assert!(
        action.get("command").is_none() && action.get("edit").is_none(),
        "offered lazily: {action:#}"
    );
    let resolved = server
        .request("codeAction/resolve", action.clone())
        .expect("resolve");
    let command = &resolved["command"];
    server
        .request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        )
        .expect("the command runs")
}

/// Opens the unsaved buffer and delegates through the `pitcrew:` comment's code action.
fn delegate_from_comment(server: &mut TestServer, uri: &str) -> (String, String) {
    server.open(uri, "rust", UNSAVED);
    let actions = code_actions(server, uri, range((0, 0), (4, 0)), json!([]));
    let started = run_action(server, titled(&actions, "Delegate: implement add"));
    (
        started["planId"].as_str().expect("a plan id").to_owned(),
        started["taskId"].as_str().expect("a task id").to_owned(),
    )
}

fn apply_edits(server: &mut TestServer) -> Vec<Value> {
    server.server_requests("workspace/applyEdit")
}

#[test]
fn a_delegated_selection_of_an_unsaved_buffer_comes_back_as_a_versioned_edit_that_keeps_the_users_typing()
 {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, task) = delegate_from_comment(&mut server, &uri);
    assert_eq!(task, format!("{plan}/delegated"));

    // It shows in the plan at once.
    let snapshot = server
        .request("pitcrew/plan", json!({"planId": plan}))
        .expect("pitcrew/plan");
    assert_eq!(snapshot["tasks"][0]["taskId"], task);

    let ready = server.wait_for_plan(&plan, "ready");
    assert_eq!(ready["tasks"][0]["status"], "ready");
    assert_eq!(ready["tasks"][0]["findings"], 1);
    // The message names the action to take, as the editor shows it; no raw JSON.
    let told = server.wait_for_notification("window/showMessage", |m| {
        m["message"].as_str().unwrap_or("").contains("is ready")
    });
    let text = told["message"].as_str().unwrap();
    assert!(
        text.contains("the code action \"Apply result of implement add\""),
        "{text}"
    );
    assert!(!text.contains('{'), "{text}");
    assert!(
        ready["revision"].as_u64() > snapshot["revision"].as_u64(),
        "revisions grow: {} then {}",
        snapshot["revision"],
        ready["revision"]
    );

    // Diff views get the files the task changed, and both texts of the one they open: the
    // base is what the user saw (the unsaved buffer), the result what the implementer wrote.
    let detail = server
        .request("pitcrew/task", json!({"taskId": task}))
        .expect("pitcrew/task");
    assert_eq!(
        detail["files"],
        json!([{"path": "src/lib.rs", "oldPath": null, "change": "modified", "binary": false}])
    );
    let file = server
        .request(
            "pitcrew/task",
            json!({"taskId": task, "path": "src/lib.rs"}),
        )
        .expect("pitcrew/task with a path");
    assert_eq!(file["files"][0]["base"], UNSAVED);
    assert_eq!(file["files"][0]["result"], RESULT);
    let error = server
        .request(
            "pitcrew/task",
            json!({"taskId": task, "path": "src/other.rs"}),
        )
        .unwrap_err();
    assert!(
        error.message.contains("does not change src/other.rs"),
        "{error:?}"
    );

    // The implementer read what the user sees, unsaved comment included.
    let reads = scenario.fake.requests_of("implementer", Some("delegated"));
    let second = serde_json::to_string(&reads[1]["body"]).unwrap();
    assert!(
        second.contains("// pitcrew: implement add"),
        "read_file returned the buffer's unsaved text: {second}"
    );

    // The reviewer's finding (line 5 of the result) is on the line it is about in the user's
    // buffer, which does not have the result's two new lines: the `todo!()` it replaces.
    let diagnostics = server.wait_for_diagnostics(&uri, |d| d.len() == 1);
    let finding = &diagnostics[0];
    assert_eq!(finding["range"]["start"]["line"], 2, "{finding:#}");
    assert_eq!(finding["source"], "pitcrew");
    assert_eq!(finding["severity"], 2);
    assert_eq!(finding["code"], "review");
    assert!(finding["message"].as_str().unwrap().contains("overflows"));
    assert_eq!(finding["data"]["taskId"], task);
    assert!(
        finding["relatedInformation"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&task)
    );

    // Meanwhile the user typed below the function.
    server.append(&uri, "// a note of the user's\n");
    let typed = server.document(&uri).version;

    // "Apply result of ..." is offered on this file; applying sends one versioned edit.
    let actions = code_actions(&mut server, &uri, range((0, 0), (0, 0)), json!([]));
    titled(&actions, "Apply result of implement add");
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    server.wait_for_plan(&plan, "applied");
    let edits = apply_edits(&mut server);
    assert_eq!(edits.len(), 1);
    let change = &edits[0]["params"]["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["uri"], uri);
    assert_eq!(change["textDocument"]["version"], typed);
    assert!(
        edits[0]["params"]["label"]
            .as_str()
            .unwrap()
            .contains("implement add")
    );

    // Both survive: the result and the keystrokes; the server agrees with the client.
    let expected = format!("{RESULT}// a note of the user's\n");
    assert_eq!(server.document(&uri).text, expected);
    assert_eq!(server.server_text(&uri).1, expected);
    // The file on disk was never written: the editor holds the change.
    assert_eq!(scenario.repo.read("src/lib.rs"), ORIGINAL);

    // Hovering a line the result wrote says what wrote it; the user's own lines say nothing.
    let hover = |server: &mut TestServer, line: u32| {
        server
            .request(
                "textDocument/hover",
                json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": 6}}),
            )
            .expect("hover")
    };
    let written = hover(&mut server, 4);
    let text = written["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        text.contains("pitcrew") && text.contains(&plan),
        "{written:#}"
    );
    assert!(text.contains("tokens"), "{text}");
    assert_eq!(hover(&mut server, 6), Value::Null, "the user's note");

    // The finding now sits on the result's line in the buffer, and still follows the text.
    server.wait_for_diagnostics(&uri, |d| {
        d.len() == 1 && d[0]["range"]["start"]["line"] == 4
    });
    server.change(&uri, (0, 0), (0, 0), "// above\n");
    server.wait_for_diagnostics(&uri, |d| {
        d.len() == 1 && d[0]["range"]["start"]["line"] == 5
    });
}

#[test]
fn an_edit_that_conflicts_with_the_users_changes_is_reported_and_not_applied() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    // The reviewer's finding on the result is shown near the line the result replaces.
    server.wait_for_diagnostics(&uri, |d| {
        d.len() == 1 && d[0]["range"]["start"]["line"] == 2
    });

    // The user rewrote the very line the implementer changed. The finding is about the
    // result, not about the user's line: it stays.
    server.change(&uri, (2, 4), (2, 11), "unimplemented!()");
    let before = server.document(&uri).text.clone();
    server.pump_for(Duration::from_millis(200));
    let diagnostics = server.diagnostics(&uri);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0]["range"]["start"]["line"], 2);
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    let message = server.wait_for_notification("window/showMessage", |m| {
        m["message"].as_str().unwrap_or("").contains("not applied")
    });
    let text = message["message"].as_str().unwrap();
    assert!(
        text.contains("src/lib.rs") && text.contains("line 3"),
        "{text}"
    );
    assert!(text.contains("Nothing was changed"), "{text}");
    assert!(apply_edits(&mut server).is_empty(), "no edit was sent");
    assert_eq!(server.document(&uri).text, before);
    let plan_now = server
        .request("pitcrew/plan", json!({"planId": plan}))
        .unwrap();
    assert_eq!(plan_now["status"], "ready", "still there to apply later");
}

#[test]
fn a_line_typed_directly_below_the_agents_lines_is_kept_and_the_result_applies() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    // While the team works, the user types a line right below the line it rewrites.
    server.change(&uri, (3, 0), (3, 0), "    // the user's line\n");
    server.wait_for_plan(&plan, "ready");
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    server.wait_for_plan(&plan, "applied");
    assert_eq!(
        server.document(&uri).text,
        RESULT.replace("    a + b\n", "    a + b\n    // the user's line\n")
    );
}

#[test]
fn requests_sent_right_after_initialized_get_their_real_answers() {
    let scenario = scenario(implement_add("delegated"));
    // No waiting for the team: a plugin asks the moment the server is initialized.
    let mut server = scenario.lsp().start();
    let uri = server.uri("src/lib.rs");
    server.open(&uri, "rust", UNSAVED);
    let actions = server.send_request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": range((0, 0), (4, 0)), "context": {"diagnostics": []}}),
    );
    let plans = server.send_request("pitcrew/plans", json!(null));
    let actions = server.response(actions).expect("code actions");
    titled(actions.as_array().unwrap(), "Delegate: implement add");
    let plans = server.response(plans).expect("not an error while starting");
    assert_eq!(plans, json!({"plans": []}));
}

#[test]
fn discarding_a_result_removes_its_branches_worktrees_and_snapshot() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    let refs = |scenario: &TeamScenario| {
        scenario.repo.git(&[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/heads/pitcrew/{plan}/"),
            &format!("refs/pitcrew/snapshots/{plan}"),
        ])
    };
    assert!(refs(&scenario).contains("snapshots"), "{}", refs(&scenario));
    server
        .command("pitcrew.discard", json!({"planId": plan}))
        .expect("discard");
    server.wait_for_plan(&plan, "cancelled");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !refs(&scenario).is_empty() {
        assert!(Instant::now() < deadline, "still kept: {}", refs(&scenario));
        server.pump_for(Duration::from_millis(50));
    }
    let worktrees = scenario.repo.git(&["worktree", "list"]);
    assert!(!worktrees.contains(&plan), "{worktrees}");
    // A retry says why it cannot be.
    let error = server
        .command("pitcrew.retry", json!({"planId": plan}))
        .unwrap_err();
    assert!(error.message.contains("cleaned up"), "{error:?}");
}

#[test]
fn an_edit_never_goes_through_a_link_out_of_the_repository() {
    let outside = tempfile::tempdir().unwrap();
    let scenario = TeamScenario::new(
        &[("src/lib.rs", ORIGINAL), (".gitignore", "linked\n")],
        vec![
            // The model un-ignores the link's name and writes "into" it.
            write("delegated", ".gitignore", ""),
            write("delegated", "linked/pwned.txt", "pwned\n"),
            finish("delegated", "done"),
            calls(
                "reviewer",
                Some("delegated"),
                json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": []}}]),
            ),
        ],
        "",
        "",
    );
    std::os::unix::fs::symlink(outside.path(), scenario.path().join("linked")).unwrap();
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    let message = server.wait_for_notification("window/showMessage", |m| {
        m["message"].as_str().unwrap_or("").contains("not applied")
    });
    let text = message["message"].as_str().unwrap();
    assert!(text.contains("linked is a symbolic link"), "{text}");
    assert!(apply_edits(&mut server).is_empty(), "no edit was sent");
    assert!(!outside.path().join("pwned.txt").exists());
}

#[test]
fn an_edit_refused_because_the_user_typed_is_computed_again_and_loses_nothing() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    server
        .behaviour_mut()
        .never_answer
        .insert("workspace/applyEdit".into());
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    server.wait_for_server_request("workspace/applyEdit");

    // The user types while the edit is in flight; the editor refuses the stale edit.
    server.change(&uri, (0, 0), (0, 0), "// typed while applying\n");
    server.behaviour_mut().never_answer.clear();
    server.answer_held(
        "workspace/applyEdit",
        json!({"applied": false, "failureReason": "the document changed"}),
    );
    server.wait_for_plan(&plan, "applied");
    let edits = apply_edits(&mut server);
    assert_eq!(edits.len(), 2, "computed again once");
    assert_eq!(
        edits[1]["params"]["edit"]["documentChanges"][0]["textDocument"]["version"],
        2
    );
    assert_eq!(
        server.document(&uri).text,
        format!("// typed while applying\n{RESULT}")
    );
}

#[test]
fn a_declined_edit_says_so_and_the_result_stays_ready_to_apply() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    let before = server.document(&uri).text.clone();
    server.wait_for_plan(&plan, "ready");
    // The user closes the editor's preview: VS Code answers `applied: false`, no reason.
    server.behaviour_mut().apply_edits = false;
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    let message = server.wait_for_notification("window/showMessage", |m| {
        m["message"].as_str().unwrap_or("").contains("not applied")
    });
    let text = message["message"].as_str().unwrap();
    assert!(
        text.contains("declined in the editor") && text.contains("nothing was changed"),
        "{text}"
    );
    assert!(!text.contains("no reason given"), "{text}");
    assert_eq!(apply_edits(&mut server).len(), 1, "asked once, not again");
    assert_eq!(server.document(&uri).text, before);
    let now = server
        .request("pitcrew/plan", json!({"planId": plan}))
        .unwrap();
    assert_eq!(now["status"], "ready", "still there to apply");

    // Applying again, this time accepted, applies it.
    server.behaviour_mut().apply_edits = true;
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    server.wait_for_plan(&plan, "applied");
    assert_eq!(server.document(&uri).text, RESULT);
}

#[test]
fn every_agent_shows_progress_from_begin_to_end() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    server.pump_for(Duration::from_millis(300));

    let created: Vec<Value> = server
        .server_requests("window/workDoneProgress/create")
        .iter()
        .map(|r| r["params"]["token"].clone())
        .collect();
    let progress = server.notifications("$/progress");
    let mut titles = Vec::new();
    for token in &created {
        let steps: Vec<&Value> = progress
            .iter()
            .filter(|p| &p["token"] == token)
            .map(|p| &p["value"])
            .collect();
        assert!(steps.len() >= 2, "{token}: {steps:?}");
        assert_eq!(steps[0]["kind"], "begin", "{token}");
        assert_eq!(steps.last().unwrap()["kind"], "end", "{token}");
        assert_eq!(steps[0]["cancellable"], true);
        titles.push(steps[0]["title"].as_str().unwrap().to_owned());
    }
    assert!(
        titles
            .iter()
            .any(|t| t.contains("implementer") && t.contains("implement add")),
        "{titles:?}"
    );
    assert!(titles.iter().any(|t| t.contains("reviewer")), "{titles:?}");
    // Reports carry what the agent does and its spend.
    assert!(
        progress.iter().any(|p| p["value"]["kind"] == "report"
            && p["value"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(" tok")),
        "{progress:#?}"
    );
}

#[test]
fn cancelling_an_agents_progress_stops_its_task() {
    let mut responses = implement_add("delegated");
    // The implementer's first answer takes a long time.
    responses[0] = with(responses[0].clone(), "latency_ms", json!(30_000));
    let scenario = scenario(responses);
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    let begin = server.wait_for_notification("$/progress", |p| {
        p["value"]["kind"] == "begin"
            && p["value"]["title"]
                .as_str()
                .unwrap_or("")
                .contains("implementer")
    });
    let token = begin["token"].clone();
    let cancelled_at = Instant::now();
    server.notify("window/workDoneProgress/cancel", json!({"token": token}));
    let ended = server.wait_for_plan(&plan, "cancelled");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );
    assert_eq!(ended["tasks"][0]["status"], "cancelled");
    server.wait_for_notification("$/progress", |p| {
        p["token"] == token && p["value"]["kind"] == "end"
    });
}

#[test]
fn a_client_that_never_answers_apply_edit_cannot_wedge_the_server() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    server
        .behaviour_mut()
        .never_answer
        .insert("workspace/applyEdit".into());
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    server.wait_for_server_request("workspace/applyEdit");

    // Everything else is still answered, promptly.
    let started = Instant::now();
    server.request("pitcrew/plans", Value::Null).expect("plans");
    code_actions(&mut server, &uri, range((1, 0), (1, 0)), json!([]));
    server
        .request(
            "pitcrew/task",
            json!({"taskId": format!("{plan}/delegated")}),
        )
        .expect("task");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.shutdown(), 0, "shutdown answered and a clean exit");
}

#[test]
fn review_findings_move_with_the_text_and_vanish_when_it_is_rewritten() {
    let review = calls(
        "reviewer",
        Some("review"),
        json!([{"name": "submit_review", "arguments": {"verdict": "request_changes", "findings": [
            {"path": "src/shapes.rs", "line": 2, "severity": "error", "message": "panics on every call"},
            {"path": "src/shapes.rs", "line": 3, "severity": "warning", "message": "returns nothing useful",
             "suggestion": "fn c() -> u8 { 0 }"},
            {"path": "src/shapes.rs", "line": 1, "severity": "info", "message": "a is fine but terse"}
        ]}}]),
    );
    let scenario = TeamScenario::new(&[("src/shapes.rs", "fn a() {}\n")], vec![review], "", "");
    let mut server = start(&scenario);
    let uri = server.uri("src/shapes.rs");
    // Unsaved code, reviewed as the user sees it.
    server.open(&uri, "rust", "fn a() {}\nfn b() { panic!() }\nfn c() {}\n");
    let actions = code_actions(&mut server, &uri, range((0, 0), (3, 0)), json!([]));
    let started = run_action(&mut server, titled(&actions, "Review selection"));
    let plan = started["planId"].as_str().unwrap().to_owned();
    server.wait_for_plan(&plan, "ready");
    let lines = |d: &[Value]| -> Vec<u64> {
        let mut lines: Vec<u64> = d
            .iter()
            .map(|d| d["range"]["start"]["line"].as_u64().unwrap())
            .collect();
        lines.sort();
        lines
    };
    let diagnostics = server.wait_for_diagnostics(&uri, |d| d.len() == 3);
    assert_eq!(lines(&diagnostics), [0, 1, 2]);

    // Dismissed: gone.
    let terse = diagnostics
        .iter()
        .find(|d| d["message"] == "a is fine but terse")
        .unwrap();
    server
        .command(
            "pitcrew.dismissFinding",
            json!({"findingId": terse["data"]["findingId"]}),
        )
        .expect("dismiss");
    let diagnostics = server.wait_for_diagnostics(&uri, |d| d.len() == 2);
    assert_eq!(lines(&diagnostics), [1, 2]);

    // Two lines inserted above: both move down.
    server.change(&uri, (0, 0), (0, 0), "// one\n// two\n");
    let diagnostics = server.wait_for_diagnostics(&uri, |d| lines(d) == [3, 4]);

    // The reviewer's fix, resolved lazily, rewrites its line: that finding goes.
    let with_fix = diagnostics
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("returns nothing"))
        .unwrap()
        .clone();
    let actions = code_actions(
        &mut server,
        &uri,
        with_fix["range"].clone(),
        json!([with_fix]),
    );
    titled(&actions, "Send back to an implementer");
    titled(&actions, "Dismiss finding");
    let fix = titled(&actions, "Apply reviewer's fix").clone();
    assert_eq!(fix["kind"], "quickfix");
    let resolved = server.request("codeAction/resolve", fix).expect("resolve");
    let edit = &resolved["edit"]["documentChanges"][0];
    assert_eq!(
        edit["textDocument"]["version"],
        server.document(&uri).version
    );
    let text_edit = &edit["edits"][0];
    let at = |p: &Value| {
        (
            p["line"].as_u64().unwrap() as u32,
            p["character"].as_u64().unwrap() as u32,
        )
    };
    server.change(
        &uri,
        at(&text_edit["range"]["start"]),
        at(&text_edit["range"]["end"]),
        text_edit["newText"].as_str().unwrap(),
    );
    assert!(server.document(&uri).text.contains("fn c() -> u8 { 0 }\n"));
    server.wait_for_diagnostics(&uri, |d| lines(d) == [3]);

    // The panicking line rewritten by the user: its finding vanishes too.
    server.change(&uri, (3, 9), (3, 17), "b_impl()");
    server.wait_for_diagnostics(&uri, |d| d.is_empty());
}

#[test]
fn show_plan_opens_plan_md_for_editors_without_a_plan_view() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    let shown = server
        .command("pitcrew.showPlan", json!({}))
        .expect("showPlan");
    let request = server.wait_for_server_request("window/showDocument");
    assert_eq!(request["params"]["uri"], shown["uri"]);
    let path = pitcrew_tests::uri_path(shown["uri"].as_str().unwrap());
    assert!(path.ends_with(".git/pitcrew/PLAN.md"), "{}", path.display());
    let markdown = std::fs::read_to_string(&path).unwrap();
    assert!(markdown.contains(&plan) && markdown.contains("implement add"));
    assert!(markdown.contains("ready"), "{markdown}");
}

#[test]
fn show_plan_names_the_file_when_the_editor_cannot_open_documents() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = scenario
        .lsp()
        .capabilities(json!({"window": {"showDocument": {"support": false}}}))
        .start();
    server.wait_for_team();
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    server
        .command("pitcrew.showPlan", json!({"planId": plan}))
        .expect("showPlan");
    server.wait_for_notification("window/showMessage", |m| {
        m["message"].as_str().unwrap_or("").contains("PLAN.md")
    });
    assert!(server.server_requests("window/showDocument").is_empty());
}

#[test]
fn a_client_that_asks_for_prompts_gets_the_question_as_one_and_the_answer_drives_the_team() {
    let scenario = scenario(implement_add_rejected());
    // A client that asks for questions as prompts.
    let mut server = scenario
        .lsp()
        .capabilities(json!({"experimental": {"pitcrew": {"questions": "prompt"}}}))
        .start();
    server.behaviour_mut().message_action = Some("Abort".into());
    server.wait_for_team();
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    let question = server.wait_for_server_request("window/showMessageRequest");
    let text = question["params"]["message"].as_str().unwrap();
    assert!(text.contains("rejected"), "{text}");
    let actions: Vec<&str> = question["params"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["Retry", "Abort", "Open diff"]);
    // "Abort" was answered: the task is aborted and the plan ends without a result.
    let ended = server.wait_for_notification("pitcrew/planChanged", |p| {
        p["planId"] == plan.as_str() && matches!(p["status"].as_str(), Some("failed" | "escalated"))
    });
    assert_ne!(ended["plan"]["tasks"][0]["status"], "ready");
    assert!(ended["plan"]["question"].is_null(), "answered");
}

#[test]
fn a_question_never_takes_the_keyboard_it_is_told_and_answered_by_a_code_action() {
    let scenario = scenario(implement_add_rejected());
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    let told = server.wait_for_notification("window/showMessage", |m| {
        m["message"].as_str().unwrap_or("").contains("asks:")
    });
    let text = told["message"].as_str().unwrap();
    assert!(text.contains("rejected"), "{text}");
    assert!(
        text.contains("\"Answer: Retry\", \"Answer: Abort\""),
        "names the actions: {text}"
    );
    assert_eq!(told["type"], 2, "a warning");
    server.pump_for(Duration::from_millis(200));
    assert!(
        server
            .server_requests("window/showMessageRequest")
            .is_empty(),
        "no prompt"
    );

    // The reviewer's finding is on the user's code while the question is open.
    server.wait_for_diagnostics(&uri, |d| d.len() == 1);

    // Any file offers the answers; in a file the plan never touched too.
    let other = server.uri("notes.txt");
    server.open(&other, "plaintext", "some notes\n");
    let actions = code_actions(&mut server, &other, range((0, 0), (0, 0)), json!([]));
    let answers: Vec<&Value> = actions
        .iter()
        .filter(|a| a["title"].as_str().unwrap_or("").starts_with("Answer: "))
        .collect();
    assert_eq!(answers.len(), 2, "{actions:#?}");
    assert!(answers.iter().all(|a| a["kind"] == "quickfix"));
    let abort = answers
        .iter()
        .find(|a| a["title"].as_str().unwrap().starts_with("Answer: Abort ("))
        .expect("Answer: Abort");
    assert!(
        abort["title"].as_str().unwrap().contains("rejected"),
        "{abort}"
    );
    run_action(&mut server, abort);
    let ended = server.wait_for_notification("pitcrew/planChanged", |p| {
        p["planId"] == plan.as_str() && matches!(p["status"].as_str(), Some("failed" | "escalated"))
    });
    assert_ne!(ended["plan"]["tasks"][0]["status"], "ready");
    assert!(ended["plan"]["question"].is_null(), "answered");
    // Aborted: its finding does not linger on the code.
    server.wait_for_diagnostics(&uri, |d| d.is_empty());
    // Answered: no longer offered.
    let actions = code_actions(&mut server, &other, range((0, 0), (0, 0)), json!([]));
    assert!(
        actions
            .iter()
            .all(|a| !a["title"].as_str().unwrap_or("").starts_with("Answer: ")),
        "{actions:#?}"
    );
}

#[test]
fn code_actions_offer_what_fits_the_selection_and_commands_fail_clearly() {
    let scenario = scenario(Vec::new());
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    server.open(&uri, "rust", UNSAVED);
    let lint =
        json!({"range": range((2, 4), (2, 11)), "message": "unreachable code", "source": "rustc"});
    let actions = code_actions(&mut server, &uri, range((0, 0), (4, 0)), json!([lint]));
    let titles: Vec<&str> = actions
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    for expected in [
        "Delegate: implement add",
        "Plan: implement add",
        "Delegate to implementer: implement",
        "Delegate to implementer: fix the diagnostics here",
        "Delegate to implementer: add tests",
        "Delegate to implementer: document",
        "Delegate to implementer: simplify",
        "Review selection",
        "Review file",
    ] {
        assert!(titles.contains(&expected), "{expected} in {titles:?}");
    }
    assert!(actions.iter().all(|a| a["kind"] == "refactor.rewrite"));
    // The fix preset carries the other diagnostics to the implementer.
    let fix = server
        .request(
            "codeAction/resolve",
            titled(
                &actions,
                "Delegate to implementer: fix the diagnostics here",
            )
            .clone(),
        )
        .unwrap();
    assert_eq!(
        fix["command"]["arguments"][0]["diagnostics"][0],
        "rustc: unreachable code"
    );
    // Filtering by kind.
    let only_fixes = server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": range((0, 0), (0, 0)),
                   "context": {"diagnostics": [], "only": ["quickfix"]}}),
        )
        .unwrap();
    assert_eq!(only_fixes, json!([]));

    // Bad commands get readable JSON-RPC errors.
    let unknown = server.command("pitcrew.nope", json!({})).unwrap_err();
    assert!(unknown.message.contains("unknown command"));
    let no_uri = server.command("pitcrew.delegate", json!({})).unwrap_err();
    assert!(no_uri.message.contains("needs a uri"), "{}", no_uri.message);
    let bad = server
        .command("pitcrew.delegate", json!({"uri": uri, "preset": "magic"}))
        .unwrap_err();
    assert!(bad.message.contains("unknown preset"), "{}", bad.message);
    let missing = server
        .command("pitcrew.apply", json!({"planId": "p-none"}))
        .unwrap_err();
    assert!(
        missing.message.contains("no plan p-none"),
        "{}",
        missing.message
    );
    let outside = server
        .command("pitcrew.review", json!({"uri": "file:///etc/passwd"}))
        .unwrap_err();
    assert!(outside.message.contains("not a file in the repository"));
    let no_answer = server.command("pitcrew.answer", json!({})).unwrap_err();
    assert_eq!(no_answer.code, -32602, "{no_answer:?}");
    assert!(no_answer.message.contains("planId"), "{no_answer:?}");
}

#[test]
fn files_that_are_not_open_get_unversioned_edits_and_new_files_are_created_with_a_preview() {
    let task = "delegated";
    let scenario = TeamScenario::new(
        &[("src/lib.rs", ORIGINAL), ("README.md", "# adder\n")],
        vec![
            write(task, "src/lib.rs", RESULT),
            write(
                task,
                "src/tests.rs",
                "#[test]\nfn adds() { assert_eq!(crate::add(1, 2), 3); }\n",
            ),
            write(task, "README.md", "# adder\n\nAdds two numbers.\n"),
            finish(task, "implemented add, with a test and a README line"),
            calls(
                "reviewer",
                Some(task),
                json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": [
                    {"path": "README.md", "line": 3, "severity": "info", "message": "say what overflow does"}
                ]}}]),
            ),
        ],
        "",
        "",
    );
    let mut server = scenario
        .lsp()
        .capabilities(json!({"workspace": {"workspaceEdit": {
            "documentChanges": true,
            "resourceOperations": ["create", "rename", "delete"],
            "changeAnnotationSupport": {"groupsOnLabel": true}
        }}}))
        .start();
    server.wait_for_team();
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    server.wait_for_plan(&plan, "applied");
    // The finding in the file that was not open is on its applied line.
    let readme_uri = server.uri("README.md");
    server.wait_for_diagnostics(&readme_uri, |d| {
        d.len() == 1 && d[0]["range"]["start"]["line"] == 2
    });

    let edit = apply_edits(&mut server)[0]["params"]["edit"].clone();
    let annotation = &edit["changeAnnotations"]["pitcrew"];
    // Applied as sent: a confirmation would make VS Code untick every change.
    assert_eq!(annotation["needsConfirmation"], false, "{edit:#}");
    assert!(
        annotation["label"]
            .as_str()
            .unwrap()
            .contains("implement add")
    );
    let changes = edit["documentChanges"].as_array().unwrap();
    let for_uri = |relative: &str| {
        let target = server.uri(relative);
        changes
            .iter()
            .filter(move |c| {
                c["textDocument"]["uri"] == target.as_str() || c["uri"] == target.as_str()
            })
            .cloned()
            .collect::<Vec<Value>>()
    };
    let readme = for_uri("README.md");
    assert_eq!(readme.len(), 1);
    assert_eq!(
        readme[0]["textDocument"]["version"],
        Value::Null,
        "not open"
    );
    assert_eq!(readme[0]["edits"][0]["annotationId"], "pitcrew");
    let created = for_uri("src/tests.rs");
    assert_eq!(created[0]["kind"], "create");
    assert_eq!(created[0]["annotationId"], "pitcrew");
    assert_eq!(created[1]["textDocument"]["version"], Value::Null);
    let buffer = for_uri("src/lib.rs");
    assert_eq!(
        buffer[0]["textDocument"]["version"], 1,
        "the open buffer's version"
    );

    // The client applied it: the buffer in the editor, the rest on disk.
    assert_eq!(server.document(&uri).text, RESULT);
    assert_eq!(
        scenario.repo.read("README.md"),
        "# adder\n\nAdds two numbers.\n"
    );
    assert!(scenario.repo.read("src/tests.rs").contains("fn adds()"));
    assert_eq!(
        scenario.repo.read("src/lib.rs"),
        ORIGINAL,
        "unsaved in the editor"
    );
}

#[test]
fn after_a_restart_findings_come_back_only_where_the_code_is_still_as_reviewed() {
    let review = calls(
        "reviewer",
        Some("review"),
        json!([{"name": "submit_review", "arguments": {"verdict": "request_changes", "findings": [
            {"path": "src/shapes.rs", "line": 1, "severity": "info", "message": "a is terse"},
            {"path": "src/shapes.rs", "line": 2, "severity": "error", "message": "panics on every call"},
            {"path": "src/shapes.rs", "line": 3, "severity": "warning", "message": "returns nothing useful"},
            {"path": "src/shapes.rs", "line": 99999999, "severity": "warning", "message": "past the end"}
        ]}}]),
    );
    let reviewed = "fn a() {}\nfn b() { panic!() }\nfn c() {}\n";
    let scenario = TeamScenario::new(&[("src/shapes.rs", reviewed)], vec![review], "", "");
    let messages = |d: &[Value]| -> Vec<(u64, String)> {
        let mut found: Vec<(u64, String)> = d
            .iter()
            .map(|d| {
                (
                    d["range"]["start"]["line"].as_u64().unwrap(),
                    d["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        found.sort();
        found
    };
    {
        let mut server = start(&scenario);
        let uri = server.uri("src/shapes.rs");
        server.open(&uri, "rust", reviewed);
        let actions = code_actions(&mut server, &uri, range((0, 0), (3, 0)), json!([]));
        let started = run_action(&mut server, titled(&actions, "Review file"));
        server.wait_for_plan(started["planId"].as_str().unwrap(), "ready");
        let diagnostics = server.wait_for_diagnostics(&uri, |d| d.len() == 4);
        // A line number from the model past the end of the file lands on the last line.
        assert!(
            messages(&diagnostics).contains(&(2, "past the end".to_owned())),
            "{diagnostics:#?}"
        );
        let terse = diagnostics
            .iter()
            .find(|d| d["message"] == "a is terse")
            .unwrap();
        server
            .command(
                "pitcrew.dismissFinding",
                json!({"findingId": terse["data"]["findingId"]}),
            )
            .expect("dismiss");
        server.wait_for_diagnostics(&uri, |d| d.len() == 3);
    }
    // While pitcrew is not running, the user fixes b and saves.
    let fixed = "fn a() {}\nfn b() -> Option<u8> { None }\nfn c() {}\n";
    scenario.repo.write("src/shapes.rs", fixed);

    let mut server = start(&scenario);
    let uri = server.uri("src/shapes.rs");
    server.open(&uri, "rust", fixed);
    let diagnostics = server.wait_for_diagnostics(&uri, |d| !d.is_empty());
    server.pump_for(Duration::from_millis(300));
    let diagnostics = {
        let latest = server.diagnostics(&uri);
        if latest.is_empty() {
            diagnostics
        } else {
            latest
        }
    };
    assert_eq!(
        messages(&diagnostics),
        [
            (2, "past the end".to_owned()),
            (2, "returns nothing useful".to_owned())
        ],
        "the fixed line's finding is gone, the dismissed one stays dismissed"
    );
}

#[test]
fn a_second_apply_while_the_editor_is_asked_is_refused() {
    let scenario = scenario(implement_add("delegated"));
    let mut server = start(&scenario);
    server
        .behaviour_mut()
        .never_answer
        .insert("workspace/applyEdit".into());
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("the first apply starts");
    server.wait_for_server_request("workspace/applyEdit");
    let error = server
        .command("pitcrew.apply", json!({"planId": plan}))
        .unwrap_err();
    assert!(error.message.contains("being applied already"), "{error:?}");
    assert_eq!(apply_edits(&mut server).len(), 1, "the edit was sent once");
}

#[test]
fn retrying_a_plan_that_failed_runs_it_again_to_ready() {
    // The first call fails for good (no quota); after the user tops up, a retry succeeds.
    let mut responses = vec![json!({
        "when": {"role": "implementer", "task": "delegated"},
        "fault": {"kind": "quota"}
    })];
    responses.extend(implement_add("delegated"));
    let scenario = scenario(responses);
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, task) = delegate_from_comment(&mut server, &uri);
    let failed = server.wait_for_plan(&plan, "failed");
    assert_eq!(failed["tasks"][0]["status"], "failed", "{failed:#}");
    assert_eq!(failed["running"], false);

    server
        .command("pitcrew.retry", json!({"taskId": task}))
        .expect("the retry is taken");
    let ready = server.wait_for_plan(&plan, "ready");
    assert_eq!(ready["tasks"][0]["status"], "ready", "{ready:#}");
    assert_eq!(ready["tasks"][0]["findings"], 1);
}

#[test]
fn a_plan_interrupted_by_a_crash_resumes_once_in_the_next_server_even_when_settings_arrive_at_once()
{
    let slow = |latency: u64| {
        with(
            calls(
                "implementer",
                Some("delegated"),
                json!([{"name": "read_file", "arguments": {"path": "src/lib.rs"}}]),
            ),
            "latency_ms",
            json!(latency),
        )
    };
    // The first call is cut short by the crash; the resumed implementer's is slow enough to
    // look at the plan and cancel it.
    let scenario = scenario(vec![slow(60_000), slow(60_000)]);
    let plan = {
        let mut server = start(&scenario);
        let uri = server.uri("src/lib.rs");
        let (plan, _) = delegate_from_comment(&mut server, &uri);
        server.wait_for_notification("$/progress", |p| {
            p["value"]["kind"] == "begin"
                && p["value"]["title"]
                    .as_str()
                    .is_some_and(|t| t.contains("implementer"))
        });
        server.kill();
        plan
    };

    // The editor starts the server again and sends its settings right away, while the team is
    // still starting: one team resumes the plan, and it answers for it.
    let mut server = scenario.lsp().start();
    server.notify("workspace/didChangeConfiguration", json!({"settings": {}}));
    server.wait_for_team();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot = server
            .request("pitcrew/plan", json!({"planId": plan}))
            .expect("the plan is known");
        if snapshot["running"] == true && snapshot["tasks"][0]["status"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the plan was not resumed: {snapshot:#}"
        );
        server.pump_for(Duration::from_millis(50));
    }
    server
        .command("pitcrew.cancel", json!({"planId": plan}))
        .expect("the resumed plan takes commands");
    server.wait_for_plan(&plan, "cancelled");
    assert!(
        !server.stderr().contains("not resuming plan"),
        "a second team tried to resume it:\n{}",
        server.stderr()
    );
}

#[test]
fn a_client_with_pitcrews_plugin_gets_no_messages_its_plugin_shows_itself() {
    let scenario = scenario(implement_add_rejected());
    let mut server = scenario
        .lsp()
        .capabilities(json!({"experimental": {"pitcrew": {"plugin": true}}}))
        .start();
    server.wait_for_team();
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    let asked = server.wait_for_notification("pitcrew/planChanged", |p| {
        p["planId"] == plan.as_str() && p["plan"]["question"].is_object()
    });
    assert!(
        asked["plan"]["question"]["text"]
            .as_str()
            .unwrap()
            .contains("rejected")
    );
    server
        .command(
            "pitcrew.answer",
            json!({"planId": plan, "escalationId": asked["plan"]["question"]["escalationId"], "choice": "abort"}),
        )
        .expect("answered");
    server.wait_for_notification("pitcrew/planChanged", |p| {
        p["planId"] == plan.as_str() && p["plan"]["question"].is_null() && p["status"] != "running"
    });
    server.pump_for(Duration::from_millis(300));
    assert!(
        server
            .server_requests("window/showMessageRequest")
            .is_empty()
    );
    let messages = server.notifications("window/showMessage");
    assert!(messages.is_empty(), "{messages:#?}");
}

#[test]
fn a_typo_in_the_configuration_is_told_once_with_its_line_and_nothing_runs_until_it_is_fixed() {
    let scenario = scenario(implement_add("delegated"));
    let toml = std::fs::read_to_string(scenario.path().join("pitcrew.toml")).unwrap();
    let typo = if toml.contains("[team]\n") {
        toml.replacen("[team]\n", "[team]\nreview_rouds = 1\n", 1)
    } else {
        format!("{toml}\n[team]\nreview_rouds = 1\n")
    };
    std::fs::write(scenario.path().join("pitcrew.toml"), &typo).unwrap();
    let line = typo
        .lines()
        .position(|l| l.starts_with("review_rouds"))
        .unwrap()
        + 1;
    let mut server = start(&scenario);
    let told = server.wait_for_notification("window/showMessage", |m| m["type"] == 1);
    let text = told["message"].as_str().unwrap();
    let file = scenario.path().join("pitcrew.toml");
    assert!(
        text.contains(&format!(
            "{}:{line}:1: `team.review_rouds`: unknown field",
            file.display()
        )),
        "file, line and key: {text}"
    );
    assert!(text.contains("nothing can run until it is fixed"), "{text}");
    assert!(!text.contains("last good"), "there is none: {text}");

    // Delegating says the same, not "add [models.default]" (which is there).
    let uri = server.uri("src/lib.rs");
    server.open(&uri, "rust", UNSAVED);
    let actions = code_actions(&mut server, &uri, range((0, 0), (4, 0)), json!([]));
    let resolved = server
        .request(
            "codeAction/resolve",
            titled(&actions, "Delegate: implement add").clone(),
        )
        .unwrap();
    let command = &resolved["command"];
    let error = server
        .request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        )
        .unwrap_err();
    assert!(
        error.message.contains("`team.review_rouds`")
            && error.message.contains("nothing can run until it is fixed"),
        "{error:?}"
    );
    assert!(!error.message.contains("models.default"), "{error:?}");
    server.pump_for(Duration::from_millis(200));
    let errors: Vec<Value> = server
        .notifications("window/showMessage")
        .into_iter()
        .filter(|m| m["type"] == 1)
        .collect();
    assert_eq!(errors.len(), 1, "told once: {errors:#?}");

    // Fixed and saved: delegating works.
    std::fs::write(scenario.path().join("pitcrew.toml"), &toml).unwrap();
    let toml_uri = server.uri("pitcrew.toml");
    server.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": toml_uri}}),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ran = server.request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        );
        if ran.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ran:?}");
        server.pump_for(Duration::from_millis(50));
    }
}

#[test]
fn findings_come_back_with_a_redo_and_overlapping_ones_say_which_each_action_is_for() {
    let mut responses = implement_add("delegated");
    responses[3] = calls(
        "reviewer",
        Some("delegated"),
        json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": [
            {"path": "src/lib.rs", "line": 5, "severity": "warning",
             "message": "overflows on large inputs", "suggestion": "    a.wrapping_add(b)"},
            {"path": "src/lib.rs", "line": 5, "severity": "info",
             "message": "consider i64 for the sum"}
        ]}}]),
    );
    let scenario = scenario(responses);
    let mut server = start(&scenario);
    let uri = server.uri("src/lib.rs");
    let (plan, _) = delegate_from_comment(&mut server, &uri);
    server.wait_for_plan(&plan, "ready");
    let before_apply = server.document(&uri).text.clone();
    server
        .command("pitcrew.apply", json!({"planId": plan}))
        .expect("apply starts");
    server.wait_for_plan(&plan, "applied");
    let applied = server.document(&uri).text.clone();
    let placed = server.wait_for_diagnostics(&uri, |d| d.len() == 2);
    let lines: Vec<Value> = placed.iter().map(|d| d["range"].clone()).collect();

    // Two findings on one line: every action names the finding it is for.
    let actions = code_actions(&mut server, &uri, range((4, 0), (4, 0)), json!(placed));
    let titles: Vec<&str> = actions
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    for expected in [
        "Apply reviewer's fix: overflows on large inputs",
        "Dismiss finding: overflows on large inputs",
        "Dismiss finding: consider i64 for the sum",
        "Send back to an implementer: consider i64 for the sum",
    ] {
        assert!(titles.contains(&expected), "{expected} in {titles:?}");
    }
    let unique: std::collections::HashSet<&&str> = titles.iter().collect();
    assert_eq!(unique.len(), titles.len(), "no title twice: {titles:?}");

    // Undo the apply (the editor sends the text back as it was), then redo it.
    let replace_all = |server: &mut TestServer, text: &str| {
        let lines = server.document(&uri).text.lines().count() as u32;
        server.change(&uri, (0, 0), (lines, 0), text);
    };
    replace_all(&mut server, &before_apply);
    server.wait_for_diagnostics(&uri, |d| d.is_empty());
    replace_all(&mut server, &applied);
    let back = server.wait_for_diagnostics(&uri, |d| d.len() == 2);
    let back_lines: Vec<Value> = back.iter().map(|d| d["range"].clone()).collect();
    assert_eq!(back_lines, lines, "the findings are back where they were");
}
