//! The orchestrator: one task per plan that owns the plan's state, starts work as soon as it
//! can, and reacts to each result as it lands.
//!
//! Workers (the planner, implementers, reviewers, the integration test) run as spawned tasks and
//! report back through a channel, each report carrying the attempt it belongs to; a report from
//! a cancelled attempt is drained and ignored, and a task never restarts while an old attempt of
//! it is still winding down. The orchestrator alone changes the plan; it persists it after every
//! change (everything a restart needs is in it: where each task started, how it must restart,
//! what a budget stopped), journals what happened and publishes events.
//!
//! A task starts the moment its dependencies are integrated (up to `team.implementers` at once);
//! each result is reviewed as it lands and integrated as soon as it is approved. One task's
//! failure fails that task and what depends on it, never the others. A question for the user
//! (an escalation) stops what it concerns; a spent budget or deadline stops everything new until
//! it is answered.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, BudgetExceeded, Limits};
use super::events::Event;
use super::plan::{
    CheckResult, Choice, Escalation, Finding, FindingSource, Plan, PlanStatus, Restart, Spend,
    Task, TaskKind, TaskSpec, TaskStatus, Verdict,
};
use super::registry::PlanRegistry;
use super::store::{JournalEntry, Store};
use crate::agents::checks::{self, CheckRun};
use crate::agents::roles::{self, Handoff};
use crate::agents::runtime::{AgentContext, AgentError};
use crate::agents::sandbox::Sandbox;
use crate::agents::tools::{FixTask, RoleTools};
use crate::agents::workspace::Workspace;
use crate::config::{Config, Role};
use crate::git::{self, GitRepo};
use crate::model::Models;

/// Rounds of debugger fixes after a failing integration test before the plan escalates.
const MAX_FIX_ROUNDS: u32 = 2;
/// Worker keys that are not tasks.
const PLANNER: &str = "planner";
const VERIFY: &str = "verify";
/// A task's diff is kept for editors up to this size.
const MAX_DIFF_KEPT: usize = 200 * 1024;

/// What the orchestrator needs from the outside world.
#[derive(Clone)]
pub struct TeamContext {
    pub repo: GitRepo,
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub models: Arc<Models>,
    pub events: broadcast::Sender<Event>,
    /// The latest state of every plan, for requests that must answer without I/O.
    pub registry: Arc<PlanRegistry>,
}

/// What the user (or the editor) can ask of a running plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Cancel,
    CancelTask(String),
    Retry(String),
    Answer { escalation: String, choice: String },
}

/// A worker's report, with the attempt it belongs to.
struct Done {
    attempt: u64,
    outcome: Outcome,
}

enum Outcome {
    Planned(Result<Vec<TaskSpec>, AgentError>),
    Implemented {
        task: String,
        result: Result<Implemented, AgentError>,
    },
    Reviewed {
        task: String,
        result: Result<Reviewed, AgentError>,
    },
    Tested(Result<Tested, AgentError>),
}

struct Implemented {
    branch: String,
    commit: String,
    summary: String,
}

struct Reviewed {
    verdict: Verdict,
    findings: Vec<Finding>,
    checks: Vec<CheckResult>,
    diagnosis: Option<String>,
    diff: String,
    check_failed: bool,
    /// The commit the findings' lines refer to.
    commit: String,
}

struct Tested {
    check: Option<CheckResult>,
    /// The debugger's cause and fix tasks, or why it gave none.
    diagnosis: Option<Result<(String, Vec<FixTask>), String>>,
}

/// A spawned worker.
struct Worker {
    /// The task id, or `planner` / `verify`.
    key: String,
    cancel: CancellationToken,
    /// False once cancelled: its report will be ignored.
    live: bool,
}

/// Runs a plan to its end (or until cancelled), and returns it.
pub async fn run(context: TeamContext, plan: Plan, commands: mpsc::Receiver<Command>) -> Plan {
    Orchestrator::new(context, plan, commands).run().await
}

/// Runs only the planner: returns the plan with its tasks, not started (`pitcrew plan`).
pub async fn plan_only(
    context: TeamContext,
    plan: Plan,
    commands: mpsc::Receiver<Command>,
) -> Plan {
    let mut orchestrator = Orchestrator::new(context, plan, commands);
    orchestrator.stop_after_planning = true;
    orchestrator.run().await
}

struct Orchestrator {
    context: TeamContext,
    plan: Plan,
    budget: Arc<Budget>,
    commands: Option<mpsc::Receiver<Command>>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Budget crossings, reported by the agents that now wait for an answer.
    alerts: mpsc::UnboundedReceiver<BudgetExceeded>,
    workers: HashMap<u64, Worker>,
    next_attempt: u64,
    /// What each worker key has spent, shared with its agents.
    spend: HashMap<String, Arc<Mutex<Spend>>>,
    /// What of each key's spend is already in the plan's totals.
    absorbed: HashMap<String, Spend>,
    /// Tasks whose review must start (their result landed, or a restart interrupted it).
    review_queue: Vec<String>,
    deadline: Option<Instant>,
    conventions: String,
    stop_after_planning: bool,
    /// Where the plan's checks run.
    sandbox: Sandbox,
}

impl Orchestrator {
    fn new(context: TeamContext, plan: Plan, commands: mpsc::Receiver<Command>) -> Self {
        let budget = Arc::new(Budget::new(Limits::from_config(&context.config.team)));
        budget.seed(
            plan.spend,
            plan.tasks.iter().map(|t| (t.id.clone(), t.spend)),
            &plan.spend_by_role,
        );
        // The limits the user raised before (by answering "continue") stay raised.
        for _ in 0..plan.budget_raises {
            budget.raise();
        }
        let absorbed = plan.tasks.iter().map(|t| (t.id.clone(), t.spend)).collect();
        let deadline = context
            .config
            .team
            .timeout_s
            .map(|s| Instant::now() + Duration::from_secs(s));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (alerts_tx, alerts) = mpsc::unbounded_channel();
        budget.set_alerts(alerts_tx);
        let conventions = roles::conventions(context.repo.workdir());
        let sandbox = Sandbox::new(&context.config).for_workdir(context.repo.workdir());
        Self {
            sandbox,
            context,
            plan,
            budget,
            commands: Some(commands),
            done_tx,
            done_rx,
            alerts,
            workers: HashMap::new(),
            next_attempt: 0,
            spend: HashMap::new(),
            absorbed,
            review_queue: Vec::new(),
            deadline,
            conventions,
            stop_after_planning: false,
        }
    }

    async fn run(mut self) -> Plan {
        self.journal(
            JournalEntry::new(&self.plan.id, "plan_started").reason(self.plan.goal.clone()),
        );
        // Commands queued before the loop runs come first: an ended plan is started again
        // with the user's retry waiting, and the retry is what reopens it.
        self.take_queued_commands();
        // Checks run code the agents wrote: never without the sandbox the user expects.
        if !self.context.config.checks.is_empty()
            && let Err(reason) = self.sandbox.runner()
        {
            let reason = reason.to_owned();
            self.fail_plan(format!("the checks cannot run: {reason}"));
        } else {
            self.resume().await;
        }
        loop {
            loop {
                if self.stop_after_planning
                    && (!self.plan.tasks.is_empty() || self.plan.status.is_terminal())
                    && self.workers.is_empty()
                {
                    self.persist();
                    return self.plan;
                }
                self.advance().await;
                self.persist();
                if self.plan.status.is_terminal() && self.workers.is_empty() {
                    break;
                }
                let deadline = self.deadline;
                tokio::select! {
                    Some(done) = self.done_rx.recv() => self.on_done(done).await,
                    Some(exceeded) = self.alerts.recv() => self.on_budget(exceeded),
                    command = recv(&mut self.commands) => match command {
                        Some(command) => self.on_command(command),
                        None => {
                            // Nobody can answer any more: every question is answered "abort".
                            self.commands = None;
                            self.abort_all_questions();
                        }
                    },
                    () = sleep_until(deadline) => self.on_timeout(),
                }
            }
            self.finish().await;
            // A retry that came while the plan was finishing (the user saw it end) reopens it.
            self.take_queued_commands();
            if self.plan.status.is_terminal() {
                return self.plan;
            }
            self.resume().await;
        }
    }

