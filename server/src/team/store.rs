//! State on disk, under `<git-dir>/pitcrew/`: plans (written atomically), the append-only
//! journal, one transcript per task, and `PLAN.md` for people.
//!
//! Writes go through a temporary file and a rename, so a process killed at any moment leaves
//! either the old plan or the new one. The journal and transcripts are appended a line at a
//! time; a line cut by a crash is skipped when read.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::plan::{Plan, PlanStatus, TaskStatus};
use crate::config::Role;

/// One line of the journal: who did what, when, why, at what cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub time: String,
    pub plan: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Of `input_tokens`, read from and written to a prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// What the prompt cache saved on this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl JournalEntry {
    pub fn new(plan: &str, event: impl Into<String>) -> Self {
        Self {
            time: super::now(),
            plan: plan.to_owned(),
            event: event.into(),
            ..Self::default()
        }
    }

    pub fn task(mut self, task: &str) -> Self {
        self.task = Some(task.to_owned());
        self
    }

    pub fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Everything pitcrew keeps on disk for one repository.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Appends from several tasks must not interleave within a line.
    journal: Mutex<()>,
    /// Per plan, the revision last written: writes of one plan happen one at a time, and an
    /// older revision never replaces a newer one on disk.
    written: Mutex<HashMap<String, Arc<Mutex<Option<u64>>>>>,
}

/// Holds a plan's lock; the plan can be run by one process at a time.
#[derive(Debug)]
pub struct PlanLock {
    _file: File,
}

impl Store {
    /// Opens (creating) the state directory `dir`, normally `<git-dir>/pitcrew`.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        for sub in ["plans", "transcripts"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        // A process killed mid-append leaves a line without its newline; end it, so the next
        // entry starts on a line of its own.
        let journal = dir.join("journal.jsonl");
        if let Ok(bytes) = std::fs::read(&journal)
            && bytes.last().is_some_and(|b| *b != b'\n')
        {
            OpenOptions::new()
                .append(true)
                .open(&journal)?
                .write_all(b"\n")?;
        }
        Ok(Self {
            dir,
            journal: Mutex::new(()),
            written: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn plan_path(&self, id: &str) -> PathBuf {
        self.dir.join("plans").join(format!("{id}.json"))
    }

    /// The readable rendering of the most recently saved plan.
    pub fn plan_markdown_path(&self) -> PathBuf {
        self.dir.join("PLAN.md")
    }

    /// The readable rendering of plan `id`.
    pub fn plan_markdown_path_of(&self, id: &str) -> PathBuf {
        self.dir.join("plans").join(format!("{id}.md"))
    }

    /// Writes a plan atomically, and its rendering (`plans/<id>.md` and `PLAN.md`) with it.
    pub fn save_plan(&self, plan: &Plan) -> std::io::Result<()> {
        let slot = self
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(plan.id.clone())
            .or_default()
            .clone();
        let mut written = slot.lock().unwrap_or_else(|p| p.into_inner());
        if written.is_some_and(|revision| revision > plan.revision) {
            return Ok(()); // a newer revision is on disk already
        }
        *written = Some(plan.revision);
        let json = serde_json::to_vec_pretty(plan).map_err(std::io::Error::other)?;
        write_atomically(&self.plan_path(&plan.id), &json)?;
        let markdown = render_markdown(plan);
        write_atomically(&self.plan_markdown_path_of(&plan.id), markdown.as_bytes())?;
        write_atomically(&self.plan_markdown_path(), markdown.as_bytes())
    }

    /// Whether plan `id` has a file, readable or not.
    pub fn has_plan_file(&self, id: &str) -> bool {
        self.plan_path(id).exists()
    }

    pub fn load_plan(&self, id: &str) -> std::io::Result<Plan> {
        let bytes = std::fs::read(self.plan_path(id))?;
        serde_json::from_slice(&bytes).map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("plan {id} is unreadable: {err}"),
            )
        })
    }

    /// Every readable plan, oldest first.
    pub fn plans(&self) -> Vec<Plan> {
        let mut plans: Vec<Plan> = std::fs::read_dir(self.dir.join("plans"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|ext| ext == "json"))
            .filter_map(|e| {
                let bytes = std::fs::read(e.path()).ok()?;
                serde_json::from_slice::<Plan>(&bytes).ok()
            })
            .collect();
        plans.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        plans
    }

    /// Takes the plan's lock without waiting; `None` when another process holds it.
    pub fn lock_plan(&self, id: &str) -> std::io::Result<Option<PlanLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("plans").join(format!("{id}.lock")))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(PlanLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => Err(err),
        }
    }

    /// Appends a line to the journal.
    pub fn journal(&self, entry: &JournalEntry) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        let _guard = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("journal.jsonl"))
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = written {
            tracing::error!("cannot write the journal: {err}");
        }
    }

    /// The journal, oldest first; a line cut short by a crash is skipped.
    pub fn read_journal(&self) -> Vec<JournalEntry> {
        read_lines(&self.dir.join("journal.jsonl"))
    }

    fn transcript_path(&self, plan: &str, task: &str) -> PathBuf {
        self.dir
            .join("transcripts")
            .join(format!("{plan}-{task}.jsonl"))
    }

    /// Appends one entry to a task's transcript.
    pub fn transcript(&self, plan: &str, task: &str, entry: &serde_json::Value) {
        let mut line = entry.to_string();
        line.push('\n');
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.transcript_path(plan, task))
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = written {
            tracing::error!("cannot write the transcript of {task}: {err}");
        }
    }

    pub fn read_transcript(&self, plan: &str, task: &str) -> Vec<serde_json::Value> {
        read_lines(&self.transcript_path(plan, task))
    }
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically_with(path, bytes, None)
}

