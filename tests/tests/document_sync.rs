//! Document sync under load: a flood of incremental edits with requests in flight must leave
//! the server's text equal to the client's, and every request must see exactly the edits sent
//! before it.

use std::collections::HashMap;

use pitcrew_tests::TestServer;
use pitcrew_tests::Workspace;
use pitcrew_tests::text_model;
use serde_json::json;

/// A small deterministic generator, so a failure replays exactly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const PIECES: [&str; 10] = ["a", "é", "😀", "\n", "\r\n", "\r", "中", " ", "fn ", "}"];

fn random_text(rng: &mut XorShift) -> String {
    (0..rng.below(6))
        .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
        .collect()
}

fn flood(encodings: &[&'static str], seed: u64) {
    let workspace = Workspace::new();
    let mut server = TestServer::builder()
        .root(workspace.path())
        .position_encodings(encodings)
        .start();
    let uri = server.uri("flood.rs");
    server.open(&uri, "rust", "fn main() {\r\n    println!(\"😀\");\r\n}\n");

    let mut rng = XorShift(seed);
    let mut expected_snapshots: HashMap<i64, (i32, String)> = HashMap::new();
    let mut code_actions = Vec::new();
    for step in 0..3000 {
        let n_lines = text_model::lines(&server.document(&uri).text).len() as u64;
        let mut position = || {
            (
                rng.below(n_lines + 2) as u32,
                // Mostly inside lines; sometimes far past their end.
                if rng.below(10) == 0 {
                    1000
                } else {
                    rng.below(12) as u32
                },
            )
        };
        let (start, end) = (position(), position());
        let mut rng_text = XorShift(seed.wrapping_add(step));
        let text = random_text(&mut rng_text);
        server.change(&uri, start.min(end), start.max(end), &text);

        if step % 10 == 0 {
            let document = server.document(&uri).clone();
            let id = server.send_request("pitcrew/debug/documentText", json!({"uri": uri}));
            expected_snapshots.insert(id, (document.version, document.text));
        }
        if step % 7 == 0 {
            code_actions.push(server.send_request(
                "textDocument/codeAction",
                json!({
                    "textDocument": {"uri": uri},
                    "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
                    "context": {"diagnostics": []},
                }),
            ));
        }
    }

    for id in code_actions {
        assert_eq!(server.response(id), Ok(json!([])));
    }
    let mut ids: Vec<i64> = expected_snapshots.keys().copied().collect();
    ids.sort();
    for id in ids {
        let result = server.response(id).expect("documentText answered");
        let (version, text) = &expected_snapshots[&id];
        assert_eq!(
            result["version"],
            json!(version),
            "request {id} saw a different version"
        );
        assert_eq!(
            result["text"].as_str().unwrap(),
            text,
            "request {id} saw different text at version {version}"
        );
    }
    let client = server.document(&uri).clone();
    assert_eq!(server.server_text(&uri), (client.version, client.text));
}

#[test]
fn flood_of_edits_in_utf16_keeps_server_and_client_equal() {
    flood(&["utf-16"], 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn flood_of_edits_in_utf8_keeps_server_and_client_equal() {
    flood(&["utf-8", "utf-16"], 0x2545_F491_4F6C_DD1D);
}