    /// Handles the commands waiting in the channel, without waiting for more.
    fn take_queued_commands(&mut self) {
        let mut queued = Vec::new();
        if let Some(commands) = &mut self.commands {
            while let Ok(command) = commands.try_recv() {
                queued.push(command);
            }
        }
        for command in queued {
            self.on_command(command);
        }
    }

    // ---- Resuming -------------------------------------------------------------------------

    /// Brings a plan loaded from disk back to a state the loop can continue from.
    async fn resume(&mut self) {
        if self.plan.status.is_terminal() {
            return;
        }
        let integration = self.plan.integration_branch.clone();
        let Ok(base) = git2::Oid::from_str(&self.plan.base) else {
            self.fail_plan(format!(
                "the plan's base {:?} is not a commit",
                self.plan.base
            ));
            return;
        };
        // The integration branch starts at the snapshot (a no-op when it exists).
        let created = self
            .context
            .repo
            .run(move |repo| {
                git::merge::merge_into(repo, &integration, base, "pitcrew: start integration")
            })
            .await;
        if let Err(err) = created {
            self.fail_plan(format!("cannot create the integration branch: {err}"));
            return;
        }
        if self.plan.status == PlanStatus::Testing {
            self.plan.status = PlanStatus::Running;
        }
        for id in self.task_ids() {
            let Some(task) = self.plan.task(&id).cloned() else {
                continue;
            };
            match task.status {
                TaskStatus::Running => {
                    if let Some(t) = self.plan.task_mut(&id) {
                        t.restart.get_or_insert(Restart::AtHead);
                    }
                    self.set_status(
                        &id,
                        TaskStatus::Pending,
                        Some("resumed after a restart".into()),
                    );
                }
                TaskStatus::ChangesRequested => self.set_status(&id, TaskStatus::Pending, None),
                TaskStatus::Reviewing => self.review_queue.push(id.clone()),
                TaskStatus::Integrating => {
                    let resolve = task
                        .resolving
                        .as_deref()
                        .and_then(|r| self.plan.task(r))
                        .map(|r| r.status);
                    match resolve {
                        Some(status) if status.is_integrated() => {
                            self.set_status(
                                &id,
                                TaskStatus::Ready,
                                Some("integrated through its resolve task".into()),
                            );
                        }
                        Some(TaskStatus::Failed | TaskStatus::Cancelled) => {
                            self.fail_task(&id, "its conflict could not be resolved".into());
                        }
                        Some(_) => {} // the resolve task is still on it
                        None => self.set_status(
                            &id,
                            TaskStatus::Approved,
                            Some("merge interrupted; merging again".into()),
                        ),
                    }
                }
                _ => {}
            }
        }
        if let Some(escalation) = self.plan.escalation.clone() {
            let _ = self.context.events.send(Event::Escalated {
                plan: self.plan.id.clone(),
                escalation,
            });
        }
    }

    // ---- Starting work --------------------------------------------------------------------

    /// Starts everything that can start, and integrates everything that can be integrated.
    async fn advance(&mut self) {
        if self.plan.status.is_terminal() {
            return;
        }
        let paused = self.paused();
        if self.plan.status == PlanStatus::Planning {
            if self.plan.preplanned || !self.plan.tasks.is_empty() {
                self.set_plan_status(PlanStatus::Running);
            } else {
                if !paused && !self.has_questions() && !self.has_worker(PLANNER) {
                    self.start_planner();
                }
                return;
            }
        }
        if self.plan.status == PlanStatus::Testing || paused {
            return;
        }

        for id in std::mem::take(&mut self.review_queue) {
            if self.plan.task(&id).map(|t| t.status) == Some(TaskStatus::Reviewing)
                && !self.has_worker(&id)
            {
                self.start_review(&id);
            } else if self.has_worker(&id) {
                self.review_queue.push(id); // an old attempt is still winding down
            }
        }

        // Integrate approved tasks, in dependency order, in one pass over the repository.
        let approved: Vec<String> = self
            .plan
            .topological_order()
            .into_iter()
            .filter(|id| self.plan.task(id).map(|t| t.status) == Some(TaskStatus::Approved))
            .collect();
        if !approved.is_empty() {
            self.integrate(approved).await;
        }

        // Block what depends on failures; start what is ready.
        let limit = self.context.config.team.implementers as usize;
        for id in self.plan.topological_order() {
            let Some(task) = self.plan.task(&id).cloned() else {
                continue;
            };
            if task.status != TaskStatus::Pending || self.has_worker(&id) {
                continue;
            }
            if let Some(blocker) = task.depends_on.iter().find(|d| self.is_lost(d)) {
                let reason = format!("blocked: it depends on {blocker}, which did not succeed");
                self.set_status(&id, TaskStatus::Cancelled, Some(reason));
                continue;
            }
            let ready = task
                .depends_on
                .iter()
                .all(|d| self.plan.task(d).is_some_and(|t| t.status.is_integrated()));
            if !ready {
                continue;
            }
            if matches!(task.kind, TaskKind::Review { .. }) {
                self.set_status(&id, TaskStatus::Reviewing, None);
                self.start_review(&id);
            } else if self.running_implementers() < limit {
                self.start_implementer(&id).await;
            }
        }

        // Everything settled: test the integrated result, or end.
        let settled = self.plan.tasks.iter().all(|t| t.status.is_terminal())
            && self.workers.is_empty()
            && !self.has_questions();
        if settled && self.plan.status == PlanStatus::Running {
            if self.plan.tasks.iter().all(|t| t.status.is_integrated()) {
                if self.plan.is_review() {
                    self.plan.outcome = Some("Reviewed.".into());
                    self.set_plan_status(PlanStatus::Ready);
                } else {
                    self.start_integration_test();
                }
            } else {
                let failed: Vec<String> = self
                    .plan
                    .tasks
                    .iter()
                    .filter(|t| !t.status.is_integrated())
                    .map(|t| match t.error.as_deref().map(str::trim) {
                        // The cause, so the message a user sees can be acted on.
                        Some(error) if !error.is_empty() => {
                            format!("{} ({}: {})", t.id, t.status.as_str(), first_line(error))
                        }
                        _ => format!("{} ({})", t.id, t.status.as_str()),
                    })
                    .collect();
                let reason = format!("not every task succeeded: {}", failed.join(", "));
                self.journal(
                    JournalEntry::new(&self.plan.id, "plan_failed").reason(reason.clone()),
                );
                self.plan.outcome = Some(reason);
                // A plan that ended on a question the user answered "abort" escalated.
                let status = if self
                    .plan
                    .tasks
                    .iter()
                    .any(|t| t.status == TaskStatus::Escalated)
                {
                    PlanStatus::Escalated
                } else {
                    PlanStatus::Failed
                };
                self.set_plan_status(status);
            }
        }
    }

    /// A dependency that will not come back: failed, cancelled, or escalated and abandoned.
    fn is_lost(&self, id: &str) -> bool {
        self.plan.task(id).is_some_and(|t| match t.status {
            TaskStatus::Failed | TaskStatus::Cancelled => true,
            TaskStatus::Escalated => !self.awaiting_answer(id),
            _ => false,
        })
    }

