//! The `workload.linkerd.io` resources: workloads outside the cluster that join the mesh.

pub mod external_workload;

pub use self::external_workload::{ExternalWorkload, ExternalWorkloadSpec, ExternalWorkloadStatus};
