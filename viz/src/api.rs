//! The metrics API's requests and answers, shared by its server (`oxlink-web`) and its clients
//! (the `oxlink viz` commands, the dashboard): what each request asks, how it travels as a query
//! string (`/api/stat?resource=deploy&namespace=todo&window=1m`), how it is validated (once,
//! here, with the CLI's messages), and the JSON it is answered with.

use crate::{Kind, Resource, ResourceError, Window, edges::Edge, promql, routes, stat};
use serde::{Deserialize, Serialize};

/// The paths of the metrics API.
pub const STAT_PATH: &str = "/api/stat";
pub const ROUTES_PATH: &str = "/api/routes";
pub const EDGES_PATH: &str = "/api/edges";
/// Whether the API reaches its Prometheus, and whether Prometheus scrapes any proxy.
pub const SELF_CHECK_PATH: &str = "/api/self-check";

/// The namespace the commands use without `-n`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The longest query string a request may carry: a few resource names and flags fit many
/// times over; more is refused before anything is parsed.
pub const MAX_QUERY_BYTES: usize = 4096;

/// A request the metrics API refuses, with the message the CLI prints.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> RequestError {
    RequestError::Invalid(message.into())
}

/// The parameters of a query string, each named at most once unless `repeated` allows it.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str, known: &[&str], repeated: &[&str]) -> Result<Self, RequestError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(invalid(format!(
                "the query string is {} bytes long; at most {MAX_QUERY_BYTES} are accepted",
                query.len()
            )));
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !known.contains(&k.as_str()) {
                return Err(invalid(format!(
                    "unknown parameter {k:?}; expected one of: {}",
                    known.join(", ")
                )));
            }
            if !repeated.contains(&k.as_str()) && pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(invalid(format!("parameter {k:?} is given more than once")));
            }
        }
        Ok(Self(pairs))
    }

    fn one(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, name: &str) -> Result<bool, RequestError> {
        match self.one(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(other) => Err(invalid(format!(
                "parameter {name:?} is true or false, not {other:?}"
            ))),
        }
    }

    fn window(&self) -> Result<Window, RequestError> {
        self.one("window").map_or(Ok(Window::default()), |w| {
            w.parse().map_err(RequestError::Invalid)
        })
    }

    fn namespace(&self) -> Result<String, RequestError> {
        let ns = self
            .one("namespace")
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        check_name("namespace", &ns)?;
        Ok(ns)
    }
}

/// A Kubernetes name as the API server accepts it (a DNS label or subdomain), so that a bad one
/// is refused here with its reason rather than by a query that finds nothing.
fn check_name(what: &str, name: &str) -> Result<(), RequestError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {what} {name:?}: a Kubernetes name is lower-case letters, digits, '-' and '.'"
        )))
    }
}

fn with_namespace(word: &str, namespace: Option<&str>) -> Result<Resource, RequestError> {
    let mut r = Resource::parse(word)?;
    if let Some(n) = &r.name {
        check_name(r.kind.name(), n)?;
    }
    if let Some(ns) = namespace {
        check_name("namespace", ns)?;
    }
    r.namespace = namespace.map(str::to_string);
    Ok(r)
}

