//! The git layer on real throwaway repositories full of the user's work in progress: whatever
//! pitcrew does, the user's working tree, index, HEAD and stash stay byte-for-byte as they were,
//! and `git fsck` stays clean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use git2::{Oid, Repository};
use pitcrew::git::apply::apply_to_workdir;
use pitcrew::git::commit::commit_all;
use pitcrew::git::diff::{ChangeKind, diff};
use pitcrew::git::merge::{MergeOutcome, merge_into, trial_merge};
use pitcrew::git::snapshot::{self, Buffer};
use pitcrew::git::worktree;
use pitcrew_tests::repo::{TestRepo, files_of};

/// A repository with every kind of work in progress a user has.
fn busy_repo() -> TestRepo {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    repo.write(".gitignore", "target/\n*.log\n");
    repo.write("a.txt", "a1\na2\na3\n");
    repo.write("b.txt", "b1\nb2\n");
    repo.write("c.txt", "c1\n");
    repo.write("d.txt", "to be deleted\n");
    repo.write("src/lib.rs", "pub fn one() -> u32 { 1 }\n");
    repo.write("script.sh", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(
        repo.path().join("script.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("a.txt", repo.path().join("link")).unwrap();
    repo.commit_all("initial");
    // A stash entry the user keeps.
    repo.write("b.txt", "b1\nstashed\n");
    repo.git(&["stash", "push", "-q", "-m", "keep me"]);
    // Staged, unstaged, staged-then-modified, untracked, ignored, deleted.
    repo.write("a.txt", "a1\nA2 staged\na3\n");
    repo.git(&["add", "a.txt"]);
    repo.write("b.txt", "b1\nb2 unstaged\n");
    repo.write("c.txt", "c1 staged\n");
    repo.git(&["add", "c.txt"]);
    repo.write("c.txt", "c1 staged then edited\n");
    repo.write("new.txt", "untracked\n");
    repo.write("target/debug/out.bin", "ignored build output\n");
    repo.write("notes.log", "ignored log\n");
    std::fs::remove_file(repo.path().join("d.txt")).unwrap();
    repo
}

fn tree_files(repo: &Repository, commit: Oid) -> BTreeMap<String, (String, i32)> {
    let tree = repo.find_commit(commit).unwrap().tree().unwrap();
    let mut files = BTreeMap::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let blob = repo.find_blob(entry.id()).unwrap();
            files.insert(
                format!("{dir}{}", entry.name().unwrap()),
                (
                    String::from_utf8_lossy(blob.content()).into_owned(),
                    entry.filemode(),
                ),
            );
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    files
}

#[test]
fn a_snapshot_is_what_the_user_sees_and_touches_nothing() {
    let repo = busy_repo();
    let before = repo.user_state();
    let git = repo.open();
    let buffers = vec![
        Buffer {
            path: repo.path().join("src/lib.rs"),
            text: "pub fn one() -> u32 { 1 }\npub fn unsaved() {}\n".into(),
        },
        Buffer {
            path: "brand/new.rs".into(),
            text: "// never saved\n".into(),
        },
        Buffer {
            path: repo.path().join("target/debug/x.rs"),
            text: "ignored".into(),
        },
        Buffer {
            path: "/somewhere/else.rs".into(),
            text: "outside".into(),
        },
    ];
    let snapshot = snapshot::create(&git, "s1", &buffers).unwrap();

    assert_eq!(
        repo.user_state(),
        before,
        "the snapshot changed the user's state"
    );
    let files = tree_files(&git, snapshot.commit);
    let text = |path: &str| files.get(path).map(|(text, _)| text.as_str());
    assert_eq!(text("a.txt"), Some("a1\nA2 staged\na3\n"));
    assert_eq!(text("b.txt"), Some("b1\nb2 unstaged\n"));
    assert_eq!(text("c.txt"), Some("c1 staged then edited\n"));
    assert_eq!(text("new.txt"), Some("untracked\n"));
    assert_eq!(text("d.txt"), None, "deleted in the working tree");
    assert_eq!(text("notes.log"), None, "ignored");
    assert!(!files.keys().any(|p| p.starts_with("target/")), "ignored");
    assert_eq!(
        text("src/lib.rs"),
        Some("pub fn one() -> u32 { 1 }\npub fn unsaved() {}\n")
    );
    assert_eq!(text("brand/new.rs"), Some("// never saved\n"));
    assert_eq!(files["script.sh"].1, 0o100755);
    assert_eq!(files["link"], ("a.txt".into(), 0o120000));
    assert_eq!(
        snapshot
            .skipped_buffers
            .iter()
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>(),
        ["ignored by git", "outside the repository"]
    );
    // Kept alive by its ref, with HEAD as parent.
    assert_eq!(
        repo.git(&["rev-parse", "refs/pitcrew/snapshots/s1"]).trim(),
        snapshot.commit.to_string()
    );
    assert_eq!(snapshot.head, Some(repo.head()));
    let parent = git
        .find_commit(snapshot.commit)
        .unwrap()
        .parent_id(0)
        .unwrap();
    assert_eq!(parent, repo.head());
    repo.assert_fsck_clean();
}

#[test]
fn a_clean_tree_snapshots_to_head_and_an_empty_repository_works() {
    let repo = TestRepo::new();
    repo.write("x.txt", "x\n");
    // No commits yet: the snapshot has no parent.
    let snapshot = snapshot::create(&repo.open(), "unborn", &[]).unwrap();
    assert_eq!(snapshot.head, None);
    assert_eq!(tree_files(&repo.open(), snapshot.commit)["x.txt"].0, "x\n");
    repo.commit_all("first");
    let clean = snapshot::create(&repo.open(), "clean", &[]).unwrap();
    assert_eq!(clean.commit, repo.head(), "nothing to add: HEAD itself");
    assert!(snapshot::create(&repo.open(), "../evil", &[]).is_err());
}

#[test]
fn a_task_from_snapshot_to_merge_to_cleanup_leaves_the_user_untouched() {
    let repo = busy_repo();
    let before = repo.user_state();
    let git = repo.open();
    let buffers = [Buffer {
        path: "src/lib.rs".into(),
        text: "pub fn one() -> u32 { 1 }\n// unsaved edit\n".into(),
    }];
    let snapshot = snapshot::create(&git, "p1", &buffers).unwrap();

    let task = worktree::ensure(&git, "p1", "t1", snapshot.commit).unwrap();
    assert!(!task.reused);
    assert_eq!(task.branch, "pitcrew/p1/t1");
    assert!(
        task.path
            .starts_with(repo.path().join(".git/pitcrew/worktrees"))
    );
    // The agent sees the unsaved buffer and the untracked file.
    assert_eq!(
        std::fs::read_to_string(task.path.join("src/lib.rs")).unwrap(),
        "pub fn one() -> u32 { 1 }\n// unsaved edit\n"
    );
    assert!(task.path.join("new.txt").is_file());
    assert!(!task.path.join("d.txt").exists());

    // The agent's work, committed once however often we ask.
    std::fs::write(
        task.path.join("src/lib.rs"),
        "pub fn one() -> u32 { 1 }\n// unsaved edit\npub fn two() -> u32 { 2 }\n",
    )
    .unwrap();
    std::fs::write(task.path.join("added.rs"), "// new\n").unwrap();
    std::fs::remove_file(task.path.join("b.txt")).unwrap();
    let commit = commit_all(
        &task.path,
        "t1: add two\n\nRole: implementer",
        "implementer",
    )
    .unwrap()
    .expect("a commit");
    assert_eq!(
        commit_all(&task.path, "again", "implementer").unwrap(),
        None
    );
    let message = git.find_commit(commit).unwrap();
    assert_eq!(message.author().name().unwrap(), "pitcrew implementer");

    // Asking again reuses the worktree and its work.
    let again = worktree::ensure(&git, "p1", "t1", snapshot.commit).unwrap();
    assert!(again.reused);
    assert_eq!(again.path, task.path);
    assert_eq!(again.head, commit);

    // Per file and per hunk.
    let changes = diff(&git, snapshot.commit, commit).unwrap();
    let kinds: Vec<(&str, ChangeKind)> =
        changes.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("added.rs", ChangeKind::Added),
            ("b.txt", ChangeKind::Deleted),
            ("src/lib.rs", ChangeKind::Modified)
        ]
    );
    let lib = &changes[2];
    assert_eq!(lib.hunks.len(), 1);
    assert_eq!((lib.hunks[0].new_start, lib.hunks[0].new_lines), (1, 3));
    assert!(
        lib.hunks[0]
            .lines
            .iter()
            .any(|l| l.origin == '+' && l.content.contains("two"))
    );
    assert_eq!(
        lib.old_text.as_deref(),
        Some("pub fn one() -> u32 { 1 }\n// unsaved edit\n")
    );

    // Into an integration branch, then the task is removed.
    let outcome = merge_into(&git, "pitcrew/p1/integration", snapshot.commit, "start").unwrap();
    assert_eq!(outcome, MergeOutcome::FastForward(snapshot.commit));
    let outcome = merge_into(&git, "pitcrew/p1/integration", commit, "merge t1").unwrap();
    assert_eq!(outcome, MergeOutcome::FastForward(commit));
    worktree::remove(&git, "p1", "t1", true).unwrap();
    assert!(!task.path.exists());
    assert!(!repo.git(&["worktree", "list"]).contains("pitcrew"));
    assert!(repo.git(&["branch", "--list", "pitcrew/p1/t1"]).is_empty());

    assert_eq!(repo.user_state(), before, "the user's state changed");
    repo.assert_fsck_clean();
}

#[test]
fn task_worktrees_are_locked_against_the_users_prune() {
    let repo = busy_repo();
    let git = repo.open();
    let task = worktree::ensure(&git, "p", "t", repo.head()).unwrap();
    repo.git(&["worktree", "prune"]);
    let list = repo.git(&["worktree", "list", "--porcelain"]);
    assert!(list.contains(&task.path.display().to_string()), "{list}");
    assert!(
        list.contains("locked pitcrew: task t in progress"),
        "{list}"
    );
    worktree::release(&git, "p", "t").unwrap();
    assert!(
        !repo
            .git(&["worktree", "list", "--porcelain"])
            .contains("locked")
    );
}

#[test]
fn merges_of_conflicting_tasks_list_both_sides_and_change_nothing() {
    let repo = TestRepo::new();
    repo.write(
        "shared.rs",
        "fn a() {}\nfn b() {}\nfn c() {}\nfn d() {}\nfn e() {}\n",
    );
    repo.write("other.rs", "one\n");
    repo.commit_all("base");
    let base = repo.head();
    let git = repo.open();
    let edit = |task: &str, shared: &str, other: Option<&str>| {
        let wt = worktree::ensure(&git, "p", task, base).unwrap();
        std::fs::write(wt.path.join("shared.rs"), shared).unwrap();
        if let Some(other) = other {
            std::fs::write(wt.path.join("other.rs"), other).unwrap();
        }
        commit_all(&wt.path, task, "implementer").unwrap().unwrap()
    };
    let left = edit(
        "left",
        "fn a() {}\nfn b() { left }\nfn c() {}\nfn d() {}\nfn e() {}\n",
        None,
    );
    let right = edit(
        "right",
        "fn a() {}\nfn b() { right }\nfn c() {}\nfn d() {}\nfn e() {}\n",
        Some("two\n"),
    );
    // Two untouched lines away from the others' edits (adjacent edits conflict, as in git).
    let disjoint = edit(
        "disjoint",
        "fn a() {}\nfn b() {}\nfn c() {}\nfn d() {}\nfn e() { last }\n",
        None,
    );

    // Predicted before either is merged.
    let conflicts = trial_merge(&git, left, right).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].path, "shared.rs");
    assert_eq!(conflicts[0].regions.len(), 1);
    assert_eq!(conflicts[0].regions[0].ours, "fn b() { left }\n");
    assert_eq!(conflicts[0].regions[0].theirs, "fn b() { right }\n");
    assert!(trial_merge(&git, left, disjoint).unwrap().is_empty());

    merge_into(&git, "pitcrew/p/integration", base, "start").unwrap();
    assert!(matches!(
        merge_into(&git, "pitcrew/p/integration", left, "merge left").unwrap(),
        MergeOutcome::FastForward(_)
    ));
    let integration_before = repo.git(&["rev-parse", "pitcrew/p/integration"]);
    let MergeOutcome::Conflicts(conflicts) =
        merge_into(&git, "pitcrew/p/integration", right, "merge right").unwrap()
    else {
        panic!("expected conflicts");
    };
    assert_eq!(
        conflicts[0].ours.as_deref(),
        Some("fn a() {}\nfn b() { left }\nfn c() {}\nfn d() {}\nfn e() {}\n")
    );
    assert_eq!(
        conflicts[0].theirs.as_deref(),
        Some("fn a() {}\nfn b() { right }\nfn c() {}\nfn d() {}\nfn e() {}\n")
    );
    assert_eq!(
        repo.git(&["rev-parse", "pitcrew/p/integration"]),
        integration_before,
        "a conflicting merge moves nothing"
    );
    let MergeOutcome::Merged(merged) =
        merge_into(&git, "pitcrew/p/integration", disjoint, "merge disjoint").unwrap()
    else {
        panic!("expected a merge commit");
    };
    assert_eq!(
        tree_files(&git, merged)["shared.rs"].0,
        "fn a() {}\nfn b() { left }\nfn c() {}\nfn d() {}\nfn e() { last }\n"
    );
    repo.assert_fsck_clean();
}

