//! The sandbox around everything pitcrew runs on an agent's behalf (checks now, external agents
//! later): a `Runner` runs a command for a task with given mounts, network and environment, and
//! `Sandbox` holds the policy and picks the runner.
//!
//! The local runner is bubblewrap (see docs/sandbox.md for why, and for what it allows): the
//! whole system read-only, the home directories hidden but for the toolchains, the task's
//! worktree and a private `/tmp` writable, new PID, network, IPC, UTS and user namespaces, and
//! the process tree killed with pitcrew. Without a working sandbox, nothing runs unconfined
//! unless the user said so (`[sandbox] mode = "off"` in their own configuration). Another
//! runner (a container runtime, a cluster's job runner) can take the same `RunSpec`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use super::redact::Redactor;
use super::supervisor::Supervised;
use crate::config::{Config, SandboxConfig, SandboxMode};

/// Variables passed through from pitcrew's environment: the locale, the terminal, and what
/// toolchains need to find themselves. Everything else stays out (tokens, keys, the user's
/// whole shell).
const PASSED_VARIABLES: [&str; 33] = [
    "PATH",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TZ",
    "NO_COLOR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "RUSTFLAGS",
    "RUST_BACKTRACE",
    "CARGO_TERM_COLOR",
    "CARGO_INCREMENTAL",
    "GOPATH",
    "GOROOT",
    "GOFLAGS",
    "GOMODCACHE",
    "GOCACHE",
    "JAVA_HOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "PYTHONPATH",
    "NODE_PATH",
    "NVM_DIR",
    "PKG_CONFIG_PATH",
    "CC",
    "CXX",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SOURCE_DATE_EPOCH",
];

/// Toolchain directories under the home directory that checks may read, when they exist.
const TOOLCHAIN_DIRS: [&str; 16] = [
    ".cargo",
    ".rustup",
    ".pyenv",
    ".nvm",
    ".volta",
    ".bun",
    ".deno",
    ".sdkman",
    ".local/bin",
    ".local/lib",
    ".cache/pip",
    ".npm",
    ".m2/repository",
    ".gradle/caches",
    ".gradle/wrapper",
    "go/pkg/mod",
];

/// Variables that name a toolchain's directory, which checks may read.
const TOOLCHAIN_VARIABLES: [&str; 13] = [
    "CARGO_HOME",
    "RUSTUP_HOME",
    "PYENV_ROOT",
    "NVM_DIR",
    "VOLTA_HOME",
    "BUN_INSTALL",
    "DENO_INSTALL",
    "SDKMAN_DIR",
    "GOROOT",
    "GOPATH",
    "JAVA_HOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
];

/// Directories whose `bin` (or `shims`) on PATH means the whole directory is a toolchain.
const TOOLCHAIN_ROOTS: [&str; 14] = [
    ".cargo", ".rustup", ".pyenv", ".rbenv", ".nodenv", ".goenv", ".jenv", ".nvm", ".volta",
    ".bun", ".deno", ".sdkman", ".asdf", ".poetry",
];

/// Files inside those directories that hold credentials: hidden even so.
const TOOLCHAIN_SECRETS: [&str; 2] = [".cargo/credentials", ".cargo/credentials.toml"];

/// Where the scratch home is inside the sandbox (in its private `/tmp`).
const SANDBOX_HOME: &str = "/tmp/home";

/// What to run, for which task, with what.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// A shell command line, run with `sh -c`.
    pub script: String,
    /// The task's worktree: the working directory, and writable.
    pub dir: PathBuf,
    /// May reach the network (loopback included).
    pub network: bool,
    /// Variables set for this run on top of the allow-list (`PITCREW_CHECK`).
    pub env: Vec<(String, String)>,
    /// Give the process a stdin pipe (an agent speaking a protocol); otherwise `/dev/null`.
    pub stdin: bool,
}

/// A started process and its claim on everything it starts.
#[derive(Debug)]
pub struct Running {
    pub child: tokio::process::Child,
    supervised: Supervised,
    /// The scratch home of an unconfined run, removed afterwards.
    _scratch: Option<tempfile::TempDir>,
    /// The cleaned git configuration bound into the sandbox, removed afterwards.
    _git_config: Option<tempfile::NamedTempFile>,
}

