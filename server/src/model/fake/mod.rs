//! The fake model server: a real HTTP/1.1 server on loopback that speaks the OpenAI and
//! Anthropic protocols (streaming or not), answers from a script, injects faults, and records
//! every request. Tests, the editor tests and `pitcrew demo` all use it, in-process or through
//! `pitcrew fake-model`.
//!
//! It is hand-written on tokio rather than built on an HTTP framework because its faults live
//! below HTTP: a connection reset, a chunked stream cut mid-body, a stall while the client waits.
//!
//! Routes: `POST .../chat/completions` (OpenAI), `POST .../messages` (Anthropic),
//! `GET /_fake/requests` (what was received), `POST /_fake/script` (replace the script),
//! `GET /_fake/health`.

pub mod economy;
mod render;
pub mod script;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use script::{
    Defaults, Entry, Fault, Matcher, Quirk, Script, ScriptedCall, TextCalls, UsageSpec,
};

use render::Answer;

/// Request bodies larger than this are refused.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// A request as the fake model received it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub index: usize,
    /// Milliseconds since the server started.
    pub at_ms: u64,
    pub path: String,
    pub protocol: Option<&'static str>,
    pub role: Option<String>,
    pub task: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    /// The script entry that answered, if any.
    pub matched: Option<usize>,
    pub fault: Option<&'static str>,
    /// The client went away before the response was complete.
    pub disconnected: bool,
}

struct ScriptState {
    script: Script,
    /// Uses left per entry; `None` for `repeat`.
    remaining: Vec<Option<u32>>,
}

impl ScriptState {
    fn new(script: Script) -> Self {
        let remaining = script
            .responses
            .iter()
            .map(|entry| (!entry.repeat).then(|| entry.times.unwrap_or(1)))
            .collect();
        Self { script, remaining }
    }
}

struct State {
    script: Mutex<ScriptState>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// The prompt cache, shared by every request as a provider's is by an account's.
    cache: Mutex<economy::PromptCache>,
    started: Instant,
    next_id: AtomicU64,
}

impl State {
    fn lock_script(&self) -> std::sync::MutexGuard<'_, ScriptState> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_requests(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_disconnected(&self, index: usize) {
        if let Some(request) = self.lock_requests().get_mut(index) {
            request.disconnected = true;
        }
    }
}

/// A running fake model. Dropping it stops the server.
pub struct FakeModel {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
}