    fn running_implementers(&self) -> usize {
        self.plan
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Running)
            .count()
    }

    fn has_worker(&self, key: &str) -> bool {
        self.workers.values().any(|w| w.key == key)
    }

    fn task_ids(&self) -> Vec<String> {
        self.plan.tasks.iter().map(|t| t.id.clone()).collect()
    }

    /// Spawns `work` as the worker for `key`, cancelled through `cancel` (the token its agents
    /// and checks use); a panic becomes `failed` rather than a hang.
    fn spawn<F>(
        &mut self,
        key: &str,
        cancel: CancellationToken,
        work: F,
        failed: impl FnOnce(AgentError) -> Outcome + Send + 'static,
    ) where
        F: Future<Output = Outcome> + Send + 'static,
    {
        self.next_attempt += 1;
        let attempt = self.next_attempt;
        self.workers.insert(
            attempt,
            Worker {
                key: key.to_owned(),
                cancel,
                live: true,
            },
        );
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let outcome = match AssertUnwindSafe(work).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => failed(AgentError::Setup(
                    "the worker crashed (a bug in pitcrew)".into(),
                )),
            };
            let _ = done.send(Done { attempt, outcome });
        });
    }

    /// Cancels the live worker of `key`; its report will be drained and ignored.
    fn cancel_worker(&mut self, key: &str) {
        for worker in self.workers.values_mut().filter(|w| w.key == key && w.live) {
            worker.live = false;
            worker.cancel.cancel();
        }
    }

    fn cancel_all_workers(&mut self) {
        for worker in self.workers.values_mut() {
            worker.live = false;
            worker.cancel.cancel();
        }
    }

    fn agent_context(
        &mut self,
        key: &str,
        role: Role,
        cancel: CancellationToken,
    ) -> Option<AgentContext> {
        let model = self.context.models.for_role(role)?;
        let spend = self
            .spend
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(
                    self.plan.task(key).map(|t| t.spend).unwrap_or_default(),
                ))
            })
            .clone();
        Some(AgentContext {
            plan: self.plan.id.clone(),
            task: key.to_owned(),
            role,
            model,
            budget: self.budget.clone(),
            store: self.context.store.clone(),
            events: self.context.events.clone(),
            cancel,
            max_turns: self.context.config.team.max_turns,
            spend,
        })
    }

    /// A factory for role tools that workers can call.
    fn tools_factory(
        &self,
    ) -> impl Fn(Role, &std::path::Path, CancellationToken) -> Result<RoleTools, AgentError>
    + Send
    + Sync
    + 'static {
        let config = self.context.config.clone();
        let sandbox = self.sandbox.clone();
        move |role, root, cancel| {
            let workspace = Workspace::new(root, config.context.clone())
                .map_err(|e| AgentError::Setup(format!("cannot open the worktree: {e}")))?;
            Ok(RoleTools::new(
                role,
                workspace,
                config.checks.clone(),
                output_cap(&config),
                sandbox.clone(),
                cancel,
                config.team.max_tasks,
            ))
        }
    }

    fn start_planner(&mut self) {
        let token = CancellationToken::new();
        let Some(agent) = self.agent_context(PLANNER, Role::Planner, token.clone()) else {
            self.fail_plan("no model is configured for the planner".into());
            return;
        };
        self.emit_agent_started(PLANNER, Role::Planner);
        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let base = self.plan.base.clone();
        let goal = self.plan.goal.clone();
        let conventions = self.conventions.clone();
        let tools = self.tools_factory();
        let work = async move {
            let result = async {
                let base =
                    git2::Oid::from_str(&base).map_err(|e| AgentError::Setup(e.to_string()))?;
                let worktree = repo
                    .ensure_worktree(&plan_id, PLANNER, base)
                    .await
                    .map_err(setup)?;
                let mut tools = tools(Role::Planner, &worktree.path, agent.cancel.clone())?;
                let specs = roles::plan(&agent, &mut tools, &goal, &conventions).await;
                let id = plan_id.clone();
                let _ = repo
                    .run(move |r| git::worktree::remove(r, &id, PLANNER, true))
                    .await;
                specs
            }
            .await;
            Outcome::Planned(result)
        };
        self.spawn(PLANNER, token, work, |e| Outcome::Planned(Err(e)));
    }

    async fn start_implementer(&mut self, id: &str) {
        let Some(task) = self.plan.task(id).cloned() else {
            return;
        };
        // Where the work starts, decided and saved before anything runs, so that a restart
        // (or the review) knows it: the snapshot, or the integrated result it builds on.
        let start = match task.start.clone() {
            Some(start) => start,
            None => {
                let from_integration = !task.depends_on.is_empty()
                    || matches!(task.kind, TaskKind::Resolve { .. } | TaskKind::Fix);
                if from_integration {
                    match self.integration_head().await {
                        Ok(head) => head.to_string(),
                        Err(err) => {
                            self.fail_task(id, err);
                            return;
                        }
                    }
                } else {
                    self.plan.base.clone()
                }
            }
        };
        let token = CancellationToken::new();
        let Some(agent) = self.agent_context(id, Role::Implementer, token.clone()) else {
            self.fail_task(id, "no model is configured for the implementer".into());
            return;
        };
        let handoffs: Vec<(String, String, String)> = task
            .depends_on
            .iter()
            .filter_map(|d| self.plan.task(d))
            .map(|d| {
                (
                    d.id.clone(),
                    d.title.clone(),
                    d.handoff.clone().unwrap_or_default(),
                )
            })
            .collect();
        if let Some(t) = self.plan.task_mut(id) {
            t.start = Some(start.clone());
            t.role = Some(Role::Implementer);
            t.started_at.get_or_insert_with(super::now);
        }
        self.set_status(id, TaskStatus::Running, None);
        self.persist();
        self.emit_agent_started(id, Role::Implementer);
        self.journal(
            JournalEntry::new(&self.plan.id, "task_started")
                .task(id)
                .role(Role::Implementer)
                .reason(format!("round {}", task.round + 1)),
        );

        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let goal = self.plan.goal.clone();
        let conventions = self.conventions.clone();
        let tools = self.tools_factory();
        let timeout = self
            .context
            .config
            .team
            .task_timeout_s
            .map(Duration::from_secs);
        let task_id = id.to_owned();
        let restart = task.restart;
        let work = async move {
            let work = async {
                let start_oid =
                    git2::Oid::from_str(&start).map_err(|e| AgentError::Setup(e.to_string()))?;
                let mut worktree = repo
                    .ensure_worktree(&plan_id, &task_id, start_oid)
                    .await
                    .map_err(setup)?;
                if let Some(restart) = restart {
                    let moved = worktree.clone();
                    worktree.head = repo
                        .run_concurrently(move |r| match restart {
                            Restart::FromStart => {
                                git::worktree::move_to(r, &moved, start_oid)?;
                                Ok(start_oid)
                            }
                            Restart::AtHead => {
                                git::worktree::reset_clean(&moved.path)?;
                                Ok(moved.head)
                            }
                        })
                        .await
                        .map_err(setup)?;
                }
                let mut tools = tools(Role::Implementer, &worktree.path, agent.cancel.clone())?;
                let handoffs: Vec<Handoff<'_>> = handoffs
                    .iter()
                    .map(|(id, title, summary)| Handoff { id, title, summary })
                    .collect();
                let summary =
                    roles::implement(&agent, &mut tools, &task, &goal, &handoffs, &conventions)
                        .await?;
                let message = format!(
                    "{}: {}\n\n{}\n\nPlan: {}\nTask: {}\nRole: implementer\nRound: {}\n",
                    task.id,
                    task.title,
                    summary,
                    plan_id,
                    task.id,
                    task.round + 1
                );
                let path = worktree.path.clone();
                let committed = repo
                    .run_concurrently(move |_| {
                        git::commit::commit_all(&path, &message, "implementer")
                    })
                    .await
                    .map_err(|e| AgentError::Setup(format!("cannot commit the work: {e}")))?;
                Ok(Implemented {
                    branch: worktree.branch,
                    commit: committed.unwrap_or(worktree.head).to_string(),
                    summary,
                })
            };
            let result = within(timeout, work).await;
            Outcome::Implemented {
                task: task_id,
                result,
            }
        };
        let failed_id = id.to_owned();
        self.spawn(id, token, work, move |e| Outcome::Implemented {
            task: failed_id,
            result: Err(e),
        });
    }

    /// The plan as a reviewer or debugger of task `this` sees it: the goal, every task, and the
    /// handoffs of `builds_on`.
    fn plan_brief(&self, this: &str, builds_on: &[String]) -> String {
        let tasks: Vec<(&str, &str)> = self
            .plan
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.title.as_str()))
            .collect();
        let handoffs: Vec<Handoff<'_>> = builds_on
            .iter()
            .filter_map(|id| self.plan.task(id))
            .filter_map(|t| {
                t.handoff.as_deref().map(|summary| Handoff {
                    id: &t.id,
                    title: &t.title,
                    summary,
                })
            })
            .collect();
        roles::plan_brief(&self.plan.goal, &tasks, this, &handoffs)
    }

    fn start_review(&mut self, id: &str) {
        let Some(task) = self.plan.task(id).cloned() else {
            return;
        };
        let token = CancellationToken::new();
        let reviewer = self.agent_context(id, Role::Reviewer, token.clone());
        let debugger = self.agent_context(id, Role::Debugger, token.clone());
        if let Some(t) = self.plan.task_mut(id) {
            t.role = Some(Role::Reviewer);
            t.started_at.get_or_insert_with(super::now);
        }
        self.set_status(id, TaskStatus::Reviewing, None);
        self.emit_agent_started(id, Role::Reviewer);
        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let base = self.plan.base.clone();
        let checks_config = self.context.config.checks.clone();
        let cap = output_cap(&self.context.config);
        let sandbox = self.sandbox.clone();
        let conventions = self.conventions.clone();
        let tools = self.tools_factory();
        let timeout = self
            .context
            .config
            .team
            .task_timeout_s
            .map(Duration::from_secs);
        let task_id = id.to_owned();
        let cancel = token.clone();
        let brief = self.plan_brief(id, &task.depends_on);
        let work = async move {
            let work = async {
                let review_of_code = matches!(task.kind, TaskKind::Review { .. });
                let (start, result) = if review_of_code {
                    (base.clone(), base.clone())
                } else {
                    match (task.start.clone(), task.result.clone()) {
                        (Some(start), Some(result)) => (start, result),
                        _ => {
                            return Err(AgentError::Setup(
                                "the task has no result to review".into(),
                            ));
                        }
                    }
                };
                let result_oid =
                    git2::Oid::from_str(&result).map_err(|e| AgentError::Setup(e.to_string()))?;
                let start_oid =
                    git2::Oid::from_str(&start).map_err(|e| AgentError::Setup(e.to_string()))?;
                let worktree = repo
                    .ensure_worktree(&plan_id, &task_id, result_oid)
                    .await
                    .map_err(setup)?;
                let diff = repo
                    .run_concurrently(move |r| git::diff::patch_text(r, start_oid, result_oid))
                    .await
                    .map_err(setup)?;
                // Verify first: every configured check, on this result.
                let mut runs: Vec<CheckRun> = Vec::new();
                for (name, check) in &checks_config {
                    if cancel.is_cancelled() {
                        return Err(AgentError::Cancelled);
                    }
                    if let Some(reviewer) = &reviewer {
                        reviewer.activity(format!("running check `{name}`"));
                    }
                    let run =
                        checks::run(name, check, &worktree.path, cap, &sandbox, &cancel).await;
                    if let Some(reviewer) = &reviewer {
                        reviewer.activity(format!(
                            "check `{name}` {}",
                            if run.result.passed {
                                "passed"
                            } else {
                                "failed"
                            }
                        ));
                    }
                    runs.push(run);
                }
                let mut findings: Vec<Finding> = Vec::new();
                let mut serial = 0;
                for run in &runs {
                    for raw in &run.findings {
                        serial += 1;
                        findings.push(Finding {
                            id: format!("{task_id}.r{}.{serial}", task.round + 1),
                            task: task_id.clone(),
                            path: raw.path.clone(),
                            line: raw.line.max(1),
                            end_line: raw.end_line,
                            severity: raw.severity,
                            message: raw.message.clone(),
                            suggestion: None,
                            source: FindingSource::Check {
                                name: run.result.name.clone(),
                            },
                        });
                    }
                }
                let failing = runs.iter().find(|r| !r.result.passed);
                // A failing check goes to the debugger, for a precise diagnosis.
                let diagnosis = match (failing, &debugger) {
                    (Some(failing), Some(debugger)) => {
                        let mut tools = tools(Role::Debugger, &worktree.path, cancel.clone())?;
                        diagnose(
                            debugger,
                            &mut tools,
                            &task.title,
                            &brief,
                            failing,
                            &diff,
                            &conventions,
                        )
                        .await?
                        .ok()
                        .map(|(cause, fixes)| roles::diagnosis_text(&cause, &fixes))
                    }
                    _ => None,
                };
                let Some(reviewer) = &reviewer else {
                    return Err(AgentError::Setup(
                        "no model is configured for the reviewer".into(),
                    ));
                };
                let mut tools = tools(Role::Reviewer, &worktree.path, cancel.clone())?;
                let (mut verdict, review) = match &task.kind {
                    TaskKind::Review {
                        path,
                        start_line,
                        end_line,
                    } => {
                        roles::review_code(
                            reviewer,
                            &mut tools,
                            &task,
                            path,
                            *start_line,
                            *end_line,
                            &runs,
                            &conventions,
                        )
                        .await?
                    }
                    _ => {
                        roles::review(
                            reviewer,
                            &mut tools,
                            &task,
                            &brief,
                            &diff,
                            &runs,
                            diagnosis.as_deref(),
                            &conventions,
                        )
                        .await?
                    }
                };
                let mut next = || {
                    serial += 1;
                    serial
                };
                findings.extend(roles::findings_of(&task_id, task.round, &review, &mut next));
                let check_failed = failing.is_some();
                if check_failed && verdict == Verdict::Approve && !review_of_code {
                    // Verify, do not opine: a failing check is never approved.
                    verdict = Verdict::RequestChanges;
                }
                Ok(Reviewed {
                    verdict,
                    findings,
                    checks: runs.into_iter().map(|r| r.result).collect(),
                    diagnosis,
                    diff,
                    check_failed,
                    commit: result,
                })
            };
            let result = within(timeout, work).await;
            Outcome::Reviewed {
                task: task_id,
                result,
            }
        };
        let failed_id = id.to_owned();
        self.spawn(id, token, work, move |e| Outcome::Reviewed {
            task: failed_id,
            result: Err(e),
        });
    }

    fn start_integration_test(&mut self) {
        self.set_plan_status(PlanStatus::Testing);
        let token = CancellationToken::new();
        let debugger = self.agent_context("integration", Role::Debugger, token.clone());
        self.journal(JournalEntry::new(&self.plan.id, "integration_test").role(Role::Integrator));
        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let integration = self.plan.integration_branch.clone();
        let base = self.plan.base.clone();
        let test = self.context.config.checks.get("test").cloned();
        let cap = output_cap(&self.context.config);
        let sandbox = self.sandbox.clone();
        let conventions = self.conventions.clone();
        let goal = self.plan.goal.clone();
        let all: Vec<String> = self.plan.tasks.iter().map(|t| t.id.clone()).collect();
        let brief = self.plan_brief("integration", &all);
        let tools = self.tools_factory();
        let cancel = token.clone();
        let work = async move {
            let result = async {
                let Some(test) = test else {
                    return Ok(Tested {
                        check: None,
                        diagnosis: None,
                    });
                };
                let head = head_of(&repo, &integration)
                    .await
                    .map_err(AgentError::Setup)?;
                let worktree = repo
                    .ensure_worktree(&plan_id, VERIFY, head)
                    .await
                    .map_err(setup)?;
                let moved = worktree.clone();
                let diff = repo
                    .run_concurrently(move |r| {
                        git::worktree::move_to(r, &moved, head)?;
                        let base = git2::Oid::from_str(&base)
                            .map_err(|e| git::GitError::Refused(e.to_string()))?;
                        git::diff::patch_text(r, base, head)
                    })
                    .await
                    .map_err(setup)?;
                let run = checks::run("test", &test, &worktree.path, cap, &sandbox, &cancel).await;
                if cancel.is_cancelled() {
                    return Err(AgentError::Cancelled);
                }
                if run.result.passed {
                    return Ok(Tested {
                        check: Some(run.result),
                        diagnosis: None,
                    });
                }
                let diagnosis = match &debugger {
                    Some(debugger) => {
                        let mut tools = tools(Role::Debugger, &worktree.path, cancel.clone())?;
                        diagnose(
                            debugger,
                            &mut tools,
                            &goal,
                            &brief,
                            &run,
                            &diff,
                            &conventions,
                        )
                        .await
                        .map(Some)?
                    }
                    None => None,
                };
                Ok(Tested {
                    check: Some(run.result),
                    diagnosis,
                })
            }
            .await;
            Outcome::Tested(result)
        };
        self.spawn(VERIFY, token, work, |e| Outcome::Tested(Err(e)));
    }

    // ---- Integrating ----------------------------------------------------------------------

    /// Merges approved tasks into the integration branch, in the order given (dependencies
    /// first), with one repository handle; a conflict becomes a resolve task.
    async fn integrate(&mut self, ids: Vec<String>) {
        let mut merges = Vec::new();
        for id in &ids {
            let Some(task) = self.plan.task(id).cloned() else {
                continue;
            };
            let Some(result) = task
                .result
                .as_deref()
                .and_then(|r| git2::Oid::from_str(r).ok())
            else {
                self.fail_task(id, "approved without a result".into());
                continue;
            };
            if let Some(t) = self.plan.task_mut(id) {
                t.role = Some(Role::Integrator);
            }
            self.set_status(id, TaskStatus::Integrating, None);
            let message = format!(
                "pitcrew: integrate {} ({})\n\nPlan: {}\nTask: {}\nRole: integrator\n",
                task.id, task.title, self.plan.id, task.id
            );
            merges.push((id.clone(), result, message));
        }
        let integration = self.plan.integration_branch.clone();
        let order: Vec<String> = merges.iter().map(|(id, _, _)| id.clone()).collect();
        let outcomes = self
            .context
            .repo
            .run(move |repo| {
                Ok(merges
                    .into_iter()
                    .map(|(_, result, message)| {
                        git::merge::merge_into(repo, &integration, result, &message)
                    })
                    .collect::<Vec<_>>())
            })
            .await;
        match outcomes {
            Ok(outcomes) => {
                for (id, outcome) in order.iter().zip(outcomes) {
                    self.integrated(id, outcome);
                }
            }
            Err(err) => {
                for id in &order {
                    self.fail_task(id, format!("cannot merge: {err}"));
                }
            }
        }
    }

    /// Records what merging task `id` did.
    fn integrated(&mut self, id: &str, outcome: git::Result<git::merge::MergeOutcome>) {
        let Some(task) = self.plan.task(id).cloned() else {
            return;
        };
        match outcome {
            Ok(git::merge::MergeOutcome::Conflicts(conflicts)) => {
                let files: Vec<String> = conflicts.iter().map(|c| c.path.clone()).collect();
                self.journal(
                    JournalEntry::new(&self.plan.id, "merge_conflict")
                        .task(id)
                        .role(Role::Integrator)
                        .reason(files.join(", ")),
                );
                if matches!(task.kind, TaskKind::Resolve { .. }) {
                    self.escalate(
                        Some(id),
                        format!("resolving conflicted again, in {}", files.join(", ")),
                        &["retry", "abort"],
                    );
                    return;
                }
                let resolve_id = format!("{id}-resolve{}", self.plan.next_serial());
                let spec = TaskSpec {
                    id: resolve_id.clone(),
                    title: format!("Resolve the conflict of {id}"),
                    instructions: resolve_instructions(&task, &conflicts),
                    depends_on: Vec::new(),
                    files: files.clone(),
                };
                self.plan
                    .tasks
                    .push(Task::new(spec, TaskKind::Resolve { of: id.to_owned() }));
                if let Some(t) = self.plan.task_mut(id) {
                    t.resolving = Some(resolve_id.clone());
                }
                self.set_status(
                    &resolve_id,
                    TaskStatus::Pending,
                    Some(format!("created to resolve {id}")),
                );
                self.set_status(
                    id,
                    TaskStatus::Integrating,
                    Some(format!("waiting for {resolve_id}")),
                );
                self.journal(
                    JournalEntry::new(&self.plan.id, "resolve_task")
                        .task(&resolve_id)
                        .role(Role::Integrator)
                        .reason(format!("conflict of {id}")),
                );
            }
            Ok(outcome) => {
                self.journal(
                    JournalEntry::new(&self.plan.id, "merged")
                        .task(id)
                        .role(Role::Integrator)
                        .reason(format!("{outcome:?}")),
                );
                if let Some(t) = self.plan.task_mut(id) {
                    t.finished_at = Some(super::now());
                }
                self.set_status(id, TaskStatus::Ready, None);
                if let TaskKind::Resolve { of } = &task.kind {
                    if let Some(original) = self.plan.task_mut(of) {
                        original.finished_at = Some(super::now());
                        original.handoff = Some(format!(
                            "{} (conflict resolved by {id}: {})",
                            original.handoff.clone().unwrap_or_default(),
                            task.handoff.clone().unwrap_or_default()
                        ));
                    }
                    let of = of.clone();
                    self.set_status(
                        &of,
                        TaskStatus::Ready,
                        Some(format!("integrated through {id}")),
                    );
                }
            }
            Err(err) => self.fail_task(id, format!("cannot merge: {err}")),
        }
    }

    async fn integration_head(&self) -> Result<git2::Oid, String> {
        head_of(&self.context.repo, &self.plan.integration_branch).await
    }

    // ---- Results --------------------------------------------------------------------------

    async fn on_done(&mut self, done: Done) {
        let Some(worker) = self.workers.remove(&done.attempt) else {
            return;
        };
        let stale = !worker.live;
        match done.outcome {
            Outcome::Planned(result) => {
                self.emit_agent_finished(
                    PLANNER,
                    Role::Planner,
                    &summary_of(&result, |_| "planned"),
                );
                self.absorb_spend(PLANNER, Role::Planner);
                if stale || self.plan.status != PlanStatus::Planning {
                    return;
                }
                match result {
                    Ok(specs) => {
                        self.journal(
                            JournalEntry::new(&self.plan.id, "planned")
                                .role(Role::Planner)
                                .reason(format!("{} tasks", specs.len())),
                        );
                        for spec in specs {
                            self.plan.tasks.push(Task::new(spec, TaskKind::Implement));
                        }
                        self.set_plan_status(PlanStatus::Running);
                    }
                    Err(error) => self.agent_failed(None, Role::Planner, error),
                }
            }
            Outcome::Implemented { task, result } => {
                self.emit_agent_finished(
                    &task,
                    Role::Implementer,
                    &summary_of(&result, |_| "finished"),
                );
                self.absorb_spend(&task, Role::Implementer);
                if stale || self.plan.task(&task).map(|t| t.status) != Some(TaskStatus::Running) {
                    return;
                }
                match result {
                    Ok(done) => {
                        self.journal(
                            JournalEntry::new(&self.plan.id, "committed")
                                .task(&task)
                                .role(Role::Implementer)
                                .reason(done.commit.clone()),
                        );
                        if let Some(t) = self.plan.task_mut(&task) {
                            t.branch = Some(done.branch);
                            t.result = Some(done.commit);
                            t.handoff = Some(done.summary);
                            t.restart = None;
                        }
                        self.set_status(&task, TaskStatus::Reviewing, None);
                        self.review_queue.push(task);
                    }
                    Err(error) => self.agent_failed(Some(&task), Role::Implementer, error),
                }
            }
            Outcome::Reviewed { task, result } => {
                self.emit_agent_finished(
                    &task,
                    Role::Reviewer,
                    &summary_of(&result, |r| verdict_name(r.verdict)),
                );
                self.absorb_spend(&task, Role::Reviewer);
                if stale || self.plan.task(&task).map(|t| t.status) != Some(TaskStatus::Reviewing) {
                    return;
                }
                match result {
                    Ok(review) => self.on_review(&task, review),
                    Err(error) => self.agent_failed(Some(&task), Role::Reviewer, error),
                }
            }
            Outcome::Tested(result) => {
                self.absorb_spend("integration", Role::Debugger);
                if stale || self.plan.status != PlanStatus::Testing {
                    return; // stopped meanwhile (a timeout, a cancellation)
                }
                // Whatever happened, the plan is running again until the test passes; set
                // quietly, so that observers see testing → ready, not a flicker through
                // running, and announced below when it stays so.
                self.plan.status = PlanStatus::Running;
                match result {
                    Ok(tested) => self.on_tested(tested),
                    Err(error) => self.agent_failed(None, Role::Integrator, error),
                }
                if self.plan.status == PlanStatus::Running {
                    let _ = self.context.events.send(Event::PlanChanged {
                        plan: self.plan.id.clone(),
                        status: PlanStatus::Running,
                    });
                }
            }
        }
    }

    fn on_review(&mut self, id: &str, review: Reviewed) {
        let rounds = self.context.config.team.review_rounds;
        let verdict = review.verdict;
        let failed_checks: Vec<String> = review
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.clone())
            .collect();
        let reason = if failed_checks.is_empty() {
            verdict_name(verdict).to_owned()
        } else {
            format!(
                "{}; failing checks: {}",
                verdict_name(verdict),
                failed_checks.join(", ")
            )
        };
        self.journal(
            JournalEntry::new(&self.plan.id, "review")
                .task(id)
                .role(Role::Reviewer)
                .reason(reason),
        );
        let (round, kind) = {
            let Some(task) = self.plan.task_mut(id) else {
                return;
            };
            task.verdict = Some(verdict);
            task.findings = review.findings.clone();
            task.checks = review.checks;
            task.diagnosis = review.diagnosis;
            task.diff = Some(cap_text(review.diff, MAX_DIFF_KEPT));
            (task.round, task.kind.clone())
        };
        let _ = self.context.events.send(Event::Findings {
            plan: self.plan.id.clone(),
            task: id.to_owned(),
            commit: review.commit.clone(),
            findings: review.findings,
        });
        if matches!(kind, TaskKind::Review { .. }) {
            if let Some(task) = self.plan.task_mut(id) {
                task.finished_at = Some(super::now());
            }
            self.set_status(
                id,
                TaskStatus::Ready,
                Some(format!("reviewed: {}", verdict_name(verdict))),
            );
            return;
        }
        match verdict {
            Verdict::Approve => self.set_status(id, TaskStatus::Approved, None),
            Verdict::RequestChanges if round < rounds => {
                if let Some(task) = self.plan.task_mut(id) {
                    task.round += 1;
                    // The next round starts clean: what the checks left is not the work.
                    task.restart = Some(Restart::AtHead);
                }
                let why = if review.check_failed {
                    "a check failed"
                } else {
                    "the reviewer requested changes"
                };
                self.set_status(id, TaskStatus::ChangesRequested, Some(why.into()));
                self.set_status(
                    id,
                    TaskStatus::Pending,
                    Some(format!("round {} to address the findings", round + 2)),
                );
            }
            Verdict::RequestChanges => self.escalate(
                Some(id),
                format!(
                    "the reviewer still requests changes to {id} after {} round{}",
                    round + 1,
                    if round == 0 { "" } else { "s" }
                ),
                &["send_back", "retry", "abort"],
            ),
            Verdict::Reject => self.escalate(
                Some(id),
                format!("the reviewer rejected {id}; it will not be merged"),
                &["retry", "abort"],
            ),
        }
    }

    fn on_tested(&mut self, tested: Tested) {
        let Some(check) = tested.check else {
            self.journal(
                JournalEntry::new(&self.plan.id, "integration_test")
                    .role(Role::Integrator)
                    .reason("no `test` check is configured"),
            );
            self.plan.outcome = Some(
                "Integrated. No `test` check is configured, so the result was not tested.".into(),
            );
            self.set_plan_status(PlanStatus::Ready);
            return;
        };
        let passed = check.passed;
        self.journal(
            JournalEntry::new(&self.plan.id, "integration_test")
                .role(Role::Integrator)
                .reason(if passed { "passed" } else { "failed" }),
        );
        self.plan.integration_test = Some(check);
        if passed {
            self.plan.outcome = Some("Integrated and tested: `test` passes.".into());
            self.set_plan_status(PlanStatus::Ready);
            return;
        }
        match tested.diagnosis {
            Some(Ok((cause, fixes))) if self.plan.fix_rounds < MAX_FIX_ROUNDS => {
                self.plan.fix_rounds += 1;
                self.journal(
                    JournalEntry::new(&self.plan.id, "diagnosis")
                        .role(Role::Debugger)
                        .reason(cause.clone()),
                );
                for fix in fixes {
                    let id = format!("fix-{}", self.plan.next_serial());
                    let spec = TaskSpec {
                        id: id.clone(),
                        title: fix.title,
                        instructions: format!(
                            "The integrated result fails the `test` check.\nCause: {cause}\n\n{}",
                            fix.instructions
                        ),
                        depends_on: Vec::new(),
                        files: fix.files,
                    };
                    self.plan.tasks.push(Task::new(spec, TaskKind::Fix));
                    self.set_status(&id, TaskStatus::Pending, Some("from the debugger".into()));
                }
            }
            Some(Err(reason)) => self.escalate(
                None,
                format!(
                    "the integrated result fails the `test` check, and the debugger could not \
                     say how to fix it: {reason}"
                ),
                &["retry", "abort"],
            ),
            _ => self.escalate(
                None,
                format!(
                    "the integrated result fails the `test` check after {} debugger fix round{}",
                    self.plan.fix_rounds,
                    if self.plan.fix_rounds == 1 { "" } else { "s" }
                ),
                &["retry", "abort"],
            ),
        }
    }

    /// An agent stopped without a result.
    fn agent_failed(&mut self, task: Option<&str>, role: Role, error: AgentError) {
        let reason = error.to_string();
        let mut entry = JournalEntry::new(&self.plan.id, "agent_failed")
            .role(role)
            .reason(reason.clone());
        entry.task = task.map(str::to_owned);
        self.journal(entry);
        match error {
            AgentError::Cancelled => match task {
                Some(task) => self.cancel_task(task, "cancelled"),
                None => self.cancel_plan("cancelled"),
            },
            other => match task {
                Some(task) => self.fail_task(task, other.to_string()),
                None if role == Role::Planner => self.escalate(
                    None,
                    format!("the planner could not plan: {other}"),
                    &["retry", "abort"],
                ),
                None => self.escalate(
                    None,
                    format!("the {role} failed: {other}"),
                    &["retry", "abort"],
                ),
            },
        }
    }

    // ---- Commands and escalations ---------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Cancel => self.cancel_plan("cancelled by the user"),
            Command::CancelTask(id) => self.cancel_task(&id, "cancelled by the user"),
            Command::Retry(id) => self.retry_task(&id),
            Command::Answer { escalation, choice } => self.answer(&escalation, &choice),
        }
    }

    fn questions(&self) -> impl Iterator<Item = &Escalation> {
        self.plan
            .escalation
            .iter()
            .chain(&self.plan.queued_escalations)
    }

    fn has_questions(&self) -> bool {
        self.questions().next().is_some()
    }

    /// A spent budget or deadline is waiting for an answer: nothing new starts.
    fn paused(&self) -> bool {
        self.questions()
            .any(|e| e.choices.iter().any(|c| c.id == "continue"))
    }

    /// Whether `task` waits for the user: a question about it.
    fn awaiting_answer(&self, task: &str) -> bool {
        self.questions().any(|e| e.task.as_deref() == Some(task))
    }

    /// A budget was crossed: the agents wait; ask the user, once.
    fn on_budget(&mut self, exceeded: BudgetExceeded) {
        self.journal(
            JournalEntry::new(&self.plan.id, "budget_exceeded").reason(exceeded.to_string()),
        );
        if !self.paused() {
            self.escalate(
                None,
                format!("{exceeded}; no more model calls are made until you answer"),
                &["continue", "abort"],
            );
        }
    }

    fn escalate(&mut self, task: Option<&str>, question: String, choices: &[&str]) {
        let id = format!("e{}", self.plan.next_serial());
        if let Some(task) = task {
            self.cancel_worker(task);
            if let Some(t) = self.plan.task_mut(task) {
                t.error = Some(question.clone());
            }
            self.set_status(task, TaskStatus::Escalated, Some(question.clone()));
        }
        let labels: BTreeMap<&str, &str> = [
            ("retry", "Retry"),
            ("send_back", "Send back for another round"),
            ("continue", "Continue past the limit"),
            ("abort", "Abort"),
        ]
        .into();
        let escalation = Escalation {
            id,
            task: task.map(str::to_owned),
            question: question.clone(),
            choices: choices
                .iter()
                .map(|c| Choice {
                    id: (*c).to_owned(),
                    label: labels.get(c).copied().unwrap_or(c).to_owned(),
                })
                .collect(),
        };
        let mut entry = JournalEntry::new(&self.plan.id, "escalation").reason(question);
        entry.task = task.map(str::to_owned);
        self.journal(entry);
        if self.commands.is_none() {
            // Nobody will answer.
            self.apply_answer(escalation.task.clone(), "abort");
            return;
        }
        if self.plan.escalation.is_some() {
            self.plan.queued_escalations.push(escalation);
        } else {
            self.raise(escalation);
        }
    }

    fn raise(&mut self, escalation: Escalation) {
        self.plan.escalation = Some(escalation.clone());
        // Whoever asks the user reads the plan (the task's diff, say) on hearing of the
        // question: the plan they read must already hold what led to it.
        self.persist();
        let _ = self.context.events.send(Event::Escalated {
            plan: self.plan.id.clone(),
            escalation,
        });
    }

    fn answer(&mut self, escalation: &str, choice: &str) {
        let Some(pending) = self.plan.escalation.clone() else {
            return;
        };
        if pending.id != escalation {
            tracing::warn!("an answer to {escalation}, which is not the pending question");
            return;
        }
        if !pending.choices.iter().any(|c| c.id == choice) {
            tracing::warn!("{choice:?} is not one of the answers to {escalation}");
            return;
        }
        self.plan.escalation = None;
        let mut entry = JournalEntry::new(&self.plan.id, "answer").reason(choice.to_owned());
        entry.task = pending.task.clone();
        self.journal(entry);
        self.apply_answer(pending.task, choice);
        if self.plan.escalation.is_none() && !self.plan.queued_escalations.is_empty() {
            let next = self.plan.queued_escalations.remove(0);
            self.raise(next);
        }
    }

    /// Answers every question "abort" (nobody is left to answer).
    fn abort_all_questions(&mut self) {
        while let Some(question) = self.plan.escalation.take().or_else(|| {
            (!self.plan.queued_escalations.is_empty())
                .then(|| self.plan.queued_escalations.remove(0))
        }) {
            self.journal(
                JournalEntry::new(&self.plan.id, "answer").reason("abort (nobody to answer)"),
            );
            self.apply_answer(question.task, "abort");
        }
    }

    fn apply_answer(&mut self, task: Option<String>, choice: &str) {
        match (choice, task) {
            ("abort", Some(task)) => self.abort_task(&task),
            ("abort", None) => {
                self.plan.outcome = Some("aborted after escalation".into());
                self.cancel_all_workers();
                for id in self.task_ids() {
                    if self.plan.task(&id).is_some_and(|t| !t.status.is_terminal()) {
                        self.set_status(
                            &id,
                            TaskStatus::Cancelled,
                            Some("the plan was aborted".into()),
                        );
                    }
                }
                self.plan.queued_escalations.clear();
                self.set_plan_status(PlanStatus::Escalated);
            }
            ("retry", Some(task)) => self.retry_task(&task),
            ("retry", None) => {
                self.plan.fix_rounds = 0;
                if !self.plan.tasks.is_empty() && self.plan.status != PlanStatus::Planning {
                    self.set_plan_status(PlanStatus::Running);
                }
            }
            ("send_back", Some(task)) => {
                if let Some(t) = self.plan.task_mut(&task) {
                    t.round += 1;
                    t.restart = Some(Restart::AtHead);
                    t.error = None;
                }
                self.set_status(
                    &task,
                    TaskStatus::Pending,
                    Some("sent back for another round".into()),
                );
            }
            ("continue", _) => {
                if let Some(timeout) = self.context.config.team.timeout_s {
                    let extra = Duration::from_secs((timeout / 2).max(60));
                    self.deadline = Some(
                        self.deadline
                            .unwrap_or_else(Instant::now)
                            .max(Instant::now())
                            + extra,
                    );
                }
                // Raised limits, lifted halt: the waiting agents go on where they were. Kept
                // on the plan, so that a resumed plan has them too.
                self.budget.raise();
                self.plan.budget_raises += 1;
            }
            (other, _) => tracing::warn!("unknown answer {other:?}"),
        }
    }

    /// Ends an escalated task on the user's "abort": it stays escalated, and is final.
    fn abort_task(&mut self, id: &str) {
        self.cancel_worker(id);
        let question = self
            .plan
            .task(id)
            .and_then(|t| t.error.clone())
            .unwrap_or_default();
        if let Some(task) = self.plan.task_mut(id) {
            task.error = Some(if question.is_empty() {
                "aborted after escalation".into()
            } else {
                format!("aborted after escalation: {question}")
            });
            task.finished_at = Some(super::now());
        }
        self.journal(JournalEntry::new(&self.plan.id, "task_aborted").task(id));
        self.set_status(id, TaskStatus::Escalated, Some("aborted".into()));
        if let Some(TaskKind::Resolve { of }) = self.plan.task(id).map(|t| t.kind.clone()) {
            self.abort_task(&of);
        }
    }

    fn retry_task(&mut self, id: &str) {
        let Some(task) = self.plan.task(id).cloned() else {
            return;
        };
        if task.status.is_integrated() || !task.status.is_terminal() {
            return;
        }
        // Any question about the task is moot now.
        if self
            .plan
            .escalation
            .as_ref()
            .is_some_and(|e| e.task.as_deref() == Some(id))
        {
            self.plan.escalation = None;
            if !self.plan.queued_escalations.is_empty() {
                let next = self.plan.queued_escalations.remove(0);
                self.raise(next);
            }
        }
        self.plan
            .queued_escalations
            .retain(|e| e.task.as_deref() != Some(id));
        let resolve_of = match &task.kind {
            TaskKind::Resolve { of } => Some(of.clone()),
            _ => None,
        };
        if let Some(t) = self.plan.task_mut(id) {
            t.round = 0;
            t.error = None;
            t.verdict = None;
            t.findings.clear();
            t.diagnosis = None;
            t.result = None;
            t.handoff = None;
            // A rejected or failed result is not built upon: start again from where it began;
            // a resolve task starts from today's integration, where it will have to fit.
            if resolve_of.is_some() {
                t.start = None;
                t.restart = None;
            } else {
                t.restart = Some(Restart::FromStart);
            }
        }
        let blocked: Vec<String> = self
            .plan
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Cancelled && t.depends_on.iter().any(|d| d == id))
            .map(|t| t.id.clone())
            .collect();
        self.set_status(id, TaskStatus::Pending, Some("retried".into()));
        if let Some(of) = resolve_of {
            self.set_status(
                &of,
                TaskStatus::Integrating,
                Some(format!("waiting for {id}")),
            );
        }
        for other in blocked {
            self.set_status(
                &other,
                TaskStatus::Pending,
                Some(format!("{id} is being retried")),
            );
        }
        if self.plan.status.is_terminal() {
            self.set_plan_status(PlanStatus::Running);
        }
    }

    /// The plan's wall time is spent: no new model calls until the user answers (the agents
    /// wait where they are; work in flight finishes).
    fn on_timeout(&mut self) {
        self.deadline = None;
        self.journal(
            JournalEntry::new(&self.plan.id, "timeout")
                .reason("the plan's wall-time budget is spent"),
        );
        let timeout = self.context.config.team.timeout_s.unwrap_or(0);
        self.budget.halt(format!("{timeout} s"));
        self.escalate(
            None,
            format!("the plan's wall-time budget (timeout_s = {timeout} s) is spent; no more model calls are made until you answer"),
            &["continue", "abort"],
        );
    }

    fn cancel_task(&mut self, id: &str, reason: &str) {
        self.cancel_worker(id);
        if self
            .plan
            .task(id)
            .is_some_and(|t| !t.status.is_terminal() || t.status == TaskStatus::Escalated)
        {
            self.plan
                .queued_escalations
                .retain(|e| e.task.as_deref() != Some(id));
            self.set_status(id, TaskStatus::Cancelled, Some(reason.into()));
        }
        // The task a cancelled resolve task was resolving cannot be integrated either.
        if let Some(TaskKind::Resolve { of }) = self.plan.task(id).map(|t| t.kind.clone()) {
            self.cancel_task(&of, &format!("its resolve task {id} was cancelled"));
        }
    }

    fn cancel_plan(&mut self, reason: &str) {
        self.cancel_all_workers();
        for id in self.task_ids() {
            if self.plan.task(&id).is_some_and(|t| !t.status.is_terminal()) {
                self.set_status(&id, TaskStatus::Cancelled, Some(reason.into()));
            }
        }
        self.plan.escalation = None;
        self.plan.queued_escalations.clear();
        self.plan.outcome = Some(reason.into());
        self.journal(JournalEntry::new(&self.plan.id, "cancelled").reason(reason));
        self.set_plan_status(PlanStatus::Cancelled);
    }

    // ---- State changes --------------------------------------------------------------------

    fn fail_task(&mut self, id: &str, reason: String) {
        self.cancel_worker(id);
        if let Some(task) = self.plan.task_mut(id) {
            task.error = Some(reason.clone());
            task.finished_at = Some(super::now());
        }
        self.journal(
            JournalEntry::new(&self.plan.id, "task_failed")
                .task(id)
                .reason(reason.clone()),
        );
        self.set_status(id, TaskStatus::Failed, Some(reason.clone()));
        if let Some(TaskKind::Resolve { of }) = self.plan.task(id).map(|t| t.kind.clone()) {
            self.fail_task(&of, format!("its conflict could not be resolved: {reason}"));
        }
    }

    fn fail_plan(&mut self, reason: String) {
        self.journal(JournalEntry::new(&self.plan.id, "plan_failed").reason(reason.clone()));
        self.plan.outcome = Some(reason);
        self.cancel_all_workers();
        self.set_plan_status(PlanStatus::Failed);
    }

    fn set_status(&mut self, id: &str, status: TaskStatus, reason: Option<String>) {
        let plan = self.plan.id.clone();
        let Some(task) = self.plan.task_mut(id) else {
            return;
        };
        task.status = status;
        if status.is_terminal() || matches!(status, TaskStatus::Pending | TaskStatus::Approved) {
            task.role = None;
        }
        let _ = self.context.events.send(Event::TaskChanged {
            plan,
            task: id.to_owned(),
            title: task.title.clone(),
            status,
            role: task.role,
            reason,
        });
    }

    fn set_plan_status(&mut self, status: PlanStatus) {
        if self.plan.status != status {
            self.plan.status = status;
            let _ = self.context.events.send(Event::PlanChanged {
                plan: self.plan.id.clone(),
                status,
            });
        }
    }

    /// Moves what a worker key spent into the plan's record, once.
    fn absorb_spend(&mut self, key: &str, role: Role) {
        let Some(shared) = self.spend.get(key) else {
            return;
        };
        let now = *shared.lock().unwrap_or_else(|p| p.into_inner());
        let before = self
            .absorbed
            .insert(key.to_owned(), now)
            .unwrap_or_default();
        let delta = Spend {
            calls: now.calls.saturating_sub(before.calls),
            input_tokens: now.input_tokens.saturating_sub(before.input_tokens),
            output_tokens: now.output_tokens.saturating_sub(before.output_tokens),
            cache_read_tokens: now
                .cache_read_tokens
                .saturating_sub(before.cache_read_tokens),
            cache_write_tokens: now
                .cache_write_tokens
                .saturating_sub(before.cache_write_tokens),
            cost_usd: (now.cost_usd - before.cost_usd).max(0.0),
            saved_usd: now.saved_usd - before.saved_usd,
            estimated: now.estimated,
        };
        if let Some(task) = self.plan.task_mut(key) {
            task.spend = now;
        }
        self.plan.spend.absorb(&delta);
        self.plan
            .spend_by_role
            .entry(role)
            .or_default()
            .absorb(&delta);
    }

    fn emit_agent_started(&self, task: &str, role: Role) {
        let _ = self.context.events.send(Event::AgentStarted {
            plan: self.plan.id.clone(),
            task: task.to_owned(),
            role,
        });
    }

    fn emit_agent_finished(&self, task: &str, role: Role, outcome: &str) {
        let _ = self.context.events.send(Event::AgentFinished {
            plan: self.plan.id.clone(),
            task: task.to_owned(),
            role,
            outcome: outcome.to_owned(),
        });
    }

    fn journal(&self, entry: JournalEntry) {
        self.context.store.journal(&entry);
    }

    fn persist(&mut self) {
        self.plan.updated_at = super::now();
        let base = self.plan.revision;
        self.plan.revision += 1;
        if !self.context.registry.save_over(&self.plan, base) {
            // The plan has ended and the user acted on it (applied or discarded it) while
            // this orchestrator finished up: theirs is the newer state, on disk too.
            self.plan.revision = base;
            tracing::debug!(
                "plan {} was saved meanwhile by the user's action",
                self.plan.id
            );
            return;
        }
        if let Err(err) = self.context.store.save_plan(&self.plan) {
            tracing::error!("cannot save plan {}: {err}", self.plan.id);
        }
    }

    async fn finish(&mut self) {
        let outcome = self
            .plan
            .outcome
            .clone()
            .unwrap_or_else(|| self.plan.status.as_str().to_owned());
        self.journal(
            JournalEntry::new(&self.plan.id, "plan_finished")
                .reason(format!("{}: {outcome}", self.plan.status.as_str())),
        );
        // Integrated tasks need only their branches now; the rest keep their worktrees, for
        // a retry or a look, but unlocked.
        let plan = self.plan.id.clone();
        let tasks: Vec<(String, bool)> = self
            .plan
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.status.is_integrated()))
            .collect();
        let _ = self
            .context
            .repo
            .run(move |repo| {
                for (task, integrated) in tasks {
                    let result = if integrated {
                        git::worktree::remove(repo, &plan, &task, false)
                    } else {
                        git::worktree::release(repo, &plan, &task)
                    };
                    if let Err(err) = result {
                        tracing::warn!("cleaning up after {task}: {err}");
                    }
                }
                let _ = git::worktree::remove(repo, &plan, VERIFY, true);
                Ok(())
            })
            .await;
        self.persist();
        let _ = self.context.events.send(Event::Finished {
            plan: self.plan.id.clone(),
            status: self.plan.status,
            outcome,
        });
    }
}

