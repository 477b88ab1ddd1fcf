//! Tool calls that a model wrote as text instead of as native tool calls, recovered when there
//! is no doubt about them.
//!
//! Local servers often put the call in the message: Hermes and Qwen templates write
//! `<tool_call>{"name": …, "arguments": …}</tool_call>`, Mistral `[TOOL_CALLS][…]`, Llama
//! `<|python_tag|>{…}`, and many models a bare or fenced JSON object with `name` and `arguments`
//! (or `parameters`), sometimes with the arguments as a JSON string. A call is recovered only
//! when it names one of the tools offered and its arguments are an object with every required
//! field, of the right JSON type. A JSON object inside prose is not a call: only tagged calls,
//! or a message that is nothing but calls, count.

use serde_json::Value;

use super::types::{ToolCall, ToolSpec};

/// Calls recovered from a message's text, and the format they were in.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub calls: Vec<ToolCall>,
    /// `hermes`, `mistral`, `llama`, `json`.
    pub format: &'static str,
}

/// The calls `text` holds, if it holds calls beyond doubt; `None` otherwise (nothing, or
/// something that might be a call but is not certainly one: a tool not offered, arguments that
/// do not validate, JSON in the middle of prose).
pub fn recover(text: &str, tools: &[ToolSpec]) -> Option<Recovered> {
    let text = text.trim();
    if text.is_empty() || tools.is_empty() {
        return None;
    }
    let (format, candidates) = if text.contains("<tool_call>") {
        ("hermes", tagged(text, "<tool_call>", "</tool_call>")?)
    } else if let Some(rest) = text.split_once("[TOOL_CALLS]").map(|(_, rest)| rest) {
        ("mistral", whole_json(rest)?)
    } else if let Some(rest) = text.split_once("<|python_tag|>").map(|(_, rest)| rest) {
        let rest = rest.split("<|eom_id|>").next().unwrap_or(rest);
        let rest = rest.split("<|eot_id|>").next().unwrap_or(rest);
        ("llama", whole_json(rest)?)
    } else {
        ("json", whole_json(unfenced(text)?)?)
    };
    let calls: Option<Vec<ToolCall>> = candidates
        .iter()
        .enumerate()
        .map(|(i, candidate)| call_of(candidate, tools, i))
        .collect();
    let calls = calls?;
    (!calls.is_empty()).then_some(Recovered { calls, format })
}

/// The JSON values between `open` and `close` tags; `None` when one is not JSON.
fn tagged(text: &str, open: &str, close: &str) -> Option<Vec<Value>> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        // A missing closing tag (the model stopped) ends the call at the end of the text.
        let (inside, next) = match after.find(close) {
            Some(end) => (&after[..end], &after[end + close.len()..]),
            None => (after, ""),
        };
        found.extend(whole_json(unfenced(inside.trim())?)?);
        rest = next;
    }
    (!found.is_empty()).then_some(found)
}

/// `text` without a Markdown code fence around it; `None` when there is text outside the fence.
fn unfenced(text: &str) -> Option<&str> {
    let text = text.trim();
    let Some(inner) = text.strip_prefix("```") else {
        return Some(text);
    };
    let inner = inner.strip_suffix("```")?;
    // The fence's language tag (`json`, `tool_call`), up to the first line break.
    let body = match inner.split_once('\n') {
        Some((tag, body)) if !tag.trim_start().starts_with(['{', '[']) => body,
        _ => inner,
    };
    (!body.contains("```")).then_some(body.trim())
}

/// `text` as one JSON object or an array of objects, and nothing else.
fn whole_json(text: &str) -> Option<Vec<Value>> {
    let value: Value = serde_json::from_str(text.trim()).ok()?;
    match value {
        Value::Object(_) => Some(vec![value]),
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            Some(items)
        }
        _ => None,
    }
}

/// The call a candidate object describes, if it is one beyond doubt.
fn call_of(candidate: &Value, tools: &[ToolSpec], index: usize) -> Option<ToolCall> {
    // `{"name", "arguments"}`, `{"name", "parameters"}`, or OpenAI's own shape written out:
    // `{"function": {"name", "arguments"}}`.
    let candidate = candidate.get("function").unwrap_or(candidate);
    let name = candidate.get("name")?.as_str()?;
    let tool = tools.iter().find(|t| t.name == name)?;
    let arguments = match candidate
        .get("arguments")
        .or_else(|| candidate.get("parameters"))
    {
        None | Some(Value::Null) => Value::Object(Default::default()),
        // The arguments as a JSON string inside JSON.
        Some(Value::String(raw)) => serde_json::from_str(raw).ok()?,
        Some(other) => other.clone(),
    };
    if !validates(&arguments, &tool.input_schema) {
        return None;
    }
    Some(ToolCall {
        id: format!("recovered_{index}"),
        name: name.to_owned(),
        arguments,
        invalid_arguments: None,
    })
}

