//! Destination against a real API server: the index follows Deployments, Services,
//! EndpointSlices, Servers and ServiceProfiles through its watches, and a simulated proxy sees the
//! result through Destination.Get and GetProfile.
//!
//! Each test runs its own destination server in-process, serving plaintext gRPC on
//! 127.0.0.1:0 and watching the whole cluster.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use linkerd2_proxy_api::destination::{
    self as pb, destination_client::DestinationClient, request_match::Match,
};
use oxlink_crds::{ServiceProfile, policy::Server};
use oxlink_destination::{Running, Transport};
use oxlink_e2e::{
    CONVERGE,
    destination::{self, Endpoints, pod_addrs, request, scale, web_deployment},
    eventually, next_message, with_temp_ns,
};
use serde_json::{Value, json};
use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf};
use tonic::transport::Channel;

/// Starts destination (plaintext) for the cluster and a client of it.
async fn start_destination(client: Client) -> Result<(Running, DestinationClient<Channel>)> {
    let running = destination::start(client, Transport::Plaintext).await?;
    let dst = DestinationClient::connect(format!("http://{}", running.grpc_addr)).await?;
    Ok((running, dst))
}

/// Get on a Service backed by a Deployment (through a named target port) yields every pod IP
/// with its identity; an opaque Server turns their hints opaque; scaling 3 → 5 → 2 yields
/// exactly the adds and removes that scaling implies; deleting the Service yields
/// `no_endpoints`, and a new lookup of it NOT_FOUND.
#[tokio::test]
async fn get_follows_a_deployment_through_scaling_and_deletion() -> Result<()> {
    with_temp_ns("dst-get", |client, ns| async move {
        let (_destination, mut dst) = start_destination(client.clone()).await?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        deployments
            .create(
                &PostParams::default(),
                &serde_json::from_value(web_deployment(3))?,
            )
            .await?;
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "web"},
                    "spec": {
                        "selector": {"app": "web"},
                        "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
                    },
                }))?,
            )
            .await?;
        let three = eventually("3 ready web pods", CONVERGE, || pod_addrs(&client, &ns, 3)).await?;

        let path = format!("web.{ns}.svc.cluster.local:80");
        let mut stream = dst.get(request(&path, &ns)).await?.into_inner();
        let mut endpoints = Endpoints::default();
        endpoints
            .until(&mut stream, "the 3 pods", |e| e.set() == three)
            .await?;
        let identity = format!("default.{ns}.serviceaccount.identity.linkerd.cluster.local");
        for (addr, (id, opaque)) in &endpoints.addrs {
            ensure!(
                id.as_deref() == Some(&*identity),
                "{addr} has identity {id:?}"
            );
            ensure!(!opaque, "{addr} is hinted h2 before any Server");
        }

        // An opaque Server for the pods' named port turns their hints opaque.
        let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
        servers
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "policy.linkerd.io/v1beta3",
                    "kind": "Server",
                    "metadata": {"name": "web"},
                    "spec": {
                        "podSelector": {"matchLabels": {"app": "web"}},
                        "port": "http",
                        "proxyProtocol": "opaque",
                    },
                }))?,
            )
            .await?;
        endpoints
            .until(&mut stream, "opaque hints from the Server", |e| {
                e.set() == three && e.addrs.values().all(|(_, opaque)| *opaque)
            })
            .await?;

        // A pod's IP resolves, through GetProfile, to that pod as an endpoint.
        let pod_addr = *three.iter().next().context("a pod")?;
        let mut by_pod_ip = dst
            .get_profile(request(&pod_addr.to_string(), &ns))
            .await?
            .into_inner();
        let profile = next_message(&mut by_pod_ip, "a profile by pod IP").await?;
        let endpoint = profile.endpoint.context("an endpoint profile")?;
        ensure!(
            SocketAddr::try_from(endpoint.addr.context("an address")?)? == pod_addr,
            "{endpoint:?}"
        );
        ensure!(endpoint.metric_labels.get("deployment").map(String::as_str) == Some("web"));
        ensure!(endpoint.metric_labels.get("namespace") == Some(&ns));
        let id = endpoint
            .tls_identity
            .and_then(|t| t.server_name)
            .map(|n| n.name);
        ensure!(id.as_deref() == Some(&*identity), "{id:?}");
        drop(by_pod_ip);

        endpoints.reset_log();
        scale(&client, &ns, 5).await?;
        let five = eventually("5 ready web pods", CONVERGE, || pod_addrs(&client, &ns, 5)).await?;
        ensure!(three.is_subset(&five), "scaling up keeps the first 3 pods");
        endpoints
            .until(&mut stream, "the 5 pods", |e| e.set() == five)
            .await?;
        ensure!(
            endpoints.removed.is_empty(),
            "scaling up removed {:?}",
            endpoints.removed
        );
        let new: BTreeSet<_> = five.difference(&three).copied().collect();
        ensure!(
            new.is_subset(&endpoints.added),
            "the 2 new pods were added: {endpoints:?}"
        );

        endpoints.reset_log();
        scale(&client, &ns, 2).await?;
        let two = eventually("2 ready web pods", CONVERGE, || pod_addrs(&client, &ns, 2)).await?;
        endpoints
            .until(&mut stream, "the 2 remaining pods", |e| e.set() == two)
            .await?;
        let gone: BTreeSet<_> = five.difference(&two).copied().collect();
        ensure!(
            endpoints.removed == gone,
            "removed {:?}, expected {gone:?}",
            endpoints.removed
        );
        ensure!(
            endpoints.added.is_subset(&two),
            "scaling down added only remaining pods (if any): {:?}",
            endpoints.added
        );

        services.delete("web", &DeleteParams::default()).await?;
        endpoints
            .until(
                &mut stream,
                "no_endpoints after deleting the Service",
                |e| e.no_endpoints,
            )
            .await?;
        ensure!(endpoints.addrs.is_empty());

        // A lookup of a Service that does not exist is NOT_FOUND.
        let missing = dst.get(request(&path, &ns)).await;
        ensure!(
            matches!(&missing, Err(status) if status.code() == tonic::Code::NotFound),
            "{missing:?}"
        );
        Ok(())
    })
    .await
}

