//! The model layer against the fake model server over real HTTP: every fault, in both
//! protocols, streaming and not. Each test asserts the attempts made, the waits honoured, the
//! time bound kept, and that nothing half-received is ever returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew::config::{ModelConfig, Provider, Role};
use pitcrew::model::fake::{Entry, FakeModel, Fault, Matcher, Quirk, Script, ScriptedCall};
use pitcrew::model::{
    CallContext, CallError, ChatRequest, Completion, Failure, Message, ModelClient, Secret,
    StopReason, TimeoutPhase, ToolSpec,
};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const PROTOCOLS: [Provider; 2] = [Provider::Openai, Provider::Anthropic];

fn config(provider: Provider, fake: &FakeModel, stream: bool) -> ModelConfig {
    ModelConfig {
        name: "test".into(),
        provider,
        base_url: match provider {
            Provider::Openai => fake.openai_base_url(),
            Provider::Anthropic => fake.url(),
        },
        model: "fake-model-1".into(),
        api_key_env: None,
        max_concurrent: 8,
        max_tokens: 256,
        context_window: 32_768,
        prompt_caching: true,
        stream,
        max_retries: 3,
        retry_base_delay_s: 0.01,
        retry_after_cap_s: 5.0,
        connect_timeout_s: 2.0,
        first_byte_timeout_s: 2.0,
        idle_timeout_s: 0.5,
        request_timeout_s: 8.0,
        price: None,
    }
}

fn client(config: ModelConfig) -> ModelClient {
    client_with_key(config, None)
}

fn client_with_key(config: ModelConfig, key: Option<&str>) -> ModelClient {
    let limit = config.max_concurrent as usize;
    ModelClient::with_key(
        config,
        Arc::new(Semaphore::new(limit)),
        key.map(Secret::new),
    )
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        system: "You are the pitcrew implementer.".into(),
        messages: vec![Message::user("Task id: t1\nWrite the file.")],
        tools: vec![
            ToolSpec {
                name: "write_file".into(),
                description: "Write a file".into(),
                input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}),
            },
            ToolSpec {
                name: "finish".into(),
                description: "Finish".into(),
                input_schema: json!({"type": "object", "properties": {"summary": {"type": "string"}}}),
            },
        ],
        max_tokens: None,
    }
}

fn finish_entry() -> Entry {
    Entry {
        text: Some("All done here.".into()),
        tool_calls: vec![ScriptedCall {
            name: "finish".into(),
            arguments: json!({"summary": "wrote it"}),
        }],
        ..Entry::default()
    }
}

fn fault(fault: Fault) -> Entry {
    Entry {
        fault: Some(fault),
        ..finish_entry()
    }
}

fn repeat(entry: Entry) -> Entry {
    Entry {
        repeat: true,
        ..entry
    }
}

/// A script whose answers report fixed usage (100 in, 20 out), for tests of the wire formats.
fn script(responses: Vec<Entry>) -> Script {
    Script {
        responses,
        defaults: pitcrew::model::fake::Defaults {
            usage: Some(pitcrew::model::fake::UsageSpec {
                input_tokens: 100,
                output_tokens: 20,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            }),
            ..Default::default()
        },
    }
}

/// Runs one call against a fresh fake server and returns the outcome, the requests the server
/// saw, and how long the call took.
async fn run(
    provider: Provider,
    stream: bool,
    entries: Vec<Entry>,
    adjust: impl FnOnce(&mut ModelConfig),
) -> (
    Result<Completion, CallError>,
    Vec<pitcrew::model::fake::RecordedRequest>,
    Duration,
) {
    let fake = FakeModel::start(script(entries)).await.unwrap();
    let mut config = config(provider, &fake, stream);
    adjust(&mut config);
    let client = client(config);
    let started = Instant::now();
    let result = client
        .complete(
            &request(),
            CallContext::new(Role::Implementer),
            &CancellationToken::new(),
        )
        .await;
    (result, fake.requests(), started.elapsed())
}

