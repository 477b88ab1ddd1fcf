//! `pitcrew demo`: the whole team on a sample project, against a scripted model, with no
//! account and no network.
//!
//! It writes `tally` (a small Rust `wc`, shipped in the binary from `server/demo/`) into a new
//! git repository, starts the fake model server on loopback with a bundled scenario, points the
//! repository's `pitcrew.toml` at it, and runs `pitcrew run` there: the planner splits the goal
//! into three tasks, two implementers work in parallel, the reviewer sends one result back with
//! a finding, the integrator merges and runs the tests. The model answers are scripted; the
//! rest (HTTP, tools, worktrees, checks, merges) is the real thing.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::output;
use super::run::{RunOptions, run_in, setup_with};
use crate::config::ConfigPaths;
use crate::model::fake::{FakeModel, Script};

/// What the demo asks of the team.
pub const GOAL: &str = "Implement line and character counting, with tests, and make the CLI print lines, words and characters like wc";

/// The sample project, committed as the repository's first commit.
const SAMPLE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../demo/sample/Cargo.toml.sample"),
    ),
    (
        "Cargo.lock",
        include_str!("../../demo/sample/Cargo.lock.sample"),
    ),
    (
        ".gitignore",
        include_str!("../../demo/sample/gitignore.sample"),
    ),
    ("README.md", include_str!("../../demo/sample/README.md")),
    ("src/lib.rs", include_str!("../../demo/sample/src/lib.rs")),
    ("src/main.rs", include_str!("../../demo/sample/src/main.rs")),
    (
        "src/words.rs",
        include_str!("../../demo/sample/src/words.rs"),
    ),
    (
        "src/lines.rs",
        include_str!("../../demo/sample/src/lines.rs"),
    ),
    (
        "src/chars.rs",
        include_str!("../../demo/sample/src/chars.rs"),
    ),
];

/// What the scripted implementers write.
const LINES: &str = include_str!("../../demo/answers/lines.rs");
const CHARS_BYTES: &str = include_str!("../../demo/answers/chars_bytes.rs");
const CHARS: &str = include_str!("../../demo/answers/chars.rs");
const MAIN: &str = include_str!("../../demo/answers/main.rs");
const README: &str = include_str!("../../demo/answers/README.md");

pub struct DemoOptions {
    /// Where to create the repository (must not exist, or be empty); a new temporary directory
    /// when absent. It is kept, so that it can be looked at afterwards.
    pub dir: Option<PathBuf>,
    /// Milliseconds each scripted model answer takes, so that the team's work can be watched.
    pub latency_ms: u64,
}

