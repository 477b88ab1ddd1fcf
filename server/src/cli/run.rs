//! `pitcrew run "<goal>"`: the whole team, headless, in the current repository.
//!
//! Plans (or resumes an unfinished plan with the same goal), runs the team with live progress,
//! answers escalations (at a prompt when interactive, "abort" otherwise), prints a summary, and
//! with `--yes` applies the integrated result to the working tree by three-way merge. Exits 0
//! only when the plan succeeded.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::output;
use crate::config::{self, ConfigPaths, Role};
use crate::git::{self, GitRepo};
use crate::model::Models;
use crate::team::plan::{Escalation, Plan, PlanStatus, TaskStatus, Verdict, spend_words};
use crate::team::store::JournalEntry;
use crate::team::{self, Command, Event, Store, TeamContext};

/// How many questions `--answer` answers before "abort" takes over.
const MAX_STANDING_ANSWERS: u32 = 3;

pub struct RunOptions {
    pub goal: String,
    pub yes: bool,
    pub json: bool,
    /// The answer to give every question when nobody is at a terminal (default: abort).
    pub answer: Option<String>,
    /// Plan only, without running the tasks (`pitcrew plan`).
    pub plan_only: bool,
}

/// Everything a CLI command needs about the repository it runs in.
pub struct Setup {
    pub repo: GitRepo,
    pub store: Arc<Store>,
    pub config: Arc<config::Config>,
}

/// Finds the repository and its configuration and state; the error is for the user.
pub fn setup(cwd: &Path) -> Result<Setup, String> {
    setup_with(cwd, |workdir| ConfigPaths::discover(Some(workdir)))
}

/// As `setup`, with the configuration read only from the files `paths` names for the
/// repository's working tree (the demo ignores the user's own configuration).
pub fn setup_with(cwd: &Path, paths: impl FnOnce(&Path) -> ConfigPaths) -> Result<Setup, String> {
    let repo = GitRepo::discover(cwd).map_err(|err| match err {
        git::GitError::NotARepository(_) => format!(
            "{} is not inside a git repository; pitcrew works in one (run `git init`)",
            cwd.display()
        ),
        other => other.to_string(),
    })?;
    let loaded = config::load(&paths(repo.workdir()), None, None);
    let config = loaded.config.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        format!("the configuration has problems:\n{}", lines.join("\n"))
    })?;
    let store = Store::open(repo.state_dir())
        .map_err(|e| format!("cannot open {}: {e}", repo.state_dir().display()))?;
    Ok(Setup {
        repo,
        store: Arc::new(store),
        config: Arc::new(config),
    })
}

pub async fn run(cwd: &Path, options: RunOptions) -> i32 {
    match setup(cwd) {
        Ok(setup) => run_in(setup, options).await,
        Err(error) => {
            output::error(&format!("pitcrew run: {error}"));
            2
        }
    }
}

