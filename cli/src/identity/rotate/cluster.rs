//! What a rotation reads and writes in the cluster: the bundle and the state on the trust-roots
//! ConfigMap, the issuer Secrets, `linkerd-config`, the meshed workloads and their rollouts, and
//! the proxies' metrics (through the API server's pod proxy).

use super::state::{RolloutStatus, Rotation};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    core::v1::{ConfigMap, Pod, Secret},
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use oxlink_crds::names::{annotations, control_plane as cp, labels};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The trust-roots ConfigMap as a rotation needs it.
pub(crate) struct TrustRoots {
    pub(crate) bundle: String,
    pub(crate) rotation: Option<Rotation>,
}

pub(crate) async fn trust_roots(client: &Client, ns: &str) -> Result<TrustRoots> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(cp::TRUST_ROOTS_CONFIGMAP)
        .await
        .with_context(|| format!("getting ConfigMap {ns}/{}", cp::TRUST_ROOTS_CONFIGMAP))?
        .with_context(|| {
            format!(
                "ConfigMap {ns}/{} does not exist: is the control plane installed?",
                cp::TRUST_ROOTS_CONFIGMAP
            )
        })?;
    let bundle = cm
        .data
        .as_ref()
        .and_then(|d| d.get(cp::TRUST_ROOTS_KEY))
        .cloned()
        .with_context(|| {
            format!(
                "ConfigMap {} has no key {}",
                cp::TRUST_ROOTS_CONFIGMAP,
                cp::TRUST_ROOTS_KEY
            )
        })?;
    let rotation = match cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::ANCHOR_ROTATION))
    {
        Some(text) => Some(Rotation::parse(text).map_err(|e| {
            anyhow::anyhow!(
                "annotation {} of ConfigMap {}: {e}",
                annotations::ANCHOR_ROTATION,
                cp::TRUST_ROOTS_CONFIGMAP
            )
        })?),
        None => None,
    };
    Ok(TrustRoots { bundle, rotation })
}

/// Writes the state, and with `bundle` the new bundle, in one update of the ConfigMap.
pub(crate) async fn save(
    client: &Client,
    ns: &str,
    rotation: &Rotation,
    bundle: Option<&str>,
) -> Result<()> {
    let mut patch =
        json!({"metadata": {"annotations": {annotations::ANCHOR_ROTATION: rotation.to_json()}}});
    if let Some(bundle) = bundle {
        patch["data"] = json!({ cp::TRUST_ROOTS_KEY: bundle });
    }
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            cp::TRUST_ROOTS_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .with_context(|| format!("updating ConfigMap {ns}/{}", cp::TRUST_ROOTS_CONFIGMAP))?;
    Ok(())
}

/// The installed values (`linkerd-config`, key `values`), parsed.
pub(crate) async fn values(client: &Client, ns: &str) -> Result<Value> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(cp::CONFIG_CONFIGMAP)
        .await
        .with_context(|| format!("getting ConfigMap {ns}/{}", cp::CONFIG_CONFIGMAP))?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(cp::CONFIG_VALUES_KEY))
        .cloned()
        .unwrap_or_default();
    Ok(crate::install::values::from_yaml(
        cp::CONFIG_CONFIGMAP,
        &text,
    )?)
}

/// Keeps `linkerd-config` in step (so that `oxlink upgrade` keeps the rotated identity):
/// `identityTrustAnchorsPEM`, and the issuer certificate when oxlink manages it.
pub(crate) async fn update_values(
    client: &Client,
    ns: &str,
    anchors: &str,
    issuer_crt: Option<&str>,
) -> Result<()> {
    let mut values = values(client, ns).await?;
    values["identityTrustAnchorsPEM"] = json!(anchors);
    if let Some(crt) = issuer_crt {
        values["identity"]["issuer"]["tls"]["crtPEM"] = json!(crt);
    }
    let text = values_text(&values)?;
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            cp::CONFIG_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {cp::CONFIG_VALUES_KEY: text}})),
        )
        .await
        .with_context(|| format!("updating ConfigMap {ns}/{}", cp::CONFIG_CONFIGMAP))?;
    Ok(())
}

/// The values as `linkerd-config` stores them: JSON, which is YAML that every reader takes.
/// Whole numbers are written as integers: the YAML reader gives negative integers (`gid: -1`)
/// as floats.
pub(crate) fn values_text(values: &Value) -> Result<String> {
    fn whole(v: &mut Value) {
        match v {
            Value::Number(n) => {
                if let Some(f) = n
                    .as_f64()
                    .filter(|f| !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15)
                {
                    *v = Value::from(f as i64);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(whole),
            Value::Object(map) => map.values_mut().for_each(whole),
            _ => {}
        }
    }
    let mut values = values.clone();
    whole(&mut values);
    serde_json::to_string_pretty(&values).context("writing the values")
}

/// A Secret's key, as UTF-8.
pub(crate) fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

pub(crate) async fn secret(client: &Client, ns: &str, name: &str) -> Result<Option<Secret>> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .with_context(|| format!("getting Secret {ns}/{name}"))
}

/// Creates or replaces a `linkerd.io/tls`-style Secret (`crt.pem`, `key.pem`).
pub(crate) async fn write_issuer_secret(
    client: &Client,
    ns: &str,
    name: &str,
    crt: &str,
    key: &str,
) -> Result<()> {
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {cp::ISSUER_CRT_KEY: crt, cp::ISSUER_KEY_KEY: key},
    });
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("oxlink").force(),
            &Patch::Apply(patch),
        )
        .await
        .with_context(|| format!("writing Secret {ns}/{name}"))?;
    Ok(())
}

