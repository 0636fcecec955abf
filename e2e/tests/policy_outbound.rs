//! Outbound policy against a real API server: a Service's cluster address gains a retry from
//! its `retry.linkerd.io/*` annotations and follows their changes; a GRPCRoute (the test
//! installs the Gateway API CRDs, generated from our types) turns the port into a gRPC port
//! until it is deleted; an address outside the cluster networks gets the egress fallback, or
//! the policy of an EgressNetwork of the client's namespace that contains it. The
//! watch of a kind the API server does not serve is skipped without holding up readiness.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Service;
use kube::{
    Api, Client, CustomResource,
    api::{Patch, PatchParams, PostParams},
};
use linkerd2_proxy_api::{
    meta::metadata::Kind as MetaKind,
    net::TcpAddress,
    outbound::{
        self as outpb, outbound_policies_client::OutboundPoliciesClient,
        proxy_protocol::Kind as OutKind, traffic_spec::Target,
    },
};
use oxlink_crds::{gateway::GrpcRoute, names::annotations, policy::EgressNetwork};
use oxlink_destination::index::{self, Index, IndexResource, ObjKey, policy::spawn_gateway_watch};
use oxlink_e2e::{
    CONVERGE,
    destination::install_crds,
    eventually,
    policy::{create, delete, start, until},
    with_temp_ns,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::{net::SocketAddr, time::Duration};
use tonic::Code;

fn meta_name(m: Option<&linkerd2_proxy_api::meta::Metadata>) -> String {
    match m.and_then(|m| m.kind.as_ref()) {
        Some(MetaKind::Default(name)) => format!("default:{name}"),
        Some(MetaKind::Resource(r)) => format!("{}:{}", r.kind, r.name),
        None => String::new(),
    }
}

/// The retry of the first HTTP/1 rule of a detect policy: (max retries, status ranges).
fn http_retry(policy: &outpb::OutboundPolicy) -> Option<(u32, Vec<(u32, u32)>)> {
    let Some(OutKind::Detect(detect)) = policy.protocol.as_ref()?.kind.as_ref() else {
        return None;
    };
    let retry = detect
        .http1
        .as_ref()?
        .routes
        .first()?
        .rules
        .first()?
        .retry
        .as_ref()?;
    let ranges = retry.conditions.as_ref()?.status_ranges.iter();
    Some((
        retry.max_retries,
        ranges.map(|r| (r.start, r.end)).collect(),
    ))
}

/// The names of a gRPC policy's routes; empty for any other protocol.
fn grpc_route_names(policy: &outpb::OutboundPolicy) -> Vec<String> {
    match policy.protocol.as_ref().and_then(|p| p.kind.as_ref()) {
        Some(OutKind::Grpc(grpc)) => grpc
            .routes
            .iter()
            .map(|r| meta_name(r.metadata.as_ref()))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_detect(policy: &outpb::OutboundPolicy) -> bool {
    matches!(
        policy.protocol.as_ref().and_then(|p| p.kind.as_ref()),
        Some(OutKind::Detect(_))
    )
}

#[tokio::test]
async fn outbound_policy_follows_retries_grpc_routes_and_egress() -> Result<()> {
    with_temp_ns("policy-outbound2", |client, ns| async move {
        install_crds(&client, oxlink_crds::gateway::crds()).await?;
        let (running, channel) = start(client.clone()).await?;
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let svc = services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "web", "annotations": {
                        annotations::RETRY_HTTP: "5xx",
                        annotations::RETRY_LIMIT: "2",
                    }},
                    "spec": {"selector": {"app": "web"}, "ports": [
                        {"name": "http", "port": 80, "targetPort": 8080},
                        {"name": "grpc", "port": 8080, "targetPort": 8080},
                    ]},
                }))?,
            )
            .await?;
        let ip = svc.spec.and_then(|s| s.cluster_ip).context("a cluster IP")?;
        let mut outbound = OutboundPoliciesClient::new(channel);
        let spec = |target| outpb::TrafficSpec {
            source_workload: json!({"ns": ns, "pod": "client"}).to_string(),
            target: Some(target),
        };
        let addr = |port: u16| -> Result<TcpAddress> {
            Ok(TcpAddress::from(format!("{ip}:{port}").parse::<SocketAddr>()?))
        };

        // The index learns about the Service through its watch.
        eventually("the Service's policy", CONVERGE, || {
            let mut outbound = outbound.clone();
            let req = spec(Target::Addr(addr(80).expect("an address")));
            async move {
                Ok(match outbound.get(req).await {
                    Ok(policy) => Ok(policy.into_inner()),
                    Err(status) => Err(status.code()),
                })
            }
        })
        .await?;
        let mut http = outbound
            .watch(spec(Target::Addr(addr(80)?)))
            .await?
            .into_inner();
        until(&mut http, "the annotated retry", |p| {
            http_retry(p) == Some((2, vec![(500, 599)]))
        })
        .await?;
        services
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    annotations::RETRY_HTTP: "gateway-error,429",
                    annotations::RETRY_LIMIT: null,
                }}})),
            )
            .await?;
        until(&mut http, "the changed retry", |p| {
            http_retry(p) == Some((1, vec![(502, 504), (429, 429)]))
        })
        .await?;
        // A malformed value is skipped; the stream goes on with what is valid.
        services
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    annotations::RETRY_HTTP: "teapot",
                    annotations::RETRY_LIMIT: "3",
                }}})),
            )
            .await?;
        until(&mut http, "the retry without conditions", |p| {
            http_retry(p) == Some((3, vec![]))
        })
        .await?;

        let mut grpc = outbound
            .watch(spec(Target::Addr(addr(8080)?)))
            .await?
            .into_inner();
        until(&mut grpc, "the detect policy", is_detect).await?;
        create::<GrpcRoute>(
            &client,
            &ns,
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GRPCRoute",
                "metadata": {"name": "greeter"},
                "spec": {
                    "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 8080}],
                    "rules": [{
                        "matches": [{"method": {"service": "pkg.Greeter", "method": "Hello"}}],
                        "backendRefs": [{"name": "web", "port": 8080}],
                    }],
                },
            }),
        )
        .await?;
        let policy = until(&mut grpc, "the GRPCRoute", |p| {
            grpc_route_names(p) == ["GRPCRoute:greeter"]
        })
        .await?;
        let Some(OutKind::Grpc(g)) = policy.protocol.and_then(|p| p.kind) else {
            unreachable!()
        };
        let rpc = g.routes[0].rules[0].matches[0].rpc.clone().context("an rpc match")?;
        assert_eq!((rpc.service.as_str(), rpc.method.as_str()), ("pkg.Greeter", "Hello"));
        delete::<GrpcRoute>(&client, &ns, "greeter").await?;
        until(&mut grpc, "the detect policy again", is_detect).await?;

        // Outside the cluster networks: the egress fallback, forwarding to the address asked.
        let external: SocketAddr = "192.0.2.1:443".parse()?;
        let fallback = outbound
            .get(spec(Target::Addr(TcpAddress::from(external))))
            .await?
            .into_inner();
        assert_eq!(meta_name(fallback.metadata.as_ref()), "default:egress-fallback");
        // An EgressNetwork of the client's namespace that contains it takes over the stream.
        let mut egress = outbound
            .watch(spec(Target::Addr(TcpAddress::from(external))))
            .await?
            .into_inner();
        until(&mut egress, "the egress fallback", |p| {
            meta_name(p.metadata.as_ref()) == "default:egress-fallback"
        })
        .await?;
        create::<EgressNetwork>(
            &client,
            &ns,
            json!({
                "apiVersion": "policy.linkerd.io/v1alpha1",
                "kind": "EgressNetwork",
                "metadata": {"name": "docs"},
                "spec": {"trafficPolicy": "Deny", "networks": [{"cidr": "192.0.2.0/24"}]},
            }),
        )
        .await?;
        until(&mut egress, "the EgressNetwork", |p| {
            meta_name(p.metadata.as_ref()) == "EgressNetwork:docs"
        })
        .await?;
        delete::<EgressNetwork>(&client, &ns, "docs").await?;
        until(&mut egress, "the egress fallback again", |p| {
            meta_name(p.metadata.as_ref()) == "default:egress-fallback"
        })
        .await?;
        // Inside them, and no Service: NOT_FOUND.
        let status = outbound
            .get(spec(Target::Addr(TcpAddress::from(
                "10.255.255.254:443".parse::<SocketAddr>()?,
            ))))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        drop(running);
        Ok(())
    })
    .await
}

