//! Why a model call failed, whether trying again can help, and how long to wait.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde::Serialize;

/// Which clock ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutPhase {
    /// No response (or, streaming, no first event) in time.
    FirstByte,
    /// Too long a gap between two chunks of a stream.
    Idle,
    /// The whole call, retries included.
    Total,
}

/// The reason one attempt, or a whole call, failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The provider answered with an error status.
    Status {
        status: u16,
        /// The provider's own message, with any key redacted.
        message: String,
        /// The provider's error code or type (`rate_limit_error`, `insufficient_quota`).
        code: Option<String>,
        #[serde(skip)]
        retry_after: Option<Duration>,
    },
    /// Out of credit or over a spending limit: waiting will not help.
    Quota {
        status: u16,
        message: String,
    },
    /// No connection could be made, or it dropped before a response.
    Connect {
        message: String,
    },
    Timeout {
        phase: TimeoutPhase,
        after_ms: u64,
    },
    /// The stream ended, or broke, before its terminator.
    CutStream {
        message: String,
    },
    /// The provider reported an error inside a successful (HTTP 200) stream.
    InBand {
        message: String,
        code: Option<String>,
    },
    /// The provider sent something that is not its protocol.
    Malformed {
        message: String,
    },
    /// The model names a key variable that is not set.
    MissingKey {
        variable: String,
    },
    Cancelled,
}

impl Failure {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        // Too long stays too long: the caller shortens the request instead.
        if self.is_context_overflow() {
            return false;
        }
        match self {
            Failure::Status { status, .. } => {
                matches!(status, 408 | 409 | 429 | 529) || (500..=599).contains(status)
            }
            Failure::Connect { .. } | Failure::CutStream { .. } | Failure::Malformed { .. } => true,
            Failure::Timeout { phase, .. } => *phase != TimeoutPhase::Total,
            Failure::InBand { code, message } => {
                let code = code.as_deref().unwrap_or("");
                let transient = [
                    "overloaded",
                    "rate_limit",
                    "api_error",
                    "server_error",
                    "timeout",
                    "500",
                    "502",
                    "503",
                    "529",
                ];
                transient.iter().any(|t| code.contains(t))
                    || message.to_ascii_lowercase().contains("overloaded")
            }
            Failure::Quota { .. } | Failure::MissingKey { .. } | Failure::Cancelled => false,
        }
    }

    /// Whether the provider refused the request for not fitting the model's context window:
    /// OpenAI's `context_length_exceeded`, Anthropic's "prompt is too long", llama.cpp's
    /// "exceeds the available context size", vLLM's "maximum context length".
    pub fn is_context_overflow(&self) -> bool {
        // A refusal of the request (400, 413, some servers' 500), never a rate limit.
        let (message, code) = match self {
            Failure::Status {
                status,
                message,
                code,
                ..
            } if !matches!(status, 408 | 409 | 429 | 529) => {
                (message.to_ascii_lowercase(), code.as_deref().unwrap_or(""))
            }
            Failure::InBand { message, code } => {
                (message.to_ascii_lowercase(), code.as_deref().unwrap_or(""))
            }
            _ => return false,
        };
        code == "context_length_exceeded"
            || [
                "context_length_exceeded",
                "prompt is too long",
                "exceeds the available context size",
                "exceeds the context window",
                "maximum context length",
                "input is too long",
                "reduce the length of the messages",
            ]
            .iter()
            .any(|needle| message.contains(needle))
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The same failure with `secret` removed from every message it carries.
    pub fn redacted(self, secret: Option<&str>) -> Self {
        let clean = |text: String| redact(&text, secret);
        match self {
            Failure::Status {
                status,
                message,
                code,
                retry_after,
            } => Failure::Status {
                status,
                message: clean(message),
                code,
                retry_after,
            },
            Failure::Quota { status, message } => Failure::Quota {
                status,
                message: clean(message),
            },
            Failure::Connect { message } => Failure::Connect {
                message: clean(message),
            },
            Failure::CutStream { message } => Failure::CutStream {
                message: clean(message),
            },
            Failure::InBand { message, code } => Failure::InBand {
                message: clean(message),
                code,
            },
            Failure::Malformed { message } => Failure::Malformed {
                message: clean(message),
            },
            other => other,
        }
    }

    /// The HTTP status, for failures that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } | Failure::Quota { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status {
                status,
                message,
                code,
                retry_after,
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(code) = code {
                    write!(f, " ({code})")?;
                }
                write!(f, ": {message}")?;
                match retry_after {
                    Some(wait) if *wait < Duration::from_secs(1) => {
                        write!(f, " [asked to retry after {} ms]", wait.as_millis())?;
                    }
                    Some(wait) => {
                        write!(f, " [asked to retry after {:.1} s]", wait.as_secs_f64())?;
                    }
                    None => {}
                }
                Ok(())
            }
            Failure::Quota { status, message } => write!(
                f,
                "HTTP {status}: out of quota or over a spending limit, not retried: {message}"
            ),
            Failure::Connect { message } => write!(f, "connection failed: {message}"),
            Failure::Timeout { phase, after_ms } => {
                let what = match phase {
                    TimeoutPhase::FirstByte => "no response",
                    TimeoutPhase::Idle => "the stream stalled",
                    TimeoutPhase::Total => "the call took too long",
                };
                write!(f, "timed out: {what} within {after_ms} ms")
            }
            Failure::CutStream { message } => {
                write!(f, "the stream ended before it was complete: {message}")
            }
            Failure::InBand { message, code } => match code {
                Some(code) => write!(
                    f,
                    "the provider reported an error mid-stream ({code}): {message}"
                ),
                None => write!(f, "the provider reported an error mid-stream: {message}"),
            },
            Failure::Malformed { message } => write!(f, "malformed response: {message}"),
            Failure::MissingKey { variable } => write!(
                f,
                "the key variable ${variable} is not set (export it, or change api_key_env)"
            ),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// A failed call: the last failure, why pitcrew stopped trying, and what was tried.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("model `{model_name}` ({model}): {failure}; {gave_up} (after {attempts} attempt{s} in {elapsed_ms} ms)", s = if *attempts == 1 { "" } else { "s" })]
