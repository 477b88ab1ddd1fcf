//! pitcrew's extensions to LSP, declared once: commands, custom requests and notifications.
//!
//! Mirrored by `editors/vscode/src/lsp_ext.ts` and documented in `docs/lsp-extensions.md`.

use serde::{Deserialize, Serialize};

/// Every command the server executes (`workspace/executeCommand`).
pub mod commands {
    pub const DELEGATE: &str = "pitcrew.delegate";
    pub const REVIEW: &str = "pitcrew.review";
    pub const PLAN: &str = "pitcrew.plan";
    pub const APPLY: &str = "pitcrew.apply";
    pub const DISCARD: &str = "pitcrew.discard";
    pub const CANCEL: &str = "pitcrew.cancel";
    pub const RETRY: &str = "pitcrew.retry";
    pub const SHOW_PLAN: &str = "pitcrew.showPlan";
    pub const DISMISS_FINDING: &str = "pitcrew.dismissFinding";

    pub const ALL: [&str; 9] = [
        DELEGATE,
        REVIEW,
        PLAN,
        APPLY,
        DISCARD,
        CANCEL,
        RETRY,
        SHOW_PLAN,
        DISMISS_FINDING,
    ];
}

/// `pitcrew/debug/documentText`: the server's copy of an open document, to check that it
/// matches the editor's (as rust-analyzer's `viewFileText`). A debugging aid, not for plugins.
pub const DOCUMENT_TEXT: &str = "pitcrew/debug/documentText";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentTextParams {
    pub uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentTextResult {
    pub version: i32,
    pub text: String,
}

/// `pitcrew/debug/config`: the configuration in force, where it came from, and the problems
/// of the last load (when the last load failed, `config` is still the last good one).
pub const CONFIG: &str = "pitcrew/debug/config";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigResult {
    pub config: serde_json::Value,
    pub sources: Vec<crate::config::SourceReport>,
    pub errors: Vec<String>,
}
