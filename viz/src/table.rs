//! Linkerd's CLI output: its tables (a name column padded on the left, the numbers right-aligned
//! with three spaces between columns; `edges` left-aligned) and its `-o json` shapes.

use crate::{Output, edges::Edge, routes, stat};
use serde_json::{Value, json};

/// Text for a missing number.
const NONE: &str = "-";

/// Lays out cells like Go's tabwriter as Linkerd configures it: the first `left` columns are
/// padded on the right to their widest cell; every other column is right-aligned to its widest
/// cell plus three spaces (`right`), or left-aligned with three spaces after it.
pub(crate) fn layout(rows: &[Vec<String>], left: usize, right: bool) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if !right {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&pad);
                    line.push_str("   ");
                }
            } else if c < left {
                if c > 0 {
                    line.push_str("   ");
                }
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str("   ");
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn percent(v: Option<f64>) -> String {
    v.map_or(NONE.into(), |s| format!("{:.2}%", s * 100.0))
}

fn rps(v: f64) -> String {
    format!("{v:.1}rps")
}

fn ms(v: Option<f64>) -> String {
    v.map_or(NONE.into(), |l| format!("{}ms", l.round() as u64))
}

fn json_ms(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |l| json!(l.round() as u64))
}

/// `viz stat`: NAME, MESHED, SUCCESS, RPS, LATENCY_P50/P95/P99, TCP_CONN (NAMESPACE first with
/// `--all-namespaces`; STATUS for pods; READ_BYTES/SEC and WRITE_BYTES/SEC with `-o wide`).
pub fn stat(rows: &[stat::Row], all_namespaces: bool, output: Output) -> String {
    if output == Output::Json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                let s = r.stats.as_ref();
                let mut o = json!({
                    "namespace": r.listed.namespace,
                    "kind": r.kind.name(),
                    "name": r.listed.name,
                    "meshed": format!("{}/{}", r.listed.meshed, r.listed.pods),
                    "success": s.and_then(|s| s.success),
                    "rps": s.map(|s| s.rps),
                    "latency_ms_p50": json_ms(s.and_then(|s| s.latency_ms[0])),
                    "latency_ms_p95": json_ms(s.and_then(|s| s.latency_ms[1])),
                    "latency_ms_p99": json_ms(s.and_then(|s| s.latency_ms[2])),
                    "tcp_open_connections": s.and_then(|s| s.tcp_connections).map(|c| c.round() as u64),
                });
                if let Some(s) = s {
                    if let Some(r) = s.read_bytes_rate {
                        o["tcp_read_bytes_rate"] = json!(r);
                    }
                    if let Some(w) = s.write_bytes_rate {
                        o["tcp_write_bytes_rate"] = json!(w);
                    }
                }
                o
            })
            .collect();
        return serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n";
    }
    if rows.is_empty() {
        return "No traffic found.\n".into();
    }
    let pods = rows.iter().any(|r| r.listed.status.is_some());
    let wide = output == Output::Wide;
    let mut header: Vec<String> = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".into());
    }
    header.push("NAME".into());
    if pods {
        header.push("STATUS".into());
    }
    for h in [
        "MESHED",
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
        "TCP_CONN",
    ] {
        header.push(h.into());
    }
    if wide {
        header.push("READ_BYTES/SEC".into());
        header.push("WRITE_BYTES/SEC".into());
    }
    let mut table = vec![header];
    for r in rows {
        let mut line = Vec::new();
        if all_namespaces {
            line.push(r.listed.namespace.clone());
        }
        line.push(r.listed.name.clone());
        if pods {
            line.push(r.listed.status.clone().unwrap_or_default());
        }
        line.push(format!("{}/{}", r.listed.meshed, r.listed.pods));
        match &r.stats {
            Some(s) => {
                line.push(percent(s.success));
                line.push(rps(s.rps));
                line.extend(s.latency_ms.iter().map(|l| ms(*l)));
                line.push(
                    s.tcp_connections
                        .map_or(NONE.into(), |c| (c.round() as u64).to_string()),
                );
                if wide {
                    for b in [s.read_bytes_rate, s.write_bytes_rate] {
                        line.push(b.map_or(NONE.into(), |b| format!("{b:.1}B/s")));
                    }
                }
            }
            None => {
                let n = if wide { 8 } else { 6 };
                line.extend(std::iter::repeat_n(NONE.to_string(), n));
            }
        }
        table.push(line);
    }
    layout(&table, if all_namespaces { 2 } else { 1 }, true)
}

/// `viz routes`: ROUTE, SERVICE, SUCCESS, RPS, LATENCY_P50/P95/P99.
pub fn routes(rows: &[routes::Row], output: Output) -> String {
    if output == Output::Json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                let s = r.stats.as_ref();
                json!({
                    "route": r.route,
                    "authority": r.service,
                    "success": s.and_then(|s| s.success),
                    "rps": s.map(|s| s.rps),
                    "latency_ms_p50": json_ms(s.and_then(|s| s.latency_ms[0])),
                    "latency_ms_p95": json_ms(s.and_then(|s| s.latency_ms[1])),
                    "latency_ms_p99": json_ms(s.and_then(|s| s.latency_ms[2])),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n";
    }
    if rows.is_empty() {
        return "No traffic found.\n".into();
    }
    let mut table = vec![
        [
            "ROUTE",
            "SERVICE",
            "SUCCESS",
            "RPS",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in rows {
        let mut line = vec![r.route.clone(), r.service.clone()];
        match &r.stats {
            Some(s) => {
                line.push(percent(s.success));
                line.push(rps(s.rps));
                line.extend(s.latency_ms.iter().map(|l| ms(*l)));
            }
            None => line.extend(std::iter::repeat_n(NONE.to_string(), 5)),
        }
        table.push(line);
    }
    layout(&table, 1, true)
}

/// `viz edges`: SRC, DST, SRC_NS, DST_NS, SECURED (`-o wide`: CLIENT_ID, SERVER_ID, MSG).
pub fn edges(edges: &[Edge], output: Output) -> String {
    if output == Output::Json {
        let rows: Vec<Value> = edges
            .iter()
            .map(|e| {
                json!({
                    "src": e.src,
                    "src_namespace": e.src_namespace,
                    "dst": e.dst,
                    "dst_namespace": e.dst_namespace,
                    "client_id": e.client_id,
                    "server_id": e.server_id,
                    "no_tls_reason": e.no_tls_reason,
                })
            })
            .collect();
        return serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n";
    }
    if edges.is_empty() {
        return "No edges found.\n".into();
    }
    let wide = output == Output::Wide;
    let mut header: Vec<String> = ["SRC", "DST", "SRC_NS", "DST_NS"]
        .map(String::from)
        .to_vec();
    if wide {
        header.extend(["CLIENT_ID", "SERVER_ID", "MSG"].map(String::from));
    } else {
        header.push("SECURED".into());
    }
    let mut table = vec![header];
    for e in edges {
        let mut line = vec![
            e.src.clone(),
            e.dst.clone(),
            e.src_namespace.clone(),
            e.dst_namespace.clone(),
        ];
        if wide {
            line.push(e.client_id.clone());
            line.push(e.server_id.clone());
            line.push(e.no_tls_reason.clone());
        } else {
            line.push(if e.secured() { "√" } else { "×" }.into());
        }
        table.push(line);
    }
    layout(&table, 0, false)
}

#[cfg(test)]
mod tests;
