//! `TestServer`: an LSP client that drives the real `pitcrew lsp` binary over stdio.
//!
//! It behaves like an editor: it keeps its own copy of every open document, applies
//! `workspace/applyEdit` to that copy (and tells the server with `didChange`, as editors do),
//! answers `showMessageRequest`, `workspace/configuration` and `workDoneProgress/create`, and
//! records every notification. Every wait has a timeout. On drop it shuts the server down and
//! fails the test if the server crashed, exited with a non-zero code, or wrote anything to
//! stdout that was not a protocol frame.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::text_model::{self, Encoding};
use crate::{file_uri, pitcrew_bin};

/// How long any single wait lasts before the test fails, unless a test says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// What arrives from the server's stdout.
enum Incoming {
    Message(Value),
    Closed,
}

/// A document as the client holds it.
#[derive(Debug, Clone)]
pub struct ClientDocument {
    pub version: i32,
    pub text: String,
}

/// How the client answers the server's requests.
#[derive(Debug, Clone)]
pub struct ClientBehaviour {
    /// Apply `workspace/applyEdit` and answer `applied: true`; else decline every edit
    /// without a reason, as a user closing a preview does.
    pub apply_edits: bool,
    /// The title of the action to pick in `window/showMessageRequest`; `None` dismisses.
    pub message_action: Option<String>,
    /// What `workspace/configuration` returns for the `pitcrew` section.
    pub configuration: Value,
    /// Server requests that are recorded but never answered, to play an unresponsive client.
    pub never_answer: HashSet<String>,
}

impl Default for ClientBehaviour {
    fn default() -> Self {
        Self {
            apply_edits: true,
            message_action: None,
            configuration: Value::Null,
            never_answer: HashSet::new(),
        }
    }
}

/// The error half of a JSON-RPC response.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

/// Starts a `TestServer`.
pub struct TestServerBuilder {
    root: Option<PathBuf>,
    encodings: Option<Vec<&'static str>>,
    capabilities: Value,
    initialization_options: Option<Value>,
    behaviour: ClientBehaviour,
    env: Vec<(String, String)>,
    args: Vec<String>,
    timeout: Duration,
    user_config: Option<String>,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        Self {
            root: None,
            encodings: None,
            capabilities: json!({}),
            initialization_options: None,
            behaviour: ClientBehaviour::default(),
            env: Vec::new(),
            args: vec!["lsp".to_owned()],
            timeout: DEFAULT_TIMEOUT,
            user_config: None,
        }
    }
}

impl TestServerBuilder {
    /// The workspace folder (also the server's working directory).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// What the client offers in `general.positionEncodings`; absent when not called.
    pub fn position_encodings(mut self, encodings: &[&'static str]) -> Self {
        self.encodings = Some(encodings.to_vec());
        self
    }

    /// Extra client capabilities, merged over the defaults.
    pub fn capabilities(mut self, capabilities: Value) -> Self {
        self.capabilities = capabilities;
        self
    }

    pub fn initialization_options(mut self, options: Value) -> Self {
        self.initialization_options = Some(options);
        self
    }

    pub fn behaviour(mut self, behaviour: ClientBehaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Arguments for the binary, instead of `lsp`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The user's own defaults, `$XDG_CONFIG_HOME/pitcrew/config.toml` in the private home.
    pub fn user_config(mut self, toml: &str) -> Self {
        self.user_config = Some(toml.to_owned());
        self
    }

    /// Spawns the server without initializing it.
    pub fn spawn(self) -> TestServer {
        let root = self.root.clone().unwrap_or_else(std::env::temp_dir);
        let home = tempfile::tempdir().expect("temp home");
        if let Some(toml) = &self.user_config {
            let dir = home.path().join("config/pitcrew");
            std::fs::create_dir_all(&dir).expect("user config dir");
            std::fs::write(dir.join("config.toml"), toml).expect("user config");
        }
        let mut command = Command::new(pitcrew_bin());
        command
            .args(&self.args)
            .current_dir(&root)
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .env(
                "PITCREW_LOG",
                std::env::var("PITCREW_LOG").unwrap_or_else(|_| "debug".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn pitcrew");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");

        let (tx, rx) = channel();
        let violations = Arc::new(Mutex::new(Vec::new()));
        let reader_violations = violations.clone();
        std::thread::spawn(move || read_frames(stdout, tx, reader_violations));
        let stderr_log = Arc::new(Mutex::new(String::new()));
        let stderr_sink = stderr_log.clone();
        let echo = std::env::var_os("PITCREW_TEST_ECHO").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("[server] {line}");
                }
                let mut log = stderr_sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });

        TestServer {
            child,
            stdin: Some(stdin),
            incoming: rx,
            closed: false,
            violations,
            stderr_log,
            next_id: 1,
            responses: HashMap::new(),
            notifications: Vec::new(),
            server_requests: Vec::new(),
            unanswered: Vec::new(),
            documents: HashMap::new(),
            encoding: Encoding::Utf16,
            behaviour: self.behaviour,
            root,
            timeout: self.timeout,
            initialize_result: Value::Null,
            finished: false,
            _home: home,
            pending_init: Some((
                self.encodings,
                self.capabilities,
                self.initialization_options,
            )),
        }
    }

