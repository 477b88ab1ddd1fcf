//! The VS Code extension (editors/vscode) in a real VS Code: code-server serving the packaged
//! .vsix, driven by Playwright in headless Chromium (tests/editors/vscode/drive.mjs) against a
//! TeamScenario repository and the fake model; the extension's unit tests (`npm test`); and a
//! check that its copy of the protocol (src/lsp_ext.ts) matches the server's (lsp/ext.rs).
//! Everything they need is installed by `tests/editors/setup`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pitcrew_tests::pitcrew_bin;
use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{approve, calls, finish, plan, task, with, write};
use serde_json::{Value, json};

const ORIGINAL: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    todo!()\n}\n";
const RESULT: &str =
    "/// The sum of `a` and `b`.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
/// What the driver types as the custom instruction; the server names the task `delegated`.
const INSTRUCTION: &str = "implement add";
/// The goal the driver gives the planner, whose plan has three tasks, one depending on the two
/// others; `mul` stays at work (its model answers slowly) so the view and status bar show a
/// running agent.
const GOAL: &str = "Add sub and mul, with tests";
const SETUP_HINT: &str = "run tests/editors/setup";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// What tests/editors/vscode/setup installs, or a failure that says to run it.
struct Host {
    code_server: PathBuf,
    playwright: PathBuf,
    vsix: PathBuf,
    driver: PathBuf,
}

fn host() -> Host {
    let root = repo_root();
    let editors = root.join("target/editors");
    let host = Host {
        code_server: editors.join("vscode-host/node_modules/.bin/code-server"),
        playwright: editors.join("vscode-host/node_modules/playwright-core"),
        vsix: editors.join("pitcrew.vsix"),
        driver: root.join("tests/editors/vscode/drive.mjs"),
    };
    for (what, path) in [
        ("code-server", &host.code_server),
        ("playwright-core", &host.playwright),
        ("the extension's .vsix", &host.vsix),
        ("Chromium", &PathBuf::from("/usr/bin/chromium")),
    ] {
        assert!(
            path.exists(),
            "{what} is missing ({}): {SETUP_HINT}",
            path.display()
        );
    }
    host
}

/// A process started in its own process group, killed with all its descendants when dropped
/// (code-server starts its server and extension host in groups of their own, and the extension
/// host starts `pitcrew lsp`).
struct Group {
    child: Child,
}

impl Group {
    fn spawn(command: &mut Command) -> Self {
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
        Self { child }
    }

    /// Waits for the process to exit, killing the group after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let root = self.child.id();
        if root <= 1 {
            return;
        }
        // The group catches what the process left behind even after it exited (a process group
        // id is not reused while the group has members); the descendants, found before any is
        // killed (orphans are adopted by init), catch the groups of their own code-server makes.
        let mut targets = vec![format!("-{root}")];
        if matches!(self.child.try_wait(), Ok(None)) {
            targets.extend(descendants(root).iter().map(u32::to_string));
        }
        // `--` is essential: procps-ng 4.0.2's kill reads `kill -KILL -PGID` as `kill -1`, which
        // signals every process on the machine.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .args(&targets)
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every process below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.split_off(1)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// The environment of everything VS Code runs, pitcrew included: private homes, no keys.
fn private_env<'a>(command: &'a mut Command, home: &Path) -> &'a mut Command {
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", home.join("runtime"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("PITCREW_SERVER_PATH")
        .env_remove("VSCODE_IPC_HOOK_CLI")
}

/// The last `max` bytes of each file named `name` under `dir`, for failure messages.
fn tails(dir: &Path, name: &str, max: usize) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let start = text.len().saturating_sub(max);
                let start = (start..text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                out.push_str(&format!("--- {}\n{}\n", path.display(), &text[start..]));
            }
        }
    }
    out
}

/// The implementer reads the file, writes the result and finishes; the reviewer approves with a
/// warning on the `a + b` line (line 3 of the result).
fn implement_add() -> Vec<Value> {
    vec![
        calls(
            "implementer",
            Some("delegated"),
            json!([{"name": "read_file", "arguments": {"path": "src/lib.rs"}}]),
        ),
        write("delegated", "src/lib.rs", RESULT),
        finish("delegated", "implemented add"),
        calls(
            "reviewer",
            Some("delegated"),
            json!([{"name": "submit_review", "arguments": {"verdict": "approve", "findings": [
                {"path": "src/lib.rs", "line": 3, "severity": "warning",
                 "message": "overflows on large inputs; consider checked_add"}
            ]}}]),
        ),
        plan(json!([
            task("sub", "Add sub", &[]),
            task("mul", "Add mul", &[]),
            task("tests", "Test sub and mul", &["sub", "mul"]),
        ])),
        write(
            "sub",
            "src/sub.rs",
            "pub fn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n",
        ),
        finish("sub", "added sub"),
        approve("sub"),
        with(
            write(
                "mul",
                "src/mul.rs",
                "pub fn mul(a: i32, b: i32) -> i32 {\n    a * b\n}\n",
            ),
            "latency_ms",
            json!(120_000),
        ),
    ]
}

