//! Configuration through the editor: files, initializationOptions and settings, merged in
//! order; a bad source is reported precisely and the last good configuration stays in force.

use std::time::{Duration, Instant};

use pitcrew_tests::{ClientBehaviour, TestServer, Workspace};
use serde_json::{Value, json};

/// Polls `pitcrew/debug/config` until `ready` holds.
fn wait_config(server: &mut TestServer, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let result = server.request("pitcrew/debug/config", json!(null)).unwrap();
        if ready(&result) {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "configuration never became ready: {result:#}"
        );
        server.pump_for(Duration::from_millis(20));
    }
}

fn save(server: &mut TestServer, relative: &str) {
    let uri = server.uri(relative);
    server.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
}

#[test]
fn sources_merge_in_order_user_workspace_init_options_settings() {
    let workspace = Workspace::new();
    workspace.write(
        "pitcrew.toml",
        "[team]\nimplementers = 3\n[checks]\ntest = \"cargo test\"\n",
    );
    let mut server = TestServer::builder()
        .root(workspace.path())
        .user_config("[team]\nimplementers = 1\nreview_rounds = 7\n")
        .initialization_options(json!({"team": {"review_rounds": 4}}))
        .start();
    let result = wait_config(&mut server, |r| r["config"]["team"]["implementers"] == 3);
    assert_eq!(
        result["config"]["team"]["review_rounds"], 4,
        "initializationOptions beat the files"
    );
    assert_eq!(result["config"]["checks"]["test"]["command"], "cargo test");
    let statuses: Vec<(Value, Value)> = result["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].clone(), s["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (json!("user_file"), json!("loaded")),
            (json!("workspace_file"), json!("loaded")),
            (json!("initialization_options"), json!("loaded")),
        ]
    );

    // Settings pushed later override everything, VS Code style (wrapped in a section).
    server.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"pitcrew": {"team": {"implementers": 8}}}}),
    );
    let result = wait_config(&mut server, |r| r["config"]["team"]["implementers"] == 8);
    assert_eq!(result["config"]["team"]["review_rounds"], 4);
}

#[test]
fn a_bad_file_is_reported_with_file_line_and_key_and_the_last_good_config_stays() {
    let workspace = Workspace::new();
    workspace.write("pitcrew.toml", "[team]\nimplementers = 3\n");
    let mut server = TestServer::builder().root(workspace.path()).start();
    wait_config(&mut server, |r| r["config"]["team"]["implementers"] == 3);

    workspace.write(
        "pitcrew.toml",
        "[team]\nimplementers = 5\nbudget_tokns = 10\n",
    );
    save(&mut server, "pitcrew.toml");
    let message = server.wait_for_notification("window/showMessage", |p| p["type"] == 1);
    let text = message["message"].as_str().unwrap();
    let file = workspace.path().join("pitcrew.toml");
    assert!(
        text.contains(&format!(
            "{}:3:1: `team.budget_tokns`: unknown field",
            file.display()
        )),
        "{text}"
    );
    assert!(text.contains("still using the last good one"), "{text}");
    let result = wait_config(&mut server, |r| !r["errors"].as_array().unwrap().is_empty());
    assert_eq!(
        result["config"]["team"]["implementers"], 3,
        "the last good configuration"
    );

    // A wrong type, then a syntax error: each named precisely.
    workspace.write("pitcrew.toml", "[team]\nimplementers = \"many\"\n");
    save(&mut server, "pitcrew.toml");
    let message = server.wait_for_notification("window/showMessage", |p| {
        p["message"].as_str().unwrap().contains("team.implementers")
    });
    assert!(
        message["message"].as_str().unwrap().contains(":2:16:"),
        "{message}"
    );
    workspace.write("pitcrew.toml", "[team\nimplementers = 4\n");
    save(&mut server, "pitcrew.toml");
    let message = server.wait_for_notification("window/showMessage", |p| {
        p["message"].as_str().unwrap().contains("invalid TOML")
    });
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .contains("pitcrew.toml:1:"),
        "{message}"
    );

    // Fixed: the new values apply and the errors clear.
    workspace.write("pitcrew.toml", "[team]\nimplementers = 5\n");
    save(&mut server, "pitcrew.toml");
    let result = wait_config(&mut server, |r| r["config"]["team"]["implementers"] == 5);
    assert_eq!(result["errors"], json!([]));
}

#[test]
fn bad_editor_settings_name_the_key_and_change_nothing() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder().root(workspace.path()).start();
    wait_config(&mut server, |r| r["sources"].is_array());
    server.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"models": {"fast": {"provider": "gemini", "model": "x"}}}}),
    );
    let message = server.wait_for_notification("window/showMessage", |p| p["type"] == 1);
    let text = message["message"].as_str().unwrap();
    assert!(
        text.contains("editor settings: `models.fast.provider`: unknown variant `gemini`"),
        "{text}"
    );
    let result = server.request("pitcrew/debug/config", json!(null)).unwrap();
    assert_eq!(result["config"]["models"], json!({}));
}

#[test]
fn a_pull_model_client_is_asked_with_workspace_configuration() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder()
        .root(workspace.path())
        .behaviour(ClientBehaviour {
            configuration: json!({"team": {"implementers": 6}}),
            ..ClientBehaviour::default()
        })
        .start();
    server.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": null}),
    );
    let request = server.wait_for_server_request("workspace/configuration");
    assert_eq!(request["params"]["items"][0]["section"], "pitcrew");
    wait_config(&mut server, |r| r["config"]["team"]["implementers"] == 6);
}