fn todoui_profile(ns: &str) -> Result<Value> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/serviceprofile-todoui.yaml");
    let text = std::fs::read_to_string(&path).context("reading the todoui ServiceProfile")?;
    let mut profile: Value = serde_saphyr::from_str(&text).context("parsing it")?;
    profile["metadata"]["name"] = json!(format!("todoui.{ns}.svc.cluster.local"));
    Ok(profile)
}

/// The workshop's todoui ServiceProfile arrives through GetProfile, by name and by the
/// Service's cluster IP, with `GET /stress` timing out after 100ms.
#[tokio::test]
async fn the_workshop_service_profile_arrives_through_get_profile() -> Result<()> {
    with_temp_ns("dst-profile", |client, ns| async move {
        let (_destination, mut dst) = start_destination(client.clone()).await?;
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let svc = services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "todoui"},
                    "spec": {"selector": {"app": "todoui"}, "ports": [{"port": 80, "targetPort": 8080}]},
                }))?,
            )
            .await?;
        let cluster_ip = svc
            .spec
            .and_then(|s| s.cluster_ip)
            .context("the Service has a cluster IP")?;

        let fqn = format!("todoui.{ns}.svc.cluster.local");
        let mut by_name = dst
            .get_profile(request(&format!("{fqn}:80"), &ns))
            .await?
            .into_inner();
        let first = next_message(&mut by_name, "a first profile").await?;
        ensure!(first.fully_qualified_name == fqn, "{first:?}");

        let profiles: Api<ServiceProfile> = Api::namespaced(client.clone(), &ns);
        profiles
            .create(&PostParams::default(), &serde_json::from_value(todoui_profile(&ns)?)?)
            .await?;

        let mut profile = first;
        let deadline = tokio::time::Instant::now() + 2 * CONVERGE;
        while profile.routes.is_empty() {
            profile = tokio::time::timeout_at(deadline, by_name.message())
                .await
                .context("timed out waiting for the profile's routes")??
                .context("the GetProfile stream ended")?;
        }
        check_todoui_routes(&profile)?;

        let mut by_ip = dst
            .get_profile(request(&format!("{cluster_ip}:80"), &ns))
            .await?
            .into_inner();
        let profile = next_message(&mut by_ip, "a profile by IP").await?;
        ensure!(profile.fully_qualified_name == fqn, "{profile:?}");
        check_todoui_routes(&profile)?;

        // Deleting the ServiceProfile leaves the default profile.
        profiles
            .delete(&format!("todoui.{ns}.svc.cluster.local"), &DeleteParams::default())
            .await?;
        let mut profile = profile;
        while !profile.routes.is_empty() {
            profile = tokio::time::timeout_at(deadline, by_name.message())
                .await
                .context("timed out waiting for the routes to go")??
                .context("the GetProfile stream ended")?;
        }
        ensure!(profile.fully_qualified_name == fqn, "{profile:?}");
        Ok(())
    })
    .await
}

fn check_todoui_routes(profile: &pb::DestinationProfile) -> Result<()> {
    let names: Vec<&str> = profile
        .routes
        .iter()
        .map(|r| r.metrics_labels["route"].as_str())
        .collect();
    ensure!(
        names == ["GET /", "GET /stress", "POST /", "POST /{id}"],
        "routes {names:?}"
    );
    let stress = &profile.routes[1];
    let timeout = stress.timeout.context("GET /stress has a timeout")?;
    ensure!(
        (timeout.seconds, timeout.nanos) == (0, 100_000_000),
        "GET /stress times out after 100ms, not {timeout:?}"
    );
    ensure!(profile.routes[0].timeout.is_none());
    match stress.condition.as_ref().and_then(|c| c.r#match.as_ref()) {
        Some(Match::All(seq)) => {
            ensure!(seq.matches.len() == 2, "{seq:?}");
            ensure!(
                matches!(&seq.matches[1].r#match, Some(Match::Path(p)) if p.regex == "/stress"),
                "{seq:?}"
            );
        }
        other => bail!("method and path are ANDed, got {other:?}"),
    }
    let budget = profile.retry_budget.context("a retry budget")?;
    ensure!(
        budget.retry_ratio == 0.2 && budget.min_retries_per_second == 10,
        "{budget:?}"
    );
    Ok(())
}
