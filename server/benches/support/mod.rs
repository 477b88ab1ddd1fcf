//! Shared helpers for pitcrew's benchmark binaries: timing samples, percentiles, the machine.

#![allow(dead_code)] // each bench binary uses part of it

use std::time::Duration;

/// Timing samples of one measurement.
pub struct Samples {
    pub name: String,
    values: Vec<Duration>,
}

impl Samples {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, value: Duration) {
        self.values.push(value);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The `p`-th percentile (0 to 100), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.values.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    /// A markdown table row: name, samples, median, p95, p99.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} |",
            self.name,
            self.len(),
            format_duration(self.median()),
            format_duration(self.percentile(95.0)),
            format_duration(self.percentile(99.0)),
        )
    }
}

pub const TABLE_HEADER: &str =
    "| measurement | samples | median | p95 | p99 |\n|---|---|---|---|---|";

pub fn format_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1_000.0 {
        format!("{micros:.1} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1_000.0)
    } else {
        format!("{:.2} s", micros / 1_000_000.0)
    }
}

/// One line about the machine, for the record.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpu}, {cores} cores, {memory_gib:.0} GiB")
}

/// Prints with `println!` allowed: a bench's report goes to stdout.
#[allow(clippy::print_stdout)]
pub fn report(text: &str) {
    println!("{text}");
}
