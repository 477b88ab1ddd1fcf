//! pitcrew in a real Emacs with eglot (Emacs 28, eglot 1.9 from Debian), headless: a user
//! delegates an unsaved `// pitcrew:` comment through eglot's code actions, sees the reviewer's
//! finding through Flymake, applies the result and the reviewer's fix. The editor side is
//! `tests/editors/emacs/delegate.el`; this test makes the repository and the fake model, runs
//! `emacs --batch` with a deadline, and checks what the editor reports.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pitcrew_tests::pitcrew_bin;
use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{calls, finish, write};
use serde_json::json;

const FILE: &str = "src/add.c";
const ORIGINAL: &str = "int add(int a, int b)\n{\n    return 0;\n}\n";
const INSTRUCTION: &str = "implement add";
/// What the implementer writes: the user's comment kept, and a line of its own above the
/// function, so the result's lines are not the buffer's lines.
const RESULT: &str = "// pitcrew: implement add\n/* The sum of a and b. */\nint add(int a, int b)\n{\n    return a + b;\n}\n";
const FINDING: &str = "overflows on large inputs";
/// The reviewer's suggested replacement for line 5 of the result.
const SUGGESTION: &str = "    return (int)((unsigned)a + (unsigned)b);";
/// What the user types at the end of the buffer while the plan is ready, before applying.
const APPENDED: &str = "/* a note of the user's */\n";

/// Each step's deadline inside Emacs, and the whole run's here.
const STEP_TIMEOUT_S: u64 = 20;
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn script() -> Vec<serde_json::Value> {
    let task = "delegated";
    vec![
        // The implementer reads the file first: it must see the unsaved comment.
        calls(
            "implementer",
            Some(task),
            json!([{"name": "read_file", "arguments": {"path": FILE}}]),
        ),
        write(task, FILE, RESULT),
        finish(task, "implemented add"),
        calls(
            "reviewer",
            Some(task),
            json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": [
                {"path": FILE, "line": 5, "severity": "warning", "message": FINDING,
                 "suggestion": SUGGESTION}
            ]}}]),
        ),
    ]
}

/// The `emacs` on PATH; the test fails (never skips) when it is missing.
fn emacs() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("emacs"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("Emacs is not installed: run tests/editors/setup (apt: emacs-nox elpa-eglot)")
    })
}

fn test_el() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("editors/emacs/delegate.el")
}

/// What a finished (or killed) Emacs printed.
struct Run {
    status: Option<ExitStatus>,
    elapsed: Duration,
    output: String,
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `command` to the end or until `timeout`, when it is killed.
fn run_with_deadline(mut command: Command, timeout: Duration) -> Run {
    let started = Instant::now();
    let mut child: Child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start emacs");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for emacs") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            // Emacs's own children (the server) get EOF on stdin and exit with it.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = format!(
        "--- emacs stderr\n{}\n--- emacs stdout\n{}",
        stderr.join().unwrap_or_default(),
        stdout.join().unwrap_or_default()
    );
    Run {
        status,
        elapsed: started.elapsed(),
        output,
    }
}

/// Runs the scenario of `spec` in `emacs --batch`, with its own HOME, to the end; fails
/// unless it passed.
fn run_emacs(emacs: &Path, scenario: &TeamScenario, home: &Path, spec: &serde_json::Value) -> Run {
    let spec_path = scenario.home.path().join("emacs-spec.json");
    std::fs::write(&spec_path, spec.to_string()).expect("write the spec");

    let mut command = Command::new(emacs);
    command
        .arg("--batch")
        .arg("-l")
        .arg(test_el())
        .current_dir(scenario.path())
        .env("PITCREW_TEST_SPEC", &spec_path)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", scenario.home.path().join("gitconfig"))
        .env("PITCREW_LOG", "info")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY");
    let run = run_with_deadline(command, RUN_TIMEOUT);

    let Some(status) = run.status else {
        panic!(
            "emacs did not finish within {RUN_TIMEOUT:?}; killed\n{}",
            run.output
        );
    };
    assert!(
        status.success(),
        "the eglot session failed ({status}) after {:?}\n{}",
        run.elapsed,
        run.output
    );
    run
}