/// Writes `bytes` to `path` through a uniquely named temporary file in the same directory
/// (created exclusively, so a symlink planted there is never followed) and a rename, with
/// `permissions` if given.
pub fn write_atomically_with(
    path: &Path,
    bytes: &[u8],
    permissions: Option<std::fs::Permissions>,
) -> std::io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(parent)?;
    temp.write_all(bytes)?;
    if let Some(permissions) = permissions {
        temp.as_file().set_permissions(permissions)?;
    }
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn status_mark(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Ready | TaskStatus::Applied => "[x]",
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Escalated => "[!]",
        TaskStatus::Pending => "[ ]",
        _ => "[~]",
    }
}

/// PLAN.md: the plan for editors without a plan view, and for people.
pub fn render_markdown(plan: &Plan) -> String {
    let mut out = format!(
        "# Plan {}: {}\n\nStatus: **{}**. Tokens: {} in, {} out{}. Started {}.\n",
        plan.id,
        plan.goal.lines().next().unwrap_or(""),
        plan.status.as_str(),
        plan.spend.input_tokens,
        plan.spend.output_tokens,
        if plan.spend.cost_usd > 0.0 {
            format!(", ${:.4}", plan.spend.cost_usd)
        } else {
            String::new()
        },
        plan.created_at,
    );
    if let Some(outcome) = &plan.outcome {
        out.push_str(&format!("\n{outcome}\n"));
    }
    if let Some(escalation) = &plan.escalation {
        out.push_str(&format!(
            "\n> **Question:** {}\n> Answers: {}\n",
            escalation.question,
            escalation
                .choices
                .iter()
                .map(|c| c.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str("\n## Tasks\n\n");
    for task in &plan.tasks {
        out.push_str(&format!(
            "- {} **{}** {} ({}{})",
            status_mark(task.status),
            task.id,
            task.title,
            task.status.as_str(),
            if task.round > 0 {
                format!(", round {}", task.round + 1)
            } else {
                String::new()
            }
        ));
        if !task.depends_on.is_empty() {
            out.push_str(&format!(", after {}", task.depends_on.join(", ")));
        }
        if let Some(branch) = &task.branch {
            out.push_str(&format!(", branch `{branch}`"));
        }
        out.push('\n');
        if let Some(handoff) = &task.handoff {
            out.push_str(&format!(
                "  - handoff: {}\n",
                handoff.lines().next().unwrap_or("")
            ));
        }
        for finding in &task.findings {
            out.push_str(&format!(
                "  - {:?} {}:{}: {}\n",
                finding.severity, finding.path, finding.line, finding.message
            ));
        }
        if let Some(error) = &task.error {
            out.push_str(&format!("  - error: {error}\n"));
        }
    }
    if let Some(test) = &plan.integration_test {
        out.push_str(&format!(
            "\n## Integration\n\nBranch `{}`; `{}` {}.\n",
            plan.integration_branch,
            test.name,
            if test.passed { "passed" } else { "failed" }
        ));
    }
    if plan.status == PlanStatus::Ready {
        out.push_str(&format!(
            "\nApply it with `pitcrew apply {}`, or see it with `git diff {} {}`.\n",
            plan.id, plan.base, plan.integration_branch
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::plan::{TaskKind, TaskSpec};

    #[test]
    fn plans_round_trip_and_locks_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut plan = Plan::new("p1".into(), "goal".into(), "abc".into());
        plan.tasks.push(crate::team::plan::Task::new(
            TaskSpec {
                id: "t1".into(),
                title: "one".into(),
                instructions: "do".into(),
                depends_on: vec![],
                files: vec![],
            },
            TaskKind::Implement,
        ));
        store.save_plan(&plan).unwrap();
        assert_eq!(store.load_plan("p1").unwrap(), plan);
        assert_eq!(store.plans().len(), 1);

        // A slower writer's older revision does not replace a newer one on disk.
        let mut newer = plan.clone();
        newer.revision = 2;
        newer.status = crate::team::PlanStatus::Applied;
        store.save_plan(&newer).unwrap();
        let mut older = plan.clone();
        older.revision = 1;
        store.save_plan(&older).unwrap();
        assert_eq!(store.load_plan("p1").unwrap(), newer);
        assert!(
            std::fs::read_to_string(store.plan_markdown_path())
                .unwrap()
                .contains("**t1** one (pending)")
        );
        let lock = store.lock_plan("p1").unwrap();
        assert!(lock.is_some());
        assert!(store.lock_plan("p1").unwrap().is_none(), "held");
        drop(lock);
        assert!(store.lock_plan("p1").unwrap().is_some(), "released");
    }

    #[test]
    fn a_journal_line_cut_by_a_crash_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.journal(&JournalEntry::new("p", "first"));
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .unwrap();
        file.write_all(b"{\"time\": \"cut").unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        store.journal(&JournalEntry::new("p", "after").reason("restart"));
        let events: Vec<String> = store.read_journal().into_iter().map(|e| e.event).collect();
        assert_eq!(events, ["first", "after"]);
    }
}
