//! Housekeeping on the repository's pitcrew state: finishing an apply that a crash cut short,
//! and reclaiming what finished plans leave behind (branches, worktrees, snapshots).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::plan::{Plan, PlanStatus};
use super::store::{JournalEntry, Store};
use crate::config::Role;
use crate::git::cleanup::Footprint;
use crate::git::{self, GitRepo};

/// Finishes the applies a crash cut short (see `git::apply::finish_interrupted`), each under its
/// plan's lock (a plan another process holds is being applied by it now), marks their plans
/// applied when every file landed, and journals it. Returns a line for the user per apply.
pub async fn finish_interrupted_applies(repo: &GitRepo, store: &Store) -> Vec<String> {
    let names = match repo.run(|r| Ok(git::apply::interrupted(r))).await {
        Ok(names) => names,
        Err(_) => return Vec::new(),
    };
    let mut said = Vec::new();
    for plan_id in names {
        let Ok(Some(lock)) = store.lock_plan(&plan_id) else {
            continue;
        };
        let id = plan_id.clone();
        let finished = repo
            .run(move |r| git::apply::finish_interrupted(r, &id))
            .await;
        let report = match finished {
            Ok(Some(report)) => report,
            Ok(None) => continue,
            Err(err) => {
                said.push(format!(
                    "the apply of plan {plan_id}, cut short by a crash, could not be finished: {err}"
                ));
                continue;
            }
        };
        let reason = format!(
            "finished after an interruption: {} written, {} deleted, {} already done, {} left as you have them",
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
        drop(lock);
        store.journal(
            &JournalEntry::new(&plan_id, "applied")
                .role(Role::Integrator)
                .reason(reason.clone()),
        );
        let mut line = format!("The apply of plan {plan_id} was cut short; it is {reason}.");
        for conflict in &report.conflicts {
            line.push_str(&format!(
                "\n  {} was left as you have it ({}); `pitcrew apply {plan_id}` merges the rest",
                conflict.path, conflict.reason
            ));
        }
        said.push(line);
    }
    said
}

/// Snapshots of finished plans are kept this long after the plan last changed: findings of a
/// review are placed on them after a restart.
pub const SNAPSHOT_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// State no plan describes (a plan whose file is gone, a launch cut short) is left alone this
/// long, since another process may be creating that plan right now.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// What `clean` removes: finished plans only, and of those only the ones older than this.
#[derive(Debug, Clone, Default)]
pub struct CleanOptions {
    pub older_than: Option<Duration>,
    pub dry_run: bool,
}

/// One plan's state, reclaimed (or, in a dry run, reclaimable).
#[derive(Debug, Clone, Serialize)]
pub struct Reclaimed {
    pub plan: String,
    /// `None` for state no plan file describes.
    pub status: Option<PlanStatus>,
    pub footprint: Footprint,
}

/// What `clean` did, and what it left.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanReport {
    pub reclaimed: Vec<Reclaimed>,
    /// Plans left alone, with the reason (ready to apply, waiting for an answer, running,
    /// too young).
    pub kept: Vec<(String, String)>,
    pub kept_bytes: u64,
}

impl CleanReport {
    pub fn reclaimed_bytes(&self) -> u64 {
        self.reclaimed.iter().map(|r| r.footprint.bytes()).sum()
    }
}

/// Removes what finished plans (applied, discarded or cancelled, failed) keep in the
/// repository, and state no plan describes. The plans' records and the journal stay.
pub async fn clean(
    repo: &GitRepo,
    store: &Store,
    options: &CleanOptions,
) -> Result<CleanReport, String> {
    let footprints = repo
        .run(git::cleanup::footprints)
        .await
        .map_err(|e| e.to_string())?;
    let plans: BTreeMap<String, Plan> = store
        .plans()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let old_enough = |age: Duration| options.older_than.is_none_or(|limit| age >= limit);
    let mut report = CleanReport::default();
    for (id, footprint) in footprints {
        // Only what pitcrew made: a branch `pitcrew/experiment` of the user's is not a plan.
        if footprint.is_empty() || !crate::team::is_plan_id(&id) {
            continue;
        }
        let keep = |report: &mut CleanReport, reason: String| {
            report.kept_bytes += footprint.bytes();
            report.kept.push((id.clone(), reason));
        };
        let status = match plans.get(&id) {
            Some(plan) => {
                if !plan.status.is_finished() {
                    keep(&mut report, format!("it is {}", plan.status.as_str()));
                    continue;
                }
                let age = crate::team::parse_time(&plan.updated_at)
                    .map(git::cleanup::age_of)
                    .unwrap_or_default();
                if !old_enough(age) {
                    keep(&mut report, format!("it ended {} ago", human_duration(age)));
                    continue;
                }
                Some(plan.status)
            }
            // A plan file that exists but cannot be read (written by a newer pitcrew, say) is
            // still a plan: only state with no plan file at all is an orphan.
            None if store.has_plan_file(&id) => {
                keep(&mut report, "its plan file cannot be read".into());
                continue;
            }
            None => {
                let age = git::cleanup::age_of(footprint.newest_commit);
                if age < ORPHAN_GRACE || !old_enough(age) {
                    keep(&mut report, "no plan describes it, and it is recent".into());
                    continue;
                }
                None
            }
        };
        // No other process may be running it (a retry in an editor, say).
        let lock = match store.lock_plan(&id) {
            Ok(Some(lock)) => lock,
            _ => {
                keep(&mut report, "another pitcrew process is using it".into());
                continue;
            }
        };
        if !options.dry_run
            && let Err(err) = reclaim_locked(repo, store, &id).await
        {
            drop(lock);
            keep(&mut report, err);
            continue;
        }
        drop(lock);
        report.reclaimed.push(Reclaimed {
            plan: id,
            status,
            footprint,
        });
    }
    Ok(report)
}