impl Running {
    /// Ends the process and everything it started.
    pub fn end(&self) {
        self.supervised.end();
    }
}

/// Runs commands for tasks, confined.
pub trait Runner: Send + Sync + std::fmt::Debug {
    /// What it is, for `pitcrew doctor` and the journal: "bubblewrap 0.8.0 (/usr/bin/bwrap)".
    fn describe(&self) -> String;
    /// Whether it keeps the network out when asked to (the unconfined runner cannot).
    fn confines(&self) -> bool;
    /// The command that runs `spec` confined, with `env` as its whole environment.
    fn command(
        &self,
        spec: &RunSpec,
        policy: &Policy,
        env: &[(String, String)],
    ) -> tokio::process::Command;
}

/// What a run may see and touch beyond its worktree: from `[sandbox]`, resolved.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Directories replaced by an empty tmpfs: every home directory, the user's working tree
    /// (its untracked `.env`, say), `/run` (the sockets of the session bus, systemd, docker and
    /// the key agents, which a read-only mount would not stop), each under its literal and its
    /// real path.
    pub hidden_dirs: Vec<PathBuf>,
    /// Readable paths, at the same place inside (toolchains, `[sandbox] read`).
    pub read: Vec<PathBuf>,
    /// Readable paths mounted at another place inside: (outside, inside).
    pub read_at: Vec<(PathBuf, PathBuf)>,
    /// Writable paths, at the same place inside (`[sandbox] write`).
    pub write: Vec<PathBuf>,
    /// The task's git directories, when the run is in a task worktree.
    pub git: Option<GitMounts>,
    /// Secrets hidden last, whatever was bound over them: (path, is a directory).
    pub secrets: Vec<(PathBuf, bool)>,
}

/// How a task worktree's repository is seen: the common git directory read-only (so git works,
/// and hooks, refs and config cannot change), with pitcrew's own state hidden and the
/// configuration replaced by a copy without remotes or credentials.
#[derive(Debug, Clone)]
pub struct GitMounts {
    pub common: PathBuf,
    /// A copy of `<common>/config` with only its `[core]` and `[extensions]`.
    pub config: Option<PathBuf>,
}

/// Bubblewrap, found and proven to work here.
#[derive(Debug, Clone)]
pub struct Bubblewrap {
    pub path: PathBuf,
    pub version: String,
}

impl Runner for Bubblewrap {
    fn describe(&self) -> String {
        format!("{} ({})", self.version, self.path.display())
    }

    fn confines(&self) -> bool {
        true
    }

    fn command(
        &self,
        spec: &RunSpec,
        policy: &Policy,
        env: &[(String, String)],
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.path);
        command
            .args(bwrap_args(spec, policy))
            .arg("sh")
            .arg("-c")
            .arg(&spec.script);
        command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// No confinement: the user turned the sandbox off.
#[derive(Debug, Clone)]
pub struct Unconfined;

impl Runner for Unconfined {
    fn describe(&self) -> String {
        "none: the sandbox is off ([sandbox] mode = \"off\"); checks run with your privileges"
            .into()
    }

    fn confines(&self) -> bool {
        false
    }

