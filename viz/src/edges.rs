//! `edges`: who sends requests to whom, and whether the connection is mTLS with both identities.

use crate::{Kind, prom::Sample};
use serde::{Deserialize, Serialize};

/// One edge between two resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub src: String,
    pub src_namespace: String,
    pub dst: String,
    pub dst_namespace: String,
    /// The source's identity, as the destination's proxy saw it (empty when unknown).
    pub client_id: String,
    /// The destination's identity, as the source's proxy verified it (empty without mTLS).
    pub server_id: String,
    /// Why the edge is not secured (the proxy's `no_tls_reason`), empty when it is.
    pub no_tls_reason: String,
}

impl Edge {
    /// Whether the source's proxy reached the destination over mTLS with a verified identity.
    pub fn secured(&self) -> bool {
        !self.server_id.is_empty()
    }
}

/// The namespace of a mesh identity: `sa.ns.serviceaccount.identity.…` → `ns`.
fn identity_namespace(id: &str) -> Option<&str> {
    let mut parts = id.split('.');
    let _sa = parts.next()?;
    let ns = parts.next()?;
    (parts.next() == Some("serviceaccount")).then_some(ns)
}

/// The edges of the answers to [`crate::promql::edges`], sorted by source then destination.
pub fn edges(kind: Kind, outbound: &[Sample], inbound: &[Sample]) -> Vec<Edge> {
    let (label, dst_label) = match kind {
        Kind::Namespace => ("namespace".to_string(), "dst_namespace".to_string()),
        k => (k.label().to_string(), k.dst_label()),
    };
    let mut edges: Vec<Edge> = Vec::new();
    for s in outbound {
        let (src, dst) = (s.label(&label), s.label(&dst_label));
        if src.is_empty() || dst.is_empty() {
            continue;
        }
        let edge = Edge {
            src: src.to_string(),
            src_namespace: s.label("namespace").to_string(),
            dst: dst.to_string(),
            dst_namespace: s.label("dst_namespace").to_string(),
            client_id: String::new(),
            server_id: s.label("server_id").to_string(),
            no_tls_reason: match s.label("server_id") {
                "" => match s.label("no_tls_reason") {
                    "" => "not_provided_by_remote".to_string(),
                    r => r.to_string(),
                },
                _ => String::new(),
            },
        };
        let same = |e: &Edge| {
            (&e.src, &e.src_namespace, &e.dst, &e.dst_namespace)
                == (
                    &edge.src,
                    &edge.src_namespace,
                    &edge.dst,
                    &edge.dst_namespace,
                )
        };
        match edges.iter_mut().find(|e| same(e)) {
            Some(e) if !e.secured() && edge.secured() => *e = edge,
            Some(_) => {}
            None => edges.push(edge),
        }
    }
    for e in &mut edges {
        // The client identities the destination's proxies saw from the source's namespace; the
        // source's own ServiceAccount name first when there are several.
        let mut seen: Vec<&str> = inbound
            .iter()
            .filter(|s| s.label("namespace") == e.dst_namespace && s.label(&label) == e.dst)
            .map(|s| s.label("client_id"))
            .filter(|id| identity_namespace(id) == Some(e.src_namespace.as_str()))
            .collect();
        seen.sort_by_key(|id| !id.starts_with(&format!("{}.", e.src)));
        if let Some(id) = seen.first() {
            e.client_id = id.to_string();
        }
    }
    edges.sort_by(|a, b| {
        (&a.src_namespace, &a.src, &a.dst_namespace, &a.dst).cmp(&(
            &b.src_namespace,
            &b.src,
            &b.dst_namespace,
            &b.dst,
        ))
    });
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)]) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
        }
    }

    #[test]
    fn secured_edges_carry_both_identities() {
        let ui = "todoui.todo.serviceaccount.identity.linkerd.cluster.local";
        let be = "todobackend.todo.serviceaccount.identity.linkerd.cluster.local";
        let out = [
            sample(&[
                ("deployment", "todoui"),
                ("namespace", "todo"),
                ("dst_deployment", "todobackend"),
                ("dst_namespace", "todo"),
                ("server_id", be),
            ]),
            sample(&[
                ("deployment", "todoui"),
                ("namespace", "todo"),
                ("dst_deployment", "todobackend"),
                ("dst_namespace", "todo"),
                ("no_tls_reason", "not_provided_by_service_discovery"),
            ]),
            sample(&[
                ("deployment", "load"),
                ("namespace", "todo"),
                ("dst_deployment", "plain"),
                ("dst_namespace", "todo"),
            ]),
            // An outbound request to something that is not a deployment.
            sample(&[("deployment", "load"), ("namespace", "todo")]),
        ];
        let inb = [
            sample(&[
                ("deployment", "todobackend"),
                ("namespace", "todo"),
                ("client_id", ui),
            ]),
            sample(&[
                ("deployment", "todobackend"),
                ("namespace", "todo"),
                (
                    "client_id",
                    "x.other.serviceaccount.identity.linkerd.cluster.local",
                ),
            ]),
        ];
        let edges = edges(Kind::Deployment, &out, &inb);
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[0].src, "load");
        assert!(!edges[0].secured());
        assert_eq!(edges[0].no_tls_reason, "not_provided_by_remote");
        let e = &edges[1];
        assert_eq!((e.src.as_str(), e.dst.as_str()), ("todoui", "todobackend"));
        assert!(e.secured());
        assert_eq!(e.server_id, be);
        assert_eq!(e.client_id, ui);
    }
}
