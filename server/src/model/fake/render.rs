//! How the fake model writes an answer in each wire protocol, whole or as SSE frames.

use serde_json::{Value, json};

use super::script::{Quirk, TextCalls, UsageSpec};

/// An answer, ready to render.
#[derive(Debug, Clone)]
pub struct Answer {
    pub id: String,
    pub model: String,
    pub text: String,
    /// (id, name, arguments as JSON text).
    pub calls: Vec<(String, String, String)>,
    /// The stop reason, if the script overrides it.
    pub stop: Option<String>,
    pub usage: UsageSpec,
    pub quirks: Vec<Quirk>,
}

impl Answer {
    fn has(&self, quirk: Quirk) -> bool {
        self.quirks.contains(&quirk)
    }

    fn openai_stop(&self) -> String {
        if let Some(stop) = &self.stop {
            return stop.clone();
        }
        if self.has(Quirk::EmptyFinishReason) {
            return String::new();
        }
        if self.calls.is_empty() || self.has(Quirk::OllamaToolCalls) {
            "stop".into()
        } else {
            "tool_calls".into()
        }
    }

    fn anthropic_stop(&self) -> String {
        self.stop.clone().unwrap_or_else(|| {
            if self.calls.is_empty() {
                "end_turn".into()
            } else {
                "tool_use".into()
            }
        })
    }
}

fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|chunk| chunk.iter().collect())
        .collect()
}

fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn sse_event(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

pub fn openai_complete(answer: &Answer) -> Value {
    let mut message = json!({"role": "assistant", "content": if answer.text.is_empty() { Value::Null } else { json!(answer.text) }});
    if !answer.calls.is_empty() {
        message["tool_calls"] = answer
            .calls
            .iter()
            .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
            .collect();
    }
    let mut body = json!({
        "id": answer.id,
        "object": "chat.completion",
        "created": 0,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.openai_stop()}],
    });
    if answer.has(Quirk::EmptyUsage) {
        body["usage"] = json!({});
    } else if !answer.has(Quirk::NoUsage) {
        body["usage"] = openai_usage(answer.usage);
    }
    body
}

fn openai_usage(usage: UsageSpec) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    })
}

/// Anthropic's usage: `input_tokens` counts only what was neither read from nor written to the
/// cache.
fn anthropic_usage(usage: UsageSpec, output: u64) -> Value {
    json!({
        "input_tokens": usage
            .input_tokens
            .saturating_sub(usage.cache_read_tokens + usage.cache_write_tokens),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": output,
    })
}

/// Writes `answer`'s tool calls into its text in `format`, as a local server's template does,
/// and leaves it no native calls.
pub fn calls_into_text(answer: &mut Answer, format: TextCalls) {
    let calls: Vec<Value> = answer
        .calls
        .drain(..)
        .map(|(_, name, args)| {
            let arguments: Value = serde_json::from_str(&args).unwrap_or_else(|_| json!({}));
            (name, arguments)
        })
        .map(|(name, arguments)| match format {
            TextCalls::Llama => json!({"name": name, "parameters": arguments}),
            _ => json!({"name": name, "arguments": arguments}),
        })
        .collect();
    let text = match format {
        TextCalls::Hermes => calls
            .iter()
            .map(|call| format!("<tool_call>\n{call}\n</tool_call>"))
            .collect::<Vec<_>>()
            .join("\n"),
        TextCalls::Mistral => format!("[TOOL_CALLS]{}", Value::Array(calls)),
        TextCalls::Llama => format!(
            "<|python_tag|>{}<|eom_id|>",
            calls.first().cloned().unwrap_or_default()
        ),
        TextCalls::Json => format!(
            "```json\n{}\n```",
            calls.first().cloned().unwrap_or_default()
        ),
    };
    answer.text = if answer.text.is_empty() {
        text
    } else {
        format!("{}\n{text}", answer.text)
    };
}

