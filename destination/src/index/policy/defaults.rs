//! Cluster-wide policy settings: the default inbound policy and the networks it names.

use linkerd2_proxy_api::net;
use oxlink_crds::names::control_plane::{
    DEFAULT_CLUSTER_NETWORKS, DEFAULT_INBOUND_POLICY, DEFAULT_PROBE_NETWORKS,
};
use std::{fmt, str::FromStr};

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

pub use oxlink_crds::names::cidr::{Cidr, ParseCidrError};

/// A network as the proxy API spells it.
pub(crate) fn to_proto(cidr: Cidr) -> net::IpNetwork {
    net::IpNetwork::from((cidr.addr, cidr.prefix))
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
