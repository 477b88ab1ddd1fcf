//! `workspace/didChangeConfiguration`: new editor settings.
//!
//! Push-model clients send the settings in the notification. Pull-model clients send `null`
//! and expect us to ask with `workspace/configuration`; that request is spawned with a timeout,
//! never awaited here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{ConfigurationItem, DidChangeConfigurationParams};

use crate::lsp::notify;
use crate::lsp::state::GlobalState;

const CONFIGURATION_TIMEOUT: Duration = Duration::from_secs(10);

pub fn handle(state: &Arc<GlobalState>, client: &Client, params: DidChangeConfigurationParams) {
    let pull = matches!(params.settings, Value::Null)
        && state
            .session()
            .and_then(|s| s.client_capabilities.workspace.as_ref())
            .and_then(|w| w.configuration)
            .unwrap_or(false);
    if !pull {
        notify::reload_config(state.clone(), client.clone(), Some(Some(params.settings)));
        return;
    }
    let state = state.clone();
    let client = client.clone();
    tokio::spawn(async move {
        let item = ConfigurationItem {
            scope_uri: None,
            section: Some("pitcrew".to_owned()),
        };
        match tokio::time::timeout(CONFIGURATION_TIMEOUT, client.configuration(vec![item])).await {
            Ok(Ok(mut values)) => {
                let settings = values.pop().filter(|v| !v.is_null());
                notify::reload_config(state, client, Some(settings));
            }
            Ok(Err(err)) => tracing::warn!("workspace/configuration failed: {err}"),
            Err(_) => tracing::warn!("the client did not answer workspace/configuration in time"),
        }
    });
}
