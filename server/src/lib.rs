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

/// What every way out of pitcrew does last: ends every process started on an agent's behalf
/// (and all they started) and unlocks the task worktrees this process held. Plans stay as they
/// are on disk, so the next start resumes them.
pub fn shutdown() {
    agents::supervisor::terminate_all();
    git::worktree::release_process_locks();
}
