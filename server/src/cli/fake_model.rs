//! `pitcrew fake-model`: the fake model server as a process, for editor tests and demos.
//!
//! Prints its base URL as the first line of stdout (`http://127.0.0.1:<port>`; OpenAI clients
//! add `/v1`), then serves until interrupted.

use std::path::Path;

use super::output;
use crate::model::fake::{FakeModel, Script};

pub async fn run(script: Option<&Path>, port: u16) -> i32 {
    let script = match script {
        Some(path) => match Script::load(path) {
            Ok(script) => script,
            Err(err) => {
                output::error(&format!("pitcrew fake-model: {err}"));
                return 2;
            }
        },
        None => Script::default(),
    };
    let fake = match FakeModel::start_on(script, port).await {
        Ok(fake) => fake,
        Err(err) => {
            output::error(&format!(
                "pitcrew fake-model: cannot listen on port {port}: {err}"
            ));
            return 1;
        }
    };
    output::line(&fake.url());
    tracing::info!("fake model listening on {}", fake.url());
    let _ = tokio::signal::ctrl_c().await;
    0
}
