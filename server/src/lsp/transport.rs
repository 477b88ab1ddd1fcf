//! A guarded stdio transport: frames are checked before tower-lsp-server sees them.
//!
//! tower-lsp-server 0.23 reads its input through a `FramedRead` that ends the stream after the
//! first decode error, so one frame whose body is not JSON closes the whole connection. Here a
//! reader task parses frames itself and answers what is malformed (`-32700` parse error,
//! `-32600` invalid request) without passing it on, then reads on: garbage never costs a
//! well-formed frame that follows it. tower-lsp-server only ever sees valid messages. Its output goes through the same frame parser to a single writer task that owns
//! stdout, so our own error replies never interleave with its frames.

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::{Request, Response};

/// Headers longer than this are not LSP headers.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// No legitimate message is this large; a frame that claims more is refused at once.
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// The header every frame must carry, matched without regard to case.
const CONTENT_LENGTH: &[u8] = b"content-length";

/// What a frame reader yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete body.
    Body(Vec<u8>),
    /// Something that is not a frame; the reader has moved past it.
    Malformed(String),
}

/// Reads `Content-Length` framed messages from a byte stream, recovering from garbage.
///
/// Recovery never loses a well-formed frame that follows garbage: after a header block that
/// cannot be read, the reader looks for the next `Content-Length` from the second byte of that
/// block on (a valid header glued to the end of garbage is found there), and a header that
/// claims more than `MAX_BODY_BYTES` is refused at once rather than skipped. The one ambiguity
/// no reader can resolve is a header with a plausible length followed by too few bytes: it
/// takes the start of the next frame as its body. `reclaim` gives those bytes back when that
/// body turns out not to be JSON.
pub struct FrameReader<R> {
    input: R,
    buffer: Vec<u8>,
    eof: bool,
    /// While a body is awaited: how many of its bytes were already looked at for a frame
    /// beginning inside it.
    scanned: usize,
    /// A frame read ahead while malformed ones were being gathered into one answer.
    pending: Option<Frame>,
}

