//! The cluster-level checks: the Kubernetes API and version, `--pre` and `--crds`, and the
//! helpers every category shares.

use super::report::{Category, Outcome};
use k8s_openapi::{
    api::{
        authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        },
        core::v1::{ConfigMap, Namespace, Node},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Api, Client, api::PostParams};
use std::time::{Duration, SystemTime};

/// Kubernetes releases older than this lack the CEL functions our CRD schemas use.
pub(crate) const MIN_KUBERNETES: (u32, u32) = (1, 31);
/// Linkerd's tolerated clock skew between this machine and the nodes.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// What the API server said, without the wrapping: `configmaps "x" not found`.
pub(crate) fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// `Ok(())`, or Linkerd's `The "ns" namespace does not exist`.
pub(crate) async fn namespace_exists(client: &Client, ns: &str) -> Result<(), String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(ns).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("The \"{ns}\" namespace does not exist")),
        Err(e) => Err(message(&e)),
    }
}

/// Lists every `K` in `ns` (all namespaces when `None`) matching `selector`.
pub(crate) async fn list<K>(
    client: &Client,
    ns: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<K>, String>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut params = kube::api::ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    if let Some(ns) = ns {
        params = params.fields(&format!("metadata.namespace={ns}"));
    }
    api.list(&params)
        .await
        .map(|l| l.items)
        .map_err(|e| message(&e))
}

pub(crate) async fn kubernetes_version(client: &Client) -> Category {
    let result = match client.apiserver_version().await {
        Ok(info) => {
            let minor = info.minor.trim_end_matches('+').parse::<u32>().unwrap_or(0);
            let major = info.major.parse::<u32>().unwrap_or(0);
            if (major, minor) >= MIN_KUBERNETES {
                Ok(())
            } else {
                Err(format!(
                    "Kubernetes is on version [{}.{}], but version [{}.{}] or more recent is required",
                    info.major, info.minor, MIN_KUBERNETES.0, MIN_KUBERNETES.1
                ))
            }
        }
        Err(e) => Err(message(&e)),
    };
    Category {
        name: "kubernetes-version",
        checks: vec![Outcome::new(
            "is running the minimum Kubernetes API version",
            "k8s-version",
            result,
        )],
    }
}

pub(crate) async fn pre_kubernetes_setup(client: &Client, ns: &str) -> Category {
    let mut checks = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let absent = match namespaces.get_opt(ns).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(format!("The \"{ns}\" namespace already exists")),
        Err(e) => Err(message(&e)),
    };
    checks.push(Outcome::new(
        "control plane namespace does not already exist",
        "pre-ns",
        absent,
    ));

    let can =
        |verb: &'static str, group: &'static str, resource: &'static str, namespaced: bool| {
            access(client, verb, group, resource, namespaced.then_some(ns))
        };
    let cluster_scoped = async {
        for (group, resource) in [
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
        ] {
            can("create", group, resource, false).await?;
        }
        Ok(())
    };
    checks.push(Outcome::new(
        "can create non-namespaced resources",
        "pre-k8s-cluster-k8s",
        cluster_scoped.await,
    ));
    for (description, group, resource) in [
        ("can create ServiceAccounts", "", "serviceaccounts"),
        ("can create Services", "", "services"),
        ("can create Deployments", "apps", "deployments"),
        ("can create CronJobs", "batch", "cronjobs"),
        ("can create ConfigMaps", "", "configmaps"),
        ("can create Secrets", "", "secrets"),
    ] {
        checks.push(Outcome::new(
            description,
            "pre-k8s",
            can("create", group, resource, true).await,
        ));
    }
    checks.push(Outcome::new(
        "can read Secrets",
        "pre-k8s",
        can("get", "", "secrets", true).await,
    ));
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    checks.push(Outcome::new(
        "can read extension-apiserver-authentication configmap",
        "pre-k8s",
        configmaps
            .get("extension-apiserver-authentication")
            .await
            .map(drop)
            .map_err(|e| message(&e)),
    ));
    checks.push(
        Outcome::new(
            "no clock skew detected",
            "pre-k8s-clock-skew",
            clock_skew(client).await,
        )
        .warn_only(),
    );
    Category {
        name: "pre-kubernetes-setup",
        checks,
    }
}

/// Asks the API server whether we may `verb` the resource, in `ns` or cluster-wide.
async fn access(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
) -> Result<(), String> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: ns.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let status = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| message(&e))?
        .status
        .ok_or("the API server returned no review status")?;
    if status.allowed {
        Ok(())
    } else {
        let scope = ns.map_or("cluster-wide".to_string(), |ns| {
            format!("in namespace {ns}")
        });
        Err(format!(
            "missing permission to {verb} {resource}{} {scope}{}",
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            },
            status.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ))
    }
}

async fn clock_skew(client: &Client) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = SystemTime::now();
    for node in nodes
        .list(&Default::default())
        .await
        .map_err(|e| message(&e))?
    {
        let heartbeat = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_heartbeat_time);
        if let Some(t) = heartbeat {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(t.0.as_second().max(0) as u64);
            let skew = now.duration_since(t).unwrap_or_else(|e| e.duration());
            // Heartbeats are at most a few minutes old; more than that plus the tolerance is skew.
            if t > now + MAX_CLOCK_SKEW {
                return Err(format!(
                    "node {} reports a time {}s ahead of this machine",
                    node.metadata.name.unwrap_or_default(),
                    skew.as_secs()
                ));
            }
        }
    }
    Ok(())
}

pub(crate) async fn control_plane_crds(client: &Client) -> Category {
    Category {
        name: "linkerd-crd",
        checks: vec![
            Outcome::new(
                "control plane CustomResourceDefinitions exist",
                "l5d-existence-crd",
                crds_established(client).await,
            )
            .fatal(),
        ],
    }
}

pub(crate) async fn crds_established(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = Vec::new();
    for crd in oxlink_crds::install::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        let established = api
            .get_opt(&name)
            .await
            .map_err(|e| message(&e))?
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if !established {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing or not established: {}",
            missing.join(", ")
        ))
    }
}

/// An object's name, empty when unset.
pub(crate) fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}
