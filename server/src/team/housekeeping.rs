//! Housekeeping on the repository's pitcrew state: finishing an apply that a crash cut short,
//! and reclaiming what finished plans leave behind (branches, worktrees, snapshots).

use super::plan::PlanStatus;
use super::store::{JournalEntry, Store};
use crate::config::Role;
use crate::git::{self, GitRepo};

/// Finishes the applies a crash cut short (see `git::apply::finish_interrupted`), marks their
/// plans applied when every file landed, and journals it. Returns a line for the user per apply.
pub async fn finish_interrupted_applies(repo: &GitRepo, store: &Store) -> Vec<String> {
    let finished = match repo.run(git::apply::finish_interrupted).await {
        Ok(finished) => finished,
        Err(err) => {
            return vec![format!(
                "an apply cut short by a crash could not be finished: {err}"
            )];
        }
    };
    let mut said = Vec::new();
    for (plan_id, report) in finished {
        let reason = format!(
            "finished after an interruption: {} written, {} deleted, {} already done, {} changed by you since",
            report.written.len(),
            report.deleted.len(),
            report.unchanged.len(),
            report.conflicts.len()
        );
        if report.is_clean()
            && let Ok(mut plan) = store.load_plan(&plan_id)
            && plan.status == PlanStatus::Ready
        {
            plan.mark_applied(&[]);
            plan.revision += 1;
            if let Err(err) = store.save_plan(&plan) {
                tracing::error!("cannot save plan {plan_id} as applied: {err}");
            }
        }
        store.journal(
            &JournalEntry::new(&plan_id, "applied")
                .role(Role::Integrator)
                .reason(reason.clone()),
        );
        let mut line = format!("The apply of plan {plan_id} was cut short; it is {reason}.");
        for conflict in &report.conflicts {
            line.push_str(&format!(
                "\n  {} was left as you have it; `pitcrew apply {plan_id}` merges the rest",
                conflict.path
            ));
        }
        said.push(line);
    }
    said
}
