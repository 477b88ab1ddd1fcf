//! Neovim, for real: the `editors/nvim` plugin in Neovim 0.7 (apt) and 0.11 (PyPI), headless,
//! against `pitcrew lsp` and the fake model. A user's unsaved edit, a delegated line range, the
//! plan view, `:PitcrewApply` landing in the buffer, the reviewer's diagnostics, `:checkhealth`
//! and `:help`, driven by `tests/editors/nvim/delegate_apply.lua`; reviews, planned goals,
//! cancelling and retrying in the floating plan view, by `review_plan_cancel.lua`; a buffer the
//! client had not opened, delegated with a charwise non-ASCII selection, by `unattached.lua`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_tests::pitcrew_bin;
use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{self, approve, calls, finish, when_contains, with, write};
use serde_json::{Value, json};

/// How long one Neovim run may take before it is killed (a run takes about two seconds).
const TIMEOUT: Duration = Duration::from_secs(60);

const FILE: &str = "src/lib.rs";
/// The committed file, which must stay as it is on disk.
const ORIGINAL: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    todo!()\n}\n";
/// What the user types above the function and does not save (not ASCII, so the position
/// encodings differ).
const NOTE: &str = "// Überlauf? naïve sums — the user's unsaved note";
const INSTRUCTION: &str = "implement add";
/// What the implementer writes: the buffer it saw (the note included), implemented.
const RESULT: &str = "// Überlauf? naïve sums — the user's unsaved note\n/// The sum of `a` and `b`.\n/// Overflow panics in debug builds.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
/// What the user types below the function while the team works.
const LATER: &str = "// typed while the team worked ✓";
const FINDING: &str = "overflows on large inputs";

fn responses() -> Vec<Value> {
    let task = "delegated";
    vec![
        calls(
            "implementer",
            Some(task),
            json!([{"name": "read_file", "arguments": {"path": FILE}}]),
        ),
        write(task, FILE, RESULT),
        finish(task, "implemented add"),
        // Line 5 of the result is `a + b`.
        calls(
            "reviewer",
            Some(task),
            json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": [
                {"path": FILE, "line": 5, "severity": "warning", "message": FINDING}
            ]}}]),
        ),
        // `pitcrew doctor` (run by :checkhealth) asks each model to call a tool.
        json!({"when": {"role": "doctor"}, "tool_calls": [{"name": "report_health", "arguments": {"word": "ok"}}], "repeat": true}),
    ]
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// The Neovim at `path`, checked to be version `version`; fails (never skips) without it.
fn neovim(path: &Path, version: &str) -> PathBuf {
    let output = Command::new(path).arg("--version").output();
    let first_line = match &output {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        Err(err) => panic!(
            "Neovim {version} is not installed at {} ({err}): run tests/editors/setup",
            path.display()
        ),
    };
    assert!(
        first_line.starts_with(&format!("NVIM v{version}")),
        "{} is {first_line:?}, not Neovim {version}: run tests/editors/setup",
        path.display()
    );
    path.to_path_buf()
}

fn neovim_0_11() -> PathBuf {
    neovim(
        &repo_root().join("target/editors/nvim-venv/bin/nvim"),
        "0.11",
    )
}

/// Everything a failed run left to read: Neovim's stderr, and the LSP log (the server's
/// stderr is in it).
fn diagnosis(stderr: &str, home: &Path) -> String {
    let mut text = format!("--- nvim stderr\n{stderr}");
    for log in ["state/nvim/lsp.log", "cache/nvim/lsp.log"] {
        if let Ok(log_text) = std::fs::read_to_string(home.join(log)) {
            let start = log_text.len().saturating_sub(6000);
            let start = (start..log_text.len())
                .find(|&i| log_text.is_char_boundary(i))
                .unwrap_or(start);
            text.push_str(&format!("\n--- {log} (tail)\n{}", &log_text[start..]));
        }
    }
    text
}

