//! Budgets: tokens and money per plan, per role and per task, and the plan's wall time. Every
//! model call is admitted before it is made and recorded after. Crossing a limit stops new
//! calls: an agent about to make one waits, with its work and conversation intact, until the
//! user raises the limit ("continue") or stops the plan; the orchestrator is alerted once so it
//! can ask.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::plan::Spend;
use crate::config::{Role, TeamConfig};
use crate::model::Usage;

/// The limits in force; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub plan_tokens: Option<u64>,
    pub plan_usd: Option<f64>,
    pub task_tokens: Option<u64>,
    pub role_tokens: BTreeMap<Role, u64>,
}

impl Limits {
    pub fn from_config(team: &TeamConfig) -> Self {
        Self {
            plan_tokens: team.budget_tokens,
            plan_usd: team.budget_usd,
            task_tokens: team.task_budget_tokens,
            role_tokens: team.role_budget_tokens.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the {what} budget is spent: {spent} of {limit}")]
pub struct BudgetExceeded {
    pub what: String,
    pub spent: String,
    pub limit: String,
}

#[derive(Debug, Default)]
struct Spent {
    plan: Spend,
    tasks: HashMap<String, Spend>,
    roles: BTreeMap<Role, Spend>,
}

#[derive(Debug, Default)]
pub struct Budget {
    limits: Mutex<Limits>,
    spent: Mutex<Spent>,
    /// Set when the plan's wall time is spent: no call is admitted until `raise`.
    halted: Mutex<Option<String>>,
    /// Wakes the agents waiting in `admit`.
    raised: Notify,
    /// Where crossings are reported (the orchestrator).
    alerts: Mutex<Option<mpsc::UnboundedSender<BudgetExceeded>>>,
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Mutex::new(limits),
            ..Self::default()
        }
    }

    /// Sends every crossing to `alerts`.
    pub fn set_alerts(&self, alerts: mpsc::UnboundedSender<BudgetExceeded>) {
        *self.alerts.lock().unwrap_or_else(|p| p.into_inner()) = Some(alerts);
    }

    /// Waits until a call for `role` on `task` may be made. Returns `Err(waited)` only when
    /// `cancel` fires first; `Ok(true)` when it had to wait for the user.
    pub async fn admit(
        &self,
        role: Role,
        task: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<bool, BudgetExceeded> {
        let mut waited = None;
        loop {
            // Register for the wake-up before checking, so a raise in between is not missed.
            let raised = self.raised.notified();
            let verdict = match self
                .halted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                Some(reason) => Err(BudgetExceeded {
                    what: "wall-time".into(),
                    spent: reason,
                    limit: "timeout_s".into(),
                }),
                None => self.check(role, task),
            };
            match verdict {
                Ok(()) => return Ok(waited.is_some()),
                Err(exceeded) => {
                    // Told at every crossing, the first and any left after a raise (spending
                    // went on meanwhile): otherwise nobody asks, and everyone waits.
                    if let Some(alerts) = &*self.alerts.lock().unwrap_or_else(|p| p.into_inner()) {
                        let _ = alerts.send(exceeded.clone());
                    }
                    waited.get_or_insert_with(|| exceeded.clone());
                    tokio::select! {
                        () = raised => {}
                        () = cancel.cancelled() => return Err(exceeded),
                    }
                }
            }
        }
    }

    /// Stops admitting calls (the plan's wall time is spent) until `raise`.
    pub fn halt(&self, reason: impl Into<String>) {
        *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.into());
    }

