//! destination over mesh TLS against a real API server. identity runs under its own
//! ServiceAccount and RBAC; destination gets its certificate from identity with a token of the
//! `linkerd-destination` ServiceAccount written to a file, as the projected token would be; a
//! simulated proxy certified by identity talks to destination over TLS, verifying
//! destination's name. Then the API server restarts under open streams, and every stream
//! converges to what changed while nothing was lost.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use linkerd2_proxy_api::destination::{self as pb, destination_client::DestinationClient};
use oxlink_crds::{
    ServiceProfile,
    names::control_plane::{DESTINATION_SERVICE_ACCOUNT, IDENTITY_SERVICE_ACCOUNT},
};
use oxlink_destination::Transport;
use oxlink_e2e::{
    CONVERGE,
    destination::{self, Endpoints, pod_addrs, request, scale, web_deployment},
    eventually,
    identity::{self, certify_token},
    localkube::{self, Localkube},
    proxy::{Certified, SimulatedProxy},
};
use oxlink_tls::{CertifyConfig, fixtures};
use serde_json::json;
use std::{future::Future, path::PathBuf};
use tonic::{Streaming, transport::Channel};

/// The restart test stops the cluster every other test here talks to: it runs alone.
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// identity, destination over TLS and a certified proxy, in one test namespace that plays the
/// control-plane namespace.
struct Mesh {
    client: Client,
    ns: String,
    destination: oxlink_destination::Running,
    proxy: SimulatedProxy,
    certified: Certified,
}

impl Mesh {
    /// `<sa>.<ns>.serviceaccount.identity.<ns>.cluster.local`.
    fn name(&self, sa: &str) -> String {
        mesh_name(&self.ns, sa)
    }

    /// The proxy's TLS channel to destination, verifying `server_name`.
    async fn channel(&self, server_name: &str) -> Result<Channel> {
        self.proxy
            .connect_meshed(self.destination.grpc_addr, server_name, &self.certified)
            .await
    }

    async fn destination(&self) -> Result<DestinationClient<Channel>> {
        Ok(DestinationClient::new(
            self.channel(&self.name(DESTINATION_SERVICE_ACCOUNT))
                .await?,
        ))
    }

    fn web(&self) -> String {
        format!("web.{}.svc.cluster.local", self.ns)
    }

    /// The web Deployment with `replicas` pods and the web Service in front of it.
    async fn web_service(&self, replicas: i32) -> Result<()> {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(web_deployment(replicas))?,
            )
            .await?;
        Api::<Service>::namespaced(self.client.clone(), &self.ns)
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
        Ok(())
    }
}

fn mesh_name(ns: &str, sa: &str) -> String {
    oxlink_crds::names::identity::service_account_identity(sa, ns, ns, "cluster.local")
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `test` with identity, destination (TLS, certified by identity) and a proxy certified
/// by identity, in a fresh namespace.
async fn with_mesh<F, Fut>(name: &str, test: F) -> Result<()>
where
    F: FnOnce(Mesh) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    identity::with_identity(
        name,
        fixtures::ISSUER_CRT,
        fixtures::ISSUER_KEY,
        false,
        &[DESTINATION_SERVICE_ACCOUNT, "web"],
        |client, ns, identity| async move {
            // destination's projected token, as a file it reads for every Certify.
            let dir = TempDir(std::env::temp_dir().join(format!("oxlink-e2e-{ns}")));
            std::fs::create_dir_all(&dir.0)?;
            let token_path = dir.0.join("token");
            let token = certify_token(&client, &ns, DESTINATION_SERVICE_ACCOUNT).await?;
            std::fs::write(&token_path, token)?;
            let destination = destination::start(
                client.clone(),
                Transport::Tls(CertifyConfig {
                    identity_addr: identity.grpc_addr.to_string(),
                    identity_server_name: identity.identity.clone(),
                    anchors: fixtures::anchors(),
                    name: mesh_name(&ns, DESTINATION_SERVICE_ACCOUNT),
                    token_path,
                }),
            )
            .await
            .context("destination with a certificate from identity")?;

            let proxy = SimulatedProxy::new(&mesh_name(&ns, "web"), fixtures::ANCHOR_CRT)?;
            let certified = proxy
                .certify(
                    proxy
                        .connect(identity.grpc_addr, &identity.identity)
                        .await?,
                    &certify_token(&client, &ns, "web").await?,
                )
                .await?
                .map_err(|s| anyhow::anyhow!("identity refused the proxy: {s:?}"))?;
            let result = test(Mesh {
                client,
                ns,
                destination,
                proxy,
                certified,
            })
            .await;
            identity.shutdown().await;
            result
        },
    )
    .await
}

/// Reads profiles from `stream` until `done` holds for one, for up to [`CONVERGE`].
async fn profile_until(
    stream: &mut Streaming<pb::DestinationProfile>,
    what: &str,
    done: impl Fn(&pb::DestinationProfile) -> bool,
) -> Result<pb::DestinationProfile> {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let profile = match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(profile) => profile?.context("the GetProfile stream ended")?,
            Err(_) => bail!("timed out waiting for {what}"),
        };
        if done(&profile) {
            return Ok(profile);
        }
    }
}

fn routes(profile: &pb::DestinationProfile) -> Vec<&str> {
    profile
        .routes
        .iter()
        .map(|r| r.metrics_labels["route"].as_str())
        .collect()
}

/// A ServiceProfile for the web Service with one GET route per name.
fn web_profile(ns: &str, routes: &[&str]) -> serde_json::Value {
    json!({
        "apiVersion": "linkerd.io/v1alpha2",
        "kind": "ServiceProfile",
        "metadata": {"name": format!("web.{ns}.svc.cluster.local")},
        "spec": {"routes": routes.iter().map(|r| json!({
            "name": r,
            "condition": {"method": "GET", "pathRegex": format!("/{r}")},
        })).collect::<Vec<_>>()},
    })
}

