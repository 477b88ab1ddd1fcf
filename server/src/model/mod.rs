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
pub mod text_calls;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use client::{ModelClient, Secret, time_in_models};
pub use error::{CallError, Failure, TimeoutPhase};
pub use types::{
    CallContext, ChatRequest, Completion, Message, StopReason, ToolCall, ToolSpec, Usage,
    duration_ms, same_model,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, SourceKind, SourceText, load_sources};

    #[test]
    fn models_on_one_endpoint_share_the_smallest_limit() {
        let text = "[models.a]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"x\"\nmax_concurrent = 5\n\
                    [models.b]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"y\"\nmax_concurrent = 3\n\
                    [models.c]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:2/v1\"\nmodel = \"z\"\nmax_concurrent = 7\n\
                    [roles]\nplanner = \"b\"\nimplementer = \"a\"\nreviewer = \"c\"\ndebugger = \"a\"\nintegrator = \"a\"\n";
        let config = load_sources(&[Source {
            kind: SourceKind::WorkspaceFile,
            content: SourceText::Toml {
                path: "pitcrew.toml".into(),
                text: text.into(),
            },
        }])
        .config
        .unwrap();
        let models = Models::from_config(&config).unwrap();
        let a = models.by_name("a").unwrap();
        let b = models.by_name("b").unwrap();
        let c = models.by_name("c").unwrap();
        assert!(Arc::ptr_eq(a.limiter(), b.limiter()));
        assert_eq!(a.limiter().available_permits(), 3);
        assert!(!Arc::ptr_eq(a.limiter(), c.limiter()));
        assert_eq!(c.limiter().available_permits(), 7);
        assert_eq!(models.for_role(Role::Planner).unwrap().config().name, "b");
        assert_eq!(models.for_role(Role::Reviewer).unwrap().config().name, "c");
    }
}
