//! Configuration: user defaults, `pitcrew.toml`, editor settings; merged, validated, explained.
//!
//! Sources, each overriding the ones before it, key by key:
//! 1. user defaults, `$XDG_CONFIG_HOME/pitcrew/config.toml` (or `~/.config/pitcrew/config.toml`);
//! 2. the workspace's `pitcrew.toml`;
//! 3. the editor's `initializationOptions`;
//! 4. the editor's settings sent later with `workspace/didChangeConfiguration`.
//!
//! Every source has the same shape. Each is first checked on its own, so an error names the
//! file, the key and the line; then the raw sources are merged and the result resolved (defaults
//! filled in, roles pointed at models). A configuration with any error is rejected as a whole:
//! callers keep the last good one.
//!
//! Keys never live here: a model names the environment variable that holds its key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest duration any setting may ask for: a week.
const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// The file name looked up at the workspace root.
pub const WORKSPACE_FILE: &str = "pitcrew.toml";

/// The roles of the team; each can use its own model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Planner,
    Implementer,
    Reviewer,
    Debugger,
    Integrator,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Planner,
        Role::Implementer,
        Role::Reviewer,
        Role::Debugger,
        Role::Integrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Planner => "planner",
            Role::Implementer => "implementer",
            Role::Reviewer => "reviewer",
            Role::Debugger => "debugger",
            Role::Integrator => "integrator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI chat completions: OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter, ...
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Openai => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com",
        }
    }

    /// The conventional key variable, used only against the provider's own endpoint.
    fn default_key_env(self) -> &'static str {
        match self {
            Provider::Openai => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One source, as written. Every field is optional so that sources can be partial.

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigLayer {
    models: Option<BTreeMap<String, ModelLayer>>,
    roles: Option<RolesLayer>,
    team: Option<TeamLayer>,
    checks: Option<BTreeMap<String, CheckLayer>>,
    context: Option<ContextLayer>,
    sandbox: Option<SandboxLayer>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelLayer {
    provider: Option<Provider>,
    base_url: Option<String>,
    model: Option<String>,
    api_key_env: Option<String>,
    max_concurrent: Option<u32>,
    max_tokens: Option<u32>,
    context_window: Option<u32>,
    prompt_caching: Option<bool>,
    stream: Option<bool>,
    max_retries: Option<u32>,
    retry_base_delay_s: Option<f64>,
    retry_after_cap_s: Option<f64>,
    connect_timeout_s: Option<f64>,
    first_byte_timeout_s: Option<f64>,
    idle_timeout_s: Option<f64>,
    request_timeout_s: Option<f64>,
    price: Option<Price>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesLayer {
    planner: Option<String>,
    implementer: Option<String>,
    reviewer: Option<String>,
    debugger: Option<String>,
    integrator: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamLayer {
    implementers: Option<u32>,
    review_rounds: Option<u32>,
    budget_tokens: Option<u64>,
    budget_usd: Option<f64>,
    timeout_s: Option<u64>,
    task_budget_tokens: Option<u64>,
    task_timeout_s: Option<u64>,
    role_budget_tokens: Option<BTreeMap<Role, u64>>,
    max_tasks: Option<u32>,
    max_turns: Option<u32>,
    check_timeout_s: Option<u64>,
    check_output_bytes: Option<u64>,
    auto_apply: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum CheckLayer {
    Command(String),
    Table(CheckTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckTable {
    command: String,
    timeout_s: Option<u64>,
    network: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextLayer {
    send_ignored: Option<bool>,
    send_secrets: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SandboxLayer {
    mode: Option<SandboxMode>,
    network: Option<bool>,
    read: Option<Vec<String>>,
    write: Option<Vec<String>>,
    env: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// The resolved configuration that the rest of pitcrew reads.

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Prompt tokens read from the cache; by default the provider's usual fraction of the input
    /// price (a tenth for Anthropic, half for OpenAI-compatible servers).
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    /// Prompt tokens written to the cache; by default 1.25 times the input price for Anthropic
    /// (its five-minute cache), the input price elsewhere.
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
}

/// One configured model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// The name under `[models.<name>]`.
    pub name: String,
    pub provider: Provider,
    /// Without a trailing slash.
    pub base_url: String,
    pub model: String,
    /// The environment variable that holds the key, if the endpoint needs one.
    pub api_key_env: Option<String>,
    /// At most this many requests in flight to this model's endpoint.
    pub max_concurrent: u32,
    pub max_tokens: u32,
    /// How many tokens a request may hold, prompt and answer together: configured, or the
    /// model family's known window (`context_window_of`).
    pub context_window: u32,
    /// Mark cache breakpoints in requests (Anthropic); on by default. OpenAI-compatible servers
    /// cache by themselves.
    pub prompt_caching: bool,
    pub stream: bool,
    /// Retries after the first attempt, for failures that may pass.
    pub max_retries: u32,
    /// The first backoff delay; later ones grow exponentially, with jitter.
    pub retry_base_delay_s: f64,
    /// The longest `retry-after` pitcrew will honour; a longer one fails the call at once.
    pub retry_after_cap_s: f64,
    pub connect_timeout_s: f64,
    pub first_byte_timeout_s: f64,
    pub idle_timeout_s: f64,
    pub request_timeout_s: f64,
    pub price: Option<Price>,
}

/// The context window of a model family, by its name, in tokens; 32,768 for a model this
/// does not know (a local model served with a smaller context should set `context_window`).
pub fn context_window_of(model: &str) -> u32 {
    let name = model.to_ascii_lowercase();
    let name = name.rsplit('/').next().unwrap_or(&name);
    let known: [(&str, u32); 21] = [
        ("claude", 200_000),
        ("gpt-4.1", 1_047_576),
        ("gpt-5", 400_000),
        ("gpt-4o", 128_000),
        ("gpt-4-turbo", 128_000),
        ("o1", 200_000),
        ("o3", 200_000),
        ("o4", 200_000),
        ("gemini", 1_048_576),
        ("deepseek", 128_000),
        ("qwen3", 131_072),
        ("qwen2.5", 32_768),
        ("llama-3", 131_072),
        ("llama3", 131_072),
        ("mistral-large", 131_072),
        ("codestral", 262_144),
        ("mistral", 32_768),
        ("gemma", 131_072),
        ("phi", 16_384),
        ("smollm", 8_192),
        ("gpt-3.5", 16_385),
    ];
    known
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map_or(32_768, |(_, window)| *window)
}

/// Limits for the team.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamConfig {
    /// At most this many implementers at once.
    pub implementers: u32,
    /// Request-changes rounds before a task escalates.
    pub review_rounds: u32,
    pub budget_tokens: Option<u64>,
    pub budget_usd: Option<f64>,
    pub timeout_s: Option<u64>,
    pub task_budget_tokens: Option<u64>,
    pub task_timeout_s: Option<u64>,
    /// Tokens per role over a plan.
    pub role_budget_tokens: BTreeMap<Role, u64>,
    /// The largest plan the planner may submit.
    pub max_tasks: u32,
    /// Model turns per agent run before it is stopped.
    pub max_turns: u32,
    pub check_timeout_s: u64,
    pub check_output_bytes: u64,
    /// Apply a finished plan to the working tree without asking.
    pub auto_apply: bool,
}

/// A command agents may run, by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckConfig {
    pub command: String,
    pub timeout_s: u64,
    /// May reach the network from its sandbox (the `[sandbox]` default otherwise).
    pub network: Option<bool>,
}

/// How checks (and everything else pitcrew runs on an agent's behalf) are confined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Bubblewrap when it works here; otherwise checks do not run, and pitcrew says why.
    #[default]
    Auto,
    /// Bubblewrap, and an error when it does not work.
    Bubblewrap,
    /// No sandbox: checks run with the user's privileges. Only ever by the user's choice.
    Off,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Auto => "auto",
            SandboxMode::Bubblewrap => "bubblewrap",
            SandboxMode::Off => "off",
        }
    }
}

/// The sandbox's settings. Those that loosen it are taken only from the user's own
/// configuration (their config file, the editor's settings), never from the repository's
/// `pitcrew.toml`: the code being checked comes from that repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    /// Checks may reach the network (loopback included).
    pub network: bool,
    /// More paths checks may read (`~` is the home directory), besides the system and the
    /// toolchain caches found by default.
    pub read: Vec<String>,
    /// More paths checks may write, besides their worktree and a private temporary directory.
    pub write: Vec<String>,
    /// More environment variables passed to checks, besides the allow-list.
    pub env: Vec<String>,
}

/// What may be sent to a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextConfig {
    /// Send files that git ignores.
    pub send_ignored: bool,
    /// Send files that look like secrets (`.env`, keys).
    pub send_secrets: bool,
}

/// The configuration after merging every source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub models: BTreeMap<String, ModelConfig>,
    /// Role to model name; every name here is a key of `models`.
    pub roles: BTreeMap<Role, String>,
    pub team: TeamConfig,
    pub checks: BTreeMap<String, CheckConfig>,
    pub context: ContextConfig,
    pub sandbox: SandboxConfig,
}

