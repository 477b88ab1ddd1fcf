//! pitcrew against a real model server: llama.cpp's `llama-server` (built by
//! `tests/llama/setup`) serving SmolLM2-135M-Instruct with a ChatML template that renders tools,
//! as a user runs a small local model. `pitcrew doctor` must name the model the server really
//! loaded, the context it really gives, and how the model calls tools; a one-task `pitcrew run`
//! must end within the early-stop bound with a reason the user can act on, or do the task. What
//! this model does is recorded in docs/real-models.md.

use std::time::Duration;

use pitcrew_tests::llama::{LlamaServer, MODEL_FILE};
use pitcrew_tests::team::TeamScenario;
use serde_json::Value;

/// The server's context (`--ctx-size`, one slot): SmolLM2's own 8,192 tokens.
const CONTEXT: u32 = 8192;

/// A repository whose pitcrew.toml points every role at `server` under a name of the user's
/// choosing (not the file the server loaded), with `window` as its context_window if given.
fn scenario(server: &LlamaServer, window: Option<u32>) -> TeamScenario {
    let scenario = TeamScenario::new(
        &[
            ("check.sh", "#!/bin/sh\nexit 0\n"),
            ("README.md", "# greet\n"),
        ],
        Vec::new(),
        "",
        "test = \"sh check.sh\"",
    );
    let toml = std::fs::read_to_string(scenario.path().join("pitcrew.toml")).unwrap();
    let rest = toml.split_once("\n\n").map(|(_, rest)| rest).unwrap_or("");
    scenario.repo.write(
        "pitcrew.toml",
        &format!(
            "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"local-model\"\n\
             {}max_tokens = 512\nrequest_timeout_s = 120\n\n{rest}",
            server.base_url(),
            window.map_or(String::new(), |w| format!("context_window = {w}\n")),
        ),
    );
    scenario.repo.commit_all("the local model");
    scenario
}

#[test]
fn doctor_names_the_model_llama_server_loaded_its_context_and_its_tool_calls() {
    let server = LlamaServer::start(CONTEXT);
    // No context_window configured: the doctor holds the default against the server's.
    let scenario = scenario(&server, None);
    let output = scenario
        .command(&["doctor", "--json"])
        .output()
        .expect("doctor");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("doctor --json: {err}\n{stdout}\n{}", server.log()));
    let check = &report["checks"][0];
    assert_eq!(check["error"], Value::Null, "{report:#}\n{}", server.log());
    // llama.cpp names the model by the path it was loaded from.
    let served_by = check["served_by"].as_str().unwrap_or_default().to_owned();
    assert!(served_by.ends_with(&format!("/{MODEL_FILE}")), "{report:#}");
    assert_eq!(check["context_window"], 32_768, "the default: {report:#}");
    assert_eq!(
        check["server_window"], CONTEXT,
        "llama.cpp's /props: {report:#}"
    );
    assert_eq!(check["caching_reported"], true, "{report:#}");
    // Greedy sampling: this model repeats its tools section as text, every time
    // (docs/real-models.md).
    assert_eq!(check["tool_calls"], "none", "{report:#}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("did not call the probe's tool") && problems.contains("--jinja"),
        "{problems}"
    );
    let warnings = report["warnings"].to_string();
    for expected in [
        format!("is configured as `local-model`, but the server answered as `{served_by}`"),
        format!(
            "the server gives a request {CONTEXT} tokens of context, less than the configured \
             context_window of 32768: set context_window = {CONTEXT}"
        ),
    ] {
        assert!(warnings.contains(&expected), "{expected:?} in {warnings}");
    }
    // The same in words, as the user reads it.
    let output = scenario.command(&["doctor"]).output().expect("doctor");
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in [
        format!("the server answered as `{served_by}`, not the configured model"),
        format!("context window 32768 tokens (the server gives {CONTEXT})"),
        "tool calls: NONE".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
}

#[test]
fn a_one_task_run_against_a_small_local_model_ends_promptly_with_the_reason() {
    let server = LlamaServer::start(CONTEXT);
    let scenario = scenario(&server, Some(CONTEXT));
    let outcome = scenario.run(
        "Create the file hello.txt containing the single line: hello",
        &["--yes"],
    );
    let journal = scenario.journal();
    let calls: Vec<&Value> = journal
        .iter()
        .filter(|e| e["event"] == "model_call")
        .collect();
    let input_tokens: u64 = calls
        .iter()
        .filter_map(|e| e["input_tokens"].as_u64())
        .sum();
    let context = format!(
        "{}\n{} model calls, {input_tokens} input tokens\n{}",
        outcome.all(),
        calls.len(),
        server.log()
    );
    eprintln!("{context}");
    if outcome.code == Some(0) {
        // The model managed: the task is done and applied.
        assert_eq!(scenario.repo.read("hello.txt").trim(), "hello", "{context}");
    } else {
        // It did not: the run says why, soon, and spends little.
        let plan = scenario.plan();
        let said = format!(
            "{}\n{}",
            plan["escalation"]["question"].as_str().unwrap_or_default(),
            outcome.all()
        );
        // One of the early stops, with its cause and the fix.
        assert!(
            said.contains("the planner could not plan: the model local-model")
                && said.contains("turns in a row"),
            "not an early stop:\n{said}\n{context}"
        );
        assert!(
            said.contains("pitcrew doctor") && said.contains("--jinja"),
            "no fix named:\n{said}\n{context}"
        );
    }
    assert!(
        calls.len() <= 12,
        "{} model calls: not bounded by the early stop\n{context}",
        calls.len()
    );
    assert!(
        input_tokens <= 60_000,
        "{input_tokens} input tokens: not bounded\n{context}"
    );
    assert!(
        outcome.elapsed < Duration::from_secs(300),
        "took {:?}\n{context}",
        outcome.elapsed
    );
}