pub struct CallError {
    pub model_name: String,
    pub model: String,
    pub failure: Failure,
    /// Why there was no further attempt ("not retried: ...", "gave up: ...").
    pub gave_up: String,
    pub attempts: u32,
    pub elapsed_ms: u64,
}

/// The wait a response asks for: `retry-after-ms`, else `retry-after` in seconds or as an HTTP
/// date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        // A value too large for a Duration is simply longer than any cap.
        return Some(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Cuts a provider's message (a proxy's HTML page, say) to a readable length.
pub fn shorten(text: &str) -> String {
    const LIMIT: usize = 500;
    let text = text.trim();
    if text.chars().count() <= LIMIT {
        return text.to_owned();
    }
    let cut: String = text.chars().take(LIMIT).collect();
    format!(
        "{cut}... [{} more characters]",
        text.chars().count() - LIMIT
    )
}

/// Replaces every occurrence of `secret` in `text`.
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if secret.len() >= 4 => text.replace(secret, "[redacted]"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_in_its_three_forms() {
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")])),
            Some(Duration::from_millis(250))
        );
        let in_ten = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
        let wait = parse_retry_after(&headers(&[("retry-after", &in_ten)])).unwrap();
        assert!(
            wait > Duration::from_secs(8) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "soon")])),
            None
        );
        assert_eq!(parse_retry_after(&headers(&[])), None);
    }

    #[test]
    fn what_is_retried() {
        let status = |status| Failure::Status {
            status,
            message: String::new(),
            code: None,
            retry_after: None,
        };
        for retried in [408, 409, 429, 500, 502, 503, 529] {
            assert!(status(retried).is_retryable(), "{retried}");
        }
        for not in [400, 401, 403, 404, 422] {
            assert!(!status(not).is_retryable(), "{not}");
        }
        assert!(
            !Failure::Quota {
                status: 429,
                message: String::new()
            }
            .is_retryable()
        );
        let overloaded = Failure::InBand {
            message: "Overloaded".into(),
            code: Some("overloaded_error".into()),
        };
        assert!(overloaded.is_retryable());
        let refused = Failure::InBand {
            message: "prompt too long".into(),
            code: Some("invalid_request_error".into()),
        };
        assert!(!refused.is_retryable());
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact("Incorrect API key provided: sk-12345", Some("sk-12345")),
            "Incorrect API key provided: [redacted]"
        );
        assert_eq!(redact("nothing here", None), "nothing here");
    }
}
