//! The team as a long-lived service, for the language server: plans started from the editor
//! (a delegated selection, a review, a goal), their latest state for requests that must answer
//! at once, the recent activity of each task, and commands to running plans.
//!
//! Nothing here knows LSP. State a request reads (plan snapshots, activity) is kept in memory,
//! updated by the orchestrators as they go, so that answering never touches the disk or git.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

use super::events::Event;
use super::orchestrator::{self, Command, TeamContext};
use super::plan::{Plan, PlanStatus, Task};
use super::registry::PlanRegistry;
use super::store::JournalEntry;
use super::store::Store;
use crate::config::Config;
use crate::model::Models;

/// Activity lines kept per task for `pitcrew/task`.
const ACTIVITY_LINES: usize = 50;

/// A task reference as the editor gives it: `<plan>/<task>`, or a task id unique among plans.
pub fn parse_task_ref(reference: &str) -> (Option<&str>, &str) {
    match reference.split_once('/') {
        Some((plan, task)) => (Some(plan), task),
        None => (None, reference),
    }
}

/// Running plans, their latest state, and their recent activity.
pub struct TeamService {
    /// What new plans run with; replaced when the configuration changes (running plans keep
    /// the one they started with).
    context: Mutex<TeamContext>,
    events: broadcast::Sender<Event>,
    registry: Arc<PlanRegistry>,
    store: Arc<Store>,
    running: Mutex<HashMap<String, mpsc::Sender<Command>>>,
    activity: Mutex<HashMap<(String, String), VecDeque<String>>>,
}

