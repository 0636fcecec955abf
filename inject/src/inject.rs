//! The inject function: a pod template, its namespace's annotations, its owner and the control
//! plane's configuration in; the injected template (and why not, when it is not) out.
//!
//! It performs no I/O. The admission server resolves the namespace and owner and turns the
//! result into a JSON patch; `oxlink inject` calls it on workloads read from files.

use crate::{
    config::{Overrides, ProxyConfig, app_containers, pod_inbound_ports},
    parse,
    render::{self, ControlPlane},
    values::Values,
};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec, Service};
use oxlink_crds::names;
use oxlink_crds::names::{annotations as anno, labels};
use serde_json::{Map, Value};
use std::{collections::BTreeMap, fmt};

/// Who asks for the injection; decides the `created-by` value and the defaults only the
/// webhook applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The admission webhook, for a pod being created.
    Webhook,
    /// `oxlink inject --manual`, for a workload's pod template.
    Cli,
}

/// The workload that owns the pod, as the `linkerd.io/proxy-<kind>` label names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

/// What the inject function needs besides the pod.
#[derive(Clone, Copy, Debug)]
pub struct InjectContext<'a> {
    pub values: &'a Values,
    /// PEM bundle of the mesh's trust anchors.
    pub trust_anchors_pem: &'a str,
    /// The control plane's namespace (`linkerd`).
    pub control_plane_namespace: &'a str,
    /// The pod's namespace.
    pub namespace: &'a str,
    pub namespace_annotations: &'a BTreeMap<String, String>,
    pub owner: Option<&'a Owner>,
    /// Value of `linkerd.io/created-by`.
    pub created_by: &'a str,
    pub origin: Origin,
}

/// Where the deciding `linkerd.io/inject` annotation was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnotationAt {
    Pod,
    Namespace,
}

/// Why a pod is left without a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Neither the pod nor its namespace asks for injection.
    NotEnabled,
    /// `linkerd.io/inject: disabled`.
    Disabled(AnnotationAt),
    /// `linkerd.io/inject` has a value other than enabled, disabled or ingress.
    InvalidValue(AnnotationAt, String),
    HostNetwork,
    /// A Linkerd or Istio sidecar (or init container) is already there.
    SidecarPresent,
    /// `automountServiceAccountToken: false` while token projection is off: no token to
    /// present to identity.
    TokenAutomountDisabled,
}

/// The result of the inject function.
#[derive(Clone, Debug)]
pub struct Injection {
    /// The pod template as it should be: `{"metadata": …, "spec": …}`. When the pod is
    /// skipped it may still differ from the input (the opaque-ports default).
    pub template: Value,
    /// `Ok` when the proxy was added.
    pub outcome: Result<(), SkipReason>,
    /// Where the deciding `linkerd.io/inject` annotation came from.
    pub annotation_at: Option<AnnotationAt>,
    /// Annotations whose values were ignored.
    pub warnings: Vec<String>,
}

// === impl SkipReason ===

impl SkipReason {
    /// A short label for metrics and events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotEnabled => "injection_enable_annotation_absent",
            Self::Disabled(_) => "injection_disable_annotation_present",
            Self::InvalidValue(..) => "invalid_inject_annotation_value",
            Self::HostNetwork => "host_network_enabled",
            Self::SidecarPresent => "sidecar_already_present",
            Self::TokenAutomountDisabled => "automount_service_account_token_disabled",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |a: &AnnotationAt| match a {
            AnnotationAt::Pod => "pod",
            AnnotationAt::Namespace => "namespace",
        };
        match self {
            Self::NotEnabled => write!(
                f,
                "neither the namespace nor the pod have the annotation \"{}:{}\"",
                anno::INJECT,
                anno::INJECT_ENABLED
            ),
            Self::Disabled(a) => write!(
                f,
                "{} has the annotation \"{}:{}\"",
                at(a),
                anno::INJECT,
                anno::INJECT_DISABLED
            ),
            Self::InvalidValue(a, v) => write!(
                f,
                "invalid value {v:?} for annotation \"{}\" at {}",
                anno::INJECT,
                at(a)
            ),
            Self::HostNetwork => f.write_str("hostNetwork is enabled"),
            Self::SidecarPresent => f.write_str("pod has a sidecar injected already"),
            Self::TokenAutomountDisabled => f.write_str(
                "automountServiceAccountToken is false and service account token projection is disabled",
            ),
        }
    }
}

/// Keys a pod inherits from its namespace when it does not set them itself.
pub fn inheritable(key: &str) -> bool {
    const NOT_INHERITED: &[&str] = &[
        anno::ENABLE_GATEWAY,
        anno::CLOSE_WAIT_TIMEOUT,
        anno::DEBUG_IMAGE,
        anno::DEBUG_IMAGE_VERSION,
        anno::DEBUG_IMAGE_PULL_POLICY,
        anno::INIT_IMAGE,
        anno::INIT_IMAGE_VERSION,
    ];
    const EXTRA: &[&str] = &[
        anno::INJECT,
        names::annotations::PROXY_GID,
        names::annotations::PROXY_LOG_HTTP_HEADERS,
        names::annotations::PROXY_ADMIN_SHUTDOWN,
        names::annotations::PROXY_DISABLE_OUTBOUND_PROTOCOL_DETECT_TIMEOUT,
        names::annotations::PROXY_DISABLE_INBOUND_PROTOCOL_DETECT_TIMEOUT,
    ];
    (anno::PROXY_CONFIG.contains(&key) && !NOT_INHERITED.contains(&key)) || EXTRA.contains(&key)
}

