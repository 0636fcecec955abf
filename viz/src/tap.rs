//! `viz tap`: what a client asks the tap server for, the events it streams back (one JSON object
//! a line, in the shape Linkerd's `linkerd viz tap -o json` prints), and Linkerd's one-line
//! rendering of each event (`req id=6:0 proxy=in  src=… dst=… tls=true :method=POST …`).

use crate::{Kind, Resource, ResourceError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Linkerd's default `--max-rps`.
pub const DEFAULT_MAX_RPS: f64 = 100.0;

/// The query-string keys of a tap request, as the CLI sends them and the server reads them.
const KEYS: &[&str] = &[
    "resource",
    "namespace",
    "to",
    "toNamespace",
    "path",
    "method",
    "authority",
    "scheme",
    "maxRps",
];

/// What a client asks to see: the resource to tap and Linkerd's filters.
#[derive(Clone, Debug, PartialEq)]
pub struct TapRequest {
    /// The resource whose pods are tapped (`deploy/web`, `ns/todo`, `po/web-1`, `svc/web`).
    pub resource: Resource,
    /// Its namespace (`-n`; a namespace resource names itself).
    pub namespace: String,
    /// Only requests to this resource (`--to`), in `to_namespace`.
    pub to: Option<Resource>,
    pub to_namespace: String,
    /// Only paths starting with this (`--path`).
    pub path: Option<String>,
    /// Only this HTTP method (`--method`).
    pub method: Option<String>,
    /// Only this authority (`--authority`).
    pub authority: Option<String>,
    /// Only this scheme (`--scheme`: http or https).
    pub scheme: Option<String>,
    /// New requests shown per second, over all tapped pods (`--max-rps`).
    pub max_rps: f64,
}

/// A request the tap server cannot serve, in words for the user.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TapRequestError {
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error("a resource name is required to tap an authority")]
    Authority,
    #[error("unknown parameter {0:?}")]
    UnknownKey(String),
    #[error("parameter {0:?} is given more than once")]
    Repeated(String),
    #[error("missing parameter {0:?}")]
    Missing(&'static str),
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl TapRequest {
    /// A request with Linkerd's defaults for everything but the resource.
    pub fn new(resource: Resource, namespace: &str) -> Self {
        Self {
            resource,
            namespace: namespace.to_string(),
            to: None,
            to_namespace: namespace.to_string(),
            path: None,
            method: None,
            authority: None,
            scheme: None,
            max_rps: DEFAULT_MAX_RPS,
        }
    }

    /// Checks what the user gave before anything is sent: a precise error for each mistake.
    pub fn validate(&self, max_rps_limit: f64) -> Result<(), TapRequestError> {
        let invalid = |key, reason: String| Err(TapRequestError::Invalid { key, reason });
        if self.resource.kind == Kind::Authority
            || self.to.as_ref().is_some_and(|t| t.kind == Kind::Authority)
        {
            return Err(TapRequestError::Authority);
        }
        for (key, ns) in [
            ("namespace", &self.namespace),
            ("toNamespace", &self.to_namespace),
        ] {
            if !is_dns_label(ns) {
                return invalid(key, format!("{ns:?} is not a namespace name"));
            }
        }
        for (key, name) in [
            ("resource", self.resource.name.as_deref()),
            ("to", self.to.as_ref().and_then(|t| t.name.as_deref())),
        ] {
            if let Some(name) = name
                && !is_object_name(name)
            {
                return invalid(key, format!("{name:?} is not a Kubernetes object name"));
            }
        }
        if let Some(path) = &self.path
            && !path.starts_with('/')
        {
            return invalid("path", format!("{path:?} does not start with /"));
        }
        if let Some(method) = &self.method
            && (method.is_empty() || !method.bytes().all(is_token_byte))
        {
            return invalid("method", format!("{method:?} is not an HTTP method"));
        }
        if let Some(authority) = &self.authority
            && (authority.is_empty() || authority.contains(|c: char| c.is_whitespace() || c == '/'))
        {
            return invalid("authority", format!("{authority:?} is not an authority"));
        }
        if let Some(scheme) = &self.scheme
            && scheme != "http"
            && scheme != "https"
        {
            return invalid("scheme", format!("{scheme:?}: expected http or https"));
        }
        if !(self.max_rps.is_finite() && self.max_rps > 0.0) {
            return invalid(
                "maxRps",
                format!("{} must be a number above zero", self.max_rps),
            );
        }
        if self.max_rps > max_rps_limit {
            return invalid(
                "maxRps",
                format!(
                    "{} is above the tap server's limit of {max_rps_limit}",
                    self.max_rps
                ),
            );
        }
        Ok(())
    }

    /// The query string the CLI sends (without `?`).
    pub fn to_query(&self) -> String {
        let mut pairs = vec![
            ("resource", self.resource.display()),
            ("namespace", self.namespace.clone()),
            ("toNamespace", self.to_namespace.clone()),
            ("maxRps", self.max_rps.to_string()),
        ];
        if let Some(to) = &self.to {
            pairs.push(("to", to.display()));
        }
        for (key, value) in [
            ("path", &self.path),
            ("method", &self.method),
            ("authority", &self.authority),
            ("scheme", &self.scheme),
        ] {
            if let Some(v) = value {
                pairs.push((key, v.clone()));
            }
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, &v);
        }
        query.finish()
    }

    /// Reads a query string (without `?`); unknown or repeated keys are refused.
    pub fn from_query(query: &str) -> Result<Self, TapRequestError> {
        let mut values = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let Some(key) = KEYS.iter().find(|key| **key == k) else {
                return Err(TapRequestError::UnknownKey(k.into_owned()));
            };
            if values.insert(*key, v.into_owned()).is_some() {
                return Err(TapRequestError::Repeated(k.into_owned()));
            }
        }
        let resource = values
            .remove("resource")
            .ok_or(TapRequestError::Missing("resource"))?;
        let mut resource = Resource::parse(&resource)?;
        let namespace = values
            .remove("namespace")
            .ok_or(TapRequestError::Missing("namespace"))?;
        resource.namespace = Some(namespace.clone());
        let mut request = Self::new(resource, &namespace);
        if let Some(ns) = values.remove("toNamespace") {
            request.to_namespace = ns;
        }
        if let Some(to) = values.remove("to") {
            let mut to = Resource::parse(&to)?;
            to.namespace = Some(request.to_namespace.clone());
            request.to = Some(to);
        }
        request.path = values.remove("path");
        request.method = values.remove("method");
        request.authority = values.remove("authority");
        request.scheme = values.remove("scheme");
        if let Some(rps) = values.remove("maxRps") {
            request.max_rps = rps.parse().map_err(|_| TapRequestError::Invalid {
                key: "maxRps",
                reason: format!("{rps:?} is not a number"),
            })?;
        }
        Ok(request)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// === Events ===

/// One line of the tap stream: an event, or the server's word about the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StreamLine {
    Event(Box<TapEvent>),
    Status(StreamStatus),
}