impl TeamService {
    /// Starts the service; it listens to the team's events to keep activity logs.
    pub fn new(context: TeamContext) -> Arc<Self> {
        let service = Arc::new(Self {
            events: context.events.clone(),
            registry: context.registry.clone(),
            store: context.store.clone(),
            context: Mutex::new(context),
            running: Mutex::new(HashMap::new()),
            activity: Mutex::new(HashMap::new()),
        });
        let listener = Arc::downgrade(&service);
        let mut events = service.events.subscribe();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(service) = listener.upgrade() else {
                    return;
                };
                service.record(&event);
            }
        });
        service
    }

    /// The context new plans start with.
    pub fn context(&self) -> TeamContext {
        self.context
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// New plans use `config` and `models` from now on.
    pub fn reconfigure(&self, config: Arc<Config>, models: Arc<Models>) {
        let mut context = self.context.lock().unwrap_or_else(|p| p.into_inner());
        context.config = config;
        context.models = models;
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publishes an event, as the orchestrators do.
    pub fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn registry(&self) -> &Arc<PlanRegistry> {
        &self.registry
    }

    /// Loads the plans on disk into the registry (blocking reads: call off the async workers).
    pub fn load_plans(&self) -> Vec<Plan> {
        let plans = self.store.plans();
        for plan in &plans {
            if self.registry.get(&plan.id).is_none() {
                self.registry.update(plan);
            }
        }
        plans
    }

    /// Runs `plan` in the background (resuming it if it was persisted before).
    pub fn start(self: &Arc<Self>, plan: Plan) -> Result<(), String> {
        if plan.reclaimed_at.is_some() {
            return Err(format!(
                "plan {} was cleaned up (discarded, or `pitcrew clean`): its branches and \
                 worktrees are gone; start the work again as a new plan",
                plan.id
            ));
        }
        let lock = self
            .store
            .lock_plan(&plan.id)
            .map_err(|e| format!("cannot lock plan {}: {e}", plan.id))?
            .ok_or_else(|| format!("plan {} is being run by another pitcrew process", plan.id))?;
        let (commands, receiver) = mpsc::channel(32);
        self.lock_running().insert(plan.id.clone(), commands);
        self.registry.update(&plan);
        let service = self.clone();
        let context = self.context();
        tokio::spawn(async move {
            let id = plan.id.clone();
            let finished = orchestrator::run(context, plan, receiver).await;
            drop(lock);
            // The orchestrator saved its last state; this only fills in a registry that
            // missed it, never undoing a later save.
            service.registry.update(&finished);
            service.lock_running().remove(&id);
            // Views show whether a plan is running: tell them it no longer is (the last
            // status change came while it still was).
            let status = service
                .registry
                .get(&id)
                .map_or(finished.status, |p| p.status);
            let _ = service.events.send(Event::PlanChanged { plan: id, status });
        });
        Ok(())
    }

    /// Sends a command to a running plan; a finished plan is resumed first for `Retry` and
    /// `Answer`. Never waits: a plan too busy to take the command says so.
    pub fn command(self: &Arc<Self>, plan: &str, command: Command) -> Result<(), String> {
        let sender = self.lock_running().get(plan).cloned();
        let sender = match sender {
            Some(sender) => sender,
            None => {
                let stored = self
                    .registry
                    .get(plan)
                    .ok_or_else(|| format!("no plan {plan}"))?;
                match &command {
                    // An answer to a question the plan no longer asks (answered elsewhere, or
                    // the plan ended): nothing to resume.
                    Command::Answer { escalation, .. }
                        if stored.escalation.as_ref().map(|e| &e.id) != Some(escalation) =>
                    {
                        return Err(format!("plan {plan} is not asking that question any more"));
                    }
                    Command::Retry(_) | Command::Answer { .. } => {
                        self.start(stored)?;
                        self.lock_running()
                            .get(plan)
                            .cloned()
                            .ok_or_else(|| format!("plan {plan} did not start"))?
                    }
                    Command::Cancel | Command::CancelTask(_) => {
                        return Err(format!("plan {plan} is not running"));
                    }
                }
            }
        };
        sender.try_send(command).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => {
                format!("plan {plan} is busy with earlier commands; try again in a moment")
            }
            mpsc::error::TrySendError::Closed(_) => format!("plan {plan} has just finished"),
        })
    }

    /// The plans running now.
    pub fn running_plans(&self) -> std::collections::HashSet<String> {
        self.lock_running().keys().cloned().collect()
    }

    pub fn is_running(&self, plan: &str) -> bool {
        self.lock_running().contains_key(plan)
    }

    pub fn plan(&self, id: &str) -> Option<Plan> {
        self.registry.get(id)
    }

    pub fn latest_plan(&self) -> Option<Plan> {
        self.registry.latest()
    }

    pub fn plans(&self) -> Vec<Plan> {
        self.registry.all()
    }

    /// Finds a task by `<plan>/<task>` or by a task id unique among plans.
    /// A plan and, optionally, one of its tasks: by task reference (`<plan>/<task>`, or a
    /// task id unique among plans) when given, else by plan id. What every face's
    /// `{planId}` / `{taskId}` arguments name.
    pub fn resolve(
        &self,
        plan: Option<&str>,
        task: Option<&str>,
    ) -> Result<(Plan, Option<Task>), String> {
        match (task, plan) {
            (Some(task), _) => self.find_task(task).map(|(p, t)| (p, Some(t))),
            (None, Some(plan)) => self
                .plan(plan)
                .map(|p| (p, None))
                .ok_or_else(|| format!("no plan {plan}")),
            (None, None) => Err("give a taskId or a planId".into()),
        }
    }

    pub fn find_task(&self, reference: &str) -> Result<(Plan, Task), String> {
        let (plan_id, task_id) = parse_task_ref(reference);
        let candidates: Vec<(Plan, Task)> = self
            .plans()
            .into_iter()
            .filter(|p| plan_id.is_none_or(|id| p.id == id))
            .filter_map(|p| p.task(task_id).cloned().map(|t| (p, t)))
            .collect();
        if candidates.len() > 1 {
            return Err(format!(
                "task id {task_id} is in several plans; say which: {}",
                candidates
                    .iter()
                    .map(|(p, _)| format!("{}/{task_id}", p.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        candidates
            .into_iter()
            .next()
            .ok_or_else(|| format!("no task {reference}"))
    }

    /// The recent activity of a task, oldest first.
    pub fn activity(&self, plan: &str, task: &str) -> Vec<String> {
        self.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(plan.to_owned(), task.to_owned()))
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records that a plan was applied to the user's files (blocking write: call off the
    /// async workers). Only results are marked: tasks that failed or were cancelled stay so.
    pub fn mark_applied(&self, plan_id: &str, tasks: &[String], how: &str) {
        let tasks = tasks.to_vec();
        self.modify(
            plan_id,
            |plan| plan.mark_applied(&tasks),
            JournalEntry::new(plan_id, "applied").reason(how.to_owned()),
        );
    }

    /// Records that the user discarded a plan (blocking: call off the async workers).
    pub fn mark_discarded(&self, plan_id: &str) {
        self.modify(
            plan_id,
            |plan| {
                for task in &mut plan.tasks {
                    if !task.status.is_terminal() || task.status == super::plan::TaskStatus::Ready {
                        task.status = super::plan::TaskStatus::Cancelled;
                    }
                }
                plan.status = PlanStatus::Cancelled;
                plan.outcome = Some("discarded by the user".into());
                plan.escalation = None;
            },
            JournalEntry::new(plan_id, "discarded"),
        );
    }

    /// Changes a plan outside its orchestrator: `change` is applied to the latest revision,
    /// again if another save came first, so that the user's action is never lost.
    pub fn modify(&self, plan_id: &str, change: impl Fn(&mut Plan), entry: JournalEntry) {
        for _ in 0..8 {
            let Some(mut plan) = self.registry.get(plan_id) else {
                return;
            };
            change(&mut plan);
            if self.try_save(&plan) {
                self.after_save(&plan, entry);
                return;
            }
        }
        tracing::error!("plan {plan_id} keeps changing; the user's change was not recorded");
    }

    /// Records a change made outside an orchestrator (blocking write: call off the async
    /// workers), unless the plan was saved meanwhile: then it is dropped, with a warning (use
    /// `modify` for changes that must not be lost).
    pub fn save(&self, plan: &Plan, entry: JournalEntry) {
        if self.try_save(plan) {
            self.after_save(plan, entry);
        } else {
            tracing::warn!(
                "plan {} changed meanwhile; not saving an older revision",
                plan.id
            );
        }
    }

    /// Saves `plan` as the revision after its own, if that is still the latest.
    fn try_save(&self, plan: &Plan) -> bool {
        let mut next = plan.clone();
        let base = next.revision;
        next.revision += 1;
        next.updated_at = super::now();
        if !self.registry.save_over(&next, base) {
            return false;
        }
        if let Err(err) = self.store.save_plan(&next) {
            tracing::error!("cannot save plan {}: {err}", next.id);
        }
        true
    }

    fn after_save(&self, plan: &Plan, entry: JournalEntry) {
        self.store.journal(&entry);
        let _ = self.events.send(Event::PlanChanged {
            plan: plan.id.clone(),
            status: plan.status,
        });
    }

    fn record(&self, event: &Event) {
        let (plan, task, line) = match event {
            Event::AgentStarted { plan, task, role } => {
                (plan, task, format!("{} {role} started", super::now()))
            }
            Event::Activity {
                plan,
                task,
                role,
                message,
                tokens,
                ..
            } => (
                plan,
                task,
                format!("{} {role}: {message} ({tokens} tokens)", super::now()),
            ),
            Event::AgentFinished {
                plan,
                task,
                role,
                outcome,
            } => (
                plan,
                task,
                format!("{} {role} finished: {outcome}", super::now()),
            ),
            Event::TaskChanged {
                plan,
                task,
                status,
                reason,
                ..
            } => (
                plan,
                task,
                format!(
                    "{} {}{}",
                    super::now(),
                    status.as_str(),
                    reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            ),
            _ => return,
        };
        let mut activity = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        let lines = activity.entry((plan.clone(), task.clone())).or_default();
        lines.push_back(line);
        while lines.len() > ACTIVITY_LINES {
            lines.pop_front();
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Command>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::PlanRegistry;
    use crate::team::plan::{Plan, PlanStatus};

    #[test]
    fn two_saves_from_the_same_revision_cannot_undo_each_other() {
        let registry = PlanRegistry::default();
        let mut ready = Plan::new("p1".into(), "goal".into(), "base".into());
        ready.status = PlanStatus::Ready;
        ready.revision = 3;
        assert!(registry.update(&ready));

        // The user applies the ready plan: a save from revision 3.
        let mut applied = ready.clone();
        applied.status = PlanStatus::Applied;
        applied.revision = 4;
        assert!(registry.save_over(&applied, 3));

        // The orchestrator, finishing up, saves from the same revision 3: refused.
        let mut tidied = ready.clone();
        tidied.revision = 4;
        assert!(!registry.save_over(&tidied, 3));
        // And its final record, at the revision it had, does not replace the newer one.
        assert!(!registry.update(&Plan {
            revision: 3,
            ..ready
        }));
        assert_eq!(registry.get("p1").unwrap().status, PlanStatus::Applied);
    }
}
