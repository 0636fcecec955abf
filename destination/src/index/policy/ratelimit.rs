//! HTTPLocalRateLimitPolicies: per-proxy HTTP rate limits on the Server each one targets.
//!
//! A policy sets `total` (every request together), `identity` (each client identity on its
//! own) and `overrides` (a rate for the identities of listed ServiceAccounts). When several
//! policies target one Server, the oldest (then the first by name) applies. A policy that
//! cannot be applied as written (a target other than a Server, an override without clients or
//! with clients other than ServiceAccounts, a rate out of range or above `total`) is kept aside
//! with the reason, logged when it changes, counted by the `index_invalid_objects` gauge, and
//! changes no policy.

use super::{PolicyIndex, authz, routes};
use crate::index::{Config, Index, IndexResource, ObjKey};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Resource;
use linkerd2_proxy_api::inbound::{
    self as pb,
    http_local_rate_limit::{Limit, Override, r#override::ClientIdentities},
};
use oxlink_crds::{
    names::groups::{CORE, POLICY},
    policy::{HttpLocalRateLimitPolicy, Server, ratelimit_policy},
};

/// A policy as the index keeps it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RateLimitInfo {
    /// When the policy was created: the oldest of several on one Server applies.
    created: Option<i64>,
    /// The limits, or why the policy cannot be applied.
    limits: Result<Limits, InvalidRateLimit>,
}

impl RateLimitInfo {
    pub(super) fn is_valid(&self) -> bool {
        self.limits.is_ok()
    }
}

/// A valid policy's limits, in requests per second.
#[derive(Clone, Debug, PartialEq)]
struct Limits {
    /// The name of the Server in the policy's namespace.
    server: String,
    total: Option<u32>,
    identity: Option<u32>,
    /// Each override's rate and ServiceAccounts.
    overrides: Vec<(u32, Vec<ObjKey>)>,
}

/// Why a policy cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidRateLimit {
    #[error("spec.targetRef: {0} cannot be rate limited (expected a Server)")]
    Target(String),
    #[error("{at}: {rps} requests per second is out of range")]
    Rate { at: String, rps: i64 },
    #[error("{at}: {rps} requests per second is more than total ({total})")]
    AboveTotal { at: String, rps: u32, total: u32 },
    #[error("spec.overrides[{0}]: no clientRefs")]
    NoClients(usize),
    #[error(
        "spec.overrides[{o}].clientRefs[{c}]: unsupported kind {kind} (expected ServiceAccount)"
    )]
    Client { o: usize, c: usize, kind: String },
}

/// A reference's group: unset, empty and `core` are the core group.
fn group_of(group: Option<&str>) -> &str {
    match group {
        None | Some("core") => CORE,
        Some(group) => group,
    }
}

/// `group/kind` of a reference, with `core` for the core group.
fn group_kind(group: Option<&str>, kind: &str) -> String {
    match group_of(group) {
        CORE => format!("core/{kind}"),
        group => format!("{group}/{kind}"),
    }
}

/// Whether a reference names a `K`.
fn refers_to<K: Resource<DynamicType = ()>>(group: Option<&str>, kind: &str) -> bool {
    group_of(group) == K::group(&()) && kind == K::kind(&())
}

fn rate(at: impl Fn() -> String, rps: i64, total: Option<u32>) -> Result<u32, InvalidRateLimit> {
    let rps32 = u32::try_from(rps).map_err(|_| InvalidRateLimit::Rate { at: at(), rps })?;
    match total {
        Some(total) if rps32 > total => Err(InvalidRateLimit::AboveTotal {
            at: at(),
            rps: rps32,
            total,
        }),
        _ => Ok(rps32),
    }
}

