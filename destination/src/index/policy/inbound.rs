//! The inbound policy of a workload's port: the Server that selects it, or the default policy.
//! Workloads are pods, which Servers select with `podSelector`, and ExternalWorkloads, which
//! they select with `externalWorkloadSelector`.

use super::{
    DefaultPolicy, PodPolicy, PolicyError, ServerInfo,
    authz::{self, meta_labels},
    dirty_keys, publish,
    routes::{self, Filter},
};
use crate::{
    index::{Index, ObjKey, server::selects},
    ports::PortSet,
};
use k8s_openapi::apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString};
use kube::Resource;
use linkerd2_proxy_api::inbound as pb;
use oxlink_crds::{
    names::groups::POLICY,
    policy::{AccessPolicy, HttpRoute, ProxyProtocol, Server},
};
use std::{collections::BTreeMap, time::Duration};

/// How long the proxy waits to detect HTTP before treating a connection as opaque.
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A workload whose proxy asks for inbound policy, as the proxy names itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// `<ns>:<pod>` or `{"ns":…,"pod":…}`.
    Pod(ObjKey),
    /// `{"ns":…,"external_workload":…}`.
    External(ObjKey),
}

impl Workload {
    /// The workload's namespace and name.
    pub fn key(&self) -> &ObjKey {
        match self {
            Self::Pod(key) | Self::External(key) => key,
        }
    }

    pub(super) fn not_found(&self) -> PolicyError {
        match self {
            Self::Pod(key) => PolicyError::PodNotFound(key.clone()),
            Self::External(key) => PolicyError::ExternalWorkloadNotFound(key.clone()),
        }
    }
}

/// What inbound policy reads from a workload.
struct Target<'a> {
    ns: &'a str,
    external: bool,
    labels: &'a BTreeMap<String, String>,
    named_ports: &'a [(String, u16)],
    opaque_ports: Option<&'a PortSet>,
    policy: &'a PodPolicy,
}

impl Target<'_> {
    /// The selector of `server` that applies to this kind of workload.
    fn selector<'s>(&self, server: &'s ServerInfo) -> Option<&'s LabelSelector> {
        if self.external {
            server.spec.external_workload_selector.as_ref()
        } else {
            server.spec.pod_selector.as_ref()
        }
    }

    /// Whether a Server's `port` (a number, or the name of a workload port) is `port`.
    fn port_matches(&self, server_port: &IntOrString, port: u16) -> bool {
        match server_port {
            IntOrString::Int(p) => i32::from(port) == *p,
            IntOrString::String(name) => self
                .named_ports
                .iter()
                .any(|(n, p)| n == name && *p == port),
        }
    }
}

impl Index {
    /// Rebuilds the inbound subscriptions that the writes since the last flush touched, and
    /// closes those of deleted workloads, which ends their streams.
    pub(super) fn flush_inbound(&mut self) {
        let policy = &mut self.policy;
        let dirty_ns = std::mem::take(&mut policy.dirty_inbound_ns);
        let dirty_pods = std::mem::take(&mut policy.dirty_pods);
        let dirty_externals = std::mem::take(&mut policy.dirty_externals);
        let keys = dirty_keys(&mut policy.inbound_subs, |workload| {
            dirty_ns.contains(&workload.key().ns)
                || match workload {
                    Workload::Pod(pod) => dirty_pods.contains(pod),
                    Workload::External(ext) => dirty_externals.contains(ext),
                }
        });
        let mut built = Vec::new();
        let mut gone = Vec::new();
        for (workload, port) in keys {
            match self.inbound_server(&workload, port) {
                Some(server) => built.push(((workload, port), server)),
                None => gone.push(workload),
            }
        }
        publish(&mut self.policy.inbound_subs, built);
        for workload in gone {
            self.policy.inbound_subs.remove(&workload);
        }
    }

    /// What inbound policy reads from `workload`, if it is indexed.
    fn target<'a>(&'a self, workload: &'a Workload) -> Option<Target<'a>> {
        Some(match workload {
            Workload::Pod(key) => {
                let pod = self.pods.get(key)?;
                Target {
                    ns: &key.ns,
                    external: false,
                    labels: &pod.labels,
                    named_ports: &pod.named_ports,
                    opaque_ports: pod.opaque_ports.as_ref(),
                    policy: &pod.policy,
                }
            }
            Workload::External(key) => {
                let ext = self.policy.externals.get(key)?;
                Target {
                    ns: &key.ns,
                    external: true,
                    labels: &ext.labels,
                    named_ports: &ext.named_ports,
                    opaque_ports: ext.opaque_ports.as_ref(),
                    policy: &ext.policy,
                }
            }
        })
    }