#[test]
fn eglot_delegates_an_unsaved_comment_shows_the_finding_in_flymake_and_applies_the_result() {
    let emacs = emacs();
    let scenario = TeamScenario::new(&[(FILE, ORIGINAL)], script(), "", "");
    let home = scenario.home.path().join("emacs-home");
    std::fs::create_dir_all(&home).expect("emacs home");
    let out = scenario.home.path().join("final-buffer.c");

    // The buffer after applying: the result (which kept the user's comment) and the note;
    // the finding follows its line into the result's layout.
    let applied = format!("{RESULT}{APPENDED}");
    let fixed = applied.replacen("    return a + b;", SUGGESTION, 1);
    let spec = json!({
        "server": pitcrew_bin(),
        "helper": Path::new(env!("CARGO_MANIFEST_DIR")).join("../editors/emacs/pitcrew.el"),
        "file": scenario.path().join(FILE),
        "instruction": INSTRUCTION,
        "finding": FINDING,
        // In the user's buffer (comment + original), the result's line 5 is `return 0;`.
        "findingLine": 4,
        "appended": APPENDED,
        "applied": applied,
        "appliedLine": 5,
        "fixed": fixed,
        "out": out,
        "timeout": STEP_TIMEOUT_S,
    });
    let run = run_emacs(&emacs, &scenario, &home, &spec);
    eprintln!("emacs + eglot: passed in {:?}", run.elapsed);

    // What the editor ended with, and what it did not touch.
    let final_text = std::fs::read_to_string(&out).expect("emacs wrote its final buffer");
    assert_eq!(final_text, fixed, "{}", run.output);
    assert_eq!(
        scenario.repo.read(FILE),
        ORIGINAL,
        "the file on disk is the user's to save"
    );
    // The implementer read the buffer as the user had it, unsaved comment included.
    let requests = scenario.fake.requests_of("implementer", Some("delegated"));
    let after_read = serde_json::to_string(&requests[1]["body"]).expect("a request body");
    assert!(
        after_read.contains("// pitcrew: implement add"),
        "read_file returned the unsaved buffer: {after_read}"
    );
}

/// Emacs 28: a question opened eglot's completing-read, which took the keys the user typed
/// (Enter answered "Send back"), and while it was open jsonrpc.el dropped `pitcrew/planChanged`
/// as invalid JSON (its process filter entered again from inside the blocking prompt). Now no
/// question opens a prompt: five, one after another while the user types, are told in the echo
/// area and answered by code actions; every notification is read and the plan buffer follows.
#[test]
fn eglot_is_told_the_teams_questions_without_a_prompt_and_answers_them_by_code_actions() {
    const QUESTIONS: usize = 5;
    let emacs = emacs();
    // The "implement" preset's task.
    let task = "implement";
    let mut responses = Vec::new();
    for _ in 0..QUESTIONS {
        responses.push(write(task, FILE, RESULT));
        responses.push(finish(task, "implemented add"));
        responses.push(calls(
            "reviewer",
            Some(task),
            json!([{"name": "submit_review", "arguments": {"verdict": "reject", "findings": [
                {"path": FILE, "line": 5, "severity": "error", "message": "wrong approach"}
            ]}}]),
        ));
    }
    let scenario = TeamScenario::new(&[(FILE, ORIGINAL)], responses, "", "");
    let home = scenario.home.path().join("emacs-home");
    std::fs::create_dir_all(&home).expect("emacs home");
    let spec = json!({
        "scenario": "questions",
        "questions": QUESTIONS,
        "server": pitcrew_bin(),
        "helper": Path::new(env!("CARGO_MANIFEST_DIR")).join("../editors/emacs/pitcrew.el"),
        "file": scenario.path().join(FILE),
        "timeout": STEP_TIMEOUT_S,
    });
    let run = run_emacs(&emacs, &scenario, &home, &spec);
    eprintln!("emacs + eglot, questions: passed in {:?}", run.elapsed);
    assert!(
        run.output
            .contains("5 questions told and answered; no prompt"),
        "{}",
        run.output
    );
    assert_eq!(
        scenario.repo.read(FILE),
        ORIGINAL,
        "nothing reached the user's file"
    );
}
