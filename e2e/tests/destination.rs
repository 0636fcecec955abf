//! Destination against a real API server: the index follows Deployments, Services,
//! EndpointSlices, Servers and ServiceProfiles through its watches, and a simulated proxy sees the
//! result through Destination.Get and GetProfile.
//!
//! Each test runs its own destination server in-process, serving plaintext gRPC on
//! 127.0.0.1:0 and watching the whole cluster.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Service},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use linkerd2_proxy_api::destination::{
    self as pb, destination_client::DestinationClient, request_match::Match, update::Update,
};
use oxlink_crds::{
    ServiceProfile,
    names::{control_plane::NAMESPACE, labels},
    policy::Server,
};
use oxlink_destination::{Running, index::Config};
use oxlink_e2e::{CONVERGE, deployment, eventually, ready_pod_ips, with_temp_ns};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::PathBuf,
};
use tokio::net::TcpListener;
use tonic::{Streaming, transport::Channel};

/// Starts destination for the cluster and waits until its watches have synced.
async fn start_destination(client: Client) -> Result<(Running, DestinationClient<Channel>)> {
    ensure_crds(&client).await?;
    let config = Config::default();
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let running = oxlink_destination::spawn(client, config, grpc, None)?;
    let ready = running.ready.clone();
    eventually("destination's watches to sync", CONVERGE, || {
        let ready = ready.clone();
        async move {
            Ok(if ready.is_ready() {
                Ok(())
            } else {
                Err("not ready")
            })
        }
    })
    .await?;
    let dst = DestinationClient::connect(format!("http://{}", running.grpc_addr)).await?;
    Ok((running, dst))
}

fn request(path: &str, ns: &str) -> pb::GetDestination {
    pb::GetDestination {
        path: path.into(),
        context_token: json!({"ns": ns, "nodeName": "node-1"}).to_string(),
        ..Default::default()
    }
}

/// The endpoints a proxy holds after the updates it has read, with each one's TLS identity and
/// whether it is hinted opaque.
#[derive(Debug, Default)]
struct Endpoints {
    addrs: BTreeMap<SocketAddr, (Option<String>, bool)>,
    added: BTreeSet<SocketAddr>,
    removed: BTreeSet<SocketAddr>,
    no_endpoints: bool,
}

impl Endpoints {
    fn apply(&mut self, update: pb::Update) -> Result<()> {
        match update.update.context("an update with a body")? {
            Update::Add(set) => {
                for wa in set.addrs {
                    let addr = SocketAddr::try_from(wa.addr.context("an address")?)?;
                    let identity = wa.tls_identity.and_then(|t| t.server_name).map(|n| n.name);
                    let opaque = matches!(
                        wa.protocol_hint.and_then(|h| h.protocol),
                        Some(pb::protocol_hint::Protocol::Opaque(_))
                    );
                    self.addrs.insert(addr, (identity, opaque));
                    self.added.insert(addr);
                }
            }
            Update::Remove(set) => {
                for addr in set.addrs {
                    let addr = SocketAddr::try_from(addr)?;
                    self.addrs.remove(&addr);
                    self.removed.insert(addr);
                }
            }
            Update::NoEndpoints(_) => {
                self.addrs.clear();
                self.no_endpoints = true;
            }
        }
        Ok(())
    }

    /// Reads updates until `done` holds, for up to [`CONVERGE`].
    async fn until(
        &mut self,
        stream: &mut Streaming<pb::Update>,
        what: &str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        while !done(self) {
            let update = match tokio::time::timeout_at(deadline, stream.message()).await {
                Ok(update) => update?.context("the Get stream ended")?,
                Err(_) => bail!("timed out waiting for {what}; holding {self:?}"),
            };
            self.apply(update)?;
        }
        Ok(())
    }

    fn set(&self) -> BTreeSet<SocketAddr> {
        self.addrs.keys().copied().collect()
    }

    /// Forgets which addresses were added and removed so far.
    fn reset_log(&mut self) {
        self.added.clear();
        self.removed.clear();
    }
}

/// The test's Deployment, its pods labelled as meshed by the `linkerd` control plane.
fn web_deployment(replicas: i32) -> Value {
    let mut web = deployment("web", replicas);
    web["spec"]["template"]["metadata"]["labels"][labels::CONTROL_PLANE_NS] = json!(NAMESPACE);
    web["spec"]["template"]["spec"]["serviceAccountName"] = json!("default");
    web
}

/// The `ip:8080` of each of the namespace's web pods, once there are exactly `n`, none
/// terminating, all Ready with an IP.
async fn pod_addrs(
    client: &Client,
    ns: &str,
    n: usize,
) -> Result<Result<BTreeSet<SocketAddr>, Vec<String>>> {
    Ok(match ready_pod_ips(client, ns, "app=web", n).await? {
        Ok(ips) => Ok(ips
            .iter()
            .map(|ip| Ok(SocketAddr::new(ip.parse()?, 8080)))
            .collect::<Result<_>>()?),
        Err(seen) => Err(seen),
    })
}

async fn scale(client: &Client, ns: &str, replicas: i32) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    Ok(())
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
        let profile = by_pod_ip.message().await?.context("a profile by pod IP")?;
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

/// Installs the CRDs destination watches (ServiceProfile, Server) if no one has yet, and waits
/// for them to be Established.
async fn ensure_crds(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [ServiceProfile::crd_name(), Server::crd_name()] {
        if crds.get_opt(name).await?.is_none() {
            let crd = oxlink_crds::install::crds()
                .into_iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
                .with_context(|| format!("oxlink-crds defines {name}"))?;
            match crds.create(&PostParams::default(), &crd).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        eventually(&format!("{name} to be Established"), CONVERGE, || {
            let crds = crds.clone();
            async move {
                let crd = crds.get(name).await?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(if established {
                    Ok(())
                } else {
                    Err("not established")
                })
            }
        })
        .await?;
    }
    Ok(())
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
        let first = by_name.message().await?.context("a first profile")?;
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
        let profile = by_ip.message().await?.context("a profile by IP")?;
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
