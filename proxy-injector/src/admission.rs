//! `AdmissionReview` (admission.k8s.io/v1) handling for `/inject`: decode the review, run the
//! inject function on a Pod (or annotate a Service), and answer with a JSON patch.
//!
//! Bodies that are not an AdmissionReview get an HTTP error with the reason; a review whose
//! object cannot be handled is denied with a message, so the API server reports why.

use crate::{
    inject::{InjectContext, Origin, Owner, SkipReason, inject_template, service_patch},
    patch::{self, PatchOp},
    values::Values,
};
use k8s_openapi::{
    api::core::v1::{Pod, PodTemplateSpec, Service},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

/// The API version of the reviews we accept and return.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

/// What the handler asks of the cluster: a namespace's annotations and a pod's owning workload.
pub trait Cluster: Send + Sync + 'static {
    fn namespace_annotations<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, LookupError>>;

    /// The workload to name in the `linkerd.io/proxy-<kind>` label: a ReplicaSet's
    /// Deployment, a Job's CronJob, or the controller itself.
    fn owner<'a>(
        &'a self,
        namespace: &'a str,
        controller: &'a OwnerReference,
    ) -> BoxFuture<'a, Result<Owner, LookupError>>;

    /// The Servers (`policy.linkerd.io`) of `namespace`, listed from the API server rather than
    /// a cache, as Linkerd's policy admission does: the policy validator must see a Server
    /// created a moment ago. The default, for fakes, is none.
    fn servers<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<oxlink_crds::policy::Server>, LookupError>> {
        let _ = namespace;
        Box::pin(async { Ok(Vec::new()) })
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(pub String);

/// The values and trust anchors the injector renders with.
pub trait ConfigSource: Send + Sync + 'static {
    fn load(&self) -> Result<(Arc<Values>, Arc<str>), String>;
}

/// Values and anchors fixed at startup.
#[derive(Clone, Debug)]
pub struct StaticConfig {
    pub values: Arc<Values>,
    pub trust_anchors_pem: Arc<str>,
}

impl ConfigSource for StaticConfig {
    fn load(&self) -> Result<(Arc<Values>, Arc<str>), String> {
        Ok((self.values.clone(), self.trust_anchors_pem.clone()))
    }
}

/// Values and anchors read from files (the mounted ConfigMaps) on every request, so that a
/// change to either applies without a restart. The values are parsed again only when the file's
/// contents changed.
#[derive(Debug, Default)]
pub struct FileConfig {
    /// The `values` key of `linkerd-config`; the defaults apply when `None`.
    pub values: Option<std::path::PathBuf>,
    pub trust_anchors: std::path::PathBuf,
    /// The last files read, and what was made of them.
    last: parking_lot::Mutex<Option<Loaded>>,
}

#[derive(Debug)]
struct Loaded {
    values_text: Vec<u8>,
    anchors_text: Vec<u8>,
    values: Arc<Values>,
    anchors: Arc<str>,
}

impl FileConfig {
    pub fn new(values: Option<std::path::PathBuf>, trust_anchors: std::path::PathBuf) -> Self {
        Self {
            values,
            trust_anchors,
            last: Default::default(),
        }
    }
}

impl ConfigSource for FileConfig {
    fn load(&self) -> Result<(Arc<Values>, Arc<str>), String> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
        };
        let values_text = match &self.values {
            Some(path) => read(path)?,
            None => Vec::new(),
        };
        let anchors_text = read(&self.trust_anchors)?;
        let mut last = self.last.lock();
        if let Some(l) = last
            .as_ref()
            .filter(|l| l.values_text == values_text && l.anchors_text == anchors_text)
        {
            return Ok((l.values.clone(), l.anchors.clone()));
        }
        let values = match &self.values {
            Some(path) => {
                let text = std::str::from_utf8(&values_text)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                Values::from_yaml(text).map_err(|e| e.to_string())?
            }
            None => Values::default(),
        };
        let anchors: Arc<str> = String::from_utf8(anchors_text.clone())
            .map_err(|e| format!("reading {}: {e}", self.trust_anchors.display()))?
            .into();
        let values = Arc::new(values);
        *last = Some(Loaded {
            values_text,
            anchors_text,
            values: values.clone(),
            anchors: anchors.clone(),
        });
        Ok((values, anchors))
    }
}