pub(crate) async fn delete_secret(client: &Client, ns: &str, name: &str) -> Result<()> {
    delete(Api::<Secret>::namespaced(client.clone(), ns), name)
        .await
        .with_context(|| format!("deleting Secret {ns}/{name}"))
}

/// Deletes `name`; one already gone is fine.
async fn delete<K>(api: Api<K>, name: &str) -> kube::Result<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

// === workloads ===

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// A workload whose pods a restart replaces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Workload {
    pub(crate) namespace: String,
    pub(crate) kind: Kind,
    pub(crate) name: String,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
        };
        write!(f, "{kind}/{} -n {}", self.name, self.namespace)
    }
}

impl Kind {
    fn resource(self) -> ApiResource {
        match self {
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }
}

/// The meshed pods of the control plane `ns`, not being deleted.
pub(crate) async fn meshed_pods(client: &Client, ns: &str) -> Result<Vec<Pod>> {
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{}={ns}", labels::CONTROL_PLANE_NS)))
        .await
        .context("listing meshed pods")?
        .items;
    Ok(pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && has_proxy(p))
        .collect())
}

/// Whether the pod runs a `linkerd-proxy` container (as a native sidecar or not): our
/// controllers carry the control-plane label but serve mesh TLS themselves, without a proxy.
pub(super) fn has_proxy(pod: &Pod) -> bool {
    oxlink_kube::pods::runs_container(pod, oxlink_crds::names::proxy::PROXY_CONTAINER)
}

/// The workloads that own meshed pods (from the injector's `linkerd.io/proxy-*` labels), and
/// the pods no restart replaces (`namespace/name`).
pub(crate) fn owners(pods: &[Pod]) -> (Vec<Workload>, Vec<String>) {
    let mut workloads = BTreeSet::new();
    let mut unmanaged = BTreeSet::new();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let l = pod.metadata.labels.clone().unwrap_or_default();
        let owner = [
            (labels::PROXY_DEPLOYMENT, Kind::Deployment),
            (labels::PROXY_STATEFULSET, Kind::StatefulSet),
            (labels::PROXY_DAEMONSET, Kind::DaemonSet),
        ]
        .into_iter()
        .find_map(|(label, kind)| l.get(label).map(|name| (kind, name.clone())));
        match owner {
            Some((kind, name)) => {
                workloads.insert(Workload {
                    namespace: ns,
                    kind,
                    name,
                });
            }
            None => {
                unmanaged.insert(format!(
                    "{ns}/{}",
                    pod.metadata.name.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    (
        workloads.into_iter().collect(),
        unmanaged.into_iter().collect(),
    )
}

/// The control plane's Deployments that exist.
pub(crate) async fn control_plane(client: &Client, ns: &str) -> Result<Vec<Workload>> {
    let api = Api::<Deployment>::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    for name in [
        cp::IDENTITY_DEPLOYMENT,
        cp::DESTINATION_DEPLOYMENT,
        cp::PROXY_INJECTOR_DEPLOYMENT,
    ] {
        if api
            .get_metadata_opt(name)
            .await
            .with_context(|| format!("getting Deployment {ns}/{name}"))?
            .is_some()
        {
            found.push(Workload {
                namespace: ns.to_string(),
                kind: Kind::Deployment,
                name: name.to_string(),
            });
        }
    }
    Ok(found)
}

fn api(client: &Client, w: &Workload) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &w.namespace, &w.kind.resource())
}

/// Asks for new pods, as `kubectl rollout restart` does, unless the workload already carries
/// `token`; returns whether it patched. A workload that no longer exists is skipped.
pub(crate) async fn restart(client: &Client, w: &Workload, token: &str) -> Result<bool> {
    let api = api(client, w);
    let Some(obj) = api
        .get_opt(&w.name)
        .await
        .with_context(|| format!("getting {w}"))?
    else {
        return Ok(false);
    };
    if obj.data["spec"]["template"]["metadata"]["annotations"][annotations::RESTARTED_AT].as_str()
        == Some(token)
    {
        return Ok(false);
    }
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {annotations::RESTARTED_AT: token}}}}});
    api.patch(&w.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("restarting {w}"))?;
    Ok(true)
}

