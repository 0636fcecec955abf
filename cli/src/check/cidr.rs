//! `clusterNetworks`: the CIDRs the proxies treat as in-cluster, and what they must cover.

use super::checks::name_of;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use oxlink_crds::names::cidr::Cidr;
use std::net::IpAddr;

/// The parsed `clusterNetworks` value of `linkerd-config`, as written (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Networks {
    text: String,
    nets: Vec<Cidr>,
}

/// Parses `a.b.c.d/n`, `x::/n` or a bare address (one host), with Linkerd's message.
pub(crate) fn parse_cidr(cidr: &str) -> Result<Cidr, String> {
    cidr.trim()
        .parse()
        .map_err(|_| format!("invalid CIDR address: {cidr}"))
}

// === impl Networks ===

impl Networks {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let nets = text
            .split(',')
            .map(parse_cidr)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            text: text.to_string(),
            nets,
        })
    }

    fn covers(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains_ip(ip))
    }

    /// `None` when no node exposes a podCIDR (nothing to judge, as on some clouds).
    pub(crate) fn uncovered_pod_cidrs(&self, nodes: &[Node]) -> Option<Result<(), String>> {
        let cidrs: Vec<&str> = nodes
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_deref())
            .filter(|c| !c.is_empty())
            .collect();
        if cidrs.is_empty() {
            return None;
        }
        let mut bad: Vec<&str> = cidrs
            .into_iter()
            .filter(|cidr| match parse_cidr(cidr) {
                Ok(cidr) => !self.nets.iter().any(|net| net.contains(&cidr)),
                Err(_) => true,
            })
            .collect();
        bad.sort();
        Some(if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "node has podCIDR(s) [{}] which are not contained in the Linkerd clusterNetworks.\n\tTry installing linkerd via --set clusterNetworks=\"{}\"",
                bad.join(" "),
                bad.join("\\,")
            ))
        })
    }

    pub(crate) fn uncovered_pods(&self, pods: &[Pod]) -> Result<(), String> {
        for pod in pods {
            let Some(status) = &pod.status else { continue };
            if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
                continue;
            }
            let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty()) else {
                continue;
            };
            if !ip.parse().is_ok_and(|ip| self.covers(ip)) {
                return Err(format!(
                    "the Linkerd clusterNetworks [{:?}] do not include pod {}/{} ({ip})",
                    self.text,
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    name_of(&pod.metadata)
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn uncovered_services(&self, services: &[Service]) -> Result<(), String> {
        for svc in services {
            let Some(ip) = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) else {
                continue;
            };
            if ip.is_empty() || ip == "None" {
                continue;
            }
            if !ip.parse().is_ok_and(|ip| self.covers(ip)) {
                return Err(format!(
                    "the Linkerd clusterNetworks [{:?}] do not include svc {}/{} ({ip})",
                    self.text,
                    svc.metadata.namespace.as_deref().unwrap_or_default(),
                    name_of(&svc.metadata)
                ));
            }
        }
        Ok(())
    }
}
