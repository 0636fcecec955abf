//! The HTTPS admission server (`/inject`, `/validate/serviceprofile`, `/validate/policy`,
//! `/live`, `/ready`), on the shared accept loop and HTTP skeleton (`oxlink_admin::serve`).
//! The plain-HTTP admin server (`/live`, `/ready`, `/metrics`) is `oxlink_admin::serve_admin`
//! over [`Admission::readiness`]; [`crate::serve::spawn`] starts both.

use crate::{
    admission::Injector,
    events::Events,
    metrics::Metrics,
    validate::{Verdict, Webhook},
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Bytes,
    header::{CONTENT_TYPE, HeaderValue},
    service::service_fn,
};
use oxlink_admin::{
    Readiness,
    serve::{BodyTimeout, Limits, Protocol, RequestBody, ServerMetrics, accept, serve_http},
};
use oxlink_tls::ServingCert;
use prometheus_client::registry::Registry;
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use tokio::net::TcpListener;

/// The largest AdmissionReview accepted by default (as the API server's own limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What both servers share.
pub struct Admission {
    pub injector: Injector,
    /// Where `Injected` / `InjectionSkipped` events go, if anywhere.
    pub events: Option<Events>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    pub max_body_bytes: usize,
    /// The HTTPS listener's connection metrics (`server="proxy_injector"`), in `registry`.
    pub connections: ServerMetrics,
    /// `/ready` answers 503 until this is set (the metadata caches have synced).
    ready: Arc<AtomicBool>,
    /// The same condition, as the admin server asks it.
    readiness: Readiness,
}

// === impl Admission ===

impl Admission {
    /// Wraps `injector` with its own metrics registry, recording events to `events`.
    pub fn with_events(injector: Injector, events: Events, max_body_bytes: usize) -> Arc<Self> {
        let mut admission = Self::build(injector, max_body_bytes);
        admission.events = Some(events);
        Arc::new(admission)
    }

    /// Wraps `injector` with its own metrics registry, without events.
    pub fn new(injector: Injector, max_body_bytes: usize) -> Arc<Self> {
        Arc::new(Self::build(injector, max_body_bytes))
    }

    /// Marks the server ready (or not) for `/ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The readiness the admin server reports.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    fn build(injector: Injector, max_body_bytes: usize) -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        oxlink_kube::metrics::register(&mut registry);
        let connections = ServerMetrics::register(&mut registry, "proxy_injector");
        let ready = Arc::new(AtomicBool::new(true));
        let readiness = Readiness::default();
        let flag = ready.clone();
        readiness.require("the metadata caches have not synced", move || {
            flag.load(Ordering::Acquire)
        });
        Self {
            injector,
            events: None,
            metrics,
            registry: Arc::new(registry),
            max_body_bytes,
            connections,
            ready,
            readiness,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A TLS server configuration (TLS 1.2 and 1.3; HTTP/2, which the API server's webhook client
/// negotiates and then multiplexes reviews over one connection, and HTTP/1.1) presenting `cert`.
pub fn tls_config(cert: Arc<ServingCert>) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves admission requests over TLS on `listener` (HTTP/2 or HTTP/1.1, as ALPN chose)
/// within `limits` until `shutdown` completes.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    admission: Arc<Admission>,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let connections = admission.connections.clone();
    let incoming = accept(listener, limits, Some(tls), connections.clone());
    let svc = service_fn(move |req| {
        let admission = admission.clone();
        async move { Ok::<_, std::convert::Infallible>(route(req, &admission).await) }
    });
    serve_http(incoming, svc, Protocol::Auto, limits, connections, shutdown).await;
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(body.into()));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn route(req: Request<RequestBody>, admission: &Admission) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/live") => reply(StatusCode::OK, TEXT, "live\n"),
        (&Method::GET, "/ready") => match admission.readiness.not_ready() {
            None => reply(StatusCode::OK, TEXT, "ready\n"),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
        },
        (&Method::POST, "/inject" | "/") => inject(req, admission).await,
        (&Method::POST, "/validate/serviceprofile") => {
            validate(req, admission, Webhook::ServiceProfile).await
        }
        (&Method::POST, "/validate/policy") => validate(req, admission, Webhook::Policy).await,
        (_, "/inject" | "/validate/serviceprofile" | "/validate/policy") => {
            reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "POST only\n")
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}

/// The request body, or the error response for one that is too large or unreadable.
async fn read_body(
    req: Request<RequestBody>,
    max_body_bytes: usize,
) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), max_body_bytes)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) => {
            let too_large = error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            Err(if let Some(timeout) = error.downcast_ref::<BodyTimeout>() {
                reply(StatusCode::REQUEST_TIMEOUT, TEXT, format!("{timeout}\n"))
            } else if too_large {
                reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    TEXT,
                    format!("the AdmissionReview is larger than {max_body_bytes} bytes\n"),
                )
            } else {
                reply(
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    format!("reading the body: {error}\n"),
                )
            })
        }
    }
}

async fn validate(
    req: Request<RequestBody>,
    admission: &Admission,
    webhook: Webhook,
) -> Response<Full<Bytes>> {
    let start = std::time::Instant::now();
    let metrics = &admission.metrics;
    metrics.validation_request(webhook);
    let body = match read_body(req, admission.max_body_bytes).await {
        Ok(body) => body,
        Err(rsp) => {
            metrics.validation_response(webhook, None, start.elapsed().as_secs_f64());
            return rsp;
        }
    };
    match webhook.review_in(&body, admission.injector.cluster()).await {
        Ok(validated) => {
            if let Verdict::Denied(reason) = &validated.verdict {
                tracing::info!(webhook = webhook.as_str(), %reason, "denied");
            }
            metrics.validation_response(
                webhook,
                Some((&validated.kind, &validated.verdict)),
                start.elapsed().as_secs_f64(),
            );
            reply(StatusCode::OK, "application/json", validated.body)
        }
        Err(error) => {
            tracing::info!(%error, "rejected a malformed admission request");
            metrics.validation_response(webhook, None, start.elapsed().as_secs_f64());
            reply(StatusCode::BAD_REQUEST, TEXT, format!("{error}\n"))
        }
    }
}

async fn inject(req: Request<RequestBody>, admission: &Admission) -> Response<Full<Bytes>> {
    let start = std::time::Instant::now();
    admission.metrics.request();
    let body = match read_body(req, admission.max_body_bytes).await {
        Ok(body) => body,
        Err(rsp) => {
            admission
                .metrics
                .response(None, start.elapsed().as_secs_f64());
            return rsp;
        }
    };
    match admission.injector.review(&body).await {
        Ok(reviewed) => {
            tracing::info!(
                namespace = %reviewed.namespace,
                owner = ?reviewed.owner.as_ref().map(|o| format!("{}/{}", o.kind, o.name)),
                decision = ?reviewed.decision,
                "admission review"
            );
            admission
                .metrics
                .response(Some(&reviewed.decision), start.elapsed().as_secs_f64());
            if let Some(events) = &admission.events {
                events.record(&reviewed);
            }
            reply(StatusCode::OK, "application/json", reviewed.body)
        }
        Err(error) => {
            tracing::info!(%error, "rejected a malformed admission request");
            admission
                .metrics
                .response(None, start.elapsed().as_secs_f64());
            reply(StatusCode::BAD_REQUEST, TEXT, format!("{error}\n"))
        }
    }
}

#[cfg(test)]
mod tests;
