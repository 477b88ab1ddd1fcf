//! `LlamaServer`: llama.cpp's real `llama-server` with a small instruct model, as a user runs a
//! local model, built and fetched by `tests/llama/setup` into a cache outside the checkout.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the server reports as its model: llama.cpp names a model by its file when it has no
/// alias. The test copies the gguf under the name the wheel ships it as.
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

/// The cache `tests/llama/setup` prints: `$PITCREW_LLAMA_DIR` (tests/run sets it), else what
/// the script prints when run here (it builds once, then answers at once). Fails, never skips,
/// when the server cannot be built.
pub fn llama_dir() -> PathBuf {
    let dir = match std::env::var_os("PITCREW_LLAMA_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("llama/setup");
            let output = Command::new(&setup)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|err| panic!("{}: {err}", setup.display()));
            assert!(
                output.status.success(),
                "{} failed with {}",
                setup.display(),
                output.status
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
    };
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

/// One server at a time in a test binary: each takes both cores of the CI machine, and two
/// at once slow each other's answers past the doctor's probe timeout.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

impl LlamaServer {
    /// Starts `llama-server` on a free loopback port with `--jinja` and the ChatML template
    /// that renders tools, greedy sampling (so a run is repeatable), and waits until it has
    /// loaded the model. Waits for any other server of this test binary to stop first.
    pub fn start(context: u32) -> Self {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cache = llama_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let model = dir.path().join(MODEL_FILE);
        std::fs::copy(cache.join("model.gguf"), &model).expect("copy the model");
        let log = dir.path().join("llama-server.log");
        // The port is free when asked for and taken when the server binds it; another process
        // may take it in between, so a server that cannot bind is started again on another.
        let mut attempt = 0;
        let (child, port) = loop {
            attempt += 1;
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = spawn(&cache, &model, port, context, &log);
            match wait_healthy(&mut child, port, &log) {
                Ok(()) => break (child, port),
                Err(log_text) if attempt < 3 && log_text.contains("bind") => continue,
                Err(log_text) => panic!("llama-server did not start:\n{log_text}"),
            }
        };
        Self {
            child,
            port,
            log,
            _dir: dir,
            _turn: turn,
        }
    }

    /// The OpenAI-compatible base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The server's own log, for failure messages.
    pub fn log(&self) -> String {
        tail(&self.log)
    }

    /// A GET on the server; the whole response, or "" when it does not answer.
    pub fn get(&self, path: &str) -> String {
        get(self.port, path)
    }
}

fn spawn(cache: &Path, model: &Path, port: u16, context: u32, log: &Path) -> Child {
    Command::new(cache.join("bin/llama-server"))
        .arg("--model")
        .arg(model)
        .arg("--jinja")
        .arg("--chat-template-file")
        .arg(cache.join("chatml-tools.jinja"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--ctx-size", &context.to_string(), "--parallel", "1"])
        .args(["--threads", "2", "--temp", "0", "--seed", "1"])
        .arg("--no-webui")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).expect("log"))
        .stderr(
            std::fs::File::options()
                .append(true)
                .open(log)
                .expect("log"),
        )
        .spawn()
        .expect("start llama-server")
}

/// Waits until the server answers /health with 200; on exit or after 120 s, its log (and the
/// server killed).
fn wait_healthy(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll llama-server") {
            return Err(format!("exited with {status}:\n{}", tail(log)));
        }
        if get(port, "/health").starts_with("HTTP/1.1 200") {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("not healthy in 120 s:\n{}", tail(log)));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
