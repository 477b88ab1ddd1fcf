//! The fake model's scenario format: which answer (or fault) each request gets.
//!
//! A script is JSON (or TOML, by file extension). Each entry of `responses` answers requests
//! that match its `when` (all given fields must match; an empty `when` matches anything), `times`
//! times (or forever with `repeat`). A request gets the first entry, in script order, that
//! matches and has uses left, so entries for one agent play in order while agents run in
//! parallel. The format is documented in `docs/fake-model.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub responses: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Delay before the response starts.
    pub latency_ms: u64,
    /// Characters per streamed fragment.
    pub chunk_size: usize,
    /// Delay between streamed fragments.
    pub chunk_delay_ms: u64,
    /// Usage reported when an entry does not say; by default, measured as providers do: the
    /// request's size, and what the prompt cache served.
    pub usage: Option<UsageSpec>,
    /// The model's context window: a longer request is refused with the provider's own
    /// "context length exceeded" error.
    pub context_window: Option<u64>,
    /// The models `GET …/models` lists, as a server names what it serves (llama.cpp lists the
    /// one model it loaded, whatever name a request gives).
    pub serves: Vec<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            chunk_size: 24,
            chunk_delay_ms: 0,
            usage: None,
            context_window: None,
            serves: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSpec {
    /// Every prompt token, cached or not.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, read from the prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Of `input_tokens`, written to it.
    #[serde(default)]
    pub cache_write_tokens: u64,
}

/// How an entry's tool calls are written into the message text instead of as native calls, as
/// local servers' templates do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextCalls {
    /// `<tool_call>{"name": …, "arguments": …}</tool_call>` (Hermes, Qwen).
    Hermes,
    /// `[TOOL_CALLS][{"name": …, "arguments": …}]`.
    Mistral,
    /// `<|python_tag|>{"name": …, "parameters": …}`.
    Llama,
    /// A fenced JSON object with `name` and `arguments`.
    Json,
}

/// Which requests an entry answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// `planner`, `implementer`, `reviewer`, `debugger`, `doctor` (`pitcrew doctor`'s probe),
    /// or `none` (no tools offered: a summary of a conversation, say): read from the tools the
    /// request offers.
    pub role: Option<String>,
    /// The task, from the `Task id: <id>` line of the first user message.
    pub task: Option<String>,
    /// Text that must occur somewhere in the request body.
    pub contains: Option<String>,
    /// `openai` or `anthropic`.
    pub protocol: Option<String>,
    /// The `model` the request names.
    pub model: Option<String>,
}

/// One scripted answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(default)]
    pub when: Matcher,
    /// How many requests this entry answers (default 1).
    pub times: Option<u32>,
    /// Answer every matching request, forever.
    #[serde(default)]
    pub repeat: bool,
    pub latency_ms: Option<u64>,
    /// Delay between the response headers and the first streamed fragment.
    pub first_token_ms: Option<u64>,
    pub chunk_delay_ms: Option<u64>,
    pub text: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
    /// The provider stop reason to report; derived from the content when absent.
    pub stop: Option<String>,
    pub usage: Option<UsageSpec>,
    /// Write the tool calls into the text in this format instead of as native calls.
    pub text_calls: Option<TextCalls>,
    /// The model the answer says served it (local servers answer as what they loaded,
    /// whatever the request names); the requested model by default.
    pub served_as: Option<String>,
    pub fault: Option<Fault>,
    #[serde(default)]
    pub quirks: Vec<Quirk>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// A failure to inject instead of (or in the middle of) the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// An error status with the provider's error body.
    Status {
        status: u16,
        /// `retry-after`, verbatim (seconds or an HTTP date).
        retry_after: Option<String>,
        retry_after_ms: Option<u64>,
        message: Option<String>,
        code: Option<String>,
        /// More response headers (`location` for a redirect, say).
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
    },
    /// 429 rate limited.
    RateLimit {
        retry_after: Option<String>,
        retry_after_ms: Option<u64>,
    },
    /// Out of money: OpenAI's 429 `insufficient_quota`, Anthropic's 400 credit balance.
    Quota,
    /// 529 `overloaded_error`.
    Overloaded,
    /// The connection is reset before any response.
    Reset,
    /// The connection drops after `after_chunks` fragments, mid-body.
    Cut { after_chunks: usize },
    /// The HTTP body ends cleanly after `after_chunks` fragments, but without the protocol's
    /// terminator (`[DONE]`, `message_stop`), as a buffering proxy might.
    EndEarly { after_chunks: usize },
    /// An error event inside the 200 stream after `after_chunks` fragments.
    InBand {
        after_chunks: usize,
        message: Option<String>,
        code: Option<String>,
    },
    /// The stream pauses for `ms` after `after_chunks` fragments, then goes on.
    Stall { after_chunks: usize, ms: u64 },
    /// A fragment that is not JSON after `after_chunks` fragments.
    Malformed { after_chunks: usize },
}

