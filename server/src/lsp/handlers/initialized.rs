//! `initialized`: load the configuration and watch `pitcrew.toml`, both in the background.

use std::sync::Arc;
use std::time::Duration;

use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{
    DidChangeWatchedFilesRegistrationOptions, FileSystemWatcher, GlobPattern, Registration,
};

use crate::config::WORKSPACE_FILE;
use crate::lsp::notify;
use crate::lsp::state::GlobalState;

/// How long to wait for the client to acknowledge a registration.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(10);

pub fn handle(state: &Arc<GlobalState>, client: &Client) {
    notify::reload_config(state.clone(), client.clone(), None);

    let supports_watching = state
        .session()
        .and_then(|s| s.client_capabilities.workspace.as_ref())
        .and_then(|w| w.did_change_watched_files.as_ref())
        .and_then(|w| w.dynamic_registration)
        .unwrap_or(false);
    if supports_watching {
        let client = client.clone();
        tokio::spawn(async move {
            let options = DidChangeWatchedFilesRegistrationOptions {
                watchers: vec![FileSystemWatcher {
                    glob_pattern: GlobPattern::String(format!("**/{WORKSPACE_FILE}")),
                    kind: None,
                }],
            };
            let registration = Registration {
                id: "pitcrew-config-watcher".to_owned(),
                method: "workspace/didChangeWatchedFiles".to_owned(),
                register_options: serde_json::to_value(options).ok(),
            };
            match tokio::time::timeout(
                REGISTRATION_TIMEOUT,
                client.register_capability(vec![registration]),
            )
            .await
            {
                Ok(Ok(())) => tracing::debug!("watching {WORKSPACE_FILE}"),
                Ok(Err(err)) => {
                    tracing::warn!("the client refused to watch {WORKSPACE_FILE}: {err}")
                }
                Err(_) => tracing::warn!("the client did not answer registerCapability in time"),
            }
        });
    }
}
