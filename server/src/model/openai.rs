//! The OpenAI chat completions wire format, as spoken by OpenAI, Ollama, vLLM, llama.cpp,
//! LM Studio and OpenRouter, with each one's quirks read leniently.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::error::Failure;
use super::types::{ChatRequest, Message, Parsed, Reported, ToolCall};
use crate::config::ModelConfig;

pub fn url(base_url: &str) -> String {
    format!("{base_url}/chat/completions")
}

/// Where the endpoint lists its models.
pub fn models_url(base_url: &str) -> String {
    format!("{base_url}/models")
}

/// The request body.
pub fn body(model: &ModelConfig, request: &ChatRequest, stream: bool) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for message in &request.messages {
        messages.push(match message {
            Message::User { content } => json!({"role": "user", "content": content}),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut m = json!({
                    "role": "assistant",
                    "content": if content.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(content) },
                });
                if !tool_calls.is_empty() {
                    m["tool_calls"] = tool_calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments_for_history().to_string()},
                            })
                        })
                        .collect();
                }
                m
            }
            Message::Tool {
                call_id,
                content,
                is_error,
            } => {
                // The format has no error flag; say it in the content.
                let content = if *is_error {
                    format!("Error: {content}")
                } else {
                    content.clone()
                };
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    let max_tokens = request.max_tokens.unwrap_or(model.max_tokens);
    let mut body = json!({
        "model": model.model,
        "messages": messages,
        "stream": stream,
    });
    // OpenAI itself wants the newer name; every compatible server knows the older one.
    if model.base_url.starts_with("https://api.openai.com") {
        body["max_completion_tokens"] = json!(max_tokens);
    } else {
        body["max_tokens"] = json!(max_tokens);
    }
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
                })
            })
            .collect();
    }
    body
}

/// Reads `{"error": {"message", "type", "code"}}`, the shape every compatible server uses for
/// errors (some put a bare string in `error`).
pub fn error_details(body: &Value) -> Option<(String, Option<String>)> {
    let error = body.get("error").filter(|e| !e.is_null())?;
    if let Some(message) = error.as_str() {
        return Some((message.to_owned(), None));
    }
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned();
    let code = ["code", "type"]
        .iter()
        .filter_map(|key| error.get(*key))
        .find_map(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Some((message, code))
}

/// Whether an error response means the account is out of money rather than busy.
pub fn is_quota(code: Option<&str>, message: &str) -> bool {
    matches!(
        code,
        Some("insufficient_quota" | "billing_not_active" | "billing_hard_limit_reached")
    ) || message.contains("exceeded your current quota")
        || message.contains("insufficient_quota")
}

/// Parses a non-streaming response.
pub fn parse(body: &Value) -> Result<Parsed, Failure> {
    if let Some((message, code)) = error_details(body) {
        return Err(Failure::InBand { message, code });
    }
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| Failure::Malformed {
            message: "no choices in the response".into(),
        })?;
    let message = &choice["message"];
    let text = message["content"].as_str().unwrap_or_default().to_owned();
    let tool_calls = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, call)| {
            let function = &call["function"];
            let arguments = match &function["arguments"] {
                Value::String(raw) => raw.clone(),
                // Some servers send the arguments as an object.
                Value::Null => String::new(),
                other => other.to_string(),
            };
            ToolCall::from_raw(
                call["id"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("call_{i}")),
                function["name"].as_str().unwrap_or_default().to_owned(),
                &arguments,
            )
        })
        .collect();
    Ok(Parsed {
        text,
        tool_calls,
        stop: choice["finish_reason"].as_str().map(str::to_owned),
        usage: usage(body.get("usage")),
        model: served_model(body),
    })
}

