//! The roles: what each is told, and what each returns. The planner plans, the implementer
//! changes code, the reviewer verifies, the debugger diagnoses. (The integrator is not a model:
//! it is the orchestrator's merging and testing, in `team`.)

use std::path::Path;

use super::checks::CheckRun;
use super::runtime::{self, AgentContext, AgentError};
use super::tools::{FixTask, ReviewFinding, RoleTools, Terminal};
use crate::team::plan::{Finding, Task, TaskSpec, Verdict};

const PLANNER: &str = include_str!("prompts/planner.md");
const IMPLEMENTER: &str = include_str!("prompts/implementer.md");
const REVIEWER: &str = include_str!("prompts/reviewer.md");
const DEBUGGER: &str = include_str!("prompts/debugger.md");

/// Files in which repositories state their conventions for people and agents.
const CONVENTION_FILES: [&str; 6] = [
    "AGENTS.md",
    "CLAUDE.md",
    "CONVENTIONS.md",
    "CONTRIBUTING.md",
    ".github/copilot-instructions.md",
    ".cursorrules",
];
const MAX_CONVENTIONS: usize = 12 * 1024;
/// Diffs longer than this are cut in prompts; the reviewer can read the files.
const MAX_DIFF: usize = 40_000;

/// The repository's own guidance, read from its convention files (capped).
pub fn conventions(root: &Path) -> String {
    let mut out = String::new();
    for name in CONVENTION_FILES {
        let Ok(text) = std::fs::read_to_string(root.join(name)) else {
            continue;
        };
        let room = MAX_CONVENTIONS.saturating_sub(out.len());
        if room < 200 {
            break;
        }
        let text: String = text.chars().take(room).collect();
        out.push_str(&format!("\n--- {name} ---\n{}\n", text.trim()));
    }
    out
}

fn system(role_prompt: &str, conventions: &str) -> String {
    if conventions.trim().is_empty() {
        role_prompt.to_owned()
    } else {
        format!("{role_prompt}\nThe repository states its conventions; follow them:\n{conventions}")
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[... the diff goes on; read the files for the rest]",
        &text[..end]
    )
}

/// Asks the planner for tasks that reach `goal`.
pub async fn plan(
    context: &AgentContext,
    tools: &mut RoleTools,
    goal: &str,
    conventions: &str,
) -> Result<Vec<TaskSpec>, AgentError> {
    let user = format!(
        "Task id: {}\nGoal:\n{goal}\n\nRead the repository as you need, then submit the plan.",
        context.task
    );
    match runtime::run(context, system(PLANNER, conventions), user, tools).await? {
        Terminal::Plan(tasks) => Ok(tasks),
        other => Err(AgentError::Gave(format!(
            "the planner ended with {other:?}"
        ))),
    }
}

/// What a reviewer or debugger is told of the plan a task belongs to, so that it can judge the
/// work against the plan and not only against the task: the goal, every task, and the handoffs
/// of the tasks this one builds on (or, for the integrated result, of all of them).
pub fn plan_brief(
    goal: &str,
    tasks: &[(&str, &str)],
    this: &str,
    handoffs: &[Handoff<'_>],
) -> String {
    let mut brief = format!("\nThe plan this is part of.\nGoal: {goal}\nTasks:\n");
    for (id, title) in tasks {
        brief.push_str(&format!(
            "- {id}: {title}{}\n",
            if *id == this { " (this one)" } else { "" }
        ));
    }
    if !handoffs.is_empty() {
        brief.push_str("What the tasks it builds on handed off:\n");
        for handoff in handoffs {
            brief.push_str(&format!(
                "- {} ({}): {}\n",
                handoff.id, handoff.title, handoff.summary
            ));
        }
    }
    brief
}

/// A finished task that another builds on.
pub struct Handoff<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub summary: &'a str,
}