/// Runs the debugger; a debugger that cannot diagnose leaves the failure as it is (the inner
/// error says why), but a spent budget or a cancellation stops everything.
async fn diagnose(
    debugger: &AgentContext,
    tools: &mut RoleTools,
    subject: &str,
    plan: &str,
    failing: &CheckRun,
    diff: &str,
    conventions: &str,
) -> Result<Result<(String, Vec<FixTask>), String>, AgentError> {
    match roles::diagnose(debugger, tools, subject, plan, failing, diff, conventions).await {
        Ok(diagnosis) => Ok(Ok(diagnosis)),
        Err(AgentError::Cancelled) => Err(AgentError::Cancelled),
        Err(error) => {
            tracing::warn!("the debugger could not diagnose {}: {error}", debugger.task);
            Ok(Err(error.to_string()))
        }
    }
}

fn resolve_instructions(task: &Task, conflicts: &[git::merge::FileConflict]) -> String {
    let id = &task.id;
    let mut instructions = format!(
        "Task {id} ({}) was approved, but its change conflicts with work already integrated by \
         other tasks. Your copy holds the integrated work. Make task {id}'s change on top of it, \
         keeping what the other tasks did.\n\nTask {id}'s instructions:\n{}\n\nIts handoff: \
         {}\n\nConflicting files, with both sides:\n",
        task.title,
        task.instructions,
        task.handoff.as_deref().unwrap_or("(none)")
    );
    for conflict in conflicts {
        instructions.push_str(&format!("\n### {}\n", conflict.path));
        if conflict.regions.is_empty() {
            instructions.push_str(&format!(
                "Integrated version:\n```\n{}\n```\nTask {id}'s version:\n```\n{}\n```\n",
                conflict.ours.as_deref().unwrap_or("(deleted)"),
                conflict.theirs.as_deref().unwrap_or("(deleted)")
            ));
        }
        for region in &conflict.regions {
            instructions.push_str(&format!(
                "Integrated (from line {}):\n```\n{}```\nTask {id}'s version:\n```\n{}```\n",
                region.ours_start_line + 1,
                region.ours,
                region.theirs
            ));
        }
    }
    instructions
}

