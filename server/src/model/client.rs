//! `ModelClient`: one configured model over HTTP, with retries, timeouts, cancellation and a
//! limit on concurrent requests to its endpoint. Both wire protocols share this path.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{CallError, Failure, TimeoutPhase, parse_retry_after, redact, shorten};
use super::types::{CallContext, ChatRequest, Completion, Parsed, Usage, estimate_tokens};
use super::{anthropic, openai};
use crate::config::{ModelConfig, Provider};

/// Error bodies longer than this are cut before they reach a message.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// A non-streamed response larger than this is not a chat completion.
const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;
/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Time spent in model calls by this process, for benchmarks that separate pitcrew's own time
/// from the models'.
static MODEL_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The total time this process has spent waiting on model calls (concurrent calls add up).
pub fn time_in_models() -> Duration {
    Duration::from_nanos(MODEL_NANOS.load(Ordering::Relaxed))
}

/// A key read from the environment. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Reads the variable `name`; `None` when it is unset or blank.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .map(|key| key.trim().to_owned())
            .filter(|key| !key.is_empty())
            .map(Self)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// One configured model, ready to call.
#[derive(Debug)]
pub struct ModelClient {
    config: ModelConfig,
    http: reqwest::Client,
    /// Shared by every model on the same endpoint.
    limiter: Arc<Semaphore>,
    /// Read from `config.api_key_env` when the client was built.
    key: Option<Secret>,
}

impl ModelClient {
    /// A client whose key comes from the variable the configuration names.
    pub fn new(config: ModelConfig, limiter: Arc<Semaphore>) -> Result<Self, String> {
        let key = config.api_key_env.as_deref().and_then(Secret::from_env);
        Self::with_key(config, limiter, key)
    }

