//! Plans and tasks: the state the orchestrator keeps, persists and publishes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::Role;
use crate::model::Usage;

/// Where a task is. The names are part of the LSP contract (`pitcrew/plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its dependencies (or for a free implementer).
    Pending,
    /// An implementer is working on it.
    Running,
    /// The reviewer is verifying its result.
    Reviewing,
    /// The reviewer asked for changes; the implementer is about to resume.
    ChangesRequested,
    /// Reviewed and approved; waiting to be integrated.
    Approved,
    /// Being merged into the plan's integration branch (or waiting for its resolve task).
    Integrating,
    /// Merged into the integration branch.
    Ready,
    /// Applied to the user's files.
    Applied,
    Failed,
    Cancelled,
    /// Stopped, with a question for the user.
    Escalated,
}

impl TaskStatus {
    /// No more work will happen on the task without the user.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Ready
                | TaskStatus::Applied
                | TaskStatus::Failed
                | TaskStatus::Cancelled
                | TaskStatus::Escalated
        )
    }

    /// Its result is in the integration branch.
    pub fn is_integrated(self) -> bool {
        matches!(self, TaskStatus::Ready | TaskStatus::Applied)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Reviewing => "reviewing",
            TaskStatus::ChangesRequested => "changes_requested",
            TaskStatus::Approved => "approved",
            TaskStatus::Integrating => "integrating",
            TaskStatus::Ready => "ready",
            TaskStatus::Applied => "applied",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Escalated => "escalated",
        }
    }
}

/// Where a plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// The planner is at work.
    Planning,
    /// Tasks are being implemented, reviewed and integrated.
    Running,
    /// Every task is integrated; the test check runs on the result.
    Testing,
    /// Integrated and tested: ready to apply.
    Ready,
    Applied,
    Failed,
    Cancelled,
    Escalated,
}

impl PlanStatus {
    /// Ended with nothing left to apply or answer: what `pitcrew clean` reclaims.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            PlanStatus::Applied | PlanStatus::Cancelled | PlanStatus::Failed
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PlanStatus::Ready
                | PlanStatus::Applied
                | PlanStatus::Failed
                | PlanStatus::Cancelled
                | PlanStatus::Escalated
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Planning => "planning",
            PlanStatus::Running => "running",
            PlanStatus::Testing => "testing",
            PlanStatus::Ready => "ready",
            PlanStatus::Applied => "applied",
            PlanStatus::Failed => "failed",
            PlanStatus::Cancelled => "cancelled",
            PlanStatus::Escalated => "escalated",
        }
    }
}

/// Why a task exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// From the planner, or a single delegated task.
    Implement,
    /// Re-apply task `of` onto the integration branch, where it conflicted.
    Resolve { of: String },
    /// From the debugger: fix what made a check fail after integration.
    Fix,
    /// Review the user's own code (no implementer, nothing to integrate).
    Review {
        path: String,
        /// One-based lines; the whole file when absent.
        start_line: Option<u32>,
        end_line: Option<u32>,
    },
}

/// How a task restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// From its branch's head, with uncommitted leftovers removed.
    AtHead,
    /// From the commit it started from, its branch moved back there.
    FromStart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// Where a finding came from: a configured check, or the reviewer's reading of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FindingSource {
    Check { name: String },
    Review,
}

/// Something the reviewer (or a check) found, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Unique within the plan.
    pub id: String,
    pub task: String,
    /// Relative to the repository root.
    pub path: String,
    /// One-based.
    pub line: u32,
    pub end_line: Option<u32>,
    pub severity: Severity,
    pub message: String,
    /// The reviewer's replacement for the lines, if it proposed one.
    pub suggestion: Option<String>,
    pub source: FindingSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    RequestChanges,
    Reject,
}

/// The outcome of running one configured check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The end of its output, for people and for the debugger.
    pub output_tail: String,
    pub timed_out: bool,
}

/// Tokens and money spent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Spend {
    pub calls: u64,
    /// Every prompt token, cached or not.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, those read from a prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Of `input_tokens`, those written to a prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    /// What prompt caching saved against the same calls without it, in US dollars.
    #[serde(default)]
    pub saved_usd: f64,
    /// Some of the tokens were estimated (the provider did not report them).
    pub estimated: bool,
}

