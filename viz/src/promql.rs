//! The PromQL that Linkerd's metrics API sends for `stat`, `routes` and `edges`, built from the
//! target, `--to`/`--from`, the namespace and the time window.

use crate::{Kind, Resource, ResourceError, Window};
use std::collections::BTreeMap;

/// The latency quantiles of every table, in column order.
pub const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)];

/// A label selector, rendered in sorted order: `{direction="inbound", dst=~"…"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(BTreeMap<String, (&'static str, String)>);

impl Selector {
    pub fn with(mut self, label: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(label, value);
        self
    }

    fn set(&mut self, label: impl Into<String>, value: impl Into<String>) {
        self.0.insert(label.into(), ("=", value.into()));
    }

    /// A regular-expression match (`=~`), anchored by Prometheus.
    fn set_regex(&mut self, label: impl Into<String>, regex: impl Into<String>) {
        self.0.insert(label.into(), ("=~", regex.into()));
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, (op, v))) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let v = v.replace('\\', "\\\\").replace('"', "\\\"");
            write!(f, "{k}{op}\"{v}\"")?;
        }
        f.write_str("}")
    }
}

/// Where a `stat` row's namespace and name come from in the answer's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowLabels {
    pub namespace: String,
    pub name: String,
}

impl RowLabels {
    fn group_by(&self) -> String {
        if self.namespace == self.name {
            self.namespace.clone()
        } else {
            format!("{}, {}", self.namespace, self.name)
        }
    }
}

/// What `stat` asks: the target resource(s) of one kind, in a namespace or all of them.
#[derive(Clone, Debug)]
pub struct StatQuery<'a> {
    pub target: &'a Resource,
    /// `None` with `--all-namespaces`.
    pub namespace: Option<&'a str>,
    pub to: Option<&'a Resource>,
    pub from: Option<&'a Resource>,
    pub window: &'a Window,
}

/// The queries of one `stat` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatQueries {
    /// `sum(increase(response_total…))` by row, `classification` and `tls`.
    pub requests: String,
    /// `histogram_quantile` of `response_latency_ms_bucket`, in [`QUANTILES`] order.
    pub latency: [String; 3],
    /// Open TCP connections (`tcp_open_connections`).
    pub tcp_connections: String,
    /// Bytes read and written over the window (`-o wide`).
    pub tcp_read_bytes: String,
    pub tcp_write_bytes: String,
    /// The labels naming a row in every answer.
    pub row: RowLabels,
}

fn source_labels(sel: &mut Selector, r: &Resource, namespace: Option<&str>) {
    if r.kind == Kind::Namespace {
        if let Some(name) = &r.name {
            sel.set("namespace", name.as_str());
        }
        return;
    }
    if let Some(ns) = namespace {
        sel.set("namespace", ns);
    }
    if let Some(name) = &r.name {
        sel.set(r.kind.label(), name.as_str());
    }
}

fn dst_labels(sel: &mut Selector, r: &Resource, namespace: Option<&str>) {
    if r.kind == Kind::Namespace {
        if let Some(name) = &r.name {
            sel.set("dst_namespace", name.as_str());
        }
        return;
    }
    if let Some(ns) = namespace {
        sel.set("dst_namespace", ns);
    }
    if let Some(name) = &r.name {
        sel.set(r.kind.dst_label(), name.as_str());
    }
}

fn row_labels(kind: Kind, dst: bool) -> RowLabels {
    let (ns, name) = match kind {
        Kind::Namespace => ("namespace".to_string(), "namespace".to_string()),
        other => ("namespace".to_string(), other.label().to_string()),
    };
    if dst {
        let name = match kind {
            Kind::Namespace => "dst_namespace".to_string(),
            other => other.dst_label(),
        };
        RowLabels {
            namespace: format!("dst_{ns}"),
            name,
        }
    } else {
        RowLabels {
            namespace: ns,
            name,
        }
    }
}

/// Refuses targets that only make sense as `--to` (services, authorities).
pub fn check_target(target: &Resource) -> Result<(), ResourceError> {
    match target.kind {
        Kind::Service => Err(ResourceError::OnlyTo("services")),
        Kind::Authority => Err(ResourceError::OnlyTo("authorities")),
        _ => Ok(()),
    }
}