fn assert_finished(result: &Result<Completion, CallError>) {
    let completion = result.as_ref().expect("the call succeeds");
    assert_eq!(completion.tool_calls.len(), 1, "{completion:?}");
    assert_eq!(completion.tool_calls[0].name, "finish");
    assert_eq!(completion.tool_calls[0].arguments["summary"], "wrote it");
    assert_eq!(completion.text, "All done here.");
    assert_eq!(completion.stop, StopReason::ToolUse);
}

fn failure(result: &Result<Completion, CallError>) -> &CallError {
    result.as_ref().expect_err("the call fails")
}

#[tokio::test]
async fn plain_success_in_every_mode() {
    for provider in PROTOCOLS {
        for stream in [false, true] {
            let (result, requests, _) = run(provider, stream, vec![finish_entry()], |_| {}).await;
            assert_finished(&result);
            let completion = result.unwrap();
            assert_eq!(completion.attempts, 1);
            assert_eq!(completion.usage.input_tokens, 100);
            assert_eq!(completion.usage.output_tokens, 20);
            assert!(!completion.usage.estimated);
            assert_eq!(requests.len(), 1);
            assert_eq!(requests[0].stream, stream);
            assert_eq!(requests[0].role.as_deref(), Some("implementer"));
            assert_eq!(requests[0].task.as_deref(), Some("t1"));
        }
    }
}

#[tokio::test]
async fn rate_limits_honour_retry_after_ms_and_seconds() {
    for provider in PROTOCOLS {
        let (result, requests, _) = run(
            provider,
            true,
            vec![
                fault(Fault::RateLimit {
                    retry_after: None,
                    retry_after_ms: Some(300),
                }),
                finish_entry(),
            ],
            |_| {},
        )
        .await;
        assert_finished(&result);
        assert_eq!(result.unwrap().attempts, 2);
        let gap = requests[1].at_ms - requests[0].at_ms;
        assert!(gap >= 300, "{provider:?}: waited only {gap} ms");
    }
    let (result, requests, _) = run(
        Provider::Openai,
        false,
        vec![
            fault(Fault::RateLimit {
                retry_after: Some("1".into()),
                retry_after_ms: None,
            }),
            finish_entry(),
        ],
        |_| {},
    )
    .await;
    assert_finished(&result);
    assert!(requests[1].at_ms - requests[0].at_ms >= 1000);
}

