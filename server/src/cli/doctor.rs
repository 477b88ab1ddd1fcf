//! `pitcrew doctor`: where the configuration came from, which model each role uses, and what
//! is wrong with it.

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::output;
use crate::config::{self, Config, ConfigPaths, Role, SourceReport};

/// One model as the doctor sees it. Never holds a key, only whether its variable is set.
#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub name: String,
    pub provider: &'static str,
    pub model: String,
    pub base_url: String,
    /// The variable that holds the key, if the endpoint needs one.
    pub key_env: Option<String>,
    pub key_set: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub workspace: String,
    pub sources: Vec<SourceReport>,
    pub models: Vec<ModelReport>,
    /// Role name to model name; `null` when the role has no model.
    pub roles: Vec<(Role, Option<String>)>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Builds the report for the workspace at `root`.
pub fn report(root: &Path) -> Report {
    let paths = ConfigPaths::discover(Some(root));
    let loaded = config::load(&paths, None, None);
    let mut problems = Vec::new();
    let config = match loaded.config {
        Ok(config) => config,
        Err(errors) => {
            problems.extend(errors.iter().map(ToString::to_string));
            Config::default()
        }
    };
    let models: Vec<ModelReport> = config
        .models
        .values()
        .map(|model| ModelReport {
            name: model.name.clone(),
            provider: model.provider.as_str(),
            model: model.model.clone(),
            base_url: model.base_url.clone(),
            key_env: model.api_key_env.clone(),
            key_set: model
                .api_key_env
                .as_ref()
                .is_some_and(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty())),
        })
        .collect();
    if problems.is_empty() && config.models.is_empty() {
        problems.push(format!(
            "no models configured: add a [models.default] table to {} or to {} \
             (see README.md, \"Configure a model\")",
            paths
                .workspace_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| config::WORKSPACE_FILE.to_owned()),
            paths
                .user_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "$XDG_CONFIG_HOME/pitcrew/config.toml".to_owned()),
        ));
    }
    for model in &models {
        if let Some(var) = &model.key_env
            && !model.key_set
        {
            problems.push(format!(
                "model `{}`: the key variable ${var} is not set",
                model.name
            ));
        }
    }
    let roles: Vec<(Role, Option<String>)> = Role::ALL
        .iter()
        .map(|role| (*role, config.roles.get(role).cloned()))
        .collect();
    if !config.models.is_empty() {
        for (role, model) in &roles {
            if model.is_none() {
                problems.push(format!(
                    "role `{role}` has no model: set roles.{role}, or name a model \"default\""
                ));
            }
        }
    }
    Report {
        version: env!("CARGO_PKG_VERSION"),
        workspace: root.display().to_string(),
        sources: loaded.sources,
        models,
        roles,
        problems,
    }
}

/// Runs the doctor and returns the exit status: 0 when nothing is wrong.
pub fn run(root: &Path, as_json: bool) -> i32 {
    let report = report(root);
    if as_json {
        let roles: serde_json::Map<String, serde_json::Value> = report
            .roles
            .iter()
            .map(|(role, model)| (role.to_string(), json!(model)))
            .collect();
        output::json(&json!({
            "version": report.version,
            "workspace": report.workspace,
            "sources": report.sources,
            "models": report.models,
            "roles": roles,
            "problems": report.problems,
            "ok": report.ok(),
        }));
    } else {
        output::line(&render(&report));
    }
    if report.ok() { 0 } else { 1 }
}

fn render(report: &Report) -> String {
    let mut out = format!(
        "pitcrew {} doctor\nworkspace: {}\n\nConfiguration\n",
        report.version, report.workspace
    );
    for source in &report.sources {
        out.push_str(&format!(
            "  {:<24} {:<10} {}\n",
            source.kind.label(),
            source.status,
            source.location
        ));
    }
    out.push_str("\nModels\n");
    if report.models.is_empty() {
        out.push_str("  (none)\n");
    }
    for model in &report.models {
        let key = match (&model.key_env, model.key_set) {
            (None, _) => "no key needed".to_owned(),
            (Some(var), true) => format!("key from ${var} (set)"),
            (Some(var), false) => format!("key from ${var} (NOT SET)"),
        };
        out.push_str(&format!(
            "  {:<12} {:<10} {} at {}; {key}\n",
            model.name, model.provider, model.model, model.base_url
        ));
    }
    out.push_str("\nRoles\n");
    for (role, model) in &report.roles {
        out.push_str(&format!(
            "  {:<12} {}\n",
            role.as_str(),
            model.as_deref().unwrap_or("(no model)")
        ));
    }
    if report.problems.is_empty() {
        out.push_str("\nNo problems found.");
    } else {
        out.push_str("\nProblems\n");
        for problem in &report.problems {
            out.push_str(&format!("  - {problem}\n"));
        }
    }
    out.trim_end().to_owned()
}