/// destination presents `linkerd-destination`'s identity from identity (and is ready only
/// with it); a proxy that verifies that name gets every pod IP of a Deployment through Get; a
/// proxy expecting another name, or trusting other anchors, cannot connect.
#[tokio::test]
async fn serves_get_over_tls_as_linkerd_destination() -> Result<()> {
    let _shared = CLUSTER.read().await;
    with_mesh("dst-tls", |mesh| async move {
        ensure!(mesh.destination.ready.is_ready());
        ensure!(mesh.destination.tls.is_some());
        mesh.web_service(3).await?;
        let pods = eventually("3 ready web pods", CONVERGE, || {
            pod_addrs(&mesh.client, &mesh.ns, 3)
        })
        .await?;

        let mut dst = mesh.destination().await?;
        let mut stream = dst
            .get(request(&format!("{}:80", mesh.web()), &mesh.ns))
            .await?
            .into_inner();
        let mut endpoints = Endpoints::default();
        endpoints
            .until(&mut stream, "every web pod", |e| e.set() == pods)
            .await?;

        // Another control-plane name: the certificate is not valid for it.
        let wrong = mesh.name(IDENTITY_SERVICE_ACCOUNT);
        let err = mesh
            .channel(&wrong)
            .await
            .err()
            .with_context(|| format!("destination verified as {wrong}"))?;
        ensure!(
            format!("{err:#}").contains(&format!("certificate not valid for name {wrong:?}")),
            "not a name mismatch: {err:#}"
        );

        // A proxy of another mesh does not trust destination at all.
        let stranger = SimulatedProxy::new(&mesh.name("web"), fixtures::OTHER_ANCHOR_CRT)?;
        let err = stranger
            .connect(
                mesh.destination.grpc_addr,
                &mesh.name(DESTINATION_SERVICE_ACCOUNT),
            )
            .await
            .err()
            .context("a proxy with other anchors connected")?;
        ensure!(
            format!("{err:#}").contains("invalid peer certificate: UnknownIssuer"),
            "not an untrusted chain: {err:#}"
        );

        Ok(())
    })
    .await
}

/// With Get and GetProfile streams open over TLS, the API server stops and starts again (state
/// kept); the Deployment is scaled and the ServiceProfile changed afterwards, and both streams,
/// never ended, converge to exactly the new state; new lookups agree with them.
#[tokio::test]
async fn streams_converge_across_an_api_server_restart() -> Result<()> {
    let Some(localkube) = Localkube::from_env().await? else {
        return oxlink_e2e::skip(&format!(
            "no cluster hook to restart the API server with ({} and {} are not set; \
             `cargo xtask test` sets them on localkube)",
            localkube::BIN_ENV,
            localkube::DIR_ENV
        ));
    };
    let _alone = CLUSTER.write().await;
    with_mesh("dst-restart", |mesh| async move {
        let ns = mesh.ns.clone();
        mesh.web_service(2).await?;
        let profiles: Api<ServiceProfile> = Api::namespaced(mesh.client.clone(), &ns);
        profiles
            .create(
                &PostParams::default(),
                &serde_json::from_value(web_profile(&ns, &["one"]))?,
            )
            .await?;
        let two = eventually("2 ready web pods", CONVERGE, || {
            pod_addrs(&mesh.client, &ns, 2)
        })
        .await?;

        let mut dst = mesh.destination().await?;
        let path = format!("{}:80", mesh.web());
        let mut get = dst.get(request(&path, &ns)).await?.into_inner();
        let mut endpoints = Endpoints::default();
        endpoints
            .until(&mut get, "both web pods", |e| e.set() == two)
            .await?;
        let mut profile = dst.get_profile(request(&path, &ns)).await?.into_inner();
        profile_until(&mut profile, "route one", |p| routes(p) == ["one"]).await?;

        localkube.stop().await.context("stopping the cluster")?;
        localkube.start().await.context("starting the cluster")?;

        scale(&mesh.client, &ns, 4).await?;
        profiles
            .patch(
                &format!("web.{ns}.svc.cluster.local"),
                &PatchParams::default(),
                &Patch::Merge(web_profile(&ns, &["one", "two"])),
            )
            .await?;
        let four = eventually("4 ready web pods", CONVERGE, || {
            pod_addrs(&mesh.client, &ns, 4)
        })
        .await?;
        ensure!(
            two.is_subset(&four),
            "scaling up replaced pods: {two:?} → {four:?}"
        );

        endpoints.reset_log();
        endpoints
            .until(&mut get, "all four web pods", |e| e.set() == four)
            .await?;
        ensure!(
            endpoints.removed.is_empty() && !endpoints.no_endpoints,
            "the restart lost endpoints on the way: {endpoints:?}"
        );
        let last = profile_until(&mut profile, "routes one and two", |p| {
            routes(p) == ["one", "two"]
        })
        .await?;
        ensure!(last.fully_qualified_name == mesh.web(), "{last:?}");

        // A lookup made now sees the same.
        let mut fresh = Endpoints::default();
        let mut again = dst.get(request(&path, &ns)).await?.into_inner();
        fresh
            .until(&mut again, "all four web pods", |e| e.set() == four)
            .await?;
        let mut again = dst.get_profile(request(&path, &ns)).await?.into_inner();
        let now = oxlink_e2e::next_message(&mut again, "a profile").await?;
        ensure!(routes(&now) == ["one", "two"], "{now:?}");
        Ok(())
    })
    .await
}
