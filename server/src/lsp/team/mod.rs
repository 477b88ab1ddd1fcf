//! The team behind the editor: started for the workspace's git repository once the
//! configuration loads, and the glue between it and LSP. Editor requests become plans and
//! commands (`commands`, `actions`); the team's events become diagnostics, progress, questions
//! and plan notifications (`bridge`); results come back as workspace edits (`apply`).

pub mod actions;
pub mod apply;
mod bridge;
pub mod commands;
mod placement;
pub mod publish;
pub mod views;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::broadcast;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{MessageType, Uri};

use super::state::GlobalState;
use crate::config::Config;
use crate::git::{self, GitRepo};
use crate::model::Models;
use crate::team::{Store, TeamContext, TeamService};
use crate::text::DocumentStore;

/// The team of one workspace.
pub struct Team {
    pub service: Arc<TeamService>,
    pub repo: GitRepo,
    /// Files touched by each task's diff, by (plan, task), with the diff's length when read.
    touched: Mutex<TouchedCache>,
    /// Plans registered but not started yet (their snapshot is being taken), and whether the
    /// user cancelled or discarded them meanwhile.
    launching: Mutex<HashMap<String, bool>>,
    /// Plans whose result is being applied now (one edit at a time per plan: a second would
    /// apply the same change twice to files that were not open).
    applying: Mutex<std::collections::HashSet<String>>,
}

/// By (plan, task): the length of the diff read, and the files it touches.
type TouchedCache = HashMap<(String, String), (usize, Vec<String>)>;

impl Team {
    /// Records that `plan` is being launched.
    pub fn launching(&self, plan: &str) {
        self.lock_launching().insert(plan.to_owned(), false);
    }

    /// Cancels `plan` if it is still being launched; false when it is not.
    pub fn cancel_launch(&self, plan: &str) -> bool {
        match self.lock_launching().get_mut(plan) {
            Some(cancelled) => {
                *cancelled = true;
                true
            }
            None => false,
        }
    }

    /// Whether the launch of `plan` was cancelled (`remove`: and it is over).
    pub fn launch_cancelled(&self, plan: &str, remove: bool) -> bool {
        let mut launching = self.lock_launching();
        let cancelled = launching.get(plan).copied().unwrap_or(false);
        if remove {
            launching.remove(plan);
        }
        cancelled
    }

    /// Marks `plan` as being applied; false when it already is.
    pub fn begin_applying(&self, plan: &str) -> bool {
        self.applying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plan.to_owned())
    }

    pub fn end_applying(&self, plan: &str) {
        self.applying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(plan);
    }

    fn lock_launching(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.launching.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The repository's working tree (the workspace folder may be below it).
    pub fn workdir(&self) -> &Path {
        self.repo.workdir()
    }

    pub fn store(&self) -> &Arc<Store> {
        self.service.store()
    }

    pub fn config(&self) -> Arc<Config> {
        self.service.context().config
    }

    /// The repository-relative path of a `file:` URI inside the working tree.
    pub fn path_of(&self, uri: &str) -> Option<String> {
        let uri: Uri = uri.parse().ok()?;
        let path = super::from_proto::file_path(&uri)?;
        git::relative_path(self.workdir(), &path)
    }

    /// The URI for `path`: the one the client uses if the document is open, else a `file:` URI.
    pub fn uri_of(&self, documents: &DocumentStore, path: &str) -> Option<String> {
        let full = git::apply::safe_join(self.workdir(), path)?;
        let open = documents.iter().find(|(uri, _)| {
            uri.parse::<Uri>()
                .ok()
                .and_then(|u| super::from_proto::file_path(&u))
                .is_some_and(|p| p == full)
        });
        match open {
            Some((uri, _)) => Some(uri.to_owned()),
            None => Uri::from_file_path(&full).map(|u| u.as_str().to_owned()),
        }
    }

    /// The files a task's reviewed diff touches (cached while the diff stays the same).
    pub fn touched_files(&self, plan: &str, task: &str, diff: &str) -> Vec<String> {
        let key = (plan.to_owned(), task.to_owned());
        let mut cache = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((len, files)) = cache.get(&key)
            && *len == diff.len()
        {
            return files.clone();
        }
        let files = diff_paths(diff);
        cache.insert(key, (diff.len(), files.clone()));
        files
    }

    /// Where dismissed findings are remembered.
    fn dismissed_path(&self) -> PathBuf {
        self.store().dir().join("dismissed-findings")
    }

    /// Remembers a dismissal across restarts (blocking: call off the async workers).
    pub fn remember_dismissed(&self, key: &str) {
        use std::io::Write;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dismissed_path())
            .and_then(|mut file| writeln!(file, "{key}"));
        if let Err(err) = written {
            tracing::warn!("cannot remember the dismissal of {key}: {err}");
        }
    }

    fn dismissed(&self) -> Vec<String> {
        std::fs::read_to_string(self.dismissed_path())
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// The paths a unified diff changes (`diff --git a/X b/Y` headers; both sides).
pub fn diff_paths(diff: &str) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for line in diff.lines() {
        let Some(rest) = line.strip_prefix("diff --git a/") else {
            continue;
        };
        // `a/X b/Y`: split at the last " b/" (paths with " b/" in them are rare enough).
        let (old, new) = match rest.rfind(" b/") {
            Some(at) => (&rest[..at], &rest[at + 3..]),
            None => (rest, rest),
        };
        for path in [old, new] {
            if !paths.iter().any(|p| p == path) {
                paths.push(path.to_owned());
            }
        }
    }
    paths
}

