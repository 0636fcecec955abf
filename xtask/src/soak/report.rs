//! What the soak counts and prints: each fault's windows (before, during, after) as the load
//! generators counted them, the controllers' RSS over time, and the closing line.

use oxlink_testapp::stats::{Stats, quantile_of_buckets};
use std::{collections::BTreeMap, fmt::Write};

/// RSS growth the soak tolerates, per controller: its largest replica at the end may be at most
/// this factor of its largest at the start, plus [`RSS_SLACK_MIB`].
pub(crate) const RSS_GROWTH_FACTOR: f64 = 1.5;
pub(crate) const RSS_SLACK_MIB: f64 = 32.0;

/// Requests counted over one stretch of time, from any number of load generators' windows.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Window {
    pub(crate) sent: u64,
    /// Requests that got no response, a non-2xx status, or a gRPC status other than OK.
    pub(crate) failed: u64,
    /// Failures by load generator and kind (`load: timeout`, `grpc-load: grpc-14`,
    /// `load: HTTP 502`).
    pub(crate) failures: BTreeMap<String, u64>,
    /// Latencies of the responses: middle of a histogram bucket (µs) → count.
    buckets: BTreeMap<u64, u64>,
}

impl Window {
    /// Adds a window of load generator `load`.
    pub(crate) fn add(&mut self, load: &str, stats: &Stats) {
        self.sent += stats.sent;
        let ok: u64 = stats
            .by_status
            .iter()
            .filter(|(status, _)| status.starts_with('2'))
            .map(|(_, n)| n)
            .sum();
        self.failed += stats.errors + stats.responses.saturating_sub(ok);
        let non_2xx = stats
            .by_status
            .iter()
            .filter(|(status, _)| !status.starts_with('2'))
            .map(|(status, n)| (format!("HTTP {status}"), n));
        for (kind, n) in stats
            .errors_by_kind
            .iter()
            .map(|(k, n)| (k.clone(), n))
            .chain(non_2xx)
        {
            *self.failures.entry(format!("{load}: {kind}")).or_default() += n;
        }
        for &(us, n) in &stats.latency_buckets_us {
            *self.buckets.entry(us).or_default() += n;
        }
    }

    /// Adds another window.
    pub(crate) fn merge(&mut self, other: &Window) {
        self.sent += other.sent;
        self.failed += other.failed;
        for (kind, &n) in &other.failures {
            *self.failures.entry(kind.clone()).or_default() += n;
        }
        for (&us, &n) in &other.buckets {
            *self.buckets.entry(us).or_default() += n;
        }
    }

