//! The parts of an HTTPRoute that inbound and outbound policies share: hostnames, matches,
//! filters and metadata.

use linkerd2_proxy_api::{
    http_route as pb,
    http_types::{self, HttpMethod as PbMethod, http_method::Registered},
    meta,
};
use oxlink_crds::policy::httproute::{
    FilterType, HeaderModifier, Hostname, HttpHeaderMatch, HttpMethod, HttpPathMatch,
    HttpRouteFilter, HttpRouteMatch, HttpRouteSpec, PathMatchType, PathModifierType,
    RedirectScheme, ValueMatchType,
};

/// A route filter the proxy can apply, before it is wrapped in the inbound or outbound
/// message.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Filter {
    RequestHeaders(pb::RequestHeaderModifier),
    ResponseHeaders(pb::ResponseHeaderModifier),
    Redirect(pb::RequestRedirect),
}

/// `Default(name)` metadata.
pub(super) fn default_meta(name: &str) -> meta::Metadata {
    meta::Metadata {
        kind: Some(meta::metadata::Kind::Default(name.to_string())),
    }
}

/// `Resource` metadata.
pub(in crate::index) fn resource_meta(
    group: &str,
    kind: &str,
    ns: &str,
    name: &str,
    port: u16,
) -> meta::Metadata {
    meta::Metadata {
        kind: Some(meta::metadata::Kind::Resource(meta::Resource {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: ns.to_string(),
            port: port.into(),
            ..Default::default()
        })),
    }
}

pub(super) use crate::index::profile::duration;

/// The route's hostnames: exact names, or suffixes for `*.example.com`.
pub(super) fn hosts(spec: &HttpRouteSpec) -> Vec<pb::HostMatch> {
    host_matches(&spec.hostnames)
}

