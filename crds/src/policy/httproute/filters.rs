//! Filters of an HTTPRoute rule or backend.

use crate::policy::SUBDOMAIN_PATTERN;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A processing step for matched requests; `type` names which field holds its settings (the
/// settings of other types are ignored, as Linkerd does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'RequestHeaderModifier' || has(self.requestHeaderModifier)",
        "message": "requestHeaderModifier must be set when type is RequestHeaderModifier",
    },
    {
        "rule": "self.type != 'ResponseHeaderModifier' || has(self.responseHeaderModifier)",
        "message": "responseHeaderModifier must be set when type is ResponseHeaderModifier",
    },
    {
        "rule": "self.type != 'RequestRedirect' || has(self.requestRedirect)",
        "message": "requestRedirect must be set when type is RequestRedirect",
    },
]))]
pub struct HttpRouteFilter {
    /// Which filter this is.
    #[serde(rename = "type")]
    pub kind: FilterType,

    /// Settings of a `RequestHeaderModifier` filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,

    /// Settings of a `ResponseHeaderModifier` filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,

    /// Settings of a `RequestRedirect` filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
}

/// The filters the mesh implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FilterType {
    /// Changes request headers.
    RequestHeaderModifier,
    /// Changes response headers.
    ResponseHeaderModifier,
    /// Answers with a redirect.
    RequestRedirect,
}

/// Header changes, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeaderModifier {
    /// Headers to overwrite, each name once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub set: Vec<HttpHeader>,

    /// Headers to append to, each name once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub add: Vec<HttpHeader>,

    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HttpHeader {
    /// The header name.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$")
    )]
    pub name: String,

    /// The header value.
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

/// A redirect response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`; unset keeps the request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<RedirectScheme>,

    /// The host to redirect to; unset keeps the request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SUBDOMAIN_PATTERN))]
    pub hostname: Option<String>,

    /// How to rewrite the path; unset keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,

    /// The port to redirect to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// `301` or `302` (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [301, 302]))]
    pub status_code: Option<i32>,
}

/// A redirect's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum RedirectScheme {
    Http,
    Https,
}

/// A path rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'ReplaceFullPath' || has(self.replaceFullPath)",
        "message": "replaceFullPath must be set when type is ReplaceFullPath",
    },
    {
        "rule": "self.type != 'ReplacePrefixMatch' || has(self.replacePrefixMatch)",
        "message": "replacePrefixMatch must be set when type is ReplacePrefixMatch",
    },
]))]
pub struct HttpPathModifier {
    /// Which rewrite.
    #[serde(rename = "type")]
    pub kind: PathModifierType,

    /// The new path.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub replace_full_path: Option<String>,

    /// What replaces the matched prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub replace_prefix_match: Option<String>,
}

/// A path rewrite's kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PathModifierType {
    /// Replace the whole path.
    #[default]
    ReplaceFullPath,
    /// Replace the prefix a `PathPrefix` match matched.
    ReplacePrefixMatch,
}
