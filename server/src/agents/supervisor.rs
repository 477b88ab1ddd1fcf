//! Every process pitcrew starts on an agent's behalf, tracked so that none outlives its task or
//! pitcrew itself.
//!
//! A supervised process runs in its own process group and carries a marker in its environment
//! (`PITCREW_PROCESS=<token>`) that its descendants inherit. Ending it kills the group, then
//! looks through `/proc` for anything still carrying the marker: a child that left the group
//! with `setsid`, or a daemon that double-forked, is found and killed too. `terminate_all`
//! ends every supervised process of this pitcrew; every way out of the binary calls it.
//! (A process that also clears its environment escapes this; the sandbox's PID namespace does
//! not let it.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// The environment variable that marks a supervised process and its descendants.
pub const MARKER: &str = "PITCREW_PROCESS";

/// Supervised processes still alive: token → process group.
static LIVE: LazyLock<Mutex<HashMap<String, Option<i32>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A supervised process's claim; ending it (or dropping it) ends the process and everything it
/// started.
#[derive(Debug)]
pub struct Supervised {
    token: String,
}

impl Supervised {
    /// Prepares `command` to be supervised: its own process group, and the marker. Call
    /// `started` with the child's pid once it is spawned.
    pub fn prepare(command: &mut tokio::process::Command) -> Self {
        let token = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        command.env(MARKER, &token).kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        lock().insert(token.clone(), None);
        Self { token }
    }

    /// Records the process group of the spawned child (its pid, as it leads the group).
    pub fn started(&self, pid: Option<u32>) {
        if let Some(entry) = lock().get_mut(&self.token) {
            *entry = pid.and_then(|p| i32::try_from(p).ok());
        }
    }

    /// The marker value, for tests and the journal.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Ends the process, its group and every process that carries its marker.
    pub fn end(&self) {
        let group = lock().get(&self.token).copied().flatten();
        kill_tree(&self.token, group);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.end();
        lock().remove(&self.token);
    }
}

/// Ends every supervised process of this pitcrew and everything they started. Called on every
/// way out: the end of a command, a signal, the editor closing the connection.
pub fn terminate_all() {
    let live: Vec<(String, Option<i32>)> = lock().iter().map(|(t, g)| (t.clone(), *g)).collect();
    for (token, group) in live {
        kill_tree(&token, group);
    }
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Option<i32>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills process group `group`, then, until none is left (a process may fork while it is being
/// killed), every process whose environment carries `token`.
fn kill_tree(token: &str, group: Option<i32>) {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal, kill_process, kill_process_group};
        if let Some(group) = group.and_then(Pid::from_raw) {
            let _ = kill_process_group(group, Signal::KILL);
        }
        for _ in 0..10 {
            let marked = marked_processes(token);
            if marked.is_empty() {
                return;
            }
            for pid in marked {
                if let Some(pid) = Pid::from_raw(pid) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
        }
        tracing::warn!("processes marked {token} kept appearing while being killed");
    }
    #[cfg(not(unix))]
    let _ = (token, group);
}

/// The processes (other than zombies) whose environment carries `MARKER=token`.
fn marked_processes(token: &str) -> Vec<i32> {
    let needle = format!("{MARKER}={token}\0").into_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| contains(&environ, &needle))
        })
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    // The environment starts with a variable too: match it at the start or after a NUL.
    memchr::memmem::find_iter(haystack, needle).any(|at| at == 0 || haystack[at - 1] == 0)
}

/// A zombie has exited already; it only waits for its parent to reap it.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name
                .split_whitespace()
                .next()
                .map(|state| state == "Z")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn alive(pid: i32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
    }

    /// A child that leaves the group with setsid and one that double-forks are both ended.
    #[tokio::test]
    async fn escaped_descendants_are_found_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(format!(
            "setsid sh -c 'echo $$ >> {p}; exec sleep 300' & \
             (sh -c 'echo $$ >> {p}; exec sleep 300' &) ; \
             echo $$ >> {p}; exec sleep 300",
            p = pids.display()
        ));
        let supervised = Supervised::prepare(&mut command);
        let child = command.spawn().unwrap();
        supervised.started(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        let read = || -> Vec<i32> {
            std::fs::read_to_string(&pids)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        };
        while read().len() < 3 {
            assert!(Instant::now() < deadline, "the processes did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = read();
        assert!(started.iter().all(|p| alive(*p)));
        drop(supervised);
        drop(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while started.iter().any(|p| alive(*p)) {
            assert!(Instant::now() < deadline, "still alive: {started:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn markers_match_whole_variables() {
        assert!(contains(
            b"A=1\0PITCREW_PROCESS=7-1\0",
            b"PITCREW_PROCESS=7-1\0"
        ));
        assert!(contains(b"PITCREW_PROCESS=7-1\0", b"PITCREW_PROCESS=7-1\0"));
        assert!(!contains(
            b"XPITCREW_PROCESS=7-1\0",
            b"PITCREW_PROCESS=7-1\0"
        ));
        assert!(!contains(
            b"PITCREW_PROCESS=7-12\0",
            b"PITCREW_PROCESS=7-1\0"
        ));
    }
}
