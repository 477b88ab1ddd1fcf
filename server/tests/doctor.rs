//! `pitcrew doctor` against the fake model: configuration sources, models per role, and one real
//! completion per model, with retries honoured, failures named, and keys kept out of sight.

use std::path::Path;
use std::time::{Duration, Instant};

use pitcrew::model::fake::{Entry, FakeModel, Fault, Script};
use serde_json::Value;

const KEY: &str = "sk-doctor-test-4f1c2a9e";

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `pitcrew doctor` in `workspace`, with the test key in `PITCREW_DOCTOR_KEY`.
async fn doctor(workspace: &Path, args: &[&str]) -> Outcome {
    let home = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .arg("doctor")
        .args(args)
        .current_dir(workspace)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("PITCREW_DOCTOR_KEY", KEY)
        .env("PITCREW_LOG", "debug")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .await
        .unwrap();
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn workspace(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join("pitcrew.toml"), config).unwrap();
    dir
}

/// A model that does what the doctor's probe asks: it calls the tool.
fn ok_entry() -> Entry {
    Entry {
        tool_calls: vec![pitcrew::model::fake::ScriptedCall {
            name: "report_health".into(),
            arguments: serde_json::json!({"word": "ok"}),
        }],
        ..Entry::default()
    }
}

fn script(responses: Vec<Entry>) -> Script {
    Script {
        responses,
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_setup_reports_sources_roles_and_a_real_completion_per_model() {
    let local = FakeModel::start(script(vec![ok_entry()])).await.unwrap();
    let cloud = FakeModel::start(script(vec![ok_entry()])).await.unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"qwen-local\"\n\
         [models.strong]\nprovider = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-test\"\napi_key_env = \"PITCREW_DOCTOR_KEY\"\n\
         [roles]\nplanner = \"strong\"\nreviewer = \"strong\"\n",
        local.openai_base_url(),
        cloud.url()
    ));
    let nested = dir.path().join("src/deep");
    std::fs::create_dir_all(&nested).unwrap();

    let outcome = doctor(&nested, &["--json"]).await;
    assert_eq!(
        outcome.code,
        Some(0),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let report: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(report["workspace"], dir.path().display().to_string());
    assert_eq!(report["sources"][1]["kind"], "workspace_file");
    assert_eq!(report["sources"][1]["status"], "loaded");
    assert_eq!(report["roles"]["planner"], "strong");
    assert_eq!(report["roles"]["implementer"], "default");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert!(
        checks.iter().all(|c| c["ok"] == true && c["attempts"] == 1),
        "{checks:?}"
    );
    assert_eq!(report["problems"], serde_json::json!([]));

    // The key went in Anthropic's header, and the local model got none.
    let cloud_requests = cloud.requests();
    assert_eq!(cloud_requests[0].headers["x-api-key"], KEY);
    assert!(!local.requests()[0].headers.contains_key("authorization"));
    // And it appears nowhere in what the doctor printed or logged.
    assert!(!outcome.stdout.contains(KEY));
    assert!(!outcome.stderr.contains(KEY));

    // The human-readable report says the same.
    local.set_script(script(vec![ok_entry()]));
    cloud.set_script(script(vec![ok_entry()]));
    let outcome = doctor(dir.path(), &[]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stdout);
    assert!(
        outcome
            .stdout
            .contains("key from $PITCREW_DOCTOR_KEY (set)"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("strong       answered in")
            && outcome.stdout.contains("tool calls: native"),
        "{}",
        outcome.stdout
    );
    assert!(!outcome.stdout.contains(KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_twice_with_retry_after_then_fine_passes() {
    let limited = Entry {
        times: Some(2),
        fault: Some(Fault::RateLimit {
            retry_after: Some("1".into()),
            retry_after_ms: None,
        }),
        ..Entry::default()
    };
    let fake = FakeModel::start(script(vec![limited, ok_entry()]))
        .await
        .unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key_env = \"PITCREW_DOCTOR_KEY\"\n",
        fake.openai_base_url()
    ));
    let outcome = doctor(dir.path(), &["--json"]).await;
    assert_eq!(
        outcome.code,
        Some(0),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    for pair in requests.windows(2) {
        let gap = pair[1].at_ms - pair[0].at_ms;
        assert!(gap >= 1000, "retry-after: 1 not honoured: {gap} ms apart");
    }
    assert!(
        requests
            .iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {KEY}"))
    );
    let report: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(report["checks"][0]["attempts"], 3);
    assert!(!outcome.stdout.contains(KEY) && !outcome.stderr.contains(KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_always_fails_is_named_with_its_status_in_bounded_time() {
    let broken = Entry {
        repeat: true,
        fault: Some(Fault::Status {
            status: 500,
            retry_after: None,
            retry_after_ms: None,
            message: Some("upstream exploded".into()),
            code: None,
            headers: Default::default(),
        }),
        ..Entry::default()
    };
    let fake = FakeModel::start(script(vec![broken])).await.unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"c\"\nmax_retries = 2\nretry_base_delay_s = 0.2\n",
        fake.url()
    ));
    let outcome = doctor(dir.path(), &[]).await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "{:?}",
        outcome.elapsed
    );
    assert_eq!(fake.requests().len(), 3);
    assert!(outcome.stdout.contains("FAILED"), "{}", outcome.stdout);
    assert!(outcome.stdout.contains("HTTP 500"), "{}", outcome.stdout);
    assert!(
        outcome.stdout.contains("upstream exploded"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("after 3 attempts"),
        "{}",
        outcome.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_default_retries_a_dead_endpoint_still_fails_in_bounded_time() {
    // Nothing listens on this port: connection refused, retried with the default backoff.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\n"
    ));
    let outcome = doctor(dir.path(), &[]).await;
    assert_eq!(outcome.code, Some(1));
    assert!(
        outcome.elapsed < Duration::from_secs(30),
        "{:?}",
        outcome.elapsed
    );
    assert!(
        outcome.stdout.contains("connection failed"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("after 5 attempts"),
        "{}",
        outcome.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_is_named_and_nothing_is_sent() {
    let fake = FakeModel::start(script(vec![ok_entry()])).await.unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key_env = \"PITCREW_UNSET_DOCTOR_KEY\"\n",
        fake.openai_base_url()
    ));
    let outcome = doctor(dir.path(), &[]).await;
    assert_eq!(outcome.code, Some(1));
    assert!(
        outcome
            .stdout
            .contains("$PITCREW_UNSET_DOCTOR_KEY is not set"),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stdout.contains("(NOT SET)"), "{}", outcome.stdout);
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_is_named_by_file_line_and_key() {
    let dir = workspace("[team]\nimplementers = 2\nreview_rouds = 3\n");
    let outcome = doctor(dir.path(), &[]).await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    let expected = format!(
        "{}:3:1: `team.review_rouds`: unknown field `review_rouds`",
        dir.path().join("pitcrew.toml").display()
    );
    assert!(outcome.stdout.contains(&expected), "{}", outcome.stdout);
    assert!(outcome.stdout.contains("invalid"), "{}", outcome.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_any_model_the_doctor_says_how_to_add_one() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = doctor(dir.path(), &[]).await;
    assert_eq!(outcome.code, Some(1));
    assert!(
        outcome
            .stdout
            .contains("no models configured: add a [models.default] table"),
        "{}",
        outcome.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_echoed_by_a_failing_provider_never_reaches_the_logs() {
    let echo = Entry {
        fault: Some(Fault::Status {
            status: 503,
            retry_after: None,
            retry_after_ms: Some(10),
            message: Some(format!("overloaded; your key {KEY} is fine")),
            code: None,
            headers: Default::default(),
        }),
        ..Entry::default()
    };
    let fake = FakeModel::start(script(vec![echo, ok_entry()]))
        .await
        .unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"m\"\napi_key_env = \"PITCREW_DOCTOR_KEY\"\n",
        fake.openai_base_url()
    ));
    let outcome = doctor(dir.path(), &[]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stdout);
    // The retry was logged, with the provider's message, and without the key.
    assert!(
        outcome
            .stderr
            .contains("your key [redacted] is fine [asked to retry after 10 ms]; retrying"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(KEY));
    assert!(!outcome.stdout.contains(KEY));
}

/// Runs `pitcrew doctor --json` with `home` as HOME, and returns its report.
fn doctor_json_with_home(workspace: &Path, home: &Path) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .args(["doctor", "--json"])
        .current_dir(workspace)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn doctor_proves_the_sandbox_with_a_probe_and_says_when_it_is_off() {
    let dir = workspace("");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/id_rsa"), "secret").unwrap();
    let report = doctor_json_with_home(dir.path(), home.path());
    let sandbox = &report["sandbox"];
    assert_eq!(sandbox["confined"], true, "{sandbox:#}");
    assert!(
        sandbox["runner"]
            .as_str()
            .unwrap()
            .starts_with("bubblewrap"),
        "{sandbox:#}"
    );
    let facts = sandbox["facts"].to_string();
    for fact in [
        "writes its worktree",
        "writes nothing outside it",
        "sees no secrets in the home directory",
        "sees only its own processes",
        "has no network",
    ] {
        assert!(facts.contains(fact), "{fact}: {facts}");
    }

    // Off, by the user's own choice: said, and not a failure of the sandbox.
    std::fs::create_dir_all(home.path().join("config/pitcrew")).unwrap();
    std::fs::write(
        home.path().join("config/pitcrew/config.toml"),
        "[sandbox]\nmode = \"off\"\n",
    )
    .unwrap();
    let report = doctor_json_with_home(dir.path(), home.path());
    assert_eq!(report["sandbox"]["confined"], false);
    assert!(
        report["sandbox"]["runner"]
            .as_str()
            .unwrap()
            .contains("the sandbox is off"),
        "{report:#}"
    );
    assert!(
        !report["problems"].to_string().contains("sandbox"),
        "{report:#}"
    );

    // The repository's own pitcrew.toml may not turn it off.
    let hostile = workspace("[sandbox]\nmode = \"off\"\n");
    let fresh_home = tempfile::tempdir().unwrap();
    let report = doctor_json_with_home(hostile.path(), fresh_home.path());
    assert!(
        report["problems"]
            .to_string()
            .contains("only your own configuration may set it"),
        "{report:#}"
    );
    assert_eq!(report["sandbox"]["confined"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_tells_native_text_and_absent_tool_calls_and_who_answered() {
    let as_text = Entry {
        text_calls: Some(pitcrew::model::fake::TextCalls::Hermes),
        served_as: Some("smollm2-135m-instruct".into()),
        repeat: true,
        ..ok_entry()
    };
    let no_calls = Entry {
        text: Some("ok".into()),
        served_as: Some("smollm2-135m-instruct".into()),
        repeat: true,
        ..Entry::default()
    };
    let native = FakeModel::start(script(vec![Entry {
        repeat: true,
        ..ok_entry()
    }]))
    .await
    .unwrap();
    let texting = FakeModel::start(script(vec![as_text])).await.unwrap();
    let silent = FakeModel::start(script(vec![no_calls])).await.unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"native\"\n\
         [models.texting]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"qwen2.5-coder\"\n\
         [models.silent]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"local\"\ncontext_window = 8192\n",
        native.openai_base_url(),
        texting.openai_base_url(),
        silent.openai_base_url(),
    ));
    let outcome = doctor(dir.path(), &["--json"]).await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    let report: Value = serde_json::from_str(&outcome.stdout).unwrap();
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(check("default")["tool_calls"], "native");
    assert_eq!(check("default")["caching_reported"], true);
    assert_eq!(
        check("texting")["tool_calls"],
        "recovered from text (hermes)"
    );
    assert_eq!(check("texting")["served_by"], "smollm2-135m-instruct");
    assert_eq!(
        check("texting")["context_window"],
        32_768,
        "qwen2.5's window"
    );
    assert_eq!(check("silent")["tool_calls"], "none");
    assert_eq!(check("silent")["context_window"], 8192);
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("model `silent` (the server answered as smollm2-135m-instruct) did not call the probe's tool")
            && problems.contains("--jinja"),
        "{problems}"
    );
    assert!(!problems.contains("texting"), "{problems}");
    // The same in words.
    let outcome = doctor(dir.path(), &[]).await;
    assert!(
        outcome
            .stdout
            .contains("tool calls: recovered from text (hermes)")
            && outcome
                .stdout
                .contains("the server answered as `smollm2-135m-instruct`"),
        "{}",
        outcome.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_a_local_server_really_loaded_is_named_from_its_model_list() {
    // llama.cpp answers every request under the name the request gave; only its model list
    // says what it loaded. A hosted server that lists many models, not the configured one, is
    // named too; one that lists the configured model says nothing.
    let serving = |serves: &[&str]| Script {
        defaults: pitcrew::model::fake::Defaults {
            serves: serves.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        responses: vec![Entry {
            repeat: true,
            ..ok_entry()
        }],
    };
    let llama = FakeModel::start(serving(&["SmolLM2-135M-Instruct.Q4_1.gguf"]))
        .await
        .unwrap();
    let hosted = FakeModel::start(serving(&["gpt-4o", "gpt-4.1", "o3"]))
        .await
        .unwrap();
    let ollama = FakeModel::start(serving(&["llama3.2:latest", "qwen2.5-coder:7b"]))
        .await
        .unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"qwen2.5-coder-7b\"\n\
         [models.hosted]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"gpt-5\"\n\
         [models.ollama]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"llama3.2\"\n",
        llama.openai_base_url(),
        hosted.openai_base_url(),
        ollama.openai_base_url(),
    ));
    let outcome = doctor(dir.path(), &["--json"]).await;
    let report: Value = serde_json::from_str(&outcome.stdout).unwrap();
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        check("default")["served_by"],
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "{report:#}"
    );
    assert_eq!(check("hosted")["served_by"], Value::Null, "{report:#}");
    assert_eq!(
        check("hosted")["unlisted_among"],
        serde_json::json!(["gpt-4o", "gpt-4.1", "o3"])
    );
    assert_eq!(check("ollama")["served_by"], Value::Null, "{report:#}");
    assert_eq!(check("ollama")["unlisted_among"], serde_json::json!([]));
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("model `default` is configured as `qwen2.5-coder-7b`, but the server answered as `SmolLM2-135M-Instruct.Q4_1.gguf`"),
        "{warnings}"
    );
    assert!(
        warnings.contains("model `hosted`: the server does not list the configured model"),
        "{warnings}"
    );
    assert!(!warnings.contains("ollama"), "{warnings}");
    let outcome = doctor(dir.path(), &[]).await;
    for expected in [
        "the server answered as `SmolLM2-135M-Instruct.Q4_1.gguf`, not the configured model",
        "the server does not list the configured model; it lists gpt-4o, gpt-4.1, o3",
        "Warnings\n  - model `default` is configured as",
    ] {
        assert!(
            outcome.stdout.contains(expected),
            "{expected:?} in\n{}",
            outcome.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_probe_call_and_a_smaller_server_window_are_named() {
    // A native call with arguments that do not fit the tool; a llama.cpp server whose
    // --ctx-size is below the configured window.
    let malformed = Entry {
        tool_calls: vec![pitcrew::model::fake::ScriptedCall {
            name: "report_health".into(),
            arguments: serde_json::json!({"words": 3}),
        }],
        repeat: true,
        ..Entry::default()
    };
    let small = Script {
        defaults: pitcrew::model::fake::Defaults {
            context_window: Some(4096),
            ..Default::default()
        },
        responses: vec![Entry {
            repeat: true,
            ..ok_entry()
        }],
    };
    let bad = FakeModel::start(script(vec![malformed])).await.unwrap();
    let local = FakeModel::start(small).await.unwrap();
    let dir = workspace(&format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"m\"\n\
         [models.local]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"l\"\ncontext_window = 16384\n",
        bad.openai_base_url(),
        local.openai_base_url(),
    ));
    let outcome = doctor(dir.path(), &["--json"]).await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    let report: Value = serde_json::from_str(&outcome.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let default = checks.iter().find(|c| c["model"] == "default").unwrap();
    assert_eq!(default["tool_calls"], "unusable");
    assert_eq!(
        default["tool_call_error"],
        "`report_health`: `word` is required"
    );
    let local = checks.iter().find(|c| c["model"] == "local").unwrap();
    assert_eq!(local["server_window"], 4096);
    let problems = report["problems"].to_string();
    assert!(
        problems
            .contains("model `default` called the probe's tool with a call that does not fit it"),
        "{problems}"
    );
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("model `local`: the server gives a request 4096 tokens of context, less than the configured context_window of 16384: set context_window = 4096"),
        "{warnings}"
    );
    let outcome = doctor(dir.path(), &[]).await;
    assert!(
        outcome.stdout.contains("tool calls: UNUSABLE")
            && outcome
                .stdout
                .contains("context window 16384 tokens (the server gives 4096)"),
        "{}",
        outcome.stdout
    );
}
