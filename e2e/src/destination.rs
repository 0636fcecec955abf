//! destination as the tests run it (in-process, on 127.0.0.1, watching the whole cluster), the
//! CRDs it watches, and what a proxy makes of its Get streams.

use crate::{CONVERGE, deployment, eventually, ready_pod_ips};
use anyhow::{Context, Result, bail};
use k8s_openapi::{
    api::apps::v1::Deployment,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use linkerd2_proxy_api::destination::{self as pb, update::Update};
use oxlink_crds::names::{control_plane::NAMESPACE, labels};
use oxlink_destination::{Running, Transport, index::Config};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
};
use tokio::net::TcpListener;
use tonic::Streaming;

/// Starts destination for the cluster on 127.0.0.1:0 (gRPC and admin) over `transport`, once
/// the CRDs it watches are installed, and waits until it is ready: watches synced and, with
/// TLS, a certificate from identity held.
pub async fn start(client: Client, transport: Transport) -> Result<Running> {
    ensure_crds(&client).await?;
    let running = oxlink_destination::spawn_with(
        client,
        Config::default(),
        transport,
        oxlink_admin::serve::Limits::GRPC,
        TcpListener::bind("127.0.0.1:0").await?,
        None,
        Some(TcpListener::bind("127.0.0.1:0").await?),
    )?;
    let ready = running.ready.clone();
    eventually("destination to be ready", CONVERGE, || {
        let ready = ready.clone();
        async move { Ok(ready.not_ready().map_or(Ok(()), Err)) }
    })
    .await?;
    Ok(running)
}

/// A lookup of `path` by a proxy in namespace `ns` on `node-1`.
pub fn request(path: &str, ns: &str) -> pb::GetDestination {
    pb::GetDestination {
        path: path.into(),
        context_token: json!({"ns": ns, "nodeName": "node-1"}).to_string(),
        ..Default::default()
    }
}

/// The endpoints a proxy holds after the updates it has read, with each one's TLS identity and
/// whether it is hinted opaque.
#[derive(Debug, Default)]
pub struct Endpoints {
    pub addrs: BTreeMap<SocketAddr, (Option<String>, bool)>,
    pub added: BTreeSet<SocketAddr>,
    pub removed: BTreeSet<SocketAddr>,
    pub no_endpoints: bool,
}

impl Endpoints {
    pub fn apply(&mut self, update: pb::Update) -> Result<()> {
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
    pub async fn until(
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

    pub fn set(&self) -> BTreeSet<SocketAddr> {
        self.addrs.keys().copied().collect()
    }

    /// Forgets which addresses were added and removed so far.
    pub fn reset_log(&mut self) {
        self.added.clear();
        self.removed.clear();
    }
}

/// The test's Deployment, its pods labelled as meshed by the `linkerd` control plane.
pub fn web_deployment(replicas: i32) -> Value {
    let mut web = deployment("web", replicas);
    web["spec"]["template"]["metadata"]["labels"][labels::CONTROL_PLANE_NS] = json!(NAMESPACE);
    web["spec"]["template"]["spec"]["serviceAccountName"] = json!("default");
    web
}

/// The `ip:8080` of each of the namespace's web pods, once there are exactly `n`, none
/// terminating, all Ready with an IP.
pub async fn pod_addrs(
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

pub async fn scale(client: &Client, ns: &str, replicas: i32) -> Result<()> {
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

/// Installs every CRD of `oxlink install --crds` that is missing (destination watches
/// ServiceProfiles, the policy kinds and ExternalWorkloads), and waits for them to be
/// Established.
pub async fn ensure_crds(client: &Client) -> Result<()> {
    install_crds(client, oxlink_crds::install::crds()).await
}

/// Creates each of `crds` that is missing and waits for all of them to be Established.
pub async fn install_crds(client: &Client, all: Vec<CustomResourceDefinition>) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in all {
        let name = crd.metadata.name.clone().unwrap_or_default();
        if crds.get_opt(&name).await?.is_none() {
            match crds.create(&PostParams::default(), &crd).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        eventually(&format!("{name} to be Established"), CONVERGE, || {
            let (crds, name) = (crds.clone(), name.clone());
            async move {
                let crd = crds.get(&name).await?;
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
