//! `ExternalWorkload`: a workload outside the cluster (a VM, a bare-metal host) in the mesh.
//!
//! `v1beta1` is the storage version. `v1alpha1` spelled `meshTLS` as `meshTls`, so it has its
//! own type in [`v1alpha1`] and holds at most one address. As in Linkerd, `v1beta1` has a
//! `status` subresource and `v1alpha1` does not.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workload outside the cluster enrolled in the mesh.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "workload.linkerd.io",
    version = "v1beta1",
    kind = "ExternalWorkload",
    namespaced,
    category = "external",
    status = "ExternalWorkloadStatus",
    derive = "PartialEq",
    doc = "A single workload outside the cluster that is enrolled in the mesh.",
    printcolumn(
        name = "Identity",
        type_ = "string",
        json_path = ".spec.meshTLS.identity"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalWorkloadSpec {
    /// The workload's mesh identity and TLS server name.
    #[serde(rename = "meshTLS")]
    pub mesh_tls: MeshTls,

    /// Ports the workload exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,

    /// Addresses at which the workload is reached: one IPv4 or IPv6 address, or one of each
    /// (dual stack).
    #[serde(default, rename = "workloadIPs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub workload_ips: Vec<WorkloadIp>,
}

/// The workload's TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshTls {
    /// The identity in the workload's certificate, which peers verify.
    #[schemars(length(min = 1, max = 253))]
    pub identity: String,

    /// The workload's DNS-style name, which it terminates TLS for (SNI).
    #[schemars(length(min = 1, max = 253))]
    pub server_name: String,
}

/// A port the workload exposes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortSpec {
    /// An IANA service name, unique among the workload's ports; Services refer to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// The port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// The transport protocol, `TCP` or `UDP`; unset means `TCP`.
    #[serde(default = "PortSpec::default_protocol")]
    pub protocol: String,
}

/// An address of the workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkloadIp {
    /// An IPv4 or IPv6 address.
    #[serde(default)]
    pub ip: String,
}

/// What the workload reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExternalWorkloadStatus {
    /// Conditions such as `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<WorkloadCondition>,
}

/// One condition of an external workload, as Linkerd spells it: only `type` and `status` are
/// required, and `lastProbeTime` says when the workload's health endpoint was last probed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadCondition {
    /// The condition's kind, in CamelCase or `foo.example.com/CamelCase`.
    #[serde(rename = "type")]
    #[schemars(length(max = 316), regex(pattern = CONDITION_TYPE_PATTERN))]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    #[schemars(schema_with = "crate::schema::condition_status")]
    pub status: String,

    /// When the workload's health endpoint was last probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,

    /// When the condition last changed from one status to another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// Why the condition last changed, as a CamelCase identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = CONDITION_REASON_PATTERN))]
    pub reason: Option<String>,

    /// A human-readable account of the change; may be empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub message: Option<String>,
}

/// A condition type: an optional DNS-subdomain prefix and a name.
const CONDITION_TYPE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";
/// A condition reason: a CamelCase identifier.
const CONDITION_REASON_PATTERN: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

// === impl PortSpec ===

impl PortSpec {
    /// What an unset `protocol` means, as in Linkerd's schema.
    pub const DEFAULT_PROTOCOL: &'static str = "TCP";

    fn default_protocol() -> String {
        Self::DEFAULT_PROTOCOL.to_string()
    }
}

/// The first version, which spelled `meshTLS` as `meshTls`.
pub mod v1alpha1 {
    use super::{ExternalWorkloadStatus, MeshTls, PortSpec, WorkloadIp};
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// A workload outside the cluster enrolled in the mesh (`v1alpha1`).
    #[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "workload.linkerd.io",
        version = "v1alpha1",
        kind = "ExternalWorkload",
        namespaced,
        category = "external",
        status = "ExternalWorkloadStatus",
        derive = "PartialEq",
        doc = "A single workload outside the cluster that is enrolled in the mesh.",
        printcolumn(
            name = "Identity",
            type_ = "string",
            json_path = ".spec.meshTls.identity"
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct ExternalWorkloadSpec {
        /// The workload's mesh identity and TLS server name.
        pub mesh_tls: MeshTls,

        /// Ports the workload exposes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ports: Vec<PortSpec>,

        /// Addresses at which the workload is reached (`v1alpha1` holds one).
        #[serde(default, rename = "workloadIPs", skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = 1))]
        pub workload_ips: Vec<WorkloadIp>,
    }
}