#[tokio::test]
async fn rate_limits_without_retry_after_back_off_and_pass() {
    for provider in PROTOCOLS {
        let (result, requests, _) = run(
            provider,
            false,
            vec![
                fault(Fault::RateLimit {
                    retry_after: None,
                    retry_after_ms: None,
                }),
                fault(Fault::Overloaded),
                finish_entry(),
            ],
            |_| {},
        )
        .await;
        assert_finished(&result);
        assert_eq!(requests.len(), 3);
        assert_eq!(result.unwrap().attempts, 3);
        // The base delay is 10 ms: each retry waited at least that.
        assert!(requests[1].at_ms - requests[0].at_ms >= 10);
        assert!(requests[2].at_ms - requests[1].at_ms >= 10);
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_at_once_and_says_why() {
    for provider in PROTOCOLS {
        let (result, requests, elapsed) = run(
            provider,
            false,
            vec![
                fault(Fault::RateLimit {
                    retry_after: Some("3600".into()),
                    retry_after_ms: None,
                }),
                finish_entry(),
            ],
            |_| {},
        )
        .await;
        let error = failure(&result);
        assert_eq!(requests.len(), 1);
        assert_eq!(error.attempts, 1);
        assert!(elapsed < Duration::from_secs(2));
        let message = error.to_string();
        assert!(
            message.contains("asked to retry after 3600.0 s"),
            "{message}"
        );
        assert!(
            message.contains(
                "not retried: the provider asked to wait 3600 s, more than retry_after_cap_s = 5 s"
            ),
            "{message}"
        );
    }
}

#[tokio::test]
async fn quota_errors_are_tried_once_and_named() {
    for provider in PROTOCOLS {
        let (result, requests, _) =
            run(provider, true, vec![repeat(fault(Fault::Quota))], |_| {}).await;
        let error = failure(&result);
        assert_eq!(requests.len(), 1, "{provider:?}");
        assert!(matches!(error.failure, Failure::Quota { .. }), "{error}");
        assert!(error.to_string().contains("not retried"), "{error}");
    }
}

#[tokio::test]
async fn client_errors_are_tried_once() {
    for provider in PROTOCOLS {
        for status in [400, 401, 403, 404] {
            let (result, requests, _) = run(
                provider,
                false,
                vec![repeat(fault(Fault::Status {
                    status,
                    retry_after: None,
                    retry_after_ms: None,
                    message: Some(format!("scripted {status}")),
                    code: Some("invalid_request_error".into()),
                    headers: Default::default(),
                }))],
                |_| {},
            )
            .await;
            let error = failure(&result);
            assert_eq!(requests.len(), 1, "{provider:?} {status}");
            assert_eq!(error.failure.status(), Some(status));
            assert!(
                error.to_string().contains(&format!("scripted {status}")),
                "{error}"
            );
        }
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_status_and_attempts() {
    for provider in PROTOCOLS {
        let (result, requests, _) = run(
            provider,
            false,
            vec![
                fault(Fault::Status {
                    status: 500,
                    retry_after: None,
                    retry_after_ms: None,
                    message: None,
                    code: None,
                    headers: Default::default(),
                }),
                fault(Fault::Status {
                    status: 503,
                    retry_after: None,
                    retry_after_ms: None,
                    message: None,
                    code: None,
                    headers: Default::default(),
                }),
                finish_entry(),
            ],
            |_| {},
        )
        .await;
        assert_finished(&result);
        assert_eq!(requests.len(), 3);

        let (result, requests, elapsed) = run(
            provider,
            true,
            vec![repeat(fault(Fault::Status {
                status: 500,
                retry_after: None,
                retry_after_ms: None,
                message: Some("the GPU caught fire".into()),
                code: None,
                headers: Default::default(),
            }))],
            |_| {},
        )
        .await;
        let error = failure(&result);
        assert_eq!(requests.len(), 4, "one try and three retries");
        assert_eq!(error.attempts, 4);
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        let message = error.to_string();
        assert!(message.contains("HTTP 500"), "{message}");
        assert!(message.contains("the GPU caught fire"), "{message}");
        assert!(message.contains("after 4 attempts"), "{message}");
    }
}

#[tokio::test]
async fn connection_resets_are_retried() {
    for provider in PROTOCOLS {
        let (result, requests, _) = run(
            provider,
            true,
            vec![fault(Fault::Reset), finish_entry()],
            |_| {},
        )
        .await;
        assert_finished(&result);
        assert_eq!(requests.len(), 2);

        let (result, requests, _) =
            run(provider, true, vec![repeat(fault(Fault::Reset))], |_| {}).await;
        let error = failure(&result);
        assert_eq!(requests.len(), 4);
        assert!(matches!(error.failure, Failure::Connect { .. }), "{error}");
    }
}

#[tokio::test]
async fn a_cut_stream_fails_the_turn_and_its_tool_call_is_never_returned() {
    for provider in PROTOCOLS {
        let cut = Entry {
            tool_calls: vec![ScriptedCall {
                name: "write_file".into(),
                arguments: json!({"path": "CUT.txt", "content": "half a file that must never be written"}),
            }],
            fault: Some(Fault::Cut { after_chunks: 4 }),
            ..Entry::default()
        };
        // Retried: the completion holds only the complete second answer.
        let (result, requests, _) =
            run(provider, true, vec![cut.clone(), finish_entry()], |_| {}).await;
        assert_finished(&result);
        assert_eq!(requests.len(), 2);
        // Not retried: no completion at all, so nothing can be executed.
        let (result, requests, _) = run(provider, true, vec![cut, finish_entry()], |c| {
            c.max_retries = 0
        })
        .await;
        let error = failure(&result);
        assert_eq!(requests.len(), 1);
        assert!(
            matches!(error.failure, Failure::CutStream { .. }),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_stream_that_ends_without_its_terminator_fails_the_turn() {
    for provider in PROTOCOLS {
        // The whole tool call arrives, and the body ends cleanly, but the protocol's terminator
        // never comes: the answer is incomplete and nothing of it is returned. The frames:
        // OpenAI role, call start, two argument pieces | finish, usage, [DONE]; Anthropic
        // message_start, ping, block start, two deltas, block stop | message_delta, message_stop.
        let after_chunks = match provider {
            Provider::Openai => 4,
            Provider::Anthropic => 6,
        };
        let end_early = Entry {
            tool_calls: vec![ScriptedCall {
                name: "write_file".into(),
                arguments: json!({"path": "EARLY.txt", "content": "x"}),
            }],
            fault: Some(Fault::EndEarly { after_chunks }),
            ..Entry::default()
        };
        let (result, requests, _) = run(
            provider,
            true,
            vec![end_early.clone(), finish_entry()],
            |_| {},
        )
        .await;
        assert_finished(&result);
        assert_eq!(requests.len(), 2);
        let (result, _, _) = run(provider, true, vec![end_early], |c| c.max_retries = 0).await;
        let error = failure(&result);
        assert!(
            matches!(error.failure, Failure::CutStream { .. }),
            "{error}"
        );
    }
}

#[tokio::test]
async fn in_band_errors_fail_the_turn() {
    for provider in PROTOCOLS {
        let overloaded = fault(Fault::InBand {
            after_chunks: 2,
            message: Some("Overloaded".into()),
            code: Some("overloaded_error".into()),
        });
        let (result, requests, _) =
            run(provider, true, vec![overloaded, finish_entry()], |_| {}).await;
        assert_finished(&result);
        assert_eq!(requests.len(), 2, "overloaded is worth another try");

        let refused = fault(Fault::InBand {
            after_chunks: 2,
            message: Some("prompt is too long".into()),
            code: Some("invalid_request_error".into()),
        });
        let (result, requests, _) =
            run(provider, true, vec![refused, finish_entry()], |_| {}).await;
        let error = failure(&result);
        assert_eq!(requests.len(), 1);
        assert!(error.to_string().contains("prompt is too long"), "{error}");
    }
    // vLLM's other shape: {"code": .., "message": ..}.
    let vllm = Entry {
        quirks: vec![Quirk::InBandCode],
        ..fault(Fault::InBand {
            after_chunks: 1,
            message: Some("model is loading".into()),
            code: Some("503".into()),
        })
    };
    let (result, requests, _) =
        run(Provider::Openai, true, vec![vllm, finish_entry()], |_| {}).await;
    assert_finished(&result);
    assert_eq!(requests.len(), 2);
}

#[tokio::test]
async fn malformed_json_is_retried() {
    for provider in PROTOCOLS {
        let (result, requests, _) = run(
            provider,
            true,
            vec![fault(Fault::Malformed { after_chunks: 2 }), finish_entry()],
            |_| {},
        )
        .await;
        assert_finished(&result);
        assert_eq!(requests.len(), 2);
    }
}

#[tokio::test]
async fn a_stalled_stream_times_out_on_the_idle_gap() {
    for provider in PROTOCOLS {
        let stall = fault(Fault::Stall {
            after_chunks: 3,
            ms: 5_000,
        });
        let (result, requests, elapsed) =
            run(provider, true, vec![stall.clone(), finish_entry()], |_| {}).await;
        assert_finished(&result);
        assert_eq!(requests.len(), 2);
        assert!(
            requests[0].disconnected,
            "the stalled request was abandoned"
        );
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

        let (result, _, elapsed) = run(provider, true, vec![stall, finish_entry()], |c| {
            c.max_retries = 0
        })
        .await;
        let error = failure(&result);
        assert_eq!(
            error.failure,
            Failure::Timeout {
                phase: TimeoutPhase::Idle,
                after_ms: 500
            }
        );
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }
}

#[tokio::test]
async fn a_slow_first_token_times_out_on_first_byte() {
    for provider in PROTOCOLS {
        let slow = Entry {
            first_token_ms: Some(5_000),
            ..finish_entry()
        };
        let (result, _, elapsed) = run(provider, true, vec![slow], |c| {
            c.max_retries = 0;
            c.first_byte_timeout_s = 0.3;
        })
        .await;
        let error = failure(&result);
        assert!(
            matches!(
                error.failure,
                Failure::Timeout {
                    phase: TimeoutPhase::FirstByte,
                    ..
                }
            ),
            "{error}"
        );
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }
    // Non-streaming: the response itself is late.
    let late = Entry {
        latency_ms: Some(5_000),
        ..finish_entry()
    };
    let (result, _, elapsed) = run(Provider::Openai, false, vec![late], |c| {
        c.max_retries = 0;
        c.first_byte_timeout_s = 0.3;
    })
    .await;
    assert!(matches!(
        failure(&result).failure,
        Failure::Timeout {
            phase: TimeoutPhase::FirstByte,
            ..
        }
    ));
    assert!(elapsed < Duration::from_secs(1));
}

#[tokio::test]
async fn the_whole_call_is_bounded_retries_included() {
    let stall = repeat(fault(Fault::Stall {
        after_chunks: 1,
        ms: 10_000,
    }));
    let (result, requests, elapsed) = run(Provider::Anthropic, true, vec![stall], |c| {
        c.max_retries = 100;
        c.idle_timeout_s = 0.4;
        c.request_timeout_s = 1.5;
    })
    .await;
    let error = failure(&result);
    assert!(requests.len() >= 2);
    assert!(
        elapsed < Duration::from_millis(2000),
        "bounded by request_timeout_s: {elapsed:?}"
    );
    // The last attempt was cut off by the deadline, or no retry fit before it.
    assert!(matches!(error.failure, Failure::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn cancellation_stops_the_request() {
    for provider in PROTOCOLS {
        let fake = FakeModel::start(script(vec![fault(Fault::Stall {
            after_chunks: 1,
            ms: 10_000,
        })]))
        .await
        .unwrap();
        let mut config = config(provider, &fake, true);
        config.idle_timeout_s = 30.0;
        let client = client(config);
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let result = client
            .complete(&request(), CallContext::new(Role::Reviewer), &cancel)
            .await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(failure(&result).failure, Failure::Cancelled);
        // The server sees the client hang up.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !fake.requests()[0].disconnected {
            assert!(
                Instant::now() < deadline,
                "the HTTP request was not stopped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn dropping_the_call_stops_the_request() {
    let fake = FakeModel::start(script(vec![fault(Fault::Stall {
        after_chunks: 1,
        ms: 10_000,
    })]))
    .await
    .unwrap();
    let mut config = config(Provider::Openai, &fake, true);
    config.idle_timeout_s = 30.0;
    let client = client(config);
    let (request, cancel) = (request(), CancellationToken::new());
    let call = client.complete(&request, CallContext::new(Role::Planner), &cancel);
    let dropped = tokio::time::timeout(Duration::from_millis(200), call).await;
    assert!(dropped.is_err(), "still running when dropped");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !fake.requests()[0].disconnected {
        assert!(
            Instant::now() < deadline,
            "the HTTP request outlived its future"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn keys_go_in_the_right_header_and_nowhere_else() {
    let key = "sk-test-0123456789-secret";
    for provider in PROTOCOLS {
        let echo = fault(Fault::Status {
            status: 401,
            retry_after: None,
            retry_after_ms: None,
            message: Some(format!("Incorrect API key provided: {key}")),
            code: Some("invalid_api_key".into()),
            headers: Default::default(),
        });
        let fake = FakeModel::start(script(vec![echo])).await.unwrap();
        let mut config = config(provider, &fake, false);
        config.api_key_env = Some("PITCREW_TEST_KEY".into());
        let client = client_with_key(config, Some(key));
        assert!(!format!("{client:?}").contains(key), "Debug shows the key");
        let result = client
            .complete(
                &request(),
                CallContext::new(Role::Implementer),
                &CancellationToken::new(),
            )
            .await;
        let requests = fake.requests();
        let headers = &requests[0].headers;
        match provider {
            Provider::Openai => {
                assert_eq!(headers["authorization"], format!("Bearer {key}"));
                assert!(!headers.contains_key("x-api-key"));
            }
            Provider::Anthropic => {
                assert_eq!(headers["x-api-key"], key);
                assert_eq!(headers["anthropic-version"], "2023-06-01");
                assert!(!headers.contains_key("authorization"));
            }
        }
        let error = failure(&result);
        let shown = format!(
            "{error} {error:?} {}",
            serde_json::to_string(error).unwrap()
        );
        assert!(!shown.contains(key), "the key leaked: {shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(
            !serde_json::to_string(&requests[0].body)
                .unwrap()
                .contains(key)
        );
    }
}

#[tokio::test]
async fn a_missing_key_fails_before_any_request() {
    let (result, requests, _) = run(Provider::Anthropic, true, vec![finish_entry()], |c| {
        c.api_key_env = Some("PITCREW_SURELY_UNSET_VARIABLE".into());
    })
    .await;
    let error = failure(&result);
    assert!(requests.is_empty());
    assert_eq!(error.attempts, 0);
    assert!(
        error
            .to_string()
            .contains("$PITCREW_SURELY_UNSET_VARIABLE is not set")
    );
}

#[tokio::test]
async fn streaming_quirks_of_real_servers() {
    let quirky = |quirks: Vec<Quirk>| Entry {
        quirks,
        ..finish_entry()
    };
    // Ollama: whole tool calls without index, finish_reason "stop", no usage at all.
    let (result, _, _) = run(
        Provider::Openai,
        true,
        vec![quirky(vec![Quirk::OllamaToolCalls, Quirk::NoUsage])],
        |_| {},
    )
    .await;
    assert_finished(&result);
    let usage = result.unwrap().usage;
    assert!(usage.estimated, "usage estimated when missing");
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    // Usage in a final chunk whose choices are null, and an empty finish_reason.
    let (result, _, _) = run(
        Provider::Openai,
        true,
        vec![quirky(vec![Quirk::ChoicesNull, Quirk::EmptyFinishReason])],
        |_| {},
    )
    .await;
    assert_finished(&result);
    assert!(!result.unwrap().usage.estimated);
    // usage: {} counts as missing.
    let (result, _, _) = run(
        Provider::Openai,
        false,
        vec![quirky(vec![Quirk::EmptyUsage])],
        |_| {},
    )
    .await;
    assert!(result.unwrap().usage.estimated);
}

#[tokio::test]
async fn cost_is_computed_from_the_price_table() {
    let (result, _, _) = run(Provider::Anthropic, true, vec![finish_entry()], |c| {
        c.price = Some(pitcrew::config::Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
        });
    })
    .await;
    let cost = result.unwrap().usage.cost_usd.unwrap();
    // 100 input and 20 output tokens.
    assert!(
        (cost - (100.0 * 3.0 + 20.0 * 15.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
}

#[tokio::test]
async fn concurrent_requests_to_one_endpoint_are_limited() {
    let slow = repeat(Entry {
        latency_ms: Some(150),
        ..finish_entry()
    });
    let fake = FakeModel::start(script(vec![slow])).await.unwrap();
    let mut config = config(Provider::Openai, &fake, true);
    config.max_concurrent = 2;
    let client = Arc::new(client(config));
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .complete(
                        &request(),
                        CallContext::new(Role::Implementer),
                        &CancellationToken::new(),
                    )
                    .await
            })
        })
        .collect();
    for call in calls {
        assert_finished(&call.await.unwrap());
    }
    let mut arrivals: Vec<u64> = fake.requests().iter().map(|r| r.at_ms).collect();
    arrivals.sort();
    // Two at a time, 150 ms each: three waves.
    for window in arrivals.windows(3) {
        assert!(
            window[2] - window[0] >= 140,
            "three requests within one latency: {arrivals:?}"
        );
    }
}

#[tokio::test]
async fn roles_and_tasks_select_script_entries_for_parallel_agents() {
    let for_task = |task: &str, summary: &str| Entry {
        when: Matcher {
            task: Some(task.into()),
            ..Matcher::default()
        },
        tool_calls: vec![ScriptedCall {
            name: "finish".into(),
            arguments: json!({"summary": summary}),
        }],
        ..Entry::default()
    };
    let fake = FakeModel::start(script(vec![for_task("a", "A"), for_task("b", "B")]))
        .await
        .unwrap();
    let client = client(config(Provider::Openai, &fake, true));
    let mut request_b = request();
    request_b.messages = vec![Message::user("Task id: b\nsecond")];
    let completion = client
        .complete(
            &request_b,
            CallContext::new(Role::Implementer),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(completion.tool_calls[0].arguments["summary"], "B");
    assert_eq!(fake.unused_entries(), vec![0]);
}

#[tokio::test]
async fn redirects_are_not_followed_and_say_where_they_pointed() {
    for provider in PROTOCOLS {
        let redirect = fault(Fault::Status {
            status: 307,
            retry_after: None,
            retry_after_ms: None,
            message: None,
            code: None,
            headers: [(
                "location".to_owned(),
                "https://elsewhere.example/v1".to_owned(),
            )]
            .into(),
        });
        let (result, requests, _) = run(provider, false, vec![redirect, finish_entry()], |c| {
            c.api_key_env = None;
        })
        .await;
        let error = failure(&result);
        assert_eq!(requests.len(), 1);
        let message = error.to_string();
        assert!(
            message.contains("redirects to https://elsewhere.example/v1"),
            "{message}"
        );
        assert!(
            message.contains("not retried: a redirect is not followed"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn sse_split_at_any_byte_with_crlf_and_comments_still_parses() {
    for provider in PROTOCOLS {
        for quirks in [
            vec![Quirk::SplitChunks],
            vec![Quirk::CrlfAndComments, Quirk::SplitChunks],
        ] {
            let entry = Entry {
                text: Some("Ünïcödé 😀 text that crosses chunk boundaries.".into()),
                quirks: quirks.clone(),
                ..finish_entry()
            };
            let (result, _, _) = run(provider, true, vec![entry], |_| {}).await;
            let completion = result.unwrap_or_else(|e| panic!("{provider:?} {quirks:?}: {e}"));
            assert_eq!(
                completion.text,
                "Ünïcödé 😀 text that crosses chunk boundaries."
            );
            assert_eq!(completion.tool_calls[0].arguments["summary"], "wrote it");
        }
    }
}

#[tokio::test]
async fn a_proxy_that_ignores_stream_is_understood() {
    for provider in PROTOCOLS {
        let entry = Entry {
            quirks: vec![Quirk::IgnoreStream],
            ..finish_entry()
        };
        let (result, requests, _) = run(provider, true, vec![entry], |_| {}).await;
        assert_finished(&result);
        assert!(requests[0].stream, "pitcrew asked for a stream");
    }
}

#[tokio::test]
async fn running_out_of_tokens_mid_tool_call_is_max_tokens() {
    for provider in PROTOCOLS {
        let cut_short = Entry {
            stop: Some(match provider {
                Provider::Openai => "length".into(),
                Provider::Anthropic => "max_tokens".into(),
            }),
            ..finish_entry()
        };
        let (result, _, _) = run(provider, true, vec![cut_short], |_| {}).await;
        assert_eq!(result.unwrap().stop, StopReason::MaxTokens);
    }
}

#[tokio::test]
async fn a_whole_conversation_reaches_each_provider_in_its_shape() {
    for provider in PROTOCOLS {
        let fake = FakeModel::start(script(vec![finish_entry()]))
            .await
            .unwrap();
        let client = client(config(provider, &fake, true));
        let mut request = request();
        request.messages.extend([
            Message::Assistant {
                content: "Reading first.".into(),
                tool_calls: vec![pitcrew::model::ToolCall::from_raw(
                    "c1".into(),
                    "write_file".into(),
                    r#"{"path":"a.txt","content":"x"}"#,
                )],
            },
            Message::Tool {
                call_id: "c1".into(),
                content: "wrote a.txt".into(),
                is_error: false,
            },
        ]);
        let completion = client
            .complete(
                &request,
                CallContext::new(Role::Implementer),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(completion.tool_calls[0].name, "finish");
        let body = &fake.requests()[0].body;
        match provider {
            Provider::Openai => {
                assert_eq!(body["messages"][2]["tool_calls"][0]["id"], "c1");
                assert_eq!(body["messages"][3]["role"], "tool");
                assert_eq!(body["messages"][3]["tool_call_id"], "c1");
            }
            Provider::Anthropic => {
                assert_eq!(body["messages"][1]["content"][1]["type"], "tool_use");
                assert_eq!(body["messages"][1]["content"][1]["input"]["path"], "a.txt");
                assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
                assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "c1");
            }
        }
    }
}

#[tokio::test]
async fn keys_echoed_in_retried_and_in_band_errors_are_redacted() {
    let key = "sk-echo-9d8c7b6a5f4e";
    for provider in PROTOCOLS {
        let echoed_500 = fault(Fault::Status {
            status: 500,
            retry_after: None,
            retry_after_ms: None,
            message: Some(format!("upstream rejected key {key}")),
            code: None,
            headers: Default::default(),
        });
        let echoed_in_band = fault(Fault::InBand {
            after_chunks: 2,
            message: Some(format!("bad key {key}")),
            code: Some("invalid_request_error".into()),
        });
        let fake = FakeModel::start(script(vec![echoed_500, echoed_in_band]))
            .await
            .unwrap();
        let mut config = config(provider, &fake, true);
        config.api_key_env = Some("PITCREW_TEST_KEY".into());
        let client = client_with_key(config, Some(key));
        let error = client
            .complete(
                &request(),
                CallContext::new(Role::Implementer),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(error.attempts, 2);
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(key), "{shown}");
        assert!(shown.contains("bad key [redacted]"), "{shown}");
    }
}

#[tokio::test]
async fn a_stream_fault_on_a_plain_request_is_refused_by_the_fake() {
    let entry = fault(Fault::Cut { after_chunks: 1 });
    let (result, _, _) = run(Provider::Openai, false, vec![entry], |_| {}).await;
    let message = failure(&result).to_string();
    assert!(message.contains("needs a streaming request"), "{message}");
    let late = fault(Fault::Cut { after_chunks: 500 });
    let (result, _, _) = run(Provider::Anthropic, true, vec![late], |_| {}).await;
    let message = failure(&result).to_string();
    assert!(message.contains("fires after 500 frames"), "{message}");
}
