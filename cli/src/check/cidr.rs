//! `clusterNetworks`: the CIDRs the proxies treat as in-cluster, and what they must cover.

use super::control_plane::name_of;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use std::net::IpAddr;

/// The parsed `clusterNetworks` value of `linkerd-config`, as written (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Networks {
    text: String,
    nets: Vec<(IpAddr, u8)>,
}

/// Parses `a.b.c.d/n` or `x::/n`.
pub(crate) fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8), String> {
    let invalid = || format!("invalid CIDR address: {cidr}");
    let (addr, len) = cidr.trim().split_once('/').ok_or_else(invalid)?;
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    let len: u8 = len.parse().map_err(|_| invalid())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(invalid());
    }
    Ok((addr, len))
}

/// Whether `ip` lies in `net/len`.
fn contains((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    let bits = |a: IpAddr| -> (u128, u32) {
        match a {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    };
    let ((n, width), (i, other)) = (bits(net), bits(ip));
    if width != other {
        return false;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    n & mask == i & mask
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
        self.nets.iter().any(|net| contains(*net, ip))
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
                Ok((ip, len)) => !self
                    .nets
                    .iter()
                    .any(|net| contains(*net, ip) && len >= net.1),
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