    fn command(
        &self,
        spec: &RunSpec,
        _: &Policy,
        env: &[(String, String)],
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&spec.script)
            .current_dir(&spec.dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// The arguments that confine `spec` in bubblewrap. Order matters: later mounts go over
/// earlier ones, so what is hidden comes before what is let back in, and secrets come last.
pub fn bwrap_args(spec: &RunSpec, policy: &Policy) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&std::ffi::OsStr]| args.extend(parts.iter().map(|p| p.to_os_string()));
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    push(&[
        os("--die-with-parent"),
        os("--new-session"),
        os("--unshare-all"),
    ]);
    if spec.network {
        push(&[os("--share-net")]);
    }
    push(&[os("--ro-bind"), os("/"), os("/")]);
    push(&[os("--dev"), os("/dev"), os("--proc"), os("/proc")]);
    push(&[os("--tmpfs"), os("/tmp")]);
    for dir in &policy.hidden_dirs {
        if !dir.starts_with("/tmp") {
            push(&[os("--tmpfs"), dir.as_os_str()]);
        }
    }
    if spec.network {
        // Name resolution, when it lives under the hidden /run.
        let resolve = Path::new("/run/systemd/resolve");
        if resolve.is_dir() {
            push(&[os("--ro-bind"), resolve.as_os_str(), resolve.as_os_str()]);
        }
    }
    push(&[os("--dir"), os(SANDBOX_HOME)]);
    for path in &policy.read {
        push(&[os("--ro-bind"), path.as_os_str(), path.as_os_str()]);
    }
    if let Some(git) = &policy.git {
        push(&[
            os("--ro-bind"),
            git.common.as_os_str(),
            git.common.as_os_str(),
        ]);
        if let Some(config) = &git.config {
            let target = git.common.join("config");
            push(&[os("--ro-bind"), config.as_os_str(), target.as_os_str()]);
        }
        // pitcrew's state (plans, transcripts, other tasks' worktrees) is not the check's.
        let state = git.common.join("pitcrew");
        push(&[os("--tmpfs"), state.as_os_str()]);
    }
    push(&[os("--bind"), spec.dir.as_os_str(), spec.dir.as_os_str()]);
    for (outside, inside) in &policy.read_at {
        push(&[os("--ro-bind"), outside.as_os_str(), inside.as_os_str()]);
    }
    for path in &policy.write {
        push(&[os("--bind"), path.as_os_str(), path.as_os_str()]);
    }
    for (path, is_dir) in &policy.secrets {
        if *is_dir {
            push(&[os("--tmpfs"), path.as_os_str()]);
            push(&[os("--remount-ro"), path.as_os_str()]);
        } else {
            push(&[os("--ro-bind"), os("/dev/null"), path.as_os_str()]);
        }
    }
    // What is hidden is read-only too: a write there fails, rather than landing in a copy that
    // vanishes (the mounts bound into it keep their own modes).
    for dir in &policy.hidden_dirs {
        if !dir.starts_with("/tmp") {
            push(&[os("--remount-ro"), dir.as_os_str()]);
        }
    }
    if let Some(git) = &policy.git {
        push(&[os("--remount-ro"), git.common.join("pitcrew").as_os_str()]);
    }
    push(&[os("--chdir"), spec.dir.as_os_str()]);
    args
}

/// The home directories: every one, and the user's.
fn home_dirs(home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/root", "/home"].iter().map(PathBuf::from).collect();
    dirs.extend(home.map(Path::to_path_buf));
    dirs.retain(|dir| dir.is_dir() && dir != Path::new("/"));
    dirs
}

/// `paths` and their real paths (a home directory reached through a link is hidden at both).
fn with_real_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for path in paths {
        if let Ok(real) = path.canonicalize()
            && real != path
        {
            all.push(real);
        }
        all.push(path);
    }
    all.sort();
    all.dedup();
    all
}

/// What stays hidden under the home directory even where a toolchain directory or a `write`
/// entry is bound over it: (relative path, is a directory).
const HOME_SECRETS: [(&str, bool); 24] = [
    (".ssh", true),
    (".aws", true),
    (".azure", true),
    (".gnupg", true),
    (".docker", true),
    (".kube", true),
    (".config/gh", true),
    (".config/gcloud", true),
    (".local/share/keyrings", true),
    (".password-store", true),
    (".netrc", false),
    (".git-credentials", false),
    (".npmrc", false),
    (".pypirc", false),
    (".vault-token", false),
    (".cargo/credentials", false),
    (".cargo/credentials.toml", false),
    (".bash_history", false),
    (".zsh_history", false),
    (".bashrc", false),
    (".zshrc", false),
    (".profile", false),
    (".bash_profile", false),
    (".python_history", false),
];

