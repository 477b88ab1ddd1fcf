//! The fake model's token economy, as real providers have one: a request's size measured from
//! what it holds, a context window it must fit, and a prompt cache that serves a prefix seen
//! before, with each provider's rules (OpenAI and compatible servers cache automatically from
//! 1,024 tokens in steps of 128; Anthropic caches only up to the breakpoints a request marks
//! with `cache_control`, from 1,024 tokens).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

/// The least a prefix must hold to be cached, as both providers have it.
const MIN_CACHED: u64 = 1024;
/// OpenAI caches prefixes in steps of this many tokens.
const OPENAI_STEP: u64 = 128;

/// Tokens in text, the way the rest of pitcrew estimates them (about four bytes a token).
pub fn tokens_of(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// A request measured: its prompt in order, as the provider would cache it.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Every prompt token.
    pub input: u64,
    /// Each unit of the prompt (a tool, the system prompt, a message): its tokens, the hash of
    /// the prompt up to and with it, and whether it ends at a cache breakpoint.
    units: Vec<(u64, u64, bool)>,
}

/// Measures a request body of `protocol` (`openai` or `anthropic`).
pub fn measure(protocol: &str, body: &Value) -> Measured {
    let mut units: Vec<(String, bool)> = Vec::new();
    let marked = |value: &Value| value.to_string().contains("\"cache_control\"");
    if protocol == "anthropic" {
        // Anthropic's prefix order: tools, system, messages.
        for tool in body["tools"].as_array().into_iter().flatten() {
            units.push((tool.to_string(), marked(tool)));
        }
        match &body["system"] {
            Value::Array(blocks) => {
                for block in blocks {
                    units.push((block.to_string(), marked(block)));
                }
            }
            Value::Null => {}
            other => units.push((other.to_string(), false)),
        }
        for message in body["messages"].as_array().into_iter().flatten() {
            units.push((message.to_string(), marked(message)));
        }
    } else {
        units.push((body["tools"].to_string(), false));
        for message in body["messages"].as_array().into_iter().flatten() {
            units.push((message.to_string(), false));
        }
    }
    let mut hasher = DefaultHasher::new();
    let mut measured = Measured::default();
    // A breakpoint is not part of what is cached: the same block marked or not is the same
    // prefix, as providers see it.
    let units = units
        .into_iter()
        .map(|(text, breakpoint)| (unmarked(&text), breakpoint));
    for (text, breakpoint) in units {
        text.hash(&mut hasher);
        let tokens = tokens_of(&text);
        measured.input += tokens;
        measured.units.push((tokens, hasher.finish(), breakpoint));
    }
    measured
}

/// `json` without its `cache_control` markers.
fn unmarked(json: &str) -> String {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("cache_control");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(json) {
        Ok(mut value) => {
            strip(&mut value);
            value.to_string()
        }
        Err(_) => json.to_owned(),
    }
}

/// What the cache did for one request: tokens read from it and written to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cached {
    pub read: u64,
    pub write: u64,
}

/// A provider's prompt cache: the prefixes it holds, by hash.
#[derive(Debug, Default)]
pub struct PromptCache {
    held: HashSet<u64>,
}

impl PromptCache {
    /// Serves `request` from the cache and stores what it should keep.
    pub fn serve(&mut self, protocol: &str, request: &Measured) -> Cached {
        if protocol == "anthropic" {
            self.serve_breakpoints(request)
        } else {
            self.serve_automatic(request)
        }
    }

    /// OpenAI: the longest prefix seen before, from 1,024 tokens, in steps of 128; every
    /// prefix of this request is kept.
    fn serve_automatic(&mut self, request: &Measured) -> Cached {
        let mut prefix = 0;
        let mut hit = 0;
        for (tokens, hash, _) in &request.units {
            prefix += tokens;
            if self.held.contains(hash) {
                hit = prefix;
            }
        }
        for (_, hash, _) in &request.units {
            self.held.insert(*hash);
        }
        let read = if hit >= MIN_CACHED {
            hit / OPENAI_STEP * OPENAI_STEP
        } else {
            0
        };
        Cached { read, write: 0 }
    }

    /// Anthropic: the longest prefix up to a breakpoint that is held is read; the prefix up to
    /// the last breakpoint, if not held, is written (and kept), from 1,024 tokens.
    fn serve_breakpoints(&mut self, request: &Measured) -> Cached {
        let mut prefix = 0;
        let mut read = 0;
        let mut last_breakpoint = None;
        for (tokens, hash, breakpoint) in &request.units {
            prefix += tokens;
            // Anthropic also finds a held prefix at an earlier breakpoint of another request
            // within a few blocks; any held prefix stands for that here.
            if self.held.contains(hash) {
                read = prefix;
            }
            if *breakpoint {
                last_breakpoint = Some((prefix, *hash));
            }
        }
        let read = if read >= MIN_CACHED { read } else { 0 };
        let mut write = 0;
        if let Some((end, hash)) = last_breakpoint
            && end >= MIN_CACHED
            && end > read
        {
            write = end - read;
            self.held.insert(hash);
        }
        // Every breakpoint's prefix is held once written.
        let mut prefix = 0;
        for (tokens, hash, breakpoint) in &request.units {
            prefix += tokens;
            if *breakpoint && prefix <= read + write && prefix >= MIN_CACHED {
                self.held.insert(*hash);
            }
        }
        Cached { read, write }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn long(n: usize) -> String {
        "word ".repeat(n)
    }

    #[test]
    fn openai_caches_a_repeated_prefix_in_steps_from_1024_tokens() {
        let mut cache = PromptCache::default();
        let first = json!({"messages": [{"role": "system", "content": long(2000)}, {"role": "user", "content": "one"}]});
        let measured = measure("openai", &first);
        assert!(measured.input > 2400);
        assert_eq!(cache.serve("openai", &measured), Cached::default());
        let second = json!({"messages": [{"role": "system", "content": long(2000)}, {"role": "user", "content": "two"}]});
        let cached = cache.serve("openai", &measure("openai", &second));
        assert!(cached.read >= 2400 && cached.read % 128 == 0, "{cached:?}");
        // Below 1,024 tokens nothing is cached.
        let short = json!({"messages": [{"role": "system", "content": "short"}]});
        cache.serve("openai", &measure("openai", &short));
        assert_eq!(cache.serve("openai", &measure("openai", &short)).read, 0);
    }

    #[test]
    fn anthropic_caches_only_at_breakpoints() {
        let mut cache = PromptCache::default();
        let system =
            json!([{"type": "text", "text": long(2000), "cache_control": {"type": "ephemeral"}}]);
        let unmarked = json!([{"type": "text", "text": long(2000)}]);
        let request = |system: &Value, turn: &str| json!({"system": system, "messages": [{"role": "user", "content": [{"type": "text", "text": turn}]}]});
        // Without a breakpoint nothing is written or read.
        let plain = measure("anthropic", &request(&unmarked, "a"));
        assert_eq!(cache.serve("anthropic", &plain), Cached::default());
        assert_eq!(cache.serve("anthropic", &plain), Cached::default());
        // With one: the first request writes, the next reads.
        let first = cache.serve("anthropic", &measure("anthropic", &request(&system, "a")));
        assert!(first.write > 2400 && first.read == 0, "{first:?}");
        let second = cache.serve("anthropic", &measure("anthropic", &request(&system, "b")));
        assert_eq!(second.read, first.write, "{second:?}");
        assert_eq!(second.write, 0);
    }
}
