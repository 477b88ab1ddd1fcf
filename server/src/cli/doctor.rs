//! `pitcrew doctor`: where the configuration came from, which model each role uses, and what
//! is wrong with it, down to one tiny real completion per configured model.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::output;
use crate::agents::sandbox::{Probe, Sandbox};
use crate::config::{self, Config, ConfigPaths, Role, SandboxMode, SourceReport};
use crate::model::{CallContext, ChatRequest, Message, Models, ToolSpec, text_calls};

/// The doctor waits at most this long for one model, retries included.
const CHECK_TIMEOUT_S: f64 = 60.0;

/// The result of one real completion against a model: a tool-call probe, since that is what
/// the team needs of it.
#[derive(Debug, Serialize)]
pub struct ModelCheck {
    pub model: String,
    pub ok: bool,
    pub latency_ms: u64,
    pub attempts: u32,
    /// The exact reason, when it failed: status, provider message, attempts.
    pub error: Option<String>,
    /// The model's answer, when it worked.
    pub reply: Option<String>,
    /// How it called the probe's tool: `native`, `recovered from text (<format>)`, `unusable`
    /// (a call that does not fit the tool), or `none`.
    pub tool_calls: Option<String>,
    /// Why its call was unusable.
    pub tool_call_error: Option<String>,
    /// The context the server gives a request, where it says (llama.cpp's `/props`).
    pub server_window: Option<u32>,
    /// The model the server said answered, or the one model it lists, when that is not the
    /// one configured.
    pub served_by: Option<String>,
    /// The models the server lists (`GET …/models`), when it lists several and not the one
    /// configured: a request may fail, or be answered by another model.
    pub unlisted_among: Vec<String>,
    /// The context window in force (configured, or the family's).
    pub context_window: u32,
    /// Whether its usage reports prompt caching.
    pub caching_reported: bool,
}

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
    /// One real completion per model, when the configuration loaded.
    pub checks: Vec<ModelCheck>,
    /// The sandbox checks run in, proven by a probe.
    pub sandbox: Probe,
    pub problems: Vec<String>,
    /// What may surprise without stopping the team: another model than configured, a
    /// server context smaller than the configured window.
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Builds the report for the workspace at `root`, calling every model once.
pub async fn report(root: &Path) -> Report {
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
                .as_deref()
                .and_then(crate::model::Secret::from_env)
                .is_some(),
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
    let checks = check_models(&config).await;
    let mut warnings = Vec::new();
    for check in &checks {
        let answered_as = check
            .served_by
            .as_ref()
            .map(|s| format!(" (the server answered as {s})"))
            .unwrap_or_default();
        if let Some(served) = &check.served_by {
            warnings.push(format!(
                "model `{}` is configured as `{}`, but the server answered as `{served}`: the \
                 team gets that model (set `model` to it, or load the one you meant)",
                check.model,
                config
                    .models
                    .get(&check.model)
                    .map_or("?", |m| m.model.as_str()),
            ));
        }
        if !check.unlisted_among.is_empty() {
            warnings.push(format!(
                "model `{}`: the server does not list the configured model (a request may fail \
                 or reach another model)",
                check.model
            ));
        }
        if let Some(window) = check.server_window
            && window < check.context_window
        {
            warnings.push(format!(
                "model `{}`: the server gives a request {window} tokens of context, less than the \
                 configured context_window of {}: set context_window = {window} (or start the \
                 server with a larger --ctx-size), or long tasks overflow it",
                check.model, check.context_window
            ));
        }
        if let Some(error) = &check.error {
            problems.push(error.clone());
        } else if let Some(why) = &check.tool_call_error {
            problems.push(format!(
                "model `{}`{answered_as} called the probe's tool with a call that does not fit \
                 it ({why}): the team's roles need well-formed tool calls; configure a \
                 stronger model",
                check.model
            ));
        } else if check.tool_calls.as_deref() == Some("none") {
            problems.push(format!(
                "model `{}`{answered_as} did not call the probe's tool, natively or as text: the \
                 team's roles work only by calling tools. With llama.cpp, start llama-server \
                 with --jinja (and a chat template that renders tools); with Ollama, use a model \
                 whose `ollama show` lists tools; or configure another model",
                check.model,
            ));
        }
    }
    let sandbox = Sandbox::new(&config).probe().await;
    if sandbox.confined || config.sandbox.mode == SandboxMode::Off {
        // Confined as it should be, or off by the user's choice (said in the report).
    } else if sandbox.facts.is_empty() {
        problems.push(sandbox.runner.clone());
    } else {
        problems.push(format!(
            "the sandbox does not hold: {}",
            sandbox.facts.join("; ")
        ));
    }
    Report {
        version: env!("CARGO_PKG_VERSION"),
        workspace: root.display().to_string(),
        sources: loaded.sources,
        models,
        roles,
        checks,
        sandbox,
        problems,
        warnings,
    }
}

