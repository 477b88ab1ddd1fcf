//! The protocol layer: LSP in, pitcrew out. The only module that knows LSP types.
//!
//! Thin by design: handlers convert, consult the state, and spawn anything slow.

mod capabilities;
pub mod ext;
mod findings;
mod from_proto;
mod handlers;
mod notify;
mod server;
mod state;
mod team;
mod to_proto;
pub mod transport;

pub use server::serve_stdio;