/// code-server with the packaged extension installed, serving `workspace` on a free port;
/// stopped (with everything it started) when dropped.
struct VsCode {
    /// Held for its Drop, which stops code-server and what it started.
    _code_server: Group,
    /// One code-server (and its Chromium) at a time: two at once on the CI's two cores slow
    /// each other past the driver's step timeouts.
    _turn: std::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    home: PathBuf,
    user_data: PathBuf,
    port: u16,
}

impl VsCode {
    /// `trusted`: start with workspace trust off (every folder trusted), as the main scenario
    /// does; else VS Code asks whether to trust the folder, as it does a new user.
    fn start(host: &Host, workspace: &Path, trusted: bool) -> Self {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let vscode = tempfile::tempdir().expect("temp dir");
        let home = vscode.path().join("home");
        let user_data = vscode.path().join("user-data");
        let extensions = vscode.path().join("extensions");
        std::fs::create_dir_all(user_data.join("User")).expect("user data dir");
        std::fs::write(
            user_data.join("User/settings.json"),
            json!({
                "workbench.startupEditor": "none",
                "workbench.tips.enabled": false,
                "telemetry.telemetryLevel": "off",
                "extensions.autoCheckUpdates": false,
                "extensions.autoUpdate": false,
                "git.openRepositoryInParentFolders": "never",
                "files.autoSave": "off",
            })
            .to_string(),
        )
        .expect("settings.json");

        let installed: Output = private_env(&mut Command::new(&host.code_server), &home)
            .arg("--extensions-dir")
            .arg(&extensions)
            .arg("--user-data-dir")
            .arg(&user_data)
            .arg("--install-extension")
            .arg(&host.vsix)
            .arg("--force")
            .output()
            .expect("run code-server --install-extension");
        assert!(
            installed.status.success(),
            "installing the .vsix failed:\n{}{}",
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        );

        let port = free_port();
        let log = std::fs::File::create(vscode.path().join("code-server.log")).expect("log file");
        let mut code_server = Group::spawn(
            private_env(&mut Command::new(&host.code_server), &home)
                .env("PITCREW_SERVER_PATH", pitcrew_bin())
                .env("PITCREW_LOG", "info")
                .args(["--auth", "none", "--bind-addr"])
                .arg(format!("127.0.0.1:{port}"))
                .args(if trusted {
                    &["--disable-workspace-trust"][..]
                } else {
                    &[]
                })
                .args([
                    "--disable-telemetry",
                    "--disable-update-check",
                    "--disable-getting-started-override",
                ])
                .arg("--user-data-dir")
                .arg(&user_data)
                .arg("--extensions-dir")
                .arg(&extensions)
                .arg(workspace)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthy(port) {
            assert!(
                Instant::now() < deadline,
                "code-server did not answer /healthz:\n{}",
                tails(vscode.path(), "code-server.log", 4000)
            );
            if let Ok(Some(status)) = code_server.child.try_wait() {
                panic!(
                    "code-server exited ({status}):\n{}",
                    tails(vscode.path(), "code-server.log", 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }

        Self {
            _code_server: code_server,
            _turn: turn,
            dir: vscode,
            home,
            user_data,
            port,
        }
    }

    /// Runs a Playwright driver script against this code-server with `envs` (and VSCODE_URL,
    /// ARTIFACTS); fails unless it exits 0 within 120 s. Returns what it printed.
    fn drive(&self, script: &Path, envs: &[(&str, &std::ffi::OsStr)]) -> String {
        let (vscode, home, user_data, port) = (&self.dir, &self.home, &self.user_data, self.port);
        let artifacts = repo_root().join("target/editors/artifacts");
        let mut driver = Command::new("node");
        driver
            .arg(script)
            .env("VSCODE_URL", format!("http://127.0.0.1:{port}"))
            .env("ARTIFACTS", &artifacts)
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in envs {
            driver.env(name, value);
        }
        // tests/editors/vscode/screenshots sets this to regenerate docs/screenshots.
        if let Some(screenshot) = std::env::var_os("PITCREW_VSCODE_SCREENSHOT") {
            driver.env("SCREENSHOT", screenshot);
        }
        let mut driver = Group::spawn(&mut driver);
        let mut stdout = driver.child.stdout.take().expect("stdout");
        let mut stderr = driver.child.stderr.take().expect("stderr");
        let out_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let status = driver.wait(Duration::from_secs(120));
        let out = out_reader.join().unwrap_or_default();
        let err = err_reader.join().unwrap_or_default();
        let report = format!(
            "--- driver stdout\n{out}\n--- driver stderr\n{err}\n{}{}",
            tails(user_data, "pitcrew.log", 6000),
            tails(vscode.path(), "code-server.log", 3000)
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "the VS Code driver failed ({}):\n{report}",
            status.map_or("timed out after 120 s".to_owned(), |s| s.to_string()),
        );
        eprintln!("{out}");
        out
    }
}

#[test]
fn delegating_a_selection_in_vscode_shows_the_task_in_the_plan_view_and_applying_it_edits_the_buffer()
 {
    let host = host();
    let started = Instant::now();
    let scenario = TeamScenario::new(&[("src/lib.rs", ORIGINAL)], implement_add(), "", "");
    let code = VsCode::start(&host, scenario.path(), true);
    let out = code.drive(
        &host.driver,
        &[
            ("WORKSPACE", scenario.path().as_os_str()),
            ("PLAYWRIGHT_CORE", host.playwright.as_os_str()),
            ("INSTRUCTION", INSTRUCTION.as_ref()),
            ("GOAL", GOAL.as_ref()),
        ],
    );
    let report = || out.clone();

    // What the driver saw, it reports: the buffer before and after.
    let seen: Value = out
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("the driver reported nothing:\n{}", report()));
    assert_eq!(seen["ok"], true);
    assert!(seen["original"].as_str().unwrap().contains("todo!()"));
    let result = seen["result"].as_str().unwrap();
    assert!(
        result.contains("/// The sum of `a` and `b`.") && result.contains("a + b"),
        "{result}"
    );

    // The server did the work the user asked for, with the user's instruction and selection.
    let implementer = scenario.fake.requests_of("implementer", Some("delegated"));
    let first = serde_json::to_string(&implementer[0]["body"]).unwrap();
    assert!(first.contains(INSTRUCTION), "{first}");
    assert!(first.contains("src/lib.rs lines 1-3"), "{first}");
    // The edit went to the buffer: the file on disk is the user's to save.
    assert_eq!(scenario.repo.read("src/lib.rs"), ORIGINAL);
    let plans = scenario.plans();

    let delegated = plans
        .iter()
        .find(|p| p["goal"] == INSTRUCTION)
        .unwrap_or_else(|| panic!("no delegated plan in {plans:#?}"));
    assert_eq!(delegated["status"], "applied", "{delegated:#}");
    // The goal went to the planner.
    let planner = scenario.fake.requests_of("planner", None);
    assert!(
        serde_json::to_string(&planner[0]["body"])
            .unwrap()
            .contains(GOAL)
    );

    // Nothing went wrong on the way: no error in the extension's log (its own, and the server's
    // stderr at ERROR level).
    let log = tails(&code.user_data, "pitcrew.log", 1 << 20);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" [error] ")).collect();
    assert!(errors.is_empty(), "errors in the pitcrew log:\n{log}");

    drop(code);
    eprintln!(
        "editor_vscode: the whole run took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The extension's unit tests: tree items, status bar text, command arguments, server path
/// resolution, settings and diffs, under plain Node (no VS Code).
#[test]
fn the_extensions_unit_tests_pass() {
    let extension = repo_root().join("editors/vscode");
    assert!(
        extension.join("node_modules/typescript").exists(),
        "editors/vscode/node_modules is missing: {SETUP_HINT}"
    );
    let output = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(&extension)
        .env("npm_config_update_notifier", "false")
        .output()
        .expect("run npm test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "npm test failed in editors/vscode:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // node --test prints TAP: check that it ran the tests, not nothing.
    let passed = stdout
        .lines()
        .find_map(|line| line.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed >= 30, "npm test ran {passed} tests:\n{stdout}");
    assert!(stdout.contains("# fail 0"), "{stdout}");
}

/// The values of the `key: 'value',` lines of `text` (comments left out).
fn values(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| {
            let (_, value) = line.trim().split_once(": '")?;
            value.strip_suffix("',")
        })
        .collect()
}

/// The text of `text` from the line starting with `start` to the next line starting with `end`.
fn block<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in the file"));
    let len = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no `{end}` after `{start}`"));
    &text[from..from + len]
}

/// The fields of the `struct` (Rust, as serde names them in camelCase) or `interface` (TS)
/// called `name`, leaving out a Rust struct's flattened or hand-merged `summary`.
fn fields(text: &str, keyword: &str, name: &str) -> Vec<String> {
    let body = block(text, &format!("{keyword} {name} "), "\n}");
    let mut found: Vec<String> = body
        .lines()
        .skip(1)
        .filter_map(|line| {
            let field = line.strip_prefix("    pub ").or(line.strip_prefix("  "))?;
            let (field, _) = field.split_once(':')?;
            let field = field.trim_end_matches('?');
            (!field.is_empty() && field.chars().all(|c| c.is_alphanumeric() || c == '_'))
                .then_some(field)
        })
        .filter(|field| *field != "summary")
        .map(|field| {
            let mut camel = String::new();
            let mut upper = false;
            for c in field.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    camel.extend(c.to_uppercase());
                    upper = false;
                } else {
                    camel.push(c);
                }
            }
            camel
        })
        .collect();
    found.sort();
    found
}