/// Finds bubblewrap and proves it can make a sandbox here (user namespaces may be off). Done
/// once per process.
pub fn bubblewrap() -> Result<Bubblewrap, String> {
    static FOUND: OnceLock<Result<Bubblewrap, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            // `PITCREW_BWRAP` names the binary to use; else the system's, or one on PATH in
            // a directory no project could have put there (not relative, not under a home
            // directory, /tmp or the current directory: a repository's fake `bwrap` that
            // runs checks unconfined must not be found).
            let untrusted: Vec<PathBuf> = home_dirs(home_dir().as_deref())
                .into_iter()
                .chain([PathBuf::from("/tmp"), PathBuf::from("/var/tmp")])
                .chain(std::env::current_dir().ok())
                .collect();
            let path = match std::env::var_os("PITCREW_BWRAP") {
                Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
                None => ["/usr/bin", "/usr/local/bin", "/bin"]
                    .iter()
                    .map(PathBuf::from)
                    .chain(
                        std::env::var_os("PATH")
                            .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|dir| {
                                dir.is_absolute()
                                    && !untrusted.iter().any(|bad| dir.starts_with(bad))
                            }),
                    )
                    .map(|dir| dir.join("bwrap"))
                    .find(|candidate| candidate.is_file()),
            }
            .ok_or_else(|| {
                "bubblewrap (`bwrap`) is not installed; install the `bubblewrap` package".to_owned()
            })?;
            let version = std::process::Command::new(&path)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|_| "bubblewrap".into());
            let probe = std::process::Command::new(&path)
                .args([
                    "--unshare-all",
                    "--die-with-parent",
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "true",
                ])
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|err| format!("{} cannot be run: {err}", path.display()))?;
            if !probe.status.success() {
                return Err(format!(
                    "{} cannot make a sandbox here (are unprivileged user namespaces disabled?): {}",
                    path.display(),
                    String::from_utf8_lossy(&probe.stderr).trim()
                ));
            }
            Ok(Bubblewrap { path, version })
        })
        .clone()
}

/// The sandbox policy of a configuration and the runner that carries it out, with the
/// redactor for what comes out. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    runner: Result<Arc<dyn Runner>, String>,
    config: SandboxConfig,
    redactor: Arc<Redactor>,
    /// The user's working tree, for `[sandbox] read` entries relative to it (`node_modules`).
    user_workdir: Option<PathBuf>,
}

impl Sandbox {
    pub fn new(config: &Config) -> Self {
        let runner: Result<Arc<dyn Runner>, String> = match config.sandbox.mode {
            SandboxMode::Off => Ok(Arc::new(Unconfined)),
            SandboxMode::Auto | SandboxMode::Bubblewrap => match bubblewrap() {
                Ok(bwrap) => Ok(Arc::new(bwrap)),
                Err(reason) => Err(format!(
                    "no sandbox is available: {reason}. Checks do not run unconfined unless you \
                     say so: set [sandbox] mode = \"off\" in your own configuration \
                     ($XDG_CONFIG_HOME/pitcrew/config.toml) to run them with your privileges"
                )),
            },
        };
        let named: Vec<String> = config
            .models
            .values()
            .filter_map(|m| m.api_key_env.clone())
            .collect();
        Self {
            runner,
            config: config.sandbox.clone(),
            redactor: Arc::new(Redactor::from_environment(&named)),
            user_workdir: None,
        }
    }

    /// The same sandbox, for tasks of the repository whose working tree is `workdir`.
    pub fn for_workdir(mut self, workdir: &Path) -> Self {
        self.user_workdir = Some(workdir.to_path_buf());
        self
    }

