//! `PlanRegistry`: the latest state of every plan the process knows, in memory, written by
//! the orchestrators and the user's actions with compare-and-save, read by requests that must
//! answer at once. A leaf of `team` (plans only), so the orchestrator and the service both
//! depend on it and not on each other.

use std::collections::HashMap;
use std::sync::Mutex;

use super::plan::Plan;

/// The latest state of every plan the process knows, by id. The orchestrators write it on
/// every change; requests read it.
#[derive(Debug, Default)]
pub struct PlanRegistry {
    plans: Mutex<HashMap<String, Plan>>,
}

impl PlanRegistry {
    /// Records `plan`, unless a newer revision of it is already recorded. Returns whether it
    /// was recorded.
    pub fn update(&self, plan: &Plan) -> bool {
        let mut plans = self.lock();
        if plans
            .get(&plan.id)
            .is_some_and(|known| known.revision > plan.revision)
        {
            return false;
        }
        plans.insert(plan.id.clone(), plan.clone());
        true
    }

    /// Records a save of `plan` made from revision `base` (its revision is `base + 1`), only
    /// if `base` is still the recorded revision: two writers that started from the same state
    /// cannot undo each other (an orchestrator finishing up and the user applying the plan it
    /// has just finished). Returns whether it was recorded.
    pub fn save_over(&self, plan: &Plan, base: u64) -> bool {
        let mut plans = self.lock();
        if plans
            .get(&plan.id)
            .is_some_and(|known| known.revision != base)
        {
            return false;
        }
        plans.insert(plan.id.clone(), plan.clone());
        true
    }

    pub fn get(&self, id: &str) -> Option<Plan> {
        self.lock().get(id).cloned()
    }

    /// The most recently created plan.
    pub fn latest(&self) -> Option<Plan> {
        self.lock()
            .values()
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
            .cloned()
    }

    /// Reads the plans in place, without copying them (requests on the editor's hot path).
    pub fn inspect<R>(&self, read: impl FnOnce(&HashMap<String, Plan>) -> R) -> R {
        read(&self.lock())
    }

    pub fn all(&self) -> Vec<Plan> {
        let mut plans: Vec<Plan> = self.lock().values().cloned().collect();
        plans.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        plans
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Plan>> {
        self.plans.lock().unwrap_or_else(|p| p.into_inner())
    }
}
