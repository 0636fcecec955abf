//! `TrafficSplit` (`split.smi-spec.io`): the SMI way of shifting traffic between Services.
//!
//! Served as `v1alpha1` (storage) and `v1alpha2`, with one schema.

use crate::{schema, served::Served};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Splits the traffic addressed to an apex Service between backend Services.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "split.smi-spec.io",
    version = "v1alpha1",
    kind = "TrafficSplit",
    namespaced,
    shortname = "ts",
    derive = "PartialEq",
    doc = "Splits traffic addressed to an apex Service between backend Services.",
    printcolumn(
        name = "Service",
        type_ = "string",
        description = "The apex service of this split.",
        json_path = ".spec.service"
    )
)]
pub struct TrafficSplitSpec {
    /// The apex Service clients address.
    #[schemars(length(min = 1))]
    pub service: String,

    /// The Services that receive the traffic.
    #[schemars(length(min = 1))]
    pub backends: Vec<Backend>,
}

/// A Service and its share of the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Backend {
    /// The Service's name.
    #[schemars(length(min = 1))]
    pub service: String,

    /// Its share relative to the other backends: an integer or a quantity (`500m`).
    #[schemars(schema_with = "schema::weight")]
    pub weight: IntOrString,
}

/// The newer version, served with the same schema.
pub(crate) const SERVED: &[Served] = &[Served::new("v1alpha2")];