#[derive(Default)]
enum Slot {
    #[default]
    Starting,
    Ready(Arc<Team>),
    Unavailable(String),
}

/// The team's place in the server's state.
#[derive(Default)]
pub struct TeamState {
    slot: Mutex<Slot>,
    /// Progress tokens of running agents: token → (plan, task).
    progress: Mutex<HashMap<String, (String, String)>>,
    publisher: OnceLock<publish::Publisher>,
    /// A `configure` is under way; another asked for meanwhile runs after it.
    configuring: AtomicBool,
    configure_again: AtomicBool,
    /// Woken when the slot leaves `Starting`.
    settled: tokio::sync::Notify,
}

/// How long a request that arrives while the team starts waits for it.
pub const STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl TeamState {
    /// The team, or why there is none (for the user).
    pub fn get(&self) -> Result<Arc<Team>, String> {
        match &*self.lock_slot() {
            Slot::Ready(team) => Ok(team.clone()),
            Slot::Starting => Err(format!(
                "pitcrew has not finished starting after {} s (it loads the configuration once \
                 the editor sends `initialized`, then opens the repository); see its log",
                STARTUP_WAIT.as_secs()
            )),
            Slot::Unavailable(reason) => Err(reason.clone()),
        }
    }

    /// Waits (up to `limit`) until the team has started or is known to be unavailable, so a
    /// request sent right after `initialized` gets its real answer, not an empty one.
    pub async fn wait_started(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the slot is read, so a change in between is not missed.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if !matches!(*self.lock_slot(), Slot::Starting) {
                return;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
            }
        }
    }

    fn set_slot(&self, slot: Slot) {
        *self.lock_slot() = slot;
        self.settled.notify_waiters();
    }

    fn lock_slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn progress(&self) -> MutexGuard<'_, HashMap<String, (String, String)>> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for the diagnostics of `uri` to be sent again (coalesced, in order).
    pub fn republish(&self, uri: impl Into<String>) {
        if let Some(publisher) = self.publisher.get() {
            publisher.publish(uri.into());
        }
    }
}

/// Starts the team for the workspace, or gives running plans' successors the new
/// configuration. Called after every configuration load that succeeded. One at a time: a
/// reload that arrives while the team is starting (editors send `didChangeConfiguration`
/// right after `initialized`) reconfigures it once it is up, rather than starting a second.
pub async fn configure(state: Arc<GlobalState>, client: Client) {
    if state.team.configuring.swap(true, Ordering::SeqCst) {
        state.team.configure_again.store(true, Ordering::SeqCst);
        return;
    }
    loop {
        configure_once(state.clone(), client.clone()).await;
        state.team.configuring.store(false, Ordering::SeqCst);
        if !state.team.configure_again.swap(false, Ordering::SeqCst)
            || state.team.configuring.swap(true, Ordering::SeqCst)
        {
            return;
        }
    }
}

