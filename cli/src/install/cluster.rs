//! What `install`, `upgrade` and `uninstall` read from the cluster: which CRDs exist, whether a
//! control plane is there, its stored values and its issuer.

use crate::ClusterArgs;
use anyhow::{Context, Result, bail};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, Client, api::ListParams};
use oxlink_crds::names::control_plane::{
    CA_CRT_KEY, CONFIG_CONFIGMAP, CONFIG_VALUES_KEY, IDENTITY_ISSUER_SECRET, ISSUER_KEY_KEY,
    ISSUER_SCHEME_LINKERD, PROXY_INJECTOR_TLS_SECRET,
};
use serde_json::{Value, json};
use std::future::Future;

/// Linkerd's words when the CRDs are missing (`linkerd install` without `--crds` first).
pub(crate) const CRDS_MISSING: &str =
    "Linkerd CRDs must be installed first. Run oxlink install with the --crds flag.";

/// Runs `future` on a fresh single-threaded runtime.
pub(crate) fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(future)
}

async fn client(kube: &ClusterArgs) -> Result<Client> {
    kube.client()
        .await
        .context("connecting to the cluster (pass --ignore-cluster to render without it)")
}

/// Before an install: every CRD is there and no control plane is. With `external_anchors`,
/// returns the trust anchors (`ca.crt`) of the externally managed issuer Secret.
pub(crate) async fn preflight(
    kube: &ClusterArgs,
    namespace: &str,
    external_anchors: bool,
) -> Result<Option<String>> {
    let client = client(kube).await?;
    let present: Vec<String> = Api::<CustomResourceDefinition>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .context("listing CustomResourceDefinitions")?
        .items
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect();
    let missing: Vec<String> = oxlink_crds::install::crds()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .filter(|name| !present.contains(name))
        .collect();
    if !missing.is_empty() {
        bail!("{CRDS_MISSING}\nmissing: {}", missing.join(", "));
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    if config_maps
        .get_opt(CONFIG_CONFIGMAP)
        .await
        .with_context(|| format!("getting ConfigMap {namespace}/{CONFIG_CONFIGMAP}"))?
        .is_some()
    {
        bail!(
            "can't install the control plane in the '{namespace}' namespace: ConfigMap \
             {CONFIG_CONFIGMAP} already exists. Run `oxlink upgrade` to change it."
        );
    }
    if !external_anchors {
        return Ok(None);
    }
    let secret = issuer_secret(&client, namespace).await?.with_context(|| {
        format!(
            "--identity-external-issuer: Secret {namespace}/{IDENTITY_ISSUER_SECRET} does not \
             exist yet; create it (e.g. with cert-manager) or pass --identity-trust-anchors-file"
        )
    })?;
    secret_key(&secret, CA_CRT_KEY).map(Some).with_context(|| {
        format!("--identity-external-issuer: the trust anchors of Secret {namespace}/{IDENTITY_ISSUER_SECRET}")
    })
}

/// The installed control plane's values, with the issuer key (kept out of `linkerd-config`)
/// put back from its Secret when the chart manages the issuer.
pub(crate) async fn installed_values(kube: &ClusterArgs, namespace: &str) -> Result<Value> {
    let client = client(kube).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config = config_maps
        .get_opt(CONFIG_CONFIGMAP)
        .await
        .with_context(|| format!("getting ConfigMap {namespace}/{CONFIG_CONFIGMAP}"))?
        .with_context(|| {
            format!(
                "ConfigMap {namespace}/{CONFIG_CONFIGMAP} does not exist: is the control plane \
                 installed? (`oxlink install | kubectl apply -f -`)"
            )
        })?;
    let text = config
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_VALUES_KEY))
        .with_context(|| format!("ConfigMap {CONFIG_CONFIGMAP} has no key {CONFIG_VALUES_KEY}"))?;
    let mut values = super::values::from_yaml(CONFIG_CONFIGMAP, text)?;
    if values["identity"]["issuer"]["scheme"].as_str() == Some(ISSUER_SCHEME_LINKERD) {
        let secret = issuer_secret(&client, namespace).await?.with_context(|| {
            format!("Secret {namespace}/{IDENTITY_ISSUER_SECRET} does not exist")
        })?;
        let key = secret_key(&secret, ISSUER_KEY_KEY)?;
        super::values::merge(
            &mut values,
            json!({"identity": {"issuer": {"tls": {"keyPEM": key}}}}),
        );
    }
    Ok(values)
}

/// Whether the injector's self-managed serving certificate Secret exists.
pub(crate) async fn injector_secret_exists(kube: &ClusterArgs, namespace: &str) -> Result<bool> {
    let secrets: Api<Secret> = Api::namespaced(client(kube).await?, namespace);
    Ok(secrets
        .get_metadata_opt(PROXY_INJECTOR_TLS_SECRET)
        .await
        .with_context(|| format!("getting Secret {namespace}/{PROXY_INJECTOR_TLS_SECRET}"))?
        .is_some())
}

async fn issuer_secret(client: &Client, namespace: &str) -> Result<Option<Secret>> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(IDENTITY_ISSUER_SECRET)
        .await
        .with_context(|| format!("getting Secret {namespace}/{IDENTITY_ISSUER_SECRET}"))
}

fn secret_key(secret: &Secret, key: &str) -> Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("Secret {IDENTITY_ISSUER_SECRET} has no key {key}"))?;
    String::from_utf8(bytes.0.clone())
        .with_context(|| format!("key {key} of Secret {IDENTITY_ISSUER_SECRET} is not UTF-8 PEM"))
}