/// `pitcrew run` in a repository already set up.
pub async fn run_in(setup: Setup, options: RunOptions) -> i32 {
    for role in [Role::Planner, Role::Implementer, Role::Reviewer] {
        if setup.config.model_for(role).is_none() {
            output::error(&format!(
                "pitcrew run: no model for the {role}: configure [models.default] (see `pitcrew doctor`)"
            ));
            return 2;
        }
    }
    for line in team::housekeeping::finish_interrupted_applies(&setup.repo, &setup.store).await {
        output::error(&format!("pitcrew: {line}"));
    }
    team::housekeeping::expire_snapshots(&setup.repo, &setup.store).await;
    if let Some(warning) = team::sandbox_warning(&setup.config) {
        output::error(&format!("pitcrew: {warning}"));
    }
    let models = match Models::from_config(&setup.config) {
        Ok(models) => Arc::new(models),
        Err(error) => {
            output::error(&format!("pitcrew run: {error}"));
            return 2;
        }
    };
    // Resume an unfinished plan with the same goal (taking its lock first, then reading it,
    // so another process's newer state is never overwritten), or start one.
    let mut resumed = None;
    for candidate in setup.store.plans().into_iter().rev() {
        if candidate.goal != options.goal || candidate.status.is_terminal() {
            continue;
        }
        match setup.store.lock_plan(&candidate.id) {
            Ok(Some(lock)) => match setup.store.load_plan(&candidate.id) {
                Ok(plan) if !plan.status.is_terminal() => {
                    resumed = Some((plan, lock));
                    break;
                }
                _ => {}
            },
            Ok(None) => {
                output::error(&format!(
                    "pitcrew run: plan {} for this goal is being run by another pitcrew process",
                    candidate.id
                ));
                return 1;
            }
            Err(err) => {
                output::error(&format!(
                    "pitcrew run: cannot lock plan {}: {err}",
                    candidate.id
                ));
                return 1;
            }
        }
    }
    let (plan, lock) = match resumed {
        Some((plan, lock)) => {
            if !options.json {
                output::line(&format!(
                    "Resuming plan {} ({}).",
                    plan.id,
                    plan.status.as_str()
                ));
            }
            setup
                .store
                .journal(&JournalEntry::new(&plan.id, "resumed").reason("pitcrew run"));
            (plan, lock)
        }
        None => {
            let id = team::new_plan_id();
            let lock = match setup.store.lock_plan(&id) {
                Ok(Some(lock)) => lock,
                _ => {
                    output::error(&format!("pitcrew run: cannot lock the new plan {id}"));
                    return 1;
                }
            };
            let snapshot_id = id.clone();
            let snapshot = match setup
                .repo
                .run(move |r| git::snapshot::create(r, &snapshot_id, &[]))
                .await
            {
                Ok(snapshot) => snapshot,
                Err(err) => {
                    output::error(&format!(
                        "pitcrew run: cannot snapshot the working tree: {err}"
                    ));
                    return 1;
                }
            };
            let plan = Plan::new(id, options.goal.clone(), snapshot.commit.to_string());
            setup
                .store
                .journal(&JournalEntry::new(&plan.id, "plan_created").reason(plan.goal.clone()));
            (plan, lock)
        }
    };
    if let Err(err) = setup.store.save_plan(&plan) {
        output::error(&format!("pitcrew run: cannot save plan {}: {err}", plan.id));
        return 1;
    }
    // Repair what a crash left, but only of plans no other process is running.
    let store = setup.store.clone();
    let own = plan.id.clone();
    let recovered = setup
        .repo
        .run(move |r| {
            git::worktree::recover_where(r, |plan| {
                plan == own || matches!(store.lock_plan(plan), Ok(Some(_)))
            })
        })
        .await;
    match recovered {
        Ok(recovery) if recovery != Default::default() => {
            tracing::warn!("recovered from an earlier crash: {recovery:?}");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!("recovery failed: {err}"),
    }

    let (events, mut receiver) = broadcast::channel(4096);
    let (commands, command_receiver) = mpsc::channel(16);
    let context = TeamContext {
        repo: setup.repo.clone(),
        store: setup.store.clone(),
        config: setup.config.clone(),
        models,
        events,
        registry: Default::default(),
    };
    let plan_id = plan.id.clone();
    let started = Instant::now();
    let mut orchestrator = if options.plan_only {
        tokio::spawn(team::orchestrator::plan_only(
            context,
            plan,
            command_receiver,
        ))
    } else {
        tokio::spawn(team::orchestrator::run(context, plan, command_receiver))
    };
    let interactive = std::io::stdin().is_terminal() && !options.json && options.answer.is_none();
    let mut renderer = Renderer::new(options.json, started);
    if !options.json {
        output::line(&format!("pitcrew plan {plan_id}: {}", options.goal));
    }
    let mut interrupted = false;
    let mut answers_given = 0;
    let plan = loop {
        tokio::select! {
            finished = &mut orchestrator => match finished {
                Ok(plan) => break plan,
                Err(err) => {
                    output::error(&format!("pitcrew run: the orchestrator crashed: {err}"));
                    return 1;
                }
            },
            event = receiver.recv() => match event {
                Ok(event) => {
                    renderer.event(&event);
                    if let Event::Escalated { escalation, .. } = &event {
                        // A standing answer is given a few times, not forever (a test that
                        // never passes would be retried without end).
                        let given = match options.answer.as_deref() {
                            Some(given) if answers_given < MAX_STANDING_ANSWERS => {
                                answers_given += 1;
                                Some(given)
                            }
                            Some(_) => {
                                renderer.note(&format!("--answer was used {MAX_STANDING_ANSWERS} times; answering \"abort\" from now on."));
                                Some("abort")
                            }
                            None => None,
                        };
                        let choice = answer(escalation, interactive, given, &mut renderer).await;
                        let _ = commands.send(Command::Answer { escalation: escalation.id.clone(), choice }).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!("{n} progress events dropped"),
                Err(broadcast::error::RecvError::Closed) => {}
            },
            _ = tokio::signal::ctrl_c() => {
                if interrupted {
                    renderer.note("Quitting now; the plan resumes with `pitcrew run` and the same goal.");
                    return 130;
                }
                interrupted = true;
                renderer.note("Interrupted: cancelling the plan (press Ctrl-C again to quit at once).");
                let _ = commands.send(Command::Cancel).await;
            }
        }
    };
    while let Ok(event) = receiver.try_recv() {
        renderer.event(&event);
    }
    renderer.clear();

    let mut plan = plan;
    let mut apply_report = None;
    let mut apply_refused = false;
    if plan.status == PlanStatus::Ready && (options.yes || setup.config.team.auto_apply) {
        match head_moved(&setup, &plan).await {
            // Nobody is asked under --yes: a result for another branch is not applied.
            Ok(Some(moved)) => {
                apply_refused = true;
                output::error(&format!(
                    "pitcrew run: the result was not applied: {moved}. Look first (`git diff {} {}`), \
                     then apply it with `pitcrew apply {}`, which asks.",
                    &plan.base[..plan.base.len().min(12)],
                    plan.integration_branch,
                    plan.id
                ));
            }
            Ok(None) => match apply_and_record(&setup, &mut plan).await {
                Ok(report) => apply_report = Some(report),
                Err(err) => {
                    apply_refused = true;
                    output::error(&format!("pitcrew run: could not apply the result: {err}"))
                }
            },
            Err(err) => {
                apply_refused = true;
                output::error(&format!("pitcrew run: could not apply the result: {err}"))
            }
        }
    }
    drop(lock);

    if options.plan_only {
        let planned = !plan.tasks.is_empty();
        if options.json {
            output::line(&json!({"type": "summary", "plan": plan, "ok": planned}).to_string());
        } else {
            output::line(&plan_summary(&plan));
        }
        return if planned { 0 } else { 1 };
    }
    let succeeded = matches!(plan.status, PlanStatus::Ready | PlanStatus::Applied)
        && !apply_refused
        && apply_report.as_ref().is_none_or(|r| r.is_clean());
    if options.json {
        output::line(
            &json!({"type": "summary", "plan": plan, "applied": apply_report, "ok": succeeded, "elapsed_ms": started.elapsed().as_millis() as u64})
                .to_string(),
        );
    } else {
        output::line(&summary(
            &plan,
            apply_report.as_ref(),
            started.elapsed().as_secs_f64(),
        ));
    }
    if succeeded { 0 } else { 1 }
}

/// Applies a ready plan to the working tree and records it: the plan becomes `applied` when
/// every file applied cleanly, and the journal says what happened either way.
pub async fn apply_and_record(
    setup: &Setup,
    plan: &mut Plan,
) -> Result<git::apply::ApplyReport, String> {
    let report = apply(setup, plan).await?;
    if report.is_clean() {
        plan.mark_applied(&[]);
        plan.revision += 1;
        if let Err(err) = setup.store.save_plan(plan) {
            output::error(&format!(
                "pitcrew: the result was applied, but plan {} could not be saved as applied: {err}",
                plan.id
            ));
        }
    }
    setup.store.journal(
        &JournalEntry::new(&plan.id, "applied")
            .role(Role::Integrator)
            .reason(format!(
                "{} written, {} merged, {} deleted, {} conflicts",
                report.written.len(),
                report.merged.len(),
                report.deleted.len(),
                report.conflicts.len()
            )),
    );
    Ok(report)
}

/// Applies a ready plan's integrated result to the working tree, whole or not at all.
pub async fn apply(setup: &Setup, plan: &Plan) -> Result<git::apply::ApplyReport, String> {
    let base = git2::Oid::from_str(&plan.base).map_err(|e| e.to_string())?;
    let branch = plan.integration_branch.clone();
    let name = plan.id.clone();
    setup
        .repo
        .run(move |r| {
            let head = r
                .find_branch(&branch, git2::BranchType::Local)
                .and_then(|b| b.get().peel_to_commit())
                .map(|c| c.id())
                .map_err(|e| git::GitError::Refused(format!("{branch}: {e}")))?;
            git::apply::apply_to_workdir(r, &name, base, head)
        })
        .await
        .map_err(|e| e.to_string())
}

/// Whether HEAD has left the commit `plan` started from (see `git::apply::head_moved`).
pub async fn head_moved(setup: &Setup, plan: &Plan) -> Result<Option<String>, String> {
    let base = git2::Oid::from_str(&plan.base).map_err(|e| e.to_string())?;
    setup
        .repo
        .run(move |r| git::apply::head_moved(r, base))
        .await
        .map_err(|e| e.to_string())
}

/// Picks an answer: the one given with `--answer` when it is offered, at a prompt when someone
/// is there, "abort" otherwise.
async fn answer(
    escalation: &Escalation,
    interactive: bool,
    given: Option<&str>,
    renderer: &mut Renderer,
) -> String {
    if let Some(given) = given {
        let offered = escalation.choices.iter().any(|c| c.id == given);
        let choice = if offered { given } else { "abort" };
        renderer.note(&format!(
            "Question: {} — answering \"{choice}\"{}.",
            escalation.question,
            if offered {
                " (--answer)"
            } else {
                " (--answer was not one of the choices)"
            }
        ));
        return choice.to_owned();
    }
    if !interactive {
        renderer.note(&format!(
            "Question: {} — answering \"abort\" (not interactive; see --answer).",
            escalation.question
        ));
        return "abort".into();
    }
    renderer.suspend();
    let mut prompt = format!("\nQuestion: {}\n", escalation.question);
    for (i, choice) in escalation.choices.iter().enumerate() {
        prompt.push_str(&format!("  {}) {}\n", i + 1, choice.label));
    }
    prompt.push_str("Answer with a number: ");
    output::error(prompt.trim_end_matches('\n'));
    let choices = escalation.choices.clone();
    let picked = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok()?;
        let n: usize = line.trim().parse().ok()?;
        choices.get(n.checked_sub(1)?).map(|c| c.id.clone())
    })
    .await
    .ok()
    .flatten();
    picked.unwrap_or_else(|| "abort".into())
}

/// Live progress: bars on a terminal, lines otherwise, JSON lines with `--json`.
struct Renderer {
    json: bool,
    started: Instant,
    bars: Option<MultiProgress>,
    agents: HashMap<(String, Role), ProgressBar>,
    /// The last status shown per task: an event that changes only the role is not news.
    statuses: HashMap<String, TaskStatus>,
}

impl Renderer {
    fn new(json: bool, started: Instant) -> Self {
        let bars = (!json && std::io::stdout().is_terminal()).then(MultiProgress::new);
        Self {
            json,
            started,
            bars,
            agents: HashMap::new(),
            statuses: HashMap::new(),
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.started.elapsed().as_secs_f64())
    }

    fn note(&mut self, text: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None if self.json => {}
            None => output::line(text),
        }
    }

    fn suspend(&mut self) {
        if let Some(bars) = &self.bars {
            bars.suspend(|| {});
        }
    }

    fn clear(&mut self) {
        for (_, bar) in self.agents.drain() {
            bar.finish_and_clear();
        }
    }

    fn event(&mut self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                output::line(&line);
            }
            return;
        }
        let stamp = self.stamp();
        match event {
            Event::AgentStarted { task, role, .. } => {
                let label = agent_label(task, *role);
                if let Some(bars) = &self.bars {
                    let bar = bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(label);
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    self.agents.insert((task.clone(), *role), bar);
                } else {
                    output::line(&format!("{stamp} {label}: started"));
                }
            }
            Event::Activity {
                task,
                role,
                message,
                tokens,
                cached_tokens,
                cost_usd,
                saved_usd,
                ..
            } => {
                let spend = spend_words(*tokens, *cached_tokens, *cost_usd, *saved_usd);
                match self.agents.get(&(task.clone(), *role)) {
                    Some(bar) => bar.set_message(format!("{message} · {spend}")),
                    None if self.bars.is_none() => output::line(&format!(
                        "{stamp} {}: {message} · {spend}",
                        agent_label(task, *role)
                    )),
                    None => {}
                }
            }
            Event::AgentFinished {
                task,
                role,
                outcome,
                ..
            } => {
                let line = format!("{stamp} {}: {outcome}", agent_label(task, *role));
                match self.agents.remove(&(task.clone(), *role)) {
                    Some(bar) => {
                        bar.finish_and_clear();
                        self.note(&line);
                    }
                    None => self.note(&line),
                }
            }
            Event::TaskChanged {
                task,
                status,
                reason,
                ..
            } => {
                if reason.is_none() && self.statuses.get(task) == Some(status) {
                    return;
                }
                self.statuses.insert(task.clone(), *status);
                let line = match (status, reason) {
                    // Merging is the integrator's work, done without a model: say who.
                    (TaskStatus::Integrating, _) => format!(
                        "{stamp} {}: merging into the integration branch",
                        agent_label(task, Role::Integrator)
                    ),
                    (_, Some(reason)) => {
                        format!("{stamp} task {task} is {}: {reason}", status.as_str())
                    }
                    (_, None) => format!("{stamp} task {task} is {}", status.as_str()),
                };
                self.note(&line);
            }
            Event::PlanChanged { status, .. } => {
                let line = match status {
                    PlanStatus::Testing => format!(
                        "{stamp} {}: running `test` on the integrated result",
                        agent_label(Role::Integrator.as_str(), Role::Integrator)
                    ),
                    _ => format!("{stamp} plan is {}", status.as_str()),
                };
                self.note(&line);
            }
            Event::Findings { task, findings, .. } => {
                for finding in findings.iter().take(5) {
                    self.note(&format!(
                        "{stamp}   {task}: {:?} {}:{}: {}",
                        finding.severity, finding.path, finding.line, finding.message
                    ));
                }
                if findings.len() > 5 {
                    self.note(&format!(
                        "{stamp}   {task}: and {} more findings",
                        findings.len() - 5
                    ));
                }
            }
            Event::Escalated { .. } | Event::Finished { .. } => {}
        }
    }
}