    /// A client with the key given here rather than read from the environment.
    pub fn with_key(
        config: ModelConfig,
        limiter: Arc<Semaphore>,
        key: Option<Secret>,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(config.connect_timeout_s))
            // A redirect would turn the POST into a GET, and could carry the key to another
            // host: it is reported instead, with where it pointed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pitcrew/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot build an HTTP client: {err}"))?;
        Ok(Self {
            config,
            http,
            limiter,
            key,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The limit on requests in flight to this model's endpoint.
    pub fn limiter(&self) -> &Arc<Semaphore> {
        &self.limiter
    }

    /// The key, if the endpoint needs one; a missing one fails the call before any request.
    fn key(&self) -> Result<Option<Secret>, Failure> {
        match (&self.config.api_key_env, &self.key) {
            (None, _) => Ok(None),
            (Some(_), Some(key)) => Ok(Some(key.clone())),
            (Some(variable), None) => Err(Failure::MissingKey {
                variable: variable.clone(),
            }),
        }
    }

    /// The model ids the endpoint lists (`GET …/models`, which OpenAI, Anthropic, llama.cpp,
    /// vLLM and Ollama all answer), for the doctor: a local server may answer under the name
    /// the request gave, so this is where the model it really loaded shows. `None` when the
    /// server does not list models (an error, or an answer of another shape).
    pub async fn served_models(&self) -> Option<Vec<String>> {
        let url = match self.config.provider {
            Provider::Openai => openai::models_url(&self.config.base_url),
            Provider::Anthropic => anthropic::models_url(&self.config.base_url),
        };
        let json = self.get_json(&url).await?;
        json["data"].as_array().map(|models| {
            models
                .iter()
                .filter_map(|model| model["id"].as_str().map(str::to_owned))
                .collect()
        })
    }

    /// The context a llama.cpp server gives each request (`GET /props`: the `--ctx-size` per
    /// slot), for the doctor to hold against the configured window; `None` from other servers.
    pub async fn served_window(&self) -> Option<u32> {
        if self.config.provider != Provider::Openai {
            return None;
        }
        let base = self.config.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let json = self.get_json(&format!("{base}/props")).await?;
        json["default_generation_settings"]["n_ctx"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
    }

    /// A GET with the endpoint's key, bounded in time and size; the JSON, or `None`.
    async fn get_json(&self, url: &str) -> Option<Value> {
        let key = self.key().ok()?;
        let (_, mut headers) = self.endpoint(key.as_ref()).ok()?;
        headers.remove(CONTENT_TYPE);
        let timeout = Duration::from_secs_f64(self.config.request_timeout_s.min(10.0));
        let response = self
            .http
            .get(url)
            .headers(headers)
            .timeout(timeout)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let deadline = Instant::now() + timeout;
        let body = read_body(response, timeout, deadline, 4 * 1024 * 1024)
            .await
            .ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// Runs one model turn: retries what may pass, gives up on what cannot, and stops at once
    /// when `cancel` fires or the future is dropped (the HTTP request goes with it).
    pub async fn complete(
        &self,
        request: &ChatRequest,
        context: CallContext,
        cancel: &CancellationToken,
    ) -> Result<Completion, CallError> {
        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        // Why the retry loop stopped, when it stopped on a retryable failure.
        let gave_up: Mutex<Option<String>> = Mutex::new(None);
        let last_failure: Mutex<Option<Failure>> = Mutex::new(None);
        let error = |failure: Failure, gave_up: String, attempts: &AtomicU32| CallError {
            model_name: self.config.name.clone(),
            model: self.config.model.clone(),
            failure,
            gave_up,
            attempts: attempts.load(Ordering::SeqCst),
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        let key = self.key().map_err(|failure| {
            let why = not_retried(&failure);
            error(failure, why, &attempts)
        })?;
        let secret = key.as_ref().map(Secret::expose);
        let stream = self.config.stream;
        let body = match self.config.provider {
            Provider::Openai => openai::body(&self.config, request, stream),
            Provider::Anthropic => anthropic::body(&self.config, request, stream),
        };
        let total = Duration::from_secs_f64(self.config.request_timeout_s);
        let deadline = started + total;
        let cap = Duration::from_secs_f64(self.config.retry_after_cap_s);

        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs_f64(self.config.retry_base_delay_s))
            .with_max_delay(MAX_BACKOFF)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.config.max_retries as usize);
        let attempt = || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            let result = self
                .attempt(&body, key.as_ref(), deadline)
                .await
                .map_err(|failure| failure.redacted(secret));
            if let Err(failure) = &result {
                *lock(&last_failure) = Some(failure.clone());
            }
            result
        };
        let retrying = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Failure::is_retryable)
            .adjust(|failure, delay| {
                let stop = |why: String| {
                    *lock(&gave_up) = Some(why);
                    None
                };
                let Some(delay) = delay else {
                    return stop(format!(
                        "gave up: no retries left (max_retries = {})",
                        self.config.max_retries
                    ));
                };
                // Jitter can double backon's delay; keep it under the ceiling.
                let delay = delay.min(MAX_BACKOFF);
                let wait = match failure.retry_after() {
                    Some(wait) if wait > cap => {
                        return stop(format!(
                            "not retried: the provider asked to wait {:.0} s, more than \
                             retry_after_cap_s = {:.0} s",
                            wait.as_secs_f64(),
                            cap.as_secs_f64()
                        ));
                    }
                    // Never sooner than asked; a little later, so that parallel agents on
                    // one endpoint do not all come back at the same instant.
                    Some(wait) => (wait + jitter(wait / 10)).max(delay),
                    None => delay,
                };
                if Instant::now() + wait >= deadline {
                    return stop(format!(
                        "gave up: no time left to wait {} ms before request_timeout_s = {} s",
                        wait.as_millis(),
                        self.config.request_timeout_s
                    ));
                }
                Some(wait)
            })
            .notify(|failure, wait| {
                tracing::warn!(
                    model = %self.config.name,
                    role = %context.role,
                    task = context.task.as_deref().unwrap_or("-"),
                    "{failure}; retrying in {} ms",
                    wait.as_millis()
                );
            });

        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => Err((Failure::Cancelled, "not retried: cancelled".to_owned())),
            result = tokio::time::timeout_at(deadline, retrying) => match result {
                Ok(Ok(parsed)) => Ok(parsed),
                Ok(Err(failure)) => {
                    let why = lock(&gave_up).take().unwrap_or_else(|| not_retried(&failure));
                    Err((failure, why))
                }
                Err(_) => {
                    let why = match lock(&last_failure).take() {
                        Some(last) => format!("gave up at the deadline; the attempt before failed with: {last}"),
                        None => "gave up at the deadline".to_owned(),
                    };
                    Err((Failure::Timeout { phase: TimeoutPhase::Total, after_ms: total.as_millis() as u64 }, why))
                }
            },
        };
        MODEL_NANOS.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let parsed = outcome.map_err(|(failure, why)| error(failure, why, &attempts))?;

        let usage = self.usage(request, &parsed);
        Ok(Completion {
            stop: parsed.stop_reason(),
            text: parsed.text,
            tool_calls: parsed.tool_calls,
            usage,
            model_name: self.config.name.clone(),
            model: self.config.model.clone(),
            served_by: parsed.model,
            context,
            attempts: attempts.load(Ordering::SeqCst),
            duration: started.elapsed(),
        })
    }

