//! The control plane's configuration as `oxlink inject` reads it from the cluster: the `values`
//! of ConfigMap `linkerd-config`, and the trust anchors (from those values, or from ConfigMap
//! `linkerd-identity-trust-roots`).

use crate::ClusterArgs;
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use oxlink_crds::names::control_plane::{
    CONFIG_CONFIGMAP, CONFIG_VALUES_KEY, TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY,
};
use oxlink_inject::Values;

/// Reads the values and trust anchors of the control plane in `namespace`.
pub(crate) fn load(kube: &ClusterArgs, namespace: &str) -> Result<(Values, String)> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(fetch(kube, namespace))
        .context("could not read the control plane's configuration from the cluster; pass --ignore-cluster to use the defaults")
}

async fn fetch(kube: &ClusterArgs, namespace: &str) -> Result<(Values, String)> {
    let client = kube.client().await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client, namespace);
    let config = config_maps
        .get(CONFIG_CONFIGMAP)
        .await
        .with_context(|| format!("getting ConfigMap {namespace}/{CONFIG_CONFIGMAP}"))?;
    let text = config
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_VALUES_KEY))
        .with_context(|| format!("ConfigMap {CONFIG_CONFIGMAP} has no key {CONFIG_VALUES_KEY}"))?;
    let values = Values::from_yaml(text)?;
    let mut anchors = values.identity_trust_anchors_pem.clone();
    if anchors.trim().is_empty() {
        let roots = config_maps
            .get(TRUST_ROOTS_CONFIGMAP)
            .await
            .with_context(|| format!("getting ConfigMap {namespace}/{TRUST_ROOTS_CONFIGMAP}"))?;
        anchors = roots
            .data
            .and_then(|mut d| d.remove(TRUST_ROOTS_KEY))
            .with_context(|| {
                format!("ConfigMap {TRUST_ROOTS_CONFIGMAP} has no key {TRUST_ROOTS_KEY}")
            })?;
    }
    Ok((values, anchors))
}