/// Runs `tests/editors/nvim/<script>` in `nvim` (headless, no user config, the plugin on
/// 'runtimepath') in the scenario's repository, with `vars` as PITCREW_TEST_* variables;
/// fails with Neovim's stderr and LSP log unless the script passed.
fn run_script(nvim: &Path, scenario: &TeamScenario, script: &str, vars: &[(&str, &str)]) {
    let home = scenario.home.path();
    let plugin = repo_root().join("editors/nvim");
    let script = repo_root().join("tests/editors/nvim").join(script);
    for dir in ["config", "data", "state", "cache", "run"] {
        std::fs::create_dir_all(home.join(dir)).expect("XDG dirs");
    }
    let mut command = Command::new(nvim);
    command
        .args(["-u", "NONE", "-i", "NONE", "-n", "--headless", "--cmd"])
        .arg(format!("set rtp^={}", plugin.display()))
        .arg("-c")
        .arg(format!("luafile {}", script.display()))
        .current_dir(scenario.path())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
        .env("PITCREW_LOG", "info")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env("PITCREW_TEST_BIN", pitcrew_bin())
        .env("PITCREW_TEST_REPO", scenario.path())
        .env("PITCREW_TEST_PLUGIN", &plugin)
        .env("PITCREW_TEST_FILE", FILE)
        .env("PITCREW_TEST_INSTRUCTION", INSTRUCTION)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(format!("PITCREW_TEST_{name}"), value);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", nvim.display()));
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for nvim") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = reader.join().expect("stderr reader");
    match status {
        None => panic!(
            "{} did not finish {} within {TIMEOUT:?}; killed\n{}",
            nvim.display(),
            script.display(),
            diagnosis(&stderr, home)
        ),
        Some(status) if !status.success() => panic!(
            "{} failed ({status})\n{}",
            script.display(),
            diagnosis(&stderr, home)
        ),
        Some(_) => {}
    }
    assert!(
        stderr.contains("[nvim test] PASS"),
        "{}",
        diagnosis(&stderr, home)
    );
    eprintln!(
        "{stderr}\n{} passed {} in {:?}",
        nvim.display(),
        script.display(),
        started.elapsed()
    );
}

/// The user's flow: an unsaved edit, a delegated range, the plan view, `:PitcrewApply`, the
/// reviewer's diagnostics; then `:checkhealth pitcrew` and `:help`.
fn delegate_apply_review(nvim: &Path, encoding: &str) {
    let scenario = TeamScenario::new(&[(FILE, ORIGINAL)], responses(), "", "");
    let expected = format!("{RESULT}{LATER}\n");
    run_script(
        nvim,
        &scenario,
        "delegate_apply.lua",
        &[
            ("NOTE", NOTE),
            ("LATER", LATER),
            ("EXPECTED", &expected),
            ("ENCODING", encoding),
            ("FINDING", FINDING),
            // Before applying, `a + b` is not in the buffer: the finding is on the `todo!()`
            // it replaces (the note is line 0); after applying, on `a + b` itself.
            ("FINDING_LINE_BEFORE", "2"),
            ("FINDING_LINE_AFTER", "4"),
        ],
    );

    // What the implementer was given: the delegated lines of the unsaved buffer.
    let requests = scenario.fake.requests_of("implementer", Some("delegated"));
    let first = serde_json::to_string(&requests[0]["body"]).expect("JSON");
    assert!(
        first.contains(&format!("{FILE} lines 2-4")),
        "the delegated range, in the task: {first}"
    );
    let read = serde_json::to_string(&requests[1]["body"]).expect("JSON");
    assert!(
        read.contains("naïve sums"),
        "read_file returned the buffer's unsaved text: {read}"
    );
    assert_eq!(scenario.repo.read(FILE), ORIGINAL, "nothing saved");
}

/// The reviewer rejects the result: the question reaches a headless Neovim without blocking
/// it, the plan view shows it and the diff, and answering "Abort" ends the plan.
fn escalation(nvim: &Path) {
    let mut responses = responses();
    responses[3] = calls(
        "reviewer",
        Some("delegated"),
        json!([{"name": "submit_review", "arguments": {"verdict": "reject", "findings": [
            {"path": FILE, "line": 5, "severity": "error", "message": "wrong approach"}
        ]}}]),
    );
    // A second delegation, rejected the same way.
    let again = responses.clone();
    responses.extend(again);
    let scenario = TeamScenario::new(&[(FILE, ORIGINAL)], responses, "", "");
    run_script(
        nvim,
        &scenario,
        "escalation.lua",
        &[("DIFF_LINE", "+    a + b"), ("ANSWER", "Abort")],
    );
    for plan in scenario.plans() {
        assert_ne!(plan["status"], "ready", "{plan:#}");
    }
}

/// `setup()` and `vim.g.pitcrew`: options taken, bad ones refused by name.
fn options(nvim: &Path) {
    let scenario = TeamScenario::new(&[(FILE, ORIGINAL)], Vec::new(), "", "");
    run_script(nvim, &scenario, "options.lua", &[]);
}

/// What the reviewer says of lines 2-4 of the unsaved buffer: line 3 is `todo!()`.
const RANGE_FINDING: &str = "todo!() panics at run time";
/// What it says of the whole file: line 1 is the unsaved note.
const FILE_FINDING: &str = "the note asks a question nobody answers";
/// The goals of the three planned plans; each planner answer matches its goal.
const GOAL_READY: &str = "greet in two files";
const GOAL_RETRY: &str = "count in two files";
const GOAL_CANCEL: &str = "stall in two files";