    /// The failures by kind, `load: timeout ×2, grpc-load: grpc-14 ×1`.
    pub(crate) fn failure_kinds(&self) -> String {
        self.failures
            .iter()
            .map(|(kind, n)| format!("{kind} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The 99th percentile latency in milliseconds, `None` without responses.
    pub(crate) fn p99_ms(&self) -> Option<f64> {
        let buckets: Vec<(u64, u64)> = self.buckets.iter().map(|(&us, &n)| (us, n)).collect();
        let count: u64 = buckets.iter().map(|(_, n)| n).sum();
        (count > 0).then(|| quantile_of_buckets(&buckets, 0.99) as f64 / 1e3)
    }
}

/// One fault as it ran.
#[derive(Clone, Debug)]
pub(crate) struct FaultRun {
    /// Which round of the schedule (from 1).
    pub(crate) round: u32,
    pub(crate) name: &'static str,
    /// Whether a redundant replica was left serving while it ran.
    pub(crate) redundant: bool,
    /// How the action itself went: `Ok(note)` or the error.
    pub(crate) outcome: Result<String, String>,
    /// How long the action took, recovery included.
    pub(crate) secs: f64,
    pub(crate) before: Window,
    pub(crate) during: Window,
    pub(crate) after: Window,
    /// Each controller's replicas' RSS (MiB) once the fault's after-window ended.
    pub(crate) rss: Rss,
}

impl FaultRun {
    pub(crate) fn total(&self) -> Window {
        let mut w = self.before.clone();
        w.merge(&self.during);
        w.merge(&self.after);
        w
    }
}

/// The RSS (MiB) of each replica of each controller, by controller.
pub(crate) type Rss = BTreeMap<&'static str, Vec<f64>>;

/// The whole soak's counts.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    /// Failed requests during faults that left a redundant replica serving.
    pub(crate) failed_redundant: u64,
    pub(crate) faults: usize,
    /// Faults whose action failed.
    pub(crate) faults_failed: usize,
}

pub(crate) fn totals(runs: &[FaultRun]) -> Totals {
    let mut t = Totals {
        faults: runs.len(),
        ..Totals::default()
    };
    for run in runs {
        let w = run.total();
        t.requests += w.sent;
        t.failed += w.failed;
        if run.redundant {
            t.failed_redundant += w.failed;
        }
        t.faults_failed += usize::from(run.outcome.is_err());
    }
    t
}

/// The closing line: `soak: N requests, M failed (R where a replica was left), K faults`.
pub(crate) fn closing_line(t: &Totals) -> String {
    format!(
        "soak: {} requests, {} failed ({} where a replica was left), {} faults",
        t.requests, t.failed, t.failed_redundant, t.faults
    )
}

fn ms(p99: Option<f64>) -> String {
    p99.map_or("-".into(), |ms| format!("{ms:.1}ms"))
}

fn rss_cell(replicas: Option<&Vec<f64>>) -> String {
    match replicas {
        Some(r) if !r.is_empty() => r
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join("/"),
        _ => "-".into(),
    }
}

/// The table: one row per fault, its requests, failures, p99 before/during/after, how the
/// action went, and the controllers' RSS after it; the first row is the RSS at the start.
pub(crate) fn table(runs: &[FaultRun], start_rss: &Rss, controllers: &[&'static str]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<3} {:<44} {:<9} {:>7} {:>6} {:>10} {:>10} {:>10} {:>6}",
        "#", "fault", "redundant", "sent", "failed", "p99 before", "during", "after", "took"
    );
    for c in controllers {
        let _ = write!(out, " {:>16}", format!("{c} MiB"));
    }
    out.push_str("  result\n");
    let _ = write!(out, "{:<3} {:<44}", "", "(start)");
    let _ = write!(
        out,
        " {:<9} {:>7} {:>6} {:>10} {:>10} {:>10} {:>6}",
        "", "", "", "", "", "", ""
    );
    for c in controllers {
        let _ = write!(out, " {:>16}", rss_cell(start_rss.get(c)));
    }
    out.push('\n');
    for (i, run) in runs.iter().enumerate() {
        let total = run.total();
        let _ = write!(
            out,
            "{:<3} {:<44} {:<9} {:>7} {:>6} {:>10} {:>10} {:>10} {:>5.0}s",
            i + 1,
            format!("{} (round {})", run.name, run.round),
            if run.redundant { "yes" } else { "no" },
            total.sent,
            total.failed,
            ms(run.before.p99_ms()),
            ms(run.during.p99_ms()),
            ms(run.after.p99_ms()),
            run.secs,
        );
        for c in controllers {
            let _ = write!(out, " {:>16}", rss_cell(run.rss.get(c)));
        }
        match &run.outcome {
            Ok(note) => {
                let _ = write!(
                    out,
                    "  ok{}",
                    if note.is_empty() {
                        String::new()
                    } else {
                        format!(": {note}")
                    }
                );
            }
            Err(e) => {
                let _ = write!(out, "  FAILED: {}", e.lines().next().unwrap_or_default());
            }
        }
        if total.failed > 0 {
            let _ = write!(out, "; failed: {}", total.failure_kinds());
        }
        out.push('\n');
    }
    out
}

/// The controllers whose RSS grew beyond the bound: the largest replica at the end against the
/// largest at the start.
pub(crate) fn rss_growth(start: &Rss, end: &Rss) -> Vec<String> {
    let mut grown = Vec::new();
    for (c, first) in start {
        let (Some(first), Some(last)) = (
            first.iter().copied().reduce(f64::max),
            end.get(c).and_then(|r| r.iter().copied().reduce(f64::max)),
        ) else {
            continue;
        };
        let bound = first * RSS_GROWTH_FACTOR + RSS_SLACK_MIB;
        if last > bound {
            grown.push(format!(
                "{c}: {last:.0} MiB at the end, {first:.0} MiB at the start (bound {bound:.0} MiB)"
            ));
        }
    }
    grown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(sent: u64, ok: u64, status_500: u64, errors: u64, ms: &[u64]) -> Stats {
        let mut s = Stats {
            sent,
            responses: ok + status_500,
            errors,
            ..Stats::default()
        };
        s.by_status.insert("200".into(), ok);
        if status_500 > 0 {
            s.by_status.insert("500".into(), status_500);
        }
        let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
        for m in ms {
            *buckets.entry(m * 1000).or_default() += 1;
        }
        s.latency_buckets_us = buckets.into_iter().collect();
        s
    }

    #[test]
    fn windows_count_errors_and_non_2xx_as_failed_and_merge_latencies() {
        let mut w = Window::default();
        let mut timeout = stats(10, 8, 1, 1, &[1, 2, 3]);
        timeout.errors_by_kind.insert("timeout".into(), 1);
        w.add("load", &timeout);
        w.add("grpc-load", &stats(5, 5, 0, 0, &[100]));
        assert_eq!((w.sent, w.failed), (15, 2));
        assert_eq!(w.failure_kinds(), "load: HTTP 500 ×1, load: timeout ×1");
        assert_eq!(w.p99_ms(), Some(100.0));
        assert_eq!(Window::default().p99_ms(), None);
    }

    fn run(
        name: &'static str,
        redundant: bool,
        failed: u64,
        outcome: Result<String, String>,
    ) -> FaultRun {
        let mut during = Window::default();
        let mut s = stats(100, 100 - failed, 0, failed, &[5]);
        if failed > 0 {
            s.errors_by_kind.insert("timeout".into(), failed);
        }
        during.add("load", &s);
        FaultRun {
            round: 1,
            name,
            redundant,
            outcome,
            secs: 3.0,
            before: Window::default(),
            during,
            after: Window::default(),
            rss: Rss::from([("identity", vec![10.0, 11.0])]),
        }
    }

    #[test]
    fn failures_with_a_redundant_replica_are_counted_apart() {
        let runs = [
            run("kill identity", true, 1, Ok(String::new())),
            run("restart the API server", false, 4, Ok("12s".into())),
            run(
                "rotate the trust anchor",
                true,
                0,
                Err("timed out\nmore".into()),
            ),
        ];
        let t = totals(&runs);
        assert_eq!(
            (
                t.requests,
                t.failed,
                t.failed_redundant,
                t.faults,
                t.faults_failed
            ),
            (300, 5, 1, 3, 1)
        );
        assert_eq!(
            closing_line(&t),
            "soak: 300 requests, 5 failed (1 where a replica was left), 3 faults"
        );
        let table = table(&runs, &Rss::from([("identity", vec![9.0])]), &["identity"]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[1].contains("(start)") && lines[1].ends_with('9'),
            "{table}"
        );
        assert!(
            lines[2].contains("kill identity (round 1)") && lines[2].contains("10/11"),
            "{table}"
        );
        assert!(
            lines[3].contains(" no ") && lines[3].ends_with("ok: 12s; failed: load: timeout ×4"),
            "{table}"
        );
        assert!(lines[4].ends_with("FAILED: timed out"), "{table}");
        assert!(lines[2].ends_with("; failed: load: timeout ×1"), "{table}");
    }

    #[test]
    fn rss_growth_beyond_the_bound_is_named() {
        let start = Rss::from([("identity", vec![20.0, 22.0]), ("destination", vec![30.0])]);
        let fine = Rss::from([("identity", vec![60.0]), ("destination", vec![77.0])]);
        assert!(rss_growth(&start, &fine).is_empty());
        let grown = Rss::from([("identity", vec![66.0, 10.0]), ("destination", vec![78.0])]);
        let named = rss_growth(&start, &grown);
        assert_eq!(named.len(), 2, "{named:?}");
        assert!(named[0].starts_with("destination: 78 MiB"), "{named:?}");
    }
}
