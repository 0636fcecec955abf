//! What the load generator counts: requests sent, responses by status and by `x-served-by`,
//! transport errors, and a latency histogram.

mod histogram;

pub use self::histogram::{Histogram, quantile_of_buckets};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration, time::Instant};

/// The `by_served_by` key of responses without an `x-served-by` header.
pub const NOT_SERVED_BY: &str = "-";

/// A snapshot of the counts, as `GET /stats` and the end of a run print it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Seconds since the start, the last reset or the last window.
    pub elapsed_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// Responses received, of any status.
    pub responses: u64,
    /// Requests that got no response (connection failures and timeouts) and gRPC calls
    /// answered with a status other than OK.
    pub errors: u64,
    /// Requests still waiting for their response or error.
    pub in_flight: u64,
    /// Responses by status code.
    pub by_status: BTreeMap<String, u64>,
    /// Responses by `x-served-by` (`-` without it).
    pub by_served_by: BTreeMap<String, u64>,
    /// Requests sent, by URL.
    pub by_url: BTreeMap<String, u64>,
    /// Errors by kind: `connect`, `request`, `timeout` or `grpc-<code>`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Response latencies (errors not included).
    pub latency_ms: Latency,
    /// The latency histogram's non-empty buckets, `[middle µs, count]`, to merge windows.
    #[serde(default)]
    pub latency_buckets_us: Vec<(u64, u64)>,
}

/// Latency percentiles in milliseconds (each within about 3% of the true value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Responses measured.
    pub count: u64,
    /// The fastest.
    pub min: f64,
    /// The average.
    pub mean: f64,
    /// The median.
    pub p50: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

/// Counts requests as they are sent and answered; shared by the request tasks.
#[derive(Debug)]
pub struct Recorder {
    inner: Mutex<Inner>,
}

/// A sent request, to be reported back with its outcome.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct Ticket {
    generation: u64,
}

#[derive(Debug)]
struct Inner {
    /// Bumped by each reset, so that requests sent before it are not counted after it.
    generation: u64,
    since: Instant,
    stats: Stats,
    histogram: Histogram,
}

// === impl Recorder ===

impl Default for Recorder {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                generation: 0,
                since: Instant::now(),
                stats: Stats::default(),
                histogram: Histogram::default(),
            }),
        }
    }
}

impl Recorder {
    /// Counts a request to `url` as sent.
    pub fn sent(&self, url: &str) -> Ticket {
        let mut inner = self.inner.lock();
        inner.stats.sent += 1;
        *inner.stats.by_url.entry(url.to_string()).or_default() += 1;
        Ticket {
            generation: inner.generation,
        }
    }

    /// Counts a response.
    pub fn response(
        &self,
        ticket: Ticket,
        status: u16,
        served_by: Option<&str>,
        latency: Duration,
    ) {
        let mut inner = self.inner.lock();
        if inner.generation != ticket.generation {
            return;
        }
        inner.stats.responses += 1;
        *inner.stats.by_status.entry(status.to_string()).or_default() += 1;
        let served_by = served_by.unwrap_or(NOT_SERVED_BY).to_string();
        *inner.stats.by_served_by.entry(served_by).or_default() += 1;
        inner.histogram.record(latency);
    }

    /// Counts a request that got no response.
    pub fn error(&self, ticket: Ticket, kind: &str) {
        let mut inner = self.inner.lock();
        if inner.generation != ticket.generation {
            return;
        }
        inner.stats.errors += 1;
        *inner
            .stats
            .errors_by_kind
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Zeroes every count.
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.since = Instant::now();
        inner.stats = Stats::default();
        inner.histogram = Histogram::default();
    }

    /// The counts since the last window, and starts a new one. Unlike [`Recorder::reset`],
    /// nothing is lost between windows: a request sent in one window and answered in the next
    /// is counted as sent in the first and answered in the second, so the windows add up to
    /// the whole run (and a window's `in_flight` is only an estimate).
    pub fn window(&self) -> Stats {
        let mut inner = self.inner.lock();
        let stats = Self::stats(&inner);
        inner.since = Instant::now();
        inner.stats = Stats::default();
        inner.histogram = Histogram::default();
        stats
    }

    /// The counts now.
    pub fn snapshot(&self) -> Stats {
        Self::stats(&self.inner.lock())
    }

    fn stats(inner: &Inner) -> Stats {
        let mut stats = inner.stats.clone();
        stats.elapsed_s = round(inner.since.elapsed().as_secs_f64(), 3);
        stats.in_flight = stats.sent.saturating_sub(stats.responses + stats.errors);
        stats.latency_ms = inner.histogram.latency();
        stats.latency_buckets_us = inner.histogram.buckets();
        stats
    }
}

/// `x` rounded to `digits` decimals.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests;
