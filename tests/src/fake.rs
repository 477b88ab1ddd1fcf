//! `FakeModelProcess`: the fake model server run as `pitcrew fake-model`, the way editor tests
//! and the demo run it, with its recorded requests read over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::pitcrew_bin;

pub struct FakeModelProcess {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl FakeModelProcess {
    /// Starts `pitcrew fake-model` with `script` (the JSON of docs/fake-model.md).
    pub fn start(script: &Value) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("script.json");
        std::fs::write(&path, script.to_string()).expect("write script");
        let mut child = Command::new(pitcrew_bin())
            .args(["fake-model", "--script"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pitcrew fake-model");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the fake model's URL");
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "fake-model printed {url:?}"
        );
        Self {
            child,
            url,
            _dir: dir,
        }
    }

    /// The Anthropic base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The OpenAI base URL.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    fn http(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream =
            TcpStream::connect(self.url.trim_start_matches("http://")).expect("connect to fake");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send to fake");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read from fake");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// Every request the fake received, as `docs/fake-model.md` describes them.
    pub fn requests(&self) -> Vec<Value> {
        let body = self.http("GET", "/_fake/requests", "");
        serde_json::from_str::<Vec<Value>>(&body).expect("requests as JSON")
    }

    /// The requests of one role (and task, if given).
    pub fn requests_of(&self, role: &str, task: Option<&str>) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["role"] == role && task.is_none_or(|t| r["task"] == t))
            .collect()
    }

    pub fn set_script(&self, script: &Value) {
        let answer = self.http("POST", "/_fake/script", &script.to_string());
        assert!(
            answer.contains("\"ok\":true"),
            "the fake refused the script: {answer}"
        );
    }
}

impl Drop for FakeModelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
