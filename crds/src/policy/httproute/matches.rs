//! Request matchers of an HTTPRoute rule.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A header name (RFC 7230 token).
const HEADER_NAME_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$";

/// Conditions on a request; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,

    /// Request headers, all of which must match; each name once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub headers: Vec<HttpHeaderMatch>,

    /// Query parameters, all of which must match; each name once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub query_params: Vec<HttpQueryParamMatch>,

    /// The request method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
}

/// A condition on the request path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.value) || self.type == 'RegularExpression' || self.value.startsWith('/')",
    "message": "value must be an absolute path (start with '/')",
}]))]
pub struct HttpPathMatch {
    /// How `value` is compared; unset means `PathPrefix`.
    #[serde(rename = "type", default)]
    pub kind: PathMatchType,

    /// The path, prefix or regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
}

/// How a path is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PathMatchType {
    /// The whole path, exactly.
    Exact,
    /// Whole path segments from the start.
    #[default]
    PathPrefix,
    /// A regular expression over the whole path.
    RegularExpression,
}

/// A condition on one request header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HttpHeaderMatch {
    /// How `value` is compared; unset means `Exact`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ValueMatchType>,

    /// The header name, compared case-insensitively.
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub name: String,

    /// The value or regular expression.
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

/// A condition on one query parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HttpQueryParamMatch {
    /// How `value` is compared; unset means `Exact`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ValueMatchType>,

    /// The parameter name, compared exactly.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,

    /// The value or regular expression.
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
}

/// How a header or query parameter value is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ValueMatchType {
    /// Exactly.
    #[default]
    Exact,
    /// A regular expression over the whole value.
    RegularExpression,
}

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
#[allow(missing_docs)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}
