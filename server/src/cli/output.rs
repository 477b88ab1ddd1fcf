//! The one place the CLI writes to stdout and stderr for the user.
//!
//! `pitcrew lsp` owns stdout for the protocol, so nothing else in the crate prints; the CLI
//! subcommands write through these functions. A closed pipe (`pitcrew log | head`) is not an
//! error worth a panic.

use std::io::Write;

/// Writes `text` and a newline to stdout.
pub fn line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

/// Writes `value` as pretty JSON to stdout.
pub fn json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    line(&text);
}

/// Writes `text` and a newline to stderr.
pub fn error(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}
