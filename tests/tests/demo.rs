//! `pitcrew demo` as a newcomer runs it: no key, no network, a user configuration that points
//! elsewhere; the whole team must be seen at work and leave a real result behind.

use std::path::Path;
use std::process::{Command, Output};

use pitcrew_tests::pitcrew_bin;

fn demo(home: &Path, args: &[&str]) -> Output {
    Command::new(pitcrew_bin())
        .arg("demo")
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("PITCREW_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run pitcrew demo")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_demo_shows_the_whole_team_at_work_and_leaves_a_tested_result() {
    let home = tempfile::tempdir().unwrap();
    // A user whose own configuration sends every role to a model that does not exist: the
    // demo must use only its scripted model.
    let config = home.path().join("config/pitcrew/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        "[models.mine]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"gone\"\n\n[roles]\nplanner = \"mine\"\nimplementer = \"mine\"\nreviewer = \"mine\"\n",
    )
    .unwrap();
    let dir = home.path().join("demo");

    let output = demo(home.path(), &["--dir", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // It says the answers are scripted, and how to use a real model.
    assert!(
        stdout.contains("The model answers are scripted"),
        "{stdout}"
    );
    assert!(stdout.contains("api_key_env"), "{stdout}");
    assert!(stdout.contains("pitcrew doctor"), "{stdout}");
    // Every role is seen at work: the planner, two implementers in parallel, a reviewer that
    // runs the tests and sends one result back, the integrator merging and testing.
    for expected in [
        "planner: planned",
        "implementer lines: started",
        "implementer chars: started",
        "reviewer    chars: running check `test`",
        "reviewer    chars: request_changes",
        "counts bytes, not characters",
        "task chars is pending: round 2",
        "reviewer    chars: approve",
        "integrator  lines: merging into the integration branch",
        "integrator: running `test` on the integrated result",
        "is ready: Integrated and tested: `test` passes.",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing in:\n{stdout}"
        );
    }
    let started = |task: &str| {
        stdout
            .find(&format!("implementer {task}: started"))
            .unwrap()
    };
    let finished = |task: &str| {
        stdout
            .find(&format!("implementer {task}: finished"))
            .unwrap()
    };
    assert!(
        started("chars") < finished("lines") && started("lines") < finished("chars"),
        "the two independent tasks ran in parallel:\n{stdout}"
    );
    assert!(
        finished("chars") < started("cli"),
        "the dependent task waited:\n{stdout}"
    );

    // The result is real: the integration branch has the reviewed fix and passes its tests;
    // the sample's own branch and working tree are as the demo created them.
    let branches = git(&dir, &["branch", "--list", "pitcrew/*/integration"]);
    let integration = branches.trim().trim_start_matches(['*', '+', ' ']);
    assert!(!integration.is_empty(), "no integration branch: {branches}");
    let chars = git(&dir, &["show", &format!("{integration}:src/chars.rs")]);
    assert!(chars.contains("text.chars().count()"), "{chars}");
    let main = git(&dir, &["show", &format!("{integration}:src/main.rs")]);
    assert!(main.contains("tally::lines::count"), "{main}");
    assert_eq!(git(&dir, &["status", "--porcelain"]), "");
    assert!(
        std::fs::read_to_string(dir.join("src/chars.rs"))
            .unwrap()
            .contains("todo!"),
        "the working tree is untouched until the user applies"
    );

    // `pitcrew log` and `pitcrew status` work there afterwards, as the demo says.
    let status = Command::new(pitcrew_bin())
        .arg("status")
        .current_dir(&dir)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .output()
        .unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    assert!(status_text.contains("3/3 tasks"), "{status_text}");
}

#[test]
fn the_demo_refuses_a_directory_that_holds_something() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("busy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let output = demo(home.path(), &["--dir", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn without_cargo_the_demo_says_what_to_install_before_it_starts() {
    let home = tempfile::tempdir().unwrap();
    let empty_path = home.path().join("bin");
    std::fs::create_dir_all(&empty_path).unwrap();
    let dir = home.path().join("demo");
    let output = Command::new(pitcrew_bin())
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .env("HOME", home.path())
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cargo is not on PATH"), "{stderr}");
    assert!(stderr.contains("rustup.rs"), "{stderr}");
    assert!(!dir.exists(), "nothing is created");
}