/// "implementer lines", aligned; the planner plans the whole goal, so it is just "planner".
fn agent_label(task: &str, role: Role) -> String {
    if task == role.as_str() {
        role.as_str().to_owned()
    } else {
        format!("{:<11} {task}", role.as_str())
    }
}

/// The task graph of a plan that has not run yet.
fn plan_summary(plan: &Plan) -> String {
    if plan.tasks.is_empty() {
        return format!(
            "\nPlan {} has no tasks: {}",
            plan.id,
            plan.outcome
                .as_deref()
                .unwrap_or("the planner did not finish")
        );
    }
    let mut out = format!("\nPlan {}: {}\n", plan.id, plan.goal);
    for task in &plan.tasks {
        out.push_str(&format!("  {:<16} {}", task.id, task.title));
        if !task.depends_on.is_empty() {
            out.push_str(&format!(" (after {})", task.depends_on.join(", ")));
        }
        out.push('\n');
        for line in task.instructions.lines() {
            out.push_str(&format!("      {line}\n"));
        }
    }
    out.push_str(&format!(
        "Run it with `pitcrew run \"{}\"` (it continues this plan).",
        plan.goal.replace('"', "\\\"")
    ));
    out
}

/// The closing summary: tasks, verdicts, checks, spend, time, and what to do next.
pub fn summary(plan: &Plan, applied: Option<&git::apply::ApplyReport>, seconds: f64) -> String {
    let mut out = format!(
        "\nPlan {} is {}{}\n",
        plan.id,
        plan.status.as_str(),
        plan.outcome
            .as_ref()
            .map(|o| format!(": {o}"))
            .unwrap_or_default()
    );
    for task in &plan.tasks {
        let verdict = match task.verdict {
            Some(Verdict::Approve) => "approved",
            Some(Verdict::RequestChanges) => "changes requested",
            Some(Verdict::Reject) => "rejected",
            None => "-",
        };
        let checks: Vec<String> = task
            .checks
            .iter()
            .map(|c| format!("{} {}", c.name, if c.passed { "ok" } else { "FAILED" }))
            .collect();
        out.push_str(&format!(
            "  {:<14} {:<10} {:<18} round {}  {}  {}{}\n",
            task.id,
            task.status.as_str(),
            verdict,
            task.round + 1,
            if checks.is_empty() {
                "no checks".to_owned()
            } else {
                checks.join(", ")
            },
            spend_words(
                task.spend.tokens(),
                task.spend.cache_read_tokens,
                task.spend.cost_usd,
                task.spend.saved_usd
            ),
            task.error
                .as_ref()
                .map(|e| format!("\n      {e}"))
                .unwrap_or_default()
        ));
    }
    if let Some(test) = &plan.integration_test {
        out.push_str(&format!(
            "  integration: `{}` {} on {}\n",
            test.name,
            if test.passed { "passed" } else { "FAILED" },
            plan.integration_branch
        ));
    }
    out.push_str(&format!(
        "  spent: {} tokens ({} in{}, {} out{}) in {} model calls{}; {seconds:.1} s\n",
        plan.spend.tokens(),
        plan.spend.input_tokens,
        if plan.spend.cache_read_tokens > 0 {
            format!(
                " of which {} read from the prompt cache",
                plan.spend.cache_read_tokens
            )
        } else {
            String::new()
        },
        plan.spend.output_tokens,
        if plan.spend.estimated {
            ", some estimated"
        } else {
            ""
        },
        plan.spend.calls,
        if plan.spend.cost_usd > 0.0 {
            format!(
                ", ${:.4}{}",
                plan.spend.cost_usd,
                if plan.spend.saved_usd > 0.0 {
                    format!(" (caching saved ${:.4})", plan.spend.saved_usd)
                } else {
                    String::new()
                }
            )
        } else {
            String::new()
        },
    ));
    match (plan.status, applied) {
        (_, Some(report)) if report.is_clean() => {
            out.push_str(&format!(
                "Applied to your working tree: {} written, {} merged with your edits, {} deleted.\n",
                report.written.len(),
                report.merged.len(),
                report.deleted.len()
            ));
        }
        (_, Some(report)) => {
            out.push_str(&format!(
                "Nothing was applied: {} of the result's files conflict with your changes, and a \
                 result is applied whole or not at all.\n",
                report.conflicts.len()
            ));
            for conflict in &report.conflicts {
                out.push_str(&format!("  {}: {}\n", conflict.path, conflict.reason));
                for region in &conflict.regions {
                    out.push_str(&format!(
                        "    lines {}-{}: yours {:?}, the agents' {:?}\n",
                        region.ours_start_line + 1,
                        region.ours_start_line + region.ours_line_count.max(1),
                        region.ours.trim_end(),
                        region.theirs.trim_end()
                    ));
                }
            }
            out.push_str(&format!(
                "Resolve them (or undo your changes to those lines) and run `pitcrew apply {}` again.\n",
                plan.id
            ));
        }
        (PlanStatus::Ready, None) => out.push_str(&format!(
            "The result is on branch {}. Apply it with `pitcrew apply {}` (a three-way merge \
             that keeps your edits), or look first: `git diff {} {}`.\n",
            plan.integration_branch,
            plan.id,
            &plan.base[..plan.base.len().min(12)],
            plan.integration_branch
        )),
        _ => {}
    }
    if let Some(escalation) = &plan.escalation {
        out.push_str(&format!("Open question: {}\n", escalation.question));
    }
    out.push_str(&format!(
        "See `pitcrew log` for who did what, and `git branch --list 'pitcrew/{}/*'` for the branches.",
        plan.id
    ));
    out
}
