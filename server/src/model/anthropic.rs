//! The Anthropic Messages wire format, streaming events included.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::error::Failure;
use super::types::{ChatRequest, Message, Parsed, Reported, ToolCall};
use crate::config::ModelConfig;

/// The API version pitcrew speaks.
pub const API_VERSION: &str = "2023-06-01";

pub fn url(base_url: &str) -> String {
    // Accept a base URL given with or without the `/v1` suffix.
    let base = base_url.strip_suffix("/v1").unwrap_or(base_url);
    format!("{base}/v1/messages")
}

/// Where the endpoint lists its models.
pub fn models_url(base_url: &str) -> String {
    let base = base_url.strip_suffix("/v1").unwrap_or(base_url);
    format!("{base}/v1/models")
}

/// The request body. Consecutive tool results travel in one user message, first in it, as the
/// API requires; text blocks that are empty or blank are left out (the API refuses them).
pub fn body(model: &ModelConfig, request: &ChatRequest, stream: bool) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    let mut push = |role: &str, block: Value| {
        if let Some(last) = messages.last_mut()
            && last["role"] == role
            && let Some(content) = last["content"].as_array_mut()
        {
            if block["type"] == "tool_result" {
                // Tool results come before any other block of the message.
                let at = content
                    .iter()
                    .position(|b| b["type"] != "tool_result")
                    .unwrap_or(content.len());
                content.insert(at, block);
            } else {
                content.push(block);
            }
            return;
        }
        messages.push(json!({"role": role, "content": [block]}));
    };
    for message in &request.messages {
        match message {
            Message::User { content } => {
                let text = if content.trim().is_empty() {
                    "(no text)"
                } else {
                    content
                };
                push("user", json!({"type": "text", "text": text}));
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                if !content.trim().is_empty() {
                    push("assistant", json!({"type": "text", "text": content}));
                }
                for call in tool_calls {
                    push(
                        "assistant",
                        json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments_for_history()}),
                    );
                }
                if content.trim().is_empty() && tool_calls.is_empty() {
                    push("assistant", json!({"type": "text", "text": "(no text)"}));
                }
            }
            Message::Tool {
                call_id,
                content,
                is_error,
            } => push(
                "user",
                json!({"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error}),
            ),
        }
    }
    // Prompt caching: a breakpoint after the tools, one after the system prompt, and a rolling
    // one on the conversation's last block (with the one before it, so the prefix the previous
    // turn wrote is read back even when this turn added several messages). The cache prefix
    // is tools, then system, then messages; four breakpoints at most.
    let ephemeral = json!({"type": "ephemeral"});
    let marked: Vec<usize> = match messages.len() {
        _ if !model.prompt_caching => Vec::new(),
        0 => Vec::new(),
        1 | 2 => vec![messages.len() - 1],
        n => vec![n - 3, n - 1],
    };
    for index in marked {
        if let Some(block) = messages[index]["content"]
            .as_array_mut()
            .and_then(|blocks| blocks.last_mut())
        {
            block["cache_control"] = ephemeral.clone();
        }
    }
    let mut body = json!({
        "model": model.model,
        "messages": messages,
        "max_tokens": request.max_tokens.unwrap_or(model.max_tokens),
        "stream": stream,
    });
    if !request.system.trim().is_empty() {
        body["system"] = if model.prompt_caching {
            json!([{"type": "text", "text": request.system, "cache_control": ephemeral}])
        } else {
            json!(request.system)
        };
    }
    if !request.tools.is_empty() {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| json!({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}))
            .collect();
        if let Some(last) = tools.last_mut().filter(|_| model.prompt_caching) {
            last["cache_control"] = ephemeral;
        }
        body["tools"] = Value::Array(tools);
    }
    body
}

/// Reads `{"type": "error", "error": {"type", "message"}}`.
pub fn error_details(body: &Value) -> Option<(String, Option<String>)> {
    let error = body.get("error").filter(|e| !e.is_null())?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned();
    let code = error.get("type").and_then(Value::as_str).map(str::to_owned);
    Some((message, code))
}

/// Whether an error means the account is out of credit or over its spend limit.
pub fn is_quota(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("credit balance")
        || message.contains("spend limit")
        || message.contains("usage limit")
        || message.contains("billing")
}

/// Parses a non-streaming response.
pub fn parse(body: &Value) -> Result<Parsed, Failure> {
    if body["type"] == "error" {
        let (message, code) = error_details(body).unwrap_or(("no message".into(), None));
        return Err(Failure::InBand { message, code });
    }
    let content = body["content"]
        .as_array()
        .ok_or_else(|| Failure::Malformed {
            message: "no content in the response".into(),
        })?;
    let mut parsed = Parsed::default();
    for block in content {
        match block["type"].as_str() {
            Some("text") => parsed
                .text
                .push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => parsed.tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                name: block["name"].as_str().unwrap_or_default().to_owned(),
                arguments: block["input"].clone(),
                invalid_arguments: None,
            }),
            _ => {}
        }
    }
    parsed.stop = body["stop_reason"].as_str().map(str::to_owned);
    let mut tokens = Tokens::default();
    tokens.read(&body["usage"]);
    parsed.usage = tokens.reported();
    parsed.model = body["model"].as_str().map(str::to_owned);
    Ok(parsed)
}