/// What the buffer holds, without reading more.
enum Step {
    Frame(Frame),
    /// More input is needed; at its end, this is what the buffer held.
    More {
        at_end: Option<String>,
    },
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            buffer: Vec::with_capacity(8 * 1024),
            eof: false,
            scanned: 0,
            pending: None,
        }
    }

    /// Reads more input into the buffer; false at end of input.
    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = self.input.read(&mut chunk).await?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    /// The next frame, or `None` at a clean end of input.
    pub async fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        if let Some(frame) = self.pending.take() {
            return Ok(Some(frame));
        }
        loop {
            match self.step() {
                Step::Frame(frame) => return Ok(Some(frame)),
                Step::More { at_end } => {
                    if !self.fill().await? {
                        self.buffer.clear();
                        self.scanned = 0;
                        return Ok(at_end.map(Frame::Malformed));
                    }
                }
            }
        }
    }

    /// The next frame the buffer holds, reading nothing.
    fn step(&mut self) -> Step {
        // Skip blank lines between frames; some clients send a trailing newline.
        let leading = self
            .buffer
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        self.buffer.drain(..leading);
        let Some(end) = memchr::memmem::find(&self.buffer, b"\r\n\r\n") else {
            if self.buffer.len() > MAX_HEADER_BYTES {
                self.resync(1);
                return Step::Frame(Frame::Malformed(
                    "header block too long, or not an LSP header".into(),
                ));
            }
            return Step::More {
                at_end: (!self.buffer.is_empty())
                    .then(|| "input ended inside a message header".to_owned()),
            };
        };
        let body_start = end + 4;
        let len = match parse_content_length(&self.buffer[..end]) {
            Ok(len) if len > MAX_BODY_BYTES => {
                self.resync(1);
                return Step::Frame(Frame::Malformed(format!(
                    "message of {len} bytes is larger than the limit of {MAX_BODY_BYTES}"
                )));
            }
            Ok(len) => len,
            Err(reason) => {
                self.resync(1);
                return Step::Frame(Frame::Malformed(reason));
            }
        };
        if self.buffer.len() >= body_start + len {
            let body = self.buffer[body_start..body_start + len].to_vec();
            self.buffer.drain(..body_start + len);
            self.scanned = 0;
            return Step::Frame(Frame::Body(body));
        }
        // A frame that begins before this one's length is reached means the length was wrong
        // (a body of JSON never holds a raw `Content-Length: N\r\n`): this one ends there, and
        // that one is read next, instead of waiting for bytes that may never come.
        let body = &self.buffer[body_start..];
        let from = self.scanned.saturating_sub(HEADER_LINE_MAX);
        if let Some(at) = embedded_header(&body[from..]) {
            let got = from + at;
            self.buffer.drain(..body_start + got);
            self.scanned = 0;
            return Step::Frame(Frame::Malformed(format!(
                "a message began after {got} bytes of one whose Content-Length is {len}"
            )));
        }
        self.scanned = body.len();
        Step::More {
            at_end: Some(format!(
                "input ended inside a message: expected {len} bytes, got {}",
                body.len()
            )),
        }
    }

    /// The next message from the client: a valid JSON-RPC message to pass on, or the error to
    /// answer instead (a malformed frame, a body that is not JSON or not JSON-RPC). `None` at
    /// a clean end of input. A run of malformed frames already received gets one answer, not
    /// one each, so garbage cannot flood the client.
    pub async fn next_message(&mut self) -> std::io::Result<Option<Incoming>> {
        let Some(frame) = self.next_frame().await? else {
            return Ok(None);
        };
        let body = match frame {
            Frame::Body(body) => body,
            Frame::Malformed(reason) => {
                let mut more = 0;
                loop {
                    match self.step() {
                        Step::Frame(Frame::Malformed(_)) => more += 1,
                        Step::Frame(body) => {
                            self.pending = Some(body);
                            break;
                        }
                        Step::More { .. } => break,
                    }
                }
                let reason = if more == 0 {
                    reason
                } else {
                    format!("{reason} (and {more} more malformed frames after it)")
                };
                return Ok(Some(Incoming::Invalid(error_response(
                    Value::Null,
                    -32700,
                    &format!("Parse error: {reason}"),
                ))));
            }
        };
        Ok(Some(match check_body(&body) {
            Verdict::Forward => Incoming::Message(body),
            Verdict::Reject(reply) => {
                if reply["error"]["code"] == -32700 {
                    self.reclaim(&body);
                }
                Incoming::Invalid(reply)
            }
        }))
    }

    /// Gives back the end of a body that was not JSON when it holds the start of a frame (a
    /// `Content-Length` larger than what was sent swallowed it): from the first
    /// `Content-Length` in it, or the part of one it ends with. That frame is read next.
    fn reclaim(&mut self, body: &[u8]) {
        let from = find_ignore_case(body, CONTENT_LENGTH).or_else(|| {
            (1..CONTENT_LENGTH.len().min(body.len() + 1))
                .rev()
                .find(|&n| body[body.len() - n..].eq_ignore_ascii_case(&CONTENT_LENGTH[..n]))
                .map(|n| body.len() - n)
        });
        if let Some(from) = from {
            self.buffer.splice(0..0, body[from..].iter().copied());
        }
    }

    /// Drops input up to the next `Content-Length` header found at or after `from`.
    fn resync(&mut self, from: usize) {
        let from = from.min(self.buffer.len());
        match find_ignore_case(&self.buffer[from..], CONTENT_LENGTH) {
            Some(at) => {
                self.buffer.drain(..from + at);
            }
            None => {
                // Keep a tail in case the header is split across reads.
                let keep = self.buffer.len().min(CONTENT_LENGTH.len() - 1);
                let cut = self.buffer.len() - keep;
                self.buffer.drain(..cut.max(from));
            }
        }
    }
}

