//! Background work that reports to the client through notifications.

use std::sync::Arc;

use serde_json::Value;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::MessageType;

use super::state::{GlobalState, Reload};

/// Reloads the configuration off the async workers, then tells the user what is wrong with it,
/// if anything. `editor_settings` as in [`GlobalState::reload_config`].
pub fn reload_config(
    state: Arc<GlobalState>,
    client: Client,
    editor_settings: Option<Option<Value>>,
) {
    let state_for_team = state.clone();
    tokio::spawn(async move {
        let outcome =
            tokio::task::spawn_blocking(move || state.reload_config(editor_settings)).await;
        match outcome {
            Ok(Reload::Applied) => {
                tracing::info!("configuration loaded");
                super::team::configure(state_for_team, client).await;
            }
            Ok(Reload::Rejected(errors)) => {
                let details: Vec<String> = errors.iter().map(ToString::to_string).collect();
                for line in &details {
                    tracing::error!("configuration: {line}");
                }
                let blocker = state_for_team.config_state().blocker();
                let message = match blocker {
                    Some(blocker) => format!(
                        "pitcrew: {blocker}\npitcrew loads it again when pitcrew.toml is saved \
                         or the editor's pitcrew settings change; after editing your user \
                         configuration file, restart the server. `pitcrew doctor` checks it too."
                    ),
                    None => format!(
                        "pitcrew: the configuration has {} problem{}; still using the last good \
                         one until {} fixed.\n{}",
                        details.len(),
                        if details.len() == 1 { "" } else { "s" },
                        if details.len() == 1 {
                            "it is"
                        } else {
                            "they are"
                        },
                        details.join("\n")
                    ),
                };
                client
                    .show_message(MessageType::ERROR, message.clone())
                    .await;
                // The team still starts (plans can be seen and applied), on the last good
                // configuration or, when there is none, the defaults; new work is refused
                // with the problems until they are fixed.
                super::team::configure(state_for_team, client).await;
            }
            Err(err) => tracing::error!("configuration reload failed: {err}"),
        }
    });
}
