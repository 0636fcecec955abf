//! `viz top`: tap events aggregated by source, destination, method and path, as Linkerd's
//! `linkerd viz top` shows them (Source, Destination, Method, Path, Count, Best, Worst, Last,
//! Success Rate), sorted by count.

use crate::tap::{Direction, HttpEvent, Peer, StreamId, TapEvent};
use std::collections::HashMap;

/// Requests whose response has not ended yet that are remembered; older ones are forgotten
/// when more arrive (a proxy that never ends a stream must not grow the table forever).
const MAX_PENDING: usize = 10_000;
/// Rows kept; the least counted go first when more appear.
const MAX_ROWS: usize = 1_000;

/// A row's key: who called whom, how, and what.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub source: String,
    pub destination: String,
    pub method: String,
    pub path: String,
}

/// One row: completed requests and their latencies (microseconds, request to end).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub count: u64,
    pub successes: u64,
    pub best_us: u64,
    pub worst_us: u64,
    pub last_us: u64,
}

#[derive(Debug)]
struct Pending {
    key: RowKey,
    success: bool,
    seq: u64,
}

/// The table `viz top` refreshes.
#[derive(Debug, Default)]
pub struct Top {
    rows: HashMap<RowKey, Row>,
    pending: HashMap<(Direction, StreamId), Pending>,
    seq: u64,
}

/// The name `top` shows for a peer: its pod, else its IP.
fn display(peer: &Peer) -> String {
    peer.metadata
        .get("pod")
        .cloned()
        .unwrap_or_else(|| peer.ip.clone())
}

impl Top {
    /// Counts one event: a request is remembered, its response decides success (status below
    /// 500, and a gRPC status of OK when there is one), and its end completes the row.
    pub fn observe(&mut self, event: &TapEvent) {
        let key = (event.proxy_direction, event.http.id());
        match &event.http {
            HttpEvent::RequestInitEvent(req) => {
                if self.pending.len() >= MAX_PENDING {
                    self.forget_oldest();
                }
                self.seq += 1;
                self.pending.insert(
                    key,
                    Pending {
                        key: RowKey {
                            source: display(&event.source),
                            destination: display(&event.destination),
                            method: req.method.clone(),
                            path: req.path.clone(),
                        },
                        success: true,
                        seq: self.seq,
                    },
                );
            }
            HttpEvent::ResponseInitEvent(rsp) => {
                if let Some(p) = self.pending.get_mut(&key) {
                    p.success = rsp.http_status < 500;
                }
            }
            HttpEvent::ResponseEndEvent(end) => {
                let Some(p) = self.pending.remove(&key) else {
                    return;
                };
                let success = p.success && end.grpc_status_code.is_none_or(|c| c == 0);
                if !self.rows.contains_key(&p.key) && self.rows.len() >= MAX_ROWS {
                    self.forget_least_counted();
                }
                let row = self.rows.entry(p.key).or_default();
                let latency = end.since_request_init_us;
                if row.count == 0 {
                    row.best_us = latency;
                    row.worst_us = latency;
                } else {
                    row.best_us = row.best_us.min(latency);
                    row.worst_us = row.worst_us.max(latency);
                }
                row.last_us = latency;
                row.count += 1;
                row.successes += u64::from(success);
            }
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.seq)
            .map(|(k, _)| *k)
        {
            self.pending.remove(&oldest);
        }
    }

    fn forget_least_counted(&mut self) {
        if let Some(least) = self
            .rows
            .iter()
            .min_by_key(|(k, r)| (r.count, std::cmp::Reverse((*k).clone())))
            .map(|(k, _)| k.clone())
        {
            self.rows.remove(&least);
        }
    }

    /// The rows, most counted first (ties in key order, so the table does not jump).
    pub fn rows(&self) -> Vec<(&RowKey, &Row)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
        rows
    }

    /// Requests seen whose response has not ended yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The table, as Linkerd's `top` lays it out.
    pub fn render(&self) -> String {
        let mut cells = vec![
            [
                "Source",
                "Destination",
                "Method",
                "Path",
                "Count",
                "Best",
                "Worst",
                "Last",
                "Success Rate",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for (k, r) in self.rows() {
            cells.push(vec![
                k.source.clone(),
                k.destination.clone(),
                k.method.clone(),
                k.path.clone(),
                r.count.to_string(),
                latency(r.best_us),
                latency(r.worst_us),
                latency(r.last_us),
                format!("{:.2}%", r.successes as f64 * 100.0 / r.count as f64),
            ]);
        }
        crate::table::layout(&cells, 4, true)
    }
}

/// A latency as `top` prints it: microseconds below a millisecond, else rounded to
/// milliseconds (`947µs`, `6ms`), seconds from a second on (`1.25s`).
pub fn latency(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{}ms", (us + 500) / 1_000)
    } else {
        let ms = (us + 500) / 1_000;
        let s = format!("{}.{:03}", ms / 1_000, ms % 1_000);
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests;
