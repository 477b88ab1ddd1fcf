//! The command line as a user meets it: version, clear words outside a repository, the fake
//! model.

use std::path::Path;
use std::process::{Command, Output};

fn pitcrew(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("PITCREW_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run pitcrew")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_names_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let output = pitcrew(dir.path(), dir.path(), &["--version"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("pitcrew {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn run_status_and_log_outside_a_repository_say_so() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["run", "a goal"][..],
        &["plan", "a goal"],
        &["status"],
        &["log"],
        &["apply"],
    ] {
        let output = pitcrew(dir.path(), dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("is not inside a git repository"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_bare_repository_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("project.git");
    git2::Repository::init_bare(&bare).unwrap();
    for args in [&["run", "a goal"][..], &["status"], &["apply"]] {
        let output = pitcrew(&bare, dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let said = stderr(&output);
        assert!(
            said.contains("is a bare repository") && said.contains("needs a working tree"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("not inside a git repository"), "{said}");
    }
    // A worktree of a bare repository is a working tree: pitcrew works there.
    let repo = git2::Repository::open_bare(&bare).unwrap();
    let signature = git2::Signature::now("t", "t@t").unwrap();
    let tree = repo.treebuilder(None).unwrap().write().unwrap();
    let tree = repo.find_tree(tree).unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "init", &tree, &[])
        .unwrap();
    let status = Command::new("git")
        .args(["worktree", "add", "../work"])
        .current_dir(&bare)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    let output = pitcrew(&dir.path().join("work"), dir.path(), &["status"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("No plans yet"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn fake_model_prints_its_url_and_answers_both_protocols() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.json");
    std::fs::write(
        &script,
        r#"{"responses": [{"repeat": true, "text": "hello from the script"}]}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .args(["fake-model", "--script"])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    let url = url.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let post = |path: &str, body: &str| {
        let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let openai = post(
        "/v1/chat/completions",
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert!(openai.starts_with("HTTP/1.1 200"), "{openai}");
    assert!(openai.contains("hello from the script"), "{openai}");
    let anthropic = post(
        "/v1/messages",
        r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert!(anthropic.contains(r#""type":"message""#), "{anthropic}");
    let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "GET /_fake/requests HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut recorded = String::new();
    stream.read_to_string(&mut recorded).unwrap();
    assert!(recorded.contains(r#""protocol":"openai""#), "{recorded}");
    assert!(recorded.contains(r#""protocol":"anthropic""#), "{recorded}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn fake_model_refuses_a_bad_script_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.json");
    std::fs::write(&script, r#"{"responses": [{"txt": "typo"}]}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .args(["fake-model", "--script"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown field `txt`"),
        "{}",
        stderr(&output)
    );
}
