//! Team scenarios: a throwaway repository, the fake model, and `pitcrew run` as a user runs it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{ResponseError, TestServer, TestServerBuilder};
use crate::fake::FakeModelProcess;
use crate::pitcrew_bin;
use crate::repo::TestRepo;

/// Builders for fake-model script entries, so scenarios read as the conversation they script.
pub mod script {
    use serde_json::{Value, json};

    /// An entry answering `role` (and `task`) with tool calls.
    pub fn calls(role: &str, task: Option<&str>, calls: Value) -> Value {
        let mut when = json!({"role": role});
        if let Some(task) = task {
            when["task"] = json!(task);
        }
        json!({"when": when, "tool_calls": calls})
    }

    pub fn plan(tasks: Value) -> Value {
        calls(
            "planner",
            None,
            json!([{"name": "submit_plan", "arguments": {"tasks": tasks}}]),
        )
    }

    pub fn task(id: &str, title: &str, depends_on: &[&str]) -> Value {
        json!({"id": id, "title": title, "instructions": format!("{title}. Done when the file exists."), "depends_on": depends_on})
    }

    pub fn write(task: &str, path: &str, content: &str) -> Value {
        calls(
            "implementer",
            Some(task),
            json!([{"name": "write_file", "arguments": {"path": path, "content": content}}]),
        )
    }

    /// `edit_file`: replaces `old` (which occurs once) by `new` in `path`.
    pub fn edit(task: &str, path: &str, old: &str, new: &str) -> Value {
        calls(
            "implementer",
            Some(task),
            json!([{"name": "edit_file", "arguments": {"path": path, "old": old, "new": new}}]),
        )
    }

    pub fn finish(task: &str, summary: &str) -> Value {
        calls(
            "implementer",
            Some(task),
            json!([{"name": "finish", "arguments": {"summary": summary}}]),
        )
    }

    pub fn approve(task: &str) -> Value {
        calls(
            "reviewer",
            Some(task),
            json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": []}}]),
        )
    }

    pub fn review(task: &str, verdict: &str, path: &str, line: u32, message: &str) -> Value {
        calls(
            "reviewer",
            Some(task),
            json!([{"name": "submit_review", "arguments": {"verdict": verdict, "findings": [
                {"path": path, "line": line, "severity": "error", "message": message}
            ]}}]),
        )
    }

    /// Adds `key: value` to an entry (latency, times, repeat, when.contains...).
    pub fn with(mut entry: Value, key: &str, value: Value) -> Value {
        entry[key] = value;
        entry
    }

    /// Makes an entry match only requests containing `text`.
    pub fn when_contains(mut entry: Value, text: &str) -> Value {
        entry["when"]["contains"] = json!(text);
        entry
    }
}

/// A repository with a `pitcrew.toml` pointing at a fake model, ready for `pitcrew run`.
pub struct TeamScenario {
    pub repo: TestRepo,
    pub fake: FakeModelProcess,
    pub home: tempfile::TempDir,
}

/// What a `pitcrew run` did.
pub struct RunOutcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl TeamScenario {
    /// `files` are committed; `team` and `checks` are TOML lines for those tables.
    pub fn new(files: &[(&str, &str)], responses: Vec<Value>, team: &str, checks: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), files, responses, team, checks)
    }

    /// As `new`, with the repository and the home directory under `parent`.
    pub fn new_in(
        parent: &Path,
        files: &[(&str, &str)],
        responses: Vec<Value>,
        team: &str,
        checks: &str,
    ) -> Self {
        let fake = FakeModelProcess::start(&json!({"responses": responses}));
        let repo = TestRepo::new_in(parent);
        for (path, text) in files {
            repo.write(path, text);
        }
        repo.write(
            "pitcrew.toml",
            &format!(
                "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake\"\nmax_retries = 1\nretry_base_delay_s = 0.05\n\n[team]\n{team}\n\n[checks]\n{checks}\n",
                fake.openai_base_url()
            ),
        );
        repo.commit_all("initial");
        Self {
            repo,
            fake,
            home: tempfile::tempdir_in(parent).expect("home"),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(pitcrew_bin());
        command
            .args(args)
            .current_dir(self.repo.path())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.path().join("gitconfig"))
            .env("PITCREW_LOG", "info")
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY");
        command
    }

    /// Runs `pitcrew run <goal> <args>` to the end.
    pub fn run(&self, goal: &str, args: &[&str]) -> RunOutcome {
        let mut all = vec!["run", goal];
        all.extend_from_slice(args);
        let started = Instant::now();
        let output: Output = self.command(&all).output().expect("run pitcrew");
        RunOutcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// The plans on disk, as `pitcrew status --json` reports them.
    pub fn plans(&self) -> Vec<Value> {
        let output = self
            .command(&["status", "--json"])
            .output()
            .expect("status");
        let value: Value = serde_json::from_slice(&output.stdout).expect("status JSON");
        value["plans"].as_array().cloned().unwrap_or_default()
    }

    pub fn plan(&self) -> Value {
        self.plans().pop().expect("a plan")
    }

    /// The journal, as `pitcrew log --json` prints it.
    pub fn journal(&self) -> Vec<Value> {
        let output = self.command(&["log", "--json"]).output().expect("log");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn path(&self) -> &Path {
        self.repo.path()
    }

    /// A `pitcrew lsp` rooted in the repository, as an editor opening it would start it.
    pub fn lsp(&self) -> TestServerBuilder {
        TestServerBuilder::default()
            .root(self.repo.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env(
                "GIT_CONFIG_GLOBAL",
                &self.home.path().join("gitconfig").to_string_lossy(),
            )
    }
}

impl TestServer {
    /// Waits until the team is up (the configuration loaded and the repository opened).
    pub fn wait_for_team(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.request("pitcrew/plans", Value::Null) {
                Ok(_) => return,
                Err(err) if err.message.contains("starting") && Instant::now() < deadline => {
                    self.pump_for(Duration::from_millis(50));
                }
                Err(err) => panic!("the team did not start: {}", err.message),
            }
        }
    }

    /// Runs a `pitcrew.*` command.
    pub fn command(&mut self, command: &str, arguments: Value) -> Result<Value, ResponseError> {
        self.request(
            "workspace/executeCommand",
            json!({"command": command, "arguments": [arguments]}),
        )
    }

    /// Waits for `pitcrew/planChanged` to report `plan` in `status`, and returns the plan.
    pub fn wait_for_plan(&mut self, plan: &str, status: &str) -> Value {
        self.wait_for_notification("pitcrew/planChanged", |p| {
            p["planId"] == plan && p["status"] == status
        })["plan"]
            .clone()
    }

    /// The diagnostics last published for `uri`.
    pub fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        self.notifications("textDocument/publishDiagnostics")
            .into_iter()
            .rev()
            .find(|p| p["uri"] == uri)
            .and_then(|p| p["diagnostics"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until the diagnostics published for `uri` satisfy `matches`.
    pub fn wait_for_diagnostics(
        &mut self,
        uri: &str,
        matches: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let latest = self.diagnostics(uri);
            if matches(&latest) {
                return latest;
            }
            assert!(
                Instant::now() < deadline,
                "diagnostics of {uri} never matched; last: {latest:#?}"
            );
            self.pump_for(Duration::from_millis(50));
        }
    }
}

impl RunOutcome {
    /// Everything printed, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr (tail)\n{}",
            self.stdout,
            tail(&self.stderr, 4000)
        )
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The task of a plan with id `id`.
pub fn task<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["id"] == id))
        .unwrap_or_else(|| panic!("no task {id} in {plan:#}"))
}
