//! `linkerd-existence` and `linkerd-config`: the control plane's objects are there, and its
//! pods are running.
//!
//! Each check is a pure function of the objects it judges (tested in `tests.rs`); the async
//! functions only fetch them.

use super::{
    checks::{crds_established, list, message, name_of, namespace_exists},
    cidr::Networks,
    report::{Category, Outcome},
};
use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{ConfigMap, Namespace, Node, Pod, Service, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{Api, Client, Resource};
use oxlink_crds::names::{control_plane as cp, labels};
use oxlink_inject::Values;

/// The control-plane Deployments, in the order Linkerd reports them.
pub(crate) const COMPONENTS: [&str; 3] = [
    cp::DESTINATION_DEPLOYMENT,
    cp::IDENTITY_DEPLOYMENT,
    cp::PROXY_INJECTOR_DEPLOYMENT,
];

/// The ServiceAccounts `linkerd check` expects (the heartbeat's is optional; oxlink has none).
pub(crate) const SERVICE_ACCOUNTS: [&str; 3] = [
    cp::DESTINATION_SERVICE_ACCOUNT,
    cp::IDENTITY_SERVICE_ACCOUNT,
    cp::PROXY_INJECTOR_SERVICE_ACCOUNT,
];

/// The Services proxies and the API server reach the control plane through.
pub(crate) const SERVICES: [&str; 6] = [
    cp::IDENTITY_SERVICE,
    cp::IDENTITY_HEADLESS_SERVICE,
    cp::DESTINATION_SERVICE,
    cp::DESTINATION_HEADLESS_SERVICE,
    cp::POLICY_SERVICE,
    cp::PROXY_INJECTOR_SERVICE,
];

/// The ClusterRoles and ClusterRoleBindings `linkerd check` expects: `linkerd-<ns>-identity`
/// and `linkerd-<ns>-proxy-injector`.
pub(crate) fn rbac_names(ns: &str) -> Vec<String> {
    ["identity", "proxy-injector"]
        .iter()
        .map(|component| format!("linkerd-{ns}-{component}"))
        .collect()
}

// === linkerd-existence ===

pub(crate) async fn existence(client: &Client, ns: &str) -> Category {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let config = configmaps
        .get(cp::CONFIG_CONFIGMAP)
        .await
        .map_err(|e| message(&e));
    let values = config.as_ref().ok().map(config_values);
    let services = list::<Service>(client, Some(ns), None)
        .await
        .and_then(|found| missing("Services", &found, SERVICES));
    let replica_sets = list::<ReplicaSet>(client, Some(ns), None)
        .await
        .and_then(|sets| replica_set_failures(&sets));
    let pods = list::<Pod>(client, Some(ns), None).await;
    let unschedulable = pods.clone().and_then(|pods| unschedulable_pods(&pods));
    let ready = list::<Deployment>(client, Some(ns), None)
        .await
        .and_then(|deployments| {
            let pods = pods.as_ref().map_err(Clone::clone)?;
            control_plane_pods_ready(&deployments, pods)
        });
    let mut checks = vec![
        Outcome::new(
            "'linkerd-config' config map exists",
            "l5d-existence-linkerd-config",
            config.as_ref().map(drop).map_err(Clone::clone),
        )
        .fatal(),
        Outcome::new(
            "control plane Services exist",
            "l5d-api-control-ready",
            services,
        )
        .fatal(),
        Outcome::new(
            "control plane replica sets are ready",
            "l5d-existence-replicasets",
            replica_sets,
        )
        .fatal(),
        Outcome::new(
            "no unschedulable pods",
            "l5d-existence-unschedulable-pods",
            unschedulable,
        )
        .warn_only(),
        Outcome::new(
            "control plane pods are ready",
            "l5d-api-control-ready",
            ready,
        )
        .fatal(),
    ];
    checks.extend(cluster_networks(client, values).await);
    Category::new("linkerd-existence", checks)
}

/// The values in `linkerd-config`, or why they do not parse.
pub(crate) fn config_values(config: &ConfigMap) -> Result<Values, String> {
    let text = config
        .data
        .as_ref()
        .and_then(|d| d.get(cp::CONFIG_VALUES_KEY))
        .map(String::as_str)
        .unwrap_or_default();
    Values::from_yaml(text).map_err(|e| format!("{}: {e}", cp::CONFIG_CONFIGMAP))
}

/// Linkerd's `missing <Kind>: a, b` for the `expected` names that are not among `found`.
pub(crate) fn missing<K: Resource>(
    kind: &str,
    found: &[K],
    expected: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<(), String> {
    let mut absent: Vec<String> = expected
        .into_iter()
        .filter(|name| {
            !found
                .iter()
                .any(|k| k.meta().name.as_deref() == Some(name.as_ref()))
        })
        .map(|name| name.as_ref().to_string())
        .collect();
    absent.sort();
    if absent.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {kind}: {}", absent.join(", ")))
    }
}

/// ReplicaSets that report a `ReplicaFailure`, as `<reason>: <message>` lines.
pub(crate) fn replica_set_failures(sets: &[ReplicaSet]) -> Result<(), String> {
    let failures: Vec<String> = sets
        .iter()
        .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
        .filter(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n   "))
    }
}

/// The first pod the scheduler could not place, as `<pod>: <message>`.
pub(crate) fn unschedulable_pods(pods: &[Pod]) -> Result<(), String> {
    for pod in pods {
        for c in pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
        {
            if c.reason.as_deref() == Some("Unschedulable") {
                return Err(format!(
                    "{}: {}",
                    name_of(&pod.metadata),
                    c.message.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

/// Every control-plane Deployment exists and has a running pod whose containers are all
/// ready; otherwise Linkerd's `No running pods for "linkerd-x"` or
/// `pod/<pod> container <c> is not ready`.
pub(crate) fn control_plane_pods_ready(
    deployments: &[Deployment],
    pods: &[Pod],
) -> Result<(), String> {
    for component in COMPONENTS {
        let no_pods = || format!("No running pods for \"{component}\"");
        if !deployments
            .iter()
            .any(|d| d.metadata.name.as_deref() == Some(component))
        {
            return Err(no_pods());
        }
        let running: Vec<&Pod> = pods
            .iter()
            .filter(|p| is_pod_of(p, component) && is_running(p))
            .collect();
        let mut last = None;
        let ready = running.iter().any(|pod| match not_ready(pod) {
            None => true,
            Some(what) => {
                last = Some(format!(
                    "pod/{} {what} is not ready",
                    name_of(&pod.metadata)
                ));
                false
            }
        });
        if !ready {
            return Err(last.unwrap_or_else(no_pods));
        }
    }
    Ok(())
}

/// Whether `pod` was made by the Deployment `name`: `<name>-<replicaset hash>-<suffix>`.
fn is_pod_of(pod: &Pod, name: &str) -> bool {
    name_of(&pod.metadata)
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.split('-').count() == 2)
}

/// Running and not being deleted.
pub(crate) fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// What of the pod is not ready (`container x`), or `None` when all of it is.
fn not_ready(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if let Some(c) = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| !c.ready)
    {
        return Some(format!("container {}", c.name));
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    (!ready).then(|| "condition Ready".to_string())
}

/// `cluster networks contains all node podCIDRs / pods / services`: every address the
/// proxies must treat as in-cluster lies in the `clusterNetworks` of `linkerd-config`.
async fn cluster_networks(client: &Client, values: Option<Result<Values, String>>) -> Vec<Outcome> {
    const CIDRS: &str = "cluster networks contains all node podCIDRs";
    const PODS: &str = "cluster networks contains all pods";
    const SERVICES: &str = "cluster networks contains all services";
    let networks = match values {
        None => return vec![],
        Some(values) => values.and_then(|v| Networks::parse(&v.cluster_networks)),
    };
    let networks = match networks {
        Ok(networks) => networks,
        Err(e) => return vec![Outcome::new(CIDRS, "l5d-cluster-networks-cidr", Err(e))],
    };
    let cidrs = match list::<Node>(client, None, None).await {
        Ok(nodes) => match networks.uncovered_pod_cidrs(&nodes) {
            Some(result) => Outcome::new(CIDRS, "l5d-cluster-networks-cidr", result),
            None => Outcome::skipped(
                CIDRS,
                "l5d-cluster-networks-cidr",
                "no node exposes a podCIDR",
            ),
        },
        Err(e) => Outcome::new(CIDRS, "l5d-cluster-networks-cidr", Err(e)),
    };
    let pods = list::<Pod>(client, None, None)
        .await
        .and_then(|pods| networks.uncovered_pods(&pods));
    let services = list::<Service>(client, None, None)
        .await
        .and_then(|services| networks.uncovered_services(&services));
    vec![
        cidrs,
        Outcome::new(PODS, "l5d-cluster-networks-pods", pods),
        Outcome::new(SERVICES, "l5d-cluster-networks-pods", services),
    ]
}

// === linkerd-config ===

pub(crate) async fn config(client: &Client, ns: &str) -> Category {
    let selector = Some(labels::CONTROL_PLANE_NS);
    let rbac = rbac_names(ns);
    let checks = vec![
        Outcome::new(
            "control plane Namespace exists",
            "l5d-existence-ns",
            namespace_exists(client, ns).await,
        )
        .fatal(),
        Outcome::new(
            "control plane ClusterRoles exist",
            "l5d-existence-cr",
            list::<ClusterRole>(client, None, selector)
                .await
                .and_then(|found| missing("ClusterRoles", &found, &rbac)),
        )
        .fatal(),
        Outcome::new(
            "control plane ClusterRoleBindings exist",
            "l5d-existence-crb",
            list::<ClusterRoleBinding>(client, None, selector)
                .await
                .and_then(|found| missing("ClusterRoleBindings", &found, &rbac)),
        )
        .fatal(),
        Outcome::new(
            "control plane ServiceAccounts exist",
            "l5d-existence-sa",
            list::<ServiceAccount>(client, Some(ns), selector)
                .await
                .and_then(|found| missing("ServiceAccounts", &found, SERVICE_ACCOUNTS)),
        )
        .fatal(),
        Outcome::new(
            "control plane CustomResourceDefinitions exist",
            "l5d-existence-crd",
            crds_established(client).await,
        )
        .fatal(),
        Outcome::new(
            "control plane MutatingWebhookConfigurations exist",
            "l5d-existence-mwc",
            list::<MutatingWebhookConfiguration>(client, None, selector)
                .await
                .and_then(|found| {
                    missing(
                        "MutatingWebhookConfigurations",
                        &found,
                        [cp::PROXY_INJECTOR_WEBHOOK_CONFIG],
                    )
                }),
        )
        .fatal(),
        Outcome::new(
            "control plane ValidatingWebhookConfigurations exist",
            "l5d-existence-vwc",
            list::<ValidatingWebhookConfiguration>(client, None, selector)
                .await
                .and_then(|found| {
                    missing(
                        "ValidatingWebhookConfigurations",
                        &found,
                        [cp::SP_VALIDATOR_WEBHOOK_CONFIG],
                    )
                }),
        )
        .fatal(),
    ];
    Category::new("linkerd-config", checks)
}

// === linkerd-ha-checks ===

const NOT_HA: &str = "not run for non HA installs";

/// Linkerd's HA checks, which apply when the injector's webhook fails closed (`Fail`), as the
/// HA values make it.
pub(crate) async fn ha(client: &Client, ns: &str) -> Category {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let policy = api
        .get(cp::PROXY_INJECTOR_WEBHOOK_CONFIG)
        .await
        .map_err(|e| message(&e))
        .map(|c| {
            c.webhooks
                .into_iter()
                .flatten()
                .next()
                .and_then(|w| w.failure_policy)
        });
    let policy = match policy {
        Ok(policy) => policy,
        Err(e) => {
            return Category::new(
                "linkerd-ha-checks",
                vec![Outcome::new(INJECTION_DISABLED.0, INJECTION_DISABLED.1, Err(e)).warn_only()],
            );
        }
    };
    let ha = policy.as_deref() == Some("Fail");
    let (kube_system, deployments) = if ha {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        (
            namespaces.get("kube-system").await.map_err(|e| message(&e)),
            list::<Deployment>(client, Some(ns), None).await,
        )
    } else {
        (Ok(Namespace::default()), Ok(vec![]))
    };
    Category::new("linkerd-ha-checks", ha_checks(ha, kube_system, deployments))
}

const INJECTION_DISABLED: (&str, &str) = (
    "pod injection disabled on kube-system",
    "l5d-injection-disabled",
);
const REPLICAS: (&str, &str) = (
    "multiple replicas of control plane pods",
    "l5d-control-plane-replicas",
);

/// The HA checks, given whether the install is HA, `kube-system` and the control-plane
/// Deployments.
pub(crate) fn ha_checks(
    ha: bool,
    kube_system: Result<Namespace, String>,
    deployments: Result<Vec<Deployment>, String>,
) -> Vec<Outcome> {
    if !ha {
        return vec![
            Outcome::skipped(INJECTION_DISABLED.0, INJECTION_DISABLED.1, NOT_HA),
            Outcome::skipped(REPLICAS.0, REPLICAS.1, NOT_HA),
        ];
    }
    let disabled = kube_system.and_then(|ns| {
        let value = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::ADMISSION_WEBHOOKS));
        if value.map(String::as_str) == Some(labels::ADMISSION_WEBHOOKS_DISABLED) {
            Ok(())
        } else {
            Err(format!(
                "kube-system namespace needs to have the label {}: {} if injector webhook failure policy is Fail",
                labels::ADMISSION_WEBHOOKS,
                labels::ADMISSION_WEBHOOKS_DISABLED
            ))
        }
    });
    let replicas = deployments.and_then(|deployments| {
        let faulty: Vec<&str> = COMPONENTS
            .into_iter()
            .filter(|name| {
                deployments
                    .iter()
                    .find(|d| d.metadata.name.as_deref() == Some(*name))
                    .and_then(|d| d.status.as_ref()?.available_replicas)
                    .unwrap_or(0)
                    <= 1
            })
            .collect();
        if faulty.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "not enough replicas available for [{}]",
                faulty.join(" ")
            ))
        }
    });
    vec![
        Outcome::new(INJECTION_DISABLED.0, INJECTION_DISABLED.1, disabled).warn_only(),
        Outcome::new(REPLICAS.0, REPLICAS.1, replicas).warn_only(),
    ]
}