/// The extension's copy of pitcrew's LSP extensions (editors/vscode/src/lsp_ext.ts) says what
/// the server's (server/src/lsp/ext.rs) says: the same commands, methods and fields.
#[test]
fn the_extensions_protocol_matches_the_servers() {
    use pitcrew::lsp::ext;

    let root = repo_root();
    let ts =
        std::fs::read_to_string(root.join("editors/vscode/src/lsp_ext.ts")).expect("lsp_ext.ts");
    let rust = std::fs::read_to_string(root.join("server/src/lsp/ext.rs")).expect("ext.rs");

    // Every command the server executes, and no other.
    let mut ts_commands = values(block(&ts, "export const commands = {", "} as const;"));
    ts_commands.sort_unstable();
    let mut commands = ext::commands::ALL.to_vec();
    commands.sort_unstable();
    assert_eq!(ts_commands, commands, "commands in lsp_ext.ts vs ext.rs");

    // The methods, under the same names.
    for (name, method) in [
        ("PLAN", ext::PLAN),
        ("PLANS", ext::PLANS),
        ("TASK", ext::TASK),
        ("PLAN_CHANGED", ext::PLAN_CHANGED),
        ("PROGRESS_CANCEL", ext::PROGRESS_CANCEL),
        ("DOCUMENT_TEXT", ext::DOCUMENT_TEXT),
        ("CONFIG", ext::CONFIG),
    ] {
        let declared = format!("export const {name} = '{method}';");
        assert!(ts.contains(&declared), "lsp_ext.ts lacks `{declared}`");
        assert!(
            rust.contains(&format!("pub const {name}: &str = \"{method}\";")),
            "ext.rs names {name} differently"
        );
    }

    // The types both declare, with the same fields.
    for name in [
        "PlanParams",
        "PlanSnapshot",
        "Question",
        "QuestionChoice",
        "PlansResult",
        "TaskSummary",
        "TaskParams",
        "TaskDetail",
        "TaskFile",
        "PlanChangedParams",
        "SelectionArgs",
        "TargetArgs",
        "AnswerArgs",
        "Started",
        "DocumentTextParams",
        "DocumentTextResult",
        "ConfigResult",
    ] {
        let ts_fields = fields(&ts, "interface", name);
        assert!(
            !ts_fields.is_empty(),
            "no fields found for {name} in lsp_ext.ts"
        );
        assert_eq!(
            ts_fields,
            fields(&rust, "pub struct", name),
            "the fields of {name} in lsp_ext.ts vs ext.rs"
        );
    }
}

