//! The HTTP layer: the metrics API's JSON endpoints and the dashboard's pages, on the listeners
//! of `oxlink_admin::serve` (its connection cap, header and time limits), with a bound of our
//! own on the API requests in flight and on how long each may take.
//!
//! | path | answer |
//! |---|---|
//! | `GET /api/stat?resource=deploy&namespace=todo&window=1m` | `{"rows": [...]}` ([`oxlink_viz::api::StatResponse`]) |
//! | `GET /api/routes?resource=deploy/web&namespace=todo` | `{"rows": [...]}` |
//! | `GET /api/edges?resource=deploy&namespace=todo` | `{"edges": [...]}` |
//! | `GET /api/self-check` | `{"prometheus_url": "...", "proxies": 3}` |
//! | `GET /`, `/namespaces`, `/namespaces/NS`, `/namespaces/NS/deployments/NAME` | the dashboard (one page; its script renders the view the path names) |
//! | `GET /app.js`, `/app.css` | the page's script and style |
//!
//! Errors are a Kubernetes `Status` object (`{"kind":"Status","message":…,"code":…}`), so a
//! client reaching the API through the API server's Service proxy reads our message as the API
//! server's own: 400 for a bad request (nothing is asked of Kubernetes or Prometheus), 404 for a
//! resource that does not exist, 502 when Prometheus or the API server fails, 503 when too many
//! API requests are in flight, 504 past [`REQUEST_TIMEOUT`].

use crate::metrics::{ApiError, Metrics};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, header};
use oxlink_admin::serve::RequestBody;
use oxlink_viz::api::{
    EDGES_PATH, EdgesRequest, ROUTES_PATH, RoutesRequest, SELF_CHECK_PATH, STAT_PATH, StatRequest,
};
use regex::Regex;
use serde::Serialize;
use std::{sync::Arc, time::Duration};
use tokio::sync::Semaphore;

/// API requests answered at once; one more is refused with 503 rather than queued. Each one
/// holds up to seven Prometheus queries and a few Kubernetes lists; a dashboard tab sends at
/// most three at a time.
pub const MAX_IN_FLIGHT: usize = 32;

/// The longest an API request may take: Prometheus' own timeout, and the Kubernetes lists.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// Linkerd's default `-enforced-host` of its dashboard: the names a port-forward or the
/// cluster's DNS give it. A browser that reaches it by another name (DNS rebinding) is refused.
pub const DEFAULT_ENFORCED_HOST: &str = r"^(localhost|127\.0\.0\.1|web\.linkerd-viz\.svc\.cluster\.local|web\.linkerd-viz\.svc|\[::1\])(:\d+)?$";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What one listener serves.
#[derive(Clone)]
pub struct Web {
    metrics: Metrics,
    /// The dashboard listener checks `Host`; the metrics-API listener (reached through the API
    /// server, or from inside the cluster) does not.
    enforced_host: Option<Regex>,
    in_flight: Arc<Semaphore>,
}