/// What the server says about the stream itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// Events this client lost because it read too slowly (since the last status).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// A pod that could not be tapped, or why the stream ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A request or response event seen by one proxy, as Linkerd's `-o json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TapEvent {
    pub source: Peer,
    pub destination: Peer,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub route_meta: BTreeMap<String, String>,
    pub proxy_direction: Direction,
    #[serde(flatten)]
    pub http: HttpEvent,
}

/// An address and what is known about it (`pod`, `namespace`, `deployment`, `tls`, …).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub ip: String,
    pub port: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    Unknown,
    Inbound,
    Outbound,
}

/// A request stream's id: the proxy's random base and the stream's number.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct StreamId {
    pub base: u32,
    pub stream: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HttpEvent {
    RequestInitEvent(RequestInit),
    ResponseInitEvent(ResponseInit),
    ResponseEndEvent(ResponseEnd),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInit {
    pub id: StreamId,
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    pub authority: String,
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseInit {
    pub id: StreamId,
    /// Microseconds from the request to the response's headers.
    pub since_request_init_us: u64,
    pub http_status: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseEnd {
    pub id: StreamId,
    /// Microseconds from the request to the response's end.
    pub since_request_init_us: u64,
    /// Microseconds from the response's headers to its end.
    pub since_response_init_us: u64,
    pub response_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status_code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_error_code: Option<u32>,
}

impl HttpEvent {
    pub fn id(&self) -> StreamId {
        match self {
            Self::RequestInitEvent(e) => e.id,
            Self::ResponseInitEvent(e) => e.id,
            Self::ResponseEndEvent(e) => e.id,
        }
    }
}

impl Peer {
    fn addr(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }

    /// `src_res=deploy/web src_ns=todo`, for `-o wide` (nothing when the label is unknown).
    fn resource(&self, side: &str, kind: Kind) -> String {
        let Some(name) = self.metadata.get(kind.label()) else {
            return String::new();
        };
        let mut out = format!(" {side}_res={}/{name}", kind.name());
        if let Some(ns) = self.metadata.get("namespace") {
            out.push_str(&format!(" {side}_ns={ns}"));
        }
        out
    }
}

/// gRPC's names of its status codes, as `grpc-status=` shows them.
fn grpc_code(code: u32) -> String {
    const NAMES: &[&str] = &[
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

/// The event as Linkerd's `viz tap` prints it; with `-o wide`, `wide` is the kind of the tapped
/// resource and the line ends with the source's and destination's resources.
pub fn render_line(event: &TapEvent, wide: Option<Kind>) -> String {
    let (proxy, tls) = match event.proxy_direction {
        Direction::Inbound => ("in ", event.source.metadata.get("tls")),
        Direction::Outbound => ("out", event.destination.metadata.get("tls")),
        Direction::Unknown => ("???", None),
    };
    let flow = format!(
        "proxy={proxy} src={} dst={} tls={}",
        event.source.addr(),
        event.destination.addr(),
        tls.map(String::as_str).unwrap_or_default()
    );
    let resources = wide.map_or_else(String::new, |kind| {
        let mut s = event.source.resource("src", kind) + &event.destination.resource("dst", kind);
        for (k, v) in &event.route_meta {
            s.push_str(&format!(" rt_{k}={v}"));
        }
        s
    });
    match &event.http {
        HttpEvent::RequestInitEvent(e) => format!(
            "req id={}:{} {flow} :method={} :authority={} :path={}{resources}",
            e.id.base, e.id.stream, e.method, e.authority, e.path
        ),
        HttpEvent::ResponseInitEvent(e) => format!(
            "rsp id={}:{} {flow} :status={} latency={}µs{resources}",
            e.id.base, e.id.stream, e.http_status, e.since_request_init_us
        ),
        HttpEvent::ResponseEndEvent(e) => {
            let eos = match (e.grpc_status_code, e.reset_error_code) {
                (Some(code), _) => format!(" grpc-status={}", grpc_code(code)),
                (None, Some(code)) => format!(" reset-error={code}"),
                (None, None) => String::new(),
            };
            format!(
                "end id={}:{} {flow}{eos} duration={}µs response-length={}B{resources}",
                e.id.base, e.id.stream, e.since_response_init_us, e.response_bytes
            )
        }
    }
}

#[cfg(test)]
mod tests;