    /// The runner in use, or why there is none.
    pub fn runner(&self) -> Result<&Arc<dyn Runner>, &str> {
        self.runner.as_ref().map_err(String::as_str)
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// A redactor for a stream of output (a check's), which catches secrets split across reads.
    pub fn redacting_stream(&self) -> super::redact::RedactingStream {
        super::redact::RedactingStream::new(self.redactor.clone())
    }

    /// The default network setting of runs, from `[sandbox] network`.
    pub fn network(&self) -> bool {
        self.config.network
    }

    /// Starts `spec` in the sandbox, supervised, with stdout piped and stderr discarded.
    pub fn start(&self, spec: &RunSpec) -> Result<Running, String> {
        let runner = self.runner.as_ref().map_err(Clone::clone)?;
        let home = home_dir();
        let confined = runner.confines();
        let scratch = if confined {
            None
        } else {
            Some(tempfile::tempdir().map_err(|e| format!("cannot make a scratch home: {e}"))?)
        };
        let scratch_home = match &scratch {
            Some(dir) => dir.path().to_path_buf(),
            None => PathBuf::from(SANDBOX_HOME),
        };
        let env = self.environment(home.as_deref(), &scratch_home, spec);
        // The repository's configuration, without remotes and credentials, for git inside.
        let git_config = match crate::git::worktree::task_dirs(&spec.dir) {
            Some((_, common)) if confined => {
                let text = std::fs::read_to_string(common.join("config")).unwrap_or_default();
                let mut file = tempfile::NamedTempFile::new()
                    .map_err(|e| format!("cannot prepare the sandbox: {e}"))?;
                std::io::Write::write_all(&mut file, clean_git_config(&text).as_bytes())
                    .map_err(|e| format!("cannot prepare the sandbox: {e}"))?;
                Some(file)
            }
            _ => None,
        };
        let policy = self.policy(
            home.as_deref(),
            spec,
            git_config.as_ref().map(|f| f.path().to_path_buf()),
        );
        // Code that ran in the worktree before may have repointed its `.git` file.
        crate::git::worktree::repair_pointer(&spec.dir)
            .map_err(|e| format!("cannot prepare the worktree: {e}"))?;
        let mut command = runner.command(spec, &policy, &env);
        command
            .stdin(if spec.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let supervised = Supervised::prepare(&mut command);
        let child = command
            .spawn()
            .map_err(|err| format!("cannot start `{}`: {err}", spec.script))?;
        supervised.started(child.id());
        Ok(Running {
            child,
            supervised,
            _scratch: scratch,
            _git_config: git_config,
        })
    }

    /// The whole environment of a run: the allow-list, a scratch home, the toolchains' homes
    /// (which default to the real home), `[sandbox] env`, and the run's own variables.
    fn environment(
        &self,
        home: Option<&Path>,
        scratch_home: &Path,
        spec: &RunSpec,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| {
                PASSED_VARIABLES.contains(&name.as_str())
                    || name.starts_with("LC_")
                    || self.config.env.contains(name)
            })
            .collect();
        let set = |env: &mut Vec<(String, String)>, name: &str, value: String| {
            env.retain(|(n, _)| n != name);
            env.push((name.to_owned(), value));
        };
        // Toolchains that find themselves under $HOME keep finding themselves with a scratch
        // HOME: their homes are named, from the real home or from where PATH finds them.
        for (variable, dir) in [
            ("CARGO_HOME", ".cargo"),
            ("RUSTUP_HOME", ".rustup"),
            ("PYENV_ROOT", ".pyenv"),
        ] {
            if std::env::var_os(variable).is_some() {
                continue;
            }
            let found = home
                .map(|home| home.join(dir))
                .filter(|path| path.is_dir())
                .or_else(|| toolchain_on_path(dir));
            if let Some(path) = found {
                set(&mut env, variable, path.display().to_string());
            }
        }
        set(&mut env, "HOME", scratch_home.display().to_string());
        set(
            &mut env,
            "TMPDIR",
            if self.runner().is_ok_and(|r| r.confines()) {
                "/tmp".to_owned()
            } else {
                std::env::temp_dir().display().to_string()
            },
        );
        for (name, value) in &spec.env {
            set(&mut env, name, value.clone());
        }
        env
    }

    /// What a run of `spec` may see beyond its worktree. `git_config` is where a cleaned copy
    /// of the repository's configuration was written, if one was.
    fn policy(&self, home: Option<&Path>, spec: &RunSpec, git_config: Option<PathBuf>) -> Policy {
        let expand = |entry: &str| -> Option<PathBuf> {
            match entry.strip_prefix("~/") {
                Some(rest) => Some(home?.join(rest)),
                None if entry == "~" => home.map(Path::to_path_buf),
                None => Some(PathBuf::from(entry)),
            }
        };
        let homes = home_dirs(home);
        let mut hidden = homes.clone();
        hidden.extend(self.user_workdir.iter().cloned());
        hidden.push(PathBuf::from("/run"));
        let hidden = with_real_paths(hidden);
        let git = crate::git::worktree::task_dirs(&spec.dir).map(|(_, common)| GitMounts {
            common,
            config: git_config,
        });
        // What a binding must never bring back whole: a home directory, the user's working
        // tree, the repository's git directory, or anything that holds one of them.
        let mut precious: Vec<PathBuf> = hidden.clone();
        precious.extend(git.iter().map(|g| g.common.clone()));
        precious.push(PathBuf::from("/"));
        let brings_back = |path: &Path| precious.iter().any(|p| p.starts_with(path));
        let mut policy = Policy {
            hidden_dirs: hidden.clone(),
            git,
            ..Policy::default()
        };

        let mut toolchains: Vec<PathBuf> = Vec::new();
        if let Some(home) = home {
            toolchains.extend(TOOLCHAIN_DIRS.iter().map(|dir| home.join(dir)));
        }
        // Toolchains named by their variables, and those on PATH inside a hidden directory: a
        // known toolchain's root for its `bin` or `shims` (`/root/.cargo/bin` means
        // `/root/.cargo`), the directory itself otherwise (`~/bin`, never all of `~`).
        toolchains.extend(
            TOOLCHAIN_VARIABLES
                .iter()
                .filter_map(std::env::var_os)
                .map(PathBuf::from),
        );
        toolchains.extend(
            [".cargo", ".rustup", ".pyenv"]
                .iter()
                .filter_map(|dir| toolchain_on_path(dir)),
        );
        for entry in std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if !hidden.iter().any(|dir| entry.starts_with(dir)) {
                continue;
            }
            let root = entry.parent().filter(|parent| {
                matches!(
                    entry.file_name().and_then(|n| n.to_str()),
                    Some("bin" | "shims")
                ) && parent
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|name| TOOLCHAIN_ROOTS.contains(&name))
            });
            toolchains.push(root.map(Path::to_path_buf).unwrap_or(entry));
        }
        for dir in toolchains {
            let Ok(real) = dir.canonicalize() else {
                continue;
            };
            if real.is_dir()
                && !brings_back(&dir)
                && !brings_back(&real)
                && !policy.read.contains(&real)
            {
                policy.read.push(real);
            }
        }
        for entry in &self.config.read {
            let Some(path) = expand(entry) else { continue };
            if path.is_absolute() {
                if let Ok(real) = path.canonicalize() {
                    policy.read.push(real);
                }
            } else if let Some(workdir) = &self.user_workdir {
                // A path in the user's working tree (`node_modules`), seen at the same place
                // in the task's worktree; only if it really is in the working tree (a link in
                // the repository may lead anywhere).
                let inside = workdir
                    .canonicalize()
                    .ok()
                    .zip(workdir.join(&path).canonicalize().ok())
                    .filter(|(root, real)| real.starts_with(root) && real != root);
                if let Some((_, real)) = inside {
                    policy.read_at.push((real, spec.dir.join(&path)));
                }
            }
        }
        for entry in &self.config.write {
            if let Some(real) = expand(entry)
                .filter(|p| p.is_absolute())
                .and_then(|p| p.canonicalize().ok())
            {
                policy.write.push(real);
            }
        }
        // Whatever was bound above, the home directory's secrets stay out of sight.
        let bound: Vec<&PathBuf> = policy
            .read
            .iter()
            .chain(policy.write.iter())
            .chain(policy.read_at.iter().map(|(_, inside)| inside))
            .collect();
        for home in &homes {
            for (relative, is_dir) in HOME_SECRETS {
                for secret in with_real_paths(vec![home.join(relative)]) {
                    let exists = if is_dir {
                        secret.is_dir()
                    } else {
                        secret.is_file()
                    };
                    if exists
                        && bound.iter().any(|b| secret.starts_with(b))
                        && !policy.secrets.iter().any(|(s, _)| *s == secret)
                    {
                        policy.secrets.push((secret, is_dir));
                    }
                }
            }
        }
        for dir in policy.read.iter().chain(policy.write.iter()) {
            for file in TOOLCHAIN_SECRETS {
                let Some(name) = file.strip_prefix(".cargo/") else {
                    continue;
                };
                let secret = dir.join(name);
                if secret.is_file() && !policy.secrets.iter().any(|(s, _)| *s == secret) {
                    policy.secrets.push((secret, false));
                }
            }
        }
        policy
    }
}

