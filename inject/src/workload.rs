//! Injection and uninjection of whole Kubernetes objects as JSON, for `oxlink inject` and
//! `oxlink uninject`: find the pod template of each workload kind, run the inject function on
//! it, and patch only what changed, so every other field of the object stays as it was.

use crate::{
    inject::{InjectContext, Origin, Owner, SkipReason, check_injectable, inject_template},
    patch::{self, PatchError},
    values::Values,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use oxlink_crds::names;
use oxlink_crds::names::{annotations as anno, labels};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a kind keeps its pod template (`""` for a Pod, whose metadata and spec are the
/// template), or `None` for kinds without one.
pub fn template_pointer(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod" => "",
        "Deployment"
        | "ReplicaSet"
        | "ReplicationController"
        | "StatefulSet"
        | "DaemonSet"
        | "Job" => "/spec/template",
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => return None,
    })
}

/// How `oxlink inject` treats one object.
#[derive(Clone, Debug)]
pub struct InjectOptions<'a> {
    pub values: &'a Values,
    pub trust_anchors_pem: &'a str,
    pub control_plane_namespace: &'a str,
    /// `linkerd.io/created-by` for manual injection.
    pub created_by: &'a str,
    /// Render the proxy into the object instead of only annotating it.
    pub manual: bool,
    /// Annotations to set on the pod template (or Namespace): `linkerd.io/inject` and any
    /// `config.linkerd.io/*` overrides.
    pub annotations: BTreeMap<String, String>,
    /// Annotations to set on Services (`config.linkerd.io/opaque-ports`).
    pub service_annotations: BTreeMap<String, String>,
}

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectResult {
    /// The proxy was rendered into the pod template (`--manual`).
    Injected,
    /// Annotations were added (auto mode, Namespaces, Services).
    Annotated,
    /// A workload that cannot or must not take a proxy.
    Skipped(SkipReason),
    /// A kind inject does not change.
    Unsupported,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("the pod template does not parse: {0}")]
    Template(String),
    #[error("the injected pod template does not apply: {0}")]
    Patch(#[from] PatchError),
}

fn kind_of(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn template_of(obj: &Value, pointer: &str) -> Result<PodTemplateSpec, WorkloadError> {
    let raw = if pointer.is_empty() {
        let mut m = Map::new();
        for key in ["metadata", "spec"] {
            if let Some(v) = obj.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
        Value::Object(m)
    } else {
        obj.pointer(pointer).cloned().unwrap_or(Value::Null)
    };
    serde_json::from_value(raw).map_err(|e| WorkloadError::Template(e.to_string()))
}

/// Injects (or annotates) one object in place. The object is uninjected first, so injecting
/// twice gives the same result as injecting once.
pub fn inject_object(
    obj: &mut Value,
    opts: &InjectOptions<'_>,
) -> Result<ObjectResult, WorkloadError> {
    let kind = kind_of(obj).to_string();
    match kind.as_str() {
        "Namespace" => {
            set_annotations(obj_meta(obj), &opts.annotations);
            return Ok(ObjectResult::Annotated);
        }
        "Service" if !opts.service_annotations.is_empty() => {
            set_annotations(obj_meta(obj), &opts.service_annotations);
            return Ok(ObjectResult::Annotated);
        }
        _ => {}
    }
    let Some(pointer) = template_pointer(&kind) else {
        return Ok(ObjectResult::Unsupported);
    };
    uninject_object(obj);
    let template = template_of(obj, pointer)?;
    let spec = template.spec.clone().unwrap_or_default();
    let existing = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    if existing
        .and_then(|a| a.get(anno::INJECT))
        .map(String::as_str)
        == Some(anno::INJECT_DISABLED)
    {
        return Ok(ObjectResult::Skipped(SkipReason::Disabled(
            crate::AnnotationAt::Pod,
        )));
    }
    if let Err(reason) = check_injectable(&spec, opts.values) {
        return Ok(ObjectResult::Skipped(reason));
    }

    if let Some(meta) = template_meta(obj, pointer) {
        set_annotations(meta, &opts.annotations);
    }
    if !opts.manual {
        return Ok(ObjectResult::Annotated);
    }

    let template = template_of(obj, pointer)?;
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let owner = (kind != "Pod").then(|| Owner {
        kind: kind.clone(),
        name: obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    });
    let empty = BTreeMap::new();
    let ctx = InjectContext {
        values: opts.values,
        trust_anchors_pem: opts.trust_anchors_pem,
        control_plane_namespace: opts.control_plane_namespace,
        namespace: &namespace,
        namespace_annotations: &empty,
        owner: owner.as_ref(),
        created_by: opts.created_by,
        origin: Origin::Cli,
    };
    let injection = inject_template(&template, &ctx);
    if let Err(reason) = injection.outcome {
        return Ok(ObjectResult::Skipped(reason));
    }
    let before = serde_json::to_value(&template).unwrap_or_default();
    let ops = patch::diff(&before, &injection.template, pointer);
    patch::apply(obj, &ops)?;
    // A rendered proxy must not be injected a second time by the webhook.
    if let Some(Value::Object(a)) =
        template_meta(obj, pointer).and_then(|m| m.get_mut("annotations"))
    {
        a.remove(anno::INJECT);
        if a.is_empty()
            && let Some(meta) = template_meta(obj, pointer)
        {
            meta.remove("annotations");
        }
    }
    Ok(ObjectResult::Injected)
}

fn obj_meta(obj: &mut Value) -> &mut Map<String, Value> {
    child_object(obj, "metadata")
}

fn template_meta<'a>(obj: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    let template = if pointer.is_empty() {
        Some(obj)
    } else {
        obj.pointer_mut(pointer)
    };
    template.map(|t| child_object(t, "metadata"))
}