/// `reclaim_locked`, taking the plan's lock first; a plan another process runs is left alone.
pub async fn reclaim(repo: &GitRepo, store: &Store, id: &str) -> Result<Footprint, String> {
    let lock = store
        .lock_plan(id)
        .map_err(|e| format!("cannot lock plan {id}: {e}"))?
        .ok_or_else(|| format!("plan {id} is being run by another pitcrew process"))?;
    let reclaimed = reclaim_locked(repo, store, id).await;
    drop(lock);
    reclaimed
}

/// Removes what plan `id` keeps in the repository (its worktrees, branches and snapshot) and
/// records it on the plan: for a discarded plan, and for `clean`. The caller holds the plan's
/// lock, or knows that its orchestrator has ended in this process.
pub async fn reclaim_locked(repo: &GitRepo, store: &Store, id: &str) -> Result<Footprint, String> {
    let plan = id.to_owned();
    let footprint = repo
        .run(move |r| git::cleanup::remove(r, &plan))
        .await
        .map_err(|e| format!("cannot remove what plan {id} keeps: {e}"))?;
    if let Ok(mut plan) = store.load_plan(id) {
        plan.reclaimed_at = Some(crate::team::now());
        plan.revision += 1;
        if let Err(err) = store.save_plan(&plan) {
            tracing::warn!("cannot record that plan {id} was reclaimed: {err}");
        }
    }
    if !footprint.is_empty() {
        store.journal(&JournalEntry::new(id, "reclaimed").reason(format!(
            "{} branches, {} worktrees ({}), snapshot {}; about {} of objects now unreferenced",
            footprint.branches.len(),
            footprint.worktrees.len(),
            git::cleanup::human_bytes(footprint.worktree_bytes),
            if footprint.snapshot.is_some() {
                "removed"
            } else {
                "already gone"
            },
            git::cleanup::human_bytes(footprint.object_bytes),
        )));
    }
    Ok(footprint)
}

/// Deletes the snapshot refs of finished plans that last changed more than `SNAPSHOT_RETENTION`
/// ago, and of no plan at all after `ORPHAN_GRACE`: snapshots hold the user's untracked files,
/// which would otherwise stay in the repository for good. Run at every start.
pub async fn expire_snapshots(repo: &GitRepo, store: &Store) {
    let snapshots = match repo.run(git::cleanup::snapshots).await {
        Ok(snapshots) => snapshots,
        Err(err) => {
            tracing::warn!("cannot list snapshots: {err}");
            return;
        }
    };
    let plans: BTreeMap<String, Plan> = store
        .plans()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let expired: Vec<String> = snapshots
        .into_iter()
        .filter(|(id, _)| crate::team::is_plan_id(id))
        .filter(|(id, time)| match plans.get(id) {
            Some(plan) => {
                plan.status.is_finished()
                    && crate::team::parse_time(&plan.updated_at)
                        .is_some_and(|t| git::cleanup::age_of(t) > SNAPSHOT_RETENTION)
            }
            None => !store.has_plan_file(id) && git::cleanup::age_of(*time) > ORPHAN_GRACE,
        })
        .map(|(id, _)| id)
        .collect();
    if expired.is_empty() {
        return;
    }
    let ids = expired.clone();
    let deleted = repo
        .run(move |r| {
            for id in &ids {
                git::cleanup::delete_snapshot(r, id)?;
            }
            Ok(())
        })
        .await;
    match deleted {
        Ok(()) => {
            for id in expired {
                store.journal(&JournalEntry::new(&id, "snapshot_expired"));
            }
        }
        Err(err) => tracing::warn!("cannot expire snapshots: {err}"),
    }
}

/// "3 days", "5 hours", "12 minutes".
fn human_duration(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s => format!("{} minutes", s / 60),
    }
}