/// A copy of the git configuration `text` with only what git needs to work in a worktree: its
/// `[core]` (less what runs commands or talks to remotes) and `[extensions]`. Remotes, their
/// URLs (which may hold a token), `http.*.extraheader`, credential helpers and includes go.
pub fn clean_git_config(text: &str) -> String {
    let mut kept = String::new();
    let mut keep = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let section = trimmed
                .trim_start_matches('[')
                .split([']', ' ', '"', '.'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            keep = (section == "core" || section == "extensions") && !trimmed.contains('"');
            if keep {
                kept.push_str(trimmed);
                kept.push('\n');
            }
            continue;
        }
        let key = trimmed
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let runs_something = [
            "sshcommand",
            "askpass",
            "fsmonitor",
            "editor",
            "pager",
            "hookspath",
            "gitproxy",
        ]
        .contains(&key.as_str());
        if keep && !runs_something && !trimmed.is_empty() {
            kept.push('\t');
            kept.push_str(trimmed);
            kept.push('\n');
        }
    }
    kept
}

/// What `Sandbox::probe` proved about the sandbox, for `pitcrew doctor`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    /// The runner: "bubblewrap 0.8.0 (/usr/bin/bwrap)", or why there is none.
    pub runner: String,
    /// A probe ran in it and every property held.
    pub ok: bool,
    /// Whether it confines at all (false with `mode = "off"`).
    pub confined: bool,
    /// From starting the sandboxed process to its end, for a command that does nothing much.
    pub startup_ms: u64,
    /// What was shown, one line each ("no network", ...), or what failed.
    pub facts: Vec<String>,
}

