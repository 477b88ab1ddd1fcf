//! The team's orchestration: plans and tasks, the event-driven orchestrator, budgets,
//! persistence and the journal. The team never imports `lsp`: it publishes `Event`s, and the
//! LSP layer or the CLI renders them.

pub mod budget;
pub mod events;
pub mod housekeeping;
pub mod orchestrator;
pub mod plan;
pub mod registry;
pub mod service;
pub mod store;

pub use events::Event;
pub use orchestrator::{Command, TeamContext};
pub use plan::{Plan, PlanStatus, Task, TaskStatus};
pub use registry::PlanRegistry;
pub use service::TeamService;
pub use store::Store;

use std::time::{SystemTime, UNIX_EPOCH};

/// Why the configured checks cannot run here (no sandbox, and the user did not turn it off),
/// for the faces to say at start; `None` when they can.
pub fn sandbox_warning(config: &crate::config::Config) -> Option<String> {
    if config.checks.is_empty() {
        return None;
    }
    crate::agents::sandbox::Sandbox::new(config)
        .runner()
        .err()
        .map(|reason| format!("pitcrew's checks cannot run: {reason}"))
}

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

/// Seconds since the epoch of a time `now` wrote (`2026-11-21T20:05:11.123Z`); `None` for
/// anything else.
pub fn parse_time(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant), the inverse of `rfc3339`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Whether `id` has the shape `new_plan_id` gives (`p` and base-36 digits): pitcrew's own, not
/// a branch a user happened to name `pitcrew/...`.
pub fn is_plan_id(id: &str) -> bool {
    id.len() >= 8
        && id.len() <= 20
        && id.starts_with('p')
        && id[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
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
    fn times_read_back() {
        for seconds in [0, 951_782_400, 1_795_291_511, 4_102_444_800] {
            assert_eq!(parse_time(&rfc3339(seconds, 7)), Some(seconds));
        }
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn plan_ids_are_usable_and_distinct() {
        let a = new_plan_id();
        let b = new_plan_id();
        assert!(crate::git::check_id(&a).is_ok());
        assert!(is_plan_id(&a), "{a}");
        assert!(!is_plan_id("experiment") && !is_plan_id("fix#1") && !is_plan_id("pA"));
        assert!(a.starts_with('p') && a.len() >= 8, "{a}");
        assert!(a != b || a.len() > 8);
    }
}
