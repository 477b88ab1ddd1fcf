//! `textDocument/publishDiagnostics` for pitcrew's findings, from one task so that they reach
//! the client in order. Requests to publish are coalesced by document, and each publication
//! is computed when it is sent, from the state at that moment, so the latest always wins.

use std::collections::{BTreeSet, HashSet};
use std::sync::Weak;

use tokio::sync::mpsc;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::Uri;

use crate::lsp::state::GlobalState;

pub struct Publisher {
    requests: mpsc::UnboundedSender<String>,
}

impl Publisher {
    pub fn start(state: Weak<GlobalState>, client: Client) -> Self {
        let (requests, mut receiver) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            // Documents that have diagnostics on the client, to clear them when they go.
            let mut shown: HashSet<String> = HashSet::new();
            while let Some(first) = receiver.recv().await {
                let mut uris = BTreeSet::from([first]);
                while let Ok(more) = receiver.try_recv() {
                    uris.insert(more);
                }
                let Some(state) = state.upgrade() else { return };
                for uri in uris {
                    let (diagnostics, version) = {
                        let documents = state.documents();
                        let document = documents.get(&uri);
                        let findings = state.findings();
                        (
                            findings.diagnostics(
                                &uri,
                                document.map(|d| d.text()),
                                state.encoding(),
                            ),
                            document.map(|d| d.version()),
                        )
                    };
                    if diagnostics.is_empty() && !shown.remove(&uri) {
                        continue; // nothing shown, nothing to show
                    }
                    if !diagnostics.is_empty() {
                        shown.insert(uri.clone());
                    }
                    let Ok(parsed) = uri.parse::<Uri>() else {
                        tracing::warn!("cannot publish diagnostics for {uri:?}: not a URI");
                        continue;
                    };
                    client
                        .publish_diagnostics(parsed, diagnostics, version)
                        .await;
                }
            }
        });
        Self { requests }
    }

    pub fn publish(&self, uri: String) {
        let _ = self.requests.send(uri);
    }
}