    /// The inbound policy of `port` on `workload`, or `None` if the workload is not indexed.
    pub(crate) fn inbound_server(&self, workload: &Workload, port: u16) -> Option<pb::Server> {
        let target = self.target(workload)?;
        // Several Servers selecting the same port is a conflict the policy validator refuses (as
        // Linkerd's does), but one created before the webhook, or while it was down, stays.
        // Then the Server the validator would have admitted applies: the oldest, then the first
        // by name (a Server without a creation time counts as newest).
        let server = self
            .policy
            .servers
            .iter()
            .filter(|(key, s)| {
                key.ns == target.ns
                    && target
                        .selector(s)
                        .is_some_and(|sel| selects(sel, target.labels))
                    && target.port_matches(&s.spec.port, port)
            })
            .min_by_key(|(key, s)| (s.created.unwrap_or(i64::MAX), *key));
        Some(match server {
            Some((key, server)) => self.server_policy(key, server, &target, port),
            None => self.default_server(&target, port),
        })
    }

    /// The policy of a port no Server selects.
    fn default_server(&self, target: &Target<'_>, port: u16) -> pb::Server {
        let mut policy = target
            .policy
            .default_policy
            .unwrap_or(self.config.policy.default_policy);
        if target.policy.require_identity_ports.contains(port) {
            policy = policy.authenticated();
        }
        let opaque = target
            .opaque_ports
            .unwrap_or(&self.config.default_opaque_ports)
            .contains(port);
        let protocol = if opaque {
            pb::proxy_protocol::Kind::Opaque(pb::proxy_protocol::Opaque {})
        } else {
            pb::proxy_protocol::Kind::Detect(pb::proxy_protocol::Detect {
                timeout: Some(routes::duration(DETECT_TIMEOUT)),
                http_routes: self.default_routes(target, port),
                http_local_rate_limit: None,
            })
        };
        let metadata = routes::default_meta(policy.name());
        pb::Server {
            protocol: Some(pb::ProxyProtocol {
                kind: Some(protocol),
            }),
            server_ips: Vec::new(),
            authorizations: authz::default_authz(policy, &self.config)
                .into_iter()
                .collect(),
            labels: meta_labels(&metadata),
        }
    }

    /// The policy of a port a Server selects.
    fn server_policy(
        &self,
        key: &ObjKey,
        server: &ServerInfo,
        target: &Target<'_>,
        port: u16,
    ) -> pb::Server {
        use pb::proxy_protocol::{Detect, Grpc, Http1, Http2, Kind, Opaque, Tls};
        let http_routes = || {
            let routes = self.server_routes(key);
            if routes.is_empty() {
                self.default_routes(target, port)
            } else {
                routes
            }
        };
        let rate_limit = || self.policy.rate_limit(key, &self.config);
        let protocol = match server.spec.proxy_protocol {
            ProxyProtocol::Unknown => Kind::Detect(Detect {
                timeout: Some(routes::duration(DETECT_TIMEOUT)),
                http_routes: http_routes(),
                http_local_rate_limit: rate_limit(),
            }),
            ProxyProtocol::Http1 => Kind::Http1(Http1 {
                routes: http_routes(),
                local_rate_limit: rate_limit(),
            }),
            ProxyProtocol::Http2 => Kind::Http2(Http2 {
                routes: http_routes(),
                local_rate_limit: rate_limit(),
            }),
            ProxyProtocol::Grpc => Kind::Grpc(Grpc {
                routes: vec![default_grpc_route()],
            }),
            ProxyProtocol::Opaque => Kind::Opaque(Opaque {}),
            ProxyProtocol::Tls => Kind::Tls(Tls {}),
        };
        let metadata =
            routes::resource_meta(POLICY, &Server::kind(&()).to_lowercase(), "", &key.name, 0);
        let mut authorizations =
            self.policy
                .server_authzs(&key.ns, &key.name, &server.labels, &self.config);
        // A Server's access policy admits whom no authorization names (`deny`: no one).
        authorizations.extend(authz::default_authz(
            access_policy(server.spec.access_policy),
            &self.config,
        ));
        pb::Server {
            protocol: Some(pb::ProxyProtocol {
                kind: Some(protocol),
            }),
            server_ips: Vec::new(),
            authorizations,
            labels: meta_labels(&metadata),
        }
    }