fn child_object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let Value::Object(map) = v else {
        unreachable!("made an object above")
    };
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let Value::Object(child) = entry else {
        unreachable!("made an object above")
    };
    child
}

fn set_annotations(meta: &mut Map<String, Value>, add: &BTreeMap<String, String>) {
    if add.is_empty() {
        return;
    }
    let Value::Object(annotations) = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()))
    else {
        return;
    };
    for (k, v) in add {
        annotations.insert(k.clone(), Value::String(v.clone()));
    }
}

/// Removes what injection added: the proxy, init and debug containers, their volumes, and the
/// `linkerd.io*` annotations and labels (except `linkerd.io/inject: disabled`). Objects of the
/// control plane itself are left alone. Returns whether anything changed.
pub fn uninject_object(obj: &mut Value) -> bool {
    let kind = kind_of(obj).to_string();
    if kind == "Namespace" {
        let before = obj.clone();
        strip_meta(obj_meta(obj));
        tidy_meta(obj);
        return *obj != before;
    }
    let Some(pointer) = template_pointer(&kind) else {
        return false;
    };
    let template = if pointer.is_empty() {
        Some(&mut *obj)
    } else {
        obj.pointer_mut(pointer)
    };
    let Some(template) = template else {
        return false;
    };
    let control_plane = template
        .pointer(&format!(
            "/metadata/labels/{}",
            patch::escape(labels::CONTROL_PLANE_COMPONENT)
        ))
        .is_some();
    if control_plane {
        return false;
    }
    let before = template.clone();
    if let Some(Value::Object(spec)) = template.get_mut("spec") {
        remove_named(
            spec,
            "initContainers",
            &[
                names::proxy::INIT_CONTAINER,
                names::proxy::NETWORK_VALIDATOR_CONTAINER,
                names::proxy::PROXY_CONTAINER,
            ],
        );
        remove_named(
            spec,
            "containers",
            &[names::proxy::PROXY_CONTAINER, names::proxy::DEBUG_CONTAINER],
        );
        remove_named(
            spec,
            "volumes",
            &[
                names::proxy::IDENTITY_END_ENTITY_VOLUME,
                names::proxy::IDENTITY_TOKEN_VOLUME,
                names::proxy::XTABLES_LOCK_VOLUME,
            ],
        );
    }
    if let Some(Value::Object(meta)) = template.get_mut("metadata") {
        strip_meta(meta);
    }
    tidy_meta(template);
    *template != before
}

fn remove_named(spec: &mut Map<String, Value>, key: &str, remove: &[&str]) {
    let Some(Value::Array(items)) = spec.get_mut(key) else {
        return;
    };
    let before = items.len();
    items.retain(|c| !remove.contains(&c.get("name").and_then(Value::as_str).unwrap_or("")));
    // `containers` is required; the other lists were likely added by injection.
    if items.is_empty() && before > 0 && key != "containers" {
        spec.remove(key);
    }
}

fn strip_meta(meta: &mut Map<String, Value>) {
    for key in ["annotations", "labels"] {
        if let Some(Value::Object(map)) = meta.get_mut(key) {
            map.retain(|k, v| {
                !k.starts_with("linkerd.io")
                    || (k == anno::INJECT && v.as_str() == Some(anno::INJECT_DISABLED))
            });
        }
    }
}

fn tidy_meta(obj: &mut Value) {
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        return;
    };
    for key in ["annotations", "labels"] {
        if matches!(meta.get(key), Some(Value::Object(m)) if m.is_empty()) {
            meta.remove(key);
        }
    }
    if meta.is_empty()
        && let Some(obj) = obj.as_object_mut()
    {
        obj.remove("metadata");
    }
}