/// Usage as the events report it: `input_tokens` excludes what was read from or written to the
/// cache, which come apart; later events may update any of them.
#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

impl Tokens {
    fn read(&mut self, usage: &Value) {
        let field = |key: &str| usage.get(key).and_then(Value::as_u64);
        self.input = field("input_tokens").or(self.input);
        self.output = field("output_tokens").or(self.output);
        self.cache_read = field("cache_read_input_tokens").or(self.cache_read);
        self.cache_write = field("cache_creation_input_tokens").or(self.cache_write);
    }

    fn reported(&self) -> Option<Reported> {
        let cache_read = self.cache_read.unwrap_or(0);
        let cache_write = self.cache_write.unwrap_or(0);
        Some(Reported {
            input: self.input? + cache_read + cache_write,
            output: self.output.unwrap_or(0),
            cache_read,
            cache_write,
            cache_reported: self.cache_read.is_some() || self.cache_write.is_some(),
        })
    }
}

#[derive(Debug)]
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        /// `input_json_delta` fragments; when none came, the start block's `input`.
        json: String,
        initial: Value,
        /// Set by `content_block_stop`: only complete blocks become calls.
        complete: bool,
    },
}

/// Assembles a streamed response, event by event.
#[derive(Debug, Default)]
pub struct StreamState {
    blocks: BTreeMap<u64, Block>,
    stop: Option<String>,
    tokens: Tokens,
    model: Option<String>,
    done: bool,
}