impl Fault {
    /// The SSE frame after which a stream fault fires, for faults that need a stream.
    pub fn after_chunks(&self) -> Option<usize> {
        match self {
            Fault::Cut { after_chunks }
            | Fault::EndEarly { after_chunks }
            | Fault::InBand { after_chunks, .. }
            | Fault::Stall { after_chunks, .. }
            | Fault::Malformed { after_chunks } => Some(*after_chunks),
            _ => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Fault::Status { .. } => "status",
            Fault::RateLimit { .. } => "rate_limit",
            Fault::Quota => "quota",
            Fault::Overloaded => "overloaded",
            Fault::Reset => "reset",
            Fault::Cut { .. } => "cut",
            Fault::EndEarly { .. } => "end_early",
            Fault::InBand { .. } => "in_band",
            Fault::Stall { .. } => "stall",
            Fault::Malformed { .. } => "malformed",
        }
    }
}

/// Ways real servers bend the OpenAI format, to reproduce on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quirk {
    /// Ollama: each tool call whole in one chunk, without `index`, and `finish_reason: "stop"`.
    OllamaToolCalls,
    /// No usage anywhere.
    NoUsage,
    /// `usage: {}`.
    EmptyUsage,
    /// The usage chunk says `choices: null` instead of `[]`.
    ChoicesNull,
    /// `finish_reason: ""`.
    EmptyFinishReason,
    /// In-band errors as `{"code": .., "message": ..}` rather than `{"error": ..}`.
    InBandCode,
    /// The SSE body sent in small HTTP chunks cut at arbitrary bytes (inside events, inside
    /// UTF-8 characters), as proxies re-chunk streams.
    SplitChunks,
    /// SSE lines ended with CRLF, with `: keep-alive` comment lines between events.
    CrlfAndComments,
    /// A proxy that ignores `stream` and answers with one JSON body.
    IgnoreStream,
}

impl Script {
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|err| format!("invalid fake-model script: {err}"))
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|err| format!("invalid fake-model script: {err}"))
    }

    /// Reads a script file, JSON or TOML by extension.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        if path.extension().is_some_and(|ext| ext == "toml") {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        }
    }
}

/// What the server knows of a request when choosing an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestFacts {
    pub protocol: &'static str,
    pub role: String,
    pub task: Option<String>,
    pub model: String,
    pub stream: bool,
}

impl Matcher {
    pub fn matches(&self, facts: &RequestFacts, body_text: &str) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        same(&self.role, &facts.role)
            && same(&self.protocol, facts.protocol)
            && same(&self.model, &facts.model)
            && self
                .task
                .as_deref()
                .is_none_or(|task| facts.task.as_deref() == Some(task))
            && self
                .contains
                .as_deref()
                .is_none_or(|needle| body_text.contains(needle))
    }
}

/// Reads the facts of a request body in either protocol.
pub fn facts(protocol: &'static str, body: &Value) -> RequestFacts {
    let tool_names: Vec<&str> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            tool["function"]["name"]
                .as_str()
                .or_else(|| tool["name"].as_str())
        })
        .collect();
    let role = [
        ("submit_plan", "planner"),
        ("finish", "implementer"),
        ("submit_review", "reviewer"),
        ("submit_diagnosis", "debugger"),
        ("report_health", "doctor"),
    ]
    .iter()
    .find(|(tool, _)| tool_names.contains(tool))
    .map(|(_, role)| *role)
    .unwrap_or(if tool_names.is_empty() {
        "none"
    } else {
        "unknown"
    })
    .to_owned();
    let first_user = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(text) => text.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .unwrap_or_default();
    let task = first_user
        .lines()
        .find_map(|line| line.trim().strip_prefix("Task id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    RequestFacts {
        protocol,
        role,
        task,
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        stream: body["stream"].as_bool().unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_from_either_protocol() {
        let openai = json!({
            "model": "m", "stream": true,
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Task id: t2\nTitle: x"}],
            "tools": [{"type": "function", "function": {"name": "finish"}}],
        });
        let facts_openai = facts("openai", &openai);
        assert_eq!(facts_openai.role, "implementer");
        assert_eq!(facts_openai.task.as_deref(), Some("t2"));
        assert!(facts_openai.stream);
        let anthropic = json!({
            "model": "c",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Task id: review-1"}]}],
            "tools": [{"name": "submit_review"}],
        });
        let facts_anthropic = facts("anthropic", &anthropic);
        assert_eq!(facts_anthropic.role, "reviewer");
        assert_eq!(facts_anthropic.task.as_deref(), Some("review-1"));
        assert_eq!(facts("openai", &json!({"messages": []})).role, "none");
    }

    #[test]
    fn scripts_parse_from_json_and_toml() {
        let json = Script::from_json(
            r#"{"responses": [{"when": {"role": "planner"}, "tool_calls": [{"name": "submit_plan", "arguments": {"tasks": []}}]},
                              {"fault": {"kind": "rate_limit", "retry_after": "1"}, "times": 2}]}"#,
        )
        .unwrap();
        assert_eq!(json.responses.len(), 2);
        assert_eq!(
            json.responses[1].fault,
            Some(Fault::RateLimit {
                retry_after: Some("1".into()),
                retry_after_ms: None
            })
        );
        let toml = Script::from_toml(
            "[[responses]]\ntext = \"hello\"\nquirks = [\"no_usage\"]\n[responses.when]\nrole = \"none\"\n",
        )
        .unwrap();
        assert_eq!(toml.responses[0].quirks, vec![Quirk::NoUsage]);
        let error = Script::from_json(r#"{"responses": [{"txt": "typo"}]}"#).unwrap_err();
        assert!(error.contains("unknown field `txt`"), "{error}");
    }
}
