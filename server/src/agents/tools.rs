//! The tools each role is offered, their schemas, and what calling them does.
//!
//! The contract is in DESIGN.md. Each role is offered only its own tools; a call to any other
//! tool is refused and reported back to the model. Each role ends its work with one terminal
//! tool (`submit_plan`, `finish`, `submit_review`, `submit_diagnosis`), whose arguments are
//! checked before they are accepted.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::checks::{self, CheckRun};
use super::sandbox::Sandbox;
use super::workspace::{ToolError, Workspace};
use crate::config::{CheckConfig, Role};
use crate::model::{ToolCall, ToolSpec};
use crate::team::plan::{Severity, TaskSpec, Verdict, validate};

/// Tool results longer than this are cut, to keep the conversation within reason.
const MAX_RESULT_CHARS: usize = 60_000;

/// What a role's work ends with.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    Plan(Vec<TaskSpec>),
    Finish {
        summary: String,
    },
    Review {
        verdict: Verdict,
        findings: Vec<ReviewFinding>,
    },
    Diagnosis {
        cause: String,
        fix_tasks: Vec<FixTask>,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewFinding {
    pub path: String,
    pub line: u32,
    #[serde(default)]
    pub end_line: Option<u32>,
    pub severity: Severity,
    pub message: String,
    #[serde(default)]
    pub suggestion: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixTask {
    pub title: String,
    pub instructions: String,
    #[serde(default)]
    pub files: Vec<String>,
}

/// What a tool call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A result for the model.
    Result(String),
    /// An error for the model; `refused` when it was not allowed at all.
    Error { message: String, refused: bool },
    /// The role's work is done.
    Done(Terminal),
    /// The role cannot go on (a second invalid plan, say).
    Abort(String),
}

/// The tools of one role, bound to a worktree.
pub struct RoleTools {
    pub role: Role,
    pub workspace: Workspace,
    pub checks: BTreeMap<String, CheckConfig>,
    pub check_output_bytes: usize,
    /// Where checks run, and what is redacted from every tool's output.
    pub sandbox: Sandbox,
    pub cancel: CancellationToken,
    pub max_tasks: u32,
    /// Terminal answers (a plan, a review, a diagnosis, a summary) refused as unusable so far:
    /// the second ends the attempt instead of asking again until the turns run out.
    unusable_answers: u32,
    /// Whether this turn already counted an unusable answer: the model sees the refusal only
    /// after the turn, so two in one turn are one mistake.
    counted_this_turn: bool,
    /// Checks the model ran, most recent last.
    pub check_runs: Vec<CheckRun>,
    /// The files this agent wrote or edited, for a summary that must not forget them.
    pub changed: std::collections::BTreeSet<String>,
}

impl RoleTools {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        role: Role,
        workspace: Workspace,
        checks: BTreeMap<String, CheckConfig>,
        check_output_bytes: usize,
        sandbox: Sandbox,
        cancel: CancellationToken,
        max_tasks: u32,
    ) -> Self {
        Self {
            role,
            workspace,
            checks,
            check_output_bytes,
            sandbox,
            cancel,
            max_tasks,
            unusable_answers: 0,
            counted_this_turn: false,
            check_runs: Vec::new(),
            changed: Default::default(),
        }
    }

    /// The names of the tools this role may call.
    pub fn names(&self) -> Vec<&'static str> {
        let read = ["read_file", "list_files", "search"];
        let extra: &[&'static str] = match self.role {
            Role::Planner => &["submit_plan"],
            Role::Implementer => &["write_file", "edit_file", "run_check", "finish"],
            Role::Reviewer => &["run_check", "submit_review"],
            Role::Debugger => &["run_check", "submit_diagnosis"],
            Role::Integrator => &[],
        };
        read.iter().chain(extra).copied().collect()
    }

    /// The terminal tool this role ends with.
    pub fn terminal_name(&self) -> &'static str {
        match self.role {
            Role::Planner => "submit_plan",
            Role::Implementer | Role::Integrator => "finish",
            Role::Reviewer => "submit_review",
            Role::Debugger => "submit_diagnosis",
        }
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        let checks: Vec<&String> = self.checks.keys().collect();
        self.names()
            .into_iter()
            .map(|name| spec(name, &checks))
            .collect()
    }

    /// A call that only reads (`read_file`, `list_files`, `search`), made ready to run on its
    /// own, off the async workers and alongside the turn's other reads; `None` for any other.
    pub fn read_only(&self, call: &ToolCall) -> Option<ReadOnlyCall> {
        let reads = ["read_file", "list_files", "search"];
        (reads.contains(&call.name.as_str())
            && self.names().contains(&call.name.as_str())
            && call.invalid_arguments.is_none())
        .then(|| ReadOnlyCall {
            workspace: self.workspace.clone(),
            sandbox: self.sandbox.clone(),
            call: call.clone(),
        })
    }

    /// Runs one call.
    pub async fn call(&mut self, call: &ToolCall) -> Outcome {
        if let Some(read) = self.read_only(call) {
            return read.run();
        }
        let names = self.names();
        if !names.contains(&call.name.as_str()) {
            return Outcome::Error {
                message: format!(
                    "refused: `{}` is not one of the {}'s tools ({})",
                    call.name,
                    self.role,
                    names.join(", ")
                ),
                refused: true,
            };
        }
        if let Some(reason) = &call.invalid_arguments {
            return Outcome::Error {
                message: format!("{reason}; call `{}` again with valid JSON", call.name),
                refused: false,
            };
        }
        let args = &call.arguments;
        let text = |key: &str| args.get(key).and_then(Value::as_str);
        let required = |key: &str| {
            text(key).ok_or_else(|| ToolError::Failed(format!("`{key}` (a string) is required")))
        };
        let result = match call.name.as_str() {
            "write_file" => required("path").and_then(|path| {
                let content = args
                    .get("content")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ToolError::Failed("`content` (a string) is required".into()))?;
                let written = self.workspace.write_file(path, content)?;
                self.changed.insert(path.trim().to_owned());
                Ok(written)
            }),
            "edit_file" => required("path").and_then(|path| {
                let old = required("old")?;
                let new = args.get("new").and_then(Value::as_str).unwrap_or("");
                let edited = self.workspace.edit_file(path, old, new)?;
                self.changed.insert(path.trim().to_owned());
                Ok(edited)
            }),
            "run_check" => match required("name") {
                Ok(name) => self.run_check(name).await,
                Err(error) => Err(error),
            },
            terminal => return self.terminal(terminal, args),
        };
        outcome(&self.sandbox, result)
    }

    async fn run_check(&mut self, name: &str) -> Result<String, ToolError> {
        let Some(check) = self.checks.get(name).cloned() else {
            let known: Vec<&String> = self.checks.keys().collect();
            return Err(ToolError::Refused(format!(
                "`{name}` is not a configured check; agents may run only {}",
                if known.is_empty() {
                    "configured checks, and there are none".to_owned()
                } else {
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        };
        let run = checks::run(
            name,
            &check,
            self.workspace.root(),
            self.check_output_bytes,
            &self.sandbox,
            &self.cancel,
        )
        .await;
        let summary = format!(
            "check `{name}` {} (exit code {}, {} ms)\n{}",
            if run.result.passed {
                "passed"
            } else {
                "FAILED"
            },
            run.result
                .exit_code
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
            run.result.duration_ms,
            run.output
        );
        self.check_runs.push(run);
        Ok(summary)
    }

    /// A new turn of the model's calls begins.
    pub fn begin_turn(&mut self) {
        self.counted_this_turn = false;
    }

    /// A terminal tool's call: done, or refused with what to fix. An answer that validates
    /// as JSON but cannot be acted on (an empty list of fix tasks, an invalid plan) is refused
    /// once; the second such answer aborts the attempt with the reason, so the orchestrator
    /// escalates instead of the model being asked again until its turns run out.
    fn terminal(&mut self, name: &str, args: &Value) -> Outcome {
        match self.terminal_once(name, args) {
            Outcome::Error {
                message,
                refused: false,
            } => {
                if !self.counted_this_turn {
                    self.unusable_answers += 1;
                    self.counted_this_turn = true;
                }
                if self.unusable_answers >= 2 {
                    let what = match name {
                        "submit_plan" => "an invalid plan".to_owned(),
                        _ => format!("an unusable `{name}`"),
                    };
                    let reason = message
                        .rsplit_once("; fix it and call")
                        .map_or(message.as_str(), |(reason, _)| reason);
                    Outcome::Abort(format!(
                        "the {} submitted {what} twice; last: {reason}",
                        self.role.as_str()
                    ))
                } else {
                    Outcome::Error {
                        message,
                        refused: false,
                    }
                }
            }
            other => other,
        }
    }

    fn terminal_once(&mut self, name: &str, args: &Value) -> Outcome {
        let invalid = |message: String| Outcome::Error {
            message: format!("{message}; fix it and call `{name}` again"),
            refused: false,
        };
        match name {
            "finish" => {
                let summary = args
                    .get("summary")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                if summary.is_empty() {
                    return invalid(
                        "`summary` is required: what changed, why, and what is left open".into(),
                    );
                }
                Outcome::Done(Terminal::Finish { summary })
            }
            "submit_plan" => {
                let parsed = args
                    .get("tasks")
                    .cloned()
                    .map(serde_json::from_value::<Vec<TaskSpec>>);
                let outcome = match parsed {
                    Some(Ok(tasks)) => validate(&tasks, self.max_tasks).map(|()| tasks),
                    Some(Err(err)) => Err(format!("`tasks` does not have the right shape: {err}")),
                    None => Err("`tasks` is required".into()),
                };
                match outcome {
                    Ok(tasks) => Outcome::Done(Terminal::Plan(tasks)),
                    Err(reason) => invalid(format!("the plan is not valid: {reason}")),
                }
            }
            "submit_review" => {
                let verdict = match args.get("verdict").and_then(Value::as_str) {
                    Some("approve") => Verdict::Approve,
                    Some("request_changes") => Verdict::RequestChanges,
                    Some("reject") => Verdict::Reject,
                    other => {
                        return invalid(format!(
                            "`verdict` must be \"approve\", \"request_changes\" or \"reject\", not {other:?}"
                        ));
                    }
                };
                let findings: Vec<ReviewFinding> = match args.get("findings").cloned() {
                    None | Some(Value::Null) => Vec::new(),
                    Some(findings) => match serde_json::from_value(findings) {
                        Ok(findings) => findings,
                        Err(err) => return invalid(format!("`findings` are malformed: {err}")),
                    },
                };
                for finding in &findings {
                    if finding.line == 0
                        || finding.path.trim().is_empty()
                        || finding.message.trim().is_empty()
                    {
                        return invalid(
                            "each finding needs a path, a line (from 1) and a message".into(),
                        );
                    }
                }
                if verdict != Verdict::Approve && findings.is_empty() {
                    return invalid("say what must change: give at least one finding".into());
                }
                Outcome::Done(Terminal::Review { verdict, findings })
            }
            "submit_diagnosis" => {
                let cause = args
                    .get("cause")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let fix_tasks: Vec<FixTask> = match args.get("fix_tasks").cloned() {
                    Some(tasks) => match serde_json::from_value(tasks) {
                        Ok(tasks) => tasks,
                        Err(err) => return invalid(format!("`fix_tasks` are malformed: {err}")),
                    },
                    None => Vec::new(),
                };
                if cause.is_empty() || fix_tasks.is_empty() {
                    return invalid("give the `cause` and at least one fix task".into());
                }
                Outcome::Done(Terminal::Diagnosis { cause, fix_tasks })
            }
            other => Outcome::Error {
                message: format!("refused: no tool `{other}`"),
                refused: true,
            },
        }
    }
}

/// What a tool's result becomes for the model. No secret of pitcrew's environment reaches the
/// model or the transcript, whichever file or check it came from.
fn outcome(sandbox: &Sandbox, result: Result<String, ToolError>) -> Outcome {
    let redactor = sandbox.redactor();
    match result {
        Ok(text) => Outcome::Result(cap(redactor.redact(&text).into_owned())),
        Err(error) => Outcome::Error {
            refused: error.is_refusal(),
            message: redactor.redact(&error.to_string()).into_owned(),
        },
    }
}

/// A read-only call, detached from its `RoleTools` so that several run at once.
#[derive(Debug)]
pub struct ReadOnlyCall {
    workspace: Workspace,
    sandbox: Sandbox,
    call: ToolCall,
}

impl ReadOnlyCall {
    /// Runs it (blocking file reads: run it off the async workers).
    pub fn run(self) -> Outcome {
        let args = &self.call.arguments;
        let text = |key: &str| args.get(key).and_then(Value::as_str);
        let required = |key: &str| {
            text(key).ok_or_else(|| ToolError::Failed(format!("`{key}` (a string) is required")))
        };
        let result = match self.call.name.as_str() {
            "read_file" => required("path").and_then(|p| {
                self.workspace.read_lines(
                    p,
                    line_arg(args, "start_line"),
                    line_arg(args, "end_line"),
                )
            }),
            "list_files" => self.workspace.list_files(text("path")),
            _ => required("pattern").and_then(|p| self.workspace.search(p, text("path"))),
        };
        outcome(&self.sandbox, result)
    }
}

/// A one-based line number argument, if given and sensible.
fn line_arg(args: &Value, key: &str) -> Option<usize> {
    args.get(key)
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n >= 1)
}

fn cap(text: String) -> String {
    if text.chars().count() <= MAX_RESULT_CHARS {
        return text;
    }
    let kept: String = text.chars().take(MAX_RESULT_CHARS).collect();
    format!("{kept}\n[... cut at {MAX_RESULT_CHARS} characters]")
}

/// The schema of one tool.
fn spec(name: &str, checks: &[&String]) -> ToolSpec {
    let string = |description: &str| json!({"type": "string", "description": description});
    let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required});
    let (description, schema) = match name {
        "read_file" => (
            "Read a text file of the repository. A long file comes a piece at a time, headed by \
             the lines it holds; give start_line (and end_line) to read other lines.",
            object(
                json!({
                    "path": string("Path relative to the repository root"),
                    "start_line": {"type": "integer", "minimum": 1, "description": "First line to read (1 is the first)"},
                    "end_line": {"type": "integer", "minimum": 1, "description": "Last line to read"},
                }),
                &["path"],
            ),
        ),
        "list_files" => (
            "List the files under a directory (the repository root by default), one per line.",
            object(
                json!({"path": string("Directory relative to the repository root")}),
                &[],
            ),
        ),
        "search" => (
            "Search the repository's files for lines matching a regular expression.",
            object(
                json!({"pattern": string("A regular expression (Rust syntax)"), "path": string("Limit the search to this directory")}),
                &["pattern"],
            ),
        ),
        "write_file" => (
            "Create or overwrite a file with the given content.",
            object(
                json!({"path": string("Path relative to the repository root"), "content": string("The whole new content")}),
                &["path", "content"],
            ),
        ),
        "edit_file" => (
            "Replace text in a file. `old` must occur exactly once; include enough context.",
            object(
                json!({"path": string("Path relative to the repository root"), "old": string("The exact text to replace"), "new": string("The replacement")}),
                &["path", "old", "new"],
            ),
        ),
        "run_check" => (
            "Run one of the repository's configured checks (tests, linters) and see its output.",
            object(
                json!({"name": {"type": "string", "enum": checks, "description": "The check's name"}}),
                &["name"],
            ),
        ),
        "finish" => (
            "Finish the task. The summary is your handoff to the reviewer and to later tasks.",
            object(
                json!({"summary": string("What changed, why, and what is left open")}),
                &["summary"],
            ),
        ),
        "submit_plan" => (
            "Submit the plan: tasks that together reach the goal, with their dependencies.",
            object(
                json!({"tasks": {"type": "array", "items": object(json!({
                    "id": string("Short unique id: letters, digits, - or _"),
                    "title": string("One line"),
                    "instructions": string("What to do, precisely, with acceptance criteria"),
                    "depends_on": {"type": "array", "items": {"type": "string"}, "description": "Ids of tasks that must be done first"},
                    "files": {"type": "array", "items": {"type": "string"}, "description": "Files the task will likely touch"},
                }), &["id", "title", "instructions"])}}),
                &["tasks"],
            ),
        ),
        "submit_review" => (
            "Submit your review: a verdict and findings at precise places.",
            object(
                json!({
                    "verdict": {"type": "string", "enum": ["approve", "request_changes", "reject"]},
                    "findings": {"type": "array", "items": object(json!({
                        "path": string("File relative to the repository root"),
                        "line": {"type": "integer", "minimum": 1},
                        "end_line": {"type": "integer", "minimum": 1},
                        "severity": {"type": "string", "enum": ["error", "warning", "info"]},
                        "message": string("What is wrong and why"),
                        "suggestion": string("Replacement text for the lines, if you have one"),
                    }), &["path", "line", "severity", "message"])},
                }),
                &["verdict", "findings"],
            ),
        ),
        "submit_diagnosis" => (
            "Submit the cause of the failure and precise fix tasks for an implementer.",
            object(
                json!({
                    "cause": string("The likely cause, with file and lines"),
                    "fix_tasks": {"type": "array", "items": object(json!({
                        "title": string("One line"),
                        "instructions": string("File, lines, what to change and why"),
                        "files": {"type": "array", "items": {"type": "string"}},
                    }), &["title", "instructions"])},
                }),
                &["cause", "fix_tasks"],
            ),
        ),
        _ => ("", json!({"type": "object"})),
    };
    ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: schema,
    }
}
