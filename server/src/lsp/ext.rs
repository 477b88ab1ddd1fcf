//! pitcrew's extensions to LSP, declared once: commands, custom requests and notifications.
//!
//! Mirrored by `editors/vscode/src/lsp_ext.ts` and documented in `docs/lsp-extensions.md`.

use serde::{Deserialize, Serialize};

/// Every command the server executes (`workspace/executeCommand`).
pub mod commands {
    pub const DELEGATE: &str = "pitcrew.delegate";
    pub const REVIEW: &str = "pitcrew.review";
    pub const PLAN: &str = "pitcrew.plan";
    pub const APPLY: &str = "pitcrew.apply";
    pub const DISCARD: &str = "pitcrew.discard";
    pub const CANCEL: &str = "pitcrew.cancel";
    pub const RETRY: &str = "pitcrew.retry";
    pub const SHOW_PLAN: &str = "pitcrew.showPlan";
    pub const DISMISS_FINDING: &str = "pitcrew.dismissFinding";
    /// Sends a reviewer's finding to an implementer as a new task.
    pub const SEND_BACK: &str = "pitcrew.sendBack";
    /// Answers a plan's pending question (for plan views; `showMessageRequest` asks too).
    pub const ANSWER: &str = "pitcrew.answer";

    pub const ALL: [&str; 11] = [
        DELEGATE,
        REVIEW,
        PLAN,
        APPLY,
        DISCARD,
        CANCEL,
        RETRY,
        SHOW_PLAN,
        DISMISS_FINDING,
        SEND_BACK,
        ANSWER,
    ];
}

/// `pitcrew/plan`: a plan's state, for plan views.
pub const PLAN: &str = "pitcrew/plan";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanParams {
    /// The plan; the most recent one when absent.
    pub plan_id: Option<String>,
}

/// A plan as plan views show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSnapshot {
    pub plan_id: String,
    pub goal: String,
    /// `planning`, `running`, `testing`, `ready`, `applied`, `failed`, `cancelled`, `escalated`.
    pub status: String,
    pub integration_branch: String,
    pub created_at: String,
    pub updated_at: String,
    /// Grows with every saved change: of two snapshots of a plan, keep the higher (a
    /// `pitcrew/plans` answer can arrive after a newer `pitcrew/planChanged`).
    pub revision: u64,
    pub tokens: u64,
    /// Of `tokens`, read from a prompt cache.
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// What prompt caching saved, in US dollars.
    pub saved_usd: f64,
    pub outcome: Option<String>,
    /// Whether this server is running it now (a plan can be unfinished and not running, when
    /// it was interrupted; `pitcrew.retry` resumes it).
    pub running: bool,
    /// The question waiting for the user, if any.
    pub question: Option<Question>,
    pub tasks: Vec<TaskSummary>,
}

/// A question for the user; answer with `pitcrew.answer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    pub escalation_id: String,
    /// `<plan>/<task>` when the question is about a task.
    pub task_id: Option<String>,
    pub text: String,
    pub choices: Vec<QuestionChoice>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionChoice {
    /// `retry`, `send_back`, `continue`, `abort`.
    pub id: String,
    pub label: String,
}

/// `pitcrew/plans`: every plan this workspace has, most recent first.
pub const PLANS: &str = "pitcrew/plans";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlansResult {
    pub plans: Vec<PlanSnapshot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    /// `<plan>/<task>`, the id commands take.
    pub task_id: String,
    pub title: String,
    /// `pending`, `running`, `reviewing`, `changes_requested`, `approved`, `ready`,
    /// `integrating`, `applied`, `failed`, `cancelled`, `escalated`.
    pub status: String,
    /// The role at work on it, if any.
    pub role: Option<String>,
    pub kind: String,
    pub depends_on: Vec<String>,
    pub branch: Option<String>,
    pub round: u32,
    pub findings: usize,
    pub tokens: u64,
    /// Of `tokens`, read from a prompt cache.
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// What prompt caching saved, in US dollars.
    pub saved_usd: f64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// `pitcrew/task`: one task in detail.
pub const TASK: &str = "pitcrew/task";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskParams {
    pub task_id: String,
    /// A file of the task's result: its entry in `files` carries both texts.
    #[serde(default)]
    pub path: Option<String>,
}

/// A task in detail: its summary's fields, with `findings` the list of findings rather than
/// their count (serialized by hand, so that the key appears once).
#[derive(Debug, Clone)]
pub struct TaskDetail {
    pub summary: TaskSummary,
    pub plan_id: String,
    pub instructions: String,
    pub handoff: Option<String>,
    pub verdict: Option<String>,
    /// The unified diff of its result, as last reviewed.
    pub diff: Option<String>,
    pub findings: Vec<serde_json::Value>,
    pub checks: Vec<serde_json::Value>,
    /// What its agents did, most recent last.
    pub transcript_summary: Vec<String>,
    /// The files its result changes, from where it started to its result (empty until it
    /// has one); for diff views.
    pub files: Vec<TaskFile>,
}

/// The fields of `TaskDetail` beside its summary's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskDetailFields<'a> {
    plan_id: &'a str,
    instructions: &'a str,
    handoff: &'a Option<String>,
    verdict: &'a Option<String>,
    diff: &'a Option<String>,
    findings: &'a [serde_json::Value],
    checks: &'a [serde_json::Value],
    transcript_summary: &'a [String],
    files: &'a [TaskFile],
}

