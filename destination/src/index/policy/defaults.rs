//! Cluster-wide policy settings: the default inbound policy and the networks it names.

use linkerd2_proxy_api::net;
use oxlink_crds::names::control_plane::{
    DEFAULT_CLUSTER_NETWORKS, DEFAULT_INBOUND_POLICY, DEFAULT_PROBE_NETWORKS,
};
use std::{fmt, net::IpAddr, str::FromStr};

/// What policy needs to know about the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// The policy of ports no Server selects, unless the pod's annotation says otherwise.
    pub default_policy: DefaultPolicy,
    /// The networks `cluster-*` policies admit, and ServerAuthorizations without networks.
    pub cluster_networks: Vec<Cidr>,
    /// The networks whose probes the probe routes admit.
    pub probe_networks: Vec<Cidr>,
}

impl Default for PolicyConfig {
    /// Linkerd's defaults: `all-unauthenticated`, the chart's cluster networks, probes from
    /// anywhere.
    fn default() -> Self {
        Self {
            default_policy: DEFAULT_INBOUND_POLICY
                .parse()
                .unwrap_or(DefaultPolicy::Deny),
            cluster_networks: Cidr::parse_list(DEFAULT_CLUSTER_NETWORKS).unwrap_or_default(),
            probe_networks: Cidr::parse_list(DEFAULT_PROBE_NETWORKS).unwrap_or_default(),
        }
    }
}

/// A default inbound policy, as `--default-policy` and `config.linkerd.io/default-inbound-policy`
/// spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultPolicy {
    AllUnauthenticated,
    AllAuthenticated,
    ClusterUnauthenticated,
    ClusterAuthenticated,
    Deny,
    /// Admits everything, like `all-unauthenticated`, but under its own name so the proxy
    /// reports what a stricter policy would deny.
    Audit,
}

impl DefaultPolicy {
    pub const ALL: [Self; 6] = [
        Self::AllUnauthenticated,
        Self::AllAuthenticated,
        Self::ClusterUnauthenticated,
        Self::ClusterAuthenticated,
        Self::Deny,
        Self::Audit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::AllUnauthenticated => "all-unauthenticated",
            Self::AllAuthenticated => "all-authenticated",
            Self::ClusterUnauthenticated => "cluster-unauthenticated",
            Self::ClusterAuthenticated => "cluster-authenticated",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }

    /// The same policy with authentication required (for a pod's
    /// `proxy-require-identity-inbound-ports`).
    pub(crate) fn authenticated(self) -> Self {
        match self {
            Self::AllUnauthenticated | Self::Audit => Self::AllAuthenticated,
            Self::ClusterUnauthenticated => Self::ClusterAuthenticated,
            other => other,
        }
    }
}

impl fmt::Display for DefaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown default policy {0:?}: expected all-unauthenticated, all-authenticated, \
     cluster-unauthenticated, cluster-authenticated, deny or audit"
)]
pub struct ParsePolicyError(String);

impl FromStr for DefaultPolicy {
    type Err = ParsePolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ParsePolicyError(s.to_string()))
    }
}

/// An IP network: `10.0.0.0/8`, or a bare address for one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseCidrError {
    #[error("{0:?} is not an IP address")]
    Addr(String),
    #[error("{0:?} is not a prefix length for its address family")]
    Prefix(String),
}

impl Cidr {
    /// A comma-separated list (spaces allowed); empty items are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, ParseCidrError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    /// Every IPv4 and every IPv6 address.
    pub(crate) fn all() -> [Self; 2] {
        [
            Self {
                addr: IpAddr::from([0, 0, 0, 0]),
                prefix: 0,
            },
            Self {
                addr: IpAddr::from([0u16; 8]),
                prefix: 0,
            },
        ]
    }

    pub(crate) fn to_proto(self) -> net::IpNetwork {
        net::IpNetwork::from((self.addr, self.prefix))
    }
}

/// A comma-separated list of networks, as flags spell them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Networks(pub Vec<Cidr>);

impl FromStr for Networks {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cidr::parse_list(s).map(Self)
    }
}

impl FromStr for Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| ParseCidrError::Addr(addr.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| ParseCidrError::Prefix(s.to_string()))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