/// The SSE frames of a streamed OpenAI answer, `[DONE]` last.
pub fn openai_stream(answer: &Answer, chunk_size: usize) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        sse(&json!({
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": answer.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }))
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for piece in pieces(&answer.text, chunk_size) {
        frames.push(chunk(json!({"content": piece}), Value::Null));
    }
    if answer.has(Quirk::OllamaToolCalls) {
        for (id, name, args) in &answer.calls {
            frames.push(chunk(
                json!({"role": "assistant", "content": "", "tool_calls": [
                    {"id": id, "type": "function", "function": {"name": name, "arguments": args}}
                ]}),
                Value::Null,
            ));
        }
    } else {
        for (index, (id, name, args)) in answer.calls.iter().enumerate() {
            frames.push(chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            for piece in pieces(args, chunk_size) {
                frames.push(chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
        }
    }
    let mut finish = json!({
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": answer.model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": answer.openai_stop()}],
    });
    if answer.has(Quirk::EmptyUsage) {
        finish["usage"] = json!({});
    }
    frames.push(sse(&finish));
    if !answer.has(Quirk::NoUsage) && !answer.has(Quirk::EmptyUsage) {
        let choices = if answer.has(Quirk::ChoicesNull) {
            Value::Null
        } else {
            json!([])
        };
        frames.push(sse(&json!({
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": answer.model,
            "choices": choices,
            "usage": openai_usage(answer.usage),
        })));
    }
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

pub fn anthropic_complete(answer: &Answer) -> Value {
    let mut content = Vec::new();
    if !answer.text.is_empty() {
        content.push(json!({"type": "text", "text": answer.text}));
    }
    for (id, name, args) in &answer.calls {
        let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    json!({
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": answer.anthropic_stop(),
        "stop_sequence": null,
        "usage": anthropic_usage(answer.usage, answer.usage.output_tokens),
    })
}

/// The SSE frames of a streamed Anthropic answer, `message_stop` last.
pub fn anthropic_stream(answer: &Answer, chunk_size: usize) -> Vec<String> {
    let mut frames = vec![
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": answer.id, "type": "message", "role": "assistant", "model": answer.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": anthropic_usage(answer.usage, 1),
            }}),
        ),
        sse_event("ping", &json!({"type": "ping"})),
    ];
    let mut index = 0;
    if !answer.text.is_empty() {
        frames.push(sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        for piece in pieces(&answer.text, chunk_size) {
            frames.push(sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        frames.push(sse_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for (id, name, args) in &answer.calls {
        frames.push(sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ));
        for piece in pieces(args, chunk_size) {
            frames.push(sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
            ));
        }
        frames.push(sse_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    frames.push(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": answer.anthropic_stop(), "stop_sequence": null},
                "usage": {"output_tokens": answer.usage.output_tokens}}),
    ));
    frames.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    frames
}

/// An error body in the protocol's own shape.
pub fn error_body(protocol: &str, message: &str, code: &str) -> Value {
    if protocol == "anthropic" {
        json!({"type": "error", "error": {"type": code, "message": message}})
    } else {
        json!({"error": {"message": message, "type": code, "code": code}})
    }
}

/// An error reported inside a 200 stream.
pub fn in_band_error(protocol: &str, message: &str, code: &str, quirks: &[Quirk]) -> String {
    if protocol == "anthropic" {
        sse_event("error", &error_body(protocol, message, code))
    } else if quirks.contains(&Quirk::InBandCode) {
        sse(&json!({"code": code, "message": message}))
    } else {
        sse(&json!({"error": {"message": message, "type": code, "code": code}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(quirks: Vec<Quirk>) -> Answer {
        Answer {
            id: "x".into(),
            model: "m".into(),
            text: "hello world".into(),
            calls: vec![("c1".into(), "finish".into(), r#"{"summary":"ok"}"#.into())],
            stop: None,
            usage: UsageSpec {
                input_tokens: 7,
                output_tokens: 3,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            },
            quirks,
        }
    }

    #[test]
    fn openai_stream_ends_with_usage_then_done() {
        let frames = openai_stream(&answer(vec![]), 4);
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        assert!(frames[frames.len() - 2].contains("\"prompt_tokens\":7"));
        assert!(
            frames
                .iter()
                .any(|f| f.contains("\"finish_reason\":\"tool_calls\""))
        );
        let ollama = openai_stream(&answer(vec![Quirk::OllamaToolCalls, Quirk::NoUsage]), 4);
        assert!(
            ollama
                .iter()
                .any(|f| f.contains("\"finish_reason\":\"stop\""))
        );
        assert!(!ollama.iter().any(|f| f.contains("\"index\":0,\"id\"")));
        assert!(!ollama.iter().any(|f| f.contains("usage")));
    }

    #[test]
    fn anthropic_stream_has_every_event_in_order() {
        let frames = anthropic_stream(&answer(vec![]), 5);
        let events: Vec<&str> = frames
            .iter()
            .map(|f| f.lines().next().unwrap().trim_start_matches("event: "))
            .collect();
        assert_eq!(events.first(), Some(&"message_start"));
        assert_eq!(events.last(), Some(&"message_stop"));
        assert!(events.contains(&"content_block_delta"));
        assert!(frames.iter().any(|f| f.contains("input_json_delta")));
    }
}
