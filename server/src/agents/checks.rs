//! Running the configured checks, and reading their output into findings.
//!
//! Agents may run only commands named in `[checks]`. A check runs in the task's worktree with
//! `sh -c`, supervised (so a timeout, a cancellation or pitcrew's own end kills everything it
//! started, daemons included), without the model keys in its environment, and with its output capped (the start
//! and the end are kept: the end is where test failures are summed up).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::sandbox::{RunSpec, Sandbox};
use crate::config::CheckConfig;
use crate::team::plan::{CheckResult, Severity};

/// How much of the start of the output is kept when it is too long.
const HEAD_BYTES: usize = 8 * 1024;
/// How much of the end goes into the plan's record of the check.
const TAIL_IN_PLAN: usize = 4 * 1024;
/// Findings read from one check at most.
const MAX_FINDINGS: usize = 50;

/// A check's result, its output, and what could be read from it.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub result: CheckResult,
    /// The (capped) combined output.
    pub output: String,
    pub findings: Vec<RawFinding>,
}

/// A problem at a place, read from a check's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFinding {
    pub path: String,
    pub line: u32,
    pub end_line: Option<u32>,
    pub severity: Severity,
    pub message: String,
}

/// Runs check `name` in `dir` (a task's worktree), in `sandbox`.
pub async fn run(
    name: &str,
    check: &CheckConfig,
    dir: &Path,
    output_cap: usize,
    sandbox: &Sandbox,
    cancel: &CancellationToken,
) -> CheckRun {
    let started = Instant::now();
    let spec = RunSpec {
        // One stream, in the order things happened.
        script: format!("exec 2>&1\n{}", check.command),
        dir: dir.to_path_buf(),
        network: check.network.unwrap_or(sandbox.network()),
        env: vec![("PITCREW_CHECK".to_owned(), name.to_owned())],
        stdin: false,
    };
    let failed = |message: String| CheckRun {
        result: CheckResult {
            name: name.to_owned(),
            passed: false,
            exit_code: None,
            duration_ms: started.elapsed().as_millis() as u64,
            output_tail: message.clone(),
            timed_out: false,
        },
        output: message,
        findings: Vec::new(),
    };
    // However this ends (done, timed out, cancelled, this future dropped, or pitcrew itself
    // ending), nothing the check started outlives it.
    let mut running = match sandbox.start(&spec) {
        Ok(running) => running,
        Err(reason) => return failed(format!("the check `{name}` did not run: {reason}")),
    };
    let child = &mut running.child;
    let Some(mut stdout) = child.stdout.take() else {
        return failed("the check's output could not be read".into());
    };
    let output = std::sync::Arc::new(std::sync::Mutex::new(CappedOutput::new(
        output_cap.max(HEAD_BYTES * 2),
    )));
    let sink = output.clone();
    // Redacted as it streams, before the cap cuts it: a secret split by the cut would leak.
    let mut redacting = sandbox.redacting_stream();
    let mut reader = tokio::spawn(async move {
        let mut chunk = [0u8; 16 * 1024];
        while let Ok(n) = stdout.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let safe = redacting.push(&chunk[..n]);
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(&safe);
        }
        let rest = redacting.finish();
        sink.lock().unwrap_or_else(|p| p.into_inner()).push(&rest);
    });
    let timeout = Duration::from_secs(check.timeout_s.max(1));
    let outcome = tokio::select! {
        status = child.wait() => Ok(status),
        () = tokio::time::sleep(timeout) => Err(format!("timed out after {} s", timeout.as_secs())),
        () = cancel.cancelled() => Err("cancelled".to_owned()),
    };
    // The shell is done (or stopped): stop whatever it left behind, then take the rest of the
    // output (a grandchild holding the pipe open cannot make a finished check time out).
    running.end();
    let _ = running.child.kill().await;
    if tokio::time::timeout(Duration::from_millis(500), &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
    let mut text = output.lock().unwrap_or_else(|p| p.into_inner()).text();
    let (exit_code, timed_out) = match outcome {
        Ok(status) => (status.ok().and_then(|s| s.code()), false),
        Err(reason) => {
            text.push_str(&format!(
                "\n[pitcrew: the check {reason}; everything it started was stopped]"
            ));
            (None, true)
        }
    };
    // Whatever the check printed, no secret of pitcrew's environment goes further.
    let text = sandbox.redactor().redact(&text).into_owned();
    let passed = exit_code == Some(0);
    let findings = parse_findings(&text, dir, passed);
    CheckRun {
        result: CheckResult {
            name: name.to_owned(),
            passed,
            exit_code,
            duration_ms: started.elapsed().as_millis() as u64,
            output_tail: tail(&text, TAIL_IN_PLAN),
            timed_out,
        },
        output: text,
        findings,
    }
}

