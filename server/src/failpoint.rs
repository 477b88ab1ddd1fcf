//! Fault injection for crash tests: `PITCREW_FAILPOINT=<name>` makes the process abort (as a
//! `kill -9` would end it: no destructors, no cleanup) when it reaches the point `<name>`.
//!
//! Tests use it to stop pitcrew at an exact moment that no timing could hit reliably, such as
//! between two file writes of an apply. Unset, a failpoint costs one environment lookup.

/// Aborts the process here when `PITCREW_FAILPOINT` names `name`.
pub fn hit(name: &str) {
    if std::env::var_os("PITCREW_FAILPOINT").is_some_and(|set| set == name) {
        tracing::error!("failpoint {name}: aborting");
        std::process::abort();
    }
}