impl FakeModel {
    /// Starts on a free loopback port.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        Self::start_on(script, 0).await
    }

    /// Starts on `port` of 127.0.0.1 (0 picks a free one).
    pub async fn start_on(script: Script, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            script: Mutex::new(ScriptState::new(script)),
            requests: Mutex::new(Vec::new()),
            cache: Mutex::new(economy::PromptCache::default()),
            started: Instant::now(),
            next_id: AtomicU64::new(1),
        });
        let shutdown = CancellationToken::new();
        let accept_state = state.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            tracing::warn!("fake-model: accept failed: {err}");
                            continue;
                        }
                    },
                };
                let state = accept_state.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = serve_connection(stream, state) => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown,
        })
    }

    /// `http://127.0.0.1:<port>`: the Anthropic base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/v1`: the OpenAI base URL.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock_requests().clone()
    }

    /// Replaces the script; uses start afresh.
    pub fn set_script(&self, script: Script) {
        *self.state.lock_script() = ScriptState::new(script);
    }

    /// Script entries that still have uses left (not counting `repeat` ones).
    pub fn unused_entries(&self) -> Vec<usize> {
        self.state
            .lock_script()
            .remaining
            .iter()
            .enumerate()
            .filter(|(_, left)| left.is_some_and(|n| n > 0))
            .map(|(i, _)| i)
            .collect()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

struct HttpRequest {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

struct Conn {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buffer: Vec<u8>,
}

impl Conn {
    /// Reads one request; `None` when the client closed the connection.
    async fn read_request(&mut self) -> std::io::Result<Option<HttpRequest>> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&self.buffer) {
                Ok(httparse::Status::Complete(header_len)) => {
                    let method = parsed.method.unwrap_or("GET").to_owned();
                    let path = parsed.path.unwrap_or("/").to_owned();
                    let headers: BTreeMap<String, String> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if length > MAX_REQUEST_BYTES {
                        return Err(std::io::Error::other("request too large"));
                    }
                    while self.buffer.len() < header_len + length {
                        if !self.fill().await? {
                            return Ok(None);
                        }
                    }
                    let body = self.buffer[header_len..header_len + length].to_vec();
                    self.buffer.drain(..header_len + length);
                    return Ok(Some(HttpRequest {
                        method,
                        path,
                        headers,
                        body,
                    }));
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill().await? {
                        return Ok(None);
                    }
                }
                Err(err) => return Err(std::io::Error::other(err.to_string())),
            }
        }
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.reader.read(&mut chunk).await?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Sleeps, or returns false early if the client hangs up meanwhile.
    async fn sleep_watching(&mut self, duration: Duration) -> bool {
        if duration.is_zero() {
            return true;
        }
        let mut chunk = [0u8; 1024];
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            read = self.reader.read(&mut chunk) => match read {
                Ok(0) | Err(_) => false,
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    tokio::time::sleep(duration).await;
                    true
                }
            },
        }
    }

    async fn respond(&mut self, status: u16, headers: &[(&str, String)], body: &[u8]) -> bool {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
            reason(status),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes()).await.is_ok()
            && self.writer.write_all(body).await.is_ok()
            && self.writer.flush().await.is_ok()
    }

    async fn respond_json(
        &mut self,
        status: u16,
        headers: &[(&str, String)],
        body: &Value,
    ) -> bool {
        let mut all = vec![("content-type", "application/json".to_owned())];
        all.extend(headers.iter().cloned());
        self.respond(status, &all, body.to_string().as_bytes())
            .await
    }

    async fn start_stream(&mut self) -> bool {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
        self.writer.write_all(head.as_bytes()).await.is_ok() && self.writer.flush().await.is_ok()
    }

    async fn write_chunk(&mut self, data: &str) -> bool {
        self.write_chunk_bytes(data.as_bytes()).await
    }

    async fn write_chunk_bytes(&mut self, data: &[u8]) -> bool {
        // An empty chunk would end the body.
        if data.is_empty() {
            return true;
        }
        let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(b"\r\n");
        self.writer.write_all(&chunk).await.is_ok() && self.writer.flush().await.is_ok()
    }

    /// Writes `data` as several HTTP chunks cut every few bytes, UTF-8 characters included.
    async fn write_split(&mut self, data: &str) -> bool {
        for piece in data.as_bytes().chunks(5) {
            if !self.write_chunk_bytes(piece).await {
                return false;
            }
        }
        true
    }

    async fn end_stream(&mut self) -> bool {
        self.writer.write_all(b"0\r\n\r\n").await.is_ok() && self.writer.flush().await.is_ok()
    }

    /// Resets the connection: RST, no FIN, no response.
    fn reset(self) {
        if let Ok(stream) = self.reader.reunite(self.writer) {
            // A zero linger does not block on drop (the reason the method is deprecated); it
            // makes the close send RST, which is exactly the fault.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut conn = Conn {
        reader,
        writer,
        buffer: Vec::new(),
    };
    loop {
        let request = match conn.read_request().await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!("fake-model: bad request: {err}");
                let _ = conn
                    .respond(400, &[], format!("bad request: {err}").as_bytes())
                    .await;
                return;
            }
        };
        let close = request
            .headers
            .get("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"));
        match handle(request, conn, &state).await {
            Some(kept) if !close => conn = kept,
            _ => return,
        }
    }
}

