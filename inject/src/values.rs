//! The control plane's configuration values, as stored under key `values` of ConfigMap
//! `linkerd-config`, with the chart's defaults.
//!
//! Only the values injection reads are modelled; every other key of the document is ignored, so
//! a full Linkerd `values` document deserializes as well as our own. Missing keys take the
//! defaults of the current chart.

use k8s_openapi::api::core::v1::EnvVar;
use oxlink_crds::names::control_plane;
use serde::{Deserialize, Serialize};

/// The proxy release injected when neither the values nor an annotation name one.
pub const DEFAULT_LINKERD_VERSION: &str = "edge-26.8.1";
/// The registry every default image lives in.
pub const DEFAULT_REGISTRY: &str = "cr.l5d.io/linkerd";

/// The subset of `linkerd-config` values that shapes an injected pod.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Values {
    pub linkerd_version: String,
    pub cluster_domain: String,
    /// Empty means [`Values::cluster_domain`].
    pub identity_trust_domain: String,
    pub cluster_networks: String,
    /// The trust anchors (PEM), as `linkerd install` stores them in `linkerd-config`.
    #[serde(rename = "identityTrustAnchorsPEM")]
    pub identity_trust_anchors_pem: String,
    pub image_pull_policy: String,
    pub cni_enabled: bool,
    #[serde(rename = "disableIPv6")]
    pub disable_ipv6: bool,
    pub identity: IdentityValues,
    pub proxy: ProxyValues,
    pub proxy_init: ProxyInitValues,
    pub debug_container: DebugContainerValues,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IdentityValues {
    pub service_account_token_projection: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageValues {
    pub name: String,
    /// Empty means [`Values::linkerd_version`].
    pub version: String,
    /// Empty means [`Values::image_pull_policy`].
    pub pull_policy: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PortsValues {
    pub admin: u16,
    pub control: u16,
    pub inbound: u16,
    pub outbound: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestLimit {
    pub request: String,
    pub limit: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourcesValues {
    pub cpu: RequestLimit,
    pub memory: RequestLimit,
    pub ephemeral_storage: RequestLimit,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkersValues {
    pub minimum: u32,
    pub maximum: Option<u32>,
    #[serde(rename = "maximumCPURatio")]
    pub maximum_cpu_ratio: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuntimeValues {
    pub workers: WorkersValues,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamsValues {
    pub initial_timeout: String,
    pub idle_timeout: String,
    pub lifetime: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ControlValues {
    pub streams: StreamsValues,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KeepAliveValues {
    pub keep_alive_interval: String,
    pub keep_alive_timeout: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerValues {
    pub http2: KeepAliveValues,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DirectionValues {
    pub server: ServerValues,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyValues {
    pub image: ImageValues,
    pub ports: PortsValues,
    pub uid: i64,
    /// Negative means "not set".
    pub gid: i64,
    pub log_level: String,
    pub log_format: String,
    /// `insecure` keeps HTTP headers in the proxy's logs.
    #[serde(rename = "logHTTPHeaders")]
    pub log_http_headers: String,
    pub opaque_ports: String,
    #[serde(rename = "await")]
    pub await_: bool,
    pub native_sidecar: bool,
    pub default_inbound_policy: String,
    pub require_identity_on_inbound_ports: String,
    pub outbound_connect_timeout: String,
    pub inbound_connect_timeout: String,
    pub outbound_discovery_cache_unused_timeout: String,
    pub inbound_discovery_cache_unused_timeout: String,
    pub disable_outbound_protocol_detect_timeout: bool,
    pub disable_inbound_protocol_detect_timeout: bool,
    pub enable_external_profiles: bool,
    pub enable_shutdown_endpoint: bool,
    pub cores: Option<u32>,
    pub runtime: RuntimeValues,
    pub resources: ResourcesValues,
    pub wait_before_exit_seconds: u64,
    pub shutdown_grace_period: String,
    pub access_log: String,
    pub control: ControlValues,
    pub inbound: DirectionValues,
    pub outbound: DirectionValues,
    pub metrics_hostname_labels: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub additional_env: Vec<EnvVar>,
    #[serde(deserialize_with = "null_as_default")]
    pub experimental_env: Vec<EnvVar>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyInitValues {
    /// `nft` or `legacy`.
    pub iptables_mode: String,
    pub ignore_inbound_ports: String,
    pub ignore_outbound_ports: String,
    pub skip_subnets: String,
    pub log_level: String,
    pub log_format: String,
    pub close_wait_timeout_secs: u64,
    pub run_as_user: i64,
    pub run_as_group: i64,
    pub resources: ResourcesValues,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DebugContainerValues {
    pub image: ImageValues,
}

#[derive(Debug, thiserror::Error)]
#[error("the linkerd-config values do not parse: {0}")]
pub struct ValuesError(String);

/// `key: null` means the default, as a missing key does.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

// === impl Values ===

impl Values {
    /// Parses the YAML (or JSON) document stored in `linkerd-config`.
    pub fn from_yaml(text: &str) -> Result<Self, ValuesError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| ValuesError(e.to_string()))
    }

    /// The version of `image`: its own, or [`Values::linkerd_version`] when that is empty.
    pub fn version_of<'a>(&'a self, image: &'a ImageValues) -> &'a str {
        if image.version.is_empty() {
            &self.linkerd_version
        } else {
            &image.version
        }
    }

    /// The pull policy of `image`: its own, or [`Values::image_pull_policy`] when that is empty.
    pub fn pull_policy_of<'a>(&'a self, image: &'a ImageValues) -> &'a str {
        if image.pull_policy.is_empty() {
            &self.image_pull_policy
        } else {
            &image.pull_policy
        }
    }

    /// The proxy's version before annotations: `proxy.image.version`, or `linkerdVersion`.
    pub fn proxy_version(&self) -> &str {
        self.version_of(&self.proxy.image)
    }

    /// The trust domain of mesh identities.
    pub fn trust_domain(&self) -> &str {
        if self.identity_trust_domain.is_empty() {
            &self.cluster_domain
        } else {
            &self.identity_trust_domain
        }
    }
}

impl Default for Values {
    fn default() -> Self {
        Self {
            linkerd_version: DEFAULT_LINKERD_VERSION.into(),
            cluster_domain: control_plane::CLUSTER_DOMAIN.into(),
            identity_trust_domain: String::new(),
            cluster_networks: "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
                .into(),
            identity_trust_anchors_pem: String::new(),
            image_pull_policy: "IfNotPresent".into(),
            cni_enabled: false,
            disable_ipv6: true,
            identity: IdentityValues::default(),
            proxy: ProxyValues::default(),
            proxy_init: ProxyInitValues::default(),
            debug_container: DebugContainerValues::default(),
        }
    }
}

impl Default for IdentityValues {
    fn default() -> Self {
        Self {
            service_account_token_projection: true,
        }
    }
}

impl Default for PortsValues {
    fn default() -> Self {
        Self {
            admin: 4191,
            control: 4190,
            inbound: control_plane::DEFAULT_PROXY_INBOUND_PORT,
            outbound: 4140,
        }
    }
}

impl Default for WorkersValues {
    fn default() -> Self {
        Self {
            minimum: 1,
            maximum: None,
            maximum_cpu_ratio: None,
        }
    }
}

impl Default for StreamsValues {
    fn default() -> Self {
        Self {
            initial_timeout: "3s".into(),
            idle_timeout: "5m".into(),
            lifetime: "1h".into(),
        }
    }
}

impl Default for KeepAliveValues {
    fn default() -> Self {
        Self {
            keep_alive_interval: "10s".into(),
            keep_alive_timeout: "3s".into(),
        }
    }
}

impl Default for ProxyValues {
    fn default() -> Self {
        Self {
            image: ImageValues {
                name: format!("{DEFAULT_REGISTRY}/proxy"),
                ..ImageValues::default()
            },
            ports: PortsValues::default(),
            uid: 2102,
            gid: -1,
            log_level: "warn,linkerd=info,hickory=error".into(),
            log_format: "plain".into(),
            log_http_headers: "off".into(),
            opaque_ports: control_plane::DEFAULT_OPAQUE_PORTS.into(),
            await_: true,
            native_sidecar: true,
            default_inbound_policy: "all-unauthenticated".into(),
            require_identity_on_inbound_ports: String::new(),
            outbound_connect_timeout: "1000ms".into(),
            inbound_connect_timeout: "100ms".into(),
            outbound_discovery_cache_unused_timeout: "5s".into(),
            inbound_discovery_cache_unused_timeout: "90s".into(),
            disable_outbound_protocol_detect_timeout: false,
            disable_inbound_protocol_detect_timeout: false,
            enable_external_profiles: false,
            enable_shutdown_endpoint: false,
            cores: None,
            runtime: RuntimeValues::default(),
            resources: ResourcesValues::default(),
            wait_before_exit_seconds: 0,
            shutdown_grace_period: String::new(),
            access_log: String::new(),
            control: ControlValues::default(),
            inbound: DirectionValues::default(),
            outbound: DirectionValues::default(),
            metrics_hostname_labels: false,
            additional_env: Vec::new(),
            experimental_env: Vec::new(),
        }
    }
}

impl Default for ProxyInitValues {
    fn default() -> Self {
        Self {
            iptables_mode: "nft".into(),
            ignore_inbound_ports: "4567,4568".into(),
            ignore_outbound_ports: "4567,4568".into(),
            skip_subnets: String::new(),
            log_level: String::new(),
            log_format: String::new(),
            close_wait_timeout_secs: 0,
            run_as_user: 65534,
            run_as_group: 65534,
            resources: ResourcesValues {
                cpu: RequestLimit {
                    request: "100m".into(),
                    limit: "100m".into(),
                },
                memory: RequestLimit {
                    request: "20Mi".into(),
                    limit: "20Mi".into(),
                },
                ephemeral_storage: RequestLimit::default(),
            },
        }
    }
}

impl Default for DebugContainerValues {
    fn default() -> Self {
        Self {
            image: ImageValues {
                name: format!("{DEFAULT_REGISTRY}/debug"),
                ..ImageValues::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_defaults() {
        assert_eq!(Values::from_yaml("").unwrap(), Values::default());
        assert_eq!(Values::from_yaml("{}").unwrap(), Values::default());
    }

    #[test]
    fn a_linkerd_values_document_keeps_its_settings_and_ignores_the_rest() {
        let values = Values::from_yaml(
            "clusterDomain: example.org\n\
             controllerReplicas: 3\n\
             identityTrustDomain: mesh.example\n\
             proxy:\n  await: false\n  nativeSidecar: false\n  ports:\n    admin: 5191\n\
             \x20 image:\n    name: reg.example/proxy\n    version: v9\n\
             proxyInit:\n  iptablesMode: legacy\n\
             policyController:\n  logLevel: info\n",
        )
        .unwrap();
        assert_eq!(values.cluster_domain, "example.org");
        assert_eq!(values.trust_domain(), "mesh.example");
        assert!(!values.proxy.await_);
        assert!(!values.proxy.native_sidecar);
        assert_eq!(values.proxy.ports.admin, 5191);
        assert_eq!(
            values.proxy.ports.inbound, 4143,
            "unset siblings keep defaults"
        );
        assert_eq!(values.proxy.image.name, "reg.example/proxy");
        assert_eq!(values.proxy_init.iptables_mode, "legacy");
        assert_eq!(values.proxy_init.run_as_user, 65534);
    }

    #[test]
    fn a_broken_document_is_an_error() {
        assert!(Values::from_yaml("proxy: [1, 2").is_err());
        assert!(Values::from_yaml("proxy:\n  await: maybe\n").is_err());
    }

    #[test]
    fn empty_image_versions_and_pull_policies_fall_back_to_the_global_ones() {
        let mut values = Values {
            linkerd_version: "edge-26.8.1".into(),
            image_pull_policy: "Always".into(),
            ..Values::default()
        };
        values.proxy.image.version.clear();
        values.proxy.image.pull_policy.clear();
        assert_eq!(values.proxy_version(), "edge-26.8.1");
        assert_eq!(
            values.version_of(&values.debug_container.image),
            "edge-26.8.1"
        );
        assert_eq!(values.pull_policy_of(&values.proxy.image), "Always");
        values.proxy.image.version = "v2.366".into();
        values.proxy.image.pull_policy = "Never".into();
        assert_eq!(values.proxy_version(), "v2.366");
        assert_eq!(values.pull_policy_of(&values.proxy.image), "Never");
    }
}
