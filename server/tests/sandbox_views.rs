//! What a check sees of the machine, through the sandbox's own interface with real bubblewrap,
//! for a repository outside `/tmp` and the home directory (where nothing else would hide it).

use std::path::Path;

use pitcrew::agents::sandbox::{RunSpec, Sandbox};
use pitcrew::config::Config;

async fn run(sandbox: &Sandbox, dir: &Path, script: &str) -> String {
    let spec = RunSpec {
        script: format!("exec 2>&1\n{script}"),
        dir: dir.to_path_buf(),
        network: false,
        env: Vec::new(),
        stdin: false,
    };
    let running = sandbox.start(&spec).expect("the sandbox starts");
    let output = running.child.wait_with_output().await.unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_users_working_tree_is_hidden_but_for_git_and_the_worktree() {
    // /var/tmp: neither /tmp nor a home directory.
    let dir = tempfile::Builder::new()
        .prefix("pitcrew-sandbox-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("src.txt"), "code\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("src.txt")).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@t").unwrap();
    let head = repo
        .commit(Some("HEAD"), &signature, &signature, "init", &tree, &[])
        .unwrap();
    // The user's untracked secret, and a file of theirs.
    std::fs::write(dir.path().join(".env"), "TOKEN=untracked-secret\n").unwrap();
    let worktree = pitcrew::git::worktree::ensure(&repo, "p", "t", head).unwrap();

    let sandbox = Sandbox::new(&Config::default()).for_workdir(dir.path());
    let workdir = dir.path().display();
    let seen = run(
        &sandbox,
        &worktree.path,
        &format!(
            "cat {workdir}/.env || echo no-env; ls -A {workdir}; \
             cat src.txt; git log --oneline | wc -l; \
             touch {workdir}/.git/hooks/x || echo no-hook"
        ),
    )
    .await;
    assert!(!seen.contains("untracked-secret"), "{seen}");
    assert!(seen.contains("no-env"), "{seen}");
    // Of the user's tree, only .git is there; the worktree has its files; git works.
    let listing: Vec<&str> = seen
        .lines()
        .filter(|l| *l == ".git" || *l == "src.txt")
        .collect();
    assert_eq!(listing, [".git"], "{seen}");
    assert!(seen.contains("code\n1\n"), "{seen}");
    assert!(seen.contains("no-hook"), "{seen}");
    assert!(!dir.path().join(".git/hooks/x").exists());
}
