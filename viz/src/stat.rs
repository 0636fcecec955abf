//! `stat` rows: a resource's pods (MESHED) from Kubernetes, its golden metrics from Prometheus.

use crate::{Kind, Window, prom::Sample, promql::RowLabels};
use serde::{Deserialize, Serialize};

/// A resource listed by Kubernetes, with its pods: how many run a proxy, how many there are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub namespace: String,
    pub name: String,
    pub meshed: u32,
    pub pods: u32,
    /// A pod's phase (`-o` tables of pods show it as STATUS).
    pub status: Option<String>,
}

/// The answers to a [`crate::promql::StatQueries`], in the same order.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    pub requests: Vec<Sample>,
    pub latency: [Vec<Sample>; 3],
    pub tcp_connections: Vec<Sample>,
    pub tcp_read_bytes: Vec<Sample>,
    pub tcp_write_bytes: Vec<Sample>,
}

/// The golden metrics of one row; `None` where nothing was measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The fraction of responses classified `success`.
    pub success: Option<f64>,
    pub rps: f64,
    /// Milliseconds, for p50, p95, p99.
    pub latency_ms: [Option<f64>; 3],
    pub tcp_connections: Option<f64>,
    pub read_bytes_rate: Option<f64>,
    pub write_bytes_rate: Option<f64>,
}

/// One row of `stat`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub kind: Kind,
    pub listed: Listed,
    /// `None` when the resource's proxies reported nothing in the window.
    pub stats: Option<Stats>,
}

fn matching<'a>(
    samples: &'a [Sample],
    row: &'a RowLabels,
    l: &'a Listed,
) -> impl Iterator<Item = &'a Sample> + 'a {
    samples
        .iter()
        .filter(move |s| s.label(&row.namespace) == l.namespace && s.label(&row.name) == l.name)
}

fn sum(samples: &[Sample], row: &RowLabels, l: &Listed) -> Option<f64> {
    let mut found = false;
    let total = matching(samples, row, l).fold(0.0, |acc, s| {
        found = true;
        acc + s.value
    });
    found.then_some(total)
}

/// Joins the listed resources with the answers, sorted by namespace and name like Linkerd.
pub fn rows(
    kind: Kind,
    mut listed: Vec<Listed>,
    row: &RowLabels,
    a: &Answers,
    window: &Window,
) -> Vec<Row> {
    listed.sort_by(|x, y| (&x.namespace, &x.name).cmp(&(&y.namespace, &y.name)));
    let secs = window.seconds() as f64;
    listed
        .into_iter()
        .map(|l| {
            let (mut ok, mut failed, mut any) = (0.0, 0.0, false);
            for s in matching(&a.requests, row, &l) {
                any = true;
                match s.label("classification") {
                    "success" => ok += s.value,
                    _ => failed += s.value,
                }
            }
            let tcp = sum(&a.tcp_connections, row, &l);
            let stats = (any || tcp.is_some()).then(|| Stats {
                success: (ok + failed > 0.0).then(|| ok / (ok + failed)),
                rps: (ok + failed) / secs,
                latency_ms: [0, 1, 2].map(|i| sum(&a.latency[i], row, &l)),
                tcp_connections: tcp,
                read_bytes_rate: sum(&a.tcp_read_bytes, row, &l).map(|b| b / secs),
                write_bytes_rate: sum(&a.tcp_write_bytes, row, &l).map(|b| b / secs),
            });
            Row {
                kind,
                listed: l,
                stats,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            value,
        }
    }

    fn listed(name: &str) -> Listed {
        Listed {
            namespace: "todo".into(),
            name: name.into(),
            meshed: 1,
            pods: 1,
            status: None,
        }
    }

    #[test]
    fn success_rps_latency_and_connections_per_row() {
        let row = RowLabels {
            namespace: "namespace".into(),
            name: "deployment".into(),
        };
        let web = [("namespace", "todo"), ("deployment", "web")];
        let with = |extra: (&'static str, &'static str)| {
            let mut l = web.to_vec();
            l.push(extra);
            l
        };
        let a = Answers {
            requests: vec![
                sample(&with(("classification", "success")), 540.0),
                sample(&with(("classification", "failure")), 60.0),
                sample(
                    &[
                        ("namespace", "other"),
                        ("deployment", "web"),
                        ("classification", "success"),
                    ],
                    1e6,
                ),
            ],
            latency: [
                vec![sample(&web, 2.0)],
                vec![sample(&web, 9.5)],
                vec![sample(&web, 20.0)],
            ],
            tcp_connections: vec![sample(&web, 2.0)],
            tcp_read_bytes: vec![sample(&web, 6000.0)],
            tcp_write_bytes: vec![],
        };
        let rows = rows(
            Kind::Deployment,
            vec![listed("web"), listed("idle")],
            &row,
            &a,
            &Window::default(),
        );
        assert_eq!(rows[0].listed.name, "idle");
        assert_eq!(rows[0].stats, None);
        let s = rows[1].stats.clone().unwrap();
        assert_eq!(s.success, Some(0.9));
        assert_eq!(s.rps, 10.0);
        assert_eq!(s.latency_ms, [Some(2.0), Some(9.5), Some(20.0)]);
        assert_eq!(s.tcp_connections, Some(2.0));
        assert_eq!(s.read_bytes_rate, Some(100.0));
        assert_eq!(s.write_bytes_rate, None);
    }
}