/// A kind no API server serves, in a group that does not exist.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize)]
#[kube(
    group = "absent.oxlink.invalid",
    version = "v1",
    kind = "Absent",
    namespaced,
    schema = "disabled"
)]
struct AbsentSpec {}

/// A kind not served in a group version that is: `policy.linkerd.io/v1beta3`.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1beta3",
    kind = "Unserved",
    namespaced,
    schema = "disabled"
)]
struct UnservedSpec {}

macro_rules! ignored_by_the_index {
    ($($kind:ty),*) => {$(
        impl IndexResource for $kind {
            fn apply(_: &mut Index, _: &Self) {}
            fn delete(_: &mut Index, _: &ObjKey) {}
            fn keys(_: &Index) -> Vec<ObjKey> {
                Vec::new()
            }
        }
    )*};
}
ignored_by_the_index!(Absent, Unserved);

/// Readiness of a watch of `K` (which the API server does not serve), and whether its task
/// ended.
async fn watch_unserved<K: IndexResource>(client: &Client) -> Result<()> {
    let ready = oxlink_admin::Readiness::default();
    let index = Index::shared(index::Config::default());
    let task = spawn_gateway_watch::<K>(client.clone(), index, ready.latch("not synced"));
    eventually("the skipped watch to release readiness", CONVERGE, || {
        let ready = ready.clone();
        async move { Ok(ready.not_ready().map_or(Ok(()), Err)) }
    })
    .await?;
    // It stays, idle: a watch task that ends would fail `/live` and restart the process.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        !task.is_finished(),
        "the skipped watch's task stays (idle) after releasing readiness"
    );
    task.abort();
    Ok(())
}

#[tokio::test]
async fn watches_of_kinds_the_api_server_does_not_serve_are_skipped() -> Result<()> {
    let client = oxlink_e2e::client().await?;
    oxlink_e2e::destination::ensure_crds(&client).await?;
    watch_unserved::<Absent>(&client).await?;
    watch_unserved::<Unserved>(&client).await?;

    // A served kind is watched: its task keeps running after readiness.
    install_crds(&client, oxlink_crds::gateway::crds()).await?;
    let ready = oxlink_admin::Readiness::default();
    let index = Index::shared(index::Config::default());
    let task = spawn_gateway_watch::<GrpcRoute>(client, index, ready.latch("not synced"));
    eventually("the GRPCRoute watch to sync", CONVERGE, || {
        let ready = ready.clone();
        async move { Ok(ready.not_ready().map_or(Ok(()), Err)) }
    })
    .await?;
    assert!(!task.is_finished(), "the watch goes on");
    task.abort();
    Ok(())
}