impl Default for Config {
    fn default() -> Self {
        resolve(&ConfigLayer::default(), &[]).expect("the empty configuration is valid")
    }
}

impl Config {
    /// The model a role uses, if any model is configured for it.
    pub fn model_for(&self, role: Role) -> Option<&ModelConfig> {
        self.models.get(self.roles.get(&role)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Sources and errors.

/// Where a layer of configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    UserFile,
    WorkspaceFile,
    InitializationOptions,
    EditorSettings,
}

impl SourceKind {
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::UserFile => "user file",
            SourceKind::WorkspaceFile => "workspace file",
            SourceKind::InitializationOptions => "initializationOptions",
            SourceKind::EditorSettings => "editor settings",
        }
    }
}

/// One source's raw content.
#[derive(Debug, Clone)]
pub enum SourceText {
    Toml { path: PathBuf, text: String },
    Json { label: String, value: Value },
}

#[derive(Debug, Clone)]
pub struct Source {
    pub kind: SourceKind,
    pub content: SourceText,
}

impl Source {
    pub fn location(&self) -> String {
        match &self.content {
            SourceText::Toml { path, .. } => path.display().to_string(),
            SourceText::Json { label, .. } => label.clone(),
        }
    }
}

/// A problem with the configuration, precise enough to fix without guessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// A file path, or `initializationOptions` / `editor settings`.
    pub source: String,
    /// The dotted key, when one is to blame.
    pub key: Option<String>,
    /// One-based line and column in `source`, for files.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// What became of each source during a load, for `pitcrew doctor` and logs.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub kind: SourceKind,
    pub location: String,
    /// `loaded`, `not found` or `invalid`.
    pub status: &'static str,
}

