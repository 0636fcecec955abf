//! The policy kinds the index keeps, each written through [`IndexResource`], and the Server
//! half that the opaque-ports part of the index shares.

use super::{PolicyIndex, RouteInfo, ServerInfo};
use crate::index::{Index, IndexResource, ObjKey};
use oxlink_crds::policy::{
    AuthorizationPolicy, HttpRoute, MeshTlsAuthentication, NetworkAuthentication, Server,
    ServerAuthorization,
};
use std::collections::HashMap;

/// Inserts or replaces `value`; false when it was already there unchanged.
fn upsert<V: PartialEq>(map: &mut HashMap<ObjKey, V>, key: ObjKey, value: V) -> bool {
    if map.get(&key) == Some(&value) {
        return false;
    }
    map.insert(key, value);
    true
}

/// Which policies an object of a kind can change.
#[derive(Clone, Copy)]
enum Affects {
    /// Inbound policies of pods in the object's namespace.
    InboundNs,
    /// Inbound policies anywhere (authentications may be referenced across namespaces).
    AllInbound,
    /// Inbound policies in the namespace and every outbound policy (HTTPRoutes).
    Routes,
}

impl PolicyIndex {
    fn mark(&mut self, key: &ObjKey, affects: Affects) {
        match affects {
            Affects::InboundNs => self.mark_inbound_ns(&key.ns),
            Affects::AllInbound => {
                let namespaces: Vec<String> = self
                    .inbound_subs
                    .keys()
                    .map(|workload| workload.key().ns.clone())
                    .collect();
                self.dirty_inbound_ns.extend(namespaces);
            }
            Affects::Routes => {
                self.mark_inbound_ns(&key.ns);
                self.mark_all_outbound();
            }
        }
    }

    /// Applies a Server; true if it changed.
    pub(crate) fn apply_server(&mut self, key: &ObjKey, server: &Server) -> bool {
        let info = ServerInfo {
            spec: server.spec.clone(),
            created: super::gateway::created(&server.metadata),
            labels: server.metadata.labels.clone().unwrap_or_default(),
        };
        let changed = upsert(&mut self.servers, key.clone(), info);
        if changed {
            self.mark_inbound_ns(&key.ns);
        }
        changed
    }

    pub(crate) fn delete_server(&mut self, key: &ObjKey) {
        if self.servers.remove(key).is_some() {
            self.mark_inbound_ns(&key.ns);
        }
    }
}

/// A policy kind kept as one map of the index's policy part.
trait PolicyKind: IndexResource {
    type Value: PartialEq;
    const AFFECTS: Affects;
    fn map(policy: &mut PolicyIndex) -> &mut HashMap<ObjKey, Self::Value>;
    fn value(&self) -> Self::Value;
}

fn apply_kind<K: PolicyKind>(index: &mut Index, obj: &K) {
    let Some(key) = ObjKey::of(obj.meta()) else {
        return;
    };
    let value = obj.value();
    if upsert(K::map(&mut index.policy), key.clone(), value) {
        index.policy.mark(&key, K::AFFECTS);
    }
}

fn delete_kind<K: PolicyKind>(index: &mut Index, key: &ObjKey) {
    if K::map(&mut index.policy).remove(key).is_some() {
        index.policy.mark(key, K::AFFECTS);
    }
}

fn keys_of<V>(map: &HashMap<ObjKey, V>) -> Vec<ObjKey> {
    map.keys().cloned().collect()
}

/// Implements [`PolicyKind`] and [`IndexResource`] for a kind stored in `$field`.
macro_rules! policy_kind {
    ($kind:ty, $field:ident, $value:ty, $affects:expr, |$obj:ident| $make:expr) => {
        impl PolicyKind for $kind {
            type Value = $value;
            const AFFECTS: Affects = $affects;
            fn map(policy: &mut PolicyIndex) -> &mut HashMap<ObjKey, $value> {
                &mut policy.$field
            }
            fn value(&self) -> $value {
                let $obj = self;
                $make
            }
        }

        impl IndexResource for $kind {
            fn apply(index: &mut Index, obj: &Self) {
                apply_kind(index, obj);
            }
            fn delete(index: &mut Index, key: &ObjKey) {
                delete_kind::<Self>(index, key);
            }
            fn keys(index: &Index) -> Vec<ObjKey> {
                keys_of(&index.policy.$field)
            }
        }
    };
}

policy_kind!(
    ServerAuthorization,
    server_authzs,
    oxlink_crds::policy::ServerAuthorizationSpec,
    Affects::InboundNs,
    |obj| obj.spec.clone()
);
policy_kind!(
    AuthorizationPolicy,
    authz_policies,
    oxlink_crds::policy::AuthorizationPolicySpec,
    Affects::InboundNs,
    |obj| obj.spec.clone()
);
policy_kind!(
    MeshTlsAuthentication,
    mtls_authns,
    oxlink_crds::policy::MeshTlsAuthenticationSpec,
    Affects::AllInbound,
    |obj| obj.spec.clone()
);
policy_kind!(
    NetworkAuthentication,
    net_authns,
    oxlink_crds::policy::NetworkAuthenticationSpec,
    Affects::AllInbound,
    |obj| obj.spec.clone()
);
policy_kind!(HttpRoute, routes, RouteInfo, Affects::Routes, |obj| {
    let (retries, timeouts) = super::gateway::route_annotations::<HttpRoute>(&obj.metadata);
    RouteInfo {
        spec: obj.spec.clone(),
        created: obj
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        retries,
        timeouts,
    }
});