/// Answers one request; returns the connection if it stays open.
async fn handle(request: HttpRequest, mut conn: Conn, state: &Arc<State>) -> Option<Conn> {
    let path = request.path.split('?').next().unwrap_or("").to_owned();
    let ok = match (request.method.as_str(), path.as_str()) {
        ("GET", "/_fake/health") => conn.respond(200, &[], b"ok").await,
        ("GET", "/_fake/requests") => {
            let requests = serde_json::to_value(&*state.lock_requests()).unwrap_or_default();
            conn.respond_json(200, &[], &requests).await
        }
        ("POST", "/_fake/script") => match serde_json::from_slice::<Script>(&request.body) {
            Ok(script) => {
                *state.lock_script() = ScriptState::new(script);
                conn.respond_json(200, &[], &json!({"ok": true})).await
            }
            Err(err) => {
                conn.respond_json(400, &[], &json!({"error": err.to_string()}))
                    .await
            }
        },
        // llama.cpp's server properties: the context each request gets.
        ("GET", "/props") => {
            let window = state.lock_script().script.defaults.context_window;
            match window {
                Some(n_ctx) => {
                    let props = json!({"default_generation_settings": {"n_ctx": n_ctx}});
                    conn.respond_json(200, &[], &props).await
                }
                None => {
                    conn.respond_json(404, &[], &json!({"error": {"message": "Not Found"}}))
                        .await
                }
            }
        }
        ("GET", p) if p.ends_with("/models") => {
            let serves = state.lock_script().script.defaults.serves.clone();
            let data: Vec<Value> = serves
                .iter()
                .map(|id| json!({"id": id, "object": "model", "owned_by": "fake-model"}))
                .collect();
            conn.respond_json(200, &[], &json!({"object": "list", "data": data}))
                .await
        }
        ("POST", p) if p.ends_with("/chat/completions") => {
            return model_request("openai", request, conn, state).await;
        }
        ("POST", p) if p.ends_with("/messages") => {
            return model_request("anthropic", request, conn, state).await;
        }
        _ => {
            conn.respond_json(
                404,
                &[],
                &json!({"error": {"message": format!("fake-model: no route for {} {path}", request.method)}}),
            )
            .await
        }
    };
    ok.then_some(conn)
}

