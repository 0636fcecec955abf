//! `oxlink uninstall`: every object the control plane consists of — the rendered chart of the
//! installed values, the injector's serving-certificate Secret, the namespace and the CRDs —
//! as a manifest for `kubectl delete -f -`, like `linkerd uninstall`.
//!
//! The admission webhooks come first, so that nothing is sent to an injector that is going
//! away; the CRDs come last.

use crate::install::{self, chart, cluster};
use anyhow::{Context, Result};
use clap::Args;
use oxlink_crds::names::control_plane::{NAMESPACE, PROXY_INJECTOR_TLS_SECRET};
use serde_json::{Value, json};
use std::io::Write;

#[derive(Debug, Args)]
pub(crate) struct UninstallArgs {}

/// `apiVersion`, `kind`, name and namespace of an object: all `kubectl delete` needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

// === impl UninstallArgs ===

impl UninstallArgs {
    pub(crate) fn run(self, kube: &crate::ClusterArgs, out: &mut impl Write) -> Result<()> {
        let values = cluster::block_on(cluster::installed_values(kube, NAMESPACE))?;
        let injector_secret = cluster::block_on(cluster::injector_secret_exists(kube, NAMESPACE))?;
        let objects = objects(&values, injector_secret)?;
        out.write_all(manifest(&objects).as_bytes())?;
        Ok(())
    }
}

/// What to delete for a control plane installed with `values`.
pub(crate) fn objects(values: &Value, injector_secret: bool) -> Result<Vec<ObjectRef>> {
    let mut objects = Vec::new();
    for document in chart::render(values, NAMESPACE)? {
        let object: Value = serde_saphyr::from_str(&document.yaml)
            .with_context(|| format!("{}: a rendered object does not parse", document.file))?;
        objects.push(object_ref(&object));
    }
    if !objects.iter().any(|o| o.kind == "Namespace") {
        objects.push(ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: NAMESPACE.into(),
            namespace: None,
        });
    }
    if injector_secret {
        objects.push(ObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            name: PROXY_INJECTOR_TLS_SECRET.into(),
            namespace: Some(NAMESPACE.into()),
        });
    }
    let webhook = |o: &ObjectRef| o.kind.ends_with("WebhookConfiguration");
    objects.sort_by_key(|o| (!webhook(o), o.kind == "Namespace"));
    for crd in oxlink_crds::install::crds() {
        objects.push(ObjectRef {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            name: crd.metadata.name.unwrap_or_default(),
            namespace: None,
        });
    }
    Ok(objects)
}

fn object_ref(object: &Value) -> ObjectRef {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    ObjectRef {
        api_version: text(&object["apiVersion"]),
        kind: text(&object["kind"]),
        name: text(&object["metadata"]["name"]),
        namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
    }
}

/// The objects as a YAML stream of stubs.
pub(crate) fn manifest(objects: &[ObjectRef]) -> String {
    objects
        .iter()
        .map(|o| {
            let mut metadata = json!({"name": o.name});
            if let Some(ns) = &o.namespace {
                metadata["namespace"] = json!(ns);
            }
            let stub = json!({"apiVersion": o.api_version, "kind": o.kind, "metadata": metadata});
            format!("---\n{}\n", install::template::to_yaml(&stub))
        })
        .collect()
}
