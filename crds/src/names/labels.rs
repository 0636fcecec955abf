//! Label keys set on and read from workloads, namespaces and control-plane objects.

/// Set on injected pods and control-plane objects: the control plane's namespace.
pub const CONTROL_PLANE_NS: &str = "linkerd.io/control-plane-ns";
/// Set on control-plane pods: the component (`identity`, `destination`, `proxy-injector`).
pub const CONTROL_PLANE_COMPONENT: &str = "linkerd.io/control-plane-component";
/// Set on injected pods: the pod's own namespace.
pub const WORKLOAD_NS: &str = "linkerd.io/workload-ns";
/// Set on the control plane's namespace: `"true"`.
pub const IS_CONTROL_PLANE: &str = "linkerd.io/is-control-plane";
/// Namespace label that makes the admission webhooks skip the namespace (value `disabled`).
pub const ADMISSION_WEBHOOKS: &str = "config.linkerd.io/admission-webhooks";
/// Value of [`ADMISSION_WEBHOOKS`] that disables the webhooks for a namespace.
pub const ADMISSION_WEBHOOKS_DISABLED: &str = "disabled";
/// Set on extension namespaces and objects (`viz`, `multicluster`, `smi` …).
pub const EXTENSION: &str = "linkerd.io/extension";

/// Set on injected pods: the owning Deployment.
pub const PROXY_DEPLOYMENT: &str = "linkerd.io/proxy-deployment";
/// Set on injected pods: the owning ReplicaSet.
pub const PROXY_REPLICASET: &str = "linkerd.io/proxy-replicaset";
/// Set on injected pods: the owning StatefulSet.
pub const PROXY_STATEFULSET: &str = "linkerd.io/proxy-statefulset";
/// Set on injected pods: the owning DaemonSet.
pub const PROXY_DAEMONSET: &str = "linkerd.io/proxy-daemonset";
/// Set on injected pods: the owning Job.
pub const PROXY_JOB: &str = "linkerd.io/proxy-job";
/// Set on injected pods: the owning CronJob.
pub const PROXY_CRONJOB: &str = "linkerd.io/proxy-cronjob";
/// Set on injected pods: the owning ReplicationController.
pub const PROXY_REPLICATIONCONTROLLER: &str = "linkerd.io/proxy-replicationcontroller";

/// The `linkerd.io/proxy-<kind>` label for an owner kind, as the injector writes it.
pub fn proxy_owner(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => PROXY_DEPLOYMENT,
        "ReplicaSet" => PROXY_REPLICASET,
        "StatefulSet" => PROXY_STATEFULSET,
        "DaemonSet" => PROXY_DAEMONSET,
        "Job" => PROXY_JOB,
        "CronJob" => PROXY_CRONJOB,
        "ReplicationController" => PROXY_REPLICATIONCONTROLLER,
        _ => return None,
    })
}

// === Kubernetes' own labels that the control plane reads ===

/// Set by the Deployment controller on the ReplicaSets and pods it creates.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Names the Service an EndpointSlice belongs to.
pub const SLICE_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Names the zone a Node is in.
pub const TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// The label that exports a Service to other clusters (multicluster's default selector); as an
/// annotation it is a mistake that `check --proxy` reports.
pub const MULTICLUSTER_EXPORTED: &str = "mirror.linkerd.io/exported";

/// The metric label and name of a pod's owner, as the proxies' metrics and tap events name it
/// (`deployment`/`web`): its controller, with a ReplicaSet created by a Deployment reported as that
/// Deployment, a Job as `k8s_job`.
pub fn pod_owner(pod: &k8s_openapi::api::core::v1::Pod) -> Option<(String, String)> {
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH));
    if owner.kind == "ReplicaSet"
        && let Some(deployment) = hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}")))
    {
        return Some(("deployment".into(), deployment.into()));
    }
    let label = match owner.kind.as_str() {
        "Job" => "k8s_job".to_string(),
        kind => kind.to_lowercase(),
    };
    Some((label, owner.name.clone()))
}
