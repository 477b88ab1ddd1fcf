//! Benchmark: a plan's wall time against its critical-path bound at a fixed model latency, for
//! plans of 4, 16 and 64 tasks; and pitcrew's own time per task, model and git aside.
//! Run with `cargo bench -p pitcrew --bench orchestration`.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew::config::{Source, SourceKind, SourceText, load_sources};
use pitcrew::git::{self, GitRepo};
use pitcrew::model::Models;
use pitcrew::model::fake::{Defaults, Entry, FakeModel, Matcher, Script, ScriptedCall, UsageSpec};
use pitcrew::team::plan::{Plan, PlanStatus};
use pitcrew::team::{Store, TeamContext};
use serde_json::json;
use support::{Samples, TABLE_HEADER, format_duration, machine, report};

/// Depth of the layered plans: every path has this many tasks.
const DEPTH: usize = 4;
/// Model calls per task on the critical path: write, finish, review.
const CALLS_PER_TASK: usize = 3;

fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .status()
            .unwrap();
        assert!(status.success());
    };
    git(&["init", "-q", "-b", "main"]);
    for i in 0..20 {
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join(format!("src/m{i}.rs")),
            format!("pub fn f{i}() {{}}\n"),
        )
        .unwrap();
    }
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "start"]);
    dir
}

/// Task ids and dependencies: `DEPTH` layers of `width`, each task after two of the layer
/// before (a chain when `width` is 1).
fn layered(n_tasks: usize) -> Vec<(String, Vec<String>)> {
    let width = (n_tasks / DEPTH).max(1);
    let mut tasks = Vec::new();
    for layer in 0..DEPTH {
        for i in 0..width {
            let deps = if layer == 0 {
                Vec::new()
            } else {
                let mut deps = vec![format!("t{}-{i}", layer - 1)];
                if width > 1 {
                    deps.push(format!("t{}-{}", layer - 1, (i + 1) % width));
                }
                deps
            };
            tasks.push((format!("t{layer}-{i}"), deps));
        }
    }
    tasks
}

fn chain(n_tasks: usize) -> Vec<(String, Vec<String>)> {
    (0..n_tasks)
        .map(|i| {
            let deps = if i == 0 {
                vec![]
            } else {
                vec![format!("c{}", i - 1)]
            };
            (format!("c{i}"), deps)
        })
        .collect()
}

