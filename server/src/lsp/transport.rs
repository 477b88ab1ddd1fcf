//! A guarded stdio transport: frames are checked before tower-lsp-server sees them.
//!
//! tower-lsp-server 0.23 reads its input through a `FramedRead` that ends the stream after the
//! first decode error, so one frame whose body is not JSON closes the whole connection. Here a
//! reader task parses frames itself and answers what is malformed (`-32700` parse error,
//! `-32600` invalid request) without passing it on; tower-lsp-server only ever sees valid
//! messages. Its output goes through the same frame parser to a single writer task that owns
//! stdout, so our own error replies never interleave with its frames.

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::{Request, Response};

/// Headers longer than this are not LSP headers.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// No legitimate message is this large; a bigger one is skipped, not buffered.
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// What a frame reader yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete body.
    Body(Vec<u8>),
    /// Something that is not a frame; the reader has skipped past it.
    Malformed(String),
}

/// Reads `Content-Length` framed messages from a byte stream, recovering from garbage by
/// skipping to the next `Content-Length` header.
pub struct FrameReader<R> {
    input: R,
    buffer: Vec<u8>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            buffer: Vec::with_capacity(8 * 1024),
            eof: false,
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
        loop {
            // Skip blank lines between frames; some clients send a trailing newline.
            let leading = self
                .buffer
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            self.buffer.drain(..leading);

            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let header = self.buffer[..end].to_vec();
                let body_start = end + 4;
                return match parse_content_length(&header) {
                    Ok(len) if len > MAX_BODY_BYTES => {
                        self.buffer.drain(..body_start);
                        self.skip(len).await?;
                        Ok(Some(Frame::Malformed(format!(
                            "message of {len} bytes is larger than the limit of {MAX_BODY_BYTES}"
                        ))))
                    }
                    Ok(len) => {
                        while self.buffer.len() < body_start + len {
                            if !self.fill().await? {
                                let got = self.buffer.len() - body_start;
                                self.buffer.clear();
                                return Ok(Some(Frame::Malformed(format!(
                                    "input ended inside a message: expected {len} bytes, got {got}"
                                ))));
                            }
                        }
                        let body = self.buffer[body_start..body_start + len].to_vec();
                        self.buffer.drain(..body_start + len);
                        Ok(Some(Frame::Body(body)))
                    }
                    Err(reason) => {
                        self.resync(body_start);
                        Ok(Some(Frame::Malformed(reason)))
                    }
                };
            }
            if self.buffer.len() > MAX_HEADER_BYTES {
                self.resync(1);
                return Ok(Some(Frame::Malformed(
                    "header block too long, or not an LSP header".into(),
                )));
            }
            if !self.fill().await? {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                self.buffer.clear();
                return Ok(Some(Frame::Malformed(
                    "input ended inside a message header".into(),
                )));
            }
        }
    }

    /// Drops input up to the next `Content-Length` header found at or after `from`.
    fn resync(&mut self, from: usize) {
        let from = from.min(self.buffer.len());
        match find_ignore_case(&self.buffer[from..], b"content-length") {
            Some(at) => {
                self.buffer.drain(..from + at);
            }
            None => {
                // Keep a tail in case the header is split across reads.
                let keep = self.buffer.len().min(b"content-length".len() - 1);
                let cut = self.buffer.len() - keep;
                self.buffer.drain(..cut.max(from.min(self.buffer.len())));
            }
        }
    }

    /// Discards `n` bytes of input without buffering them.
    async fn skip(&mut self, mut n: usize) -> std::io::Result<()> {
        let from_buffer = n.min(self.buffer.len());
        self.buffer.drain(..from_buffer);
        n -= from_buffer;
        while n > 0 {
            if !self.fill().await? {
                return Ok(());
            }
            let take = n.min(self.buffer.len());
            self.buffer.drain(..take);
            n -= take;
        }
        Ok(())
    }
}

fn parse_content_length(header: &[u8]) -> Result<usize, String> {
    let header = std::str::from_utf8(header).map_err(|_| "header is not UTF-8".to_owned())?;
    let mut length = None;
    for line in header.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("invalid Content-Length {:?}", value.trim()))?,
            );
        }
    }
    length.ok_or_else(|| "missing Content-Length header".to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// Encodes one frame.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    frame.extend_from_slice(body);
    frame
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
            let frame = match frames.next_frame().await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    tracing::info!("the client closed its output; stopping");
                    break;
                }
                Err(err) => {
                    tracing::error!("cannot read from the client, stopping: {err}");
                    break;
                }
            };
            let body = match frame {
                Frame::Body(body) => body,
                Frame::Malformed(reason) => {
                    tracing::error!("malformed frame from the client: {reason}");
                    let reply =
                        error_response(Value::Null, -32700, &format!("Parse error: {reason}"));
                    let _ = frames_tx.send(reply.to_string().into_bytes()).await;
                    continue;
                }
            };
            match check_body(&body) {
                Verdict::Forward => {
                    if to_server.write_all(&encode_frame(&body)).await.is_err() {
                        break;
                    }
                }
                Verdict::Reject(reply) => {
                    tracing::error!(
                        "rejected a message from the client: {}",
                        reply["error"]["message"]
                    );
                    let _ = frames_tx.send(reply.to_string().into_bytes()).await;
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
