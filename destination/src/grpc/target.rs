//! What a `GetDestination` asks for: its path and context token, each checked before it can
//! become a key of the index: a name must be a DNS name, a token is read up to a bound.

use crate::discover::ObjKey;
use std::net::IpAddr;
use tonic::Status;

/// The longest DNS name, without its final dot (RFC 1035).
const MAX_NAME: usize = 253;
/// The longest DNS label (RFC 1035).
const MAX_LABEL: usize = 63;
/// The longest context token read. A proxy's is `{"ns":…,"nodeName":…,"pod":…}`, a few
/// hundred bytes with the longest names Kubernetes allows.
pub(crate) const MAX_CONTEXT_TOKEN: usize = 2048;
/// How much of a refused input an error message quotes.
const QUOTED: usize = 80;

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
    let invalid = |why: &str| {
        Status::invalid_argument(format!("invalid destination {}: {why}", quoted(path)))
    };
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
            Err(_) => {
                let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                check_dns_name(&name).map_err(|why| invalid(&why))?;
                Host::Name(name)
            }
        };
        (host, port)
    };
    let port = match port {
        None => 80,
        Some(port) => port.parse::<u16>().map_err(|_| invalid("bad port"))?,
    };
    Ok((host, port))
}

/// Checks that `name` (lowercase, without a final dot) is a DNS name: at most 253 characters,
/// in labels of 1 to 63 letters, digits and hyphens that neither start nor end with a hyphen
/// (RFC 1123), as every name of a Service, namespace and pod hostname is. Says why not.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!(
            "the name is {} characters long; a DNS name has at most {MAX_NAME}",
            name.len()
        ));
    }
    for label in name.split('.') {
        check_dns_label(label)?;
    }
    Ok(())
}

/// Checks that `label` is one DNS label (see [`check_dns_name`]). Says why not.
pub(crate) fn check_dns_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("a DNS name has no empty labels".into());
    }
    if label.len() > MAX_LABEL {
        return Err(format!(
            "the label {} is {} characters long; a DNS label has at most {MAX_LABEL}",
            quoted(label),
            label.len()
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "the label {} holds {c:?}; a DNS label holds only letters, digits and '-'",
            quoted(label)
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "the label {} starts or ends with '-'",
            quoted(label)
        ));
    }
    Ok(())
}

/// `s` quoted for an error message, cut after [`QUOTED`] characters: a refused input may be
/// as large as a request body.
pub(crate) fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTED) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &s[..end], s.len()),
    }
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
/// (older ones); anything else says nothing. Since what it says becomes part of a key, a
/// token longer than [`MAX_CONTEXT_TOKEN`], a namespace that is no DNS label or a node name
/// that is no DNS name is INVALID_ARGUMENT.
pub(crate) fn context_token(token: &str) -> Result<ContextToken, Status> {
    let invalid = |why: String| Status::invalid_argument(format!("invalid context token: {why}"));
    if token.len() > MAX_CONTEXT_TOKEN {
        return Err(invalid(format!(
            "it is {} bytes long; at most {MAX_CONTEXT_TOKEN} are read",
            token.len()
        )));
    }
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
    let token = ContextToken {
        ns: nonempty(parsed.ns),
        node_name: nonempty(parsed.node_name),
    };
    if let Some(ns) = &token.ns {
        check_dns_label(ns).map_err(|why| invalid(format!("namespace: {why}")))?;
    }
    if let Some(node) = &token.node_name {
        check_dns_name(node).map_err(|why| invalid(format!("node name: {why}")))?;
    }
    Ok(token)
}
