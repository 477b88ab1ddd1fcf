//! Benchmark: how the editor feels while the team works. The release `pitcrew lsp` is driven
//! over stdio (as an editor drives it) in a throwaway repository, with 8 implementers streaming
//! from the fake model at once; code actions and `pitcrew/plan` are timed end to end, and so
//! are changes to a 100,000-line file; memory is read from /proc when idle and under load.
//! Run with `cargo bench -p pitcrew --bench lsp`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use pitcrew::model::fake::{FakeModel, Script};
use pitcrew::text::{ContentChange, Document, DocumentStore, Position, PositionEncoding, Range};
use serde_json::{Value, json};
use support::{Samples, TABLE_HEADER, machine, report};

/// Agents streaming at once.
const AGENTS: usize = 8;
/// Lines of the large file.
const LARGE_LINES: usize = 100_000;
/// How long each request kind is sampled while the agents stream.
const LOADED_WINDOW: Duration = Duration::from_secs(8);

/// A minimal LSP client over stdio: requests with ids, server requests answered `null`.
struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
    notifications: Vec<Value>,
}

impl Client {
    fn start(binary: &Path, root: &Path, home: &Path) -> Self {
        let mut child = Command::new(binary)
            .arg("lsp")
            .current_dir(root)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("PITCREW_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pitcrew lsp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, incoming) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(value) = line.strip_prefix("Content-Length: ") {
                        length = value.parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let Ok(message) = serde_json::from_slice::<Value>(&body) else {
                    return;
                };
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            incoming,
            next_id: 1,
            notifications: Vec::new(),
        }
    }

    fn send(&mut self, message: &Value) {
        let body = serde_json::to_vec(message).unwrap();
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        self.stdin.write_all(&body).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and waits for its response; returns it and the round trip.
    fn request(&mut self, method: &str, params: Value) -> (Value, Duration) {
        let id = self.next_id;
        self.next_id += 1;
        let started = Instant::now();
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self
                .incoming
                .recv_timeout(Duration::from_secs(30))
                .expect("the server answers");
            if message["id"] == id && message.get("method").is_none() {
                return (message, started.elapsed());
            }
            self.dispatch(message);
        }
    }

    fn dispatch(&mut self, message: Value) {
        match (message.get("method"), message.get("id")) {
            (Some(_), Some(id)) => {
                let id = id.clone();
                self.send(&json!({"jsonrpc": "2.0", "id": id, "result": null}));
            }
            (Some(_), None) => self.notifications.push(message),
            _ => {}
        }
    }

    /// Processes what arrives for `duration`.
    fn pump(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.incoming.recv_timeout(left) {
                Ok(message) => self.dispatch(message),
                Err(_) => return,
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse().ok())
            })
            .unwrap_or(0)
    }

    fn shutdown(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let _ = self.child.wait();
    }
}

fn repository(base_url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .status()
            .unwrap();
        assert!(status.success());
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    for i in 0..AGENTS {
        std::fs::write(
            dir.path().join(format!("src/m{i}.rs")),
            format!("// pitcrew: implement f{i}\npub fn f{i}() {{}}\n"),
        )
        .unwrap();
    }
    let large: String = (0..LARGE_LINES)
        .map(|i| format!("pub const C{i}: u32 = {i};\n"))
        .collect();
    std::fs::write(dir.path().join("src/large.rs"), &large).unwrap();
    std::fs::write(
        dir.path().join("pitcrew.toml"),
        format!(
            "[models.default]\nprovider = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"fake\"\nmax_concurrent = 16\n\n[team]\nimplementers = 8\n"
        ),
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "start"]);
    dir
}

