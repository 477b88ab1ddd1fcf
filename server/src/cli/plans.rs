//! `pitcrew status`, `pitcrew log` and `pitcrew apply`: reading (and applying) what is on disk.

use std::io::IsTerminal;
use std::path::Path;

use serde_json::json;

use std::time::Duration;

use super::output;
use super::run::{apply_and_record, head_moved, setup, summary};
use crate::git;
use crate::team::housekeeping::{self, CleanOptions};
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
    // What each plan keeps on disk (worktrees, and objects only its refs keep).
    let mut footprints = setup
        .repo
        .open()
        .and_then(|repo| git::cleanup::footprints(&repo))
        .unwrap_or_default();
    footprints.retain(|id, _| crate::team::is_plan_id(id));
    if as_json {
        let disk: serde_json::Map<String, serde_json::Value> = footprints
            .iter()
            .map(|(id, f)| (id.clone(), json!(f)))
            .collect();
        output::json(&json!({"plans": plans, "disk": disk}));
        return 0;
    }
    if plans.is_empty() && footprints.is_empty() {
        output::line("No plans yet. Start one with `pitcrew run \"<goal>\"`.");
        return 0;
    }
    for plan in &plans {
        let size = footprints
            .get(&plan.id)
            .map(|f| format!("  {}", git::cleanup::human_bytes(f.bytes())))
            .unwrap_or_default();
        let done = plan
            .tasks
            .iter()
            .filter(|t| t.status.is_integrated())
            .count();
        output::line(&format!(
            "{}  {:<9} {}/{} tasks  {} tokens{}{size}  {}  {}",
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
    let total: u64 = footprints.values().map(|f| f.bytes()).sum();
    let reclaimable: u64 = footprints
        .iter()
        .filter(|(id, _)| {
            plans
                .iter()
                .find(|p| &p.id == *id)
                .is_none_or(|p| p.status.is_finished())
        })
        .map(|(_, f)| f.bytes())
        .sum();
    output::line(&format!(
        "\nDisk: {} in {} worktrees and the objects only pitcrew's branches and snapshots keep; \
         {} of it belongs to finished plans (`pitcrew clean` removes it).",
        git::cleanup::human_bytes(total),
        footprints
            .values()
            .map(|f| f.worktrees.len())
            .sum::<usize>(),
        git::cleanup::human_bytes(reclaimable),
    ));
    0
}

/// `pitcrew clean`: removes what finished plans keep in the repository.
pub async fn clean(cwd: &Path, older_than_days: Option<f64>, dry_run: bool) -> i32 {
    let setup = match setup(cwd) {
        Ok(setup) => setup,
        Err(error) => {
            output::error(&format!("pitcrew clean: {error}"));
            return 2;
        }
    };
    let options = CleanOptions {
        older_than: older_than_days.map(|days| Duration::from_secs_f64(days.max(0.0) * 86_400.0)),
        dry_run,
    };
    if !dry_run {
        housekeeping::expire_snapshots(&setup.repo, &setup.store).await;
    }
    let report = match housekeeping::clean(&setup.repo, &setup.store, &options).await {
        Ok(report) => report,
        Err(err) => {
            output::error(&format!("pitcrew clean: {err}"));
            return 1;
        }
    };
    if report.reclaimed.is_empty() {
        output::line("Nothing to clean: no finished plan keeps anything in the repository.");
    } else {
        let (branches, worktrees, snapshots) = report.reclaimed.iter().fold((0, 0, 0), |acc, r| {
            (
                acc.0 + r.footprint.branches.len(),
                acc.1 + r.footprint.worktrees.len(),
                acc.2 + usize::from(r.footprint.snapshot.is_some()),
            )
        });
        output::line(&format!(
            "{} what {} finished plan{} kept: {branches} branches, {worktrees} worktrees, {snapshots} snapshots, {} in all.",
            if dry_run { "Would remove" } else { "Removed" },
            report.reclaimed.len(),
            if report.reclaimed.len() == 1 { "" } else { "s" },
            git::cleanup::human_bytes(report.reclaimed_bytes()),
        ));
        for reclaimed in &report.reclaimed {
            output::line(&format!(
                "  {}  {:<9} {:>10}  {} branches, {} worktrees{}",
                reclaimed.plan,
                reclaimed.status.map(|s| s.as_str()).unwrap_or("(no plan)"),
                git::cleanup::human_bytes(reclaimed.footprint.bytes()),
                reclaimed.footprint.branches.len(),
                reclaimed.footprint.worktrees.len(),
                if reclaimed.footprint.snapshot.is_some() {
                    ", a snapshot"
                } else {
                    ""
                },
            ));
        }
        let objects: u64 = report
            .reclaimed
            .iter()
            .map(|r| r.footprint.object_bytes)
            .sum();
        if !dry_run && objects > 0 {
            output::line(&format!(
                "Of that, {} is objects no ref keeps now: git frees them at its next `git gc` \
                 once they are older than gc.pruneExpire (two weeks by default), or at once with \
                 `git gc --prune=now`.",
                git::cleanup::human_bytes(objects)
            ));
        }
    }
    for (plan, reason) in &report.kept {
        output::line(&format!("  kept {plan}: {reason}"));
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
            if let Some(cached) = entry.cache_read_tokens {
                line.push_str(&format!(" ({cached} cached)"));
            }
        }
        if let Some(cost) = entry.cost_usd {
            line.push_str(&format!(" ${cost:.4}"));
            if let Some(saved) = entry.saved_usd.filter(|s| *s > 0.0) {
                line.push_str(&format!(" (${saved:.4} saved)"));
            }
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

/// Applies a ready plan (the latest ready one by default) to the working tree, whole or not at
/// all. When HEAD has left the commit the plan started from, asks at a terminal and refuses
/// elsewhere, unless `force`.
pub async fn apply(cwd: &Path, plan_id: Option<&str>, force: bool) -> i32 {
    let setup = match setup(cwd) {
        Ok(setup) => setup,
        Err(error) => {
            output::error(&format!("pitcrew apply: {error}"));
            return 2;
        }
    };
    for line in housekeeping::finish_interrupted_applies(&setup.repo, &setup.store).await {
        output::line(&line);
    }
    housekeeping::expire_snapshots(&setup.repo, &setup.store).await;
    let plans = setup.store.plans();
    let found = match plan_id {
        Some(id) => plans.into_iter().find(|p| p.id == id),
        None => {
            let ready = plans.iter().rev().find(|p| p.status == PlanStatus::Ready);
            match ready {
                Some(plan) => Some(plan.clone()),
                // Nothing is ready: say what the latest plan is, if anything.
                None => match plans.last() {
                    Some(latest) if latest.status == PlanStatus::Applied => {
                        output::line(&format!(
                            "Plan {} is already applied; no plan is waiting to be applied.",
                            latest.id
                        ));
                        return 0;
                    }
                    Some(latest) => {
                        output::error(&format!(
                            "pitcrew apply: no plan is ready to apply; the latest, {}, is {} (see `pitcrew status`)",
                            latest.id,
                            latest.status.as_str()
                        ));
                        return 1;
                    }
                    None => {
                        output::error(
                            "pitcrew apply: there are no plans yet; start one with `pitcrew run \"<goal>\"`",
                        );
                        return 1;
                    }
                },
            }
        }
    };
    let Some(found) = found else {
        output::error(&format!(
            "pitcrew apply: there is no plan {} (see `pitcrew status`)",
            plan_id.unwrap_or_default()
        ));
        return 1;
    };
    // Lock, then read: another process may have just changed it. The lock is held until the
    // plan is saved as applied.
    let lock = match setup.store.lock_plan(&found.id) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            output::error(&format!(
                "pitcrew apply: plan {} is being run by another pitcrew process; apply it when that ends",
                found.id
            ));
            return 1;
        }
        Err(err) => {
            output::error(&format!(
                "pitcrew apply: cannot lock plan {}: {err}",
                found.id
            ));
            return 1;
        }
    };
    let mut plan = match setup.store.load_plan(&found.id) {
        Ok(plan) => plan,
        Err(err) => {
            output::error(&format!("pitcrew apply: {err}"));
            return 1;
        }
    };
    match plan.status {
        PlanStatus::Ready => {}
        PlanStatus::Applied => {
            output::line(&format!("Plan {} is already applied.", plan.id));
            return 0;
        }
        other => {
            output::error(&format!(
                "pitcrew apply: plan {} is {}, not ready; only a ready plan's result can be applied",
                plan.id,
                other.as_str()
            ));
            return 1;
        }
    }
    match head_moved(&setup, &plan).await {
        Ok(None) => {}
        Ok(Some(moved)) => {
            if !force && !confirm(&format!("Plan {}: {moved}.", plan.id)).await {
                output::error(&format!(
                    "pitcrew apply: not applied: {moved}. Look first (`git diff {} {}`), then \
                     apply with `pitcrew apply {} --force` to merge it onto what you have now.",
                    &plan.base[..plan.base.len().min(12)],
                    plan.integration_branch,
                    plan.id
                ));
                return 1;
            }
        }
        Err(err) => {
            output::error(&format!("pitcrew apply: {err}"));
            return 1;
        }
    }
    let applied = apply_and_record(&setup, &mut plan).await;
    drop(lock);
    match applied {
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

/// Asks a yes/no question at the terminal; `false` when nobody is there to answer.
async fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    output::error(&format!("{question}\nApply anyway? [y/N] "));
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok()?;
        Some(matches!(line.trim(), "y" | "Y" | "yes"))
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false)
}
