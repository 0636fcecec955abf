//! Gateway API routes (`gateway.networking.k8s.io` HTTPRoutes and GRPCRoutes), kept for
//! outbound policy. A Gateway API HTTPRoute is kept in the policy HTTPRoute's shape, so both
//! groups' routes are converted by the same code.

use super::{RouteInfo, retry::Retries, timeouts::Timeouts};
use crate::index::{Index, IndexResource, ObjKey, SharedIndex, spawn_watch};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Client, Resource};
use oxlink_admin::Latch;
use oxlink_crds::{
    gateway::{GrpcRoute, GrpcRouteSpec, HttpRoute},
    policy::httproute::HttpRouteSpec,
};
use std::collections::HashMap;
use tokio::task::JoinHandle;

/// The Gateway API routes in the cluster.
#[derive(Debug, Default)]
pub(super) struct GatewayRoutes {
    pub(super) http: HashMap<ObjKey, RouteInfo>,
    pub(super) grpc: HashMap<ObjKey, GrpcRouteInfo>,
}

/// A GRPCRoute as outbound policy needs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GrpcRouteInfo {
    pub(crate) spec: GrpcRouteSpec,
    pub(crate) created: Option<i64>,
    /// The route's own `retry.linkerd.io/*` annotations, which replace its Service's.
    pub(crate) retries: Retries,
    /// The route's own `timeout.linkerd.io/*` annotations, which replace its Service's.
    pub(crate) timeouts: Timeouts,
}

/// When the object was created, in seconds (routes are ordered by age).
pub(super) fn created(meta: &ObjectMeta) -> Option<i64> {
    meta.creation_timestamp.as_ref().map(|t| t.0.as_second())
}

/// The retry and timeout annotations of a route of kind `K`.
pub(super) fn route_annotations<K: Resource<DynamicType = ()>>(
    meta: &ObjectMeta,
) -> (Retries, Timeouts) {
    let object = format!(
        "{} {}/{}",
        K::kind(&()),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    );
    let empty = Default::default();
    let a = meta.annotations.as_ref().unwrap_or(&empty);
    (
        Retries::from_annotations(a, &object),
        Timeouts::from_annotations(a, &object),
    )
}

/// A Gateway API route kind, kept in one map of [`GatewayRoutes`].
trait GatewayKind: IndexResource {
    type Info: PartialEq;
    fn map(routes: &mut GatewayRoutes) -> &mut HashMap<ObjKey, Self::Info>;
    fn info(&self) -> Self::Info;
}

impl GatewayKind for HttpRoute {
    type Info = RouteInfo;

    fn map(routes: &mut GatewayRoutes) -> &mut HashMap<ObjKey, RouteInfo> {
        &mut routes.http
    }

    fn info(&self) -> RouteInfo {
        let (retries, timeouts) = route_annotations::<Self>(&self.metadata);
        RouteInfo {
            spec: HttpRouteSpec {
                parent_refs: self.spec.parent_refs.clone(),
                hostnames: self.spec.hostnames.clone(),
                rules: self.spec.rules.clone(),
            },
            created: created(&self.metadata),
            retries,
            timeouts,
        }
    }
}

impl GatewayKind for GrpcRoute {
    type Info = GrpcRouteInfo;

    fn map(routes: &mut GatewayRoutes) -> &mut HashMap<ObjKey, GrpcRouteInfo> {
        &mut routes.grpc
    }

    fn info(&self) -> GrpcRouteInfo {
        let (retries, timeouts) = route_annotations::<Self>(&self.metadata);
        GrpcRouteInfo {
            spec: self.spec.clone(),
            created: created(&self.metadata),
            retries,
            timeouts,
        }
    }
}

/// Any route may name any Service as its parent or backend: a change marks every outbound
/// policy.
fn apply_route<K: GatewayKind>(index: &mut Index, obj: &K) {
    let Some(key) = ObjKey::of(obj.meta()) else {
        return;
    };
    let info = obj.info();
    let map = K::map(&mut index.policy.gateway);
    if map.get(&key) != Some(&info) {
        map.insert(key, info);
        index.policy.mark_all_outbound();
    }
}

fn delete_route<K: GatewayKind>(index: &mut Index, key: &ObjKey) {
    if K::map(&mut index.policy.gateway).remove(key).is_some() {
        index.policy.mark_all_outbound();
    }
}

fn keys<V>(map: &HashMap<ObjKey, V>) -> Vec<ObjKey> {
    map.keys().cloned().collect()
}

impl IndexResource for HttpRoute {
    fn apply(index: &mut Index, obj: &Self) {
        apply_route(index, obj);
    }
    fn delete(index: &mut Index, key: &ObjKey) {
        delete_route::<Self>(index, key);
    }
    fn keys(index: &Index) -> Vec<ObjKey> {
        keys(&index.policy.gateway.http)
    }
}

impl IndexResource for GrpcRoute {
    fn apply(index: &mut Index, obj: &Self) {
        apply_route(index, obj);
    }
    fn delete(index: &mut Index, key: &ObjKey) {
        delete_route::<Self>(index, key);
    }
    fn keys(index: &Index) -> Vec<ObjKey> {
        keys(&index.policy.gateway.grpc)
    }
}

/// Watches `K` like [`spawn_watch`] if the API server serves it; the Gateway API CRDs are
/// optional (Linkerd does not install them by default), as is the SMI extension's TrafficSplit,
/// so without them the watch is skipped
/// with one log line and `synced` is released at once. Other discovery errors start the watch,
/// which retries until the API answers.
pub fn spawn_gateway_watch<K: IndexResource>(
    client: Client,
    index: SharedIndex,
    synced: Latch,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let kind = K::kind(&());
        match served::<K>(&client).await {
            Ok(false) => {
                tracing::info!(
                    %kind,
                    api_version = %K::api_version(&()),
                    "the API server does not serve this kind; not watching it"
                );
                synced.release();
                // Stays, idle: a watch task that ends means the process is broken (`/live`).
                return std::future::pending().await;
            }
            Ok(true) => {}
            Err(error) => tracing::warn!(%kind, %error, "discovery failed; watching anyway"),
        }
        // Aborting this task aborts the watch too.
        let mut watch = AbortOnDrop(spawn_watch::<K>(client, index, synced));
        if let Err(error) = (&mut watch.0).await {
            tracing::warn!(%kind, %error, "the watch task ended");
        }
    })
}

/// Whether the API server serves `K`'s resource in `K`'s group version.
async fn served<K: IndexResource>(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(&K::api_version(&())).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == K::plural(&()))),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