    /// One HTTP attempt.
    async fn attempt(
        &self,
        body: &Value,
        key: Option<&Secret>,
        deadline: Instant,
    ) -> Result<Parsed, Failure> {
        // Wait for a slot on this endpoint; waiting counts against the call's deadline.
        let _permit = self
            .limiter
            .acquire()
            .await
            .map_err(|_| Failure::Cancelled)?;
        let attempt_started = Instant::now();
        let first_byte_by = (attempt_started
            + Duration::from_secs_f64(self.config.first_byte_timeout_s))
        .min(deadline);
        let first_byte_ms = first_byte_by.duration_since(attempt_started).as_millis() as u64;
        let (url, headers) = self.endpoint(key)?;
        let send = self.http.post(url).headers(headers).json(body).send();
        let response = match tokio::time::timeout_at(first_byte_by, send).await {
            Err(_) => {
                return Err(Failure::Timeout {
                    phase: TimeoutPhase::FirstByte,
                    after_ms: first_byte_ms,
                });
            }
            Ok(Err(err)) => return Err(transport_failure(&err)),
            Ok(Ok(response)) => response,
        };

        let status = response.status();
        let idle = Duration::from_secs_f64(self.config.idle_timeout_s);
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere")
                .to_owned();
            return Err(Failure::Status {
                status: status.as_u16(),
                message: format!(
                    "the endpoint redirects to {location}; set base_url to the final address"
                ),
                code: None,
                retry_after: None,
            });
        }
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = read_body(response, idle, deadline, MAX_ERROR_BODY)
                .await
                .unwrap_or_default();
            return Err(self.http_failure(status.as_u16(), &headers, &body, key));
        }

        // Some proxies ignore `stream` and answer with one JSON body; read it as such.
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !self.config.stream || is_json {
            let bytes = read_body(response, idle, deadline, MAX_RESPONSE_BODY).await?;
            let value: Value =
                serde_json::from_slice(&bytes).map_err(|err| Failure::Malformed {
                    message: format!("the response is not JSON ({err})"),
                })?;
            return match self.config.provider {
                Provider::Openai => openai::parse(&value),
                Provider::Anthropic => anthropic::parse(&value),
            };
        }

        let mut events = response.bytes_stream().eventsource();
        let mut state = match self.config.provider {
            Provider::Openai => StreamState::Openai(openai::StreamState::default()),
            Provider::Anthropic => StreamState::Anthropic(anthropic::StreamState::default()),
        };
        let mut first = true;
        while !state.is_done() {
            let (until, phase, after_ms) = if first {
                (first_byte_by, TimeoutPhase::FirstByte, first_byte_ms)
            } else {
                (
                    Instant::now() + idle,
                    TimeoutPhase::Idle,
                    idle.as_millis() as u64,
                )
            };
            // When the call's deadline comes first, that is what ran out.
            let (until, phase, after_ms) = if until >= deadline {
                (
                    deadline,
                    TimeoutPhase::Total,
                    self.config.request_timeout_s as u64 * 1000,
                )
            } else {
                (until, phase, after_ms)
            };
            let event = match tokio::time::timeout_at(until, events.next()).await {
                Err(_) => return Err(Failure::Timeout { phase, after_ms }),
                Ok(None) => break,
                Ok(Some(Err(err))) => {
                    return Err(Failure::CutStream {
                        message: err.to_string(),
                    });
                }
                Ok(Some(Ok(event))) => event,
            };
            first = false;
            match &mut state {
                StreamState::Openai(state) => state.on_data(&event.data)?,
                StreamState::Anthropic(state) => state.on_event(&event.event, &event.data)?,
            }
        }
        // Dropping `events` here closes the connection if the server kept it open.
        match state {
            StreamState::Openai(state) => state.finish(),
            StreamState::Anthropic(state) => state.finish(),
        }
    }

    fn endpoint(&self, key: Option<&Secret>) -> Result<(String, HeaderMap), Failure> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let sensitive = |value: String| {
            let mut value = HeaderValue::from_str(&value).map_err(|_| Failure::Malformed {
                message: format!(
                    "the key in ${} has characters that cannot be sent in an HTTP header",
                    self.config.api_key_env.as_deref().unwrap_or("?")
                ),
            })?;
            value.set_sensitive(true);
            Ok::<_, Failure>(value)
        };
        let url = match self.config.provider {
            Provider::Openai => {
                if let Some(key) = key {
                    headers.insert(
                        reqwest::header::AUTHORIZATION,
                        sensitive(format!("Bearer {}", key.expose()))?,
                    );
                }
                openai::url(&self.config.base_url)
            }
            Provider::Anthropic => {
                if let Some(key) = key {
                    headers.insert(
                        HeaderName::from_static("x-api-key"),
                        sensitive(key.expose().to_owned())?,
                    );
                }
                headers.insert(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(anthropic::API_VERSION),
                );
                anthropic::url(&self.config.base_url)
            }
        };
        Ok((url, headers))
    }

    fn http_failure(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        key: Option<&Secret>,
    ) -> Failure {
        let json = serde_json::from_slice::<Value>(body).ok();
        let details = json.as_ref().and_then(|json| match self.config.provider {
            Provider::Openai => openai::error_details(json),
            Provider::Anthropic => anthropic::error_details(json),
        });
        let (message, code) = details.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            let text = if text.is_empty() {
                "no details in the response".to_owned()
            } else {
                text
            };
            (text, None)
        });
        let message = shorten(&redact(&message, key.map(Secret::expose)));
        let quota = match self.config.provider {
            Provider::Openai => openai::is_quota(code.as_deref(), &message),
            Provider::Anthropic => anthropic::is_quota(&message),
        };
        if quota {
            Failure::Quota { status, message }
        } else {
            Failure::Status {
                status,
                message,
                code,
                retry_after: parse_retry_after(headers),
            }
        }
    }

    /// Usage as reported, or estimated from the text when the provider said nothing, with its
    /// cost and what the cache saved.
    fn usage(&self, request: &ChatRequest, parsed: &Parsed) -> Usage {
        let (reported, estimated) = match parsed.usage {
            Some(reported) => (reported, false),
            None => {
                let input_len = request.system.len()
                    + serde_json::to_string(&request.messages).map_or(0, |s| s.len())
                    + serde_json::to_string(&request.tools).map_or(0, |s| s.len());
                let output_len = parsed.text.len()
                    + parsed
                        .tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.to_string().len())
                        .sum::<usize>();
                let reported = super::types::Reported {
                    input: estimate_tokens(input_len),
                    output: estimate_tokens(output_len),
                    ..Default::default()
                };
                (reported, true)
            }
        };
        let (cost_usd, saved_usd) = match self.config.price {
            Some(price) => {
                let (read, write) = cache_prices(self.config.provider, &price);
                let per = |tokens: u64, per_mtok: f64| tokens as f64 * per_mtok / 1e6;
                let uncached = reported
                    .input
                    .saturating_sub(reported.cache_read + reported.cache_write);
                let cost = per(uncached, price.input_per_mtok)
                    + per(reported.cache_read, read)
                    + per(reported.cache_write, write)
                    + per(reported.output, price.output_per_mtok);
                let without_cache = per(reported.input, price.input_per_mtok)
                    + per(reported.output, price.output_per_mtok);
                (Some(cost), Some(without_cache - cost))
            }
            None => (None, None),
        };
        Usage {
            input_tokens: reported.input,
            output_tokens: reported.output,
            cache_read_tokens: reported.cache_read,
            cache_write_tokens: reported.cache_write,
            estimated,
            cost_usd,
            saved_usd,
            cache_reported: reported.cache_reported,
        }
    }
}

