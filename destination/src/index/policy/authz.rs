//! Authorizations: the default policies', ServerAuthorizations' and AuthorizationPolicies'
//! clients, as the proxy's `Authz` messages.

use super::{Cidr, DefaultPolicy, PolicyIndex, defaults::to_proto, routes};
use crate::index::{Config, ObjKey};
use kube::Resource;
use linkerd2_proxy_api::{inbound as pb, meta};
use oxlink_crds::{
    names::{
        groups::{CORE, POLICY},
        identity::service_account_identity,
    },
    policy::{
        AuthorizationPolicy, AuthorizationPolicySpec, MeshTlsAuthentication, Network,
        NetworkAuthentication, ServerAuthorization, ServerAuthorizationSpec,
    },
};
use std::collections::{BTreeMap, HashMap};

/// Who may connect: from which networks, with which authentication.
#[derive(Clone, Debug, PartialEq)]
enum Clients {
    Unauthenticated,
    /// Any mesh TLS client, identified or not.
    UnauthenticatedTls,
    /// Mesh TLS clients with one of these identities or identity suffixes (`[]` = any).
    Identities {
        names: Vec<String>,
        suffixes: Vec<Vec<String>>,
    },
}

fn authz(networks: Vec<pb::Network>, clients: Clients, metadata: meta::Metadata) -> pb::Authz {
    use pb::authn::{Permit, PermitMeshTls, PermitUnauthenticated, permit_mesh_tls};
    let permit = match clients {
        Clients::Unauthenticated => Permit::Unauthenticated(PermitUnauthenticated {}),
        Clients::UnauthenticatedTls => Permit::MeshTls(PermitMeshTls {
            clients: Some(permit_mesh_tls::Clients::Unauthenticated(
                PermitUnauthenticated {},
            )),
        }),
        Clients::Identities { names, suffixes } => Permit::MeshTls(PermitMeshTls {
            clients: Some(permit_mesh_tls::Clients::Identities(
                permit_mesh_tls::PermitClientIdentities {
                    identities: names
                        .into_iter()
                        .map(|name| pb::Identity { name })
                        .collect(),
                    suffixes: suffixes
                        .into_iter()
                        .map(|parts| pb::IdentitySuffix { parts })
                        .collect(),
                },
            )),
        }),
    };
    pb::Authz {
        networks,
        authentication: Some(pb::Authn {
            permit: Some(permit),
        }),
        labels: meta_labels(&metadata),
        metadata: Some(metadata),
    }
}

/// The `group`/`kind`/`name` labels that older proxies read instead of the metadata.
pub(super) fn meta_labels(metadata: &meta::Metadata) -> HashMap<String, String> {
    let (group, kind, name) = match &metadata.kind {
        Some(meta::metadata::Kind::Default(name)) => ("", "default", name.as_str()),
        Some(meta::metadata::Kind::Resource(r)) => {
            (r.group.as_str(), r.kind.as_str(), r.name.as_str())
        }
        None => ("", "", ""),
    };
    HashMap::from([
        ("group".to_string(), group.to_string()),
        ("kind".to_string(), kind.to_string()),
        ("name".to_string(), name.to_string()),
    ])
}

fn networks(cidrs: &[Cidr]) -> Vec<pb::Network> {
    cidrs
        .iter()
        .map(|c| pb::Network {
            net: Some(to_proto(*c)),
            except: Vec::new(),
        })
        .collect()
}

/// A resource's networks; invalid CIDRs are dropped (and logged).
fn resource_networks(list: &[Network]) -> Vec<pb::Network> {
    list.iter()
        .filter_map(|n| {
            let parse = |s: &str| match s.parse::<Cidr>() {
                Ok(c) => Some(to_proto(c)),
                Err(error) => {
                    tracing::info!(%error, "ignoring a network");
                    None
                }
            };
            Some(pb::Network {
                net: Some(parse(&n.cidr)?),
                except: n.except.iter().filter_map(|e| parse(e)).collect(),
            })
        })
        .collect()
}

