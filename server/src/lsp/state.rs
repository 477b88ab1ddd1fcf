//! The server's state, shared by every handler.
//!
//! Locks here are `std::sync::Mutex`es held only for synchronous work: nothing holds one across
//! an `.await`. When two are needed, they are taken in this order: documents, findings, then
//! any other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::ClientCapabilities;

use super::findings::FindingStore;
use super::team::TeamState;
use crate::config::{self, Config, ConfigError, ConfigPaths, SourceReport};
use crate::text::{DocumentStore, PositionEncoding};

/// What `initialize` settled; set once.
#[derive(Debug)]
pub struct Session {
    pub encoding: PositionEncoding,
    /// The workspace root, when the client named a local folder.
    pub root: Option<PathBuf>,
    pub client_capabilities: ClientCapabilities,
    pub initialization_options: Option<Value>,
}

/// The configuration in force and what the last load said.
#[derive(Debug, Default)]
pub struct ConfigState {
    /// The last configuration that loaded without errors; pitcrew keeps running on it.
    pub current: Arc<Config>,
    /// The editor's settings from the last `didChangeConfiguration`, if any.
    pub editor_settings: Option<Value>,
    pub sources: Vec<SourceReport>,
    /// The errors of the last load; empty when it succeeded.
    pub errors: Vec<ConfigError>,
    /// Whether any load has succeeded: `current` is a configuration the user wrote, not the
    /// defaults.
    pub loaded_once: bool,
    /// Interrupted plans were not resumed because the configuration could not load: resume
    /// them once it does.
    pub deferred_resume: bool,
}

impl ConfigState {
    /// Why nothing can run: the configuration has errors and none ever loaded, so the team
    /// would run on defaults the user did not choose. Names every problem (file, line, key).
    pub fn blocker(&self) -> Option<String> {
        if self.errors.is_empty() || self.loaded_once {
            return None;
        }
        Some(format!(
            "the configuration has {} problem{}, and nothing can run until {} fixed:\n{}",
            self.errors.len(),
            if self.errors.len() == 1 { "" } else { "s" },
            if self.errors.len() == 1 {
                "it is"
            } else {
                "they are"
            },
            self.errors
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

#[derive(Default)]
pub struct GlobalState {
    /// Every open document, exactly as the client has it.
    documents: Mutex<DocumentStore>,
    /// Findings and provenance anchored in those documents.
    findings: Mutex<FindingStore>,
    session: OnceLock<Session>,
    config: Mutex<ConfigState>,
    shutdown_requested: AtomicBool,
    client: OnceLock<Client>,
    /// The team, once the workspace's repository and configuration allow it.
    pub team: TeamState,
}

/// The outcome of a configuration reload.
#[derive(Debug)]
pub enum Reload {
    Applied,
    /// Rejected; the previous configuration stays in force.
    Rejected(Vec<ConfigError>),
}

impl GlobalState {
    pub fn documents(&self) -> MutexGuard<'_, DocumentStore> {
        // A panic while holding the lock cannot leave a document half-edited (ropey edits are
        // atomic), so a poisoned lock is still usable.
        self.documents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The findings store. Take the documents lock first when both are needed.
    pub fn findings(&self) -> MutexGuard<'_, FindingStore> {
        self.findings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_client(&self, client: Client) {
        let _ = self.client.set(client);
    }

    /// The connection to the client, for background work.
    pub fn client(&self) -> Option<&Client> {
        self.client.get()
    }

    pub fn set_session(&self, session: Session) -> bool {
        self.session.set(session).is_ok()
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.get()
    }

    pub fn encoding(&self) -> PositionEncoding {
        self.session().map(|s| s.encoding).unwrap_or_default()
    }

    pub fn config_state(&self) -> MutexGuard<'_, ConfigState> {
        self.config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn request_shutdown(&self) {
        self.shutdown_requested.store(true, Ordering::SeqCst);
    }

    pub fn shutdown_requested(&self) -> bool {
        self.shutdown_requested.load(Ordering::SeqCst)
    }

    /// Reloads every configuration source (blocking file reads: call off the async workers).
    /// `editor_settings`, when given, replaces the remembered editor settings.
    pub fn reload_config(&self, editor_settings: Option<Option<Value>>) -> Reload {
        let session = self.session();
        let paths = ConfigPaths::discover(session.and_then(|s| s.root.as_deref()));
        let init_options = session.and_then(|s| s.initialization_options.clone());
        let settings = match editor_settings {
            Some(settings) => settings,
            None => self.config_state().editor_settings.clone(),
        };
        let loaded = config::load(&paths, init_options.as_ref(), settings.as_ref());
        let mut state = self.config_state();
        state.editor_settings = settings;
        state.sources = loaded.sources;
        match loaded.config {
            Ok(config) => {
                state.current = Arc::new(config);
                state.errors.clear();
                state.loaded_once = true;
                Reload::Applied
            }
            Err(errors) => {
                state.errors = errors.clone();
                Reload::Rejected(errors)
            }
        }
    }
}