/// Spend in words for progress lines: "1.2k tok (800 cached) $0.0123, $0.0040 saved".
pub fn spend_words(tokens: u64, cached_tokens: u64, cost_usd: f64, saved_usd: f64) -> String {
    let amount = |n: u64| {
        if n >= 1_000 {
            format!("{:.1}k", n as f64 / 1000.0)
        } else {
            n.to_string()
        }
    };
    let mut words = format!("{} tok", amount(tokens));
    if cached_tokens > 0 {
        words.push_str(&format!(" ({} cached)", amount(cached_tokens)));
    }
    if cost_usd > 0.0 {
        words.push_str(&format!(" ${cost_usd:.4}"));
        if saved_usd > 0.0 {
            words.push_str(&format!(", ${saved_usd:.4} saved"));
        }
    }
    words
}

impl Spend {
    pub fn add(&mut self, usage: &Usage) {
        self.calls += 1;
        self.input_tokens += usage.input_tokens;
        self.output_tokens += usage.output_tokens;
        self.cache_read_tokens += usage.cache_read_tokens;
        self.cache_write_tokens += usage.cache_write_tokens;
        self.cost_usd += usage.cost_usd.unwrap_or(0.0);
        self.saved_usd += usage.saved_usd.unwrap_or(0.0);
        self.estimated |= usage.estimated;
    }

    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Adds another record of spend to this one.
    pub fn absorb(&mut self, other: &Spend) {
        self.calls += other.calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_usd += other.cost_usd;
        self.saved_usd += other.saved_usd;
        self.estimated |= other.estimated;
    }
}

/// A task of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub instructions: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Files the planner expects the task to touch (a hint).
    #[serde(default)]
    pub files: Vec<String>,
    pub kind: TaskKind,
    pub status: TaskStatus,
    /// The role working on it now, when one is.
    pub role: Option<Role>,
    /// Request-changes rounds so far.
    pub round: u32,
    pub branch: Option<String>,
    /// The commit the task's worktree started from.
    pub start: Option<String>,
    /// The task's latest committed result.
    pub result: Option<String>,
    /// The implementer's handoff: what changed, why, what is open.
    pub handoff: Option<String>,
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// The debugger's account of a failing check, for the next round.
    pub diagnosis: Option<String>,
    /// The task's diff as last reviewed (capped), for editors to show.
    #[serde(default)]
    pub diff: Option<String>,
    /// How the next run of the task starts, when it is not fresh.
    #[serde(default)]
    pub restart: Option<Restart>,
    /// The resolve task re-applying this task where it conflicted.
    #[serde(default)]
    pub resolving: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub spend: Spend,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Task {
    pub fn new(spec: TaskSpec, kind: TaskKind) -> Self {
        Self {
            id: spec.id,
            title: spec.title,
            instructions: spec.instructions,
            depends_on: spec.depends_on,
            files: spec.files,
            kind,
            status: TaskStatus::Pending,
            role: None,
            round: 0,
            branch: None,
            start: None,
            result: None,
            handoff: None,
            verdict: None,
            findings: Vec::new(),
            checks: Vec::new(),
            diagnosis: None,
            diff: None,
            restart: None,
            resolving: None,
            error: None,
            spend: Spend::default(),
            started_at: None,
            finished_at: None,
        }
    }
}

/// A task as the planner (or the debugger, or a delegation) describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub id: String,
    pub title: String,
    pub instructions: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
}

/// A question for the user, with the answers that drive what happens next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub id: String,
    pub task: Option<String>,
    pub question: String,
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// `retry`, `send_back`, `continue`, `abort`.
    pub id: String,
    pub label: String,
}