/// The body length a header block gives. LSP has two headers, `Content-Length` and
/// `Content-Type`; anything else (or a second `Content-Length`) is garbage in front of a frame,
/// and refusing it lets the reader find the real header behind it.
fn parse_content_length(header: &[u8]) -> Result<usize, String> {
    let header = std::str::from_utf8(header).map_err(|_| "header is not UTF-8".to_owned())?;
    let mut length = None;
    for line in header.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err("two Content-Length headers".into());
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid Content-Length {value:?}"));
            }
            length = Some(value.parse::<usize>().unwrap_or(usize::MAX));
        } else if !name.eq_ignore_ascii_case("content-type") {
            return Err(format!("unknown header {name:?}"));
        }
    }
    length.ok_or_else(|| "missing Content-Length header".to_owned())
}

/// The longest `Content-Length: N\r\n` line worth looking for.
const HEADER_LINE_MAX: usize = 64;

/// Where a `Content-Length: N\r\n` header line begins in `bytes`, if one does: raw CR LF never
/// occurs inside a JSON string, so such a line in a body is the start of another frame.
fn embedded_header(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find_iter(bytes, b"\r\n").find_map(|cr| {
        let line = &bytes[cr.saturating_sub(HEADER_LINE_MAX)..cr];
        let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let rest = line[..line.len() - digits].trim_ascii_end();
        let rest = rest.strip_suffix(b":")?.trim_ascii_end();
        let start = rest.len().checked_sub(CONTENT_LENGTH.len())?;
        rest[start..]
            .eq_ignore_ascii_case(CONTENT_LENGTH)
            .then(|| cr.saturating_sub(HEADER_LINE_MAX) + start)
    })
}

/// The first `needle` (ASCII, lower case) in `haystack`, in any case.
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle.first()?;
    memchr::memchr2_iter(*first, first.to_ascii_uppercase(), haystack).find(|&at| {
        haystack
            .get(at..at + needle.len())
            .is_some_and(|window| window.eq_ignore_ascii_case(needle))
    })
}

/// Encodes one frame.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    frame.extend_from_slice(body);
    frame
}

/// A message from the client, checked.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A valid JSON-RPC message (its body), to pass on.
    Message(Vec<u8>),
    /// Not one: the error to answer instead.
    Invalid(Value),
}

/// What to do with a frame from the client.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// A valid JSON-RPC message: pass it on.
    Forward,
    /// Answer this error instead.
    Reject(Value),
}

/// Checks a body as tower-lsp-server would decode it, without its fatal error path.
pub fn check_body(body: &[u8]) -> Verdict {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => {
            return Verdict::Reject(error_response(
                Value::Null,
                -32700,
                &format!("Parse error: {err}"),
            ));
        }
    };
    let is_message = serde_json::from_value::<Response>(value.clone()).is_ok()
        || serde_json::from_value::<Request>(value.clone()).is_ok();
    if is_message {
        return Verdict::Forward;
    }
    let id = match value.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    };
    Verdict::Reject(error_response(
        id,
        -32600,
        "Invalid request: not a JSON-RPC 2.0 request, notification or response",
    ))
}

fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Runs `serve` (tower-lsp-server's `Server::serve`, given an input and an output stream) behind
/// the guard, with `input` and `output` as the real client streams. Returns when the client's
/// input ends or the server stops.
pub async fn guarded<I, O, F, Fut>(input: I, output: O, serve: F)
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(tokio::io::DuplexStream, tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut to_server, server_input) = tokio::io::duplex(1 << 16);
    let (server_output, from_server) = tokio::io::duplex(1 << 16);
    let (frames_tx, mut frames_rx) = mpsc::channel::<Vec<u8>>(256);

    // The only writer of the real output.
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(body) = frames_rx.recv().await {
            if let Err(err) = output.write_all(&encode_frame(&body)).await {
                tracing::error!("cannot write to the client, stopping: {err}");
                return;
            }
            if let Err(err) = output.flush().await {
                tracing::error!("cannot flush output to the client, stopping: {err}");
                return;
            }
        }
    });

    // tower-lsp-server's frames, re-framed onto the writer.
    let pump_tx = frames_tx.clone();
    let pump = tokio::spawn(async move {
        let mut frames = FrameReader::new(from_server);
        while let Ok(Some(frame)) = frames.next_frame().await {
            match frame {
                Frame::Body(body) => {
                    if pump_tx.send(body).await.is_err() {
                        return;
                    }
                }
                Frame::Malformed(reason) => {
                    tracing::error!("the server produced a malformed frame: {reason}");
                }
            }
        }
    });

    // The client's frames, checked, then passed on or answered.
    let reader = tokio::spawn(async move {
        let mut frames = FrameReader::new(input);
        loop {
            match frames.next_message().await {
                Ok(Some(Incoming::Message(body))) => {
                    if to_server.write_all(&encode_frame(&body)).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Incoming::Invalid(reply))) => {
                    tracing::error!(
                        "rejected a message from the client: {}",
                        reply["error"]["message"]
                    );
                    let _ = frames_tx.send(reply.to_string().into_bytes()).await;
                }
                Ok(None) => {
                    tracing::info!("the client closed its output; stopping");
                    break;
                }
                Err(err) => {
                    tracing::error!("cannot read from the client, stopping: {err}");
                    break;
                }
            }
        }
        // Closing our end tells tower-lsp-server that the client is gone.
        let _ = to_server.shutdown().await;
    });

    serve(server_input, server_output).await;
    reader.abort();
    // tower-lsp-server has returned and dropped its output; the pump drains what it wrote.
    let _ = pump.await;
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames_of(input: &[u8]) -> Vec<Frame> {
        let mut reader = FrameReader::new(input);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().await.unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[tokio::test]
    async fn reads_frames_and_recovers_from_garbage() {
        let input = b"Content-Length: 2\r\n\r\n{}garbage\r\n\r\nContent-Length: 4\r\nContent-Type: x\r\n\r\nnull\r\nContent-Length: 99\r\n\r\nshort";
        let frames = frames_of(input).await;
        assert_eq!(
            frames,
            vec![
                Frame::Body(b"{}".to_vec()),
                Frame::Malformed("malformed header line \"garbage\"".into()),
                Frame::Body(b"null".to_vec()),
                Frame::Malformed("input ended inside a message: expected 99 bytes, got 5".into()),
            ]
        );
    }

    #[tokio::test]
    async fn bad_content_length_is_reported_and_skipped() {
        let frames = frames_of(b"Content-Length: ten\r\n\r\nContent-Length: 2\r\n\r\n[]").await;
        assert_eq!(
            frames,
            vec![
                Frame::Malformed("invalid Content-Length \"ten\"".into()),
                Frame::Body(b"[]".to_vec()),
            ]
        );
    }

    fn request(id: u64) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"shutdown"}}"#).into_bytes()
    }

    async fn messages_of(input: &[u8]) -> Vec<Incoming> {
        let mut reader = FrameReader::new(input);
        let mut messages = Vec::new();
        while let Some(message) = reader.next_message().await.unwrap() {
            messages.push(message);
        }
        messages
    }

    fn forwarded(messages: &[Incoming]) -> Vec<Vec<u8>> {
        messages
            .iter()
            .filter_map(|m| match m {
                Incoming::Message(body) => Some(body.clone()),
                Incoming::Invalid(_) => None,
            })
            .collect()
    }

    /// The frames of the issue that silenced the server: each is answered with an error, and
    /// the well-formed request after it is passed on.
    #[tokio::test]
    async fn a_malformed_frame_never_costs_the_next_request() {
        for garbage in [
            &b"Content-Length: abc\r\n\r\n{}"[..],
            b"Content-Type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":9}",
            b"Content-Length: 1000000000000000\r\n\r\n",
            b"Content-Length: 300\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"x\"}",
            b"Content-Length: 3\r\n\r\n{\"",
            b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"x\"}\r\n\r\n",
            b"Content-Length: 5\r\nContent-Length",
        ] {
            let mut input = garbage.to_vec();
            input.extend(encode_frame(&request(1)));
            input.extend(encode_frame(&request(2)));
            let messages = messages_of(&input).await;
            assert_eq!(
                forwarded(&messages),
                [request(1), request(2)],
                "after {:?}: {messages:?}",
                String::from_utf8_lossy(garbage)
            );
            assert!(
                matches!(messages[0], Incoming::Invalid(_)),
                "{:?} is answered with an error",
                String::from_utf8_lossy(garbage)
            );
        }
    }

    /// A flood of garbage gets a handful of answers, not one per piece.
    #[tokio::test]
    async fn a_flood_of_garbage_gets_few_answers() {
        let mut input = b"Content-Length:".repeat(5_000);
        input.extend(b"Content-Length: x\r\n\r\n".repeat(2_000));
        input.extend(encode_frame(&request(1)));
        let messages = messages_of(&input).await;
        assert_eq!(forwarded(&messages), [request(1)]);
        assert!(messages.len() < 20, "{} answers", messages.len());
    }

    /// A length over the limit is an error answered at once, while the client keeps the
    /// connection open, not a skip that waits for bytes that never come.
    #[tokio::test]
    async fn an_oversized_length_is_answered_at_once() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server);
        client
            .write_all(b"Content-Length: 1000000000000000\r\n\r\n")
            .await
            .unwrap();
        client.write_all(&encode_frame(&request(3))).await.unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), reader.next_message())
            .await
            .expect("answered without waiting for more input")
            .unwrap()
            .unwrap();
        let Incoming::Invalid(reply) = first else {
            panic!("{first:?}")
        };
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("larger than the limit"),
            "{reply}"
        );
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), reader.next_message())
            .await
            .expect("the next request is read")
            .unwrap()
            .unwrap();
        assert_eq!(next, Incoming::Message(request(3)));
    }

    /// Pieces of garbage a broken or hostile client might send between frames.
    fn garbage() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let token = prop_oneof![
            Just(b"Content-Length: abc\r\n\r\n".to_vec()),
            Just(b"Content-Type: x\r\n\r\n".to_vec()),
            Just(b"Content-Length: 1000000000000000\r\n\r\n".to_vec()),
            Just(b"Content-Length: 7\r\n\r\n".to_vec()),
            Just(b"Content-Length: 40\r\n\r\n".to_vec()),
            Just(b"Content-Length: 5\r\n".to_vec()),
            Just(b"content-length".to_vec()),
            Just(b"Content-Length:".to_vec()),
            Just(b"{}".to_vec()),
            Just(b"{\"jsonrpc\":\"2.0\",".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r\n\r\n".to_vec()),
            Just(b":".to_vec()),
            prop::collection::vec(any::<u8>(), 1..24),
        ];
        prop::collection::vec(token, 1..6).prop_map(|tokens| tokens.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Every well-formed request gets through, in order, whatever garbage is around it.
        #[test]
        fn every_valid_request_survives_garbage_between_frames(
            pieces in proptest::collection::vec(proptest::option::of(garbage()), 1..8)
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for (id, piece) in pieces.iter().enumerate() {
                if let Some(garbage) = piece {
                    input.extend_from_slice(garbage);
                }
                input.extend(encode_frame(&request(id as u64)));
                expected.push(request(id as u64));
            }
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let messages = runtime.block_on(messages_of(&input));
            proptest::prop_assert_eq!(
                forwarded(&messages),
                expected,
                "input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn bodies_are_checked_like_tower_lsp_would() {
        assert_eq!(
            check_body(br#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#),
            Verdict::Forward
        );
        assert_eq!(
            check_body(br#"{"jsonrpc":"2.0","id":1,"result":null}"#),
            Verdict::Forward
        );
        let Verdict::Reject(reply) = check_body(b"{not json") else {
            panic!()
        };
        assert_eq!(reply["error"]["code"], -32700);
        assert_eq!(reply["id"], Value::Null);
        let Verdict::Reject(reply) = check_body(br#"{"jsonrpc":"1.0","id":7,"method":"x"}"#) else {
            panic!()
        };
        assert_eq!(reply["error"]["code"], -32600);
        assert_eq!(reply["id"], 7);
        let Verdict::Reject(reply) = check_body(b"[1,2]") else {
            panic!()
        };
        assert_eq!(reply["error"]["code"], -32600);
    }
}
