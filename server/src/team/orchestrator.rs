//! The orchestrator: one task per plan that owns the plan's state, starts work as soon as it
//! can, and reacts to each result as it lands.
//!
//! Workers (the planner, implementers, reviewers, the integration test) run as spawned tasks and
//! report back through a channel; the orchestrator alone changes the plan, persists it after
//! every change, journals what happened and publishes events. A task starts the moment its
//! dependencies are integrated (up to `team.implementers` at once); each result is reviewed as
//! it lands and integrated as soon as it is approved. One task's failure fails that task and
//! what depends on it, never the others. Everything is resumable: a restarted plan picks up from
//! its last persisted state without redoing finished work.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, Limits};
use super::events::Event;
use super::plan::{
    CheckResult, Choice, Escalation, Finding, FindingSource, Plan, PlanStatus, Spend, Task,
    TaskKind, TaskSpec, TaskStatus, Verdict,
};
use super::store::{JournalEntry, Store};
use crate::agents::checks::{self, CheckRun};
use crate::agents::roles::{self, Handoff};
use crate::agents::runtime::{AgentContext, AgentError};
use crate::agents::tools::{FixTask, RoleTools};
use crate::agents::workspace::Workspace;
use crate::config::{Config, Role};
use crate::git::{self, GitRepo};
use crate::model::Models;

/// Rounds of debugger fixes after a failing integration test before the plan escalates.
const MAX_FIX_ROUNDS: u32 = 2;
/// The worktree in which the integrated result is tested.
const VERIFY: &str = "verify";
/// The worktree in which the planner reads the code.
const PLANNER: &str = "planner";

/// What the orchestrator needs from the outside world.
#[derive(Clone)]
pub struct TeamContext {
    pub repo: GitRepo,
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub models: Arc<Models>,
    pub events: broadcast::Sender<Event>,
}

/// What the user (or the editor) can ask of a running plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Cancel,
    CancelTask(String),
    Retry(String),
    Answer { escalation: String, choice: String },
}

/// What a worker reports.
enum Done {
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
    start: String,
    commit: String,
    summary: String,
}

struct Reviewed {
    verdict: Verdict,
    findings: Vec<Finding>,
    checks: Vec<CheckResult>,
    diagnosis: Option<String>,
    /// The reviewer's findings came with "request changes" only because a check failed.
    check_failed: bool,
}

struct Tested {
    check: Option<CheckResult>,
    diagnosis: Option<(String, Vec<FixTask>)>,
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
    /// Running workers, by task id (or `planner`, `verify`).
    workers: HashMap<String, CancellationToken>,
    /// What each task has spent, shared with its agents.
    spend: HashMap<String, Arc<Mutex<Spend>>>,
    /// Tasks to restart from a clean worktree: at their branch's head (they were running when
    /// a process died) or at their start (retried from scratch).
    restart: HashMap<String, Restart>,
    /// Tasks waiting for a review that a crash interrupted.
    review_queue: Vec<String>,
    deadline: Option<Instant>,
    conventions: String,
    /// Stop once the plan has tasks (`pitcrew plan`).
    stop_after_planning: bool,
}

