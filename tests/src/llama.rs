//! `LlamaServer`: llama.cpp's real `llama-server` with a small instruct model, as a user runs a
//! local model, built and fetched by `tests/llama/setup` into a cache outside the checkout.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the server reports as its model: llama.cpp names a model by its file when it has no
/// alias. The test copies the gguf under the name the wheel ships it as.
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The cache `tests/llama/setup` prints: `$PITCREW_LLAMA_DIR` (tests/run sets it), else the
/// default location. Fails, never skips, when the server is not built.
pub fn llama_dir() -> PathBuf {
    let dir = std::env::var_os("PITCREW_LLAMA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("PITCREW_TEST_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(|c| PathBuf::from(c).join("pitcrew-tests"))
                })
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                        .join(".cache/pitcrew-tests")
                });
            cache.join("llama-cpp-python-0.3.36")
        });
    for needed in [
        "bin/llama-server",
        "model.gguf",
        "chatml-tools.jinja",
        ".complete",
    ] {
        assert!(
            dir.join(needed).exists(),
            "{} is missing: run tests/llama/setup (tests/run does)",
            dir.join(needed).display()
        );
    }
    dir
}

impl LlamaServer {
    /// Starts `llama-server` on a free loopback port with `--jinja` and the ChatML template
    /// that renders tools, greedy sampling (so a run is repeatable), and waits until it has
    /// loaded the model.
    pub fn start(context: u32) -> Self {
        let cache = llama_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let model = dir.path().join(MODEL_FILE);
        std::fs::copy(cache.join("model.gguf"), &model).expect("copy the model");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.path().join("llama-server.log");
        let child = Command::new(cache.join("bin/llama-server"))
            .arg("--model")
            .arg(&model)
            .arg("--jinja")
            .arg("--chat-template-file")
            .arg(cache.join("chatml-tools.jinja"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--ctx-size", &context.to_string(), "--parallel", "1"])
            .args(["--threads", "2", "--temp", "0", "--seed", "1"])
            .arg("--no-webui")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            )
            .spawn()
            .expect("start llama-server");
        let mut server = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().expect("poll llama-server") {
                panic!("llama-server exited with {status}:\n{}", server.log());
            }
            if server.get("/health").starts_with("HTTP/1.1 200") {
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "llama-server did not become healthy in 120 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The OpenAI-compatible base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The server's own log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// A GET on the server; the whole response, or "" when it does not answer.
    pub fn get(&self, path: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