async fn head_of(repo: &GitRepo, branch: &str) -> Result<git2::Oid, String> {
    let branch = branch.to_owned();
    repo.run_concurrently(move |r| {
        r.find_branch(&branch, git2::BranchType::Local)
            .and_then(|b| b.get().peel_to_commit())
            .map(|c| c.id())
            .map_err(|e| git::GitError::Refused(format!("the branch {branch} is missing: {e}")))
    })
    .await
    .map_err(|e| e.to_string())
}

fn setup(error: git::GitError) -> AgentError {
    AgentError::Setup(error.to_string())
}

fn output_cap(config: &Config) -> usize {
    usize::try_from(config.team.check_output_bytes).unwrap_or(64 * 1024)
}

/// Runs `work` within `limit`, if there is one.
async fn within<T>(
    limit: Option<Duration>,
    work: impl Future<Output = Result<T, AgentError>>,
) -> Result<T, AgentError> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(AgentError::Gave(format!(
                "the task took longer than task_timeout_s = {} s",
                limit.as_secs()
            )))
        }),
        None => work.await,
    }
}

fn summary_of<T>(result: &Result<T, AgentError>, ok: impl FnOnce(&T) -> &'static str) -> String {
    match result {
        Ok(value) => ok(value).to_owned(),
        Err(error) => format!("failed: {error}"),
    }
}

fn cap_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... the diff goes on]\n", &text[..end])
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Approve => "approve",
        Verdict::RequestChanges => "request_changes",
        Verdict::Reject => "reject",
    }
}

async fn recv(commands: &mut Option<mpsc::Receiver<Command>>) -> Option<Command> {
    match commands {
        Some(commands) => commands.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The first line of `text`, for one-line summaries.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