pub async fn run(options: DemoOptions) -> i32 {
    // The reviewer and the integrator run the sample's tests with cargo.
    let cargo = std::process::Command::new("cargo")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !cargo.is_ok_and(|status| status.success()) {
        output::error(
            "pitcrew demo: the sample project is a Rust crate whose tests the reviewer runs with \
             `cargo test`, and cargo is not on PATH; install Rust (https://rustup.rs) and run the \
             demo again.",
        );
        return 2;
    }
    let dir = match prepare_dir(options.dir) {
        Ok(dir) => dir,
        Err(err) => {
            output::error(&format!("pitcrew demo: {err}"));
            return 2;
        }
    };
    if let Err(err) = write_sample(&dir) {
        output::error(&format!(
            "pitcrew demo: cannot create the sample repository in {}: {err}",
            dir.display()
        ));
        return 1;
    }
    let script = match Script::from_json(&scenario(options.latency_ms).to_string()) {
        Ok(script) => script,
        Err(err) => {
            output::error(&format!(
                "pitcrew demo: the bundled scenario is invalid: {err}"
            ));
            return 1;
        }
    };
    let fake = match FakeModel::start(script).await {
        Ok(fake) => fake,
        Err(err) => {
            output::error(&format!(
                "pitcrew demo: cannot start the fake model on loopback: {err}"
            ));
            return 1;
        }
    };
    if let Err(err) = write_config(&dir, &fake.url()) {
        output::error(&format!("pitcrew demo: cannot write pitcrew.toml: {err}"));
        return 1;
    }

    output::line(&format!(
        "pitcrew demo: the whole team on a sample project.\n\
         \n\
         The model answers are scripted. A fake model server on {url} plays the\n\
         planner, the implementers and the reviewer over the same HTTP API a real provider\n\
         speaks; everything else is real: the agents' tools, git worktrees and branches,\n\
         `cargo test`, merges. No account, key or network is used.\n\
         \n\
         Sample project: tally, a small Rust `wc`, in {dir}\n\
         Goal: {GOAL}\n",
        url = fake.url(),
        dir = dir.display(),
    ));

    // Only the demo's own pitcrew.toml: the user's configuration might point a role at a
    // real model, and the demo must never call one.
    let setup = match setup_with(&dir, |workdir| ConfigPaths {
        user_file: None,
        workspace_file: Some(workdir.join(crate::config::WORKSPACE_FILE)),
    }) {
        Ok(setup) => setup,
        Err(err) => {
            output::error(&format!("pitcrew demo: {err}"));
            return 1;
        }
    };
    let code = run_in(
        setup,
        RunOptions {
            goal: GOAL.to_owned(),
            yes: false,
            json: false,
            answer: Some("abort".into()),
            plan_only: false,
        },
    )
    .await;
    let calls = fake.requests().len();
    drop(fake);

    let dir_text = dir.display();
    if code == 0 {
        output::line(&format!(
            "\nThat was {calls} scripted model calls. Everything the team did is in the repository:\n\
             \n\
             \x20 cd {dir_text}\n\
             \x20 pitcrew status                          # the plan and its tasks\n\
             \x20 pitcrew log                             # who did what, when, why, at what cost\n\
             \x20 git log --oneline --graph --all         # a branch per task, merged into the integration branch\n\
             \n\
             To use a real model, configure one in your repository's pitcrew.toml (OpenAI,\n\
             Anthropic, Ollama, vLLM, llama.cpp; the key comes from an environment variable):\n\
             \n\
             \x20 [models.default]\n\
             \x20 provider = \"anthropic\"\n\
             \x20 model = \"claude-sonnet-4-5\"\n\
             \x20 api_key_env = \"ANTHROPIC_API_KEY\"\n\
             \n\
             check it with `pitcrew doctor`, then `pitcrew run \"<goal>\"` there, or use pitcrew from\n\
             your editor (see the README)."
        ));
    } else {
        output::error(&format!(
            "\npitcrew demo: the team did not finish (exit {code}); the repository is kept in {dir_text} \
             (`pitcrew log` there shows what happened)."
        ));
    }
    code
}

fn prepare_dir(dir: Option<PathBuf>) -> Result<PathBuf, String> {
    match dir {
        Some(dir) => {
            if dir.exists() {
                let mut entries = std::fs::read_dir(&dir)
                    .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
                if entries.next().is_some() {
                    return Err(format!(
                        "{} is not empty; give a new or empty directory",
                        dir.display()
                    ));
                }
            } else {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))
        }
        None => tempfile::Builder::new()
            .prefix("pitcrew-demo-")
            .tempdir()
            .map(|dir| dir.keep())
            .map_err(|e| format!("cannot create a temporary directory: {e}")),
    }
}

/// The sample project in a new repository, with one commit on `main`.
fn write_sample(dir: &Path) -> Result<(), String> {
    for (path, text) in SAMPLE {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&full, text).map_err(|e| format!("{path}: {e}"))?;
    }
    let repo =
        git2::Repository::init_opts(dir, git2::RepositoryInitOptions::new().initial_head("main"))
            .map_err(|e| e.message().to_owned())?;
    let mut index = repo.index().map_err(|e| e.message().to_owned())?;
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .and_then(|()| index.write())
        .map_err(|e| e.message().to_owned())?;
    let tree = index
        .write_tree()
        .and_then(|id| repo.find_tree(id))
        .map_err(|e| e.message().to_owned())?;
    let who = git2::Signature::now("pitcrew demo", "demo@pitcrew.invalid")
        .map_err(|e| e.message().to_owned())?;
    repo.commit(Some("HEAD"), &who, &who, "tally: count words", &tree, &[])
        .map_err(|e| e.message().to_owned())?;
    Ok(())
}

/// `pitcrew.toml`, pointing every role at the fake model; kept out of git (it names a port
/// that lives only as long as the demo).
fn write_config(dir: &Path, url: &str) -> std::io::Result<()> {
    std::fs::write(
        dir.join(crate::config::WORKSPACE_FILE),
        format!(
            "# Written by `pitcrew demo`: every role talks to a scripted fake model on loopback.\n\
             # Point [models.default] at a real provider to use a real model (see the README).\n\
             [models.default]\n\
             provider = \"openai\"\n\
             base_url = \"{url}/v1\"\n\
             model = \"scripted-demo\"\n\
             \n\
             [team]\n\
             implementers = 2\n\
             review_rounds = 2\n\
             \n\
             [checks]\n\
             test = \"cargo test --quiet --offline\"\n"
        ),
    )?;
    let exclude = dir.join(".git").join("info").join("exclude");
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    text.push_str("\n# pitcrew demo\n/pitcrew.toml\n");
    std::fs::write(exclude, text)
}