/// The fake model's side of `review_plan_cancel.lua`: two reviews; a plan of two tasks, `t2`
/// after `t1`; a plan of two slow tasks side by side, `s1` (cancelled, then retried: its model
/// answers at once then) and `s2` (cancelled); a plan whose slow `u1` has `u2` after it
/// (cancelled).
fn review_plan_cancel_responses() -> Vec<Value> {
    let slow = |entry: Value| with(entry, "latency_ms", json!(30_000));
    let implemented = |task: &str, path: &str| {
        [
            write(task, path, &format!("{task}\n")),
            finish(task, &format!("wrote {path}")),
            approve(task),
        ]
    };
    let mut responses = vec![
        calls(
            "reviewer",
            Some("review"),
            json!([{"name": "submit_review", "arguments": {"verdict": "request_changes", "findings": [
                {"path": FILE, "line": 3, "severity": "warning", "message": RANGE_FINDING}
            ]}}]),
        ),
        calls(
            "reviewer",
            Some("review"),
            json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": [
                {"path": FILE, "line": 1, "severity": "info", "message": FILE_FINDING}
            ]}}]),
        ),
        when_contains(
            script::plan(json!([
                script::task("t1", "Write t1.txt", &[]),
                script::task("t2", "Write t2.txt", &["t1"]),
            ])),
            GOAL_READY,
        ),
        when_contains(
            script::plan(json!([
                script::task("s1", "Write s1.txt", &[]),
                script::task("s2", "Write s2.txt", &[]),
            ])),
            GOAL_RETRY,
        ),
        when_contains(
            script::plan(json!([
                script::task("u1", "Write u1.txt", &[]),
                script::task("u2", "Write u2.txt", &["u1"]),
            ])),
            GOAL_CANCEL,
        ),
        // Still thinking when they are cancelled; the retried s1 gets the answers below.
        slow(write("s1", "s1.txt", "slow\n")),
        slow(write("s2", "s2.txt", "slow\n")),
        slow(write("u1", "u1.txt", "slow\n")),
    ];
    for (task, path) in [("t1", "t1.txt"), ("t2", "t2.txt"), ("s1", "s1.txt")] {
        responses.extend(implemented(task, path));
    }
    responses
}

/// `:PitcrewReview` of a range of an unsaved buffer and of the whole file, `:PitcrewPlan`,
/// `:PitcrewCancel` and the plan view's `c` and `r`, in the floating plan view.
fn review_plan_cancel(nvim: &Path) {
    let scenario = TeamScenario::new(&[(FILE, ORIGINAL)], review_plan_cancel_responses(), "", "");
    run_script(
        nvim,
        &scenario,
        "review_plan_cancel.lua",
        &[
            ("NOTE", NOTE),
            ("RANGE_FINDING", RANGE_FINDING),
            ("RANGE_FINDING_LINE", "2"),
            ("FILE_FINDING", FILE_FINDING),
            ("FILE_FINDING_LINE", "0"),
            ("GOAL_READY", GOAL_READY),
            ("GOAL_RETRY", GOAL_RETRY),
            ("GOAL_CANCEL", GOAL_CANCEL),
        ],
    );

    // What the reviewer was shown: the three lines, then the whole unsaved buffer.
    let reviews = scenario.fake.requests_of("reviewer", Some("review"));
    assert_eq!(reviews.len(), 2, "two reviews");
    let range = serde_json::to_string(&reviews[0]["body"]).expect("JSON");
    assert!(
        range.contains("lines 2 to 4") && range.contains("    3 |     todo!()"),
        "the range review shows lines 2-4: {range}"
    );
    assert!(
        !range.contains(&format!("    1 | {NOTE}")),
        "the range review leaves line 1 out: {range}"
    );
    let whole = serde_json::to_string(&reviews[1]["body"]).expect("JSON");
    assert!(
        whole.contains(&format!("    1 | {NOTE}")) && !whole.contains("lines 2 to 4"),
        "the file review shows the whole unsaved buffer: {whole}"
    );
    assert_eq!(scenario.repo.read(FILE), ORIGINAL, "nothing saved");
}

