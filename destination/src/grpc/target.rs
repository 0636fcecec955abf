//! What a `GetDestination` asks for: its path and context token.

use crate::discover::ObjKey;
use std::net::IpAddr;
use tonic::Status;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    Name(String),
}

/// A name inside the cluster's DNS domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClusterName {
    /// `<svc>.<ns>.svc.<cluster-domain>`
    Service(ObjKey),
    /// `<hostname>.<svc>.<ns>.svc.<cluster-domain>`: one pod of a Service, by hostname.
    Pod { hostname: String, service: ObjKey },
}

/// Splits `host[:port]` (IPv6 in brackets, or bare) into host and port; the port defaults to
/// 80.
pub(crate) fn parse_path(path: &str) -> Result<(Host, u16), Status> {
    let invalid =
        |why: &str| Status::invalid_argument(format!("invalid destination {path:?}: {why}"));
    let path = path.trim();
    if path.is_empty() {
        return Err(invalid("empty path"));
    }
    if let Ok(ip) = path.parse::<IpAddr>() {
        return Ok((Host::Ip(ip), 80));
    }
    let (host, port) = if let Some(rest) = path.strip_prefix('[') {
        let (ip, rest) = rest
            .split_once(']')
            .ok_or_else(|| invalid("unclosed '['"))?;
        let ip = ip
            .parse::<IpAddr>()
            .map_err(|_| invalid("bad IPv6 address"))?;
        let port = match rest {
            "" => None,
            rest => Some(rest.strip_prefix(':').ok_or_else(|| invalid("bad port"))?),
        };
        (Host::Ip(ip), port)
    } else {
        let (host, port) = match path.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (path, None),
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) if host.is_empty() || host.contains(':') => return Err(invalid("bad host")),
            Err(_) => Host::Name(host.trim_end_matches('.').to_ascii_lowercase()),
        };
        (host, port)
    };
    let port = match port {
        None => 80,
        Some(port) => port.parse::<u16>().map_err(|_| invalid("bad port"))?,
    };
    Ok((host, port))
}

/// Parses a name that must end in `.svc.<cluster_domain>`.
pub(crate) fn parse_cluster_name(name: &str, cluster_domain: &str) -> Result<ClusterName, Status> {
    let not_cluster = || {
        Status::invalid_argument(format!(
            "{name:?} is not a service name in the cluster domain {cluster_domain:?}"
        ))
    };
    let prefix = name
        .strip_suffix(cluster_domain)
        .and_then(|p| p.strip_suffix(".svc."))
        .ok_or_else(not_cluster)?;
    let labels: Vec<&str> = prefix.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(not_cluster());
    }
    match labels.as_slice() {
        [svc, ns] => Ok(ClusterName::Service(ObjKey::new(*ns, *svc))),
        [hostname, svc, ns] => Ok(ClusterName::Pod {
            hostname: hostname.to_string(),
            service: ObjKey::new(*ns, *svc),
        }),
        _ => Err(not_cluster()),
    }
}

/// What a context token says about the client.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct ContextToken {
    /// The client's namespace.
    pub(crate) ns: Option<String>,
    /// The client's node.
    #[serde(rename = "nodeName")]
    pub(crate) node_name: Option<String>,
}

/// Parses a context token: JSON `{"ns": …, "nodeName": …}` (current proxies) or `ns:<ns>`
/// (older ones). Anything else says nothing.
pub(crate) fn context_token(token: &str) -> ContextToken {
    let token = token.trim();
    let parsed = if token.starts_with('{') {
        serde_json::from_str(token).unwrap_or_default()
    } else {
        ContextToken {
            ns: token.strip_prefix("ns:").map(str::to_string),
            node_name: None,
        }
    };
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    ContextToken {
        ns: nonempty(parsed.ns),
        node_name: nonempty(parsed.node_name),
    }
}