/// Runs the implementer on `task`; returns its handoff summary.
pub async fn implement(
    context: &AgentContext,
    tools: &mut RoleTools,
    task: &Task,
    goal: &str,
    handoffs: &[Handoff<'_>],
    conventions: &str,
) -> Result<String, AgentError> {
    let mut user = format!(
        "Task id: {}\nTitle: {}\n\nInstructions:\n{}\n",
        task.id, task.title, task.instructions
    );
    if !task.files.is_empty() {
        user.push_str(&format!(
            "\nFiles you will likely touch: {}\n",
            task.files.join(", ")
        ));
    }
    user.push_str(&format!("\nThe plan's overall goal, for context: {goal}\n"));
    if !handoffs.is_empty() {
        user.push_str("\nTasks finished before yours, whose work is already in your copy:\n");
        for handoff in handoffs {
            user.push_str(&format!(
                "- {} ({}): {}\n",
                handoff.id, handoff.title, handoff.summary
            ));
        }
    }
    if task.round > 0 {
        user.push_str(&format!(
            "\nThis is round {} of your task: the reviewer asked for changes. Your earlier work \
             is in your copy. Address every point:\n",
            task.round + 1
        ));
        for finding in &task.findings {
            user.push_str(&format!(
                "- {}:{}: {}{}\n",
                finding.path,
                finding.line,
                finding.message,
                finding
                    .suggestion
                    .as_ref()
                    .map(|s| format!(" (suggested: {s})"))
                    .unwrap_or_default()
            ));
        }
        if let Some(diagnosis) = &task.diagnosis {
            user.push_str(&format!(
                "\nThe debugger's diagnosis of the failing check:\n{diagnosis}\n"
            ));
        }
    }
    match runtime::run(context, system(IMPLEMENTER, conventions), user, tools).await? {
        Terminal::Finish { summary } => Ok(summary),
        other => Err(AgentError::Gave(format!(
            "the implementer ended with {other:?}"
        ))),
    }
}

/// Runs the reviewer on a task's result.
#[allow(clippy::too_many_arguments)]
pub async fn review(
    context: &AgentContext,
    tools: &mut RoleTools,
    task: &Task,
    plan: &str,
    diff: &str,
    checks: &[CheckRun],
    diagnosis: Option<&str>,
    conventions: &str,
) -> Result<(Verdict, Vec<ReviewFinding>), AgentError> {
    let mut user = format!(
        "Task id: {}\nTitle: {}\n\nInstructions the implementer had:\n{}\n\nThe implementer's handoff:\n{}\n{plan}",
        task.id,
        task.title,
        task.instructions,
        task.handoff.as_deref().unwrap_or("(none)")
    );
    user.push_str(
        "\nCheck the work against the task and against the plan: it should fit what the tasks \
         it builds on handed off, and leave the others what they need.\n",
    );
    if checks.is_empty() {
        user.push_str("\nThe repository configures no checks.\n");
    } else {
        user.push_str("\nChecks, run on this result:\n");
        for run in checks {
            user.push_str(&format!(
                "- `{}`: {}\n",
                run.result.name,
                if run.result.passed {
                    "passed"
                } else {
                    "FAILED"
                }
            ));
            if !run.result.passed {
                user.push_str(&format!(
                    "```\n{}\n```\n",
                    super::checks::tail(&run.output, 6_000)
                ));
            }
        }
    }
    if let Some(diagnosis) = diagnosis {
        user.push_str(&format!(
            "\nThe debugger's diagnosis of the failure:\n{diagnosis}\n"
        ));
    }
    user.push_str(&format!(
        "\nThe diff:\n```diff\n{}\n```\n",
        cut(diff, MAX_DIFF)
    ));
    match runtime::run(context, system(REVIEWER, conventions), user, tools).await? {
        Terminal::Review { verdict, findings } => Ok((verdict, findings)),
        other => Err(AgentError::Gave(format!(
            "the reviewer ended with {other:?}"
        ))),
    }
}

/// Runs the reviewer on the user's own code (`path`, lines `start..=end`, or all of it).
#[allow(clippy::too_many_arguments)]
pub async fn review_code(
    context: &AgentContext,
    tools: &mut RoleTools,
    task: &Task,
    path: &str,
    start: Option<u32>,
    end: Option<u32>,
    checks: &[CheckRun],
    conventions: &str,
) -> Result<(Verdict, Vec<ReviewFinding>), AgentError> {
    let text = tools.workspace.read_file(path).unwrap_or_default();
    let first = start.unwrap_or(1).max(1) as usize;
    let last = end.map_or(usize::MAX, |e| e as usize);
    let numbered: String = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(n, _)| *n >= first && *n <= last)
        .map(|(n, line)| format!("{n:>5} | {line}\n"))
        .collect();
    let mut user = format!(
        "Task id: {}\nReview the code of {path}{}. Nothing has changed: judge the code as it is, \
         against the repository's conventions, and report what is wrong or risky. Use \
         \"approve\" when it is fine as it is, \"request_changes\" when it should change.\n\n{}\n",
        task.id,
        match (start, end) {
            (Some(s), Some(e)) => format!(", lines {s} to {e}"),
            _ => String::new(),
        },
        task.instructions
    );
    user.push_str(&format!("\n```\n{}```\n", cut(&numbered, MAX_DIFF)));
    for run in checks.iter().filter(|r| !r.result.passed) {
        user.push_str(&format!(
            "\nThe check `{}` fails on this code:\n```\n{}\n```\n",
            run.result.name,
            super::checks::tail(&run.output, 4_000)
        ));
    }
    match runtime::run(context, system(REVIEWER, conventions), user, tools).await? {
        Terminal::Review { verdict, findings } => Ok((verdict, findings)),
        other => Err(AgentError::Gave(format!(
            "the reviewer ended with {other:?}"
        ))),
    }
}