/// The Python file of `unattached.lua`, committed: its string has characters of two UTF-8
/// bytes, one UTF-16 code unit.
const PY: &str = "notes.py";
const PY_ORIGINAL: &str = "greeting = \"grüße\"\n";
/// What the user appends to it, unsaved; then selects the string's characters, the last one
/// of four UTF-8 bytes and two UTF-16 code units.
const PY_UNSAVED: &str = "s = \"héé🦀\"  # typed, not saved";
/// What only the unsaved line has (not the selection).
const PY_UNSAVED_MARK: &str = "typed, not saved";
const PY_SELECTED: &str = "héé🦀";
/// What the implementer writes: the buffer it read (the unsaved line included), and more.
const PY_RESULT: &str = "greeting = \"grüße\"\ns = \"héé🦀\"  # typed, not saved\nprint(s)\n";

/// `:'<,'>PitcrewDelegate` in a buffer the client has not opened (not in `filetypes`), with an
/// unsaved line and a charwise selection ending on an emoji; then `window/showDocument` (0.7).
fn unattached(nvim: &Path) {
    let task = "delegated";
    let responses = vec![
        calls(
            "implementer",
            Some(task),
            json!([{"name": "read_file", "arguments": {"path": PY}}]),
        ),
        write(task, PY, PY_RESULT),
        finish(task, "printed s"),
        approve(task),
    ];
    let scenario = TeamScenario::new(&[(FILE, ORIGINAL), (PY, PY_ORIGINAL)], responses, "", "");
    run_script(
        nvim,
        &scenario,
        "unattached.lua",
        &[
            ("PY", PY),
            ("UNSAVED", PY_UNSAVED),
            ("SELECTED", PY_SELECTED),
            ("RESULT", PY_RESULT),
            // UTF-16 character 16 of `greeting = "grüße"` is the `e` after `ß`, at byte 18.
            ("SHOW_CHARACTER", "16"),
            ("SHOW_BYTE", "18"),
        ],
    );

    let requests = scenario.fake.requests_of("implementer", Some(task));
    // The task quotes exactly the selected characters, the emoji included.
    let first = serde_json::to_string(&requests[0]["body"]).expect("JSON");
    assert!(
        first.contains(&format!("{PY} lines 2-2")),
        "the selection's line, in the task: {first}"
    );
    assert!(
        first.contains(&format!("```python\\n{PY_SELECTED}\\n```")),
        "the task quotes the selection, its last character included: {first}"
    );
    // read_file gave the buffer's text, not the file on disk.
    let read = serde_json::to_string(&requests[1]["body"]).expect("JSON");
    assert!(
        !first.contains(PY_UNSAVED_MARK) && read.contains(PY_UNSAVED_MARK),
        "read_file returned the unattached buffer's unsaved text: {read}"
    );
    assert_eq!(scenario.repo.read(PY), PY_ORIGINAL, "nothing saved");
}

/// Neovim 0.7.2 from apt: `vim.lsp.start_client`, UTF-16 positions, and versioned edits (the
/// plugin declares `documentChanges`, which 0.7 applies but does not advertise).
#[test]
fn neovim_0_7_delegates_an_unsaved_range_shows_the_plan_applies_and_shows_findings() {
    let nvim = neovim(Path::new("/usr/bin/nvim"), "0.7");
    delegate_apply_review(&nvim, "utf-16");
}

#[test]
fn neovim_0_7_validates_the_options() {
    options(&neovim(Path::new("/usr/bin/nvim"), "0.7"));
}

#[test]
fn neovim_0_7_tells_the_teams_question_without_taking_the_keyboard_and_answers_it() {
    escalation(&neovim(Path::new("/usr/bin/nvim"), "0.7"));
}

#[test]
fn neovim_0_7_reviews_plans_cancels_and_retries_in_the_floating_plan_view() {
    review_plan_cancel(&neovim(Path::new("/usr/bin/nvim"), "0.7"));
}

#[test]
fn neovim_0_7_opens_a_buffer_it_had_not_before_delegating_its_unsaved_selection() {
    unattached(&neovim(Path::new("/usr/bin/nvim"), "0.7"));
}

/// Neovim 0.11 from PyPI (tests/editors/nvim/setup): `vim.lsp.start`, UTF-8 positions.
#[test]
fn neovim_0_11_delegates_an_unsaved_range_shows_the_plan_applies_and_shows_findings() {
    let nvim = neovim_0_11();
    delegate_apply_review(&nvim, "utf-8");
}

#[test]
fn neovim_0_11_validates_the_options() {
    options(&neovim_0_11());
}

#[test]
fn neovim_0_11_tells_the_teams_question_without_taking_the_keyboard_and_answers_it() {
    escalation(&neovim_0_11());
}

#[test]
fn neovim_0_11_reviews_plans_cancels_and_retries_in_the_floating_plan_view() {
    review_plan_cancel(&neovim_0_11());
}

#[test]
fn neovim_0_11_opens_a_buffer_it_had_not_before_delegating_its_unsaved_selection() {
    unattached(&neovim_0_11());
}
