//! The roles of the team and what they work with: sandboxed file tools, configured checks, and
//! the tool loop that drives a model through a task.

pub mod checks;
pub mod roles;
pub mod runtime;
pub mod supervisor;
pub mod tools;
pub mod workspace;

use crate::config::Config;

/// Environment variables that hold model keys; they are removed from every check's environment.
pub fn secret_variables(config: &Config) -> Vec<String> {
    let mut variables: Vec<String> = config
        .models
        .values()
        .filter_map(|m| m.api_key_env.clone())
        .chain(["OPENAI_API_KEY".to_owned(), "ANTHROPIC_API_KEY".to_owned()])
        .collect();
    variables.sort();
    variables.dedup();
    variables
}