async fn configure_once(state: Arc<GlobalState>, client: Client) {
    let config = state.config_state().current.clone();
    state
        .team
        .publisher
        .get_or_init(|| publish::Publisher::start(Arc::downgrade(&state), client.clone()));
    let existing = match &*state.team.lock_slot() {
        Slot::Ready(team) => Some(team.clone()),
        _ => None,
    };
    if let Some(team) = existing {
        match Models::from_config(&config) {
            Ok(models) => {
                team.service.reconfigure(config, Arc::new(models));
                // Plans left interrupted while the configuration could not load resume now.
                let resume = {
                    let mut config_state = state.config_state();
                    let resume = config_state.deferred_resume && config_state.blocker().is_none();
                    if resume {
                        config_state.deferred_resume = false;
                    }
                    resume
                };
                if resume {
                    for plan in team.service.plans() {
                        if !plan.status.is_terminal()
                            && !plan.base.is_empty()
                            && !team.service.is_running(&plan.id)
                            && let Ok(()) = team.service.start(plan.clone())
                        {
                            tracing::info!("resumed plan {}", plan.id);
                        }
                    }
                }
            }
            Err(err) => {
                client
                    .show_message(
                        MessageType::ERROR,
                        format!("pitcrew: the models cannot be set up: {err}"),
                    )
                    .await;
            }
        }
        return;
    }
    let root = state.session().and_then(|s| s.root.clone());
    let opened = tokio::task::spawn_blocking({
        let config = config.clone();
        move || open(root.as_deref(), &config)
    })
    .await
    .unwrap_or_else(|err| Err(format!("pitcrew could not start the team: {err}")));
    let (repo, store, models) = match opened {
        Ok(opened) => opened,
        Err(reason) => {
            tracing::warn!("the team is not available: {reason}");
            state.team.set_slot(Slot::Unavailable(reason));
            return;
        }
    };
    let (events, _) = broadcast::channel(4096);
    let context = TeamContext {
        repo: repo.clone(),
        store,
        config,
        models: Arc::new(models),
        events,
        registry: Default::default(),
    };
    let team = Arc::new(Team {
        service: TeamService::new(context),
        repo,
        touched: Mutex::new(HashMap::new()),
        launching: Mutex::new(HashMap::new()),
        applying: Mutex::new(Default::default()),
    });
    // Listen before anything can happen.
    bridge::start(state.clone(), client.clone(), team.clone());
    // An apply a crash cut short is finished before the plans are read.
    for line in
        crate::team::housekeeping::finish_interrupted_applies(&team.repo, team.store()).await
    {
        tracing::warn!("{line}");
    }
    crate::team::housekeeping::expire_snapshots(&team.repo, team.store()).await;
    let loaded = tokio::task::spawn_blocking({
        let team = team.clone();
        move || {
            let plans = team.service.load_plans();
            (plans, team.dismissed())
        }
    })
    .await;
    let (plans, dismissed) = loaded.unwrap_or_default();
    state.findings().restore_dismissed(dismissed);
    // Repair what a crash left, of plans no other process is running.
    let store = team.store().clone();
    let recovered = team
        .repo
        .run(move |r| {
            git::worktree::recover_where(r, |plan| matches!(store.lock_plan(plan), Ok(Some(_))))
        })
        .await;
    if let Err(err) = recovered {
        tracing::warn!("recovery failed: {err}");
    }
    state.team.set_slot(Slot::Ready(team.clone()));
    if let Some(warning) = crate::team::sandbox_warning(&team.config()) {
        tracing::warn!("{warning}");
        let client = client.clone();
        tokio::spawn(async move { client.show_message(MessageType::WARNING, warning).await });
    }
    tracing::info!(
        "the team is ready in {} ({} plans)",
        team.workdir().display(),
        plans.len()
    );

    // Place the findings of earlier plans, then resume the unfinished ones.
    for plan in &plans {
        if !plan.base.is_empty() {
            for task in &plan.tasks {
                // Interrupted plans resume below: they count as at work.
                let at_work = !plan.status.is_terminal();
                if !task.findings.is_empty() && placement::findings_stand(plan, &task.id, at_work) {
                    let commit = if matches!(task.kind, crate::team::plan::TaskKind::Review { .. })
                    {
                        Some(plan.base.clone())
                    } else {
                        task.result.clone()
                    };
                    if let Some(commit) = commit {
                        placement::place(
                            &state,
                            &team,
                            &plan.id,
                            &task.id,
                            &commit,
                            task.findings.clone(),
                            // Findings on code in the user's files (applied, or reviewed in
                            // place) only where that code is still as reviewed; findings on
                            // a result not applied yet, near the lines it will replace.
                            if plan.status == crate::team::PlanStatus::Applied
                                || matches!(task.kind, crate::team::plan::TaskKind::Review { .. })
                            {
                                placement::Mode::Exact
                            } else {
                                placement::Mode::Near
                            },
                        )
                        .await;
                    }
                }
            }
        }
        if !plan.status.is_terminal() && !plan.base.is_empty() {
            // Not on defaults the user did not choose: it resumes once the configuration loads.
            let blocked = {
                let mut config_state = state.config_state();
                let blocker = config_state.blocker();
                config_state.deferred_resume |= blocker.is_some();
                blocker
            };
            if let Some(blocker) = blocked {
                tracing::info!("not resuming plan {} yet: {blocker}", plan.id);
                continue;
            }
            match team.service.start(plan.clone()) {
                Ok(()) => tracing::info!("resumed plan {}", plan.id),
                Err(err) => tracing::info!("not resuming plan {}: {err}", plan.id),
            }
        }
    }
}

/// Finds the repository, its state directory and the models (blocking).
fn open(root: Option<&Path>, config: &Config) -> Result<(GitRepo, Arc<Store>, Models), String> {
    let root = root.ok_or_else(|| {
        "pitcrew needs a workspace folder inside a git repository; open a folder".to_owned()
    })?;
    let repo = GitRepo::discover(root).map_err(|err| match err {
        git::GitError::NotARepository(_) => format!(
            "{} is not inside a git repository; pitcrew's team works in one (run `git init`)",
            root.display()
        ),
        other => format!("pitcrew's team cannot work here: {other}"),
    })?;
    let store = Store::open(repo.state_dir())
        .map_err(|e| format!("cannot open {}: {e}", repo.state_dir().display()))?;
    let models = Models::from_config(config)?;
    Ok((repo, Arc::new(store), models))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_a_diff() {
        let diff = "diff --git a/src/a.rs b/src/a.rs\nindex 1..2\n--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-x\n+y\ndiff --git a/old.txt b/new.txt\nsimilarity index 90%\n";
        assert_eq!(diff_paths(diff), ["src/a.rs", "old.txt", "new.txt"]);
    }
}