/// A plan: a goal, the tasks that reach it, and everything that happened on the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub goal: String,
    pub status: PlanStatus,
    pub created_at: String,
    pub updated_at: String,
    /// Counts the saves of this plan, by its orchestrator or by the user's actions (apply,
    /// discard): an older revision never replaces a newer one (see `PlanRegistry::update`).
    #[serde(default)]
    pub revision: u64,
    /// The snapshot the plan started from: what the user saw.
    pub base: String,
    /// `pitcrew/<plan>/integration`.
    pub integration_branch: String,
    /// Skip the planner: the tasks were given (a delegation).
    #[serde(default)]
    pub preplanned: bool,
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub spend: Spend,
    #[serde(default)]
    pub spend_by_role: BTreeMap<Role, Spend>,
    /// The question waiting for the user, if any.
    pub escalation: Option<Escalation>,
    /// Questions raised while another was pending; asked in turn.
    #[serde(default)]
    pub queued_escalations: Vec<Escalation>,
    /// The test check on the integrated result.
    pub integration_test: Option<CheckResult>,
    /// Debugger fix rounds after a failing integration test.
    #[serde(default)]
    pub fix_rounds: u32,
    /// How many times the user raised the budget's limits ("continue past the limit").
    #[serde(default)]
    pub budget_raises: u32,
    /// Why the plan ended as it did.
    pub outcome: Option<String>,
    /// Counters for ids of findings, resolve and fix tasks.
    #[serde(default)]
    pub serial: u64,
    /// When its branches, worktrees and snapshot were removed (discarded, or `pitcrew clean`):
    /// it can no longer be applied or retried. Its record and the journal stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimed_at: Option<String>,
}

impl Plan {
    pub fn new(id: String, goal: String, base: String) -> Self {
        let now = crate::team::now();
        Self {
            integration_branch: format!("pitcrew/{id}/integration"),
            id,
            goal,
            status: PlanStatus::Planning,
            created_at: now.clone(),
            updated_at: now,
            revision: 0,
            base,
            preplanned: false,
            tasks: Vec::new(),
            spend: Spend::default(),
            spend_by_role: BTreeMap::new(),
            escalation: None,
            queued_escalations: Vec::new(),
            integration_test: None,
            fix_rounds: 0,
            budget_raises: 0,
            outcome: None,
            serial: 0,
            reclaimed_at: None,
        }
    }

    /// Marks the results of `tasks` (all, when empty) as applied to the user's files, and the
    /// plan as applied once every result is. Tasks that failed or were cancelled stay so.
    pub fn mark_applied(&mut self, tasks: &[String]) {
        for task in &mut self.tasks {
            if (tasks.is_empty() || tasks.contains(&task.id)) && task.status.is_integrated() {
                task.status = TaskStatus::Applied;
            }
        }
        let mut results = self
            .tasks
            .iter()
            .filter(|t| !matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled))
            .peekable();
        if results.peek().is_some() && results.all(|t| t.status == TaskStatus::Applied) {
            self.status = PlanStatus::Applied;
        }
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    pub fn task_mut(&mut self, id: &str) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    /// A fresh number for ids within the plan.
    pub fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Tasks in an order where every task comes after its dependencies (the plan's own order
    /// if the graph is not consistent, so nothing is ever left out).
    pub fn topological_order(&self) -> Vec<String> {
        let specs: Vec<(String, Vec<String>)> = self
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.depends_on.clone()))
            .collect();
        topological(&specs).unwrap_or_else(|| self.tasks.iter().map(|t| t.id.clone()).collect())
    }

    /// Whether the plan only reviews code (nothing to integrate or test).
    pub fn is_review(&self) -> bool {
        !self.tasks.is_empty()
            && self
                .tasks
                .iter()
                .all(|t| matches!(t.kind, TaskKind::Review { .. }))
    }
}

/// Kahn's algorithm; `None` when there is a cycle. Ties keep the given order.
fn topological(tasks: &[(String, Vec<String>)]) -> Option<Vec<String>> {
    let mut indegree: HashMap<&str, usize> = tasks.iter().map(|(id, _)| (id.as_str(), 0)).collect();
    for (id, deps) in tasks {
        *indegree.get_mut(id.as_str())? += deps.len();
    }
    let mut ready: VecDeque<&str> = tasks
        .iter()
        .filter(|(id, _)| indegree[id.as_str()] == 0)
        .map(|(id, _)| id.as_str())
        .collect();
    let mut order = Vec::new();
    while let Some(id) = ready.pop_front() {
        order.push(id.to_owned());
        for (other, deps) in tasks {
            if deps.iter().any(|d| d == id) {
                let degree = indegree.get_mut(other.as_str())?;
                *degree -= 1;
                if *degree == 0 {
                    ready.push_back(other.as_str());
                }
            }
        }
    }
    (order.len() == tasks.len()).then_some(order)
}

