//! What inbound policy reads from a workload beyond its labels and ports: its default-policy and
//! require-identity annotations, and (pods only) its HTTP probes.

use super::DefaultPolicy;
use crate::ports::PortSet;
use k8s_openapi::{
    api::core::v1::{Container, Pod, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};
use oxlink_crds::names::annotations;
use std::collections::BTreeMap;

/// A pod's, or an ExternalWorkload's, inbound-policy annotations and probes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PodPolicy {
    /// `config.linkerd.io/default-inbound-policy`, if set and valid.
    pub(crate) default_policy: Option<DefaultPolicy>,
    /// `config.linkerd.io/proxy-require-identity-inbound-ports`.
    pub(crate) require_identity_ports: PortSet,
    /// `(port, path)` of each HTTP liveness and readiness probe (ExternalWorkloads have none).
    pub(crate) probes: Vec<(u16, String)>,
}

impl PodPolicy {
    /// The policy annotations of a workload, whose named ports `named_port` resolves; no probes.
    pub(crate) fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
        named_port: impl Fn(&str) -> Option<u16>,
    ) -> Self {
        let default_policy = annotations
            .and_then(|a| a.get(annotations::DEFAULT_INBOUND_POLICY))
            .and_then(|value| match value.parse() {
                Ok(policy) => Some(policy),
                Err(error) => {
                    tracing::info!(%error, "ignoring the workload's default inbound policy");
                    None
                }
            });
        let require_identity_ports = annotations
            .and_then(|a| a.get(annotations::PROXY_REQUIRE_IDENTITY_INBOUND_PORTS))
            .map(|list| PortSet::parse(list, named_port))
            .unwrap_or_default();
        Self {
            default_policy,
            require_identity_ports,
            probes: Vec::new(),
        }
    }

    pub(crate) fn from_pod(pod: &Pod) -> Self {
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let named_port = |name: &str| {
            containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
        };
        // Every container's probes, native sidecars' (init containers) included: the proxy's
        // own startup probe on its admin port must pass under a `deny` default policy.
        let all = pod.spec.iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        });
        let mut probes: Vec<(u16, String)> = all
            .flat_map(|c| probes_of(c).map(move |p| (c, p)))
            .filter_map(|(container, probe)| {
                let get = probe.http_get.as_ref()?;
                if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                    return None;
                }
                // A named port is looked up in the probe's own container, as kubelet does.
                let port = match &get.port {
                    IntOrString::Int(p) => u16::try_from(*p).ok()?,
                    IntOrString::String(name) => container
                        .ports
                        .iter()
                        .flatten()
                        .find(|p| p.name.as_deref() == Some(name))
                        .and_then(|p| u16::try_from(p.container_port).ok())?,
                };
                // The route matches the path; a query string is not part of it.
                let path = get.path.as_deref().unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/");
                Some((
                    port,
                    if path.is_empty() {
                        "/".into()
                    } else {
                        path.to_string()
                    },
                ))
            })
            .collect();
        probes.sort();
        probes.dedup();
        Self {
            probes,
            ..Self::from_annotations(pod.metadata.annotations.as_ref(), named_port)
        }
    }
}

fn probes_of(container: &Container) -> impl Iterator<Item = &Probe> {
    container
        .liveness_probe
        .iter()
        .chain(container.readiness_probe.iter())
        .chain(container.startup_probe.iter())
}