/// The authorization of a default policy (none for `deny`).
pub(super) fn default_authz(policy: DefaultPolicy, config: &Config) -> Option<pb::Authz> {
    let cluster = || networks(&config.policy.cluster_networks);
    let all = || networks(&Cidr::all());
    let any_identity = || Clients::Identities {
        names: Vec::new(),
        suffixes: vec![Vec::new()],
    };
    let (nets, clients) = match policy {
        DefaultPolicy::AllUnauthenticated | DefaultPolicy::Audit => {
            (all(), Clients::Unauthenticated)
        }
        DefaultPolicy::AllAuthenticated => (all(), any_identity()),
        DefaultPolicy::ClusterUnauthenticated => (cluster(), Clients::Unauthenticated),
        DefaultPolicy::ClusterAuthenticated => (cluster(), any_identity()),
        DefaultPolicy::Deny => return None,
    };
    Some(authz(nets, clients, routes::default_meta(policy.name())))
}

/// Unauthenticated access from the probe networks, for the probe route.
pub(super) fn probe_authz(config: &Config) -> pb::Authz {
    authz(
        networks(&config.policy.probe_networks),
        Clients::Unauthenticated,
        routes::default_meta("probe"),
    )
}

pub(super) fn identity(config: &Config, ns: &str, sa: &str) -> String {
    service_account_identity(
        sa,
        ns,
        &config.controller_namespace,
        &config.identity_trust_domain,
    )
}

/// The identity suffix shared by every ServiceAccount of `ns`.
fn namespace_suffix(config: &Config, ns: &str) -> Vec<String> {
    let any = identity(config, ns, "");
    any[1..].split('.').map(str::to_string).collect()
}

/// `*` is any identity, `*.suffix` a suffix, anything else one identity.
fn push_identity(name: &str, names: &mut Vec<String>, suffixes: &mut Vec<Vec<String>>) {
    if name == "*" {
        suffixes.push(Vec::new());
    } else if let Some(suffix) = name.strip_prefix("*.") {
        suffixes.push(suffix.split('.').map(str::to_string).collect());
    } else {
        names.push(name.to_string());
    }
}

fn kind_meta<K: Resource<DynamicType = ()>>(name: &str) -> meta::Metadata {
    routes::resource_meta(POLICY, &K::kind(&()).to_lowercase(), "", name, 0)
}

/// Whether a reference's group is `group` (an unset group is the core group).
fn group_is(group: Option<&str>, expected: &str) -> bool {
    group.unwrap_or(CORE) == expected
}

