//! What pitcrew keeps in a repository per plan (task branches, worktrees, the snapshot ref),
//! how much disk it holds, and removing it.
//!
//! A plan's objects live in the repository's object database; removing its refs makes the
//! objects only they kept unreferenced, and git's own `gc` frees them (after
//! `gc.pruneExpire`, two weeks by default). pitcrew never deletes objects itself: the user's
//! index, stash or reflog may share them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use git2::{Oid, Repository};
use serde::Serialize;

use super::worktree::{self, worktrees_dir};
use super::{Context, Result, snapshot};

/// What one plan keeps in the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Its branches, without `refs/heads/`.
    pub branches: Vec<String>,
    /// Its snapshot ref, if it still has one.
    pub snapshot: Option<String>,
    /// Its task worktrees' directories.
    pub worktrees: Vec<PathBuf>,
    /// Bytes of files in those worktrees.
    pub worktree_bytes: u64,
    /// Bytes (uncompressed) of the files its commits added that no other ref keeps: what a
    /// `git gc` frees once the refs are gone.
    pub object_bytes: u64,
    /// When its newest ref's commit was made (seconds since the epoch), for age limits on
    /// state no plan file describes.
    pub newest_commit: i64,
}

impl Footprint {
    pub fn bytes(&self) -> u64 {
        self.worktree_bytes + self.object_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.branches.is_empty() && self.snapshot.is_none() && self.worktrees.is_empty()
    }
}

/// Every plan that has state in the repository, by plan id.
pub fn footprints(repo: &Repository) -> Result<BTreeMap<String, Footprint>> {
    let mut plans: BTreeMap<String, Footprint> = BTreeMap::new();
    // Each plan's refs (full names) and their commits.
    let mut tips: BTreeMap<String, Vec<(String, Oid)>> = BTreeMap::new();
    let references = repo.references().context(|| "listing refs".into())?;
    for reference in references.flatten() {
        let Ok(name) = reference.name().map(str::to_owned) else {
            continue;
        };
        let Some(target) = reference.target() else {
            continue;
        };
        if let Some(rest) = name.strip_prefix("refs/heads/pitcrew/") {
            let plan = rest.split('/').next().unwrap_or(rest).to_owned();
            let entry = plans.entry(plan.clone()).or_default();
            entry.branches.push(name["refs/heads/".len()..].to_owned());
            tips.entry(plan).or_default().push((name.clone(), target));
        } else if let Some(plan) = name.strip_prefix("refs/pitcrew/snapshots/") {
            plans.entry(plan.to_owned()).or_default().snapshot = Some(name.clone());
            tips.entry(plan.to_owned())
                .or_default()
                .push((name.clone(), target));
        }
    }
    if let Ok(entries) = std::fs::read_dir(worktrees_dir(repo)) {
        for entry in entries.flatten() {
            let directory = entry.file_name().to_string_lossy().into_owned();
            let plan = directory.split('-').next().unwrap_or(&directory).to_owned();
            let footprint = plans.entry(plan).or_default();
            footprint.worktree_bytes += directory_bytes(&entry.path());
            footprint.worktrees.push(entry.path());
        }
    }
    for (plan, footprint) in &mut plans {
        let own = tips.get(plan).cloned().unwrap_or_default();
        footprint.object_bytes = exclusive_bytes(repo, &own)?;
        footprint.newest_commit = own
            .iter()
            .filter_map(|(_, id)| repo.find_commit(*id).ok())
            .map(|c| c.time().seconds())
            .max()
            .unwrap_or(0);
        footprint.branches.sort();
    }
    Ok(plans)
}

