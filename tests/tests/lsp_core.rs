//! The LSP core over the real binary's stdio: negotiation, capabilities, document sync, and
//! a server that survives whatever a client throws at it.

use pitcrew_tests::{TestServer, Workspace};
use serde_json::{Value, json};

fn code_action_request(uri: &str) -> Value {
    json!({
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 3}},
        "context": {"diagnostics": []},
    })
}

#[test]
fn an_editor_offering_utf8_gets_utf8_and_the_advertised_surface() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder()
        .root(workspace.path())
        .position_encodings(&["utf-8", "utf-16"])
        .start();
    let capabilities = &server.initialize_result()["capabilities"];
    assert_eq!(capabilities["positionEncoding"], "utf-8");
    assert_eq!(
        capabilities["textDocumentSync"]["change"], 2,
        "incremental sync"
    );
    assert_eq!(capabilities["textDocumentSync"]["openClose"], true);
    assert_eq!(capabilities["codeActionProvider"]["resolveProvider"], true);
    let kinds = capabilities["codeActionProvider"]["codeActionKinds"].clone();
    assert_eq!(kinds, json!(["refactor.rewrite", "quickfix"]));
    let commands: Vec<&str> = capabilities["executeCommandProvider"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for command in [
        "pitcrew.delegate",
        "pitcrew.review",
        "pitcrew.plan",
        "pitcrew.apply",
        "pitcrew.discard",
        "pitcrew.cancel",
        "pitcrew.retry",
        "pitcrew.showPlan",
        "pitcrew.dismissFinding",
    ] {
        assert!(commands.contains(&command), "{command} in {commands:?}");
    }
    assert_eq!(server.initialize_result()["serverInfo"]["name"], "pitcrew");
    assert_eq!(server.shutdown(), 0);
}

#[test]
fn an_editor_that_offers_nothing_gets_utf16() {
    let workspace = Workspace::new();
    let server = TestServer::builder().root(workspace.path()).start();
    assert_eq!(
        server.initialize_result()["capabilities"]["positionEncoding"],
        "utf-16"
    );
    let other = TestServer::builder()
        .root(workspace.path())
        .position_encodings(&["utf-32", "utf-16"])
        .start();
    assert_eq!(
        other.initialize_result()["capabilities"]["positionEncoding"],
        "utf-16"
    );
}

#[test]
fn garbage_bad_positions_and_unknown_documents_do_not_stop_the_server() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder()
        .root(workspace.path())
        .position_encodings(&["utf-8", "utf-16"])
        .start();
    let uri = server.uri("src/main.rs");
    server.open(&uri, "rust", "fn main() {}\n");

    // A correctly framed body that is not JSON: a parse error, and the server carries on.
    server.send_raw(b"Content-Length: 11\r\n\r\n{not json!}");
    assert_eq!(server.response(-1).unwrap_err().code, -32700);
    let id = server.send_request("textDocument/codeAction", code_action_request(&uri));
    assert_eq!(server.response(id), Ok(json!([])));

    // A change far past the end of the document is clamped, as the specification says.
    server.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{
                "range": {"start": {"line": 99, "character": 7}, "end": {"line": 120, "character": 0}},
                "text": "// end\n",
            }],
        }),
    );
    // A change to a document that was never opened is logged and ignored.
    server.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": server.uri("nope.rs"), "version": 2},
            "contentChanges": [{"text": "x"}],
        }),
    );
    let id = server.send_request("textDocument/codeAction", code_action_request(&uri));
    assert_eq!(server.response(id), Ok(json!([])));
    assert_eq!(
        server.server_text(&uri),
        (2, "fn main() {}\n// end\n".to_owned())
    );

    server.drain();
    let stderr = server.stderr();
    assert!(stderr.contains("rejected a message"), "{stderr}");
    assert!(stderr.contains("ignored a change"), "{stderr}");
    assert_eq!(server.shutdown(), 0);
}