/// Hostnames as host matches: exact names, or suffixes for `*.example.com`.
pub(super) fn host_matches(hostnames: &[Hostname]) -> Vec<pb::HostMatch> {
    hostnames
        .iter()
        .map(|host| {
            let m = match host.0.strip_prefix("*.") {
                Some(suffix) => pb::host_match::Match::Suffix(pb::host_match::Suffix {
                    reverse_labels: suffix.split('.').rev().map(str::to_string).collect(),
                }),
                None => pb::host_match::Match::Exact(host.0.clone()),
            };
            pb::HostMatch { r#match: Some(m) }
        })
        .collect()
}

/// A rule's matches; a rule without any matches every request (path prefix `/`).
pub(super) fn matches(list: &[HttpRouteMatch]) -> Vec<pb::HttpRouteMatch> {
    if list.is_empty() {
        return vec![prefix_match("/")];
    }
    list.iter().map(route_match).collect()
}

/// Matches every path under `prefix`.
pub(super) fn prefix_match(prefix: &str) -> pb::HttpRouteMatch {
    pb::HttpRouteMatch {
        path: Some(pb::PathMatch {
            kind: Some(pb::path_match::Kind::Prefix(prefix.to_string())),
        }),
        ..Default::default()
    }
}

/// Matches `GET` of exactly `path`.
pub(super) fn get_match(path: &str) -> pb::HttpRouteMatch {
    pb::HttpRouteMatch {
        path: Some(pb::PathMatch {
            kind: Some(pb::path_match::Kind::Exact(path.to_string())),
        }),
        method: Some(method(HttpMethod::Get)),
        ..Default::default()
    }
}

fn route_match(m: &HttpRouteMatch) -> pb::HttpRouteMatch {
    let path = m.path.as_ref().map(|HttpPathMatch { kind, value }| {
        let value = value.clone().unwrap_or_else(|| "/".into());
        pb::PathMatch {
            kind: Some(match kind {
                PathMatchType::Exact => pb::path_match::Kind::Exact(value),
                PathMatchType::PathPrefix => pb::path_match::Kind::Prefix(value),
                PathMatchType::RegularExpression => pb::path_match::Kind::Regex(value),
            }),
        }
    });
    let headers = header_matches(&m.headers);
    let query_params = m
        .query_params
        .iter()
        .map(|q| pb::QueryParamMatch {
            name: q.name.clone(),
            value: Some(match q.kind.unwrap_or_default() {
                ValueMatchType::Exact => pb::query_param_match::Value::Exact(q.value.clone()),
                ValueMatchType::RegularExpression => {
                    pb::query_param_match::Value::Regex(q.value.clone())
                }
            }),
        })
        .collect();
    pb::HttpRouteMatch {
        path,
        headers,
        query_params,
        method: m.method.map(method),
    }
}

/// Header conditions, all of which must hold (HTTP and gRPC routes spell them alike).
pub(super) fn header_matches(list: &[HttpHeaderMatch]) -> Vec<pb::HeaderMatch> {
    list.iter()
        .map(|h| pb::HeaderMatch {
            name: h.name.clone(),
            value: Some(match h.kind.unwrap_or_default() {
                ValueMatchType::Exact => {
                    pb::header_match::Value::Exact(h.value.clone().into_bytes())
                }
                ValueMatchType::RegularExpression => {
                    pb::header_match::Value::Regex(h.value.clone())
                }
            }),
        })
        .collect()
}

fn method(m: HttpMethod) -> PbMethod {
    let registered = match m {
        HttpMethod::Get => Registered::Get,
        HttpMethod::Head => Registered::Head,
        HttpMethod::Post => Registered::Post,
        HttpMethod::Put => Registered::Put,
        HttpMethod::Delete => Registered::Delete,
        HttpMethod::Connect => Registered::Connect,
        HttpMethod::Options => Registered::Options,
        HttpMethod::Trace => Registered::Trace,
        HttpMethod::Patch => Registered::Patch,
    };
    PbMethod {
        r#type: Some(http_types::http_method::Type::Registered(registered.into())),
    }
}

/// The filters of a rule or backend, each of the kind its `type` names (a filter without its
/// body is skipped).
pub(super) fn filters(list: &[HttpRouteFilter]) -> Vec<Filter> {
    list.iter()
        .filter_map(|f| match f.kind {
            FilterType::RequestHeaderModifier => {
                let (add, set, remove) = headers(f.request_header_modifier.as_ref()?);
                Some(Filter::RequestHeaders(pb::RequestHeaderModifier {
                    add,
                    set,
                    remove,
                }))
            }
            FilterType::ResponseHeaderModifier => {
                let (add, set, remove) = headers(f.response_header_modifier.as_ref()?);
                Some(Filter::ResponseHeaders(pb::ResponseHeaderModifier {
                    add,
                    set,
                    remove,
                }))
            }
            FilterType::RequestRedirect => {
                let r = f.request_redirect.as_ref()?;
                Some(Filter::Redirect(pb::RequestRedirect {
                    scheme: r.scheme.map(|s| {
                        http_types::Scheme::from(match s {
                            RedirectScheme::Http => "http",
                            RedirectScheme::Https => "https",
                        })
                    }),
                    host: r.hostname.clone().unwrap_or_default(),
                    path: r.path.as_ref().and_then(|p| {
                        let replace = match p.kind {
                            PathModifierType::ReplaceFullPath => {
                                pb::path_modifier::Replace::Full(p.replace_full_path.clone()?)
                            }
                            PathModifierType::ReplacePrefixMatch => {
                                pb::path_modifier::Replace::Prefix(p.replace_prefix_match.clone()?)
                            }
                        };
                        Some(pb::PathModifier {
                            replace: Some(replace),
                        })
                    }),
                    port: r
                        .port
                        .and_then(|p| u32::try_from(p).ok())
                        .unwrap_or_default(),
                    status: r
                        .status_code
                        .and_then(|s| u32::try_from(s).ok())
                        .unwrap_or(302),
                }))
            }
        })
        .collect()
}

pub(super) type HeaderEdits = (
    Option<http_types::Headers>,
    Option<http_types::Headers>,
    Vec<String>,
);

pub(super) fn headers(m: &HeaderModifier) -> HeaderEdits {
    let list = |headers: &[oxlink_crds::policy::httproute::HttpHeader]| {
        (!headers.is_empty()).then(|| http_types::Headers {
            headers: headers
                .iter()
                .map(|h| http_types::headers::Header {
                    name: h.name.clone(),
                    value: h.value.clone().into_bytes(),
                })
                .collect(),
        })
    };
    (list(&m.add), list(&m.set), m.remove.clone())
}