/// Whether the pod can take a proxy at all, whatever its annotations say.
pub fn check_injectable(spec: &PodSpec, values: &Values) -> Result<(), SkipReason> {
    if spec.host_network == Some(true) {
        return Err(SkipReason::HostNetwork);
    }
    if has_sidecar(spec, values) {
        return Err(SkipReason::SidecarPresent);
    }
    if spec.automount_service_account_token == Some(false)
        && !values.identity.service_account_token_projection
    {
        return Err(SkipReason::TokenAutomountDisabled);
    }
    Ok(())
}

fn has_sidecar(spec: &PodSpec, values: &Values) -> bool {
    let proxy_image = format!("{}:", values.proxy.image.name);
    let sidecar = |c: &k8s_openapi::api::core::v1::Container| {
        let image = c.image.as_deref().unwrap_or_default();
        c.name == names::proxy::PROXY_CONTAINER
            || c.name == names::proxy::ISTIO_PROXY_CONTAINER
            || image.starts_with(&proxy_image)
            || image.contains(names::proxy::ISTIO_PROXY_IMAGE)
    };
    let init = |c: &k8s_openapi::api::core::v1::Container| {
        c.name == names::proxy::INIT_CONTAINER || c.name == names::proxy::ISTIO_INIT_CONTAINER
    };
    spec.containers.iter().any(sidecar)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| init(c) || sidecar(c))
}

/// Decides from the `linkerd.io/inject` annotations of the pod and its namespace.
fn decide(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
) -> (Result<(), SkipReason>, Option<AnnotationAt>) {
    let (value, at) = match (pod.get(anno::INJECT), namespace.get(anno::INJECT)) {
        (Some(v), _) => (v, AnnotationAt::Pod),
        (None, Some(v)) => (v, AnnotationAt::Namespace),
        (None, None) => return (Err(SkipReason::NotEnabled), None),
    };
    let outcome = match value.as_str() {
        anno::INJECT_ENABLED | anno::INJECT_INGRESS => Ok(()),
        anno::INJECT_DISABLED => Err(SkipReason::Disabled(at)),
        other => Err(SkipReason::InvalidValue(at, other.to_string())),
    };
    (outcome, Some(at))
}

/// The default opaque ports that the pod's containers listen on, as an annotation value.
fn default_opaque_ports(spec: &PodSpec, values: &Values) -> Option<String> {
    let defaults = parse::ports(&values.proxy.opaque_ports).ok()?;
    let used = pod_inbound_ports(spec);
    let ports = defaults.intersection(&used).copied().collect();
    let rendered = parse::render_ports(&ports);
    (!rendered.is_empty()).then_some(rendered)
}