/// Runs the debugger on a failing check; returns the cause and the fix tasks.
pub async fn diagnose(
    context: &AgentContext,
    tools: &mut RoleTools,
    subject: &str,
    plan: &str,
    failing: &CheckRun,
    diff: &str,
    conventions: &str,
) -> Result<(String, Vec<FixTask>), AgentError> {
    let user = format!(
        "Task id: {}\nWhat was being done: {subject}\n{plan}\nThe check `{}` failed (exit code {}):\n```\n{}\n```\n\nThe change:\n```diff\n{}\n```\n",
        context.task,
        failing.result.name,
        failing
            .result
            .exit_code
            .map_or_else(|| "none".to_owned(), |c| c.to_string()),
        super::checks::tail(&failing.output, 12_000),
        cut(diff, MAX_DIFF),
    );
    match runtime::run(context, system(DEBUGGER, conventions), user, tools).await? {
        Terminal::Diagnosis { cause, fix_tasks } => Ok((cause, fix_tasks)),
        other => Err(AgentError::Gave(format!(
            "the debugger ended with {other:?}"
        ))),
    }
}

/// The debugger's diagnosis as instructions for an implementer.
pub fn diagnosis_text(cause: &str, fix_tasks: &[FixTask]) -> String {
    let mut text = format!("Cause: {cause}\n");
    for (i, fix) in fix_tasks.iter().enumerate() {
        text.push_str(&format!(
            "Fix {}: {}\n{}\n",
            i + 1,
            fix.title,
            fix.instructions
        ));
        if !fix.files.is_empty() {
            text.push_str(&format!("Files: {}\n", fix.files.join(", ")));
        }
    }
    text
}

/// Review findings as the plan keeps them, with ids unique in the plan.
pub fn findings_of(
    task: &str,
    round: u32,
    review: &[ReviewFinding],
    serial: &mut impl FnMut() -> u64,
) -> Vec<Finding> {
    review
        .iter()
        .map(|f| Finding {
            id: format!("{task}.r{}.{}", round + 1, serial()),
            task: task.to_owned(),
            path: f.path.trim_start_matches("./").to_owned(),
            line: f.line,
            end_line: f.end_line,
            severity: f.severity,
            message: f.message.clone(),
            suggestion: f.suggestion.clone(),
            source: crate::team::plan::FindingSource::Review,
        })
        .collect()
}