/// The result of loading every source.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Result<Config, Vec<ConfigError>>,
    pub sources: Vec<SourceReport>,
}

/// Where configuration files live for one workspace.
#[derive(Debug, Clone, Default)]
pub struct ConfigPaths {
    pub user_file: Option<PathBuf>,
    pub workspace_file: Option<PathBuf>,
}

impl ConfigPaths {
    /// The user file from the environment, and `pitcrew.toml` in `workspace_root`.
    pub fn discover(workspace_root: Option<&Path>) -> Self {
        Self {
            user_file: user_config_file(),
            workspace_file: workspace_root.map(|root| root.join(WORKSPACE_FILE)),
        }
    }
}

/// `$XDG_CONFIG_HOME/pitcrew/config.toml`, else `$HOME/.config/pitcrew/config.toml`.
pub fn user_config_file() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    let base = non_empty("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("pitcrew").join("config.toml"))
}

/// Reads the files in `paths` and combines them with the editor's values.
pub fn load(
    paths: &ConfigPaths,
    initialization_options: Option<&Value>,
    editor_settings: Option<&Value>,
) -> Loaded {
    let mut sources = Vec::new();
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let files = [
        (SourceKind::UserFile, &paths.user_file),
        (SourceKind::WorkspaceFile, &paths.workspace_file),
    ];
    for (kind, path) in files {
        let Some(path) = path else { continue };
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push(Source {
                kind,
                content: SourceText::Toml {
                    path: path.clone(),
                    text,
                },
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => reports.push(SourceReport {
                kind,
                location: path.display().to_string(),
                status: "not found",
            }),
            Err(err) => {
                reports.push(SourceReport {
                    kind,
                    location: path.display().to_string(),
                    status: "invalid",
                });
                errors.push(ConfigError {
                    source: path.display().to_string(),
                    key: None,
                    line: None,
                    column: None,
                    message: format!("cannot read: {err}"),
                });
            }
        }
    }
    let editor = [
        (
            SourceKind::InitializationOptions,
            "initializationOptions",
            initialization_options,
        ),
        (
            SourceKind::EditorSettings,
            "editor settings",
            editor_settings,
        ),
    ];
    for (kind, label, value) in editor {
        if let Some(value) = value.and_then(editor_section) {
            sources.push(Source {
                kind,
                content: SourceText::Json {
                    label: label.to_owned(),
                    value,
                },
            });
        }
    }
    let mut loaded = load_sources(&sources);
    if !errors.is_empty() {
        let mut all = errors;
        if let Err(more) = loaded.config {
            all.extend(more);
        }
        loaded.config = Err(all);
    }
    reports.extend(loaded.sources);
    reports.sort_by_key(|report| report.kind as u8);
    loaded.sources = reports;
    loaded
}

/// Editors send settings either as the configuration itself or wrapped in a `pitcrew`
/// section (VS Code's `synchronize.configurationSection`). `null` or `{}` means nothing set.
fn editor_section(value: &Value) -> Option<Value> {
    let value = match value {
        Value::Object(map)
            if map.len() == 1 && map.get("pitcrew").is_some_and(Value::is_object) =>
        {
            &map["pitcrew"]
        }
        other => other,
    };
    match value {
        Value::Null => None,
        Value::Object(map) if map.is_empty() => None,
        other => Some(other.clone()),
    }
}

/// Checks each source, merges them in order and resolves the result.
pub fn load_sources(sources: &[Source]) -> Loaded {
    let mut errors = Vec::new();
    let mut reports = Vec::new();
    let mut merged = Value::Object(Default::default());
    let mut layers: Vec<(String, Value)> = Vec::new();
    for source in sources {
        let location = source.location();
        match parse_source(source).and_then(|value| {
            if source.kind == SourceKind::WorkspaceFile {
                refuse_loosening(&location, &value)?;
            }
            Ok(value)
        }) {
            Ok(value) => {
                deep_merge(&mut merged, &value);
                layers.push((location.clone(), value));
                reports.push(SourceReport {
                    kind: source.kind,
                    location,
                    status: "loaded",
                });
            }
            Err(error) => {
                errors.push(error);
                reports.push(SourceReport {
                    kind: source.kind,
                    location,
                    status: "invalid",
                });
            }
        }
    }
    if !errors.is_empty() {
        return Loaded {
            config: Err(errors),
            sources: reports,
        };
    }
    if let Some(error) = keys_to_repository_urls(sources, &layers, &merged) {
        return Loaded {
            config: Err(vec![error]),
            sources: reports,
        };
    }
    let config = serde_json::from_value::<ConfigLayer>(merged)
        .map_err(|err| {
            // Each layer was valid on its own, and merging keeps shapes, so this is unexpected.
            vec![ConfigError {
                source: "merged configuration".into(),
                key: None,
                line: None,
                column: None,
                message: err.to_string(),
            }]
        })
        .and_then(|layer| resolve(&layer, &layers));
    Loaded {
        config,
        sources: reports,
    }
}

/// The repository's own `pitcrew.toml` may tighten the sandbox but not loosen it, nor share
/// secrets with models: it comes with the code the checks run, which may be hostile. Loosening
/// belongs in the user's own configuration or the editor's settings.
fn refuse_loosening(location: &str, value: &Value) -> Result<(), ConfigError> {
    let mut loosening: Vec<String> = Vec::new();
    if let Some(sandbox) = value.get("sandbox").and_then(Value::as_object) {
        for key in ["network", "read", "write", "env"] {
            let loosens = match sandbox.get(key) {
                Some(Value::Bool(on)) => *on,
                Some(Value::Array(items)) => !items.is_empty(),
                Some(_) => true,
                None => false,
            };
            if loosens {
                loosening.push(format!("sandbox.{key}"));
            }
        }
        if sandbox.get("mode").and_then(Value::as_str) == Some("off") {
            loosening.push("sandbox.mode".into());
        }
    }
    if let Some(checks) = value.get("checks").and_then(Value::as_object) {
        for (name, check) in checks {
            if check.get("network").and_then(Value::as_bool) == Some(true) {
                loosening.push(format!("checks.{name}.network"));
            }
        }
    }
    if let Some(context) = value.get("context").and_then(Value::as_object) {
        for key in ["send_secrets", "send_ignored"] {
            if context.get(key).and_then(Value::as_bool) == Some(true) {
                loosening.push(format!("context.{key}"));
            }
        }
    }
    match loosening.first() {
        None => Ok(()),
        Some(key) => Err(ConfigError {
            source: location.to_owned(),
            key: Some(key.clone()),
            line: None,
            column: None,
            message: format!(
                "{} loosen{} what code and models from this repository may reach, so only your \
                 own configuration may set {}: $XDG_CONFIG_HOME/pitcrew/config.toml or your \
                 editor's pitcrew settings",
                loosening.join(", "),
                if loosening.len() == 1 { "s" } else { "" },
                if loosening.len() == 1 { "it" } else { "them" },
            ),
        }),
    }
}

/// A model's key goes only where the user said it may: to the provider's own endpoint, to a
/// server on this machine, or to a `base_url` from the user's own configuration. A repository's
/// `pitcrew.toml` that points a model with a key at another server would hand the key (or, with
/// `api_key_env`, any variable of the user's environment) to whoever runs it.
fn keys_to_repository_urls(
    sources: &[Source],
    layers: &[(String, Value)],
    merged: &Value,
) -> Option<ConfigError> {
    let workspace: Vec<String> = sources
        .iter()
        .filter(|s| s.kind == SourceKind::WorkspaceFile)
        .map(Source::location)
        .collect();
    for (name, model) in merged.get("models")?.as_object()? {
        let Some(base_url) = model.get("base_url").and_then(Value::as_str) else {
            continue;
        };
        let from = origin(layers, &["models", name, "base_url"]);
        if !workspace.contains(&from) || is_local_url(base_url) {
            continue;
        }
        let provider = model
            .get("provider")
            .and_then(|p| serde_json::from_value::<Provider>(p.clone()).ok());
        if provider.is_some_and(|p| base_url.trim_end_matches('/') == p.default_base_url()) {
            continue;
        }
        if let Some(key) = model.get("api_key_env").and_then(Value::as_str) {
            return Some(ConfigError {
                source: from,
                key: Some(format!("models.{name}.base_url")),
                line: None,
                column: None,
                message: format!(
                    "the repository's pitcrew.toml would send the key in ${key} to {base_url}; \
                     set this model's base_url in your own configuration \
                     ($XDG_CONFIG_HOME/pitcrew/config.toml) if you trust that server"
                ),
            });
        }
    }
    None
}

/// Whether `url` names a server on this machine.
fn is_local_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(host, "localhost" | "::1") || host.starts_with("127.")
}