/// Makes one tiny completion per configured model, all at once, and asks each server which
/// models it lists.
async fn check_models(config: &Config) -> Vec<ModelCheck> {
    let mut bounded = config.clone();
    for model in bounded.models.values_mut() {
        model.request_timeout_s = model.request_timeout_s.min(CHECK_TIMEOUT_S);
    }
    let models = match Models::from_config(&bounded) {
        Ok(models) => Arc::new(models),
        Err(err) => {
            return vec![ModelCheck {
                model: "-".into(),
                ok: false,
                latency_ms: 0,
                attempts: 0,
                error: Some(err),
                reply: None,
                tool_calls: None,
                tool_call_error: None,
                server_window: None,
                served_by: None,
                unlisted_among: Vec::new(),
                context_window: 0,
                caching_reported: false,
            }];
        }
    };
    // The probe: the one thing every role must do, call a tool.
    let probe_tool = ToolSpec {
        name: "report_health".into(),
        description: "Report that you are working.".into(),
        input_schema: serde_json::json!({
            "type": "object",
            "properties": {"word": {"type": "string", "description": "The word to report"}},
            "required": ["word"],
        }),
    };
    let request = ChatRequest {
        system: "You are a health check. You answer by calling the tool you are given.".into(),
        messages: vec![Message::user(
            "Call the report_health tool with word set to \"ok\". Do not answer in text.",
        )],
        tools: vec![probe_tool.clone()],
        max_tokens: Some(64),
    };
    let calls: Vec<_> = models
        .all()
        .cloned()
        .map(|client| {
            let request = request.clone();
            let probe_tool = probe_tool.clone();
            tokio::spawn(async move {
                let cancel = tokio_util::sync::CancellationToken::new();
                let name = client.config().name.clone();
                let started = std::time::Instant::now();
                let context_window = client.config().context_window;
                let (answer, listed, server_window) = tokio::join!(
                    client.complete(&request, CallContext::new(Role::Planner), &cancel),
                    client.served_models(),
                    client.served_window(),
                );
                let configured = client.config().model.clone();
                let listed = listed.unwrap_or_default();
                let listed_here = listed
                    .iter()
                    .any(|id| crate::model::same_model(id, &configured));
                match answer {
                    Ok(completion) => {
                        let offered = std::slice::from_ref(&probe_tool);
                        let (tool_calls, unusable) = match completion.tool_calls.first() {
                            Some(call) => match text_calls::check_call(call, offered) {
                                Ok(()) => ("native".to_owned(), None),
                                Err(why) => ("unusable".to_owned(), Some(why)),
                            },
                            None => match text_calls::recover(&completion.text, offered, "probe") {
                                text_calls::Recovery::Calls(recovered) => {
                                    (format!("recovered from text ({})", recovered.format), None)
                                }
                                text_calls::Recovery::Unusable(why) => {
                                    ("unusable".to_owned(), Some(why))
                                }
                                text_calls::Recovery::Nothing => ("none".to_owned(), None),
                            },
                        };
                        // A local server answers under the name the request gave; the one
                        // model it lists is the one it loaded.
                        let served_by = completion
                            .served_by
                            .filter(|served| !crate::model::same_model(served, &configured))
                            .or_else(|| match listed.as_slice() {
                                [only] if !listed_here => Some(only.clone()),
                                _ => None,
                            });
                        let unlisted_among = if listed.len() > 1
                            && !listed_here
                            && client.config().provider == crate::config::Provider::Openai
                        {
                            listed
                        } else {
                            Vec::new()
                        };
                        ModelCheck {
                            model: name,
                            ok: tool_calls != "none" && tool_calls != "unusable",
                            latency_ms: completion.duration.as_millis() as u64,
                            attempts: completion.attempts,
                            error: None,
                            reply: Some(completion.text.chars().take(80).collect()),
                            tool_calls: Some(tool_calls),
                            tool_call_error: unusable,
                            server_window,
                            served_by,
                            unlisted_among,
                            context_window,
                            caching_reported: completion.usage.cache_reported,
                        }
                    }
                    Err(err) => ModelCheck {
                        model: name,
                        ok: false,
                        latency_ms: started.elapsed().as_millis() as u64,
                        attempts: err.attempts,
                        error: Some(err.to_string()),
                        reply: None,
                        tool_calls: None,
                        tool_call_error: None,
                        server_window,
                        served_by: None,
                        unlisted_among: Vec::new(),
                        context_window,
                        caching_reported: false,
                    },
                }
            })
        })
        .collect();
    let mut checks = Vec::new();
    for call in calls {
        match call.await {
            Ok(check) => checks.push(check),
            Err(err) => tracing::error!("a model check crashed: {err}"),
        }
    }
    checks
}