    /// Spawns the server and completes `initialize` / `initialized`.
    pub fn start(self) -> TestServer {
        let mut server = self.spawn();
        server.initialize();
        server
    }
}

/// What `initialize` will send: offered encodings, extra capabilities, initializationOptions.
type InitParts = (Option<Vec<&'static str>>, Value, Option<Value>);

/// A running `pitcrew lsp` and the client state that goes with it.
pub struct TestServer {
    child: Child,
    stdin: Option<ChildStdin>,
    incoming: Receiver<Incoming>,
    closed: bool,
    violations: Arc<Mutex<Vec<String>>>,
    stderr_log: Arc<Mutex<String>>,
    next_id: i64,
    responses: HashMap<i64, Value>,
    notifications: Vec<Value>,
    server_requests: Vec<Value>,
    unanswered: Vec<Value>,
    documents: HashMap<String, ClientDocument>,
    encoding: Encoding,
    behaviour: ClientBehaviour,
    root: PathBuf,
    timeout: Duration,
    initialize_result: Value,
    finished: bool,
    _home: tempfile::TempDir,
    pending_init: Option<InitParts>,
}

impl TestServer {
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// The result of `initialize`.
    pub fn initialize_result(&self) -> &Value {
        &self.initialize_result
    }

    /// The position encoding the server chose.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn behaviour_mut(&mut self) -> &mut ClientBehaviour {
        &mut self.behaviour
    }

    /// Sends `initialize` with the builder's capabilities, then `initialized`.
    pub fn initialize(&mut self) -> Value {
        let (encodings, extra, options) =
            self.pending_init.take().unwrap_or((None, json!({}), None));
        let mut capabilities = json!({
            "workspace": {
                "applyEdit": true,
                "workspaceEdit": {"documentChanges": true, "resourceOperations": ["create", "rename", "delete"]},
                "configuration": true,
                "didChangeConfiguration": {"dynamicRegistration": false},
            },
            "textDocument": {
                "synchronization": {"didSave": true, "dynamicRegistration": false},
                "codeAction": {
                    "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["", "quickfix", "refactor", "refactor.rewrite"]}},
                    "resolveSupport": {"properties": ["edit", "command"]},
                    "dataSupport": true,
                },
                "publishDiagnostics": {"relatedInformation": true, "versionSupport": true},
            },
            "window": {"workDoneProgress": true, "showMessage": {}, "showDocument": {"support": true}},
        });
        if let Some(encodings) = encodings {
            capabilities["general"] = json!({"positionEncodings": encodings});
        }
        merge(&mut capabilities, &extra);
        let root_uri = file_uri(&self.root);
        let mut params = json!({
            "processId": std::process::id(),
            "clientInfo": {"name": "pitcrew-tests"},
            "rootUri": root_uri,
            "workspaceFolders": [{"uri": root_uri, "name": "workspace"}],
            "capabilities": capabilities,
        });
        if let Some(options) = options {
            params["initializationOptions"] = options;
        }
        let result = self
            .request("initialize", params)
            .expect("initialize succeeds");
        if let Some(encoding) = result["capabilities"]["positionEncoding"].as_str() {
            self.encoding = Encoding::from_wire(encoding).expect("a known encoding");
        }
        self.initialize_result = result.clone();
        self.notify("initialized", json!({}));
        result
    }

    // --- Sending ---------------------------------------------------------------------------

    /// Writes raw bytes to the server's stdin, for tests of malformed input.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to server");
        stdin.flush().expect("flush to server");
    }

    /// Writes one framed message.
    pub fn send(&mut self, message: &Value) {
        let body = message.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.send_raw(frame.as_bytes());
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns its id without waiting.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, ResponseError> {
        let id = self.send_request(method, params);
        self.response(id)
    }

    /// Waits for the response to request `id`.
    pub fn response(&mut self, id: i64) -> Result<Value, ResponseError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(response) = self.responses.remove(&id) {
                return match response.get("error") {
                    Some(error) => Err(ResponseError {
                        code: error["code"].as_i64().unwrap_or(0),
                        message: error["message"].as_str().unwrap_or("").to_owned(),
                        data: error.get("data").cloned(),
                    }),
                    None => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
                };
            }
            if !self.pump_until(deadline) {
                self.fail(&format!(
                    "no response to request {id} in {:?}",
                    self.timeout
                ));
            }
        }
    }

    // --- Documents --------------------------------------------------------------------------

    /// The URI of `path` relative to the workspace root.
    pub fn uri(&self, relative: &str) -> String {
        file_uri(&self.root.join(relative))
    }

    /// Opens a document (version 1) as an editor would, with `text` that may differ from disk.
    pub fn open(&mut self, uri: &str, language_id: &str, text: &str) {
        self.documents.insert(
            uri.to_owned(),
            ClientDocument {
                version: 1,
                text: text.to_owned(),
            },
        );
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language_id, "version": 1, "text": text}}),
        );
    }

    /// Edits the client's copy of `uri` and sends the change; positions are (line, character)
    /// in the negotiated encoding.
    pub fn change(&mut self, uri: &str, start: (u32, u32), end: (u32, u32), text: &str) {
        let encoding = self.encoding;
        let document = self.documents.get_mut(uri).expect("document is open");
        text_model::replace(&mut document.text, start, end, text, encoding);
        document.version += 1;
        let version = document.version;
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": range_json(start, end), "text": text}],
            }),
        );
    }

    /// Inserts `text` at the end of the client's copy of `uri`.
    pub fn append(&mut self, uri: &str, text: &str) {
        let encoding = self.encoding;
        let current = &self.documents[uri].text;
        let end = text_model::position(current, current.len(), encoding);
        self.change(uri, end, end, text);
    }

    pub fn close(&mut self, uri: &str) {
        self.documents.remove(uri);
        self.notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        );
    }

    /// The client's copy of a document.
    pub fn document(&self, uri: &str) -> &ClientDocument {
        self.documents
            .get(uri)
            .unwrap_or_else(|| panic!("{uri} is not open"))
    }

    /// The server's copy of a document, through `pitcrew/debug/documentText`.
    pub fn server_text(&mut self, uri: &str) -> (i32, String) {
        let result = self
            .request("pitcrew/debug/documentText", json!({"uri": uri}))
            .expect("documentText");
        (
            result["version"].as_i64().unwrap_or(-1) as i32,
            result["text"].as_str().unwrap_or_default().to_owned(),
        )
    }

    // --- Receiving --------------------------------------------------------------------------

    /// Every notification received so far, in order (after taking what has arrived).
    pub fn notifications(&mut self, method: &str) -> Vec<Value> {
        self.drain();
        self.notifications
            .iter()
            .filter(|n| n["method"] == method)
            .map(|n| n["params"].clone())
            .collect()
    }

    /// Waits for a notification of `method` whose params satisfy `matches`, received at any
    /// time since the server started.
    pub fn wait_for_notification(
        &mut self,
        method: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + self.timeout;
        let mut seen = 0;
        loop {
            let found = self.notifications[seen..]
                .iter()
                .find(|n| n["method"] == method && matches(&n["params"]))
                .map(|n| n["params"].clone());
            if let Some(params) = found {
                return params;
            }
            seen = self.notifications.len();
            if !self.pump_until(deadline) {
                self.fail(&format!(
                    "no matching {method} notification in {:?}",
                    self.timeout
                ));
            }
        }
    }

    /// Every request the server sent to the client so far.
    pub fn server_requests(&mut self, method: &str) -> Vec<Value> {
        self.drain();
        self.server_requests
            .iter()
            .filter(|r| r["method"] == method)
            .cloned()
            .collect()
    }

    /// Waits for the server to send a request of `method`.
    pub fn wait_for_server_request(&mut self, method: &str) -> Value {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(request) = self.server_requests.iter().find(|r| r["method"] == method) {
                return request.clone();
            }
            if !self.pump_until(deadline) {
                self.fail(&format!(
                    "the server sent no {method} in {:?}",
                    self.timeout
                ));
            }
        }
    }

    /// Answers a request that `never_answer` held back.
    pub fn answer_held(&mut self, method: &str, result: Value) {
        let position = self
            .unanswered
            .iter()
            .position(|r| r["method"] == method)
            .unwrap_or_else(|| panic!("no held {method} request"));
        let request = self.unanswered.remove(position);
        self.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": result}));
    }

    /// Processes everything that has already arrived, without waiting.
    pub fn drain(&mut self) {
        while let Ok(incoming) = self.incoming.try_recv() {
            self.dispatch(incoming);
        }
    }

    /// Processes messages for at most `duration`.
    pub fn pump_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while self.pump_until(deadline) {}
    }

    /// Processes one message, waiting until `deadline`; false when none came.
    fn pump_until(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline || self.closed {
            if self.closed {
                self.drain();
            }
            return false;
        }
        match self.incoming.recv_timeout(deadline - now) {
            Ok(incoming) => {
                self.dispatch(incoming);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                false
            }
        }
    }

    fn dispatch(&mut self, incoming: Incoming) {
        let message = match incoming {
            Incoming::Message(message) => message,
            Incoming::Closed => {
                self.closed = true;
                return;
            }
        };
        let has_id = message.get("id").is_some_and(|id| !id.is_null());
        let has_method = message.get("method").is_some();
        match (has_method, has_id) {
            (true, true) => self.answer_server_request(message),
            (true, false) => self.notifications.push(message),
            (false, _) => {
                let id = message["id"].as_i64().unwrap_or(-1);
                self.responses.insert(id, message);
            }
        }
    }

    fn answer_server_request(&mut self, request: Value) {
        self.server_requests.push(request.clone());
        let method = request["method"].as_str().unwrap_or_default().to_owned();
        // After the client closed its side (a crashed editor), nothing is answered.
        if self.behaviour.never_answer.contains(&method) || self.stdin.is_none() {
            self.unanswered.push(request);
            return;
        }
        let params = &request["params"];
        let result = match method.as_str() {
            "workspace/applyEdit" if self.behaviour.apply_edits => {
                match self.apply_workspace_edit(&params["edit"]) {
                    Ok(()) => json!({"applied": true}),
                    Err(reason) => json!({"applied": false, "failureReason": reason}),
                }
            }
            // As VS Code answers when the user closes its preview: no reason.
            "workspace/applyEdit" => json!({"applied": false}),
            "window/showMessageRequest" => {
                let wanted = self.behaviour.message_action.clone();
                params["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|action| {
                        Some(action["title"].as_str().unwrap_or("")) == wanted.as_deref()
                    })
                    .cloned()
                    .unwrap_or(Value::Null)
            }
            "workspace/configuration" => Value::Array(
                params["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|_| self.behaviour.configuration.clone())
                    .collect(),
            ),
            "window/showDocument" => json!({"success": true}),
            "window/workDoneProgress/create"
            | "client/registerCapability"
            | "client/unregisterCapability"
            | "workspace/diagnostic/refresh"
            | "workspace/codeLens/refresh"
            | "workspace/inlayHint/refresh" => Value::Null,
            _ => {
                self.send(&json!({
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "error": {"code": -32601, "message": format!("the test client does not handle {method}")},
                }));
                return;
            }
        };
        self.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": result}));
    }

    /// Applies a `WorkspaceEdit` to the client's documents (and to files on disk for documents
    /// that are not open), then sends `didChange` for every open document it changed.
    fn apply_workspace_edit(&mut self, edit: &Value) -> Result<(), String> {
        let mut per_document: Vec<(String, Option<i64>, Vec<Value>)> = Vec::new();
        if let Some(changes) = edit["documentChanges"].as_array() {
            for change in changes {
                match change["kind"].as_str() {
                    Some("create") => {
                        let path = crate::uri_path(change["uri"].as_str().unwrap_or_default());
                        if let Some(parent) = path.parent() {
                            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                        }
                        std::fs::write(&path, "").map_err(|e| e.to_string())?;
                    }
                    Some("delete") => {
                        let path = crate::uri_path(change["uri"].as_str().unwrap_or_default());
                        std::fs::remove_file(&path).map_err(|e| e.to_string())?;
                    }
                    Some("rename") => {
                        let from = crate::uri_path(change["oldUri"].as_str().unwrap_or_default());
                        let to = crate::uri_path(change["newUri"].as_str().unwrap_or_default());
                        std::fs::rename(from, to).map_err(|e| e.to_string())?;
                    }
                    _ => per_document.push((
                        change["textDocument"]["uri"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        change["textDocument"]["version"].as_i64(),
                        change["edits"].as_array().cloned().unwrap_or_default(),
                    )),
                }
            }
        } else if let Some(changes) = edit["changes"].as_object() {
            for (uri, edits) in changes {
                per_document.push((
                    uri.clone(),
                    None,
                    edits.as_array().cloned().unwrap_or_default(),
                ));
            }
        }
        // Check every version first: an edit applies entirely or not at all.
        for (uri, version, _) in &per_document {
            if let (Some(version), Some(document)) = (version, self.documents.get(uri))
                && *version != i64::from(document.version)
            {
                return Err(format!(
                    "{uri} is at version {}, the edit is for version {version}",
                    document.version
                ));
            }
        }
        for (uri, _, edits) in per_document {
            let mut edits = edits;
            // Apply from the end so that earlier ranges stay valid.
            edits.sort_by_key(|e| {
                std::cmp::Reverse((
                    e["range"]["start"]["line"].as_u64().unwrap_or(0),
                    e["range"]["start"]["character"].as_u64().unwrap_or(0),
                ))
            });
            let encoding = self.encoding;
            if self.documents.contains_key(&uri) {
                let mut content_changes = Vec::new();
                let document = self.documents.get_mut(&uri).unwrap();
                for edit in &edits {
                    let (start, end) = range_of(&edit["range"]);
                    let new_text = edit["newText"].as_str().unwrap_or_default();
                    text_model::replace(&mut document.text, start, end, new_text, encoding);
                    content_changes.push(json!({"range": edit["range"], "text": new_text}));
                }
                document.version += 1;
                let version = document.version;
                self.notify(
                    "textDocument/didChange",
                    json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": content_changes}),
                );
            } else {
                let path = crate::uri_path(&uri);
                let mut text = std::fs::read_to_string(&path).unwrap_or_default();
                for edit in &edits {
                    let (start, end) = range_of(&edit["range"]);
                    let new_text = edit["newText"].as_str().unwrap_or_default();
                    text_model::replace(&mut text, start, end, new_text, encoding);
                }
                std::fs::write(&path, text).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    // --- Ending -----------------------------------------------------------------------------

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr_log.lock().unwrap().clone()
    }

    /// Sends `shutdown` and `exit` and returns the exit code.
    pub fn shutdown(&mut self) -> i32 {
        self.finished = true;
        let result = self.request("shutdown", Value::Null);
        assert_eq!(result, Ok(Value::Null), "shutdown answered");
        self.notify("exit", Value::Null);
        self.wait_exit()
    }

    /// Kills the server (SIGKILL), as a crash or a killed editor would.
    pub fn kill(&mut self) {
        self.finished = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes the server's stdin, as a client that goes away without a word.
    pub fn disconnect(&mut self) -> i32 {
        self.finished = true;
        self.stdin = None;
        self.wait_exit()
    }

    /// Waits for the process to end and returns its exit code (-1 for a signal).
    pub fn wait_exit(&mut self) -> i32 {
        self.finished = true;
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Take what the server wrote before it went.
                let _ = self.pump_until(Instant::now() + Duration::from_millis(200));
                self.drain();
                return status.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                self.fail("the server did not exit in time");
            }
            self.drain();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Protocol violations seen on stdout so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        let stderr = self.stderr();
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{what}\n--- server stderr (last lines) ---\n{}",
            tail.join("\n")
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        if !self.finished {
            let code = self.shutdown();
            if code != 0 {
                self.fail(&format!(
                    "the server exited with code {code} after shutdown and exit"
                ));
            }
        }
        let violations = self.violations();
        if !violations.is_empty() {
            self.fail(&format!(
                "the server wrote to stdout outside the protocol: {violations:?}"
            ));
        }
        if self.stderr().contains("panicked at") {
            self.fail("the server panicked");
        }
    }
}

fn range_json(start: (u32, u32), end: (u32, u32)) -> Value {
    json!({
        "start": {"line": start.0, "character": start.1},
        "end": {"line": end.0, "character": end.1},
    })
}

fn range_of(range: &Value) -> ((u32, u32), (u32, u32)) {
    let at = |p: &Value| {
        (
            p["line"].as_u64().unwrap_or(0) as u32,
            p["character"].as_u64().unwrap_or(0) as u32,
        )
    };
    (at(&range["start"]), at(&range["end"]))
}

/// Merges `overlay` into `base`, objects key by key.
fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// Reads frames from the server's stdout until it closes; anything that is not a frame is a
/// protocol violation.
fn read_frames(stdout: impl Read, tx: Sender<Incoming>, violations: Arc<Mutex<Vec<String>>>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut content_length = None;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => {
                    let _ = tx.send(Incoming::Closed);
                    return;
                }
                Ok(_) => {}
                Err(err) => {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("unreadable output: {err}"));
                    let _ = tx.send(Incoming::Closed);
                    return;
                }
            }
            if line == "\r\n" {
                break;
            }
            let header = line.strip_suffix("\r\n");
            match header.and_then(|h| h.split_once(": ")) {
                Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                    content_length = value.trim().parse::<usize>().ok();
                }
                Some((name, _)) if name.eq_ignore_ascii_case("content-type") => {}
                _ => violations
                    .lock()
                    .unwrap()
                    .push(format!("not a header: {line:?}")),
            }
        }
        let Some(length) = content_length else {
            violations
                .lock()
                .unwrap()
                .push("a frame without Content-Length".into());
            continue;
        };
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            violations
                .lock()
                .unwrap()
                .push("output ended inside a frame".into());
            let _ = tx.send(Incoming::Closed);
            return;
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(message) if message["jsonrpc"] == "2.0" => {
                let _ = tx.send(Incoming::Message(message));
            }
            _ => violations.lock().unwrap().push(format!(
                "a frame that is not JSON-RPC: {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }
}