/// An incoming review.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    api_version: String,
    kind: String,
    request: Option<Request>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request {
    pub(crate) uid: String,
    pub(crate) kind: GroupVersionKind,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    pub(crate) operation: String,
    /// Kept as text, to be decoded once into the type its kind calls for.
    #[serde(default)]
    pub(crate) object: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GroupVersionKind {
    #[serde(default)]
    pub(crate) group: String,
    pub(crate) kind: String,
}

/// The response review.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseReview {
    api_version: &'static str,
    kind: &'static str,
    response: Response,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Response {
    pub(crate) uid: String,
    pub(crate) allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub(crate) code: u16,
    pub(crate) message: String,
}

/// Decodes an `admission.k8s.io/v1` review and returns its request.
pub(crate) fn decode(body: &[u8]) -> Result<Request, ReviewError> {
    let review: Review =
        serde_json::from_slice(body).map_err(|e| ReviewError::Decode(e.to_string()))?;
    if review.api_version != ADMISSION_API_VERSION || review.kind != "AdmissionReview" {
        return Err(ReviewError::Version {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    review.request.ok_or(ReviewError::NoRequest)
}

/// Encodes the review that answers with `response`.
pub(crate) fn encode(response: Response) -> Result<Vec<u8>, ReviewError> {
    serde_json::to_vec(&ResponseReview {
        api_version: ADMISSION_API_VERSION,
        kind: "AdmissionReview",
        response,
    })
    .map_err(|e| ReviewError::Decode(e.to_string()))
}

/// A response that refuses the request with `message`.
pub(crate) fn deny(uid: &str, code: u16, message: String) -> Response {
    Response {
        uid: uid.to_string(),
        allowed: false,
        patch_type: None,
        patch: None,
        status: Some(Status { code, message }),
    }
}

/// Why a body is not a review we can answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not an AdmissionReview: {0}")]
    Decode(String),
    #[error(
        "unsupported AdmissionReview {api_version}/{kind}; expected {ADMISSION_API_VERSION}/AdmissionReview"
    )]
    Version { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// What was decided for one request, for logs, metrics and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not a CREATE of a pod or service: allowed untouched.
    Ignored,
    Injected,
    /// Skipped for this reason; the patch may still add annotations.
    Skipped(SkipReason),
    /// A Service, possibly annotated.
    Service,
    /// Denied because the webhook itself failed.
    Denied(String),
}

/// The outcome of one review: the response body and what was decided.
#[derive(Debug)]
pub struct Reviewed {
    pub body: Vec<u8>,
    pub decision: Decision,
    /// The resolved owner, when there is one.
    pub owner: Option<Owner>,
    pub namespace: String,
}

/// Handles `/inject` admission reviews.
pub struct Injector {
    cluster: Arc<dyn Cluster>,
    config: Arc<dyn ConfigSource>,
    control_plane_namespace: String,
    created_by: String,
}

// === impl Injector ===

impl Injector {
    /// What the injector looks up in the cluster (the policy validator asks it too).
    pub fn cluster(&self) -> &dyn Cluster {
        self.cluster.as_ref()
    }

    pub fn new(
        cluster: Arc<dyn Cluster>,
        config: Arc<dyn ConfigSource>,
        control_plane_namespace: String,
    ) -> Self {
        Self {
            cluster,
            config,
            control_plane_namespace,
            created_by: format!("oxlink/proxy-injector {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Answers one review body.
    pub async fn review(&self, body: &[u8]) -> Result<Reviewed, ReviewError> {
        let request = decode(body)?;
        let namespace = request.namespace.clone().unwrap_or_default();
        let (result, owner) = self.decide(&request).await;
        let (response, decision) = match result {
            Ok((ops, decision)) => (allow(&request.uid, &rooted(&request, ops)), decision),
            Err(message) => (
                deny(
                    &request.uid,
                    500,
                    format!(
                        "{}: {message}",
                        oxlink_crds::names::control_plane::PROXY_INJECTOR_SERVICE
                    ),
                ),
                Decision::Denied(message),
            ),
        };
        let body = encode(response)?;
        Ok(Reviewed {
            body,
            decision,
            owner,
            namespace,
        })
    }

    async fn decide(
        &self,
        request: &Request,
    ) -> (Result<(Vec<PatchOp>, Decision), String>, Option<Owner>) {
        let core = request.kind.group.is_empty();
        if request.operation != "CREATE" || !core {
            return (Ok((Vec::new(), Decision::Ignored)), None);
        }
        match request.kind.kind.as_str() {
            "Pod" => self.pod(request).await,
            "Service" => (self.service(request).await, None),
            _ => (Ok((Vec::new(), Decision::Ignored)), None),
        }
    }

    async fn service(&self, request: &Request) -> Result<(Vec<PatchOp>, Decision), String> {
        let object = request.object.as_ref().ok_or("the request has no object")?;
        let service: Service = serde_json::from_str(object.get())
            .map_err(|e| format!("the Service does not parse: {e}"))?;
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let (values, _) = self.config.load()?;
        let ns_annotations = self
            .cluster
            .namespace_annotations(namespace)
            .await
            .map_err(|e| format!("namespace {namespace}: {e}"))?;
        Ok((
            service_patch(&service, &ns_annotations, &values),
            Decision::Service,
        ))
    }

    async fn pod(
        &self,
        request: &Request,
    ) -> (Result<(Vec<PatchOp>, Decision), String>, Option<Owner>) {
        let Some(object) = &request.object else {
            return (Err("the request has no object".into()), None);
        };
        let pod: Pod = match serde_json::from_str(object.get()) {
            Ok(pod) => pod,
            Err(e) => return (Err(format!("the Pod does not parse: {e}")), None),
        };
        let namespace = request
            .namespace
            .clone()
            .or_else(|| pod.metadata.namespace.clone())
            .unwrap_or_default();
        let owner = match pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
        {
            Some(controller) => match self.cluster.owner(&namespace, controller).await {
                Ok(owner) => Some(owner),
                Err(e) => return (Err(format!("owner of the pod: {e}")), None),
            },
            None => None,
        };
        let result = self.inject_pod(pod, &namespace, owner.as_ref()).await;
        (result, owner)
    }

    async fn inject_pod(
        &self,
        pod: Pod,
        namespace: &str,
        owner: Option<&Owner>,
    ) -> Result<(Vec<PatchOp>, Decision), String> {
        let ns_annotations = self
            .cluster
            .namespace_annotations(namespace)
            .await
            .map_err(|e| format!("namespace {namespace}: {e}"))?;
        let (values, anchors) = self.config.load()?;
        let template = PodTemplateSpec {
            metadata: Some(pod.metadata),
            spec: pod.spec,
        };
        let ctx = InjectContext {
            values: &values,
            trust_anchors_pem: &anchors,
            control_plane_namespace: &self.control_plane_namespace,
            namespace,
            namespace_annotations: &ns_annotations,
            owner,
            created_by: &self.created_by,
            origin: Origin::Webhook,
        };
        let injection = inject_template(&template, &ctx);
        let before = serde_json::to_value(&template).map_err(|e| e.to_string())?;
        let ops = patch::diff(&before, &injection.template, "");
        let decision = match &injection.outcome {
            Ok(()) => Decision::Injected,
            Err(reason) => Decision::Skipped(reason.clone()),
        };
        for warning in &injection.warnings {
            tracing::warn!(%namespace, "{warning}");
        }
        Ok((ops, decision))
    }
}

/// The patch for the object as it was sent. The inject function works on the typed object,
/// whose `metadata` is there even when the object sent has none (or `null`); its
/// `add /metadata/...` operations would then not apply, so an empty `metadata` is added first.
fn rooted(request: &Request, mut ops: Vec<PatchOp>) -> Vec<PatchOp> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(default)]
        metadata: Option<serde::de::IgnoredAny>,
    }
    let under_metadata = |op: &PatchOp| {
        let (PatchOp::Add { path, .. } | PatchOp::Remove { path } | PatchOp::Replace { path, .. }) =
            op;
        path.starts_with("/metadata/")
    };
    let lacks_metadata = || {
        request
            .object
            .as_ref()
            .and_then(|o| serde_json::from_str::<Meta>(o.get()).ok())
            .is_some_and(|m| m.metadata.is_none())
    };
    if ops.iter().any(under_metadata) && lacks_metadata() {
        ops.insert(
            0,
            PatchOp::Add {
                path: "/metadata".into(),
                value: serde_json::Value::Object(Default::default()),
            },
        );
    }
    ops
}

pub(crate) fn allow(uid: &str, ops: &[PatchOp]) -> Response {
    let patch = (!ops.is_empty()).then(|| {
        let json = serde_json::to_vec(ops).unwrap_or_else(|_| b"[]".to_vec());
        base64(&json)
    });
    Response {
        uid: uid.to_string(),
        allowed: true,
        patch_type: patch.as_ref().map(|_| "JSONPatch"),
        patch,
        status: None,
    }
}

/// Standard base64 with padding, as `patch` and `caBundle` are sent.
pub(crate) use oxlink_crds::names::encoding::base64;

#[cfg(test)]
mod tests;