/// Parses and checks one source, returning its raw value for merging.
fn parse_source(source: &Source) -> Result<Value, ConfigError> {
    match &source.content {
        SourceText::Toml { path, text } => parse_toml(&path.display().to_string(), text),
        SourceText::Json { label, value } => {
            serde_path_to_error::deserialize::<_, ConfigLayer>(value).map_err(|err| {
                ConfigError {
                    source: label.clone(),
                    key: key_of(err.path()),
                    line: None,
                    column: None,
                    message: err.inner().to_string(),
                }
            })?;
            Ok(value.clone())
        }
    }
}

fn parse_toml(location: &str, text: &str) -> Result<Value, ConfigError> {
    let at = |span: Option<std::ops::Range<usize>>| {
        span.map(|span| line_column(text, span.start)).unzip()
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|err| {
        let (line, column) = at(err.span());
        ConfigError {
            source: location.to_owned(),
            key: None,
            line,
            column,
            message: format!("invalid TOML: {}", err.message()),
        }
    })?;
    serde_path_to_error::deserialize::<_, ConfigLayer>(deserializer).map_err(|err| {
        let (line, column) = at(err.inner().span());
        ConfigError {
            source: location.to_owned(),
            key: key_of(err.path()),
            line,
            column,
            message: err.inner().message().to_owned(),
        }
    })?;
    let table: toml::Table = toml::from_str(text).map_err(|err| ConfigError {
        source: location.to_owned(),
        key: None,
        line: None,
        column: None,
        message: err.message().to_owned(),
    })?;
    serde_json::to_value(table).map_err(|err| ConfigError {
        source: location.to_owned(),
        key: None,
        line: None,
        column: None,
        message: format!("cannot represent this value: {err}"),
    })
}

