//! What `oxlink viz` reads from the cluster: the extension's objects, and the metrics API's
//! answers through the API server's Service proxy (`services/metrics-api:8085/proxy`, as
//! `kubectl proxy` reaches it), so a kubeconfig is all the CLI needs.

use super::{EXTENSION_LABEL, NAMESPACE};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::{
    core::v1::Namespace,
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{Api, Client, api::ListParams};
use serde::de::DeserializeOwned;

use crate::client::ClusterArgs;
pub(crate) use crate::install::cluster::block_on;

/// The Service of the extension's metrics API and its port.
pub(crate) const METRICS_API_SERVICE: &str = "metrics-api:8085";

pub(crate) async fn client(cluster: &ClusterArgs) -> Result<Client> {
    cluster.client().await
}

/// The path of `path` on the metrics API through the API server's Service proxy.
pub(crate) fn proxy_path(path: &str) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/services/{METRICS_API_SERVICE}/proxy{path}")
}

/// The API server's answer when the metrics API is not there: no Service, or no ready pod.
pub(crate) fn not_reachable(e: &kube::core::Status) -> bool {
    e.code == 503
        || (e.code == 404
            && e.message
                .contains(&format!("services \"{}\"", "metrics-api")))
        || (e.code == 404 && e.message.contains(&format!("namespaces \"{NAMESPACE}\"")))
}

/// Sends requests to the extension's metrics API.
pub(crate) struct MetricsApi {
    client: Client,
}

impl MetricsApi {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// The JSON answer to `GET path?query`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str, query: &str) -> Result<T> {
        let uri = match query {
            "" => proxy_path(path),
            q => format!("{}?{q}", proxy_path(path)),
        };
        let request = http::Request::get(&uri)
            .body(Vec::new())
            .context("building the metrics API request")?;
        let body = match self.client.request_text(request).await {
            Ok(body) => body,
            Err(kube::Error::Api(e)) if not_reachable(&e) => bail!(
                "the metrics API of the linkerd-viz extension is not reachable ({}); is it \
                 installed and running? Try `oxlink viz check`",
                e.message
            ),
            // The metrics API's own refusals come as a Status with its message.
            Err(kube::Error::Api(e)) => bail!("{}", e.message),
            Err(e) => return Err(e).context("calling the metrics API"),
        };
        serde_json::from_str(&body).with_context(|| {
            format!(
                "the metrics API's answer is not understood: {}",
                body.chars().take(200).collect::<String>()
            )
        })
    }
}

/// The extension's cluster-wide objects (apiVersion, kind, name), labelled `linkerd.io/extension=viz`.
pub(crate) async fn extension_objects(
    cluster: &ClusterArgs,
) -> Result<Vec<(String, String, String)>> {
    let client = client(cluster).await?;
    let lp = ListParams::default().labels(&format!("{}={}", EXTENSION_LABEL.0, EXTENSION_LABEL.1));
    let mut out = Vec::new();
    for n in Api::<ClusterRole>::all(client.clone())
        .list_metadata(&lp)
        .await?
        .items
    {
        out.push((
            "rbac.authorization.k8s.io/v1".into(),
            "ClusterRole".into(),
            n.metadata.name.unwrap_or_default(),
        ));
    }
    for n in Api::<ClusterRoleBinding>::all(client.clone())
        .list_metadata(&lp)
        .await?
        .items
    {
        out.push((
            "rbac.authorization.k8s.io/v1".into(),
            "ClusterRoleBinding".into(),
            n.metadata.name.unwrap_or_default(),
        ));
    }
    for n in Api::<Namespace>::all(client.clone())
        .list_metadata(&lp)
        .await?
        .items
    {
        out.push((
            "v1".into(),
            "Namespace".into(),
            n.metadata.name.unwrap_or_default(),
        ));
    }
    Ok(out)
}
