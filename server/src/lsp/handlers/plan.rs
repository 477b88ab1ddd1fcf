//! `pitcrew/plan` and `pitcrew/plans`: plan snapshots for plan views, from memory.

use tower_lsp_server::jsonrpc::Result;

use crate::lsp::ext::{PlanParams, PlanSnapshot, PlansResult};
use crate::lsp::state::GlobalState;
use crate::lsp::team::STARTUP_WAIT;
use crate::lsp::team::{commands::failed, views};

pub async fn handle(state: &GlobalState, params: PlanParams) -> Result<PlanSnapshot> {
    state.team.wait_started(STARTUP_WAIT).await;
    let team = state.team.get().map_err(failed)?;
    let running = team.service.running_plans();
    team.service.registry().inspect(|plans| {
        let plan = match &params.plan_id {
            Some(id) => plans.get(id),
            None => plans
                .values()
                .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))),
        };
        match plan {
            Some(plan) => Ok(views::plan_snapshot(plan, running.contains(&plan.id))),
            None => Err(failed(match &params.plan_id {
                Some(id) => format!("no plan {id}"),
                None => "there is no plan yet".to_owned(),
            })),
        }
    })
}

pub async fn all(state: &GlobalState) -> Result<PlansResult> {
    state.team.wait_started(STARTUP_WAIT).await;
    let team = state.team.get().map_err(failed)?;
    let running = team.service.running_plans();
    let mut plans: Vec<PlanSnapshot> = team.service.registry().inspect(|plans| {
        plans
            .values()
            .map(|p| views::plan_snapshot(p, running.contains(&p.id)))
            .collect()
    });
    plans.sort_by(|a, b| (&b.created_at, &b.plan_id).cmp(&(&a.created_at, &a.plan_id)));
    Ok(PlansResult { plans })
}