async fn model_request(
    protocol: &'static str,
    request: HttpRequest,
    mut conn: Conn,
    state: &Arc<State>,
) -> Option<Conn> {
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(err) => {
            let error = render::error_body(
                protocol,
                &format!("fake-model: the request body is not JSON: {err}"),
                "invalid_request_error",
            );
            return conn.respond_json(400, &[], &error).await.then_some(conn);
        }
    };
    let facts = script::facts(protocol, &body);
    let body_text = String::from_utf8_lossy(&request.body).into_owned();

    // The request's size, as the provider would count it; one that does not fit the window
    // is refused the way each provider refuses it, before any entry is used up.
    let measured = economy::measure(protocol, &body);
    let window = state.lock_script().script.defaults.context_window;
    let too_long = window.filter(|window| measured.input > *window);
    // Choose the first matching entry with uses left.
    let (chosen, defaults) = {
        let mut scripted = state.lock_script();
        let found = (0..scripted.script.responses.len()).find(|&i| {
            too_long.is_none()
                && scripted.remaining[i] != Some(0)
                && scripted.script.responses[i]
                    .when
                    .matches(&facts, &body_text)
        });
        if let Some(i) = found
            && let Some(left) = scripted.remaining[i].as_mut()
        {
            *left -= 1;
        }
        (
            found.map(|i| (i, scripted.script.responses[i].clone())),
            scripted.script.defaults.clone(),
        )
    };
    let index = {
        let mut requests = state.lock_requests();
        let index = requests.len();
        requests.push(RecordedRequest {
            index,
            at_ms: state.started.elapsed().as_millis() as u64,
            path: request.path.clone(),
            protocol: Some(protocol),
            role: Some(facts.role.clone()),
            task: facts.task.clone(),
            model: Some(facts.model.clone()),
            stream: facts.stream,
            headers: request.headers.clone(),
            body: body.clone(),
            matched: chosen.as_ref().map(|(i, _)| *i),
            fault: chosen
                .as_ref()
                .and_then(|(_, entry)| entry.fault.as_ref().map(Fault::label)),
            disconnected: false,
        });
        index
    };
    if let Some(window) = too_long {
        let message = if protocol == "anthropic" {
            format!(
                "prompt is too long: {} tokens > {window} maximum",
                measured.input
            )
        } else {
            format!(
                "This model's maximum context length is {window} tokens. However, your messages resulted in {} tokens. Please reduce the length of the messages.",
                measured.input
            )
        };
        let code = if protocol == "anthropic" {
            "invalid_request_error"
        } else {
            "context_length_exceeded"
        };
        let error = render::error_body(protocol, &message, code);
        return conn.respond_json(400, &[], &error).await.then_some(conn);
    }
    let Some((_, entry)) = chosen else {
        let message = format!(
            "fake-model: no scripted response matches this request (protocol {protocol}, role {}, task {})",
            facts.role,
            facts.task.as_deref().unwrap_or("-")
        );
        tracing::warn!("{message}");
        let error = render::error_body(protocol, &message, "invalid_request_error");
        return conn.respond_json(400, &[], &error).await.then_some(conn);
    };

    let latency = Duration::from_millis(entry.latency_ms.unwrap_or(defaults.latency_ms));
    if !conn.sleep_watching(latency).await {
        state.mark_disconnected(index);
        return None;
    }

    // Faults that replace the answer.
    let status_fault = match &entry.fault {
        Some(Fault::Status {
            status,
            retry_after,
            retry_after_ms,
            message,
            code,
            ..
        }) => Some((
            *status,
            retry_after.clone(),
            *retry_after_ms,
            message
                .clone()
                .unwrap_or_else(|| format!("fake-model: scripted {status}")),
            code.clone().unwrap_or_else(|| "api_error".into()),
        )),
        Some(Fault::RateLimit {
            retry_after,
            retry_after_ms,
        }) => Some((
            429,
            retry_after.clone(),
            *retry_after_ms,
            "Rate limit reached; please try again later.".into(),
            "rate_limit_error".into(),
        )),
        Some(Fault::Quota) if protocol == "anthropic" => Some((
            400,
            None,
            None,
            "Your credit balance is too low to access the Anthropic API.".into(),
            "invalid_request_error".into(),
        )),
        Some(Fault::Quota) => Some((
            429,
            None,
            None,
            "You exceeded your current quota, please check your plan and billing details.".into(),
            "insufficient_quota".into(),
        )),
        Some(Fault::Overloaded) => Some((
            529,
            None,
            None,
            "Overloaded".into(),
            "overloaded_error".into(),
        )),
        _ => None,
    };
    if let Some((status, retry_after, retry_after_ms, message, code)) = status_fault {
        let mut headers = Vec::new();
        if let Some(value) = retry_after {
            headers.push(("retry-after", value));
        }
        if let Some(ms) = retry_after_ms {
            headers.push(("retry-after-ms", ms.to_string()));
        }
        let extra: Vec<(String, String)> = match &entry.fault {
            Some(Fault::Status { headers, .. }) => headers.clone().into_iter().collect(),
            _ => Vec::new(),
        };
        let headers: Vec<(&str, String)> = headers
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (k.as_str(), v.clone())))
            .collect();
        let error = render::error_body(protocol, &message, &code);
        return conn
            .respond_json(status, &headers, &error)
            .await
            .then_some(conn);
    }
    if entry.fault == Some(Fault::Reset) {
        conn.reset();
        return None;
    }

    let serial = state.next_id.fetch_add(1, Ordering::SeqCst);
    let prefix = if protocol == "anthropic" {
        "toolu"
    } else {
        "call"
    };
    let mut answer = Answer {
        id: format!("fake-{serial}"),
        model: entry
            .served_as
            .clone()
            .unwrap_or_else(|| facts.model.clone()),
        text: entry.text.clone().unwrap_or_default(),
        calls: entry
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                let arguments = if call.arguments.is_null() {
                    "{}".to_owned()
                } else {
                    call.arguments.to_string()
                };
                (
                    format!("{prefix}_{serial}_{i}"),
                    call.name.clone(),
                    arguments,
                )
            })
            .collect(),
        stop: entry.stop.clone(),
        usage: UsageSpec {
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        },
        quirks: entry.quirks.clone(),
    };
    if let Some(format) = entry.text_calls {
        render::calls_into_text(&mut answer, format);
    }
    answer.usage = match entry.usage.or(defaults.usage) {
        Some(usage) => usage,
        None => {
            let cached = state
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .serve(protocol, &measured);
            let written: usize = answer.text.len()
                + answer
                    .calls
                    .iter()
                    .map(|(_, name, args)| name.len() + args.len())
                    .sum::<usize>();
            UsageSpec {
                input_tokens: measured.input,
                output_tokens: (written as u64).div_ceil(4).max(1),
                cache_read_tokens: cached.read,
                cache_write_tokens: cached.write,
            }
        }
    };

    let frames = if protocol == "anthropic" {
        render::anthropic_stream(&answer, defaults.chunk_size)
    } else {
        render::openai_stream(&answer, defaults.chunk_size)
    };
    // A stream fault that cannot fire would let a test pass for the wrong reason.
    if let Some(after) = entry.fault.as_ref().and_then(Fault::after_chunks) {
        let problem = if !facts.stream || entry.quirks.contains(&Quirk::IgnoreStream) {
            Some("needs a streaming request".to_owned())
        } else if after >= frames.len() {
            Some(format!(
                "fires after {after} frames, but this answer has only {}",
                frames.len()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            let message = format!(
                "fake-model: the scripted {} fault of entry {} {problem}",
                entry.fault.as_ref().map(Fault::label).unwrap_or("?"),
                state.lock_requests()[index].matched.unwrap_or_default()
            );
            tracing::warn!("{message}");
            let error = render::error_body(protocol, &message, "invalid_request_error");
            return conn.respond_json(400, &[], &error).await.then_some(conn);
        }
    }

    if !facts.stream || entry.quirks.contains(&Quirk::IgnoreStream) {
        let body = if protocol == "anthropic" {
            render::anthropic_complete(&answer)
        } else {
            render::openai_complete(&answer)
        };
        return conn.respond_json(200, &[], &body).await.then_some(conn);
    }

    let frames: Vec<String> = if entry.quirks.contains(&Quirk::CrlfAndComments) {
        frames
            .iter()
            .map(|frame| format!(": keep-alive\r\n{}", frame.replace('\n', "\r\n")))
            .collect()
    } else {
        frames
    };
    let split = entry.quirks.contains(&Quirk::SplitChunks);
    if !conn.start_stream().await {
        state.mark_disconnected(index);
        return None;
    }
    let first_token = Duration::from_millis(entry.first_token_ms.unwrap_or(0));
    if !conn.sleep_watching(first_token).await {
        state.mark_disconnected(index);
        return None;
    }
    let chunk_delay =
        Duration::from_millis(entry.chunk_delay_ms.unwrap_or(defaults.chunk_delay_ms));
    for (i, frame) in frames.iter().enumerate() {
        if let Some(Fault::Stall { after_chunks, ms }) = &entry.fault
            && *after_chunks == i
            && !conn.sleep_watching(Duration::from_millis(*ms)).await
        {
            state.mark_disconnected(index);
            return None;
        }
        match &entry.fault {
            Some(Fault::Cut { after_chunks }) if *after_chunks == i => {
                // Close without the terminating chunk: the body is cut short.
                return None;
            }
            Some(Fault::EndEarly { after_chunks }) if *after_chunks == i => {
                return conn.end_stream().await.then_some(conn);
            }
            Some(Fault::InBand {
                after_chunks,
                message,
                code,
            }) if *after_chunks == i => {
                let default_code = if protocol == "anthropic" {
                    "overloaded_error"
                } else {
                    "server_error"
                };
                let frame = render::in_band_error(
                    protocol,
                    message.as_deref().unwrap_or("Overloaded"),
                    code.as_deref().unwrap_or(default_code),
                    &entry.quirks,
                );
                let _ = conn.write_chunk(&frame).await && conn.end_stream().await;
                return None;
            }
            Some(Fault::Malformed { after_chunks }) if *after_chunks == i => {
                let bad = if protocol == "anthropic" {
                    "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\n\n"
                } else {
                    "data: {\"choices\": [{\"delta\": {\"content\": \"unterminated\n\n"
                };
                if !conn.write_chunk(bad).await {
                    state.mark_disconnected(index);
                    return None;
                }
            }
            _ => {}
        }
        if i > 0 && !conn.sleep_watching(chunk_delay).await {
            state.mark_disconnected(index);
            return None;
        }
        let written = if split {
            conn.write_split(frame).await
        } else {
            conn.write_chunk(frame).await
        };
        if !written {
            state.mark_disconnected(index);
            return None;
        }
    }
    conn.end_stream().await.then_some(conn)
}