impl StreamState {
    /// Feeds one SSE event (`event` is its name, `data` its JSON payload).
    pub fn on_event(&mut self, event: &str, data: &str) -> Result<(), Failure> {
        if data.trim().is_empty() {
            return Ok(());
        }
        let payload: Value = serde_json::from_str(data).map_err(|err| Failure::Malformed {
            message: format!("a stream event is not JSON ({err})"),
        })?;
        // The payload's own `type` is authoritative; the SSE event name is a fallback.
        let kind = payload["type"].as_str().unwrap_or(event);
        let index = payload["index"].as_u64().unwrap_or(0);
        match kind {
            "message_start" => {
                self.tokens.read(&payload["message"]["usage"]);
                self.model = payload["message"]["model"].as_str().map(str::to_owned);
            }
            "content_block_start" => {
                let block = &payload["content_block"];
                let block = match block["type"].as_str() {
                    Some("tool_use") => Block::ToolUse {
                        id: block["id"].as_str().unwrap_or_default().to_owned(),
                        name: block["name"].as_str().unwrap_or_default().to_owned(),
                        json: String::new(),
                        initial: block["input"].clone(),
                        complete: false,
                    },
                    _ => Block::Text(block["text"].as_str().unwrap_or_default().to_owned()),
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let delta = &payload["delta"];
                match (self.blocks.get_mut(&index), delta["type"].as_str()) {
                    (Some(Block::Text(text)), Some("text_delta")) => {
                        text.push_str(delta["text"].as_str().unwrap_or_default());
                    }
                    (Some(Block::ToolUse { json, .. }), Some("input_json_delta")) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    (None, _) => {
                        return Err(Failure::Malformed {
                            message: format!("a delta for block {index}, which never started"),
                        });
                    }
                    // Thinking, citations and other deltas pitcrew does not use.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(Block::ToolUse { complete, .. }) = self.blocks.get_mut(&index) {
                    *complete = true;
                }
            }
            "message_delta" => {
                if let Some(reason) = payload["delta"]["stop_reason"].as_str() {
                    self.stop = Some(reason.to_owned());
                }
                self.tokens.read(&payload["usage"]);
            }
            "message_stop" => self.done = true,
            "error" => {
                let (message, code) =
                    error_details(&payload).unwrap_or(("no message".into(), None));
                return Err(Failure::InBand { message, code });
            }
            // `ping` and events added after this was written.
            _ => {}
        }
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The response, if the stream completed; a cut stream never yields its tool calls.
    pub fn finish(self) -> Result<Parsed, Failure> {
        if !self.done {
            return Err(Failure::CutStream {
                message: "no message_stop before the stream ended".into(),
            });
        }
        let mut parsed = Parsed {
            stop: self.stop,
            usage: self.tokens.reported(),
            model: self.model,
            ..Parsed::default()
        };
        for block in self.blocks.into_values() {
            match block {
                Block::Text(text) => parsed.text.push_str(&text),
                Block::ToolUse {
                    id,
                    name,
                    json,
                    initial,
                    complete,
                } => {
                    if !complete {
                        return Err(Failure::CutStream {
                            message: format!("the tool call {name} never finished"),
                        });
                    }
                    let call = if json.trim().is_empty() {
                        ToolCall {
                            id,
                            name,
                            arguments: if initial.is_object() {
                                initial
                            } else {
                                json!({})
                            },
                            invalid_arguments: None,
                        }
                    } else {
                        ToolCall::from_raw(id, name, &json)
                    };
                    parsed.tool_calls.push(call);
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(events: &[(&str, &str)]) -> Result<Parsed, Failure> {
        let mut state = StreamState::default();
        for (event, data) in events {
            state.on_event(event, data)?;
        }
        state.finish()
    }

    const START: (&str, &str) = (
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":42,"output_tokens":1}}}"#,
    );

    #[test]
    fn assembles_text_and_tool_use_from_events() {
        let parsed = stream(&[
            START,
            ("ping", r#"{"type":"ping"}"#),
            ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Reading "}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"it."}}"#),
            ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            ("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"read_file","input":{}}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"sr"}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"c/lib.rs\"}"}}"#),
            ("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
            ("some_future_event", r#"{"type":"some_future_event"}"#),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":17}}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ])
        .unwrap();
        assert_eq!(parsed.text, "Reading it.");
        assert_eq!(parsed.tool_calls.len(), 1);
        assert_eq!(parsed.tool_calls[0].arguments["path"], "src/lib.rs");
        assert_eq!(
            parsed.usage,
            Some(Reported {
                input: 42,
                output: 17,
                ..Reported::default()
            })
        );
        assert_eq!(parsed.stop.as_deref(), Some("tool_use"));
    }

    #[test]
    fn overloaded_after_200_fails_the_turn() {
        let error = stream(&[
            START,
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            Failure::InBand {
                message: "Overloaded".into(),
                code: Some("overloaded_error".into())
            }
        );
        assert!(error.is_retryable());
    }

    #[test]
    fn a_cut_tool_call_is_never_returned() {
        let error = stream(&[
            START,
            ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"write_file","input":{}}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"path\":"}}"#),
        ])
        .unwrap_err();
        assert!(matches!(error, Failure::CutStream { .. }));
    }

    #[test]
    fn tool_results_are_grouped_into_one_user_message() {
        let model = crate::config::ModelConfig {
            name: "m".into(),
            provider: crate::config::Provider::Anthropic,
            base_url: "http://x".into(),
            model: "claude".into(),
            api_key_env: None,
            max_concurrent: 1,
            max_tokens: 100,
            context_window: 32_768,
            prompt_caching: true,
            stream: true,
            max_retries: 0,
            retry_base_delay_s: 0.1,
            retry_after_cap_s: 60.0,
            connect_timeout_s: 1.0,
            first_byte_timeout_s: 1.0,
            idle_timeout_s: 1.0,
            request_timeout_s: 1.0,
            price: None,
        };
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "read_file".into(),
            arguments: json!({"path": id}),
            invalid_arguments: None,
        };
        let request = ChatRequest {
            system: "sys".into(),
            messages: vec![
                Message::user("go"),
                Message::Assistant {
                    content: "two reads".into(),
                    tool_calls: vec![call("a"), call("b")],
                },
                Message::Tool {
                    call_id: "a".into(),
                    content: "A".into(),
                    is_error: false,
                },
                Message::Tool {
                    call_id: "b".into(),
                    content: "B".into(),
                    is_error: true,
                },
                Message::user("and a note after the results"),
                Message::Assistant {
                    content: "\n\n".into(),
                    tool_calls: vec![call("c")],
                },
                Message::user(""),
            ],
            tools: vec![],
            max_tokens: None,
        };
        let body = body(&model, &request, true);
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
        let assistant = &body["messages"][1]["content"];
        assert_eq!(assistant.as_array().unwrap().len(), 3);
        assert_eq!(
            assistant[1],
            json!({"type": "tool_use", "id": "a", "name": "read_file", "input": {"path": "a"}})
        );
        let results = &body["messages"][2]["content"];
        assert_eq!(results[0]["type"], "tool_result");
        assert_eq!(results[1]["is_error"], true);
        assert_eq!(results[2]["type"], "text", "text after the tool results");
        // A blank text beside a tool call is left out; an empty user message gets a placeholder.
        assert_eq!(body["messages"][3]["content"].as_array().unwrap().len(), 1);
        assert_eq!(body["messages"][4]["content"][0]["text"], "(no text)");
        // Cache breakpoints: the system prompt, and the last block of the last message and of
        // the message two before it.
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            body["messages"][4]["content"][0]["cache_control"]["type"],
            "ephemeral"
        );
        assert_eq!(
            body["messages"][2]["content"][2]["cache_control"]["type"],
            "ephemeral"
        );
        let marked = body.to_string().matches("cache_control").count();
        assert_eq!(marked, 3, "no tools here: three breakpoints");
        assert_eq!(
            url("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            url("http://127.0.0.1:9/v1"),
            "http://127.0.0.1:9/v1/messages"
        );
    }
}