impl Web {
    pub fn new(metrics: Metrics, enforced_host: Option<Regex>, in_flight: Arc<Semaphore>) -> Self {
        Self {
            metrics,
            enforced_host,
            in_flight,
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<RequestBody>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{} is not allowed; use GET", req.method()),
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if let Some(re) = &self.enforced_host {
            let host = req
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    req.headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            if !re.is_match(&host) {
                return status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "It appears that you are trying to reach this service with a host of '{host}'. \
                         This does not match /{}/ and has been denied for security reasons. \
                         Please see https://linkerd.io/dns-rebinding for an explanation of what is \
                         happening and how to fix it.",
                        re.as_str()
                    ),
                );
            }
        }
        if has_body(&req) {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "a GET request carries no body".into(),
            );
        }
        let path = req.uri().path();
        let query = req.uri().query().unwrap_or_default();
        match path {
            STAT_PATH | ROUTES_PATH | EDGES_PATH | SELF_CHECK_PATH => self.api(path, query).await,
            // The page names its script and style relatively, so they are found beside every view.
            p if p.strip_suffix("/app.js").is_some_and(is_view) => {
                asset("text/javascript; charset=utf-8", APP_JS)
            }
            p if p.strip_suffix("/app.css").is_some_and(is_view) => {
                asset("text/css; charset=utf-8", APP_CSS)
            }
            p if is_page(p) => asset("text/html; charset=utf-8", INDEX_HTML),
            p => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no page or API at {p:?}"),
            ),
        }
    }

    async fn api(&self, path: &str, query: &str) -> Response<Full<Bytes>> {
        // Bad input is refused before anything is held or asked.
        let call = match parse(path, query) {
            Ok(call) => call,
            Err(e) => return error(&e),
        };
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!(
                    "too many metrics API requests in flight (at most {MAX_IN_FLIGHT}); try again"
                ),
            );
        };
        let m = &self.metrics;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            match &call {
                Call::Stat(r) => m.stat(r).await.map(|a| json(&a)),
                Call::Routes(r) => m.routes(r).await.map(|a| json(&a)),
                Call::Edges(r) => m.edges(r).await.map(|a| json(&a)),
                Call::SelfCheck => m.self_check().await.map(|a| json(&a)),
            }
        })
        .await;
        match answer {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => error(&e),
            Err(_) => status(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!(
                    "the request took longer than {}s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            ),
        }
    }
}

/// A parsed API request.
#[derive(Debug)]
enum Call {
    Stat(StatRequest),
    Routes(RoutesRequest),
    Edges(EdgesRequest),
    SelfCheck,
}

fn parse(path: &str, query: &str) -> Result<Call, ApiError> {
    Ok(match path {
        STAT_PATH => Call::Stat(StatRequest::from_query(query)?),
        ROUTES_PATH => Call::Routes(RoutesRequest::from_query(query)?),
        EDGES_PATH => Call::Edges(EdgesRequest::from_query(query)?),
        _ => Call::SelfCheck,
    })
}

fn has_body<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|l| l.as_bytes() != b"0")
}

/// Where the page's relative links lead from a view: its directory (`/namespaces/NS/deployments`
/// for a deployment), or the root.
fn is_view(dir: &str) -> bool {
    dir.is_empty() || is_page(dir) || is_page(&format!("{dir}/x"))
}

/// The dashboard's views, each served the same page: `/`, `/overview`, `/namespaces`,
/// `/namespaces/NS`, `/namespaces/NS/deployments/NAME`.
fn is_page(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match parts.as_slice() {
        [] | ["overview"] | ["namespaces"] => true,
        ["namespaces", ns] => !ns.is_empty(),
        ["namespaces", ns, "deployments", name] => !ns.is_empty() && !name.is_empty(),
        _ => false,
    }
}

fn headers(mut r: Response<Full<Bytes>>, content_type: &'static str) -> Response<Full<Bytes>> {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    headers(
        Response::new(Full::new(Bytes::from_static(body.as_bytes()))),
        content_type,
    )
}

fn json(value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    headers(
        Response::new(Full::new(Bytes::from(body))),
        "application/json",
    )
}

/// A Kubernetes `Status` with our message.
fn status(code: StatusCode, reason: &str, message: String) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut r = json(&body);
    *r.status_mut() = code;
    r
}

fn error(e: &ApiError) -> Response<Full<Bytes>> {
    use crate::prometheus::QueryError;
    let (code, reason) = match e {
        ApiError::Request(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
        ApiError::Prometheus(QueryError::Timeout { .. }) => {
            (StatusCode::GATEWAY_TIMEOUT, "Timeout")
        }
        ApiError::Prometheus(_) | ApiError::Kubernetes(_) => {
            (StatusCode::BAD_GATEWAY, "BadGateway")
        }
    };
    status(code, reason, e.to_string())
}

#[cfg(test)]
mod tests;