/// The last `max` bytes of `text`, on a character boundary.
pub fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[...]{}", &text[start..])
}

/// Output kept within a cap: the first `HEAD_BYTES`, and the last bytes up to the cap.
struct CappedOutput {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    tail_cap: usize,
    dropped: usize,
}

impl CappedOutput {
    fn new(cap: usize) -> Self {
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            tail_cap: cap - HEAD_BYTES,
            dropped: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < HEAD_BYTES {
            let take = bytes.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.tail.extend(bytes);
        while self.tail.len() > self.tail_cap {
            self.tail.pop_front();
            self.dropped += 1;
        }
    }

    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(
                "\n[... {} bytes of output left out ...]\n",
                self.dropped
            ));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}

static LOCATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<path>[^\s:][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?:\s*(?P<rest>.+)$").unwrap()
});
static RUSTC_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<level>error|warning)(?:\[(?P<code>[A-Z]\d+)\])?: (?P<message>.+)$").unwrap()
});
static RUSTC_ARROW: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*--> (?P<path>[^:]+):(?P<line>\d+):\d+").unwrap());
static PANIC_AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"panicked at (?P<path>[^:\s]+):(?P<line>\d+):\d+:?").unwrap());

/// Reads findings from a check's output: cargo's JSON diagnostics, rustc's human format,
/// `path:line[:col]: message` lines (gcc, clippy short, eslint unix, many more), and Rust test
/// panics. Only paths that exist under `root` count, so URLs and times are not mistaken for
/// places.
pub fn parse_findings(output: &str, root: &Path, passed: bool) -> Vec<RawFinding> {
    let default_severity = if passed {
        Severity::Warning
    } else {
        Severity::Error
    };
    // Findings name files of the repository, relative to it; anything else is not a place.
    let relative = |path: &str| -> Option<String> {
        let path = path.trim_start_matches("./");
        let relative = crate::git::relative_path(root, Path::new(path))?;
        root.join(&relative).is_file().then_some(relative)
    };
    let severity_in = |text: &str| {
        let lower = text.to_ascii_lowercase();
        if lower.contains("error") {
            Severity::Error
        } else if lower.contains("warning") {
            Severity::Warning
        } else if lower.starts_with("note") || lower.starts_with("help") {
            Severity::Info
        } else {
            default_severity
        }
    };
    let mut found: Vec<RawFinding> = Vec::new();
    let lines: Vec<&str> = output.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('{') {
            if let Some(mut finding) = cargo_json(trimmed)
                && let Some(path) = relative(&finding.path)
            {
                finding.path = path;
                found.push(finding);
            }
            continue;
        }
        if let Some(header) = RUSTC_HEADER.captures(trimmed) {
            let arrow = lines[i + 1..]
                .iter()
                .take(4)
                .find_map(|next| RUSTC_ARROW.captures(next));
            if let Some(arrow) = arrow
                && let Some(path) = relative(&arrow["path"])
            {
                found.push(RawFinding {
                    path,
                    line: arrow["line"].parse().unwrap_or(1),
                    end_line: None,
                    severity: if &header["level"] == "error" {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    message: header["message"].to_owned(),
                });
            }
            continue;
        }
        if let Some(panic) = PANIC_AT.captures(trimmed)
            && let Some(path) = relative(&panic["path"])
        {
            let message = lines
                .get(i + 1)
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| trimmed.to_owned());
            found.push(RawFinding {
                path,
                line: panic["line"].parse().unwrap_or(1),
                end_line: None,
                severity: Severity::Error,
                message: format!("test failed: {message}"),
            });
            continue;
        }
        if let Some(located) = LOCATED.captures(trimmed)
            && let Some(path) = relative(&located["path"])
        {
            let rest = located["rest"].trim();
            found.push(RawFinding {
                path,
                line: located["line"].parse().unwrap_or(1),
                end_line: None,
                severity: severity_in(rest),
                message: rest.to_owned(),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|f| seen.insert((f.path.clone(), f.line, f.message.clone())));
    found.truncate(MAX_FINDINGS);
    found
}

/// One line of `cargo --message-format=json` output, if it is a diagnostic with a place.
fn cargo_json(line: &str) -> Option<RawFinding> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value["reason"] != "compiler-message" {
        return None;
    }
    let message = &value["message"];
    let span = message["spans"]
        .as_array()?
        .iter()
        .find(|s| s["is_primary"] == true)?;
    let severity = match message["level"].as_str()? {
        "error" | "error: internal compiler error" => Severity::Error,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    };
    Some(RawFinding {
        path: span["file_name"].as_str()?.to_owned(),
        line: span["line_start"].as_u64()? as u32,
        end_line: span["line_end"].as_u64().map(|l| l as u32),
        severity,
        message: message["message"].as_str()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        for file in ["src/lib.rs", "src/main.rs", "app.py"] {
            std::fs::write(dir.path().join(file), "x\n").unwrap();
        }
        dir
    }

    #[test]
    fn reads_the_common_formats() {
        let dir = root();
        let output = r#"
   Compiling demo v0.1.0
{"reason":"compiler-message","message":{"message":"unused variable: `x`","level":"warning","spans":[{"file_name":"src/lib.rs","line_start":3,"line_end":3,"is_primary":true}]}}
error[E0308]: mismatched types
  --> src/main.rs:4:18
   |
src/lib.rs:10:5: error: expected `;`
app.py:7: E501 line too long
{root}/src/main.rs:9:1: warning: absolute, but ours
see https://example.com:443/docs: nothing here
/usr/lib/rustlib/src/core.rs:10:1: error: not ours
thread 'tests::adds' panicked at src/lib.rs:12:9:
assertion `left == right` failed
"#;
        let output = output.replace("{root}", &dir.path().display().to_string());
        let findings = parse_findings(&output, dir.path(), false);
        let summary: Vec<(String, u32, Severity, String)> = findings
            .into_iter()
            .map(|f| (f.path, f.line, f.severity, f.message))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "src/lib.rs".into(),
                    3,
                    Severity::Warning,
                    "unused variable: `x`".into()
                ),
                (
                    "src/main.rs".into(),
                    4,
                    Severity::Error,
                    "mismatched types".into()
                ),
                (
                    "src/lib.rs".into(),
                    10,
                    Severity::Error,
                    "error: expected `;`".into()
                ),
                (
                    "app.py".into(),
                    7,
                    Severity::Error,
                    "E501 line too long".into()
                ),
                (
                    "src/main.rs".into(),
                    9,
                    Severity::Warning,
                    "warning: absolute, but ours".into()
                ),
                (
                    "src/lib.rs".into(),
                    12,
                    Severity::Error,
                    "test failed: assertion `left == right` failed".into()
                ),
            ]
        );
    }

    /// The sandbox off (mode "off"), so this runs wherever the unit tests do; the sandbox
    /// itself is tested through the binary, with bubblewrap.
    fn unconfined() -> Sandbox {
        let mut config = crate::config::Config::default();
        config.sandbox.mode = crate::config::SandboxMode::Off;
        Sandbox::new(&config)
    }

    #[tokio::test]
    async fn checks_run_capped_with_an_allow_listed_environment_and_die_on_timeout() {
        let dir = root();
        let check = CheckConfig {
            command: "echo start; echo pkg=$CARGO_PKG_NAME; echo path=${PATH:+set}; echo home=$HOME; seq 1 20000; echo 'src/lib.rs:1:1: error: bad' >&2; exit 3".into(),
            timeout_s: 30,
            network: None,
        };
        // Cargo sets CARGO_PKG_NAME for tests: it is not on the allow-list, PATH is.
        let done = run(
            "test",
            &check,
            dir.path(),
            20_000,
            &unconfined(),
            &CancellationToken::new(),
        )
        .await;
        assert!(!done.result.passed);
        assert_eq!(done.result.exit_code, Some(3));
        assert!(
            done.output.starts_with("start\npkg=\npath=set\nhome=/"),
            "only the allow-list comes through: {}",
            &done.output[..60]
        );
        let home = std::env::var("HOME").unwrap_or_default();
        assert!(
            !done.output.contains(&format!("home={home}\n")),
            "HOME is a scratch home"
        );
        assert!(done.output.contains("bytes of output left out"));
        assert!(done.output.len() < 21_000);
        assert!(
            done.output.ends_with("src/lib.rs:1:1: error: bad\n"),
            "stderr comes through, in order"
        );
        assert_eq!(done.findings.len(), 1);

        let slow = CheckConfig {
            command: "sleep 30 & sleep 30; echo never".into(),
            timeout_s: 1,
            network: None,
        };
        let started = Instant::now();
        let done = run(
            "slow",
            &slow,
            dir.path(),
            10_000,
            &unconfined(),
            &CancellationToken::new(),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(done.result.timed_out && !done.result.passed);
        assert!(done.output.contains("timed out after 1 s"));
    }
}