impl Serialize for TaskDetail {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let to_map = |value: serde_json::Value| match value {
            serde_json::Value::Object(map) => Ok(map),
            _ => Err(S::Error::custom("a task serializes to an object")),
        };
        let mut map = to_map(serde_json::to_value(&self.summary).map_err(S::Error::custom)?)?;
        let fields = TaskDetailFields {
            plan_id: &self.plan_id,
            instructions: &self.instructions,
            handoff: &self.handoff,
            verdict: &self.verdict,
            diff: &self.diff,
            findings: &self.findings,
            checks: &self.checks,
            transcript_summary: &self.transcript_summary,
            files: &self.files,
        };
        // The detail's `findings` (the list) replaces the summary's (the count).
        map.extend(to_map(
            serde_json::to_value(fields).map_err(S::Error::custom)?,
        )?);
        map.serialize(serializer)
    }
}

/// A file a task's result changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFile {
    pub path: String,
    /// The path before a rename.
    pub old_path: Option<String>,
    /// `added`, `modified`, `deleted`, `renamed`.
    pub change: String,
    pub binary: bool,
    /// The text before and after, only for the file asked for with `path` (absent for a side
    /// that does not exist or is binary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// `pitcrew/planChanged`, server to client: a plan changed (at most ten a second).
pub const PLAN_CHANGED: &str = "pitcrew/planChanged";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanChangedParams {
    pub plan_id: String,
    pub status: String,
    /// The plan as `pitcrew/plan` would return it now.
    pub plan: PlanSnapshot,
}

pub enum PlanChanged {}

impl tower_lsp_server::ls_types::notification::Notification for PlanChanged {
    type Params = PlanChangedParams;
    const METHOD: &'static str = PLAN_CHANGED;
}

/// `window/workDoneProgress/cancel`, client to server (not in tower-lsp-server's trait).
pub const PROGRESS_CANCEL: &str = "window/workDoneProgress/cancel";

/// Arguments of `pitcrew.delegate`, `pitcrew.review` and `pitcrew.plan`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectionArgs {
    pub uri: Option<String>,
    pub range: Option<tower_lsp_server::ls_types::Range>,
    pub instruction: Option<String>,
    /// `implement`, `fix`, `tests`, `document`, `simplify`.
    pub preset: Option<String>,
    /// `pitcrew.plan`: the goal.
    pub goal: Option<String>,
    /// Preset `fix`: the messages of the diagnostics to fix (the server cannot see the
    /// client's other diagnostics).
    pub diagnostics: Option<Vec<String>>,
}

/// Arguments of the commands that act on a task or a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetArgs {
    pub task_id: Option<String>,
    pub plan_id: Option<String>,
    pub finding_id: Option<String>,
}

/// Arguments of `pitcrew.answer`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerArgs {
    pub plan_id: String,
    pub escalation_id: String,
    /// A choice id from the question.
    pub choice: String,
}

/// What `pitcrew.delegate`, `pitcrew.review`, `pitcrew.plan` and `pitcrew.sendBack` return at
/// once; the work goes on in the background.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub plan_id: String,
    /// `<plan>/<task>`; absent for `pitcrew.plan` (the planner makes the tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// `pitcrew/debug/documentText`: the server's copy of an open document, to check that it
/// matches the editor's (as rust-analyzer's `viewFileText`). A debugging aid, not for plugins.
pub const DOCUMENT_TEXT: &str = "pitcrew/debug/documentText";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentTextParams {
    pub uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentTextResult {
    pub version: i32,
    pub text: String,
}

/// `pitcrew/debug/config`: the configuration in force, where it came from, and the problems
/// of the last load (when the last load failed, `config` is still the last good one).
pub const CONFIG: &str = "pitcrew/debug/config";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigResult {
    pub config: serde_json::Value,
    pub sources: Vec<crate::config::SourceReport>,
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_detail_has_one_findings_key_holding_the_list() {
        let detail = TaskDetail {
            summary: TaskSummary {
                task_id: "p1/t1".into(),
                title: "t".into(),
                status: "ready".into(),
                role: None,
                kind: "implement".into(),
                depends_on: vec![],
                branch: None,
                round: 0,
                findings: 1,
                tokens: 0,
                cached_tokens: 0,
                cost_usd: 0.0,
                saved_usd: 0.0,
                started_at: None,
                finished_at: None,
                error: None,
            },
            plan_id: "p1".into(),
            instructions: "do it".into(),
            handoff: None,
            verdict: None,
            diff: None,
            findings: vec![serde_json::json!({"id": "f1"})],
            checks: vec![],
            transcript_summary: vec![],
            files: vec![],
        };
        let text = serde_json::to_string(&detail).unwrap();
        assert_eq!(text.matches("\"findings\"").count(), 1, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["findings"][0]["id"], "f1");
        assert_eq!(value["taskId"], "p1/t1");
        assert_eq!(value["planId"], "p1");
    }
}