impl Sandbox {
    /// Runs a small script in the sandbox and checks what it could do: write its worktree but
    /// nothing else, see no home directory, no other process, no network.
    pub async fn probe(&self) -> Probe {
        let runner = match self.runner() {
            Ok(runner) => runner.clone(),
            Err(reason) => {
                return Probe {
                    runner: reason.to_owned(),
                    ok: false,
                    confined: false,
                    startup_ms: 0,
                    facts: Vec::new(),
                };
            }
        };
        let Ok(dir) = tempfile::tempdir() else {
            return Probe {
                runner: runner.describe(),
                ok: false,
                confined: runner.confines(),
                startup_ms: 0,
                facts: vec!["cannot make a directory to probe in".into()],
            };
        };
        let home = home_dir().unwrap_or_else(|| PathBuf::from("/root"));
        let script = format!(
            "touch probe && echo worktree=yes; \
             touch /pitcrew-probe 2>/dev/null && echo root=yes; rm -f /pitcrew-probe; \
             ls -A {home} 2>/dev/null | grep -qx .ssh && echo ssh=yes; \
             echo processes=$(ls /proc | grep -c '^[0-9]'); \
             echo interfaces=$(tail -n +3 /proc/net/dev | grep -vc ' lo:')",
            home = shell_quote(&home.display().to_string())
        );
        let spec = RunSpec {
            script,
            dir: dir.path().to_path_buf(),
            network: self.network(),
            env: Vec::new(),
            stdin: false,
        };
        let started = std::time::Instant::now();
        let output = match self.start(&spec) {
            Ok(running) => running.child.wait_with_output().await,
            Err(reason) => Err(std::io::Error::other(reason)),
        };
        let startup_ms = started.elapsed().as_millis() as u64;
        let text = match output {
            Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
            Err(err) => {
                return Probe {
                    runner: runner.describe(),
                    ok: false,
                    confined: runner.confines(),
                    startup_ms,
                    facts: vec![format!("the probe did not run: {err}")],
                };
            }
        };
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
        };
        let mut facts = Vec::new();
        let mut ok = true;
        let mut fact = |holds: bool, good: &str, bad: String| {
            ok &= holds;
            facts.push(if holds { good.to_owned() } else { bad });
        };
        fact(
            value("worktree").is_some(),
            "writes its worktree",
            "could NOT write its worktree".into(),
        );
        fact(
            value("root").is_none(),
            "writes nothing outside it but a private /tmp",
            "could write outside its worktree (/)".into(),
        );
        fact(
            value("ssh").is_none(),
            "sees no secrets in the home directory",
            format!("could see {}/.ssh", home.display()),
        );
        let processes: u32 = value("processes").and_then(|n| n.parse().ok()).unwrap_or(0);
        fact(
            processes <= 8,
            &format!("sees only its own processes ({processes})"),
            format!("sees {processes} processes, pitcrew's among them"),
        );
        let interfaces: u32 = value("interfaces")
            .and_then(|n| n.parse().ok())
            .unwrap_or(99);
        if self.network() {
            facts.push("may use the network ([sandbox] network = true)".into());
        } else {
            fact(
                interfaces == 0,
                "has no network",
                format!("has {interfaces} network interfaces"),
            );
        }
        Probe {
            runner: runner.describe(),
            ok: ok || !runner.confines(),
            confined: runner.confines() && ok,
            startup_ms,
            facts,
        }
    }
}