/// Each implementer streams long answers slowly (a fragment every 20 ms), many times over.
fn script() -> Script {
    let text = "Reading the code and planning the change. ".repeat(40);
    Script::from_json(
        &json!({
            "defaults": {"chunk_size": 16, "chunk_delay_ms": 20},
            "responses": [
                {"when": {"role": "implementer"}, "text": text,
                 "tool_calls": [{"name": "list_files", "arguments": {"path": "src"}}],
                 "repeat": true}
            ]
        })
        .to_string(),
    )
    .expect("script")
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn range(start: (u32, u32), end: (u32, u32)) -> Value {
    json!({"start": {"line": start.0, "character": start.1}, "end": {"line": end.0, "character": end.1}})
}

fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_pitcrew"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(FakeModel::start(script())).unwrap();
    let repo = repository(&fake.openai_base_url());
    let home = tempfile::tempdir().unwrap();
    let root = repo.path().canonicalize().unwrap();
    let mut client = Client::start(binary, &root, home.path());
    let root_uri = uri(&root);
    client.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": root_uri,
            "workspaceFolders": [{"uri": root_uri, "name": "bench"}],
            "capabilities": {
                "window": {"workDoneProgress": true},
                "textDocument": {"codeAction": {
                    "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix", "refactor"]}},
                    "dataSupport": true, "resolveSupport": {"properties": ["command", "edit"]}}},
                "workspace": {"workspaceEdit": {"documentChanges": true}}
            }
        }),
    );
    client.notify("initialized", json!({}));
    // The team is up when pitcrew/plans answers without an error.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (response, _) = client.request("pitcrew/plans", Value::Null);
        if response.get("error").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the team did not start");
        client.pump(Duration::from_millis(50));
    }
    client.pump(Duration::from_millis(500));
    let idle_rss = client.rss_kib();

    // Idle latencies, for comparison.
    let module = uri(&root.join("src/m0.rs"));
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": module, "languageId": "rust", "version": 1,
               "text": "// pitcrew: implement f0\npub fn f0() {}\n"}}),
    );
    let mut idle_action = Samples::new("code action, idle");
    let mut idle_plan = Samples::new("`pitcrew/plans`, idle");
    for _ in 0..300 {
        let (_, took) = client.request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": module}, "range": range((0, 0), (1, 0)), "context": {"diagnostics": []}}),
        );
        idle_action.push(took);
        let (_, took) = client.request("pitcrew/plans", Value::Null);
        idle_plan.push(took);
    }

    // Eight delegations, each an implementer streaming from the fake model.
    let mut plans = Vec::new();
    for i in 0..AGENTS {
        let (response, _) = client.request(
            "workspace/executeCommand",
            json!({"command": "pitcrew.delegate", "arguments": [{
                "uri": uri(&root.join(format!("src/m{i}.rs"))),
                "range": range((0, 0), (2, 0)),
                "instruction": format!("implement f{i}"),
            }]}),
        );
        plans.push(response["result"]["planId"].as_str().unwrap().to_owned());
    }
    // Wait until every implementer is at work.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let begun = client
            .notifications
            .iter()
            .filter(|n| {
                n["method"] == "$/progress"
                    && n["params"]["value"]["kind"] == "begin"
                    && n["params"]["value"]["title"]
                        .as_str()
                        .is_some_and(|t| t.contains("implementer"))
            })
            .count();
        if begun >= AGENTS {
            break;
        }
        assert!(Instant::now() < deadline, "only {begun} agents started");
        client.pump(Duration::from_millis(50));
    }
    let requests_before = fake.requests().len();

    let mut action = Samples::new("code action, 8 agents streaming");
    let mut plan = Samples::new("`pitcrew/plan`, 8 agents streaming");
    let mut all_plans = Samples::new("`pitcrew/plans`, 8 agents streaming");
    let window = Instant::now();
    let mut loaded_rss = 0;
    while window.elapsed() < LOADED_WINDOW {
        let (response, took) = client.request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": module}, "range": range((0, 0), (1, 0)), "context": {"diagnostics": []}}),
        );
        assert!(response["result"].as_array().is_some_and(|a| !a.is_empty()));
        action.push(took);
        let (response, took) = client.request(
            "pitcrew/plan",
            json!({"planId": plans[action.len() % AGENTS]}),
        );
        assert!(response["result"]["tasks"].is_array(), "{response}");
        plan.push(took);
        let (_, took) = client.request("pitcrew/plans", Value::Null);
        all_plans.push(took);
        loaded_rss = loaded_rss.max(client.rss_kib());
        std::thread::sleep(Duration::from_millis(2));
    }
    let streamed = fake.requests().len() - requests_before;
    let progress = client
        .notifications
        .iter()
        .filter(|n| n["method"] == "$/progress")
        .count();

    // A 100,000-line file: a one-character change, then a hover (a request, so the round trip
    // shows when the change was applied), against the hover alone.
    // The agents are still streaming: the changes are measured under the same load.
    let large_path = root.join("src/large.rs");
    let large = uri(&large_path);
    let text = std::fs::read_to_string(&large_path).unwrap();
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": large, "languageId": "rust", "version": 1, "text": text}}),
    );
    let mut hover_only = Samples::new("hover in the 100,000-line file");
    let mut change_and_hover = Samples::new("didChange + hover, 100,000-line file");
    let mut change_alone = Samples::new(
        "didChange end to end, 100,000-line file (each pair: didChange + hover minus hover)",
    );
    let mut version = 1;
    for i in 0..500u32 {
        let line = (i * 7919) % LARGE_LINES as u32;
        let (_, took) = client.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": large}, "position": {"line": line, "character": 3}}),
        );
        hover_only.push(took);
        let hover_took = took;
        version += 1;
        let started = Instant::now();
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": large, "version": version},
                   "contentChanges": [{"range": range((line, 10), (line, 10)), "text": "x"}]}),
        );
        client.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": large}, "position": {"line": line, "character": 3}}),
        );
        let both = started.elapsed();
        change_and_hover.push(both);
        change_alone.push(both.saturating_sub(hover_took));
    }
    let large_rss = client.rss_kib();
    // Still under load: every implementer is at work after the edits.
    let (response, _) = client.request("pitcrew/plans", Value::Null);
    let at_work = response["result"]["plans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["tasks"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["status"] == "running")
        .count();
    assert_eq!(
        at_work, AGENTS,
        "the agents stopped before the large file was edited"
    );

    // In process: the change itself on the document store (what didChange does under its lock).
    let mut store = DocumentStore::default();
    store.open("file:///large.rs", Document::new(&text, 1, "rust"));
    let mut in_process = Samples::new("didChange applied in process, 100,000-line file");
    for i in 0..5_000u32 {
        let line = (i * 7919) % LARGE_LINES as u32;
        let change = ContentChange {
            range: Some(Range::new(Position::new(line, 10), Position::new(line, 10))),
            text: "x".into(),
        };
        let started = Instant::now();
        store
            .change(
                "file:///large.rs",
                &[change],
                i as i32 + 2,
                PositionEncoding::Utf16,
            )
            .unwrap();
        in_process.push(started.elapsed());
    }

    for id in &plans {
        client.request(
            "workspace/executeCommand",
            json!({"command": "pitcrew.cancel", "arguments": [{"planId": id}]}),
        );
    }
    client.pump(Duration::from_millis(500));
    client.shutdown();

    let mut out = String::new();
    out.push_str(&format!("Machine: {}\n\n", machine()));
    out.push_str(&format!(
        "While the window was sampled, the {AGENTS} implementers made {streamed} streamed model calls and the server sent {progress} `$/progress` notifications. The 100,000-line file was edited under the same load: all {at_work} implementers were still at work after its last edit.\n\n"
    ));
    out.push_str(TABLE_HEADER);
    out.push('\n');
    for samples in [
        &idle_action,
        &idle_plan,
        &action,
        &plan,
        &all_plans,
        &hover_only,
        &change_and_hover,
        &change_alone,
        &in_process,
    ] {
        out.push_str(&samples.row());
        out.push('\n');
    }
    out.push_str(&format!(
        "\nMemory (RSS): idle {:.1} MiB; {AGENTS} agents streaming {:.1} MiB; with the 100,000-line file open {:.1} MiB\n",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0,
        large_rss as f64 / 1024.0
    ));
    report(&out);
    drop(fake);
    runtime.shutdown_background();
}