/// The prices of cache reads and writes per million tokens: as configured, or the provider's
/// usual ratios to the input price.
pub fn cache_prices(provider: crate::config::Provider, price: &crate::config::Price) -> (f64, f64) {
    let (read_ratio, write_ratio) = match provider {
        crate::config::Provider::Anthropic => (0.1, 1.25),
        crate::config::Provider::Openai => (0.5, 1.0),
    };
    (
        price
            .cache_read_per_mtok
            .unwrap_or(price.input_per_mtok * read_ratio),
        price
            .cache_write_per_mtok
            .unwrap_or(price.input_per_mtok * write_ratio),
    )
}

enum StreamState {
    Openai(openai::StreamState),
    Anthropic(anthropic::StreamState),
}

impl StreamState {
    fn is_done(&self) -> bool {
        match self {
            StreamState::Openai(state) => state.is_done(),
            StreamState::Anthropic(state) => state.is_done(),
        }
    }
}

fn transport_failure(err: &reqwest::Error) -> Failure {
    if err.is_body() || err.is_decode() {
        return Failure::CutStream {
            message: error_chain(err),
        };
    }
    Failure::Connect {
        message: connect_message(err).unwrap_or_else(|| error_chain(err)),
    }
}

/// What a user can act on when the server cannot be reached: "connection refused at
/// http://127.0.0.1:8080/v1/chat/completions (is the model server running?)". `None` for
/// failures without a plainer name than their chain of causes.
fn connect_message(err: &reqwest::Error) -> Option<String> {
    // Without user and password, should base_url carry them.
    let url = err
        .url()
        .map(|u| {
            let mut u = u.clone();
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        })
        .unwrap_or_else(|| "the model server".into());
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return Some(format!(
                        "connection refused at {url} (is the model server running, and is \
                         base_url right?)"
                    ));
                }
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                    return Some(format!("the connection to {url} was closed by the server"));
                }
                std::io::ErrorKind::TimedOut => {
                    return Some(format!("connecting to {url} timed out"));
                }
                _ => {}
            }
        }
        source = cause.source();
    }
    let chain = error_chain(err);
    if chain.contains("dns error") || chain.contains("failed to lookup address") {
        let host = err.url().and_then(|u| u.host_str()).unwrap_or("the host");
        return Some(format!(
            "cannot resolve {host} for {url} (check base_url and the network)"
        ));
    }
    None
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Reads a response body of at most `limit` bytes, allowing at most `idle` between chunks and
/// never going past `deadline`.
async fn read_body(
    response: reqwest::Response,
    idle: Duration,
    deadline: Instant,
    limit: usize,
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    loop {
        let until = (Instant::now() + idle).min(deadline);
        match tokio::time::timeout_at(until, stream.next()).await {
            Err(_) if until >= deadline => {
                return Err(Failure::Timeout {
                    phase: TimeoutPhase::Total,
                    after_ms: 0,
                });
            }
            Err(_) => {
                return Err(Failure::Timeout {
                    phase: TimeoutPhase::Idle,
                    after_ms: idle.as_millis() as u64,
                });
            }
            Ok(None) => return Ok(body),
            Ok(Some(Err(err))) => return Err(transport_failure(&err)),
            Ok(Some(Ok(chunk))) => {
                body.extend_from_slice(&chunk);
                if body.len() > limit {
                    body.truncate(limit);
                    return Ok(body);
                }
            }
        }
    }
}

/// Why a failure that is not retryable was not retried.
fn not_retried(failure: &Failure) -> String {
    let why = match failure {
        Failure::Quota { .. } => "out of quota or over a spending limit; waiting will not help",
        Failure::Status { status, .. } if (300..400).contains(status) => {
            "a redirect is not followed"
        }
        Failure::Status { .. } => "the provider refused the request itself",
        Failure::InBand { .. } => "the provider refused the request itself",
        Failure::MissingKey { .. } => "no key to send",
        Failure::Malformed { .. } => "the request cannot be sent",
        Failure::Cancelled => "cancelled",
        Failure::Timeout { .. } => "the call's deadline has passed",
        Failure::Connect { .. } | Failure::CutStream { .. } => "retries are used up",
    };
    format!("not retried: {why}")
}

/// A random wait between zero and `up_to`.
fn jitter(up_to: Duration) -> Duration {
    up_to.mul_f64(fastrand::f64())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
