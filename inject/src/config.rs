//! The proxy configuration of one pod: the values, overridden by the pod's `config.linkerd.io/*`
//! annotations (which already include those inherited from the namespace).
//!
//! An annotation with a value that does not parse is ignored (the value from the configuration
//! applies) and reported as a warning, as Linkerd does.

use crate::{
    parse::{self, PortSpec},
    values::{
        ControlValues, DirectionValues, ProxyInitValues, ResourcesValues, RuntimeValues, Values,
    },
};
use k8s_openapi::api::core::v1::{EnvVar, PodSpec};
use oxlink_crds::names;
use oxlink_crds::names::annotations as anno;
use std::collections::{BTreeMap, BTreeSet};

/// Everything that shapes the injected containers of one pod.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProxyConfig {
    pub(crate) proxy_image: String,
    pub(crate) proxy_version: String,
    pub(crate) pull_policy: String,
    pub(crate) init_image: String,
    pub(crate) admin_port: u16,
    pub(crate) control_port: u16,
    pub(crate) inbound_port: u16,
    pub(crate) outbound_port: u16,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) log_level: String,
    pub(crate) log_format: String,
    pub(crate) log_http_headers: bool,
    pub(crate) shutdown_endpoint: bool,
    pub(crate) disable_outbound_detect_timeout: bool,
    pub(crate) disable_inbound_detect_timeout: bool,
    pub(crate) inbound_ports: String,
    /// Rendered for `…_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION`; empty means unset.
    pub(crate) opaque_ports: String,
    pub(crate) skip_inbound_ports: String,
    pub(crate) skip_outbound_ports: String,
    pub(crate) skip_subnets: String,
    pub(crate) resources: ResourcesValues,
    pub(crate) cores: Option<u32>,
    pub(crate) require_identity_ports: String,
    pub(crate) outbound_connect_timeout: String,
    pub(crate) inbound_connect_timeout: String,
    pub(crate) outbound_discovery_idle_timeout: String,
    pub(crate) inbound_discovery_idle_timeout: String,
    pub(crate) external_profiles: bool,
    pub(crate) gateway: bool,
    pub(crate) ingress: bool,
    pub(crate) close_wait_secs: u64,
    pub(crate) await_: bool,
    pub(crate) native_sidecar: bool,
    pub(crate) default_inbound_policy: String,
    pub(crate) access_log: String,
    pub(crate) shutdown_grace_period: String,
    pub(crate) wait_before_exit_seconds: u64,
    pub(crate) additional_env: Vec<EnvVar>,
    /// `Some((image, pull policy))` when the debug sidecar is enabled.
    pub(crate) debug: Option<(String, String)>,

    // What the values fix for every pod (no annotation changes these).
    /// `disableIPv6`: the proxy binds, and proxy-init redirects, IPv4 only.
    pub(crate) disable_ipv6: bool,
    /// `clusterNetworks`, for the profile and policy networks the proxy is given.
    pub(crate) cluster_networks: String,
    /// `proxy.runtime`: the proxy's worker threads.
    pub(crate) runtime: RuntimeValues,
    /// `proxy.control`: the proxy's control-plane streams.
    pub(crate) control: ControlValues,
    /// `proxy.inbound` and `proxy.outbound`: HTTP/2 keep-alive of the proxy's servers.
    pub(crate) inbound: DirectionValues,
    pub(crate) outbound: DirectionValues,
    /// `proxy.metrics.hostnameLabels`.
    pub(crate) metrics_hostname_labels: bool,
    /// `identity.serviceAccountTokenProjection`: the proxy reads a projected token.
    pub(crate) token_projection: bool,
    /// `cniEnabled`: no proxy-init container, so no xtables lock volume.
    pub(crate) cni_enabled: bool,
    /// `proxyInit`: the init container's (and network validator's) settings.
    pub(crate) proxy_init: ProxyInitValues,
}

/// Reads annotations, collecting a warning for each value it has to ignore.
pub(crate) struct Overrides<'a> {
    annotations: &'a BTreeMap<String, String>,
    pub(crate) warnings: Vec<String>,
}

const INBOUND_POLICIES: &[&str] = &[
    "all-unauthenticated",
    "all-authenticated",
    "cluster-unauthenticated",
    "cluster-authenticated",
    "deny",
    "audit",
];

// === impl Overrides ===