fn script(tasks: &[(String, Vec<String>)], latency_ms: u64) -> Script {
    let when = |role: &str, task: Option<&str>| Matcher {
        role: Some(role.into()),
        task: task.map(str::to_owned),
        ..Matcher::default()
    };
    let call = |name: &str, arguments: serde_json::Value| ScriptedCall {
        name: name.into(),
        arguments,
    };
    let specs: Vec<serde_json::Value> = tasks
        .iter()
        .map(|(id, deps)| json!({"id": id, "title": format!("task {id}"), "instructions": "write a file", "depends_on": deps}))
        .collect();
    let mut responses = vec![Entry {
        when: when("planner", None),
        tool_calls: vec![call("submit_plan", json!({"tasks": specs}))],
        ..Entry::default()
    }];
    for (id, _) in tasks {
        responses.push(Entry {
            when: when("implementer", Some(id)),
            tool_calls: vec![call(
                "write_file",
                json!({"path": format!("out/{id}.txt"), "content": format!("{id}\n")}),
            )],
            ..Entry::default()
        });
        responses.push(Entry {
            when: when("implementer", Some(id)),
            tool_calls: vec![call(
                "finish",
                json!({"summary": format!("wrote out/{id}.txt")}),
            )],
            ..Entry::default()
        });
    }
    responses.push(Entry {
        when: when("reviewer", None),
        repeat: true,
        tool_calls: vec![call(
            "submit_review",
            json!({"verdict": "approve", "findings": []}),
        )],
        ..Entry::default()
    });
    Script {
        defaults: Defaults {
            latency_ms,
            chunk_size: 64,
            chunk_delay_ms: 0,
            usage: Some(UsageSpec {
                input_tokens: 100,
                output_tokens: 20,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            }),
            context_window: None,
            serves: Vec::new(),
        },
        responses,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: GitRepo,
    fake: FakeModel,
    context: TeamContext,
}

async fn fixture(implementers: u32) -> Fixture {
    let dir = repository();
    let fake = FakeModel::start(Script::default()).await.unwrap();
    let toml = format!(
        "[models.default]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake\"\nmax_concurrent = 64\n\
         [team]\nimplementers = {implementers}\nmax_tasks = 64\n",
        fake.openai_base_url()
    );
    let config = load_sources(&[Source {
        kind: SourceKind::WorkspaceFile,
        content: SourceText::Toml {
            path: "pitcrew.toml".into(),
            text: toml,
        },
    }])
    .config
    .unwrap();
    let repo = GitRepo::discover(dir.path()).unwrap();
    let store = Arc::new(Store::open(repo.state_dir()).unwrap());
    let (events, _) = tokio::sync::broadcast::channel(65_536);
    let context = TeamContext {
        repo: repo.clone(),
        store,
        models: Arc::new(Models::from_config(&config).unwrap()),
        config: Arc::new(config),
        events,
        registry: Default::default(),
    };
    Fixture {
        _dir: dir,
        repo,
        fake,
        context,
    }
}

/// Runs one plan and returns its wall time.
async fn run_plan(fixture: &Fixture, tasks: &[(String, Vec<String>)], latency_ms: u64) -> Duration {
    fixture.fake.set_script(script(tasks, latency_ms));
    let id = pitcrew::team::new_plan_id();
    let snapshot_id = id.clone();
    let snapshot = fixture
        .repo
        .run(move |r| git::snapshot::create(r, &snapshot_id, &[]))
        .await
        .unwrap();
    let plan = Plan::new(id, "benchmark".into(), snapshot.commit.to_string());
    let (_commands, receiver) = tokio::sync::mpsc::channel(1);
    let started = Instant::now();
    let done = pitcrew::team::orchestrator::run(fixture.context.clone(), plan, receiver).await;
    let elapsed = started.elapsed();
    assert_eq!(done.status, PlanStatus::Ready, "{:?}", done.outcome);
    elapsed
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let latency_ms: u64 = if quick { 20 } else { 250 };
        let runs = if quick { 1 } else { 5 };
        report(&format!(
            "pitcrew orchestration benchmark on {}\nplans of {DEPTH} layers; 3 model calls per task (write, finish, review)\n",
            machine()
        ));
        report("| plan, model latency | runs | critical-path bound | median wall | p95 wall | median / bound |\n|---|---|---|---|---|---|");
        let parallel = fixture(64).await;
        let mut cases = vec![(4, latency_ms), (16, latency_ms), (64, latency_ms)];
        if !quick {
            // Real models answer in seconds; the same git work weighs less against them.
            cases.push((64, 1_000));
        }
        for (n_tasks, latency_ms) in cases {
            let tasks = layered(n_tasks);
            let bound = Duration::from_millis(latency_ms * (1 + DEPTH * CALLS_PER_TASK) as u64);
            let mut samples = Samples::new(format!("{n_tasks} tasks"));
            for _ in 0..runs {
                samples.push(run_plan(&parallel, &tasks, latency_ms).await);
            }
            report(&format!(
                "| {n_tasks} tasks, {latency_ms} ms | {runs} | {} | {} | {} | {:.3}x |",
                format_duration(bound),
                format_duration(samples.median()),
                format_duration(samples.percentile(95.0)),
                samples.median().as_secs_f64() / bound.as_secs_f64()
            ));
        }

        // pitcrew's own time per task: a serial chain at zero latency, minus model and git time.
        let serial = fixture(1).await;
        let n_tasks = if quick { 4 } else { 16 };
        let tasks = chain(n_tasks);
        let mut own = Samples::new(format!("pitcrew's own time per task ({n_tasks}-task chain)"));
        let mut walls = Samples::new(format!("wall time per task ({n_tasks}-task chain, no latency)"));
        for _ in 0..runs.max(3) {
            let (model_before, git_before) = (pitcrew::model::time_in_models(), git::time_in_git());
            let wall = run_plan(&serial, &tasks, 0).await;
            let model = pitcrew::model::time_in_models() - model_before;
            let git = git::time_in_git() - git_before;
            let rest = wall.saturating_sub(model).saturating_sub(git);
            own.push(rest / n_tasks as u32);
            walls.push(wall / n_tasks as u32);
        }
        report("");
        report(TABLE_HEADER);
        report(&own.row());
        report(&walls.row());
    });
}
