//! The custom resources oxlink serves and reads, and the names Linkerd users and proxies know.
//!
//! This crate owns every Kubernetes custom resource type of the mesh (ServiceProfile, the
//! `policy.linkerd.io` kinds, ExternalWorkload, TrafficSplit …) as Rust types from which the CRD
//! YAML in the `oxlink-crds` chart is generated, so the schema the API server enforces and the
//! types the controllers deserialize can never drift apart. It is also the single home of the
//! names that must match Linkerd's spelling exactly: annotation and label keys, proxy
//! environment variables, API groups and the control plane's object names. Other crates import
//! these constants instead of writing the strings again.
//!
//! [`install::crds`] lists every CustomResourceDefinition; [`install::manifest`] renders them
//! as the YAML that `oxlink install --crds` prints and the chart ships. [`parity`] compares
//! every served schema with Linkerd's, field by field.

pub mod duration;
pub mod gateway;
pub mod install;
pub mod names;
#[doc = include_str!("parity.md")]
pub mod parity {}
pub mod policy;
pub mod ports;
pub mod quantity;
mod schema;
mod served;
pub mod service_profile;
pub mod traffic_split;
pub mod workload;

pub use self::{
    service_profile::{ServiceProfile, ServiceProfileSpec},
    traffic_split::{TrafficSplit, TrafficSplitSpec},
    workload::{ExternalWorkload, ExternalWorkloadSpec},
};