impl Orchestrator {
    fn new(context: TeamContext, plan: Plan, commands: mpsc::Receiver<Command>) -> Self {
        let budget = Arc::new(Budget::new(Limits::from_config(&context.config.team)));
        budget.seed(
            plan.spend,
            plan.tasks.iter().map(|t| (t.id.clone(), t.spend)),
            &plan.spend_by_role,
        );
        let deadline = context
            .config
            .team
            .timeout_s
            .map(|s| Instant::now() + Duration::from_secs(s));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let conventions = roles::conventions(context.repo.workdir());
        Self {
            context,
            plan,
            budget,
            commands: Some(commands),
            done_tx,
            done_rx,
            workers: HashMap::new(),
            spend: HashMap::new(),
            restart: HashMap::new(),
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
        self.resume().await;
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
                command = recv(&mut self.commands) => match command {
                    Some(command) => self.on_command(command).await,
                    None => {
                        // Nobody can answer any more: a pending question is answered "abort".
                        self.commands = None;
                        if let Some(escalation) = self.plan.escalation.clone() {
                            self.answer(&escalation.id, "abort").await;
                        }
                    }
                },
                () = sleep_until(deadline) => self.on_timeout(),
            }
        }
        self.finish();
        self.plan
    }

    // ---- Resuming -------------------------------------------------------------------------

    /// Brings a plan loaded from disk back to a state the loop can continue from.
    async fn resume(&mut self) {
        if self.plan.status.is_terminal() {
            return;
        }
        let integration = self.plan.integration_branch.clone();
        let base = self.plan.base.clone();
        let base_oid = git2::Oid::from_str(&base).ok();
        if let Some(base_oid) = base_oid {
            // The integration branch starts at the snapshot (a no-op when it exists).
            let result = self
                .context
                .repo
                .run(move |repo| {
                    git::merge::merge_into(
                        repo,
                        &integration,
                        base_oid,
                        "pitcrew: start integration",
                    )
                })
                .await;
            if let Err(err) = result {
                self.fail_plan(format!("cannot create the integration branch: {err}"));
                return;
            }
        }
        if self.plan.status == PlanStatus::Testing {
            self.plan.status = PlanStatus::Running;
        }
        let ids: Vec<String> = self.plan.tasks.iter().map(|t| t.id.clone()).collect();
        for id in ids {
            let status = self.plan.task(&id).map(|t| t.status);
            match status {
                Some(TaskStatus::Running) => {
                    self.restart.insert(id.clone(), Restart::AtHead);
                    self.set_status(
                        &id,
                        TaskStatus::Pending,
                        Some("resumed after a restart".into()),
                    );
                }
                Some(TaskStatus::ChangesRequested) => {
                    self.set_status(&id, TaskStatus::Pending, None);
                }
                Some(TaskStatus::Reviewing) => self.review_queue.push(id.clone()),
                Some(TaskStatus::Integrating) => {
                    let waiting_for_resolve = self.plan.tasks.iter().any(|t| {
                        t.kind == TaskKind::Resolve { of: id.clone() } && !t.status.is_terminal()
                    });
                    if !waiting_for_resolve {
                        self.set_status(
                            &id,
                            TaskStatus::Approved,
                            Some("merge interrupted; merging again".into()),
                        );
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
        if self.plan.status == PlanStatus::Planning {
            if self.plan.preplanned || !self.plan.tasks.is_empty() {
                self.set_plan_status(PlanStatus::Running);
            } else if !self.workers.contains_key(PLANNER) {
                self.start_planner();
                return;
            } else {
                return;
            }
        }
        if self.plan.status == PlanStatus::Testing {
            return;
        }

        let paused = self
            .plan
            .escalation
            .as_ref()
            .is_some_and(|e| e.choices.iter().any(|c| c.id == "continue"));
        if !paused {
            for id in std::mem::take(&mut self.review_queue) {
                self.start_review(&id);
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

        // A spent budget stops new work until the user answers.
        let paused = self
            .plan
            .escalation
            .as_ref()
            .is_some_and(|e| e.choices.iter().any(|c| c.id == "continue"));
        if paused {
            return;
        }

        // Block what depends on failures; start what is ready.
        let limit = self.context.config.team.implementers as usize;
        for id in self.plan.topological_order() {
            let Some(task) = self.plan.task(&id) else {
                continue;
            };
            if task.status != TaskStatus::Pending {
                continue;
            }
            let deps: Vec<TaskStatus> = task
                .depends_on
                .iter()
                .filter_map(|d| self.plan.task(d).map(|t| t.status))
                .collect();
            // An escalated dependency awaiting an answer may still come back; a failed,
            // cancelled or aborted one will not.
            if let Some(blocker) = task.depends_on.iter().find(|d| {
                self.plan.task(d).is_some_and(|t| match t.status {
                    TaskStatus::Failed | TaskStatus::Cancelled => true,
                    TaskStatus::Escalated => !self.awaiting_answer(d),
                    _ => false,
                })
            }) {
                let reason = format!("blocked: it depends on {blocker}, which did not succeed");
                self.set_status(&id, TaskStatus::Cancelled, Some(reason));
                continue;
            }
            if deps.iter().all(|s| s.is_integrated()) && self.running_implementers() < limit {
                self.start_implementer(&id);
            }
        }

        // Everything integrated: test the result. Nothing left to do: the plan ends.
        let all_terminal = self.plan.tasks.iter().all(|t| t.status.is_terminal());
        if all_terminal && self.workers.is_empty() && self.plan.escalation.is_none() {
            if self.plan.tasks.iter().all(|t| t.status.is_integrated()) {
                self.start_integration_test();
            } else {
                let failed: Vec<String> = self
                    .plan
                    .tasks
                    .iter()
                    .filter(|t| !t.status.is_integrated())
                    .map(|t| format!("{} ({})", t.id, t.status.as_str()))
                    .collect();
                let reason = format!("not every task succeeded: {}", failed.join(", "));
                if self
                    .plan
                    .tasks
                    .iter()
                    .any(|t| t.status == TaskStatus::Escalated)
                {
                    // It ended on a question the user answered "abort".
                    self.journal(
                        JournalEntry::new(&self.plan.id, "plan_failed").reason(reason.clone()),
                    );
                    self.plan.outcome = Some(reason);
                    self.set_plan_status(PlanStatus::Escalated);
                } else {
                    self.fail_plan(reason);
                }
            }
        }
    }

    /// Whether a question about `task` is waiting for the user.
    fn awaiting_answer(&self, task: &str) -> bool {
        self.plan
            .escalation
            .iter()
            .chain(&self.plan.queued_escalations)
            .any(|e| e.task.as_deref() == Some(task))
    }

    fn running_implementers(&self) -> usize {
        self.plan
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Running)
            .count()
    }

    fn agent_context(
        &mut self,
        task: &str,
        role: Role,
        cancel: CancellationToken,
    ) -> Option<AgentContext> {
        let model = self.context.models.for_role(role)?;
        let spend = self
            .spend
            .entry(task.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(
                    self.plan.task(task).map(|t| t.spend).unwrap_or_default(),
                ))
            })
            .clone();
        Some(AgentContext {
            plan: self.plan.id.clone(),
            task: task.to_owned(),
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

    fn start_planner(&mut self) {
        let cancel = CancellationToken::new();
        let Some(agent) = self.agent_context(PLANNER, Role::Planner, cancel.clone()) else {
            self.fail_plan("no model is configured for the planner".into());
            return;
        };
        self.workers.insert(PLANNER.into(), cancel.clone());
        self.emit_agent_started(PLANNER, Role::Planner);
        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let base = self.plan.base.clone();
        let goal = self.plan.goal.clone();
        let conventions = self.conventions.clone();
        let tools = self.tools_factory();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let result = async {
                let base =
                    git2::Oid::from_str(&base).map_err(|e| AgentError::Setup(e.to_string()))?;
                let worktree = repo
                    .ensure_worktree(&plan_id, PLANNER, base)
                    .await
                    .map_err(|e| AgentError::Setup(e.to_string()))?;
                let mut tools = tools(Role::Planner, &worktree.path, cancel.clone())?;
                let specs = roles::plan(&agent, &mut tools, &goal, &conventions).await;
                let id = plan_id.clone();
                let _ = repo
                    .run(move |r| git::worktree::remove(r, &id, PLANNER, true))
                    .await;
                specs
            }
            .await;
            let _ = done.send(Done::Planned(result));
        });
    }

    /// A factory for role tools that workers can call (it owns clones of what it needs).
    fn tools_factory(
        &self,
    ) -> impl Fn(Role, &std::path::Path, CancellationToken) -> Result<RoleTools, AgentError>
    + Send
    + Sync
    + 'static {
        let config = self.context.config.clone();
        move |role, root, cancel| {
            let workspace = Workspace::new(root, config.context.clone())
                .map_err(|e| AgentError::Setup(format!("cannot open the worktree: {e}")))?;
            Ok(RoleTools::new(
                role,
                workspace,
                config.checks.clone(),
                usize::try_from(config.team.check_output_bytes).unwrap_or(64 * 1024),
                crate::agents::secret_variables(&config),
                cancel,
                config.team.max_tasks,
            ))
        }
    }

    fn start_implementer(&mut self, id: &str) {
        let Some(task) = self.plan.task(id).cloned() else {
            return;
        };
        let cancel = CancellationToken::new();
        let Some(agent) = self.agent_context(id, Role::Implementer, cancel.clone()) else {
            self.fail_task(id, "no model is configured for the implementer".into());
            return;
        };
        // Where the work starts: the snapshot, or the integrated result of what it depends on.
        let start_from_integration = !task.depends_on.is_empty()
            || matches!(task.kind, TaskKind::Resolve { .. } | TaskKind::Fix);
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
        let restart = self.restart.remove(id);
        let task_start = task.start.clone();
        if let Some(task) = self.plan.task_mut(id) {
            task.role = Some(Role::Implementer);
            if task.started_at.is_none() {
                task.started_at = Some(super::now());
            }
        }
        self.set_status(id, TaskStatus::Running, None);
        self.emit_agent_started(id, Role::Implementer);
        self.journal(
            JournalEntry::new(&self.plan.id, "task_started")
                .task(id)
                .role(Role::Implementer)
                .reason(format!("round {}", task.round + 1)),
        );
        self.workers.insert(id.to_owned(), cancel.clone());

        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let base = self.plan.base.clone();
        let integration = self.plan.integration_branch.clone();
        let goal = self.plan.goal.clone();
        let conventions = self.conventions.clone();
        let tools = self.tools_factory();
        let done = self.done_tx.clone();
        let timeout = self
            .context
            .config
            .team
            .task_timeout_s
            .map(Duration::from_secs);
        let task_id = id.to_owned();
        tokio::spawn(async move {
            let work = async {
                let start = if start_from_integration {
                    let integration = integration.clone();
                    repo.run_concurrently(move |r| {
                        r.find_branch(&integration, git2::BranchType::Local)
                            .and_then(|b| b.get().peel_to_commit())
                            .map(|c| c.id())
                            .map_err(|e| {
                                git::GitError::Refused(format!(
                                    "the integration branch is missing: {e}"
                                ))
                            })
                    })
                    .await
                    .map_err(|e| AgentError::Setup(e.to_string()))?
                } else {
                    git2::Oid::from_str(&base).map_err(|e| AgentError::Setup(e.to_string()))?
                };
                let mut worktree = repo
                    .ensure_worktree(&plan_id, &task_id, start)
                    .await
                    .map_err(|e| AgentError::Setup(e.to_string()))?;
                if let Some(restart) = restart {
                    let moved = worktree.clone();
                    let back_to = task_start
                        .as_deref()
                        .and_then(|s| git2::Oid::from_str(s).ok());
                    let head = repo
                        .run_concurrently(move |r| match (restart, back_to) {
                            (Restart::FromStart, Some(start)) => {
                                git::worktree::move_to(r, &moved, start)?;
                                Ok(start)
                            }
                            _ => {
                                git::worktree::reset_clean(&moved.path)?;
                                Ok(moved.head)
                            }
                        })
                        .await
                        .map_err(|e| AgentError::Setup(e.to_string()))?;
                    worktree.head = head;
                }
                let start = task
                    .start
                    .clone()
                    .unwrap_or_else(|| worktree.head.to_string());
                let mut tools = tools(Role::Implementer, &worktree.path, cancel.clone())?;
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
                let commit = committed.unwrap_or(worktree.head).to_string();
                Ok(Implemented {
                    branch: worktree.branch,
                    start,
                    commit,
                    summary,
                })
            };
            let result = match timeout {
                Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                    Err(AgentError::Gave(format!(
                        "the task took longer than task_timeout_s = {} s",
                        limit.as_secs()
                    )))
                }),
                None => work.await,
            };
            let _ = done.send(Done::Implemented {
                task: task_id,
                result,
            });
        });
    }

    fn start_review(&mut self, id: &str) {
        let Some(task) = self.plan.task(id).cloned() else {
            return;
        };
        let cancel = CancellationToken::new();
        let reviewer = self.agent_context(id, Role::Reviewer, cancel.clone());
        let debugger = self.agent_context(id, Role::Debugger, cancel.clone());
        if let Some(task) = self.plan.task_mut(id) {
            task.role = Some(Role::Reviewer);
        }
        self.set_status(id, TaskStatus::Reviewing, None);
        self.emit_agent_started(id, Role::Reviewer);
        self.workers.insert(id.to_owned(), cancel.clone());
        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let checks_config = self.context.config.checks.clone();
        let output_cap =
            usize::try_from(self.context.config.team.check_output_bytes).unwrap_or(64 * 1024);
        let secrets = crate::agents::secret_variables(&self.context.config);
        let conventions = self.conventions.clone();
        let tools = self.tools_factory();
        let done = self.done_tx.clone();
        let task_id = id.to_owned();
        let mut serial = self.plan.serial;
        self.plan.serial += 1000;
        tokio::spawn(async move {
            let result = async {
                let (Some(start), Some(result)) = (task.start.clone(), task.result.clone()) else {
                    return Err(AgentError::Setup("the task has no result to review".into()));
                };
                let plan = plan_id.clone();
                let key = task_id.clone();
                let result_oid =
                    git2::Oid::from_str(&result).map_err(|e| AgentError::Setup(e.to_string()))?;
                let start_oid =
                    git2::Oid::from_str(&start).map_err(|e| AgentError::Setup(e.to_string()))?;
                let (worktree, diff) = repo
                    .run(move |r| {
                        let worktree = git::worktree::ensure(r, &plan, &key, result_oid)?;
                        let diff = git::diff::patch_text(r, start_oid, result_oid)?;
                        Ok((worktree, diff))
                    })
                    .await
                    .map_err(|e| AgentError::Setup(e.to_string()))?;
                // Verify first: every configured check, on this result.
                let mut runs: Vec<CheckRun> = Vec::new();
                for (name, check) in &checks_config {
                    runs.push(
                        checks::run(name, check, &worktree.path, output_cap, &secrets, &cancel)
                            .await,
                    );
                }
                if cancel.is_cancelled() {
                    return Err(AgentError::Cancelled);
                }
                let mut next = || {
                    serial += 1;
                    serial
                };
                let mut findings: Vec<Finding> = Vec::new();
                for run in &runs {
                    for raw in &run.findings {
                        findings.push(Finding {
                            id: format!("f{}", next()),
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
                        match roles::diagnose(
                            debugger,
                            &mut tools,
                            &task.title,
                            failing,
                            &diff,
                            &conventions,
                        )
                        .await
                        {
                            Ok((cause, fixes)) => Some(roles::diagnosis_text(&cause, &fixes)),
                            Err(AgentError::Cancelled) => return Err(AgentError::Cancelled),
                            Err(AgentError::Budget(b)) => return Err(AgentError::Budget(b)),
                            Err(err) => {
                                tracing::warn!("the debugger could not diagnose {task_id}: {err}");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                let Some(reviewer) = &reviewer else {
                    return Err(AgentError::Setup(
                        "no model is configured for the reviewer".into(),
                    ));
                };
                let mut tools = tools(Role::Reviewer, &worktree.path, cancel.clone())?;
                let (mut verdict, review) = roles::review(
                    reviewer,
                    &mut tools,
                    &task,
                    &diff,
                    &runs,
                    diagnosis.as_deref(),
                    &conventions,
                )
                .await?;
                findings.extend(roles::findings_of(&task_id, &review, &mut next));
                let check_failed = failing.is_some();
                if check_failed && verdict == Verdict::Approve {
                    // Verify, do not opine: a failing check is never approved.
                    verdict = Verdict::RequestChanges;
                }
                Ok(Reviewed {
                    verdict,
                    findings,
                    checks: runs.into_iter().map(|r| r.result).collect(),
                    diagnosis,
                    check_failed,
                })
            }
            .await;
            let _ = done.send(Done::Reviewed {
                task: task_id,
                result,
            });
        });
    }

    fn start_integration_test(&mut self) {
        self.set_plan_status(PlanStatus::Testing);
        let cancel = CancellationToken::new();
        let debugger = self.agent_context("integration", Role::Debugger, cancel.clone());
        self.workers.insert(VERIFY.into(), cancel.clone());
        self.journal(JournalEntry::new(&self.plan.id, "integration_test").role(Role::Integrator));
        let repo = self.context.repo.clone();
        let plan_id = self.plan.id.clone();
        let integration = self.plan.integration_branch.clone();
        let base = self.plan.base.clone();
        let test = self.context.config.checks.get("test").cloned();
        let output_cap =
            usize::try_from(self.context.config.team.check_output_bytes).unwrap_or(64 * 1024);
        let secrets = crate::agents::secret_variables(&self.context.config);
        let conventions = self.conventions.clone();
        let goal = self.plan.goal.clone();
        let tools = self.tools_factory();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let result = async {
                let Some(test) = test else {
                    return Ok(Tested {
                        check: None,
                        diagnosis: None,
                    });
                };
                let (worktree, diff) = repo
                    .run(move |r| {
                        let head = r
                            .find_branch(&integration, git2::BranchType::Local)
                            .and_then(|b| b.get().peel_to_commit())
                            .map(|c| c.id())
                            .map_err(|e| git::GitError::Refused(e.to_string()))?;
                        let worktree = git::worktree::ensure(r, &plan_id, VERIFY, head)?;
                        git::worktree::move_to(r, &worktree, head)?;
                        let base = git2::Oid::from_str(&base)
                            .map_err(|e| git::GitError::Refused(e.to_string()))?;
                        let diff = git::diff::patch_text(r, base, head)?;
                        Ok((worktree, diff))
                    })
                    .await
                    .map_err(|e| AgentError::Setup(e.to_string()))?;
                let run =
                    checks::run("test", &test, &worktree.path, output_cap, &secrets, &cancel).await;
                if run.result.passed {
                    return Ok(Tested {
                        check: Some(run.result),
                        diagnosis: None,
                    });
                }
                let diagnosis = match &debugger {
                    Some(debugger) => {
                        let mut tools = tools(Role::Debugger, &worktree.path, cancel.clone())?;
                        match roles::diagnose(
                            debugger,
                            &mut tools,
                            &goal,
                            &run,
                            &diff,
                            &conventions,
                        )
                        .await
                        {
                            Ok(diagnosis) => Some(diagnosis),
                            Err(AgentError::Cancelled) => return Err(AgentError::Cancelled),
                            Err(AgentError::Budget(b)) => return Err(AgentError::Budget(b)),
                            Err(err) => {
                                tracing::warn!(
                                    "the debugger could not diagnose the integration: {err}"
                                );
                                None
                            }
                        }
                    }
                    None => None,
                };
                Ok(Tested {
                    check: Some(run.result),
                    diagnosis,
                })
            }
            .await;
            let _ = done.send(Done::Tested(result));
        });
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
            if let Some(task) = self.plan.task_mut(id) {
                task.role = Some(Role::Integrator);
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
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(err) => {
                for id in &order {
                    self.fail_task(id, format!("cannot merge: {err}"));
                }
                return;
            }
        };
        for (id, outcome) in order.iter().zip(outcomes) {
            self.integrated(id, outcome);
        }
    }

    /// Records what merging task `id` did.
    fn integrated(&mut self, id: &str, outcome: git::Result<git::merge::MergeOutcome>) {
        let Some(task) = self.plan.task(id).cloned() else {
            return;
        };
        match outcome {
            Ok(git::merge::MergeOutcome::Conflicts(conflicts)) => {
                let files: Vec<&str> = conflicts.iter().map(|c| c.path.as_str()).collect();
                self.journal(
                    JournalEntry::new(&self.plan.id, "merge_conflict")
                        .task(id)
                        .role(Role::Integrator)
                        .reason(files.join(", ")),
                );
                if matches!(task.kind, TaskKind::Resolve { .. }) {
                    self.escalate(
                        Some(id),
                        format!("resolving {id} conflicted again in {}", files.join(", ")),
                        &["retry", "abort"],
                    );
                    return;
                }
                let resolve_id = format!("{id}-resolve{}", self.plan.next_serial());
                let mut instructions = format!(
                    "Task {id} ({}) was approved, but its change conflicts with work already \
                     integrated by other tasks. Your copy holds the integrated work. Make task \
                     {id}'s change on top of it, keeping what the other tasks did.\n\nTask {id}'s \
                     instructions:\n{}\n\nIts handoff: {}\n\nConflicting files, with both sides:\n",
                    task.title,
                    task.instructions,
                    task.handoff.as_deref().unwrap_or("(none)")
                );
                for conflict in &conflicts {
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
                let spec = TaskSpec {
                    id: resolve_id.clone(),
                    title: format!("Resolve the conflict of {id}"),
                    instructions,
                    depends_on: Vec::new(),
                    files: files.iter().map(|f| f.to_string()).collect(),
                };
                self.plan
                    .tasks
                    .push(Task::new(spec, TaskKind::Resolve { of: id.to_owned() }));
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
                if let Some(task) = self.plan.task_mut(id) {
                    task.role = None;
                    task.finished_at = Some(super::now());
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

    // ---- Results --------------------------------------------------------------------------

    async fn on_done(&mut self, done: Done) {
        match done {
            Done::Planned(result) => {
                self.workers.remove(PLANNER);
                self.emit_agent_finished(
                    PLANNER,
                    Role::Planner,
                    &result
                        .as_ref()
                        .map(|_| "planned")
                        .map_err(|e| e.to_string()),
                );
                self.absorb_spend(PLANNER, Role::Planner);
                if self.plan.status != PlanStatus::Planning {
                    return;
                }
                match result {
                    Err(AgentError::Cancelled) if self.plan.escalation.is_some() => {}
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
            Done::Implemented { task, result } => {
                self.workers.remove(&task);
                self.emit_agent_finished(
                    &task,
                    Role::Implementer,
                    &result
                        .as_ref()
                        .map(|_| "finished")
                        .map_err(|e| e.to_string()),
                );
                self.absorb_spend(&task, Role::Implementer);
                if self
                    .plan
                    .task(&task)
                    .is_some_and(|t| t.status != TaskStatus::Running)
                {
                    return; // cancelled meanwhile
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
                            t.start.get_or_insert(done.start);
                            t.result = Some(done.commit);
                            t.handoff = Some(done.summary);
                        }
                        self.start_review(&task);
                    }
                    Err(error) => self.agent_failed(Some(&task), Role::Implementer, error),
                }
            }
            Done::Reviewed { task, result } => {
                self.workers.remove(&task);
                self.emit_agent_finished(
                    &task,
                    Role::Reviewer,
                    &result
                        .as_ref()
                        .map(|r| verdict_name(r.verdict))
                        .map_err(|e| e.to_string()),
                );
                self.absorb_spend(&task, Role::Reviewer);
                if self
                    .plan
                    .task(&task)
                    .is_some_and(|t| t.status != TaskStatus::Reviewing)
                {
                    return;
                }
                match result {
                    Ok(review) => self.on_review(&task, review),
                    Err(error) => self.agent_failed(Some(&task), Role::Reviewer, error),
                }
            }
            Done::Tested(result) => {
                self.workers.remove(VERIFY);
                self.absorb_spend("integration", Role::Debugger);
                if self.plan.status != PlanStatus::Testing {
                    return; // stopped meanwhile (a timeout, a cancellation)
                }
                match result {
                    Ok(tested) => self.on_tested(tested),
                    Err(error) => self.agent_failed(None, Role::Integrator, error),
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
        let mut entry = JournalEntry::new(&self.plan.id, "review")
            .task(id)
            .role(Role::Reviewer)
            .reason(verdict_name(verdict));
        if !failed_checks.is_empty() {
            entry.reason = Some(format!(
                "{}; failing checks: {}",
                verdict_name(verdict),
                failed_checks.join(", ")
            ));
        }
        self.journal(entry);
        let round = {
            let Some(task) = self.plan.task_mut(id) else {
                return;
            };
            task.verdict = Some(verdict);
            task.findings = review.findings.clone();
            task.checks = review.checks;
            task.diagnosis = review.diagnosis;
            task.round
        };
        let _ = self.context.events.send(Event::Findings {
            plan: self.plan.id.clone(),
            task: id.to_owned(),
            findings: review.findings,
        });
        match verdict {
            Verdict::Approve => self.set_status(id, TaskStatus::Approved, None),
            Verdict::RequestChanges if round < rounds => {
                if let Some(task) = self.plan.task_mut(id) {
                    task.round += 1;
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
        match tested.check {
            None => {
                self.journal(
                    JournalEntry::new(&self.plan.id, "integration_test")
                        .role(Role::Integrator)
                        .reason("no `test` check is configured"),
                );
                self.plan.outcome = Some(
                    "Integrated. No `test` check is configured, so the result was not tested."
                        .into(),
                );
                self.set_plan_status(PlanStatus::Ready);
            }
            Some(check) if check.passed => {
                self.journal(
                    JournalEntry::new(&self.plan.id, "integration_test")
                        .role(Role::Integrator)
                        .reason("passed"),
                );
                self.plan.integration_test = Some(check);
                self.plan.outcome = Some("Integrated and tested: `test` passes.".into());
                self.set_plan_status(PlanStatus::Ready);
            }
            Some(check) => {
                self.journal(
                    JournalEntry::new(&self.plan.id, "integration_test")
                        .role(Role::Integrator)
                        .reason("failed"),
                );
                self.plan.integration_test = Some(check);
                match tested.diagnosis {
                    Some((cause, fixes)) if self.plan.fix_rounds < MAX_FIX_ROUNDS => {
                        self.plan.fix_rounds += 1;
                        self.journal(JournalEntry::new(&self.plan.id, "diagnosis").role(Role::Debugger).reason(cause.clone()));
                        let round = self.plan.fix_rounds;
                        for (i, fix) in fixes.into_iter().enumerate() {
                            let id = format!("fix{round}-{}", i + 1);
                            let spec = TaskSpec {
                                id: id.clone(),
                                title: fix.title,
                                instructions: format!("The integrated result fails the `test` check.\nCause: {cause}\n\n{}", fix.instructions),
                                depends_on: Vec::new(),
                                files: fix.files,
                            };
                            self.plan.tasks.push(Task::new(spec, TaskKind::Fix));
                            self.set_status(&id, TaskStatus::Pending, Some("from the debugger".into()));
                        }
                        self.set_plan_status(PlanStatus::Running);
                    }
                    _ => self.escalate(
                        None,
                        "the integrated result fails the `test` check, and the debugger's fixes did not make it pass".into(),
                        &["retry", "abort"],
                    ),
                }
            }
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
            AgentError::Cancelled => {
                if let Some(task) = task {
                    self.set_status(task, TaskStatus::Cancelled, Some("cancelled".into()));
                } else {
                    self.plan.outcome = Some("cancelled".into());
                    self.set_plan_status(PlanStatus::Cancelled);
                }
            }
            AgentError::Budget(exceeded) => {
                if let Some(task) = task {
                    self.set_status(task, TaskStatus::Escalated, Some(exceeded.to_string()));
                }
                // Stop new calls: nothing else starts until the user answers (once).
                let asked = self
                    .plan
                    .escalation
                    .iter()
                    .chain(&self.plan.queued_escalations)
                    .any(|e| e.choices.iter().any(|c| c.id == "continue"));
                if !asked {
                    self.escalate(
                        None,
                        format!("{exceeded}; no more model calls are made"),
                        &["continue", "abort"],
                    );
                }
            }
            other => match task {
                Some(task) => self.fail_task(task, other.to_string()),
                None if role == Role::Planner => self.escalate(
                    None,
                    format!("the planner could not plan: {other}"),
                    &["retry", "abort"],
                ),
                None => self.fail_plan(format!("the {role} failed: {other}")),
            },
        }
    }

    // ---- Commands and escalations ---------------------------------------------------------

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Cancel => self.cancel_plan("cancelled by the user"),
            Command::CancelTask(id) => {
                if let Some(cancel) = self.workers.remove(&id) {
                    cancel.cancel();
                }
                if self.plan.task(&id).is_some_and(|t| !t.status.is_terminal()) {
                    self.set_status(
                        &id,
                        TaskStatus::Cancelled,
                        Some("cancelled by the user".into()),
                    );
                }
            }
            Command::Retry(id) => self.retry_task(&id),
            Command::Answer { escalation, choice } => self.answer(&escalation, &choice).await,
        }
    }

    fn escalate(&mut self, task: Option<&str>, question: String, choices: &[&str]) {
        let id = format!("e{}", self.plan.next_serial());
        if let Some(task) = task {
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
            id: id.clone(),
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
            self.apply_answer_sync(&id, task.map(str::to_owned), "abort");
            return;
        }
        if self.plan.escalation.is_some() {
            // One question at a time; this one waits its turn.
            self.plan.queued_escalations.push(escalation);
            return;
        }
        self.raise(escalation);
    }

    fn raise(&mut self, escalation: Escalation) {
        self.plan.escalation = Some(escalation.clone());
        let _ = self.context.events.send(Event::Escalated {
            plan: self.plan.id.clone(),
            escalation,
        });
    }

    async fn answer(&mut self, escalation: &str, choice: &str) {
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
        self.apply_answer_sync(escalation, pending.task, choice);
        if self.plan.escalation.is_none() && !self.plan.queued_escalations.is_empty() {
            let next = self.plan.queued_escalations.remove(0);
            self.raise(next);
        }
    }

    fn apply_answer_sync(&mut self, _escalation: &str, task: Option<String>, choice: &str) {
        match (choice, task) {
            ("abort", Some(task)) => self.abort_task(&task),
            ("abort", None) => {
                self.plan.outcome = Some("aborted after escalation".into());
                self.cancel_workers();
                for id in self
                    .plan
                    .tasks
                    .iter()
                    .filter(|t| !t.status.is_terminal())
                    .map(|t| t.id.clone())
                    .collect::<Vec<_>>()
                {
                    self.set_status(
                        &id,
                        TaskStatus::Cancelled,
                        Some("the plan was aborted".into()),
                    );
                }
                self.set_plan_status(PlanStatus::Escalated);
            }
            ("retry", Some(task)) => self.retry_task(&task),
            ("retry", None) => {
                if self.plan.tasks.is_empty() {
                    self.set_plan_status(PlanStatus::Planning);
                } else {
                    self.plan.fix_rounds = 0;
                    self.set_plan_status(PlanStatus::Running);
                }
            }
            ("send_back", Some(task)) => {
                if let Some(t) = self.plan.task_mut(&task) {
                    t.round += 1;
                }
                self.set_status(
                    &task,
                    TaskStatus::Pending,
                    Some("sent back for another round".into()),
                );
            }
            ("continue", _) => {
                self.budget.raise();
                if let Some(deadline) = self.deadline {
                    let extra = self.context.config.team.timeout_s.unwrap_or(600) / 2;
                    self.deadline =
                        Some(deadline.max(Instant::now()) + Duration::from_secs(extra.max(60)));
                }
                // Tasks stopped by the budget pick up where they were.
                let stopped: Vec<(String, bool)> = self
                    .plan
                    .tasks
                    .iter()
                    .filter(|t| t.status == TaskStatus::Escalated)
                    .map(|t| (t.id.clone(), t.result.is_some() && t.handoff.is_some()))
                    .collect();
                for (id, implemented) in stopped {
                    if implemented {
                        self.review_queue.push(id);
                    } else {
                        self.set_status(
                            &id,
                            TaskStatus::Pending,
                            Some("continuing past the budget".into()),
                        );
                    }
                }
                if self.plan.status == PlanStatus::Planning {
                    // The planner will run again.
                }
            }
            (other, _) => tracing::warn!("unknown answer {other:?}"),
        }
    }

    fn retry_task(&mut self, id: &str) {
        let Some(task) = self.plan.task(id) else {
            return;
        };
        if task.status.is_integrated() || !task.status.is_terminal() {
            return;
        }
        if let Some(task) = self.plan.task_mut(id) {
            task.round = 0;
            task.error = None;
            task.verdict = None;
            task.findings.clear();
            task.diagnosis = None;
        }
        // A rejected or failed result is not built upon: start again from where the task began.
        self.restart.insert(id.to_owned(), Restart::FromStart);
        // Tasks it blocked may go again too.
        let blocked: Vec<String> = self
            .plan
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Cancelled && t.depends_on.iter().any(|d| d == id))
            .map(|t| t.id.clone())
            .collect();
        self.set_status(id, TaskStatus::Pending, Some("retried".into()));
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

    fn on_timeout(&mut self) {
        self.deadline = None;
        self.journal(
            JournalEntry::new(&self.plan.id, "timeout")
                .reason("the plan's wall-time budget is spent"),
        );
        self.cancel_workers();
        for id in self
            .plan
            .tasks
            .iter()
            .filter(|t| matches!(t.status, TaskStatus::Running | TaskStatus::Reviewing))
            .map(|t| t.id.clone())
            .collect::<Vec<_>>()
        {
            self.set_status(
                &id,
                TaskStatus::Escalated,
                Some("stopped: the plan's wall-time budget is spent".into()),
            );
        }
        if self.plan.status == PlanStatus::Testing {
            self.set_plan_status(PlanStatus::Running);
        }
        self.escalate(
            None,
            format!(
                "the plan's wall-time budget (timeout_s = {} s) is spent",
                self.context.config.team.timeout_s.unwrap_or(0)
            ),
            &["continue", "abort"],
        );
    }

    fn cancel_workers(&mut self) {
        for (_, cancel) in self.workers.drain() {
            cancel.cancel();
        }
    }

    fn cancel_plan(&mut self, reason: &str) {
        self.cancel_workers();
        for id in self
            .plan
            .tasks
            .iter()
            .filter(|t| !t.status.is_terminal())
            .map(|t| t.id.clone())
            .collect::<Vec<_>>()
        {
            self.set_status(&id, TaskStatus::Cancelled, Some(reason.into()));
        }
        self.plan.escalation = None;
        self.plan.outcome = Some(reason.into());
        self.journal(JournalEntry::new(&self.plan.id, "cancelled").reason(reason));
        self.set_plan_status(PlanStatus::Cancelled);
    }

    // ---- State changes --------------------------------------------------------------------

    fn fail_task(&mut self, id: &str, reason: String) {
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
        // A failed resolve task fails the task it was resolving.
        if let Some(TaskKind::Resolve { of }) = self.plan.task(id).map(|t| t.kind.clone()) {
            self.fail_task(&of, format!("its conflict could not be resolved: {reason}"));
        }
    }

    /// Ends an escalated task on the user's "abort": it stays escalated, and is final.
    fn abort_task(&mut self, id: &str) {
        let question = self
            .plan
            .task(id)
            .and_then(|t| t.error.clone())
            .unwrap_or_default();
        if let Some(task) = self.plan.task_mut(id) {
            task.error = Some(
                format!("aborted after escalation: {question}")
                    .trim_end_matches(": ")
                    .to_owned(),
            );
            task.finished_at = Some(super::now());
        }
        self.journal(JournalEntry::new(&self.plan.id, "task_aborted").task(id));
        self.set_status(id, TaskStatus::Escalated, Some("aborted".into()));
        if let Some(TaskKind::Resolve { of }) = self.plan.task(id).map(|t| t.kind.clone()) {
            self.abort_task(&of);
        }
    }

    fn fail_plan(&mut self, reason: String) {
        self.journal(JournalEntry::new(&self.plan.id, "plan_failed").reason(reason.clone()));
        self.plan.outcome = Some(reason);
        self.cancel_workers();
        self.set_plan_status(PlanStatus::Failed);
    }

    fn set_status(&mut self, id: &str, status: TaskStatus, reason: Option<String>) {
        let plan = self.plan.id.clone();
        let Some(task) = self.plan.task_mut(id) else {
            return;
        };
        task.status = status;
        if status.is_terminal() || status == TaskStatus::Pending || status == TaskStatus::Approved {
            task.role = None;
        }
        let event = Event::TaskChanged {
            plan,
            task: id.to_owned(),
            title: task.title.clone(),
            status,
            role: task.role,
            reason,
        };
        let _ = self.context.events.send(event);
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

    /// Moves what an agent spent into the plan's record.
    fn absorb_spend(&mut self, task: &str, role: Role) {
        let Some(shared) = self.spend.get(task) else {
            return;
        };
        let now = *shared.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.plan.task(task).map(|t| t.spend).unwrap_or_default();
        let delta = Spend {
            calls: now.calls.saturating_sub(before.calls),
            input_tokens: now.input_tokens.saturating_sub(before.input_tokens),
            output_tokens: now.output_tokens.saturating_sub(before.output_tokens),
            cost_usd: (now.cost_usd - before.cost_usd).max(0.0),
            estimated: now.estimated,
        };
        if let Some(t) = self.plan.task_mut(task) {
            t.spend = now;
        }
        let add = |into: &mut Spend| {
            into.calls += delta.calls;
            into.input_tokens += delta.input_tokens;
            into.output_tokens += delta.output_tokens;
            into.cost_usd += delta.cost_usd;
            into.estimated |= delta.estimated;
        };
        add(&mut self.plan.spend);
        add(self.plan.spend_by_role.entry(role).or_default());
    }

    fn emit_agent_started(&self, task: &str, role: Role) {
        let _ = self.context.events.send(Event::AgentStarted {
            plan: self.plan.id.clone(),
            task: task.to_owned(),
            role,
        });
    }

    fn emit_agent_finished(&self, task: &str, role: Role, outcome: &Result<&str, String>) {
        let _ = self.context.events.send(Event::AgentFinished {
            plan: self.plan.id.clone(),
            task: task.to_owned(),
            role,
            outcome: match outcome {
                Ok(done) => (*done).to_owned(),
                Err(error) => format!("failed: {error}"),
            },
        });
    }

    fn journal(&self, entry: JournalEntry) {
        self.context.store.journal(&entry);
    }

    fn persist(&mut self) {
        self.plan.updated_at = super::now();
        if let Err(err) = self.context.store.save_plan(&self.plan) {
            tracing::error!("cannot save plan {}: {err}", self.plan.id);
        }
    }

    fn finish(&mut self) {
        let outcome = self
            .plan
            .outcome
            .clone()
            .unwrap_or_else(|| self.plan.status.as_str().to_owned());
        self.journal(
            JournalEntry::new(&self.plan.id, "plan_finished")
                .reason(format!("{}: {outcome}", self.plan.status.as_str())),
        );
        self.persist();
        let _ = self.context.events.send(Event::Finished {
            plan: self.plan.id.clone(),
            status: self.plan.status,
            outcome,
        });
    }
}

/// How a task restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// From its branch's head, with uncommitted leftovers removed.
    AtHead,
    /// From the commit it started from, its branch moved back there.
    FromStart,
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