/// The rollout of a workload now; `None` when it no longer exists.
pub(crate) async fn rollout(client: &Client, w: &Workload) -> Result<Option<RolloutStatus>> {
    let obj = api(client, w)
        .get_opt(&w.name)
        .await
        .with_context(|| format!("getting {w}"))?;
    Ok(obj.map(|o| {
        let mut v = o.data.clone();
        v["metadata"]["generation"] = json!(o.metadata.generation.unwrap_or_default());
        rollout_status(w.kind, &v)
    }))
}

/// Whether a pod of `w` created now gets its proxy: a dry run of creating one from the
/// workload's template goes through the admission webhooks as a real one would, so this
/// answers whether the API server reaches the proxy injector. With the webhook's
/// `failurePolicy: Ignore`, a pod created while it does not (a restarted injector whose new
/// endpoint the Service routing has not caught up with) starts without a proxy. A workload that
/// no longer exists needs nothing.
pub(crate) async fn injects(client: &Client, w: &Workload) -> Result<bool> {
    let Some(obj) = api(client, w)
        .get_opt(&w.name)
        .await
        .with_context(|| format!("getting {w}"))?
    else {
        return Ok(true);
    };
    let template = &obj.data["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["generateName"] = json!(format!("{}-", w.name));
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template["spec"],
    }))
    .with_context(|| format!("the pod template of {w}"))?;
    let created = Api::<Pod>::namespaced(client.clone(), &w.namespace)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &pod,
        )
        .await
        .with_context(|| format!("creating a pod of {w} as a dry run"))?;
    Ok(has_proxy(&created))
}

/// The live pods of `w` (by its selector) that run no proxy, by name.
pub(crate) async fn unmeshed_pods(client: &Client, w: &Workload) -> Result<Vec<String>> {
    let Some(obj) = api(client, w)
        .get_opt(&w.name)
        .await
        .with_context(|| format!("getting {w}"))?
    else {
        return Ok(Vec::new());
    };
    let selector = &obj.data["spec"]["selector"];
    let pods = Api::<Pod>::namespaced(client.clone(), &w.namespace)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing the pods of {w}"))?
        .items;
    Ok(pods
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            p.metadata.deletion_timestamp.is_none()
                && !matches!(phase, Some("Succeeded" | "Failed"))
                && oxlink_kube::pods::selects(
                    selector,
                    &p.metadata.labels.clone().unwrap_or_default(),
                )
                && !has_proxy(p)
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect())
}

pub(crate) async fn delete_pod(client: &Client, ns: &str, name: &str) -> Result<()> {
    delete(Api::<Pod>::namespaced(client.clone(), ns), name)
        .await
        .with_context(|| format!("deleting pod {ns}/{name}"))
}

/// Reads the rollout numbers of a Deployment, StatefulSet or DaemonSet (as JSON).
pub(crate) fn rollout_status(kind: Kind, obj: &Value) -> RolloutStatus {
    let int = |v: &Value| v.as_i64().unwrap_or_default();
    let status = &obj["status"];
    let base = RolloutStatus {
        generation: int(&obj["metadata"]["generation"]),
        observed_generation: int(&status["observedGeneration"]),
        revision_done: true,
        ..RolloutStatus::default()
    };
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
    match kind {
        Kind::Deployment => RolloutStatus {
            desired: replicas,
            current: int(&status["replicas"]) as i32,
            updated: int(&status["updatedReplicas"]) as i32,
            available: int(&status["availableReplicas"]) as i32,
            ..base
        },
        Kind::StatefulSet => RolloutStatus {
            desired: replicas,
            current: int(&status["replicas"]) as i32,
            updated: int(&status["updatedReplicas"]) as i32,
            available: int(&status["availableReplicas"]).max(0) as i32,
            revision_done: status["updateRevision"].is_null()
                || status["currentRevision"] == status["updateRevision"],
            ..base
        },
        Kind::DaemonSet => RolloutStatus {
            desired: int(&status["desiredNumberScheduled"]) as i32,
            current: int(&status["currentNumberScheduled"]) as i32,
            updated: int(&status["updatedNumberScheduled"]) as i32,
            available: int(&status["numberAvailable"]) as i32,
            ..base
        },
    }
}

/// A proxy's metrics, fetched through the API server (`pods/proxy` on the admin port).
pub(crate) async fn proxy_metrics(client: &Client, pod: &Pod) -> Result<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let port = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .filter(|c| c.name == oxlink_crds::names::proxy::PROXY_CONTAINER)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(oxlink_crds::names::proxy::ADMIN_PORT_NAME))
        .map_or(4191, |p| p.container_port);
    let request = hyper::Request::get(format!(
        "/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/metrics"
    ))
    .body(Vec::new())?;
    let text = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.request_text(request),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("the proxy of pod {ns}/{name} did not serve its metrics within 10s")
    })?
    .with_context(|| format!("reading the proxy metrics of pod {ns}/{name}"))?;
    if text.trim().is_empty() {
        bail!("the proxy of pod {ns}/{name} served no metrics");
    }
    Ok(text)
}