/// The queries Linkerd's metrics API builds for a `stat` request.
pub fn stat(q: &StatQuery<'_>) -> Result<StatQueries, ResourceError> {
    check_target(q.target)?;
    if let Some(from) = q.from {
        check_target(from)?;
    }
    let window = q.window.as_str();
    let mut sel = Selector::default();
    let (row, peer) = match (q.to, q.from) {
        (Some(to), _) => {
            sel.set("direction", "outbound");
            source_labels(&mut sel, q.target, q.namespace);
            let to_ns = to.namespace.as_deref().or(q.namespace);
            dst_labels(&mut sel, to, to_ns);
            (row_labels(q.target.kind, false), "dst")
        }
        (None, Some(from)) => {
            sel.set("direction", "outbound");
            let from_ns = from.namespace.as_deref().or(q.namespace);
            source_labels(&mut sel, from, from_ns);
            dst_labels(&mut sel, q.target, q.namespace);
            (row_labels(q.target.kind, true), "dst")
        }
        (None, None) => {
            sel.set("direction", "inbound");
            source_labels(&mut sel, q.target, q.namespace);
            (row_labels(q.target.kind, false), "src")
        }
    };
    let by = row.group_by();
    let tcp = sel.clone().with("peer", peer);
    let latency = QUANTILES.map(|(_, quantile)| {
        format!(
            "histogram_quantile({quantile}, sum(irate(response_latency_ms_bucket{sel}[{window}])) by (le, {by}))"
        )
    });
    Ok(StatQueries {
        requests: format!(
            "sum(increase(response_total{sel}[{window}])) by ({by}, classification, tls)"
        ),
        latency,
        tcp_connections: format!("sum(tcp_open_connections{tcp}) by ({by})"),
        tcp_read_bytes: format!("sum(increase(tcp_read_bytes_total{tcp}[{window}])) by ({by})"),
        tcp_write_bytes: format!("sum(increase(tcp_write_bytes_total{tcp}[{window}])) by ({by})"),
        row,
    })
}

/// The queries of `routes`: per-route responses and latencies of the target's proxies,
/// `direction="inbound"` (or, with `--to`, the target's outbound requests to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteQueries {
    pub requests: String,
    pub latency: [String; 3],
}

/// The Services a `routes --to` reaches, in their namespace: route metrics name the
/// destination only by its authority (`dst="web.ns.svc.cluster.local:8080"`).
#[derive(Clone, Copy, Debug)]
pub struct RoutesTo<'a> {
    pub services: &'a [String],
    pub namespace: &'a str,
}

/// The route queries for `target` in `namespace`, optionally `--to` some Services.
pub fn routes(
    target: &Resource,
    namespace: &str,
    to: Option<RoutesTo<'_>>,
    window: &Window,
) -> Result<RouteQueries, ResourceError> {
    check_target(target)?;
    let mut sel = Selector::default();
    source_labels(&mut sel, target, Some(namespace));
    match to {
        Some(to) => {
            sel.set("direction", "outbound");
            let ns = to.namespace.replace('.', "\\.");
            sel.set_regex(
                "dst",
                format!("({})\\.{ns}\\.svc\\..+", to.services.join("|")),
            );
        }
        None => sel.set("direction", "inbound"),
    }
    let w = window.as_str();
    Ok(RouteQueries {
        requests: format!(
            "sum(increase(route_response_total{sel}[{w}])) by (rt_route, dst, classification)"
        ),
        latency: QUANTILES.map(|(_, quantile)| {
            format!(
                "histogram_quantile({quantile}, sum(irate(route_response_latency_ms_bucket{sel}[{w}])) by (le, rt_route, dst))"
            )
        }),
    })
}

/// The queries of `edges` between resources of `kind` (in `namespace`, or everywhere):
/// who sends requests to whom, with the server's identity, and who each server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeQueries {
    pub outbound: String,
    pub inbound: String,
}

pub fn edges(kind: Kind, namespace: Option<&str>) -> Result<EdgeQueries, ResourceError> {
    let target = Resource {
        kind,
        name: None,
        namespace: None,
    };
    check_target(&target)?;
    let label = kind.label();
    let dst = kind.dst_label();
    let mut out = Selector::default().with("direction", "outbound");
    let mut inb = Selector::default().with("direction", "inbound");
    if let Some(ns) = namespace {
        out.set("namespace", ns);
        inb.set("namespace", ns);
    }
    let (outbound, inbound) = if kind == Kind::Namespace {
        (
            format!(
                "count(response_total{out}) by (namespace, dst_namespace, server_id, no_tls_reason)"
            ),
            format!("count(response_total{inb}) by (namespace, client_id, no_tls_reason)"),
        )
    } else {
        (
            format!(
                "count(response_total{out}) by ({label}, {dst}, namespace, dst_namespace, server_id, no_tls_reason)"
            ),
            format!("count(response_total{inb}) by ({label}, namespace, client_id, no_tls_reason)"),
        )
    };
    Ok(EdgeQueries { outbound, inbound })
}

#[cfg(test)]
mod tests;
