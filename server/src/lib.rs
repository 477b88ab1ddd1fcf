//! pitcrew: a language server that runs a team of coding agents behind the editor.
//!
//! See ARCHITECTURE.md for the map. Dependencies point one way: `lsp` and `cli` call `team`;
//! `team` calls `agents`, `git` and `model`; `text` and `config` are leaves.

pub mod agents;
pub mod cli;
pub mod config;
pub mod failpoint;
pub mod git;
pub mod lsp;
pub mod model;
pub mod team;
pub mod text;