    /// Starts from what a resumed plan had already spent.
    pub fn seed(
        &self,
        plan: Spend,
        tasks: impl IntoIterator<Item = (String, Spend)>,
        roles: &BTreeMap<Role, Spend>,
    ) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        spent.plan = plan;
        spent.tasks = tasks.into_iter().collect();
        spent.roles = roles.clone();
    }

    /// Whether a call for `role` on `task` may be made.
    pub fn check(&self, role: Role, task: Option<&str>) -> Result<(), BudgetExceeded> {
        let limits = self
            .limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let over = |what: String, spent: u64, limit: u64| {
            (spent >= limit).then(|| BudgetExceeded {
                what,
                spent: format!("{spent} tokens"),
                limit: format!("{limit} tokens"),
            })
        };
        if let Some(limit) = limits.plan_tokens
            && let Some(exceeded) = over("plan token".into(), spent.plan.tokens(), limit)
        {
            return Err(exceeded);
        }
        if let Some(limit) = limits.plan_usd
            && spent.plan.cost_usd >= limit
        {
            return Err(BudgetExceeded {
                what: "plan money".into(),
                spent: format!("${:.4}", spent.plan.cost_usd),
                limit: format!("${limit:.4}"),
            });
        }
        if let Some(limit) = limits.role_tokens.get(&role) {
            let used = spent.roles.get(&role).map_or(0, Spend::tokens);
            if let Some(exceeded) = over(format!("{role} token"), used, *limit) {
                return Err(exceeded);
            }
        }
        if let (Some(limit), Some(task)) = (limits.task_tokens, task) {
            let used = spent.tasks.get(task).map_or(0, Spend::tokens);
            if let Some(exceeded) = over(format!("task {task} token"), used, limit) {
                return Err(exceeded);
            }
        }
        Ok(())
    }

    pub fn record(&self, role: Role, task: Option<&str>, usage: &Usage) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        spent.plan.add(usage);
        spent.roles.entry(role).or_default().add(usage);
        if let Some(task) = task {
            spent.tasks.entry(task.to_owned()).or_default().add(usage);
        }
    }

    /// Raises every limit by half and lifts a halt, when the user chooses to continue; the
    /// waiting agents go on.
    pub fn raise(&self) {
        *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.raise_limits();
        self.raised.notify_waiters();
    }

    /// Each limit grows by half of itself, and at least to half of itself beyond what is spent
    /// already (a single call can overshoot a limit by much): "continue" always leaves room.
    fn raise_limits(&self) {
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let raise = |limit: u64, used: u64| {
            limit
                .saturating_add(limit / 2)
                .max(used.saturating_add(limit / 2))
                .max(1)
        };
        limits.plan_tokens = limits.plan_tokens.map(|l| raise(l, spent.plan.tokens()));
        limits.plan_usd = limits
            .plan_usd
            .map(|usd| (usd * 1.5).max(spent.plan.cost_usd + usd / 2.0));
        let most_by_a_task = spent.tasks.values().map(Spend::tokens).max().unwrap_or(0);
        limits.task_tokens = limits.task_tokens.map(|l| raise(l, most_by_a_task));
        for (role, limit) in limits.role_tokens.iter_mut() {
            let used = spent.roles.get(role).map_or(0, Spend::tokens);
            *limit = raise(*limit, used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(tokens: u64, cost: f64) -> Usage {
        Usage {
            input_tokens: tokens,
            cost_usd: Some(cost),
            ..Usage::default()
        }
    }

    #[test]
    fn continuing_past_a_limit_overshot_by_one_call_leaves_room() {
        let budget = Budget::new(Limits {
            plan_tokens: Some(240),
            ..Limits::default()
        });
        // One call overshoots the limit threefold.
        budget.record(Role::Planner, None, &usage(751, 0.0));
        assert!(budget.check(Role::Implementer, Some("a")).is_err());
        budget.raise();
        assert!(
            budget.check(Role::Implementer, Some("a")).is_ok(),
            "the raise covers what is spent"
        );
    }

    #[tokio::test]
    async fn a_raise_that_is_not_enough_is_reported_again() {
        let budget = std::sync::Arc::new(Budget::new(Limits {
            plan_tokens: Some(100),
            ..Limits::default()
        }));
        let (alerts, mut received) = mpsc::unbounded_channel();
        budget.set_alerts(alerts);
        budget.record(Role::Planner, None, &usage(150, 0.0));
        let waiting = budget.clone();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let agent = tokio::spawn(async move { waiting.admit(Role::Planner, None, &stop).await });
        assert!(
            received.recv().await.is_some(),
            "the first crossing is reported"
        );
        // The user raises the limit, but another agent's call spends past it again before this
        // agent looks: it must say so again.
        budget.raise();
        budget.record(Role::Planner, None, &usage(10_000, 0.0));
        let again = tokio::time::timeout(std::time::Duration::from_secs(5), received.recv()).await;
        assert!(
            matches!(again, Ok(Some(_))),
            "reported again, so someone asks again"
        );
        cancel.cancel();
        let _ = agent.await;
    }

    #[test]
    fn each_limit_stops_calls_once_crossed() {
        let budget = Budget::new(Limits {
            plan_tokens: Some(1000),
            plan_usd: Some(1.0),
            task_tokens: Some(300),
            role_tokens: [(Role::Reviewer, 200)].into(),
        });
        assert!(budget.check(Role::Implementer, Some("a")).is_ok());
        budget.record(Role::Implementer, Some("a"), &usage(300, 0.1));
        let error = budget.check(Role::Implementer, Some("a")).unwrap_err();
        assert_eq!(error.what, "task a token");
        assert!(budget.check(Role::Implementer, Some("b")).is_ok());
        budget.record(Role::Reviewer, Some("b"), &usage(200, 0.1));
        assert_eq!(
            budget.check(Role::Reviewer, Some("c")).unwrap_err().what,
            "reviewer token"
        );
        budget.record(Role::Planner, None, &usage(100, 0.9));
        assert_eq!(
            budget.check(Role::Planner, None).unwrap_err().what,
            "plan money"
        );
        budget.raise();
        assert!(budget.check(Role::Planner, None).is_ok(), "raised by half");
    }

    #[tokio::test]
    async fn an_agent_over_budget_waits_for_the_user_then_goes_on() {
        let budget = std::sync::Arc::new(Budget::new(Limits {
            plan_tokens: Some(100),
            ..Limits::default()
        }));
        let (alerts, mut alerted) = mpsc::unbounded_channel();
        budget.set_alerts(alerts);
        budget.record(Role::Implementer, Some("a"), &usage(100, 0.0));
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget
                    .admit(Role::Implementer, Some("a"), &CancellationToken::new())
                    .await
            })
        };
        let alert = alerted.recv().await.unwrap();
        assert_eq!(alert.what, "plan token");
        assert!(!waiting.is_finished());
        budget.raise();
        assert_eq!(
            waiting.await.unwrap(),
            Ok(true),
            "admitted after the raise, having waited"
        );

        budget.halt("the plan's wall time is spent");
        let cancel = CancellationToken::new();
        cancel.cancel();
        let refused = budget
            .admit(Role::Planner, None, &cancel)
            .await
            .unwrap_err();
        assert_eq!(refused.what, "wall-time");
    }
}