/// Injects the proxy into `template` if its annotations (or its namespace's) ask for it.
pub fn inject_template(template: &PodTemplateSpec, ctx: &InjectContext<'_>) -> Injection {
    let mut doc = serde_json::to_value(template).unwrap_or_else(|_| Value::Object(Map::new()));
    let spec = template.spec.clone().unwrap_or_default();
    let meta = template.metadata.clone().unwrap_or_default();
    let mut annotations = meta.annotations.clone().unwrap_or_default();

    let (decision, annotation_at) = decide(&annotations, ctx.namespace_annotations);
    let outcome = check_injectable(&spec, ctx.values).and(decision);
    if let Err(reason) = outcome {
        // A pod without a proxy still tells destination which of its ports are opaque.
        if ctx.origin == Origin::Webhook
            && !annotations.contains_key(anno::OPAQUE_PORTS)
            && !ctx.namespace_annotations.contains_key(anno::OPAQUE_PORTS)
            && let Some(ports) = default_opaque_ports(&spec, ctx.values)
        {
            annotations.insert(anno::OPAQUE_PORTS.into(), ports);
            set_map(&mut doc, "annotations", &annotations);
        }
        return Injection {
            template: doc,
            outcome: Err(reason),
            annotation_at,
            warnings: Vec::new(),
        };
    }

    for (key, value) in ctx.namespace_annotations {
        if inheritable(key) && !annotations.contains_key(key) {
            annotations.insert(key.clone(), value.clone());
        }
    }
    if ctx.origin == Origin::Webhook
        && !annotations.contains_key(anno::OPAQUE_PORTS)
        && let Some(ports) = default_opaque_ports(&spec, ctx.values)
    {
        annotations.insert(anno::OPAQUE_PORTS.into(), ports);
    }

    let mut overrides = Overrides::new(&annotations);
    let cfg = ProxyConfig::resolve(ctx.values, &spec, &mut overrides);
    let warnings = std::mem::take(&mut overrides.warnings);

    annotations.insert(anno::CREATED_BY.into(), ctx.created_by.into());
    annotations.insert(anno::PROXY_VERSION.into(), cfg.proxy_version.clone());
    annotations.insert(
        anno::TRUST_ROOT_SHA256.into(),
        names::encoding::sha256_hex(ctx.trust_anchors_pem.as_bytes()),
    );
    set_map(&mut doc, "annotations", &annotations);

    let mut pod_labels = meta.labels.clone().unwrap_or_default();
    pod_labels.insert(
        labels::CONTROL_PLANE_NS.into(),
        ctx.control_plane_namespace.into(),
    );
    pod_labels.insert(labels::WORKLOAD_NS.into(), ctx.namespace.into());
    if let Some(owner) = ctx.owner
        && let Some(key) = labels::proxy_owner(&owner.kind)
    {
        pod_labels.insert(key.into(), owner.name.clone());
    }
    set_map(&mut doc, "labels", &pod_labels);

    let cp = ControlPlane {
        namespace: ctx.control_plane_namespace,
        cluster_domain: &ctx.values.cluster_domain,
        trust_domain: ctx.values.trust_domain(),
    };
    let capabilities = spec
        .containers
        .first()
        .and_then(|c| c.security_context.as_ref())
        .and_then(|s| s.capabilities.as_ref());
    let proxy = render::proxy_container(&cfg, cp, ctx.trust_anchors_pem, capabilities);
    let init = if ctx.values.cni_enabled {
        render::network_validator(&cfg)
    } else {
        render::init_container(&cfg)
    };

    let spec_doc = object_at(&mut doc, "spec");
    let mut inits = vec![init];
    let mut containers = take_array(spec_doc, "containers");
    if cfg.native_sidecar {
        inits.push(proxy);
    } else if cfg.await_ {
        containers.insert(0, proxy);
    } else {
        containers.push(proxy);
    }
    if let Some((image, policy)) = &cfg.debug {
        containers.push(render::debug_container(image, policy));
    }
    let mut existing_inits = take_array(spec_doc, "initContainers");
    inits.append(&mut existing_inits);
    spec_doc.insert("initContainers".into(), inits.into());
    spec_doc.insert("containers".into(), containers.into());
    let mut volumes = take_array(spec_doc, "volumes");
    volumes.extend(render::volumes(&cfg));
    spec_doc.insert("volumes".into(), volumes.into());

    Injection {
        template: doc,
        outcome: Ok(()),
        annotation_at,
        warnings,
    }
}

fn object_at<'a>(doc: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let map = doc.as_object_mut().expect("made an object above");
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("made an object above")
}

fn take_array(map: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match map.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn set_map(doc: &mut Value, key: &str, map: &BTreeMap<String, String>) {
    let meta = object_at(doc, "metadata");
    let value = map
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<Map<_, _>>();
    meta.insert(key.into(), value.into());
}

/// For a Service without an opaque-ports annotation (on it or its namespace): the default
/// opaque ports it exposes, by port or numeric target port, as the annotation's value.
pub fn service_opaque_ports(
    service: &Service,
    namespace_annotations: &BTreeMap<String, String>,
    values: &Values,
) -> Option<String> {
    let has = |m: Option<&BTreeMap<String, String>>| {
        m.is_some_and(|m| m.contains_key(anno::OPAQUE_PORTS))
    };
    if has(service.metadata.annotations.as_ref()) || has(Some(namespace_annotations)) {
        return None;
    }
    let defaults = parse::ports(&values.proxy.opaque_ports).ok()?;
    let mut found = std::collections::BTreeSet::new();
    for port in service.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
        let target = match &port.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p)) => Some(*p),
            _ => None,
        };
        let candidate = target.unwrap_or(port.port);
        if let Ok(p) = u16::try_from(candidate)
            && defaults.contains(&p)
        {
            found.insert(p);
        }
    }
    let rendered = parse::render_ports(&found);
    (!rendered.is_empty()).then_some(rendered)
}

/// Whether any of the pod's own containers declares a UDP port (the proxy does not carry UDP).
pub fn has_udp_ports(spec: &PodSpec) -> bool {
    app_containers(spec)
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| p.protocol.as_deref() == Some("UDP"))
}

/// The admission patch for a Service: the opaque-ports annotation, when it needs one.
pub fn service_patch(
    service: &Service,
    namespace_annotations: &BTreeMap<String, String>,
    values: &Values,
) -> Vec<crate::PatchOp> {
    let Some(ports) = service_opaque_ports(service, namespace_annotations, values) else {
        return Vec::new();
    };
    let before = serde_json::json!({"metadata": service.metadata});
    let mut after = before.clone();
    let mut annotations = service.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(anno::OPAQUE_PORTS.into(), ports);
    set_map(&mut after, "annotations", &annotations);
    crate::patch::diff(&before, &after, "")
}
