//! `ExternalWorkload`: a workload outside the cluster (a VM, a bare-metal host) in the mesh.
//!
//! `v1beta1` is the storage version. `v1alpha1` spelled `meshTLS` as `meshTls`, so it has its
//! own type in [`v1alpha1`]. As in Linkerd, `status` is part of the main resource, not a
//! subresource: the workload (or its agent) writes it with the rest of the object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
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

    /// Addresses at which the workload is reached (one, until IPv6 is supported).
    #[serde(default, rename = "workloadIPs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1))]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortSpec {
    /// An IANA service name, unique among the workload's ports; Services refer to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub name: Option<String>,

    /// The port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// `TCP` or `UDP`; unset means `TCP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<PortProtocol>,
}

/// A port's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[allow(clippy::upper_case_acronyms, missing_docs)]
pub enum PortProtocol {
    TCP,
    UDP,
}

/// An address of the workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkloadIp {
    /// An IPv4 or IPv6 address.
    #[schemars(
        length(max = 64),
        extend("x-kubernetes-validations" = [{"rule": "isIP(self)", "message": "must be an IP address"}])
    )]
    pub ip: String,
}

/// What the workload reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExternalWorkloadStatus {
    /// Conditions such as `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
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

        /// Addresses at which the workload is reached (one, until IPv6 is supported).
        #[serde(default, rename = "workloadIPs", skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = 1))]
        pub workload_ips: Vec<WorkloadIp>,
    }
}
