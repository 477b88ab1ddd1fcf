//! The roles of the team and what they work with: sandboxed file tools, configured checks, and
//! the tool loop that drives a model through a task.

pub mod checks;
pub mod context;
pub mod redact;
pub mod roles;
pub mod runtime;
pub mod sandbox;
pub mod supervisor;
pub mod tools;
pub mod workspace;