impl Limits {
    fn from_spec(
        ns: &str,
        spec: &ratelimit_policy::HttpLocalRateLimitPolicySpec,
    ) -> Result<Self, InvalidRateLimit> {
        let target = &spec.target_ref;
        if !refers_to::<Server>(target.group.as_deref(), &target.kind) {
            return Err(InvalidRateLimit::Target(group_kind(
                target.group.as_deref(),
                &target.kind,
            )));
        }
        let total = spec
            .total
            .as_ref()
            .map(|l| rate(|| "spec.total".into(), l.requests_per_second, None))
            .transpose()?;
        let identity = spec
            .identity
            .as_ref()
            .map(|l| rate(|| "spec.identity".into(), l.requests_per_second, total))
            .transpose()?;
        let overrides = spec
            .overrides
            .iter()
            .enumerate()
            .map(|(o, over)| {
                let rps = rate(
                    || format!("spec.overrides[{o}]"),
                    over.requests_per_second,
                    total,
                )?;
                if over.client_refs.is_empty() {
                    return Err(InvalidRateLimit::NoClients(o));
                }
                let clients = over
                    .client_refs
                    .iter()
                    .enumerate()
                    .map(|(c, client)| {
                        if !refers_to::<ServiceAccount>(client.group.as_deref(), &client.kind) {
                            return Err(InvalidRateLimit::Client {
                                o,
                                c,
                                kind: group_kind(client.group.as_deref(), &client.kind),
                            });
                        }
                        let sa_ns = client.namespace.as_deref().filter(|n| !n.is_empty());
                        Ok(ObjKey::new(sa_ns.unwrap_or(ns), client.name.clone()))
                    })
                    .collect::<Result<_, _>>()?;
                Ok((rps, clients))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            server: target.name.clone(),
            total,
            identity,
            overrides,
        })
    }

    fn to_proto(&self, name: &str, config: &Config) -> pb::HttpLocalRateLimit {
        let limit = |requests_per_second| Limit {
            requests_per_second,
        };
        pb::HttpLocalRateLimit {
            metadata: Some(routes::resource_meta(
                POLICY,
                &HttpLocalRateLimitPolicy::kind(&()),
                "",
                name,
                0,
            )),
            total: self.total.map(limit),
            identity: self.identity.map(limit),
            overrides: self
                .overrides
                .iter()
                .map(|(rps, clients)| Override {
                    limit: Some(limit(*rps)),
                    clients: Some(ClientIdentities {
                        identities: clients
                            .iter()
                            .map(|sa| pb::Identity {
                                name: authz::identity(config, &sa.ns, &sa.name),
                            })
                            .collect(),
                    }),
                })
                .collect(),
        }
    }
}

impl PolicyIndex {
    /// The rate limit of Server `server`: the oldest valid policy that targets it, if any.
    pub(super) fn rate_limit(
        &self,
        server: &ObjKey,
        config: &Config,
    ) -> Option<pb::HttpLocalRateLimit> {
        let (key, _, limits) = self
            .rate_limits
            .iter()
            .filter(|(key, _)| key.ns == server.ns)
            .filter_map(|(key, rl)| Some((key, rl.created, rl.limits.as_ref().ok()?)))
            .filter(|(_, _, limits)| limits.server == server.name)
            .min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)))?;
        Some(limits.to_proto(&key.name, config))
    }
}

impl IndexResource for HttpLocalRateLimitPolicy {
    fn apply(index: &mut Index, obj: &Self) {
        let Some(key) = ObjKey::of(&obj.metadata) else {
            return;
        };
        let info = RateLimitInfo {
            created: obj
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            limits: Limits::from_spec(&key.ns, &obj.spec),
        };
        if index.policy.rate_limits.get(&key) == Some(&info) {
            return;
        }
        if let Err(error) = &info.limits {
            tracing::warn!(
                ns = %key.ns,
                name = %key.name,
                %error,
                "ignoring an HTTPLocalRateLimitPolicy that cannot be applied"
            );
        }
        index.policy.rate_limits.insert(key.clone(), info);
        index.policy.mark_inbound_ns(&key.ns);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        if index.policy.rate_limits.remove(key).is_some() {
            index.policy.mark_inbound_ns(&key.ns);
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.policy.rate_limits.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
