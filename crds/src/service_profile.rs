//! `ServiceProfile` (`linkerd.io`): per-service routes, timeouts, retries and traffic shifting.
//!
//! Served as `v1alpha2` (storage) and `v1alpha1`, with one schema.

use crate::schema;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Go duration such as `100ms`, `1.5s` or `1h2m`.
pub(crate) const DURATION_PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$";

/// Describes how to route, time out, retry and split requests to one service.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "linkerd.io",
    version = "v1alpha2",
    kind = "ServiceProfile",
    namespaced,
    shortname = "sp",
    derive = "PartialEq",
    doc = "Describes the routes of a service, their timeouts and retries, and traffic shifting."
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProfileSpec {
    /// Routes, matched in order; the first match names the request's route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,

    /// Limits retries to a share of the original requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,

    /// Sends traffic to these authorities instead, in proportion to their weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dst_overrides: Vec<WeightedDst>,

    /// Ports on which protocol detection is skipped (numbers or ranges such as `4000-4100`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opaque_ports: Vec<String>,
}

/// A named class of requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// The route's name, as it appears in metrics.
    pub name: String,

    /// Which requests belong to this route.
    pub condition: RequestMatch,

    /// How to classify responses; the first matching class wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_classes: Vec<ResponseClass>,

    /// Whether failed requests on this route may be retried.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_retryable: bool,

    /// How long a request may take, as a Go duration (`100ms`, `2s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
}

/// Conditions on a request; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMatch {
    /// The request path matches this regular expression (anchored at both ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,

    /// The request method, e.g. `GET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,

    /// Every one of these matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::nested_matches")]
    pub all: Vec<RequestMatch>,

    /// At least one of these matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::nested_matches")]
    pub any: Vec<RequestMatch>,

    /// This does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::nested_match")]
    pub not: Option<Box<RequestMatch>>,
}

/// A class of responses, e.g. the ones that count as failures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseClass {
    /// Which responses belong to this class.
    pub condition: ResponseMatch,

    /// Whether responses of this class are failures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_failure: bool,
}

/// Conditions on a response; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMatch {
    /// The status code is in this range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRange>,

    /// Every one of these matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::nested_matches")]
    pub all: Vec<ResponseMatch>,

    /// At least one of these matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::nested_matches")]
    pub any: Vec<ResponseMatch>,

    /// This does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::nested_match")]
    pub not: Option<Box<ResponseMatch>>,
}

/// An inclusive range of HTTP status codes; an unset bound is open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
    "message": "min must not be greater than max",
}]))]
pub struct StatusRange {
    /// Lowest status code in the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub min: Option<i32>,

    /// Highest status code in the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub max: Option<i32>,
}

/// How many retries may be sent, relative to original requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Retries allowed per original request, e.g. `0.2` for 20% extra load.
    #[schemars(range(min = 0.0))]
    pub retry_ratio: f32,

    /// Retries allowed per second regardless of the ratio.
    #[schemars(range(min = 0))]
    pub min_retries_per_second: i32,

    /// The window over which requests and retries are counted, as a Go duration.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub ttl: String,
}

/// An authority that receives a share of the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightedDst {
    /// The destination, e.g. `web-v2.ns.svc.cluster.local:80`.
    #[schemars(length(min = 1))]
    pub authority: String,

    /// Its share of the traffic relative to the other overrides.
    #[schemars(schema_with = "schema::weight")]
    pub weight: IntOrString,
}

/// The older version of the resource, served with the same schema.
pub(crate) const SERVED: &[crate::served::Served] = &[crate::served::Served::new("v1alpha1")];