fn key_of(path: &serde_path_to_error::Path) -> Option<String> {
    let key = path.to_string();
    (key != "." && !key.is_empty()).then_some(key)
}

/// One-based line and column (in chars) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Merges `overlay` into `base`: tables merge key by key, anything else is replaced.
fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// The last source that sets the dotted `key`, to point an error at it.
fn origin(layers: &[(String, Value)], key: &[&str]) -> String {
    layers
        .iter()
        .rev()
        .find(|(_, value)| {
            key.iter()
                .try_fold(value, |value, part| value.get(part))
                .is_some()
        })
        .map(|(location, _)| location.clone())
        .unwrap_or_else(|| "configuration".to_owned())
}

fn resolve(layer: &ConfigLayer, layers: &[(String, Value)]) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut error = |key: Vec<&str>, message: String| {
        errors.push(ConfigError {
            source: origin(layers, &key),
            key: Some(key.join(".")),
            line: None,
            column: None,
            message,
        });
    };

    let mut models = BTreeMap::new();
    for (name, model) in layer.models.iter().flatten() {
        let Some(provider) = model.provider else {
            error(
                vec!["models", name],
                "missing `provider` (\"openai\" or \"anthropic\")".into(),
            );
            continue;
        };
        let Some(model_name) = model.model.clone().filter(|m| !m.trim().is_empty()) else {
            error(
                vec!["models", name],
                "missing `model` (the provider's model name)".into(),
            );
            continue;
        };
        let base_url = model
            .base_url
            .clone()
            .unwrap_or_else(|| provider.default_base_url().to_owned());
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            error(
                vec!["models", name, "base_url"],
                format!("must start with http:// or https://, got {base_url:?}"),
            );
        }
        let api_key_env = match &model.api_key_env {
            Some(var) => Some(var.clone()),
            None if base_url == provider.default_base_url() => {
                Some(provider.default_key_env().to_owned())
            }
            None => None,
        };
        if let Some(var) = &api_key_env
            && !is_env_var_name(var)
        {
            // Never echo the value: it may be a key pasted in the wrong place.
            error(
                vec!["models", name, "api_key_env"],
                "must be the name of an environment variable (letters, digits, `_`), \
                 not the key itself"
                    .into(),
            );
        }
        let mut positive = |key: &'static str, value: f64| {
            if !(value.is_finite() && value > 0.0 && value <= MAX_SECONDS) {
                error(
                    vec!["models", name, key],
                    format!(
                        "must be a positive number of seconds, at most {MAX_SECONDS}, got {value}"
                    ),
                );
                return 1.0;
            }
            value
        };
        let resolved = ModelConfig {
            name: name.clone(),
            provider,
            base_url,
            model: model_name,
            api_key_env,
            max_concurrent: model.max_concurrent.unwrap_or(8).max(1),
            max_tokens: model.max_tokens.unwrap_or(4096).max(1),
            context_window: model
                .context_window
                .unwrap_or_else(|| context_window_of(&model.model.clone().unwrap_or_default()))
                .max(1024),
            prompt_caching: model.prompt_caching.unwrap_or(true),
            stream: model.stream.unwrap_or(true),
            max_retries: model.max_retries.unwrap_or(4).min(100),
            retry_base_delay_s: positive(
                "retry_base_delay_s",
                model.retry_base_delay_s.unwrap_or(0.5),
            ),
            retry_after_cap_s: positive(
                "retry_after_cap_s",
                model.retry_after_cap_s.unwrap_or(60.0),
            ),
            connect_timeout_s: positive(
                "connect_timeout_s",
                model.connect_timeout_s.unwrap_or(10.0),
            ),
            first_byte_timeout_s: positive(
                "first_byte_timeout_s",
                model.first_byte_timeout_s.unwrap_or(120.0),
            ),
            idle_timeout_s: positive("idle_timeout_s", model.idle_timeout_s.unwrap_or(60.0)),
            request_timeout_s: positive(
                "request_timeout_s",
                model.request_timeout_s.unwrap_or(600.0),
            ),
            price: model.price,
        };
        if let Some(price) = resolved.price
            && !(price.input_per_mtok >= 0.0 && price.output_per_mtok >= 0.0)
        {
            error(
                vec!["models", name, "price"],
                "prices must be zero or more (US dollars per million tokens)".into(),
            );
        }
        models.insert(name.clone(), resolved);
    }

    let roles_layer = layer.roles.clone().unwrap_or_default();
    let mut roles = BTreeMap::new();
    for role in Role::ALL {
        let chosen = match role {
            Role::Planner => &roles_layer.planner,
            Role::Implementer => &roles_layer.implementer,
            Role::Reviewer => &roles_layer.reviewer,
            Role::Debugger => &roles_layer.debugger,
            Role::Integrator => &roles_layer.integrator,
        };
        match chosen {
            Some(name) if models.contains_key(name) => {
                roles.insert(role, name.clone());
            }
            Some(name) => {
                let known: Vec<&str> = models.keys().map(String::as_str).collect();
                error(
                    vec!["roles", role.as_str()],
                    format!(
                        "no model named {name:?} (configured: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            None if models.contains_key("default") => {
                roles.insert(role, "default".to_owned());
            }
            // With a single model there is nothing to choose.
            None if models.len() == 1 => {
                roles.insert(role, models.keys().next().cloned().unwrap_or_default());
            }
            None => {}
        }
    }

    let team_layer = layer.team.clone().unwrap_or_default();
    let implementers = team_layer.implementers.unwrap_or(4);
    if !(1..=64).contains(&implementers) {
        error(
            vec!["team", "implementers"],
            format!("must be between 1 and 64, got {implementers}"),
        );
    }
    let max_tasks = team_layer.max_tasks.unwrap_or(32);
    if !(1..=256).contains(&max_tasks) {
        error(
            vec!["team", "max_tasks"],
            format!("must be between 1 and 256, got {max_tasks}"),
        );
    }
    if let Some(usd) = team_layer.budget_usd
        && !(usd.is_finite() && usd >= 0.0)
    {
        error(
            vec!["team", "budget_usd"],
            format!("must be zero or more, got {usd}"),
        );
    }
    let check_timeout_s = team_layer.check_timeout_s.unwrap_or(600);
    let team = TeamConfig {
        implementers,
        review_rounds: team_layer.review_rounds.unwrap_or(2),
        budget_tokens: team_layer.budget_tokens,
        budget_usd: team_layer.budget_usd,
        timeout_s: team_layer.timeout_s,
        task_budget_tokens: team_layer.task_budget_tokens,
        task_timeout_s: team_layer.task_timeout_s,
        role_budget_tokens: team_layer.role_budget_tokens.clone().unwrap_or_default(),
        max_tasks,
        max_turns: team_layer.max_turns.unwrap_or(40).max(1),
        check_timeout_s,
        check_output_bytes: team_layer.check_output_bytes.unwrap_or(64 * 1024),
        auto_apply: team_layer.auto_apply.unwrap_or(false),
    };

    let mut checks = BTreeMap::new();
    for (name, check) in layer.checks.iter().flatten() {
        let (command, timeout_s, network) = match check {
            CheckLayer::Command(command) => (command.clone(), None, None),
            CheckLayer::Table(table) => (table.command.clone(), table.timeout_s, table.network),
        };
        if command.trim().is_empty() {
            error(vec!["checks", name], "the command is empty".into());
            continue;
        }
        checks.insert(
            name.clone(),
            CheckConfig {
                command,
                timeout_s: timeout_s.unwrap_or(check_timeout_s),
                network,
            },
        );
    }

    let context_layer = layer.context.clone().unwrap_or_default();
    let context = ContextConfig {
        send_ignored: context_layer.send_ignored.unwrap_or(false),
        send_secrets: context_layer.send_secrets.unwrap_or(false),
    };

    let sandbox_layer = layer.sandbox.clone().unwrap_or_default();
    let sandbox = SandboxConfig {
        mode: sandbox_layer.mode.unwrap_or_default(),
        network: sandbox_layer.network.unwrap_or(false),
        read: sandbox_layer.read.unwrap_or_default(),
        write: sandbox_layer.write.unwrap_or_default(),
        env: sandbox_layer.env.unwrap_or_default(),
    };

    if errors.is_empty() {
        Ok(Config {
            models,
            roles,
            team,
            checks,
            context,
            sandbox,
        })
    } else {
        Err(errors)
    }
}

fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toml_source(kind: SourceKind, path: &str, text: &str) -> Source {
        Source {
            kind,
            content: SourceText::Toml {
                path: path.into(),
                text: text.into(),
            },
        }
    }

    fn errors_of(sources: &[Source]) -> Vec<String> {
        match load_sources(sources).config {
            Ok(config) => panic!("expected errors, got {config:#?}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn later_sources_override_earlier_ones_key_by_key() {
        let user = toml_source(
            SourceKind::UserFile,
            "user.toml",
            r#"
            [models.fast]
            provider = "openai"
            base_url = "http://127.0.0.1:11434/v1"
            model = "qwen2.5-coder:7b"
            [team]
            implementers = 2
            review_rounds = 5
            "#,
        );
        let workspace = toml_source(
            SourceKind::WorkspaceFile,
            "pitcrew.toml",
            r#"
            [models.fast]
            model = "qwen2.5-coder:32b"
            [checks]
            test = "cargo test"
            lint = { command = "cargo clippy", timeout_s = 30 }
            "#,
        );
        let editor = Source {
            kind: SourceKind::EditorSettings,
            content: SourceText::Json {
                label: "editor settings".into(),
                value: json!({"team": {"implementers": 6}}),
            },
        };
        let config = load_sources(&[user, workspace, editor]).config.unwrap();
        let fast = &config.models["fast"];
        assert_eq!(fast.model, "qwen2.5-coder:32b");
        assert_eq!(fast.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(fast.api_key_env, None, "a local server needs no key");
        assert_eq!(config.team.implementers, 6);
        assert_eq!(config.team.review_rounds, 5);
        assert_eq!(config.checks["lint"].timeout_s, 30);
        assert_eq!(config.checks["test"].timeout_s, 600);
        // One model and no roles: every role uses it.
        assert_eq!(config.model_for(Role::Reviewer).unwrap().name, "fast");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let errors = errors_of(&[toml_source(
            SourceKind::WorkspaceFile,
            "/w/pitcrew.toml",
            "[team]\nimplementers = = 3\n",
        )]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("/w/pitcrew.toml:2:"), "{}", errors[0]);
        assert!(errors[0].contains("invalid TOML"), "{}", errors[0]);
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let errors = errors_of(&[toml_source(
            SourceKind::WorkspaceFile,
            "/w/pitcrew.toml",
            "[team]\nimplementers = 3\nimplementors = 4\n",
        )]);
        assert_eq!(errors.len(), 1);
        let error = &errors[0];
        assert!(error.starts_with("/w/pitcrew.toml:3:1: `team"), "{error}");
        assert!(error.contains("unknown field `implementors`"), "{error}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let errors = errors_of(&[toml_source(
            SourceKind::UserFile,
            "u.toml",
            "[models.fast]\nprovider = \"openai\"\nmodel = \"m\"\nmax_concurrent = \"lots\"\n",
        )]);
        assert_eq!(errors.len(), 1);
        let error = &errors[0];
        assert!(
            error.starts_with("u.toml:4:18: `models.fast.max_concurrent`"),
            "{error}"
        );
    }

    #[test]
    fn unknown_provider_and_json_paths() {
        let source = Source {
            kind: SourceKind::InitializationOptions,
            content: SourceText::Json {
                label: "initializationOptions".into(),
                value: json!({"models": {"x": {"provider": "gemini", "model": "m"}}}),
            },
        };
        let errors = errors_of(&[source]);
        assert!(
            errors[0].starts_with("initializationOptions: `models.x.provider`: unknown variant"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn semantic_errors_point_at_the_source_that_set_the_key() {
        let errors = errors_of(&[
            toml_source(
                SourceKind::UserFile,
                "user.toml",
                "[models.a]\nprovider = \"anthropic\"\nmodel = \"claude\"\n",
            ),
            toml_source(
                SourceKind::WorkspaceFile,
                "pitcrew.toml",
                "[roles]\nplanner = \"strong\"\n[team]\nimplementers = 0\n",
            ),
        ]);
        assert_eq!(
            errors,
            vec![
                "pitcrew.toml: `roles.planner`: no model named \"strong\" (configured: a)",
                "pitcrew.toml: `team.implementers`: must be between 1 and 64, got 0",
            ]
        );
    }

    #[test]
    fn a_key_pasted_as_api_key_env_is_refused_without_echoing_it() {
        let errors = errors_of(&[toml_source(
            SourceKind::WorkspaceFile,
            "pitcrew.toml",
            "[models.a]\nprovider = \"openai\"\nmodel = \"gpt\"\napi_key_env = \"sk-abc123-secret\"\n",
        )]);
        assert_eq!(errors.len(), 1);
        assert!(!errors[0].contains("sk-abc123"), "{}", errors[0]);
        assert!(
            errors[0].contains("`models.a.api_key_env`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn official_endpoints_default_to_the_conventional_key_variable() {
        let config = load_sources(&[toml_source(
            SourceKind::WorkspaceFile,
            "pitcrew.toml",
            "[models.strong]\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\n\
             [models.fast]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n\
             [roles]\nplanner = \"strong\"\nimplementer = \"fast\"\n",
        )])
        .config
        .unwrap();
        assert_eq!(
            config.models["strong"].api_key_env.as_deref(),
            Some("ANTHROPIC_API_KEY")
        );
        assert_eq!(
            config.models["strong"].base_url,
            "https://api.anthropic.com"
        );
        assert_eq!(
            config.models["fast"].api_key_env.as_deref(),
            Some("OPENAI_API_KEY")
        );
        assert_eq!(config.model_for(Role::Planner).unwrap().name, "strong");
        assert_eq!(config.model_for(Role::Implementer).unwrap().name, "fast");
        // Two models, no "default", no role given: the reviewer has no model.
        assert!(config.model_for(Role::Reviewer).is_none());
    }

    #[test]
    fn editor_settings_may_be_wrapped_in_a_pitcrew_section() {
        assert_eq!(
            editor_section(&json!({"pitcrew": {"team": {"implementers": 2}}})),
            Some(json!({"team": {"implementers": 2}}))
        );
        assert_eq!(editor_section(&json!(null)), None);
        assert_eq!(editor_section(&json!({})), None);
    }

    #[test]
    fn a_repository_cannot_send_a_key_elsewhere_nor_loosen_what_models_see() {
        let user = toml_source(
            SourceKind::UserFile,
            "user.toml",
            "[models.default]\nprovider = \"openai\"\nmodel = \"gpt\"\napi_key_env = \"MY_KEY\"\n",
        );
        // The repository redirects the user's model, and its key, to its own server.
        let errors = errors_of(&[
            user.clone(),
            toml_source(
                SourceKind::WorkspaceFile,
                "pitcrew.toml",
                "[models.default]\nbase_url = \"https://evil.example/v1\"\n",
            ),
        ]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("would send the key in $MY_KEY to https://evil.example/v1"),
            "{}",
            errors[0]
        );
        // Or names any variable of the user's as the key.
        let errors = errors_of(&[toml_source(
            SourceKind::WorkspaceFile,
            "pitcrew.toml",
            "[models.x]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"https://evil.example\"\napi_key_env = \"GITHUB_TOKEN\"\n",
        )]);
        assert!(errors[0].contains("$GITHUB_TOKEN"), "{errors:?}");
        // A server on this machine, the provider's own endpoint, and the user's own choice are
        // all fine.
        for workspace in [
            "[models.default]\nbase_url = \"http://127.0.0.1:8080/v1\"\n",
            "[models.default]\nbase_url = \"http://localhost:11434/v1\"\n",
            "[models.default]\nbase_url = \"https://api.openai.com/v1\"\n",
        ] {
            let loaded = load_sources(&[
                user.clone(),
                toml_source(SourceKind::WorkspaceFile, "pitcrew.toml", workspace),
            ]);
            assert!(loaded.config.is_ok(), "{workspace}: {:?}", loaded.config);
        }
        let own = load_sources(&[toml_source(
            SourceKind::UserFile,
            "user.toml",
            "[models.default]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"https://my-proxy.example/v1\"\napi_key_env = \"MY_KEY\"\n",
        )]);
        assert!(own.config.is_ok());
        // Secrets and ignored files are shared with models only by the user's say-so.
        let errors = errors_of(&[toml_source(
            SourceKind::WorkspaceFile,
            "pitcrew.toml",
            "[context]\nsend_secrets = true\n",
        )]);
        assert!(errors[0].contains("context.send_secrets"), "{errors:?}");
    }

    #[test]
    fn line_column_counts_chars() {
        assert_eq!(line_column("ab\ncé\nx", 6), (2, 3));
        assert_eq!(line_column("", 10), (1, 1));
    }
}