/// `text` quoted for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A toolchain directory named `dir` (`.cargo`) that a PATH entry lies in (`/x/.cargo/bin`),
/// or beside one (`.rustup` beside `/x/.cargo`).
fn toolchain_on_path(dir: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).find_map(|entry| {
        entry.ancestors().find_map(|ancestor| {
            let parent = ancestor.parent()?;
            let candidate = parent.join(dir);
            (ancestor.file_name()?.to_str()?.starts_with('.') && candidate.is_dir())
                .then_some(candidate)
        })
    })
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute() && home != Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn hidden_first_then_let_back_in_and_secrets_last() {
        let spec = RunSpec {
            script: "true".into(),
            dir: PathBuf::from("/nowhere/wt"),
            network: false,
            env: Vec::new(),
            stdin: false,
        };
        let policy = Policy {
            hidden_dirs: vec![PathBuf::from("/home"), PathBuf::from("/run")],
            read: vec![PathBuf::from("/home/u/.cargo")],
            read_at: Vec::new(),
            write: vec![PathBuf::from("/home/u/.cargo")],
            git: Some(GitMounts {
                common: PathBuf::from("/nowhere/.git"),
                config: Some(PathBuf::from("/tmp/clean-config")),
            }),
            secrets: vec![(PathBuf::from("/home/u/.cargo/credentials.toml"), false)],
        };
        let args = strings(&bwrap_args(&spec, &policy));
        let at = |needle: &[&str]| {
            args.windows(needle.len())
                .position(|w| w == needle)
                .unwrap_or_else(|| panic!("{needle:?} not in {args:?}"))
        };
        assert!(!args.contains(&"--share-net".to_owned()));
        let root = at(&["--ro-bind", "/", "/"]);
        let tmp = at(&["--tmpfs", "/tmp"]);
        let home = at(&["--tmpfs", "/home"]);
        assert!(root < tmp && root < home && root < at(&["--tmpfs", "/run"]));
        let toolchain = at(&["--ro-bind", "/home/u/.cargo", "/home/u/.cargo"]);
        assert!(home < toolchain);
        let git = at(&["--ro-bind", "/nowhere/.git", "/nowhere/.git"]);
        assert!(git < at(&["--ro-bind", "/tmp/clean-config", "/nowhere/.git/config"]));
        assert!(git < at(&["--tmpfs", "/nowhere/.git/pitcrew"]));
        let worktree = at(&["--bind", "/nowhere/wt", "/nowhere/wt"]);
        assert!(git < worktree);
        let write = at(&["--bind", "/home/u/.cargo", "/home/u/.cargo"]);
        let secret = at(&["--ro-bind", "/dev/null", "/home/u/.cargo/credentials.toml"]);
        assert!(
            secret > write && secret > toolchain,
            "secrets are hidden last"
        );
        assert_eq!(args.last().map(String::as_str), Some("/nowhere/wt"));
        let networked = strings(&bwrap_args(
            &RunSpec {
                network: true,
                ..spec
            },
            &policy,
        ));
        assert!(networked.contains(&"--share-net".to_owned()));
    }

    #[test]
    fn the_git_configuration_keeps_no_remote_or_credential() {
        let config = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tsshCommand = evil\n\tfsmonitor = ./x\n[remote \"origin\"]\n\turl = https://user:ghp_token@github.com/a/b\n[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic c2VjcmV0\n[credential]\n\thelper = store\n[include]\n\tpath = ~/.gitconfig-work\n[extensions]\n\tworktreeConfig = true\n";
        let clean = clean_git_config(config);
        assert_eq!(
            clean,
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n[extensions]\n\tworktreeConfig = true\n"
        );
    }
}