impl PolicyIndex {
    /// The authorizations that apply to Server `server` (with `labels`) in `ns`, ordered by
    /// kind then name.
    pub(super) fn server_authzs(
        &self,
        ns: &str,
        server: &str,
        labels: &BTreeMap<String, String>,
        config: &Config,
    ) -> Vec<pb::Authz> {
        let mut out: Vec<(ObjKey, pb::Authz)> = Vec::new();
        for (key, spec) in &self.server_authzs {
            if key.ns != ns || !saz_selects(spec, server, labels) {
                continue;
            }
            if let Some(a) = saz_authz(spec, key, config) {
                out.push((key.clone(), a));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let mut policies: Vec<(ObjKey, pb::Authz)> = self
            .authz_policies
            .iter()
            .filter(|(key, spec)| key.ns == ns && targets(spec, ns, ServerTarget::Server(server)))
            .filter_map(|(key, spec)| Some((key.clone(), self.policy_authz(key, spec, config)?)))
            .collect();
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        policies.into_iter().chain(out).map(|(_, a)| a).collect()
    }

    /// The authorizations of AuthorizationPolicies targeting HTTPRoute `route` in `ns`.
    pub(super) fn route_authzs(&self, ns: &str, route: &str, config: &Config) -> Vec<pb::Authz> {
        let mut policies: Vec<(ObjKey, pb::Authz)> = self
            .authz_policies
            .iter()
            .filter(|(key, spec)| key.ns == ns && targets(spec, ns, ServerTarget::Route(route)))
            .filter_map(|(key, spec)| Some((key.clone(), self.policy_authz(key, spec, config)?)))
            .collect();
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        policies.into_iter().map(|(_, a)| a).collect()
    }

    /// An AuthorizationPolicy's authorization, if every authentication it requires exists.
    fn policy_authz(
        &self,
        key: &ObjKey,
        spec: &AuthorizationPolicySpec,
        config: &Config,
    ) -> Option<pb::Authz> {
        let mut nets: Option<Vec<pb::Network>> = None;
        let mut names = Vec::new();
        let mut suffixes = Vec::new();
        let mut mesh = false;
        for r in &spec.required_authentication_refs {
            let ns = r.namespace.as_deref().unwrap_or(&key.ns);
            let group = r.group.as_deref();
            let obj = ObjKey::new(ns, r.name.clone());
            if r.kind == MeshTlsAuthentication::kind(&()) && group_is(group, POLICY) {
                let Some(authn) = self.mtls_authns.get(&obj) else {
                    tracing::debug!(policy = %key.name, authn = %r.name, "MeshTLSAuthentication not found");
                    return None;
                };
                mesh = true;
                for id in authn.identities.iter().flatten() {
                    push_identity(&id.0, &mut names, &mut suffixes);
                }
                for id in authn.identity_refs.iter().flatten() {
                    let id_ns = id.namespace.as_deref().unwrap_or(ns);
                    match (id.kind.as_str(), id.name.as_deref()) {
                        ("ServiceAccount", Some("*") | None) | ("Namespace", None) => {
                            suffixes.push(namespace_suffix(config, id_ns));
                        }
                        ("ServiceAccount", Some(name)) => {
                            names.push(identity(config, id_ns, name));
                        }
                        ("Namespace", Some(name)) => suffixes.push(namespace_suffix(config, name)),
                        _ => return None,
                    }
                }
            } else if r.kind == NetworkAuthentication::kind(&()) && group_is(group, POLICY) {
                let authn = self.net_authns.get(&obj)?;
                nets.get_or_insert_with(Vec::new)
                    .extend(resource_networks(&authn.networks));
            } else if r.kind == "ServiceAccount" && group_is(group, CORE) {
                mesh = true;
                names.push(identity(config, ns, &r.name));
            } else {
                tracing::debug!(policy = %key.name, kind = %r.kind, "unsupported authentication");
                return None;
            }
        }
        let clients = if mesh {
            Clients::Identities { names, suffixes }
        } else {
            Clients::Unauthenticated
        };
        let nets = nets.unwrap_or_else(|| networks(&config.policy.cluster_networks));
        Some(authz(
            nets,
            clients,
            kind_meta::<AuthorizationPolicy>(&key.name),
        ))
    }
}

enum ServerTarget<'a> {
    Server(&'a str),
    Route(&'a str),
}

/// Whether an AuthorizationPolicy targets the Server (directly or through its namespace) or
/// the HTTPRoute.
fn targets(spec: &AuthorizationPolicySpec, ns: &str, target: ServerTarget<'_>) -> bool {
    let t = &spec.target_ref;
    let group = t.group.as_deref();
    match target {
        ServerTarget::Server(name) => {
            (t.kind == "Server" && group_is(group, POLICY) && t.name == name)
                || (t.kind == "Namespace" && group_is(group, CORE) && t.name == ns)
        }
        ServerTarget::Route(name) => {
            t.kind == "HTTPRoute" && group_is(group, POLICY) && t.name == name
        }
    }
}

fn saz_selects(
    spec: &ServerAuthorizationSpec,
    server: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    match (&spec.server.name, &spec.server.selector) {
        (Some(name), _) => name == server,
        (None, Some(selector)) => crate::index::server::selects(selector, labels),
        (None, None) => false,
    }
}

/// A ServerAuthorization's authorization; `None` if it admits no one.
fn saz_authz(spec: &ServerAuthorizationSpec, key: &ObjKey, config: &Config) -> Option<pb::Authz> {
    let client = &spec.client;
    let nets = if client.networks.is_empty() {
        networks(&config.policy.cluster_networks)
    } else {
        resource_networks(&client.networks)
    };
    let clients = if client.unauthenticated {
        Clients::Unauthenticated
    } else {
        let tls = client.mesh_tls.as_ref()?;
        if tls.unauthenticated_tls {
            Clients::UnauthenticatedTls
        } else {
            let mut names = Vec::new();
            let mut suffixes = Vec::new();
            for id in &tls.identities {
                push_identity(&id.0, &mut names, &mut suffixes);
            }
            for sa in &tls.service_accounts {
                let ns = sa.namespace.as_deref().unwrap_or(&key.ns);
                names.push(identity(config, ns, &sa.name));
            }
            Clients::Identities { names, suffixes }
        }
    };
    Some(authz(
        nets,
        clients,
        kind_meta::<ServerAuthorization>(&key.name),
    ))
}