/// Removes everything `plan` keeps: its worktrees, branches and snapshot ref. Returns what was
/// there. The caller makes sure no process runs the plan.
pub fn remove(repo: &Repository, plan: &str) -> Result<Footprint> {
    super::check_id(plan)?;
    let mut all = footprints(repo)?;
    let Some(footprint) = all.remove(plan) else {
        return Ok(Footprint::default());
    };
    for path in &footprint.worktrees {
        let task = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(plan))
            .and_then(|n| n.strip_prefix('-'));
        match task {
            Some(task) => worktree::remove(repo, plan, task, false)?,
            None => {
                std::fs::remove_dir_all(path).context(|| format!("removing {}", path.display()))?
            }
        }
    }
    for branch in &footprint.branches {
        if let Ok(mut found) = repo.find_branch(branch, git2::BranchType::Local) {
            found
                .delete()
                .context(|| format!("deleting branch {branch}"))?;
        }
    }
    if footprint.snapshot.is_some() {
        delete_snapshot(repo, plan)?;
    }
    Ok(footprint)
}

/// Every snapshot ref, as (plan id, seconds since the epoch of its commit): cheap, for expiry.
pub fn snapshots(repo: &Repository) -> Result<Vec<(String, i64)>> {
    let references = repo
        .references_glob("refs/pitcrew/snapshots/*")
        .context(|| "listing snapshots".into())?;
    Ok(references
        .flatten()
        .filter_map(|reference| {
            let plan = reference
                .name()
                .ok()?
                .strip_prefix("refs/pitcrew/snapshots/")?
                .to_owned();
            let time = reference.peel_to_commit().ok()?.time().seconds();
            Some((plan, time))
        })
        .collect())
}

/// Deletes the snapshot ref of `plan`, leaving its branches.
pub fn delete_snapshot(repo: &Repository, plan: &str) -> Result<()> {
    let name = snapshot::reference_name(plan);
    if let Ok(mut reference) = repo.find_reference(&name) {
        reference.delete().context(|| format!("deleting {name}"))?;
    }
    Ok(())
}

/// Bytes of the blobs that the commits reachable from the refs `own`, and from no other ref,
/// added.
fn exclusive_bytes(repo: &Repository, own: &[(String, Oid)]) -> Result<u64> {
    if own.is_empty() {
        return Ok(0);
    }
    let mut walk = repo.revwalk().context(|| "walking history".into())?;
    for (_, tip) in own {
        walk.push(*tip).context(|| "walking history".into())?;
    }
    // Everything the user's refs, and other plans' refs, keep is not this plan's to free.
    let references = repo.references().context(|| "listing refs".into())?;
    for reference in references.flatten() {
        let mine = reference
            .name()
            .is_ok_and(|name| own.iter().any(|(n, _)| n == name));
        if !mine && let Ok(commit) = reference.peel_to_commit() {
            walk.hide(commit.id())
                .context(|| "walking history".into())?;
        }
    }
    if let Ok(head) = repo.head()
        && let Ok(commit) = head.peel_to_commit()
    {
        walk.hide(commit.id())
            .context(|| "walking history".into())?;
    }
    let odb = repo
        .odb()
        .context(|| "opening the object database".into())?;
    let mut seen = HashSet::new();
    let mut bytes = 0;
    for commit in walk.flatten() {
        let Ok(commit) = repo.find_commit(commit) else {
            continue;
        };
        let Ok(tree) = commit.tree() else { continue };
        let parent_tree = commit.parent(0).ok().and_then(|p| p.tree().ok());
        let Ok(diff) = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None) else {
            continue;
        };
        for delta in diff.deltas() {
            let id = delta.new_file().id();
            if !id.is_zero()
                && seen.insert(id)
                && let Ok((size, _)) = odb.read_header(id)
            {
                bytes += size as u64;
            }
        }
    }
    Ok(bytes)
}

/// Bytes of the files under `path` (links not followed).
fn directory_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// How long ago `seconds` (since the epoch) was.
pub fn age_of(seconds: i64) -> Duration {
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64);
    SystemTime::now().duration_since(then).unwrap_or_default()
}

/// Bytes in words: `20.5 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