#[test]
fn crash_leftovers_are_recovered_and_live_locks_left_alone() {
    let repo = busy_repo();
    let before = repo.user_state();
    let git = repo.open();
    let head = repo.head();

    // A task with committed work whose worktree creation was cut short by a crash.
    let task = worktree::ensure(&git, "p", "half", head).unwrap();
    std::fs::write(task.path.join("work.txt"), "committed work\n").unwrap();
    let committed = commit_all(&task.path, "work", "implementer")
        .unwrap()
        .unwrap();
    std::fs::write(task.path.join("scratch.txt"), "uncommitted scratch\n").unwrap();
    std::fs::remove_file(
        repo.path()
            .join(".git/worktrees/pitcrew-p-half/pitcrew-ready"),
    )
    .unwrap();
    // A directory nobody registered, as if killed between mkdir and registration.
    let orphan = repo.path().join(".git/pitcrew/worktrees/p-orphan");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("partial.txt"), "partial\n").unwrap();
    // Locks: one left by a killed process two minutes ago, one a live process just took, and
    // the user's own index lock, which is not pitcrew's to judge.
    let healthy = worktree::ensure(&git, "p", "healthy", head).unwrap();
    let admin = repo.path().join(".git/worktrees/pitcrew-p-healthy");
    let stale = admin.join("index.lock");
    std::fs::write(&stale, "").unwrap();
    let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    let stale_ref = repo.path().join(".git/refs/heads/pitcrew/p/healthy.lock");
    std::fs::write(&stale_ref, "").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale_ref)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    let fresh = admin.join("HEAD.lock");
    std::fs::write(&fresh, "").unwrap();
    let users_lock = repo.path().join(".git/index.lock");
    std::fs::write(&users_lock, "").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&users_lock)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();

    let recovery = worktree::recover(&git).unwrap();
    assert_eq!(recovery.pruned, ["pitcrew-p-half"]);
    assert_eq!(recovery.stale_locks_removed.len(), 2, "{recovery:?}");
    assert!(!stale.exists() && !stale_ref.exists());
    assert_eq!(recovery.fresh_locks_kept, std::slice::from_ref(&fresh));
    assert!(fresh.exists(), "another process's fresh lock is left alone");
    assert!(users_lock.exists(), "the user's lock is not pitcrew's");
    assert!(
        healthy.path.exists(),
        "a healthy worktree survives recovery"
    );
    // Nothing is lost: what could not be accounted for is in the trash.
    let trash: Vec<PathBuf> = std::fs::read_dir(repo.path().join(".git/pitcrew/trash"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(trash.len(), 2, "{trash:?}");
    assert!(trash.iter().any(|t| t.join("scratch.txt").is_file()));
    assert!(trash.iter().any(|t| t.join("partial.txt").is_file()));

    // The task restarts from its branch, with its committed work.
    std::fs::remove_file(&users_lock).unwrap();
    let restarted = worktree::ensure(&git, "p", "half", head).unwrap();
    assert!(!restarted.reused);
    assert_eq!(restarted.head, committed);
    assert_eq!(
        std::fs::read_to_string(restarted.path.join("work.txt")).unwrap(),
        "committed work\n"
    );
    std::fs::remove_file(&fresh).unwrap();
    assert_eq!(repo.user_state(), before);
    repo.assert_fsck_clean();
}

#[test]
fn applying_a_result_merges_with_the_users_newer_edits_and_applies_nothing_while_a_file_conflicts()
{
    let repo = TestRepo::new();
    let lines: String = (1..=12).map(|i| format!("line {i}\n")).collect();
    repo.write("a.txt", &lines);
    repo.write("b.txt", "b\n");
    repo.write("c.txt", "shared line\n");
    repo.write("untouched.txt", "same\n");
    repo.commit_all("base");
    let git = repo.open();
    let base = snapshot::create(&git, "apply", &[]).unwrap().commit;

    // The agents' result: edits a (top), deletes b, edits c, adds new.
    let task = worktree::ensure(&git, "p", "t", base).unwrap();
    std::fs::write(
        task.path.join("a.txt"),
        lines.replace("line 1\n", "LINE 1 (agent)\n"),
    )
    .unwrap();
    std::fs::remove_file(task.path.join("b.txt")).unwrap();
    std::fs::write(task.path.join("c.txt"), "shared line (agent)\n").unwrap();
    std::fs::write(task.path.join("new.txt"), "from the agent\n").unwrap();
    let result = commit_all(&task.path, "result", "integrator")
        .unwrap()
        .unwrap();

    // Meanwhile the user edited a (bottom) and c (the same line), and staged nothing.
    repo.write("a.txt", &lines.replace("line 12\n", "line 12 (user)\n"));
    repo.write("c.txt", "shared line (user)\n");
    let index_before = std::fs::read(repo.path().join(".git/index")).unwrap();
    let head_before = repo.head();

    // One file conflicts: nothing at all is written, and the conflict is reported.
    let refused = apply_to_workdir(&git, "p", base, result).unwrap();
    assert_eq!(refused.conflicts.len(), 1);
    assert_eq!(refused.conflicts[0].path, "c.txt");
    assert_eq!(refused.conflicts[0].regions[0].ours, "shared line (user)\n");
    assert!(refused.written.is_empty() && refused.merged.is_empty() && refused.deleted.is_empty());
    assert_eq!(
        repo.read("a.txt"),
        lines.replace("line 12\n", "line 12 (user)\n")
    );
    assert_eq!(repo.read("b.txt"), "b\n");
    assert!(!repo.path().join("new.txt").exists());

    // The user resolves c by taking the agents' line: now all of it applies.
    repo.write("c.txt", "shared line (agent)\n");
    let report = apply_to_workdir(&git, "p", base, result).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.merged, ["a.txt"]);
    assert_eq!(report.deleted, ["b.txt"]);
    assert_eq!(report.written, ["new.txt"]);
    assert_eq!(report.unchanged, ["c.txt"]);
    assert_eq!(
        repo.read("a.txt"),
        lines
            .replace("line 1\n", "LINE 1 (agent)\n")
            .replace("line 12\n", "line 12 (user)\n")
    );
    assert_eq!(repo.read("new.txt"), "from the agent\n");
    assert!(!repo.path().join("b.txt").exists());
    assert_eq!(
        std::fs::read(repo.path().join(".git/index")).unwrap(),
        index_before
    );
    assert_eq!(repo.head(), head_before);
    assert!(
        !repo.path().join(".git/pitcrew/applying/p.json").exists(),
        "a finished apply leaves no record"
    );

    // Applying again changes nothing more.
    let merged_a = repo.read("a.txt");
    let again = apply_to_workdir(&git, "p", base, result).unwrap();
    assert_eq!(again.unchanged, ["a.txt", "b.txt", "c.txt", "new.txt"]);
    assert_eq!(repo.read("a.txt"), merged_a);
    repo.assert_fsck_clean();
}

