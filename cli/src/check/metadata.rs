//! Labels that should be annotations and the other way round, on data plane pods and Services
//! (Linkerd's `data plane pod labels / service labels / service annotations are configured
//! correctly`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use oxlink_crds::names::{annotations, labels};

/// Label keys that only mean something as annotations.
fn misconfigured_labels(meta: &ObjectMeta) -> Vec<String> {
    let mut keys: Vec<String> = meta
        .labels
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(|k| {
            k.starts_with(annotations::CONFIG_PREFIX)
                || k.starts_with(annotations::CONFIG_ALPHA_PREFIX)
                || k.as_str() == annotations::INJECT
        })
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Annotation keys that only mean something as labels.
fn misconfigured_annotations(meta: &ObjectMeta) -> Vec<String> {
    meta.annotations
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(|k| k.as_str() == labels::MULTICLUSTER_EXPORTED)
        .cloned()
        .collect()
}

/// Linkerd's list: `heading:` then `\t* ns/name` and each key on its own line.
fn report<K: Resource>(
    objects: &[K],
    heading: &str,
    wrong: impl Fn(&ObjectMeta) -> Vec<String>,
) -> Result<(), String> {
    let invalid: Vec<String> = objects
        .iter()
        .filter_map(|o| {
            let meta = o.meta();
            let keys = wrong(meta);
            (!keys.is_empty()).then(|| {
                format!(
                    "\t* {}/{}\n\t\t{}",
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default(),
                    keys.join("\n\t\t")
                )
            })
        })
        .collect();
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(format!("{heading}:\n{}", invalid.join("\n")))
    }
}

pub(crate) fn pod_labels<K: Resource>(pods: &[K]) -> Result<(), String> {
    report(
        pods,
        "Some labels on data plane pods should be annotations",
        misconfigured_labels,
    )
}

pub(crate) fn service_labels<K: Resource>(services: &[K]) -> Result<(), String> {
    report(
        services,
        "Some labels on data plane services should be annotations",
        misconfigured_labels,
    )
}

pub(crate) fn service_annotations<K: Resource>(services: &[K]) -> Result<(), String> {
    report(
        services,
        "Some annotations on data plane services should be labels",
        misconfigured_annotations,
    )
}
