//! Disk use is bounded and reclaimable: `pitcrew status` says what pitcrew keeps, `pitcrew clean`
//! removes what finished plans keep (with `--dry-run` and `--older-than`), discarding a plan
//! removes what it kept, and old snapshots expire.

use pitcrew_tests::team::TeamScenario;
use pitcrew_tests::team::script::{approve, finish, plan, task as spec, write};
use serde_json::json;

const CHECK: &str = "#!/bin/sh\nexit 0\n";
/// An untracked file of the user's, large enough to see: every snapshot holds it.
const BIG: usize = 2_000_000;

fn scenario() -> TeamScenario {
    let mut responses = Vec::new();
    for n in 0..2 {
        let t = format!("t{n}");
        responses.push(script_plan(&t));
        responses.push(write(&t, &format!("{t}.txt"), "done\n"));
        responses.push(finish(&t, "done"));
        responses.push(approve(&t));
    }
    let scenario = TeamScenario::new(
        &[("check.sh", CHECK)],
        responses,
        "",
        "test = \"sh check.sh\"",
    );
    // Different bytes on each run, as a changing build artifact or data file would be.
    scenario.repo.write("data.bin", &"x".repeat(BIG));
    scenario
}

fn script_plan(task: &str) -> serde_json::Value {
    pitcrew_tests::team::script::when_contains(
        plan(json!([spec(task, &format!("Write {task}.txt"), &[])])),
        &format!("goal {task}"),
    )
}

fn pitcrew(scenario: &TeamScenario, args: &[&str]) -> (Option<i32>, String, String) {
    let output = scenario.command(args).output().expect("run pitcrew");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn refs_of(scenario: &TeamScenario, plan: &str) -> String {
    scenario.repo.git(&[
        "for-each-ref",
        "--format=%(refname)",
        &format!("refs/heads/pitcrew/{plan}/"),
        &format!("refs/pitcrew/snapshots/{plan}"),
    ])
}

#[test]
fn clean_removes_what_finished_plans_keep_and_git_gc_then_frees_it() {
    let scenario = scenario();
    // Plan one is applied; plan two is ready, not applied yet.
    let first = scenario.run("goal t0", &["--yes"]);
    assert_eq!(first.code, Some(0), "{}", first.all());
    scenario.repo.write("data.bin", &"y".repeat(BIG));
    let second = scenario.run("goal t1", &[]);
    assert_eq!(second.code, Some(0), "{}", second.all());
    let plans = scenario.plans();
    let (applied, ready) = (
        plans[0]["id"].as_str().unwrap().to_owned(),
        plans[1]["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(plans[0]["status"], "applied");
    assert_eq!(plans[1]["status"], "ready");
    assert!(refs_of(&scenario, &applied).contains("snapshots"));
    // The applied plan's snapshot holds the first data.bin; nothing but its ref keeps it.
    let blob = scenario
        .repo
        .git(&[
            "rev-parse",
            &format!("refs/pitcrew/snapshots/{applied}:data.bin"),
        ])
        .trim()
        .to_owned();

    // status says how much is kept, and how much of it is reclaimable.
    let (code, stdout, _) = pitcrew(&scenario, &["status"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("Disk: "), "{stdout}");
    assert!(
        stdout.contains("MB of it belongs to finished plans"),
        "{stdout}"
    );

    // A dry run says what and how much, and removes nothing.
    let (code, stdout, _) = pitcrew(&scenario, &["clean", "--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("Would remove what 1 finished plan kept"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&applied) && stdout.contains("MB"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("kept {ready}: it is ready")),
        "{stdout}"
    );
    assert!(refs_of(&scenario, &applied).contains("snapshots"));

    // Too young for --older-than: kept.
    let (_, stdout, _) = pitcrew(&scenario, &["clean", "--older-than", "30"]);
    assert!(stdout.contains("Nothing to clean"), "{stdout}");
    assert!(
        stdout.contains(&format!("kept {applied}: it ended")),
        "{stdout}"
    );

    let (code, stdout, stderr) = pitcrew(&scenario, &["clean"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("Removed what 1 finished plan kept"),
        "{stdout}"
    );
    assert!(stdout.contains("git gc --prune=now"), "{stdout}");
    assert_eq!(
        refs_of(&scenario, &applied),
        "",
        "the applied plan's refs are gone"
    );
    assert!(
        refs_of(&scenario, &ready).contains("integration"),
        "the ready plan keeps its"
    );
    let worktrees = scenario.repo.git(&["worktree", "list"]);
    assert!(!worktrees.contains(&applied), "{worktrees}");

    // The record and the journal stay; the plan says it was reclaimed.
    let plan = scenario
        .plans()
        .into_iter()
        .find(|p| p["id"] == applied.as_str())
        .unwrap();
    assert_eq!(plan["status"], "applied");
    assert!(plan["reclaimed_at"].is_string(), "{plan:#}");
    assert!(
        scenario
            .journal()
            .iter()
            .any(|e| e["event"] == "reclaimed" && e["plan"] == applied.as_str())
    );

    // git gc now frees the first data.bin, which only the snapshot kept.
    scenario.repo.git(&["gc", "--quiet", "--prune=now"]);
    let exists = scenario.repo.git_raw(&["cat-file", "-e", &blob]);
    assert!(
        !exists.status.success(),
        "the snapshot's copy of data.bin is freed"
    );

    // The ready plan still applies.
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply", &ready]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(scenario.repo.read("t1.txt"), "done\n");
}

#[test]
fn old_snapshots_expire_at_the_next_start_and_orphans_go() {
    let scenario = scenario();
    let first = scenario.run("goal t0", &["--yes"]);
    assert_eq!(first.code, Some(0), "{}", first.all());
    let id = scenario.plan()["id"].as_str().unwrap().to_owned();
    // The plan ended 20 days ago.
    let file = scenario
        .path()
        .join(format!(".git/pitcrew/plans/{id}.json"));
    let mut plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    plan["updated_at"] = json!("2020-01-01T00:00:00.000Z");
    std::fs::write(&file, serde_json::to_vec(&plan).unwrap()).unwrap();
    // A snapshot no plan describes, from long ago.
    let backdated = std::process::Command::new("git")
        .args(["commit-tree", "-m", "orphan", "HEAD^{tree}"])
        .current_dir(scenario.path())
        .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00")
        .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00")
        .env(
            "GIT_CONFIG_GLOBAL",
            scenario.repo.home.path().join("gitconfig"),
        )
        .output()
        .unwrap();
    assert!(backdated.status.success());
    let backdated = String::from_utf8_lossy(&backdated.stdout).trim().to_owned();
    scenario.repo.git(&[
        "update-ref",
        "refs/pitcrew/snapshots/p0orphan00",
        &backdated,
    ]);

    // Any start (here `pitcrew apply`, with nothing to apply) expires both.
    let (code, stdout, stderr) = pitcrew(&scenario, &["apply"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let snapshots = scenario.repo.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/pitcrew/snapshots/",
    ]);
    assert_eq!(snapshots, "", "both expired: {snapshots}");
    // The finished plan's branches are another matter: `pitcrew clean` decides about those.
    assert!(refs_of(&scenario, &id).contains("integration"));
}
