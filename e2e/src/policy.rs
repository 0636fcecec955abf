//! destination's policy listener as the policy tests run it, and what they do with the
//! cluster and the policy streams: create and delete objects, and read a stream until it says
//! what a test waits for.

use crate::{CONVERGE, eventually};
use anyhow::{Context, Result, bail};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use oxlink_destination::{Running, index::Config};
use serde_json::Value;
use std::fmt::Debug;
use tokio::net::TcpListener;
use tonic::{Streaming, transport::Channel};

/// Starts destination with its policy listener and waits until every watch has synced.
pub async fn start(client: Client) -> Result<(Running, Channel)> {
    crate::destination::ensure_crds(&client).await?;
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let policy = TcpListener::bind("127.0.0.1:0").await?;
    let running = oxlink_destination::spawn_with(
        client,
        Config::default(),
        oxlink_destination::Transport::Plaintext,
        oxlink_admin::serve::Limits::GRPC,
        grpc,
        Some(policy),
        None,
    )?;
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
    let addr = running.policy_addr.context("a policy listener")?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok((running, channel))
}

/// Creates a namespaced object of kind `K` from its manifest.
pub async fn create<K>(client: &Client, ns: &str, manifest: Value) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Debug
        + serde::de::DeserializeOwned
        + serde::Serialize,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let obj: K = serde_json::from_value(manifest)?;
    api.create(&PostParams::default(), &obj)
        .await
        .with_context(|| format!("creating {}", K::kind(&())))?;
    Ok(())
}

pub async fn delete<K>(client: &Client, ns: &str, name: &str) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Debug
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting {} {name}", K::kind(&())))?;
    Ok(())
}

/// Reads the stream until a message satisfies `done`, failing on errors, the end of the
/// stream, or when nothing satisfying arrives within [`CONVERGE`].
pub async fn until<T: Debug>(
    stream: &mut Streaming<T>,
    what: &str,
    done: impl Fn(&T) -> bool,
) -> Result<T> {
    let mut last = None;
    let read = async {
        while let Some(msg) = stream.message().await? {
            if done(&msg) {
                return Ok(msg);
            }
            last = Some(format!("{msg:?}"));
        }
        bail!("the stream ended")
    };
    match tokio::time::timeout(CONVERGE, read).await {
        Ok(result) => result.with_context(|| format!("waiting for {what}")),
        Err(_) => bail!("timed out waiting for {what}; last seen: {last:?}"),
    }
}
