//! The command line as a user meets it: version, doctor, and honest "not yet" answers.

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
fn doctor_reports_sources_models_and_roles() {
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(workspace.path().join(".git")).unwrap();
    std::fs::create_dir_all(home.path().join("config/pitcrew")).unwrap();
    std::fs::write(
        home.path().join("config/pitcrew/config.toml"),
        "[models.default]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"local\"\n",
    )
    .unwrap();
    std::fs::write(
        workspace.path().join("pitcrew.toml"),
        "[models.strong]\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\napi_key_env = \"PITCREW_TEST_KEY\"\n\
         [roles]\nplanner = \"strong\"\n",
    )
    .unwrap();
    let nested = workspace.path().join("src/deep");
    std::fs::create_dir_all(&nested).unwrap();

    let output = pitcrew(&nested, home.path(), &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["workspace"], workspace.path().display().to_string());
    assert_eq!(report["sources"][0]["kind"], "user_file");
    assert_eq!(report["sources"][0]["status"], "loaded");
    assert_eq!(report["sources"][1]["kind"], "workspace_file");
    assert_eq!(report["sources"][1]["status"], "loaded");
    assert_eq!(report["roles"]["planner"], "strong");
    assert_eq!(report["roles"]["reviewer"], "default");
    assert_eq!(report["models"][1]["key_env"], "PITCREW_TEST_KEY");
    assert_eq!(report["models"][1]["key_set"], false);
    // The unset key is the one problem, so the doctor fails.
    assert_eq!(
        report["problems"],
        serde_json::json!(["model `strong`: the key variable $PITCREW_TEST_KEY is not set"])
    );
    assert_eq!(output.status.code(), Some(1));

    // With the key set, the doctor is satisfied, and the key itself is never printed.
    let output = Command::new(env!("CARGO_BIN_EXE_pitcrew"))
        .args(["doctor"])
        .current_dir(&nested)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("PITCREW_TEST_KEY", "sk-very-secret-value")
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("key from $PITCREW_TEST_KEY (set)"), "{text}");
    assert!(!text.contains("sk-very-secret"), "{text}");
    assert!(!stderr(&output).contains("sk-very-secret"));
}

#[test]
fn doctor_names_file_line_and_key_of_a_bad_config() {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(workspace.path().join(".git")).unwrap();
    std::fs::write(
        workspace.path().join("pitcrew.toml"),
        "[team]\nimplementers = 2\nreview_rouds = 3\n",
    )
    .unwrap();
    let output = pitcrew(workspace.path(), workspace.path(), &["doctor"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let expected = format!(
        "{}:3:1: `team.review_rouds`: unknown field `review_rouds`",
        workspace.path().join("pitcrew.toml").display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("invalid"), "{text}");
}

#[test]
fn doctor_without_any_model_says_how_to_add_one() {
    let workspace = tempfile::tempdir().unwrap();
    let output = pitcrew(workspace.path(), workspace.path(), &["doctor"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("no models configured: add a [models.default] table"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn subcommands_that_do_not_exist_yet_say_so_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["run", "add a feature"][..],
        &["plan", "a goal"],
        &["status"],
        &["log"],
        &["demo"],
    ] {
        let output = pitcrew(dir.path(), dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("not yet available"),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    }
}