/// A new user's first minutes: a git repository without pitcrew.toml (the model comes from the
/// user's own config file), opened in a window that asks whether to trust it. Restricted, the
/// commands are there and say they wait for trust; trusted, the server starts and the editor's
/// pitcrew menu delegates what the user typed in the picker, all without reloading the window.
#[test]
fn a_new_user_trusts_a_repository_without_pitcrew_toml_and_delegates_without_a_reload() {
    const TYPED: &str = "write the sum of both numbers";
    let host = host();
    let scenario = TeamScenario::new(&[("src/lib.rs", ORIGINAL)], implement_add(), "", "");
    let toml = scenario.repo.read("pitcrew.toml");
    scenario.repo.git(&["rm", "-q", "pitcrew.toml"]);
    scenario
        .repo
        .commit_all("no pitcrew.toml: the user's config file has the model");
    let code = VsCode::start(&host, scenario.path(), false);
    let user_config = code.home.join("config/pitcrew/config.toml");
    std::fs::create_dir_all(user_config.parent().unwrap()).expect("config dir");
    std::fs::write(&user_config, toml).expect("the user's config file");

    let out = code.drive(
        &repo_root().join("tests/editors/vscode/trust.mjs"),
        &[
            ("WORKSPACE", scenario.path().as_os_str()),
            ("PLAYWRIGHT_CORE", host.playwright.as_os_str()),
            ("INSTRUCTION", TYPED.as_ref()),
        ],
    );
    assert!(out.contains("\"ok\":true"), "{out}");
    let implementer = scenario.fake.requests_of("implementer", Some("delegated"));
    let first = serde_json::to_string(&implementer[0]["body"]).unwrap();
    assert!(
        first.contains(TYPED),
        "the typed instruction went to the implementer: {first}"
    );
    assert!(!scenario.path().join("pitcrew.toml").exists());
}