    /// The route `default` (every request, under the server's authorizations) and, if the pod
    /// has HTTP probes on `port`, the route `probe` that admits them unauthenticated.
    fn default_routes(&self, target: &Target<'_>, port: u16) -> Vec<pb::HttpRoute> {
        let mut routes = vec![pb::HttpRoute {
            metadata: Some(routes::default_meta("default")),
            hosts: Vec::new(),
            authorizations: Vec::new(),
            rules: vec![pb::http_route::Rule {
                matches: vec![routes::prefix_match("/")],
                filters: Vec::new(),
            }],
        }];
        let probes: Vec<_> = target
            .policy
            .probes
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, path)| routes::get_match(path))
            .collect();
        if !probes.is_empty() {
            routes.push(pb::HttpRoute {
                metadata: Some(routes::default_meta("probe")),
                hosts: Vec::new(),
                authorizations: vec![authz::probe_authz(&self.config)],
                rules: vec![pb::http_route::Rule {
                    matches: probes,
                    filters: Vec::new(),
                }],
            });
        }
        routes
    }

    /// The HTTPRoutes whose parent is Server `server`, oldest first.
    fn server_routes(&self, server: &ObjKey) -> Vec<pb::HttpRoute> {
        let mut attached: Vec<_> = self
            .policy
            .routes
            .iter()
            .filter(|(key, route)| {
                route.spec.parent_refs.iter().any(|p| {
                    p.kind.as_deref() == Some("Server")
                        && p.group.as_deref() == Some(POLICY)
                        && p.name == server.name
                        && p.namespace.as_deref().unwrap_or(&key.ns) == server.ns
                })
            })
            .collect();
        attached.sort_by(|a, b| (a.1.created, a.0).cmp(&(b.1.created, b.0)));
        attached
            .into_iter()
            .map(|(key, route)| pb::HttpRoute {
                metadata: Some(routes::resource_meta(
                    POLICY,
                    &HttpRoute::kind(&()),
                    &key.ns,
                    &key.name,
                    0,
                )),
                hosts: routes::hosts(&route.spec),
                authorizations: self.policy.route_authzs(&key.ns, &key.name, &self.config),
                rules: route
                    .spec
                    .rules
                    .iter()
                    .map(|rule| pb::http_route::Rule {
                        matches: routes::matches(&rule.matches),
                        filters: routes::filters(&rule.filters)
                            .into_iter()
                            .filter_map(inbound_filter)
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }
}

fn access_policy(policy: AccessPolicy) -> DefaultPolicy {
    match policy {
        AccessPolicy::Deny => DefaultPolicy::Deny,
        AccessPolicy::AllAuthenticated => DefaultPolicy::AllAuthenticated,
        AccessPolicy::AllUnauthenticated => DefaultPolicy::AllUnauthenticated,
        AccessPolicy::ClusterAuthenticated => DefaultPolicy::ClusterAuthenticated,
        AccessPolicy::ClusterUnauthenticated => DefaultPolicy::ClusterUnauthenticated,
        AccessPolicy::Audit => DefaultPolicy::Audit,
    }
}

/// The gRPC route `default`: every call, under the server's authorizations.
fn default_grpc_route() -> pb::GrpcRoute {
    pb::GrpcRoute {
        metadata: Some(routes::default_meta("default")),
        hosts: Vec::new(),
        authorizations: Vec::new(),
        rules: vec![pb::grpc_route::Rule {
            matches: vec![linkerd2_proxy_api::grpc_route::GrpcRouteMatch::default()],
            filters: Vec::new(),
        }],
    }
}

/// The filters an inbound route can apply (response headers are outbound only).
fn inbound_filter(filter: Filter) -> Option<pb::http_route::Filter> {
    use pb::http_route::filter::Kind;
    let kind = match filter {
        Filter::RequestHeaders(m) => Kind::RequestHeaderModifier(m),
        Filter::Redirect(r) => Kind::Redirect(r),
        Filter::ResponseHeaders(_) => return None,
    };
    Some(pb::http_route::Filter { kind: Some(kind) })
}

#[cfg(test)]
mod tests;