#[test]
fn pitcrew_stays_correct_while_the_user_commits_concurrently() {
    let repo = busy_repo();
    let path = repo.path().to_path_buf();
    let home = repo.home.path().to_path_buf();
    let commits = 40;
    let user = std::thread::spawn(move || {
        for i in 0..commits {
            let status = Command::new("git")
                .args([
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    &format!("user commit {i}"),
                ])
                .current_dir(&path)
                .env("HOME", &home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
                .status()
                .unwrap();
            assert!(status.success(), "the user's commit {i} failed");
        }
    });
    let git_repo = pitcrew::git::GitRepo::discover(repo.path()).unwrap();
    for round in 0..8 {
        let git = git_repo.open().unwrap();
        let id = format!("r{round}");
        let snapshot = snapshot::create(&git, &id, &[]).unwrap();
        let task = worktree::ensure(&git, &id, "t", snapshot.commit).unwrap();
        std::fs::write(task.path.join(format!("round{round}.txt")), "work\n").unwrap();
        let commit = commit_all(&task.path, "work", "implementer")
            .unwrap()
            .unwrap();
        merge_into(
            &git,
            &format!("pitcrew/{id}/integration"),
            snapshot.commit,
            "start",
        )
        .unwrap();
        merge_into(&git, &format!("pitcrew/{id}/integration"), commit, "merge").unwrap();
        diff(&git, snapshot.commit, commit).unwrap();
        worktree::remove(&git, &id, "t", true).unwrap();
    }
    user.join().unwrap();
    let count: usize = repo
        .git(&["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 1 + commits, "every one of the user's commits landed");
    repo.assert_fsck_clean();
}

#[tokio::test]
async fn the_async_handle_runs_operations_off_the_runtime() {
    let repo = busy_repo();
    let handle = pitcrew::git::GitRepo::discover(&repo.path().join("src")).unwrap();
    assert_eq!(handle.workdir(), repo.path());
    assert_eq!(handle.state_dir(), repo.path().join(".git/pitcrew"));
    let snapshot = handle
        .run(|git| snapshot::create(git, "async", &[]))
        .await
        .unwrap();
    let error = handle
        .run(move |git| worktree::ensure(git, "p", "bad/id", snapshot.commit))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("invalid identifier"), "{error}");
    assert!(pitcrew::git::GitRepo::discover(Path::new("/")).is_err());
}

#[test]
fn a_new_worktree_is_clean_to_git_status_with_modes_and_links_intact() {
    use std::os::unix::fs::PermissionsExt;
    let repo = busy_repo();
    repo.commit_all("everything");
    let git = repo.open();
    let task = worktree::ensure(&git, "p", "clean", repo.head()).unwrap();
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&task.path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "a fresh worktree is clean"
    );
    let meta = std::fs::metadata(task.path.join("script.sh")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(task.path.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(
        files_of(&task.path).len(),
        files_of(repo.path()).len() - 2,
        "everything but the ignored files"
    );
    assert_eq!(
        commit_all(&task.path, "nothing", "implementer").unwrap(),
        None
    );
    assert!(!repo.git(&["branch", "--list"]).contains("pitcrew-tmp"));
}

#[test]
fn trees_that_ask_for_content_filters_are_checked_out_with_them() {
    let repo = TestRepo::new();
    repo.write(".gitattributes", "*.bat text eol=crlf\n");
    repo.write("run.bat", "echo one\necho two\n");
    repo.commit_all("windows scripts");
    let git = repo.open();
    let task = worktree::ensure(&git, "p", "crlf", repo.head()).unwrap();
    assert_eq!(
        std::fs::read_to_string(task.path.join("run.bat")).unwrap(),
        "echo one\r\necho two\r\n"
    );
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&task.path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "");
}

#[test]
fn reset_clean_discards_changes_and_untracked_files_but_keeps_ignored_ones() {
    let repo = busy_repo();
    repo.commit_all("everything");
    let git = repo.open();
    let task = worktree::ensure(&git, "p", "r", repo.head()).unwrap();
    std::fs::write(task.path.join("a.txt"), "changed\n").unwrap();
    std::fs::write(task.path.join("leftover.txt"), "half-done\n").unwrap();
    std::fs::create_dir_all(task.path.join("newdir")).unwrap();
    std::fs::write(task.path.join("newdir/deep.txt"), "x\n").unwrap();
    std::fs::create_dir_all(task.path.join("target")).unwrap();
    std::fs::write(task.path.join("target/cache"), "build output\n").unwrap();
    worktree::reset_clean(&task.path).unwrap();
    assert_eq!(
        std::fs::read_to_string(task.path.join("a.txt")).unwrap(),
        "a1\nA2 staged\na3\n"
    );
    assert!(!task.path.join("leftover.txt").exists());
    assert!(!task.path.join("newdir").exists());
    assert!(
        task.path.join("target/cache").exists(),
        "ignored build output stays"
    );
}

#[test]
fn a_crash_mid_branch_leaves_a_young_lock_that_the_next_owner_of_the_plan_clears() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    repo.commit_all("initial");
    let git = repo.open();
    // Killed while creating a task's branch: its lock is seconds old.
    let branches = repo.path().join(".git/refs/heads/pitcrew/p");
    std::fs::create_dir_all(&branches).unwrap();
    let young = branches.join("t1.lock");
    std::fs::write(&young, "").unwrap();

    // Without a word about who runs the plan, a young lock may be a live process's: kept.
    let recovery = worktree::recover(&git).unwrap();
    assert_eq!(recovery.fresh_locks_kept, std::slice::from_ref(&young));
    assert!(young.exists());
    // The plan's new owner (its plan lock was free) knows it is a crash's: cleared, and the
    // task's branch can be created again.
    let recovery = worktree::recover_where(&git, |plan| plan == "p").unwrap();
    assert_eq!(recovery.stale_locks_removed, std::slice::from_ref(&young));
    assert!(!young.exists());
    worktree::ensure(&git, "p", "t1", repo.head()).expect("the branch can be created");
}

#[test]
fn untracked_secrets_stay_out_of_snapshots_and_so_out_of_worktrees() {
    let repo = TestRepo::new();
    repo.write("src/lib.rs", "pub fn a() {}\n");
    repo.write("config/dev.env", "committed, so already in history\n");
    repo.commit_all("initial");
    // The user's untracked files: one ordinary, several secrets.
    repo.write("notes.txt", "work in progress\n");
    repo.write(".env", "OPENAI_API_KEY=sk-untracked\n");
    repo.write(".env.local", "TOKEN=x\n");
    repo.write("deploy/id_ed25519", "PRIVATE KEY\n");
    repo.write("deploy/id_ed25519.pub", "public key\n");
    repo.write(".npmrc", "//registry.npmjs.org/:_authToken=npm-token\n");
    let git = repo.open();
    let buffers = [Buffer {
        path: "secrets.yaml".into(),
        text: "password: hunter2\n".into(),
    }];
    let snapshot = snapshot::create(&git, "secrets", &buffers).unwrap();
    let tree = git.find_commit(snapshot.commit).unwrap().tree().unwrap();
    let has = |path: &str| tree.get_path(Path::new(path)).is_ok();
    assert!(has("notes.txt") && has("deploy/id_ed25519.pub"));
    assert!(
        has("config/dev.env"),
        "tracked files are the user's history already"
    );
    for secret in [
        ".env",
        ".env.local",
        "deploy/id_ed25519",
        ".npmrc",
        "secrets.yaml",
    ] {
        assert!(!has(secret), "{secret} is in the snapshot");
    }
    assert!(
        snapshot
            .skipped_buffers
            .iter()
            .any(|(path, reason)| path == "secrets.yaml" && reason.contains("secrets"))
    );
    let task = worktree::ensure(&git, "p", "t", snapshot.commit).unwrap();
    assert!(!task.path.join(".env").exists());
    assert!(task.path.join("notes.txt").exists());
}