/// `name=value&…`, form-encoded as query strings are (Prometheus' `query=` too).
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `resource=…` for each resource word, then the pairs that have a value.
fn encode(resources: &[String], pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for r in resources {
        s.append_pair("resource", r);
    }
    for (k, v) in pairs {
        if let Some(v) = v {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

// === impl StatRequest ===

/// `viz stat`: the target resources, where, and the flags that narrow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatRequest {
    /// TYPE [NAME…] or TYPE/NAME…, as on the command line.
    pub resources: Vec<String>,
    pub namespace: String,
    pub all_namespaces: bool,
    pub to: Option<String>,
    pub to_namespace: Option<String>,
    pub from: Option<String>,
    pub from_namespace: Option<String>,
    pub window: Window,
}

const STAT_PARAMS: &[&str] = &[
    "resource",
    "namespace",
    "all_namespaces",
    "to",
    "to_namespace",
    "from",
    "from_namespace",
    "window",
];

impl StatRequest {
    /// The target resources and their queries, or why the request is refused.
    pub fn queries(&self) -> Result<Vec<(Resource, promql::StatQueries)>, RequestError> {
        let targets = Resource::parse_args(&self.resources)?;
        if targets.iter().any(|t| t.kind != targets[0].kind) {
            return Err(invalid(
                "stats for multiple resource types are not supported: name them one type at a time",
            ));
        }
        for t in &targets {
            if let Some(n) = &t.name {
                check_name(t.kind.name(), n)?;
            }
        }
        check_name("namespace", &self.namespace)?;
        if self.to.is_some() && self.from.is_some() {
            return Err(invalid("--to and --from cannot be given together"));
        }
        let to = self
            .to
            .as_deref()
            .map(|t| with_namespace(t, self.to_namespace.as_deref()))
            .transpose()?;
        let from = self
            .from
            .as_deref()
            .map(|f| with_namespace(f, self.from_namespace.as_deref()))
            .transpose()?;
        if self.all_namespaces && targets.iter().any(|t| t.name.is_some()) {
            return Err(invalid(
                "stats for a resource cannot be retrieved by name across all namespaces",
            ));
        }
        let namespace = self.scope();
        targets
            .into_iter()
            .map(|target| {
                let q = promql::stat(&promql::StatQuery {
                    target: &target,
                    namespace,
                    to: to.as_ref(),
                    from: from.as_ref(),
                    window: &self.window,
                })?;
                Ok((target, q))
            })
            .collect()
    }

    /// The namespace the request looks in; `None` with `--all-namespaces`.
    pub fn scope(&self) -> Option<&str> {
        (!self.all_namespaces).then_some(self.namespace.as_str())
    }

    /// The request as a query string.
    pub fn to_query(&self) -> String {
        encode(
            &self.resources,
            &[
                ("namespace", Some(&self.namespace)),
                ("all_namespaces", self.all_namespaces.then_some("true")),
                ("to", self.to.as_deref()),
                ("to_namespace", self.to_namespace.as_deref()),
                ("from", self.from.as_deref()),
                ("from_namespace", self.from_namespace.as_deref()),
                ("window", Some(self.window.as_str())),
            ],
        )
    }

    /// The request a query string carries, validated.
    pub fn from_query(query: &str) -> Result<Self, RequestError> {
        let p = Params::parse(query, STAT_PARAMS, &["resource"])?;
        let r = Self {
            resources: p.all("resource"),
            namespace: p.namespace()?,
            all_namespaces: p.flag("all_namespaces")?,
            to: p.one("to"),
            to_namespace: p.one("to_namespace"),
            from: p.one("from"),
            from_namespace: p.one("from_namespace"),
            window: p.window()?,
        };
        if r.resources.is_empty() {
            return Err(invalid(
                "parameter \"resource\" is required: TYPE, TYPE/NAME",
            ));
        }
        r.queries()?;
        Ok(r)
    }
}

// === impl RoutesRequest ===

/// `viz routes`: one workload or pod, and maybe the `--to` resource whose routes it calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutesRequest {
    /// TYPE/NAME or TYPE NAME, as on the command line.
    pub resource: Vec<String>,
    pub namespace: String,
    pub to: Option<String>,
    pub to_namespace: Option<String>,
    pub window: Window,
}

const ROUTES_PARAMS: &[&str] = &["resource", "namespace", "to", "to_namespace", "window"];

impl RoutesRequest {
    /// The target and the `--to` resource, or why the request is refused.
    pub fn resources(&self) -> Result<(Resource, Option<Resource>), RequestError> {
        let targets = Resource::parse_args(&self.resource)?;
        let target = match targets.as_slice() {
            [t] if t.name.is_some() => t.clone(),
            _ => {
                return Err(invalid(
                    "please specify one resource, as TYPE/NAME or TYPE NAME",
                ));
            }
        };
        if !matches!(
            target.kind,
            Kind::Deployment
                | Kind::StatefulSet
                | Kind::DaemonSet
                | Kind::ReplicaSet
                | Kind::Job
                | Kind::Pod
        ) {
            return Err(invalid(format!(
                "routes are shown for a workload or a pod, not a {}",
                target.kind.name()
            )));
        }
        if let Some(n) = &target.name {
            check_name(target.kind.name(), n)?;
        }
        check_name("namespace", &self.namespace)?;
        let to = self
            .to
            .as_deref()
            .map(|t| with_namespace(t, self.to_namespace.as_deref()))
            .transpose()?;
        if let Some(t) = &to
            && t.name.is_none()
        {
            return Err(invalid("--to needs a named resource, as TYPE/NAME"));
        }
        Ok((target, to))
    }

    /// The queries, given the Services the `--to` resource stands for (in their namespace).
    pub fn queries(
        &self,
        target: &Resource,
        to_services: Option<(&[String], &str)>,
    ) -> Result<promql::RouteQueries, RequestError> {
        let to = to_services.map(|(services, namespace)| promql::RoutesTo {
            services,
            namespace,
        });
        Ok(promql::routes(target, &self.namespace, to, &self.window)?)
    }

    pub fn to_query(&self) -> String {
        encode(
            &self.resource,
            &[
                ("namespace", Some(&self.namespace)),
                ("to", self.to.as_deref()),
                ("to_namespace", self.to_namespace.as_deref()),
                ("window", Some(self.window.as_str())),
            ],
        )
    }

    pub fn from_query(query: &str) -> Result<Self, RequestError> {
        let p = Params::parse(query, ROUTES_PARAMS, &["resource"])?;
        let r = Self {
            resource: p.all("resource"),
            namespace: p.namespace()?,
            to: p.one("to"),
            to_namespace: p.one("to_namespace"),
            window: p.window()?,
        };
        r.resources()?;
        Ok(r)
    }
}

// === impl EdgesRequest ===

/// `viz edges`: a resource type, in a namespace or all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgesRequest {
    /// The resource type, as on the command line.
    pub kind: String,
    pub namespace: String,
    pub all_namespaces: bool,
}

