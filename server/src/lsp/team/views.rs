//! Plans and tasks as the editor sees them: the JSON of `pitcrew/plan`, `pitcrew/plans`,
//! `pitcrew/task` and `pitcrew/planChanged`.

use crate::lsp::ext::{PlanSnapshot, Question, QuestionChoice, TaskDetail, TaskSummary};
use crate::team::TeamService;
use crate::team::plan::{Plan, Task, TaskKind};

pub fn plan_snapshot(plan: &Plan, running: bool) -> PlanSnapshot {
    PlanSnapshot {
        plan_id: plan.id.clone(),
        goal: plan.goal.clone(),
        status: plan.status.as_str().to_owned(),
        integration_branch: plan.integration_branch.clone(),
        created_at: plan.created_at.clone(),
        updated_at: plan.updated_at.clone(),
        revision: plan.revision,
        tokens: plan.spend.tokens(),
        cached_tokens: plan.spend.cache_read_tokens,
        cost_usd: plan.spend.cost_usd,
        saved_usd: plan.spend.saved_usd,
        outcome: plan.outcome.clone(),
        running,
        question: plan.escalation.as_ref().map(|e| Question {
            escalation_id: e.id.clone(),
            task_id: e.task.as_ref().map(|t| format!("{}/{t}", plan.id)),
            text: e.question.clone(),
            choices: e
                .choices
                .iter()
                .map(|c| QuestionChoice {
                    id: c.id.clone(),
                    label: c.label.clone(),
                })
                .collect(),
        }),
        tasks: plan.tasks.iter().map(|t| task_summary(plan, t)).collect(),
    }
}

pub fn task_summary(plan: &Plan, task: &Task) -> TaskSummary {
    TaskSummary {
        task_id: format!("{}/{}", plan.id, task.id),
        title: task.title.clone(),
        status: task.status.as_str().to_owned(),
        role: task.role.map(|r| r.as_str().to_owned()),
        kind: match task.kind {
            TaskKind::Implement => "implement",
            TaskKind::Resolve { .. } => "resolve",
            TaskKind::Fix => "fix",
            TaskKind::Review { .. } => "review",
        }
        .to_owned(),
        depends_on: task
            .depends_on
            .iter()
            .map(|d| format!("{}/{d}", plan.id))
            .collect(),
        branch: task.branch.clone(),
        round: task.round,
        findings: task.findings.len(),
        tokens: task.spend.tokens(),
        cached_tokens: task.spend.cache_read_tokens,
        cost_usd: task.spend.cost_usd,
        saved_usd: task.spend.saved_usd,
        started_at: task.started_at.clone(),
        finished_at: task.finished_at.clone(),
        error: task.error.clone(),
    }
}

pub fn task_detail(service: &TeamService, plan: &Plan, task: &Task) -> TaskDetail {
    TaskDetail {
        summary: task_summary(plan, task),
        plan_id: plan.id.clone(),
        instructions: task.instructions.clone(),
        handoff: task.handoff.clone(),
        verdict: task
            .verdict
            .and_then(|v| serde_json::to_value(v).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
        diff: task.diff.clone(),
        findings: task
            .findings
            .iter()
            .filter_map(|f| serde_json::to_value(f).ok())
            .collect(),
        checks: task
            .checks
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect(),
        transcript_summary: service.activity(&plan.id, &task.id),
        files: Vec::new(),
    }
}
