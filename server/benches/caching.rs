//! Benchmark: what prompt caching saves on a 30-turn task. One implementer task (28 file
//! reads, a write, a finish) and its review run through the orchestrator against the fake
//! model speaking Anthropic's protocol, whose cache serves prefixes up to the breakpoints a
//! request marks; once with pitcrew's breakpoints, once without (`prompt_caching = false`).
//! Reported: prompt tokens, cache reads and writes, input billed as token equivalents (a cache
//! read at 0.1 of an input token, a write at 1.25), and the cost at $3 / $15 per million.
//! Run with `cargo bench -p pitcrew --bench caching`.

mod support;

use std::sync::Arc;

use pitcrew::config::{Source, SourceKind, SourceText, load_sources};
use pitcrew::git::{self, GitRepo};
use pitcrew::model::Models;
use pitcrew::model::fake::{Entry, FakeModel, Matcher, Script, ScriptedCall};
use pitcrew::team::plan::{Plan, PlanStatus, Spend};
use pitcrew::team::{Store, TeamContext};
use serde_json::json;
use support::{machine, report};

const TURNS: usize = 30;
const FILES: usize = 28;

fn call(task: &str, name: &str, arguments: serde_json::Value) -> Entry {
    Entry {
        when: Matcher {
            role: Some(if name == "submit_review" {
                "reviewer".into()
            } else {
                "implementer".into()
            }),
            task: Some(task.into()),
            ..Matcher::default()
        },
        tool_calls: vec![ScriptedCall {
            name: name.into(),
            arguments,
        }],
        ..Entry::default()
    }
}

fn script() -> Script {
    let mut responses = vec![Entry {
        when: Matcher {
            role: Some("planner".into()),
            ..Matcher::default()
        },
        tool_calls: vec![ScriptedCall {
            name: "submit_plan".into(),
            arguments: json!({"tasks": [{"id": "t", "title": "Read the module, then write a summary", "instructions": "Read every file of src/, then write SUMMARY.md.", "depends_on": []}]}),
        }],
        ..Entry::default()
    }];
    for n in 0..FILES {
        responses.push(call(
            "t",
            "read_file",
            json!({"path": format!("src/f{n:02}.rs")}),
        ));
    }
    responses.push(call(
        "t",
        "write_file",
        json!({"path": "SUMMARY.md", "content": "A summary.\n"}),
    ));
    responses.push(call("t", "finish", json!({"summary": "wrote SUMMARY.md"})));
    responses.push(call(
        "t",
        "submit_review",
        json!({"verdict": "approve", "findings": []}),
    ));
    Script {
        responses,
        ..Script::default()
    }
}

/// Runs the plan with prompt caching on or off and returns what the implementer spent.
async fn run(caching: bool) -> Spend {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    for n in 0..FILES {
        let text: String = (0..40)
            .map(|l| format!("pub fn item_{n}_{l}(x: u32) -> u32 {{ x + {l} }}\n"))
            .collect();
        std::fs::write(dir.path().join(format!("src/f{n:02}.rs")), text).unwrap();
    }
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("bench", "bench@localhost").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "init", &tree, &[])
        .unwrap();

    let fake = FakeModel::start(script()).await.unwrap();
    let toml = format!(
        "[models.default]\nprovider = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-bench\"\n\
         prompt_caching = {caching}\nprice = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }}\n\
         [team]\nmax_turns = 40\n",
        fake.url()
    );
    let config = load_sources(&[Source {
        kind: SourceKind::UserFile,
        content: SourceText::Toml {
            path: "config.toml".into(),
            text: toml,
        },
    }])
    .config
    .unwrap();
    let git_repo = GitRepo::discover(dir.path()).unwrap();
    let store = Arc::new(Store::open(git_repo.state_dir()).unwrap());
    let (events, _) = tokio::sync::broadcast::channel(65_536);
    let context = TeamContext {
        repo: git_repo.clone(),
        store,
        models: Arc::new(Models::from_config(&config).unwrap()),
        config: Arc::new(config),
        events,
        registry: Default::default(),
    };
    let id = pitcrew::team::new_plan_id();
    let snapshot_id = id.clone();
    let snapshot = git_repo
        .run(move |r| git::snapshot::create(r, &snapshot_id, &[]))
        .await
        .unwrap();
    let plan = Plan::new(id, "benchmark".into(), snapshot.commit.to_string());
    let (_commands, receiver) = tokio::sync::mpsc::channel(1);
    let done = pitcrew::team::orchestrator::run(context, plan, receiver).await;
    assert_eq!(done.status, PlanStatus::Ready, "{:?}", done.outcome);
    let spend = done.spend_by_role[&pitcrew::config::Role::Implementer];
    assert_eq!(spend.calls as usize, TURNS, "a {TURNS}-turn task");
    spend
}

/// Input tokens as billed, in input-token equivalents.
fn billed_input(spend: &Spend) -> f64 {
    let uncached = spend.input_tokens - spend.cache_read_tokens - spend.cache_write_tokens;
    uncached as f64 + 0.1 * spend.cache_read_tokens as f64 + 1.25 * spend.cache_write_tokens as f64
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        report(&format!(
            "pitcrew caching benchmark on {}\nan implementer task of {TURNS} turns ({FILES} file reads, a write, a finish), Anthropic protocol, $3 / $15 per million tokens\n",
            machine()
        ));
        report("| prompt caching | prompt tokens | cache reads | cache writes | input billed (token equivalents) | output tokens | cost |\n|---|---|---|---|---|---|---|");
        let without = run(false).await;
        let with = run(true).await;
        for (label, spend) in [("off", &without), ("on", &with)] {
            report(&format!(
                "| {label} | {} | {} | {} | {:.0} | {} | ${:.4} |",
                spend.input_tokens,
                spend.cache_read_tokens,
                spend.cache_write_tokens,
                billed_input(spend),
                spend.output_tokens,
                spend.cost_usd
            ));
        }
        report(&format!(
            "\nWith caching the task bills {:.1}% of the input and costs {:.1}% of what it costs without (goal: under 30%); caching saved ${:.4}.",
            100.0 * billed_input(&with) / billed_input(&without),
            100.0 * with.cost_usd / without.cost_usd,
            with.saved_usd
        ));
    });
}
