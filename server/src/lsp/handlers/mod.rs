//! One file per LSP method. Handlers are short and never wait on the client, the model or git:
//! anything slow is spawned and reports back through notifications.

pub mod code_action;
pub mod code_action_resolve;
pub mod config;
pub mod did_change;
pub mod did_change_configuration;
pub mod did_change_watched_files;
pub mod did_close;
pub mod did_open;
pub mod did_save;
pub mod document_text;
pub mod execute_command;
pub mod hover;
pub mod initialize;
pub mod initialized;
pub mod plan;
pub mod progress_cancel;
pub mod task;
