//! The command line's subcommands, apart from argument parsing (which lives in `main.rs`).

pub mod demo;
pub mod doctor;
pub mod fake_model;
pub mod output;
pub mod plans;
pub mod run;
pub mod workspace;