/// Whether `arguments` is an object with every required property, each present property of the
/// type the schema gives (the subset of JSON Schema the tools use).
fn validates(arguments: &Value, schema: &Value) -> bool {
    let Some(object) = arguments.as_object() else {
        return false;
    };
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    if !required
        .iter()
        .filter_map(Value::as_str)
        .all(|key| object.contains_key(key))
    {
        return false;
    }
    let properties = schema["properties"].as_object();
    object.iter().all(|(key, value)| {
        let Some(expected) = properties
            .and_then(|p| p.get(key))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        else {
            // Unknown properties are the tool's to refuse; their presence is no doubt.
            return true;
        };
        match expected {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "read_file".into(),
                description: String::new(),
                input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}, "start_line": {"type": "integer"}}, "required": ["path"]}),
            },
            ToolSpec {
                name: "finish".into(),
                description: String::new(),
                input_schema: json!({"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}),
            },
        ]
    }

    #[track_caller]
    fn recovered(text: &str) -> (Vec<(String, Value)>, &'static str) {
        let found = recover(text, &tools()).unwrap_or_else(|| panic!("nothing in {text:?}"));
        (
            found
                .calls
                .into_iter()
                .map(|c| (c.name, c.arguments))
                .collect(),
            found.format,
        )
    }

    #[test]
    fn every_format_local_servers_write() {
        let read = vec![("read_file".to_owned(), json!({"path": "src/a.rs"}))];
        for (text, format) in [
            (
                "<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"src/a.rs\"}}\n</tool_call>",
                "hermes",
            ),
            (
                "Let me look.\n<tool_call>{\"name\":\"read_file\",\"arguments\":{\"path\":\"src/a.rs\"}}</tool_call>",
                "hermes",
            ),
            (
                "[TOOL_CALLS][{\"name\": \"read_file\", \"arguments\": {\"path\": \"src/a.rs\"}}]",
                "mistral",
            ),
            (
                "<|python_tag|>{\"name\": \"read_file\", \"parameters\": {\"path\": \"src/a.rs\"}}<|eom_id|>",
                "llama",
            ),
            (
                "{\"name\": \"read_file\", \"arguments\": {\"path\": \"src/a.rs\"}}",
                "json",
            ),
            (
                "```json\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"src/a.rs\"}}\n```",
                "json",
            ),
            (
                "{\"name\": \"read_file\", \"arguments\": \"{\\\"path\\\": \\\"src/a.rs\\\"}\"}",
                "json",
            ),
            (
                "{\"function\": {\"name\": \"read_file\", \"arguments\": {\"path\": \"src/a.rs\"}}}",
                "json",
            ),
        ] {
            assert_eq!(recovered(text), (read.clone(), format), "{text}");
        }
        let (two, _) = recovered(
            "<tool_call>{\"name\":\"read_file\",\"arguments\":{\"path\":\"a\"}}</tool_call>\n<tool_call>{\"name\":\"finish\",\"arguments\":{\"summary\":\"done\"}}</tool_call>",
        );
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].0, "finish");
    }

    #[test]
    fn nothing_doubtful_is_a_call() {
        for text in [
            "I would call read_file with {\"path\": \"a\"} next.",
            "Here is an example: {\"name\": \"read_file\", \"arguments\": {\"path\": \"a\"}} and more prose",
            "{\"name\": \"delete_everything\", \"arguments\": {}}",
            "{\"name\": \"read_file\", \"arguments\": {}}",
            "{\"name\": \"read_file\", \"arguments\": {\"path\": 7}}",
            "<tool_call>{\"name\": \"read_file\", \"arguments\": {\"path\": \"a\"</tool_call>",
            "<tool_call>{\"name\":\"read_file\",\"arguments\":{\"path\":\"a\"}}</tool_call><tool_call>{\"name\":\"nope\",\"arguments\":{}}</tool_call>",
            "```json\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a\"}}\n``` and then prose",
            "ok",
            "",
        ] {
            assert_eq!(recover(text, &tools()), None, "{text}");
        }
    }
}