/// Runs the doctor and returns the exit status: 0 when nothing is wrong.
pub async fn run(root: &Path, as_json: bool) -> i32 {
    let report = report(root).await;
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
            "checks": report.checks,
            "sandbox": report.sandbox,
            "problems": report.problems,
            "warnings": report.warnings,
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
    if !report.checks.is_empty() {
        out.push_str("\nModel checks (one tiny real completion each: a tool call)\n");
        for check in &report.checks {
            let attempts = format!(
                "{} attempt{}",
                check.attempts,
                if check.attempts == 1 { "" } else { "s" }
            );
            match (&check.error, check.tool_calls.as_deref()) {
                (Some(_), _) => out.push_str(&format!(
                    "  {:<12} FAILED after {} ms ({attempts})\n",
                    check.model, check.latency_ms
                )),
                (None, calls) => {
                    out.push_str(&format!(
                        "  {:<12} answered in {} ms ({attempts}); tool calls: {}; context window {}; caching {}\n",
                        check.model,
                        check.latency_ms,
                        match calls {
                            Some("none") => "NONE",
                            Some("unusable") => "UNUSABLE",
                            Some(how) => how,
                            None => "-",
                        },
                        match check.server_window {
                            Some(served) if served != check.context_window => format!(
                                "{} tokens (the server gives {served})",
                                check.context_window
                            ),
                            _ => format!("{} tokens", check.context_window),
                        },
                        if check.caching_reported { "reported" } else { "not reported" },
                    ));
                    if let Some(served) = &check.served_by {
                        out.push_str(&format!(
                            "  {:<12} the server answered as `{served}`, not the configured model\n",
                            ""
                        ));
                    }
                    if !check.unlisted_among.is_empty() {
                        let shown: Vec<&str> = check
                            .unlisted_among
                            .iter()
                            .take(8)
                            .map(String::as_str)
                            .collect();
                        let more = check.unlisted_among.len().saturating_sub(shown.len());
                        out.push_str(&format!(
                            "  {:<12} the server does not list the configured model; it lists {}{}\n",
                            "",
                            shown.join(", "),
                            if more > 0 { format!(" and {more} more") } else { String::new() }
                        ));
                    }
                }
            }
        }
    }
    out.push_str("\nSandbox (where checks run)\n");
    let probe = &report.sandbox;
    if probe.confined {
        out.push_str(&format!(
            "  {}\n  probe: ok in {} ms: {}\n",
            probe.runner,
            probe.startup_ms,
            probe.facts.join(", ")
        ));
    } else if probe.facts.is_empty() {
        out.push_str(&format!("  NONE: {}\n", probe.runner));
    } else if probe.runner.starts_with("none") {
        out.push_str(&format!("  OFF: {}\n", probe.runner));
    } else {
        out.push_str(&format!(
            "  {}\n  probe FAILED: {}\n",
            probe.runner,
            probe.facts.join(", ")
        ));
    }
    if !report.warnings.is_empty() {
        out.push_str("\nWarnings\n");
        for warning in &report.warnings {
            out.push_str(&format!("  - {warning}\n"));
        }
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
