//! The protocol layer: LSP in, pitcrew out. The only module that knows LSP types.
//!
//! Thin by design: handlers convert, consult the state, and spawn anything slow.

mod capabilities;
pub mod ext;
mod from_proto;
mod handlers;
mod notify;
mod server;
mod state;
pub mod transport;

pub use server::serve_stdio;
