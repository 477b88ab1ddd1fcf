//! The team's orchestration: plans and tasks, the event-driven orchestrator, budgets,
//! persistence and the journal. The team never imports `lsp`: it publishes `Event`s, and the
//! LSP layer or the CLI renders them.

pub mod budget;
pub mod events;
pub mod housekeeping;
pub mod orchestrator;
pub mod plan;
pub mod service;
pub mod store;

pub use events::Event;
pub use orchestrator::{Command, TeamContext};
pub use plan::{Plan, PlanStatus, Task, TaskStatus};
pub use service::{PlanRegistry, TeamService};
pub use store::Store;

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in RFC 3339, UTC, to the millisecond (`2026-11-21T20:05:11.123Z`).
pub fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs() as i64, since.subsec_millis())
}

/// Formats a Unix time (civil-from-days, as in Howard Hinnant's date algorithms).
fn rfc3339(seconds: i64, millis: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3_600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60
    )
}

/// A new plan id: short, sortable by time, and safe in branch names (`p0rk3xq2a`).
pub fn new_plan_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let mut n = millis / 100;
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(std::char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
    }
    digits.reverse();
    let random: String = (0..2)
        .map(|_| std::char::from_digit(fastrand::u32(0..36), 36).unwrap_or('0'))
        .collect();
    format!("p{}{random}", digits.into_iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_291_511, 123), "2026-11-21T20:05:11.123Z");
    }

    #[test]
    fn plan_ids_are_usable_and_distinct() {
        let a = new_plan_id();
        let b = new_plan_id();
        assert!(crate::git::check_id(&a).is_ok());
        assert!(a.starts_with('p') && a.len() >= 8, "{a}");
        assert!(a != b || a.len() > 8);
    }
}