const EDGES_PARAMS: &[&str] = &["resource", "namespace", "all_namespaces"];

impl EdgesRequest {
    pub fn queries(&self) -> Result<(Kind, promql::EdgeQueries), RequestError> {
        let r = Resource::parse(&self.kind)?;
        if r.name.is_some() {
            return Err(invalid(format!(
                "edges are shown for a resource type, not one resource: try `{}`",
                r.kind.name()
            )));
        }
        check_name("namespace", &self.namespace)?;
        let namespace = (!self.all_namespaces).then_some(self.namespace.as_str());
        Ok((r.kind, promql::edges(r.kind, namespace)?))
    }

    pub fn to_query(&self) -> String {
        encode(
            std::slice::from_ref(&self.kind),
            &[
                ("namespace", Some(&self.namespace)),
                ("all_namespaces", self.all_namespaces.then_some("true")),
            ],
        )
    }

    pub fn from_query(query: &str) -> Result<Self, RequestError> {
        let p = Params::parse(query, EDGES_PARAMS, &[])?;
        let r = Self {
            kind: p
                .one("resource")
                .ok_or_else(|| invalid("parameter \"resource\" is required: a resource type"))?,
            namespace: p.namespace()?,
            all_namespaces: p.flag("all_namespaces")?,
        };
        r.queries()?;
        Ok(r)
    }
}

// === answers ===

/// The answer to a stat request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatResponse {
    pub rows: Vec<stat::Row>,
}

/// The answer to a routes request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutesResponse {
    pub rows: Vec<routes::Row>,
}

/// The answer to an edges request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgesResponse {
    pub edges: Vec<Edge>,
}

/// The answer to a self-check: how many proxies Prometheus scrapes (`sum(up{job="linkerd-proxy"})`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelfCheckResponse {
    pub prometheus_url: String,
    pub proxies: f64,
}

#[cfg(test)]
mod tests;
