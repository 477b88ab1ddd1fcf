//! The `pitcrew` binary: parses the command line and runs a subcommand.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pitcrew::cli;

#[derive(Debug, Parser)]
#[command(
    name = "pitcrew",
    version,
    about = "A team of coding agents behind your editor, as a language server",
    long_about = "A team of coding agents behind your editor, as a language server.\n\n\
        Without a subcommand, pitcrew serves LSP on stdio when stdin is not a terminal \
        (that is how editors start it) and prints this help otherwise."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Language Server Protocol on stdin/stdout (what editors run).
    Lsp {
        /// Accepted for editors that pass it; stdio is the only transport.
        #[arg(long, hide = true)]
        stdio: bool,
    },
    /// Plan and run the team on a goal in the current repository, headless.
    Run {
        /// What the team should achieve.
        goal: String,
        /// Apply the integrated result to the working tree without asking.
        #[arg(long)]
        yes: bool,
        /// Print machine-readable JSON instead of progress lines.
        #[arg(long)]
        json: bool,
        /// Answer every question this way when nobody is at a terminal: retry, send_back,
        /// continue or abort (the default). An answer a question does not offer means abort.
        #[arg(long, value_name = "CHOICE")]
        answer: Option<String>,
    },
    /// Ask the planner for a plan without running it; `pitcrew run` with the same goal runs it.
    Plan {
        /// What the plan should achieve.
        goal: String,
        #[arg(long)]
        json: bool,
    },
    /// Show the state of plans in the current repository.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show the journal: who did what, when, why, at what cost.
    Log {
        #[arg(long)]
        json: bool,
        /// Only this plan's entries.
        #[arg(long)]
        plan: Option<String>,
    },
    /// Apply a ready plan's result to the working tree, merging with your edits.
    Apply {
        /// The plan (default: the most recent ready one).
        plan: Option<String>,
        /// Apply even though HEAD has left the commit the plan started from (without it,
        /// pitcrew asks at a terminal and refuses elsewhere).
        #[arg(long)]
        force: bool,
    },
    /// Remove what finished plans (applied, discarded, failed) keep in the repository: their
    /// branches, worktrees and snapshots. Their records and the journal stay.
    Clean {
        /// Only plans that ended at least this many days ago.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<f64>,
        /// Say what would be removed, and how much, without removing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the configuration and the models it names.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Run the whole team on a sample project against a scripted model: no account needed.
    ///
    /// Creates a git repository with a small Rust project, starts the fake model server on
    /// loopback with a bundled scenario, and runs `pitcrew run` there. Needs `cargo` for the
    /// sample's tests; no key and no network.
    Demo {
        /// Where to create the sample repository (new or empty); default: a new temporary
        /// directory, kept afterwards.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// How long each scripted model answer takes, in milliseconds.
        #[arg(long, default_value_t = 300)]
        latency_ms: u64,
    },
    /// Serve the fake model (OpenAI and Anthropic protocols) on loopback, from a script.
    ///
    /// Prints the base URL on the first line of stdout, then serves until interrupted. The
    /// script format is described in docs/fake-model.md.
    FakeModel {
        /// A scenario file (JSON, or TOML by extension); without one, every request gets an error.
        #[arg(long)]
        script: Option<std::path::PathBuf>,
        /// The port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let command = match args.command {
        Some(command) => command,
        None if !std::io::stdin().is_terminal() => Command::Lsp { stdio: true },
        None => {
            use clap::CommandFactory;
            let _ = Args::command().print_help();
            return ExitCode::from(2);
        }
    };
    init_logging(matches!(command, Command::Lsp { .. }));
    let code = match command {
        Command::Lsp { .. } => run_async(pitcrew::lsp::serve_stdio()),
        Command::Doctor { json } => match std::env::current_dir() {
            Ok(cwd) => run_async(cli::doctor::run(&cli::workspace::find_root(&cwd), json)),
            Err(err) => {
                cli::output::error(&format!("pitcrew doctor: no current directory: {err}"));
                1
            }
        },
        Command::Run {
            goal,
            yes,
            json,
            answer,
        } => with_cwd("run", |cwd| {
            let options = cli::run::RunOptions {
                goal,
                yes,
                json,
                answer,
                plan_only: false,
            };
            run_async(cli::run::run(&cwd, options))
        }),
        Command::Plan { goal, json } => with_cwd("plan", |cwd| {
            let options = cli::run::RunOptions {
                goal,
                yes: false,
                json,
                answer: None,
                plan_only: true,
            };
            run_async(cli::run::run(&cwd, options))
        }),
        Command::Status { json } => with_cwd("status", |cwd| cli::plans::status(&cwd, json)),
        Command::Log { json, plan } => {
            with_cwd("log", |cwd| cli::plans::log(&cwd, json, plan.as_deref()))
        }
        Command::Apply { plan, force } => with_cwd("apply", |cwd| {
            run_async(cli::plans::apply(&cwd, plan.as_deref(), force))
        }),
        Command::Clean {
            older_than,
            dry_run,
        } => with_cwd("clean", |cwd| {
            run_async(cli::plans::clean(&cwd, older_than, dry_run))
        }),
        Command::Demo { dir, latency_ms } => {
            run_async(cli::demo::run(cli::demo::DemoOptions { dir, latency_ms }))
        }
        Command::FakeModel { script, port } => {
            run_async(cli::fake_model::run(script.as_deref(), port))
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn with_cwd(command: &str, run: impl FnOnce(std::path::PathBuf) -> i32) -> i32 {
    match std::env::current_dir() {
        Ok(cwd) => run(cwd),
        Err(err) => {
            cli::output::error(&format!("pitcrew {command}: no current directory: {err}"));
            1
        }
    }
}

fn run_async<F: std::future::Future<Output = i32>>(future: F) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            cli::output::error(&format!("pitcrew: cannot start the async runtime: {err}"));
            return 1;
        }
    };
    // SIGTERM (a service manager, `timeout`, an editor that gives up on `exit`) and SIGHUP (the
    // terminal closed) end the command like its own end: nothing pitcrew started outlives it.
    let code = runtime.block_on(async {
        tokio::select! {
            code = future => code,
            signal = termination() => {
                tracing::warn!("{signal}: stopping; unfinished plans resume on the next start");
                if signal == "SIGHUP" { 129 } else { 143 }
            }
        }
    });
    // A read of stdin may still be parked on a blocking thread; do not wait for it.
    runtime.shutdown_background();
    pitcrew::shutdown();
    code
}

/// The first of SIGTERM and SIGHUP, by name.
async fn termination() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = hangup.recv() => "SIGHUP",
    }
}

/// Logs go to stderr (stdout belongs to the protocol), filtered by `PITCREW_LOG`, else
/// `RUST_LOG`, else `info` for the server and `warn` for the CLI.
fn init_logging(serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter = ["PITCREW_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