/// The frames that once silenced the server for good: after each, the next request is
/// answered; then random garbage between fifty requests, and every one is answered; shutdown
/// too.
#[test]
fn no_malformed_frame_silences_the_server() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder().root(workspace.path()).start();
    let answered = |server: &mut TestServer, after: &str| {
        let id = server.send_request("pitcrew/debug/config", json!(null));
        let response = server.response(id);
        assert!(response.is_ok(), "after {after}: {response:?}");
    };
    for garbage in [
        &b"Content-Length: abc\r\n\r\n{}"[..],
        b"Content-Type: application/vscode-jsonrpc\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1}",
        b"Content-Length: 1000000000000000\r\n\r\n",
        b"Content-Length: 5000\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"initialized\"}",
        b"\r\n\r\n\x00\xff garbage \r\n",
    ] {
        server.send_raw(garbage);
        answered(&mut server, &String::from_utf8_lossy(garbage));
    }
    // Random garbage, reproducible: a small linear congruential generator.
    let mut seed: u64 = 0x5eed;
    let mut next = move |below: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % below
    };
    let tokens: [&[u8]; 8] = [
        b"Content-Length: x\r\n\r\n",
        b"Content-Length: 99999999999999999999\r\n\r\n",
        b"Content-Length: 12\r\n\r\n",
        b"Content-Type: y\r\n\r\n",
        b"{}",
        b"\r\n",
        b"content-length:",
        b"\xc3\x28 \x00",
    ];
    for round in 0..50 {
        let mut garbage = Vec::new();
        for _ in 0..next(4) {
            garbage.extend_from_slice(tokens[next(tokens.len() as u64) as usize]);
        }
        server.send_raw(&garbage);
        answered(
            &mut server,
            &format!("round {round}: {:?}", String::from_utf8_lossy(&garbage)),
        );
    }
    assert_eq!(server.shutdown(), 0);
}

#[test]
fn malformed_messages_get_json_rpc_errors() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder().root(workspace.path()).start();

    // Valid JSON that is not JSON-RPC: invalid request, answered with the id it carried.
    server.send(&json!({"jsonrpc": "1.0", "id": 4242, "method": "initialize"}));
    assert_eq!(server.response(4242).unwrap_err().code, -32600);

    // Not JSON at all: parse error with a null id (the harness files it under -1).
    server.send_raw(b"Content-Length: 3\r\n\r\n{{{");
    assert_eq!(server.response(-1).unwrap_err().code, -32700);

    // A header block with no Content-Length: reported, then the next frame is read normally.
    server.send_raw(b"X-Nonsense: yes\r\n\r\n");
    assert_eq!(server.response(-1).unwrap_err().code, -32700);

    // An unknown method: method not found.
    let error = server
        .request("pitcrew/doesNotExist", json!({}))
        .unwrap_err();
    assert_eq!(error.code, -32601);

    // An unknown command, and a known one the workspace cannot serve: clear errors.
    let error = server
        .request(
            "workspace/executeCommand",
            json!({"command": "rm -rf", "arguments": []}),
        )
        .unwrap_err();
    assert_eq!(error.code, -32602);
    assert!(error.message.contains("unknown command"), "{error:?}");
    let error = server
        .request(
            "workspace/executeCommand",
            json!({"command": "pitcrew.delegate", "arguments": []}),
        )
        .unwrap_err();
    assert_eq!(error.code, -32803, "{error:?}");
    assert!(
        error.message.contains("not inside a git repository"),
        "{error:?}"
    );
    assert!(error.message.contains("git init"), "{error:?}");

    // Unknown notifications are ignored without an answer.
    server.notify("$/somethingNew", json!({}));
    assert_eq!(server.request("shutdown", Value::Null), Ok(Value::Null));
    server.notify("exit", Value::Null);
    assert_eq!(server.wait_exit(), 0);
}

#[test]
fn a_client_that_disconnects_ends_the_server_without_a_hang() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder().root(workspace.path()).start();
    let uri = server.uri("a.txt");
    server.open(&uri, "plaintext", "hello");
    // Exit without shutdown is an error exit (code 1), as the specification says.
    assert_eq!(server.disconnect(), 1);
    assert!(server.violations().is_empty());
}

#[test]
fn exit_without_shutdown_exits_with_one() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder().root(workspace.path()).start();
    server.notify("exit", Value::Null);
    assert_eq!(server.disconnect(), 1);
}

#[test]
fn requests_before_initialize_are_refused_not_fatal() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder().root(workspace.path()).spawn();
    let error = server
        .request("textDocument/codeAction", code_action_request("file:///x"))
        .unwrap_err();
    assert_eq!(error.code, -32002, "server not initialized");
    server.initialize();
    assert_eq!(server.shutdown(), 0);
}

#[test]
fn astral_characters_and_crlf_sync_exactly_in_utf16() {
    let workspace = Workspace::new();
    let mut server = TestServer::builder()
        .root(workspace.path())
        .position_encodings(&["utf-16"])
        .start();
    let uri = server.uri("emoji.txt");
    server.open(&uri, "plaintext", "a😀b\r\nsecond 🎉 line\r\n");
    // After the emoji: character 3 in UTF-16 (a=1, 😀=2).
    server.change(&uri, (0, 3), (0, 4), "B");
    // Past the end of line 1: clamped before its CRLF.
    server.change(&uri, (1, 500), (1, 500), "!");
    server.change(&uri, (1, 7), (1, 9), "🎈");
    let expected = server.document(&uri).text.clone();
    assert_eq!(expected, "a😀B\r\nsecond 🎈 line!\r\n");
    assert_eq!(server.server_text(&uri), (4, expected));
}
