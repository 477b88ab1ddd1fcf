//! Models: one interface over the OpenAI-compatible and Anthropic wire protocols, with the
//! faults of real providers handled, and the fake model server that tests and the demo use.
//!
//! `ModelClient::complete` is the one way to call a model. `Models` builds a client for every
//! configured model and answers which one a role uses. Nothing here knows about tasks beyond
//! the `CallContext` each call carries for attribution.

mod anthropic;
mod client;
mod error;
pub mod fake;
mod openai;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use client::{ModelClient, Secret};
pub use error::{CallError, Failure, TimeoutPhase};
pub use types::{
    CallContext, ChatRequest, Completion, Message, StopReason, ToolCall, ToolSpec, Usage,
    duration_ms,
};

use crate::config::{Config, Role};

/// A client for every configured model, and the role-to-model map.
#[derive(Debug, Default)]
pub struct Models {
    clients: BTreeMap<String, Arc<ModelClient>>,
    roles: BTreeMap<Role, String>,
}

impl Models {
    /// Builds clients for `config`. Models on the same endpoint share one concurrency limit,
    /// the smallest any of them asks for.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let mut limits: HashMap<(crate::config::Provider, String), u32> = HashMap::new();
        for model in config.models.values() {
            let limit = limits
                .entry((model.provider, model.base_url.clone()))
                .or_insert(model.max_concurrent);
            *limit = (*limit).min(model.max_concurrent);
        }
        let semaphores: HashMap<_, Arc<Semaphore>> = limits
            .into_iter()
            .map(|(endpoint, limit)| (endpoint, Arc::new(Semaphore::new(limit as usize))))
            .collect();
        let mut clients = BTreeMap::new();
        for (name, model) in &config.models {
            let limiter = semaphores[&(model.provider, model.base_url.clone())].clone();
            clients.insert(
                name.clone(),
                Arc::new(ModelClient::new(model.clone(), limiter)?),
            );
        }
        Ok(Self {
            clients,
            roles: config.roles.clone(),
        })
    }

    /// The model a role uses, if one is configured.
    pub fn for_role(&self, role: Role) -> Option<Arc<ModelClient>> {
        self.clients.get(self.roles.get(&role)?).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<ModelClient>> {
        self.clients.get(name).cloned()
    }

    /// Every model, by configured name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ModelClient>> {
        self.clients.values()
    }
}