impl<'a> Overrides<'a> {
    pub(crate) fn new(annotations: &'a BTreeMap<String, String>) -> Self {
        Self {
            annotations,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.annotations
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn warn(&mut self, key: &str, value: &str, why: impl std::fmt::Display) {
        self.warnings
            .push(format!("ignoring annotation {key}={value:?}: {why}"));
    }

    /// The annotation's value if `check` accepts it.
    fn checked<T>(
        &mut self,
        key: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.get(key)?;
        match check(value) {
            Ok(v) => Some(v),
            Err(why) => {
                self.warn(key, value, why);
                None
            }
        }
    }

    fn string(&mut self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    fn port(&mut self, key: &str, default: u16) -> u16 {
        self.checked(key, |v| {
            v.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| "not a port number".to_string())
        })
        .unwrap_or(default)
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        self.checked(key, |v| match v {
            "true" | "enabled" => Ok(true),
            "false" | "disabled" => Ok(false),
            _ => Err("expected true or false".to_string()),
        })
        .unwrap_or(default)
    }

    fn port_list(&mut self, key: &str, default: &str) -> String {
        self.checked(key, |v| parse::ports(v).map(parse::join_ports))
            .unwrap_or_else(|| default.to_string())
    }

    fn quantity(&mut self, key: &str, default: &str) -> String {
        self.checked(key, |v| parse::quantity(v).map(|_| v.to_string()))
            .unwrap_or_else(|| default.to_string())
    }

    /// A Go duration rendered in `unit` (`ms` or `s`), as the proxy reads it.
    fn duration(&mut self, key: &str, default: &str, millis: bool) -> String {
        self.checked(key, |v| {
            let d = oxlink_crds::duration::parse_duration(v)?;
            Ok(if millis {
                format!("{}ms", d.as_millis())
            } else {
                format!("{}s", d.as_secs())
            })
        })
        .unwrap_or_else(|| default.to_string())
    }
}

/// The `annotations` that change the proxy configuration `values` give (and those that do not
/// parse, so that the webhook reports them): what `oxlink inject` writes in auto mode, as
/// Linkerd writes an override annotation only for a flag whose value differs from the
/// cluster's. Annotations that are not proxy configuration are kept as they are.
pub fn differing_overrides(
    values: &Values,
    annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let spec = PodSpec::default();
    let none = BTreeMap::new();
    let base = ProxyConfig::resolve(values, &spec, &mut Overrides::new(&none));
    annotations
        .iter()
        .filter(|(key, value)| {
            let one = BTreeMap::from([((*key).clone(), (*value).clone())]);
            let mut overrides = Overrides::new(&one);
            let config = ProxyConfig::resolve(values, &spec, &mut overrides);
            config != base || !overrides.warnings.is_empty()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

// === impl ProxyConfig ===

impl ProxyConfig {
    /// Resolves the configuration for `spec` from `values` and the pod's annotations.
    pub(crate) fn resolve(values: &Values, spec: &PodSpec, overrides: &mut Overrides<'_>) -> Self {
        let proxy = &values.proxy;
        let version_default = values.proxy_version();
        let proxy_version = overrides.string(anno::PROXY_VERSION_OVERRIDE, version_default);
        let proxy_image_name = overrides.string(anno::PROXY_IMAGE, &proxy.image.name);
        let pull_policy = overrides.checked(anno::IMAGE_PULL_POLICY, |v| match v {
            "Always" | "IfNotPresent" | "Never" => Ok(v.to_string()),
            _ => Err("expected Always, IfNotPresent or Never".to_string()),
        });
        let pull_policy =
            pull_policy.unwrap_or_else(|| values.pull_policy_of(&proxy.image).to_string());
        let proxy_image = format!("{proxy_image_name}:{proxy_version}");
        // proxy-init ships in the proxy image; the older annotations still pick another one.
        let init_image = match overrides.get(anno::INIT_IMAGE) {
            Some(name) => {
                let version = overrides.string(anno::INIT_IMAGE_VERSION, &proxy_version);
                format!("{name}:{version}")
            }
            None => proxy_image.clone(),
        };

        let admin_port = overrides.port(anno::ADMIN_PORT, proxy.ports.admin);
        let control_port = overrides.port(anno::CONTROL_PORT, proxy.ports.control);
        let inbound_port = overrides.port(anno::INBOUND_PORT, proxy.ports.inbound);
        let outbound_port = overrides.port(anno::OUTBOUND_PORT, proxy.ports.outbound);
        let uid = overrides
            .checked(anno::PROXY_UID, |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|u| *u >= 0)
                    .ok_or_else(|| "not a user id".to_string())
            })
            .unwrap_or(proxy.uid);
        let gid = overrides
            .checked(names::annotations::PROXY_GID, |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|g| *g >= 0)
                    .ok_or_else(|| "not a group id".to_string())
            })
            .unwrap_or(proxy.gid);

        let inbound_ports = overrides
            .checked(anno::POD_INBOUND_PORTS, |v| {
                parse::ports(v).map(parse::join_ports)
            })
            .unwrap_or_else(|| parse::join_ports(pod_inbound_ports(spec)));
        let opaque_ports = match overrides.get(anno::OPAQUE_PORTS) {
            Some(v) => match resolve_opaque_ports(v, spec) {
                Ok(ports) => ports,
                Err(why) => {
                    overrides.warn(anno::OPAQUE_PORTS, v, why);
                    default_opaque(&proxy.opaque_ports)
                }
            },
            None => default_opaque(&proxy.opaque_ports),
        };

        let mut resources = proxy.resources.clone();
        let r = &mut resources;
        r.cpu.request = overrides.quantity(anno::PROXY_CPU_REQUEST, &r.cpu.request);
        r.cpu.limit = overrides.quantity(anno::PROXY_CPU_LIMIT, &r.cpu.limit);
        r.memory.request = overrides.quantity(anno::PROXY_MEMORY_REQUEST, &r.memory.request);
        r.memory.limit = overrides.quantity(anno::PROXY_MEMORY_LIMIT, &r.memory.limit);
        r.ephemeral_storage.request = overrides.quantity(
            anno::PROXY_EPHEMERAL_STORAGE_REQUEST,
            &r.ephemeral_storage.request,
        );
        r.ephemeral_storage.limit = overrides.quantity(
            anno::PROXY_EPHEMERAL_STORAGE_LIMIT,
            &r.ephemeral_storage.limit,
        );
        // The proxy's worker threads follow a CPU limit: ceil(limit), at least one.
        let cores = match parse::quantity(&resources.cpu.limit) {
            Ok(limit) if limit > 0.0 => Some((limit.ceil() as u32).max(1)),
            _ => proxy.cores.filter(|c| *c > 0),
        };

        let native_sidecar = [
            anno::PROXY_ENABLE_NATIVE_SIDECAR,
            anno::PROXY_ENABLE_NATIVE_SIDECAR_BETA,
            anno::PROXY_ENABLE_NATIVE_SIDECAR_ALPHA,
        ]
        .into_iter()
        .find(|key| overrides.get(key).is_some())
        .map_or(proxy.native_sidecar, |key| {
            overrides.bool(key, proxy.native_sidecar)
        });

        let default_inbound_policy = overrides
            .checked(anno::DEFAULT_INBOUND_POLICY, |v| {
                if INBOUND_POLICIES.contains(&v) {
                    Ok(v.to_string())
                } else {
                    Err(format!("expected one of {}", INBOUND_POLICIES.join(", ")))
                }
            })
            .unwrap_or_else(|| proxy.default_inbound_policy.clone());
        let access_log = overrides
            .checked(anno::ACCESS_LOG, |v| match v {
                "apache" | "json" => Ok(v.to_string()),
                _ => Err("expected apache or json".to_string()),
            })
            .unwrap_or_else(|| proxy.access_log.clone());

        let mut additional_env = proxy.additional_env.clone();
        additional_env.extend(proxy.experimental_env.iter().cloned());
        if let Some(extra) = overrides.checked(anno::PROXY_ADDITIONAL_ENV, |v| {
            serde_json::from_str::<Vec<EnvVar>>(v).map_err(|e| e.to_string())
        }) {
            additional_env.extend(extra);
        }

        let debug = overrides.bool(anno::ENABLE_DEBUG_SIDECAR, false).then(|| {
            let d = &values.debug_container.image;
            let name = overrides.string(anno::DEBUG_IMAGE, &d.name);
            let version = overrides.string(anno::DEBUG_IMAGE_VERSION, values.version_of(d));
            let policy = overrides.string(anno::DEBUG_IMAGE_PULL_POLICY, values.pull_policy_of(d));
            (format!("{name}:{version}"), policy)
        });

        Self {
            proxy_version,
            proxy_image,
            pull_policy,
            init_image,
            admin_port,
            control_port,
            inbound_port,
            outbound_port,
            uid,
            gid,
            log_level: overrides.string(anno::PROXY_LOG_LEVEL, &proxy.log_level),
            log_format: overrides.string(anno::PROXY_LOG_FORMAT, &proxy.log_format),
            log_http_headers: overrides.string(
                names::annotations::PROXY_LOG_HTTP_HEADERS,
                &proxy.log_http_headers,
            ) == "insecure",
            shutdown_endpoint: overrides.bool(
                names::annotations::PROXY_ADMIN_SHUTDOWN,
                proxy.enable_shutdown_endpoint,
            ),
            disable_outbound_detect_timeout: overrides.bool(
                names::annotations::PROXY_DISABLE_OUTBOUND_PROTOCOL_DETECT_TIMEOUT,
                proxy.disable_outbound_protocol_detect_timeout,
            ),
            disable_inbound_detect_timeout: overrides.bool(
                names::annotations::PROXY_DISABLE_INBOUND_PROTOCOL_DETECT_TIMEOUT,
                proxy.disable_inbound_protocol_detect_timeout,
            ),
            inbound_ports,
            opaque_ports,
            skip_inbound_ports: overrides.port_list(
                anno::SKIP_INBOUND_PORTS,
                &values.proxy_init.ignore_inbound_ports,
            ),
            skip_outbound_ports: overrides.port_list(
                anno::SKIP_OUTBOUND_PORTS,
                &values.proxy_init.ignore_outbound_ports,
            ),
            skip_subnets: overrides.string(anno::SKIP_SUBNETS, &values.proxy_init.skip_subnets),
            resources,
            cores,
            require_identity_ports: overrides.port_list(
                anno::PROXY_REQUIRE_IDENTITY_INBOUND_PORTS,
                &proxy.require_identity_on_inbound_ports,
            ),
            outbound_connect_timeout: overrides.duration(
                anno::PROXY_OUTBOUND_CONNECT_TIMEOUT,
                &proxy.outbound_connect_timeout,
                true,
            ),
            inbound_connect_timeout: overrides.duration(
                anno::PROXY_INBOUND_CONNECT_TIMEOUT,
                &proxy.inbound_connect_timeout,
                true,
            ),
            outbound_discovery_idle_timeout: overrides.duration(
                anno::PROXY_OUTBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
                &proxy.outbound_discovery_cache_unused_timeout,
                false,
            ),
            inbound_discovery_idle_timeout: overrides.duration(
                anno::PROXY_INBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
                &proxy.inbound_discovery_cache_unused_timeout,
                false,
            ),
            external_profiles: overrides.bool(
                anno::ENABLE_EXTERNAL_PROFILES,
                proxy.enable_external_profiles,
            ),
            gateway: overrides.bool(anno::ENABLE_GATEWAY, false),
            ingress: overrides.get(anno::INJECT) == Some(anno::INJECT_INGRESS),
            close_wait_secs: overrides
                .checked(anno::CLOSE_WAIT_TIMEOUT, |v| {
                    oxlink_crds::duration::parse_duration(v).map(|d| d.as_secs())
                })
                .unwrap_or(values.proxy_init.close_wait_timeout_secs),
            await_: overrides.bool(anno::PROXY_AWAIT, proxy.await_),
            native_sidecar,
            default_inbound_policy,
            access_log,
            shutdown_grace_period: overrides.duration(
                anno::SHUTDOWN_GRACE_PERIOD,
                &proxy.shutdown_grace_period,
                true,
            ),
            wait_before_exit_seconds: overrides
                .checked(anno::PROXY_WAIT_BEFORE_EXIT_SECONDS, |v| {
                    v.parse::<u64>()
                        .map_err(|_| "not a number of seconds".to_string())
                })
                .unwrap_or(proxy.wait_before_exit_seconds),
            additional_env,
            debug,
            disable_ipv6: values.disable_ipv6,
            cluster_networks: values.cluster_networks.clone(),
            runtime: proxy.runtime.clone(),
            control: proxy.control.clone(),
            inbound: proxy.inbound.clone(),
            outbound: proxy.outbound.clone(),
            metrics_hostname_labels: proxy.metrics_hostname_labels,
            token_projection: values.identity.service_account_token_projection,
            cni_enabled: values.cni_enabled,
            proxy_init: values.proxy_init.clone(),
        }
    }
}

fn default_opaque(ports: &str) -> String {
    parse::ports(ports)
        .map(|p| parse::render_ports(&p))
        .unwrap_or_default()
}

/// The pod's inbound ports: every TCP container port and every numeric probe port, sorted.
pub(crate) fn pod_inbound_ports(spec: &PodSpec) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for c in app_containers(spec) {
        for p in c.ports.iter().flatten() {
            if p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                && let Ok(port) = u16::try_from(p.container_port)
            {
                ports.insert(port);
            }
        }
        let probes = [&c.liveness_probe, &c.readiness_probe, &c.startup_probe];
        for probe in probes.into_iter().flatten() {
            let port = probe
                .http_get
                .as_ref()
                .map(|h| &h.port)
                .or(probe.tcp_socket.as_ref().map(|t| &t.port));
            if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p)) = port
                && let Ok(port) = u16::try_from(*p)
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// The pod's own containers and its native-sidecar init containers.
pub(crate) fn app_containers(
    spec: &PodSpec,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Container> {
    spec.containers.iter().chain(
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always")),
    )
}

/// The opaque-ports annotation with container port names resolved, rendered as ranges.
pub(crate) fn resolve_opaque_ports(value: &str, spec: &PodSpec) -> Result<String, String> {
    let mut ports = BTreeSet::new();
    for item in parse::port_specs(value)? {
        match item {
            PortSpec::Range(lo, hi) => ports.extend(lo..=hi),
            PortSpec::Named(name) => {
                let found = app_containers(spec)
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter(|p| p.name.as_deref() == Some(name.as_str()))
                    .filter_map(|p| u16::try_from(p.container_port).ok());
                ports.extend(found);
            }
        }
    }
    Ok(parse::render_ports(&ports))
}