/// Usage if it is there and has numbers; `{}` and `null` count as absent. Cached prompt tokens
/// are within `prompt_tokens` (`prompt_tokens_details.cached_tokens`, as OpenAI, vLLM and
/// llama.cpp report them).
fn usage(usage: Option<&Value>) -> Option<Reported> {
    let usage = usage?;
    let input = usage.get("prompt_tokens").and_then(Value::as_u64)?;
    let output = usage
        .get("completion_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let cached = usage["prompt_tokens_details"]["cached_tokens"].as_u64();
    Some(Reported {
        input,
        output,
        cache_read: cached.unwrap_or(0).min(input),
        cache_write: 0,
        cache_reported: cached.is_some(),
    })
}

/// The model a response names, if it names one.
fn served_model(body: &Value) -> Option<String> {
    body.get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
}

/// A tool call being assembled from stream fragments.
#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Assembles a streamed response, chunk by chunk.
#[derive(Debug, Default)]
pub struct StreamState {
    text: String,
    /// By the `index` the provider gives each call.
    calls: BTreeMap<u64, PartialCall>,
    stop: Option<String>,
    usage: Option<Reported>,
    model: Option<String>,
    done: bool,
}

impl StreamState {
    /// Feeds one SSE `data` payload.
    pub fn on_data(&mut self, data: &str) -> Result<(), Failure> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|err| Failure::Malformed {
            message: format!("a stream chunk is not JSON ({err})"),
        })?;
        // vLLM and proxies report failures in-band: {"error": {...}} or {"code": .., "message": ..}.
        if let Some((message, code)) = error_details(&chunk) {
            return Err(Failure::InBand { message, code });
        }
        if chunk.get("choices").is_none()
            && let Some(code) = chunk.get("code").filter(|c| !c.is_null())
        {
            return Err(Failure::InBand {
                message: chunk["message"].as_str().unwrap_or("no message").to_owned(),
                code: Some(match code {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            });
        }
        if let Some(usage) = usage(chunk.get("usage")) {
            self.usage = Some(usage);
        }
        if let Some(model) = served_model(&chunk) {
            self.model = Some(model);
        }
        // `choices` may be missing, `null` or `[]` (the usage chunk).
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str() {
                self.text.push_str(text);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = self.index_of(call);
                let partial = self.calls.entry(index).or_default();
                if let Some(id) = call["id"].as_str().filter(|id| !id.is_empty()) {
                    partial.id = Some(id.to_owned());
                }
                let function = &call["function"];
                if let Some(name) = function["name"].as_str().filter(|n| !n.is_empty()) {
                    // Some servers repeat the name in every fragment; it is not appended.
                    partial.name = name.to_owned();
                }
                match &function["arguments"] {
                    Value::String(fragment) => partial.arguments.push_str(fragment),
                    Value::Null => {}
                    whole => partial.arguments = whole.to_string(),
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str().filter(|r| !r.is_empty()) {
                self.stop = Some(reason.to_owned());
            }
        }
        Ok(())
    }

    /// The slot a fragment belongs to: its `index` when given; otherwise, a fragment with a new
    /// `id` starts a call and one without continues the last (Ollama sends neither index nor
    /// fragments, only whole calls with ids).
    fn index_of(&self, call: &Value) -> u64 {
        if let Some(index) = call["index"].as_u64() {
            return index;
        }
        match call["id"].as_str() {
            Some(id) => self
                .calls
                .iter()
                .find(|(_, c)| c.id.as_deref() == Some(id))
                .map(|(i, _)| *i)
                .unwrap_or_else(|| self.next_index()),
            None => self.calls.keys().next_back().copied().unwrap_or(0),
        }
    }

    fn next_index(&self) -> u64 {
        self.calls.keys().next_back().map(|i| i + 1).unwrap_or(0)
    }

    /// Whether the terminator arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The response, if the stream completed; a cut stream never yields its tool calls.
    pub fn finish(self) -> Result<Parsed, Failure> {
        if !self.done {
            return Err(Failure::CutStream {
                message: "no [DONE] before the stream ended".into(),
            });
        }
        let tool_calls = self
            .calls
            .into_iter()
            .map(|(index, call)| {
                ToolCall::from_raw(
                    call.id.unwrap_or_else(|| format!("call_{index}")),
                    call.name,
                    &call.arguments,
                )
            })
            .collect();
        Ok(Parsed {
            text: self.text,
            tool_calls,
            stop: self.stop,
            usage: self.usage,
            model: self.model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: &[&str]) -> Result<Parsed, Failure> {
        let mut state = StreamState::default();
        for chunk in chunks {
            state.on_data(chunk)?;
        }
        state.finish()
    }

    #[test]
    fn assembles_tool_calls_by_index_from_fragments() {
        let parsed = stream(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"look."}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"read_file","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"list_files","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"pa"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\": \"src/a.rs\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(parsed.text, "Let me look.");
        assert_eq!(parsed.tool_calls.len(), 2);
        assert_eq!(parsed.tool_calls[0].id, "call_a");
        assert_eq!(parsed.tool_calls[0].name, "read_file");
        assert_eq!(parsed.tool_calls[0].arguments["path"], "src/a.rs");
        assert_eq!(parsed.tool_calls[1].name, "list_files");
        assert_eq!(
            parsed.usage,
            Some(Reported {
                input: 120,
                output: 30,
                ..Reported::default()
            })
        );
        assert_eq!(parsed.stop.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn ollama_sends_a_whole_tool_call_with_stop_and_no_index() {
        let parsed = stream(&[
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_x1","type":"function","function":{"name":"write_file","arguments":"{\"path\":\"a.txt\",\"content\":\"hi\"}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(parsed.tool_calls.len(), 1);
        assert_eq!(parsed.tool_calls[0].arguments["content"], "hi");
        assert_eq!(parsed.usage, None, "usage missing entirely");
        assert_eq!(parsed.stop_reason(), super::super::StopReason::ToolUse);
    }

    #[test]
    fn two_whole_calls_without_index_stay_two_calls() {
        let parsed = stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"c1","function":{"name":"a","arguments":"{}"}},{"id":"c2","function":{"name":"b","arguments":"{}"}}]}}]}"#,
            "[DONE]",
        ]);
        // Two calls in one chunk, both without index: their ids keep them apart.
        let parsed = parsed.unwrap();
        let names: Vec<&str> = parsed.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn usage_may_be_empty_or_arrive_with_null_choices() {
        let parsed = stream(&[
            r#"{"choices":[{"delta":{"content":"ok"},"finish_reason":""}],"usage":{}}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":5,"completion_tokens":1}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(parsed.text, "ok");
        assert_eq!(
            parsed.usage,
            Some(Reported {
                input: 5,
                output: 1,
                ..Reported::default()
            })
        );
        assert_eq!(parsed.stop, None, "an empty finish_reason is no reason");
    }

    #[test]
    fn in_band_errors_fail_the_turn() {
        let error = stream(&[
            r#"{"choices":[{"delta":{"content":"par"}}]}"#,
            r#"{"error":{"message":"CUDA out of memory","type":"server_error","code":500}}"#,
        ])
        .unwrap_err();
        assert_eq!(
            error,
            Failure::InBand {
                message: "CUDA out of memory".into(),
                code: Some("500".into())
            }
        );
        let error = stream(&[r#"{"code":503,"message":"model is loading"}"#]).unwrap_err();
        assert!(
            matches!(error, Failure::InBand { ref code, .. } if code.as_deref() == Some("503"))
        );
    }

    #[test]
    fn a_cut_stream_never_yields_its_tool_call() {
        let error = stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"write_file","arguments":"{\"path\":\"a\""}}]}}]}"#,
        ])
        .unwrap_err();
        assert!(matches!(error, Failure::CutStream { .. }));
    }

    #[test]
    fn malformed_chunks_are_named() {
        let error = stream(&["{not json"]).unwrap_err();
        assert!(matches!(error, Failure::Malformed { .. }));
    }

    #[test]
    fn null_error_fields_are_not_errors() {
        let parsed = stream(&[
            r#"{"error":null,"code":null,"choices":[{"delta":{"content":"fine"}}]}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(parsed.text, "fine");
    }

    fn model(base_url: &str) -> ModelConfig {
        ModelConfig {
            name: "m".into(),
            provider: crate::config::Provider::Openai,
            base_url: base_url.into(),
            model: "gpt-test".into(),
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
        }
    }

    #[test]
    fn request_bodies_carry_history_in_openai_shape() {
        let request = ChatRequest {
            system: "sys".into(),
            messages: vec![
                Message::user("go"),
                Message::Assistant {
                    content: String::new(),
                    tool_calls: vec![
                        ToolCall::from_raw("c1".into(), "read_file".into(), r#"{"path":"a"}"#),
                        ToolCall::from_raw("c2".into(), "write_file".into(), r#"{"pa"#),
                    ],
                },
                Message::Tool {
                    call_id: "c1".into(),
                    content: "A".into(),
                    is_error: false,
                },
                Message::Tool {
                    call_id: "c2".into(),
                    content: "arguments are not valid JSON".into(),
                    is_error: true,
                },
            ],
            tools: vec![crate::model::ToolSpec {
                name: "read_file".into(),
                description: "read".into(),
                input_schema: json!({"type": "object"}),
            }],
            max_tokens: None,
        };
        let streamed = body(&model("http://127.0.0.1:1/v1"), &request, true);
        assert_eq!(
            streamed["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        let assistant = &streamed["messages"][2];
        assert_eq!(
            assistant["content"],
            Value::Null,
            "no text beside tool calls"
        );
        assert_eq!(assistant["tool_calls"][0]["type"], "function");
        assert_eq!(
            assistant["tool_calls"][0]["function"]["arguments"],
            r#"{"path":"a"}"#
        );
        assert_eq!(
            assistant["tool_calls"][1]["function"]["arguments"], "{}",
            "invalid arguments go back as {{}}"
        );
        assert_eq!(streamed["messages"][3]["tool_call_id"], "c1");
        assert_eq!(
            streamed["messages"][4]["content"],
            "Error: arguments are not valid JSON"
        );
        assert_eq!(
            streamed["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        assert_eq!(streamed["stream_options"], json!({"include_usage": true}));
        assert_eq!(streamed["max_tokens"], 100);
        let plain = body(&model("https://api.openai.com/v1"), &request, false);
        assert!(plain.get("stream_options").is_none());
        assert_eq!(plain["max_completion_tokens"], 100);
        assert!(plain.get("max_tokens").is_none());
    }

    #[test]
    fn non_streaming_responses() {
        let parsed = parse(&json!({
            "choices": [{"message": {"content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "finish", "arguments": "{\"summary\":\"done\"}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4},
        }))
        .unwrap();
        assert_eq!(parsed.tool_calls[0].arguments["summary"], "done");
        assert_eq!(
            parsed.usage,
            Some(Reported {
                input: 10,
                output: 4,
                ..Reported::default()
            })
        );
        // llama.cpp may send arguments as an object.
        let parsed = parse(&json!({
            "choices": [{"message": {"tool_calls": [
                {"function": {"name": "finish", "arguments": {"summary": "x"}}}
            ]}, "finish_reason": "stop"}],
        }))
        .unwrap();
        assert_eq!(parsed.tool_calls[0].arguments["summary"], "x");
        assert_eq!(parsed.tool_calls[0].id, "call_0");
    }
}
