//! The command line's subcommands, apart from argument parsing (which lives in `main.rs`).

pub mod demo;
pub mod doctor;
pub mod fake_model;
pub mod output;
pub mod plans;
pub mod run;
pub mod workspace;

/// Exit status of a subcommand that does not exist yet in this build.
pub const EXIT_NOT_AVAILABLE: i32 = 2;

/// Says plainly that a subcommand is not available yet, rather than pretending.
pub fn not_yet_available(command: &str) -> i32 {
    tracing::error!("`pitcrew {command}` is not yet available in this build");
    output::error(&format!(
        "pitcrew {command}: not yet available in this build of pitcrew ({})",
        env!("CARGO_PKG_VERSION")
    ));
    EXIT_NOT_AVAILABLE
}
