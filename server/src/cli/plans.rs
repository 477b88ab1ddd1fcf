//! `pitcrew status`, `pitcrew log` and `pitcrew apply`: reading (and applying) what is on disk.

use std::path::Path;

use serde_json::json;

use super::output;
use super::run::{apply_and_record, setup, summary};
use crate::team::plan::PlanStatus;
use crate::team::store::JournalEntry;

/// The plans of the repository, newest last.
pub fn status(cwd: &Path, as_json: bool) -> i32 {
    let setup = match setup(cwd) {
        Ok(setup) => setup,
        Err(error) => {
            output::error(&format!("pitcrew status: {error}"));
            return 2;
        }
    };
    let plans = setup.store.plans();
    if as_json {
        output::json(&json!({"plans": plans}));
        return 0;
    }
    if plans.is_empty() {
        output::line("No plans yet. Start one with `pitcrew run \"<goal>\"`.");
        return 0;
    }
    for plan in &plans {
        let done = plan
            .tasks
            .iter()
            .filter(|t| t.status.is_integrated())
            .count();
        output::line(&format!(
            "{}  {:<9} {}/{} tasks  {} tokens{}  {}  {}",
            plan.id,
            plan.status.as_str(),
            done,
            plan.tasks.len(),
            plan.spend.tokens(),
            if plan.spend.cost_usd > 0.0 {
                format!(" ${:.4}", plan.spend.cost_usd)
            } else {
                String::new()
            },
            plan.created_at,
            plan.goal.lines().next().unwrap_or("")
        ));
        for task in &plan.tasks {
            output::line(&format!(
                "    {:<16} {:<17} {}",
                task.id,
                task.status.as_str(),
                task.title
            ));
        }
        if let Some(escalation) = &plan.escalation {
            output::line(&format!("    question: {}", escalation.question));
        }
    }
    0
}

/// The journal: who did what, when, why, at what cost.
pub fn log(cwd: &Path, as_json: bool, plan: Option<&str>) -> i32 {
    let setup = match setup(cwd) {
        Ok(setup) => setup,
        Err(error) => {
            output::error(&format!("pitcrew log: {error}"));
            return 2;
        }
    };
    let entries: Vec<JournalEntry> = setup
        .store
        .read_journal()
        .into_iter()
        .filter(|e| plan.is_none_or(|p| e.plan == p))
        .collect();
    if as_json {
        for entry in &entries {
            if let Ok(line) = serde_json::to_string(entry) {
                output::line(&line);
            }
        }
        return 0;
    }
    for entry in &entries {
        let mut line = format!(
            "{} {} {:<11} {:<14} {}",
            entry.time,
            entry.plan,
            entry.role.map(|r| r.as_str()).unwrap_or("-"),
            entry.task.as_deref().unwrap_or("-"),
            entry.event
        );
        if let Some(model) = &entry.model {
            line.push_str(&format!(" {model}"));
        }
        if let (Some(input), Some(output)) = (entry.input_tokens, entry.output_tokens) {
            line.push_str(&format!(" {input}+{output} tok"));
        }
        if let Some(cost) = entry.cost_usd {
            line.push_str(&format!(" ${cost:.4}"));
        }
        if let Some(ms) = entry.duration_ms {
            line.push_str(&format!(" {ms} ms"));
        }
        if let Some(reason) = &entry.reason {
            line.push_str(&format!(" — {}", reason.lines().next().unwrap_or("")));
        }
        output::line(&line);
    }
    0
}

/// Applies a ready plan (the latest ready one by default) to the working tree.
pub async fn apply(cwd: &Path, plan_id: Option<&str>) -> i32 {
    let setup = match setup(cwd) {
        Ok(setup) => setup,
        Err(error) => {
            output::error(&format!("pitcrew apply: {error}"));
            return 2;
        }
    };
    let plans = setup.store.plans();
    let plan = match plan_id {
        Some(id) => plans.into_iter().find(|p| p.id == id),
        None => plans
            .into_iter()
            .rev()
            .find(|p| p.status == PlanStatus::Ready),
    };
    let Some(found) = plan else {
        output::error("pitcrew apply: no such plan ready to apply (see `pitcrew status`)");
        return 1;
    };
    // Lock, then read: another process may have just changed it.
    let Ok(Some(_lock)) = setup.store.lock_plan(&found.id) else {
        output::error(&format!(
            "pitcrew apply: plan {} is busy in another process",
            found.id
        ));
        return 1;
    };
    let Ok(mut plan) = setup.store.load_plan(&found.id) else {
        output::error(&format!("pitcrew apply: plan {} cannot be read", found.id));
        return 1;
    };
    if plan.status != PlanStatus::Ready {
        output::error(&format!(
            "pitcrew apply: plan {} is {}, not ready",
            plan.id,
            plan.status.as_str()
        ));
        return 1;
    }
    let Ok(Some(_lock)) = setup.store.lock_plan(&plan.id) else {
        output::error(&format!(
            "pitcrew apply: plan {} is busy in another process",
            plan.id
        ));
        return 1;
    };
    match apply_and_record(&setup, &mut plan).await {
        Ok(report) => {
            output::line(&summary(&plan, Some(&report), 0.0));
            if report.is_clean() { 0 } else { 1 }
        }
        Err(err) => {
            output::error(&format!("pitcrew apply: {err}"));
            1
        }
    }
}
