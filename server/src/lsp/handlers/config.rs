//! `pitcrew/debug/config`: the configuration in force and what the last load said.

use tower_lsp_server::jsonrpc::Result;

use crate::lsp::ext::ConfigResult;
use crate::lsp::state::GlobalState;

pub fn handle(state: &GlobalState) -> Result<ConfigResult> {
    let config = state.config_state();
    Ok(ConfigResult {
        config: serde_json::to_value(&*config.current).unwrap_or_default(),
        sources: config.sources.clone(),
        errors: config.errors.iter().map(ToString::to_string).collect(),
    })
}