/// The scripted model answers: one entry per model call, played in order per role and task.
fn scenario(latency_ms: u64) -> Value {
    let calls = |role: &str, task: Option<&str>, text: &str, calls: Value| {
        let mut when = json!({"role": role});
        if let Some(task) = task {
            when["task"] = json!(task);
        }
        json!({"when": when, "text": text, "tool_calls": calls})
    };
    let read = |path: &str| json!({"name": "read_file", "arguments": {"path": path}});
    let write = |path: &str, content: &str| json!({"name": "write_file", "arguments": {"path": path, "content": content}});
    let finish = |summary: &str| json!([{"name": "finish", "arguments": {"summary": summary}}]);
    let review = |verdict: &str, findings: Value| json!([{"name": "submit_review", "arguments": {"verdict": verdict, "findings": findings}}]);
    let approve =
        |task: &str, text: &str| calls("reviewer", Some(task), text, review("approve", json!([])));

    json!({
        "defaults": {
            "latency_ms": latency_ms,
            "chunk_size": 32,
            "chunk_delay_ms": latency_ms / 20,
            "usage": {"input_tokens": 1850, "output_tokens": 240}
        },
        "responses": [
            calls("planner", None, "Two independent counters, then the CLI that prints them.", json!([
                {"name": "list_files", "arguments": {}},
            ])),
            calls("planner", None, "", json!([{"name": "submit_plan", "arguments": {"tasks": [
                {"id": "lines", "title": "Count lines",
                 "instructions": "Implement `lines::count` in src/lines.rs: newline characters, as `wc -l` counts them. Add unit tests, including CRLF text.",
                 "depends_on": [], "files": ["src/lines.rs"]},
                {"id": "chars", "title": "Count characters",
                 "instructions": "Implement `chars::count` in src/chars.rs: Unicode scalar values, not bytes. Add unit tests.",
                 "depends_on": [], "files": ["src/chars.rs"]},
                {"id": "cli", "title": "Print lines, words and characters",
                 "instructions": "Make src/main.rs print the line, word and character counts of standard input in `wc`'s order and layout, with a test, and update README.md.",
                 "depends_on": ["lines", "chars"], "files": ["src/main.rs", "README.md"]}
            ]}}])),

            calls("implementer", Some("lines"), "Reading the placeholder first.", json!([read("src/lines.rs")])),
            calls("implementer", Some("lines"), "Counting newline bytes, as wc does.", json!([write("src/lines.rs", LINES)])),
            calls("implementer", Some("lines"), "", finish("lines::count counts newlines like `wc -l`, with tests (CRLF included).")),
            calls("reviewer", Some("lines"), "The tests pass and cover CRLF.", review("approve", json!([]))),

            calls("implementer", Some("chars"), "Reading the placeholder first.", json!([read("src/chars.rs")])),
            calls("implementer", Some("chars"), "A string's length.", json!([write("src/chars.rs", CHARS_BYTES)])),
            calls("implementer", Some("chars"), "", finish("chars::count returns the text's length, with a test.")),
            calls("reviewer", Some("chars"), "The tests pass, but they only use ASCII.", review("request_changes", json!([
                {"path": "src/chars.rs", "line": 5, "severity": "error",
                 "message": "`str::len` counts bytes, not characters: \"héllo\" is 5 characters and 6 bytes. Count `chars()`, and test non-ASCII text.",
                 "suggestion": "    text.chars().count()"}
            ]))),
            calls("implementer", Some("chars"), "Counting chars, and testing non-ASCII text.", json!([write("src/chars.rs", CHARS)])),
            calls("implementer", Some("chars"), "", finish("chars::count counts Unicode scalar values; tests include accented letters and an emoji.")),
            approve("chars", "Fixed: counts characters, and the new test would have caught it."),

            calls("implementer", Some("cli"), "Reading the CLI.", json!([read("src/main.rs")])),
            calls("implementer", Some("cli"), "Printing the three counts like wc.", json!([write("src/main.rs", MAIN)])),
            calls("implementer", Some("cli"), "And the README.", json!([write("README.md", README)])),
            calls("implementer", Some("cli"), "", finish("The CLI prints lines, words and characters in wc's layout; README updated.")),
            approve("cli", "Matches wc's layout; the test pins it."),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_scenario_is_a_valid_script() {
        Script::from_json(&scenario(0).to_string()).expect("the demo's script parses");
    }
}