/// Task ids pitcrew uses for its own worktrees and branches.
pub const RESERVED_IDS: [&str; 3] = ["planner", "verify", "integration"];

/// Checks a submitted plan; the error says what to change, for the planner to try again.
pub fn validate(specs: &[TaskSpec], max_tasks: u32) -> Result<(), String> {
    if specs.is_empty() {
        return Err("the plan has no tasks; give at least one".into());
    }
    if specs.len() > max_tasks as usize {
        return Err(format!(
            "the plan has {} tasks; at most {max_tasks} are allowed: merge some",
            specs.len()
        ));
    }
    let mut ids = HashSet::new();
    for spec in specs {
        if crate::git::check_id(&spec.id).is_err() || spec.id.len() > 40 {
            return Err(format!(
                "task id {:?} is not usable: use up to 40 letters, digits, `-` or `_`",
                spec.id
            ));
        }
        if RESERVED_IDS.contains(&spec.id.as_str())
            || spec.id.starts_with("fix-")
            || spec.id.contains("-resolve")
        {
            return Err(format!(
                "task id {:?} is reserved by pitcrew; choose another",
                spec.id
            ));
        }
        if !ids.insert(spec.id.as_str()) {
            return Err(format!("task id {:?} is used twice", spec.id));
        }
        if spec.title.trim().is_empty() || spec.instructions.trim().is_empty() {
            return Err(format!("task {:?} needs a title and instructions", spec.id));
        }
    }
    for spec in specs {
        for dep in &spec.depends_on {
            if dep == &spec.id {
                return Err(format!("task {:?} depends on itself", spec.id));
            }
            if !ids.contains(dep.as_str()) {
                return Err(format!(
                    "task {:?} depends on {dep:?}, which is not in the plan",
                    spec.id
                ));
            }
        }
    }
    let graph: Vec<(String, Vec<String>)> = specs
        .iter()
        .map(|s| (s.id.clone(), s.depends_on.clone()))
        .collect();
    if topological(&graph).is_none() {
        return Err("the dependencies form a cycle; a task cannot wait for itself".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, deps: &[&str]) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            title: format!("task {id}"),
            instructions: "do it".into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            files: vec![],
        }
    }

    #[test]
    fn valid_plans_pass_and_invalid_ones_say_why() {
        assert_eq!(validate(&[spec("a", &[]), spec("b", &["a"])], 8), Ok(()));
        let cases: Vec<(Vec<TaskSpec>, &str)> = vec![
            (vec![], "no tasks"),
            (vec![spec("a", &[]), spec("a", &[])], "used twice"),
            (vec![spec("a", &["b"])], "not in the plan"),
            (vec![spec("a", &["a"])], "depends on itself"),
            (vec![spec("a", &["b"]), spec("b", &["a"])], "cycle"),
            (vec![spec("../x", &[])], "not usable"),
            (vec![spec("verify", &[])], "reserved"),
            (vec![spec("fix-2", &[])], "reserved"),
            (vec![spec("a-resolve3", &[])], "reserved"),
            (
                (0..9).map(|i| spec(&format!("t{i}"), &[])).collect(),
                "at most 8",
            ),
        ];
        for (specs, expected) in cases {
            let error = validate(&specs, 8).unwrap_err();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }

    #[test]
    fn topological_order_respects_dependencies() {
        let order = topological(&[
            ("c".into(), vec!["a".into(), "b".into()]),
            ("a".into(), vec![]),
            ("b".into(), vec!["a".into()]),
        ])
        .unwrap();
        assert_eq!(order, ["a", "b", "c"]);
    }
}
