//! The admin server: `/live`, `/ready` and `/metrics`, plain HTTP/1 on its own port.

use crate::{
    Liveness, Readiness,
    serve::{Limits, Protocol, RequestBody, ServerMetrics, accept, serve_http},
};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, header, service::service_fn};
use prometheus_client::registry::Registry;
use std::{future::Future, sync::Arc};
use tokio::net::TcpListener;

/// Run before each `/metrics` encoding, to refresh gauges that are read, not counted (the
/// issuer's remaining lifetime, index sizes).
pub type ScrapeHook = Arc<dyn Fn() + Send + Sync>;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin server reports.
#[derive(Clone)]
pub struct Admin {
    pub registry: Arc<Registry>,
    pub ready: Readiness,
    /// `/live` fails once this does (see [`crate::Tasks::liveness`]).
    pub live: Liveness,
    pub on_scrape: Option<ScrapeHook>,
    /// The admin listener's connection metrics (`server="admin"`).
    pub connections: ServerMetrics,
}

/// Serves the admin endpoints on `listener` (HTTP/1, with [`Limits::ADMIN`]) until `shutdown`
/// completes.
pub async fn serve_admin(listener: TcpListener, admin: Admin, shutdown: impl Future<Output = ()>) {
    let metrics = admin.connections.clone();
    let incoming = accept(listener, &Limits::ADMIN, None, metrics.clone());
    let admin = Arc::new(admin);
    let svc = service_fn(move |req: Request<RequestBody>| {
        let response = handle(&req, &admin);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    serve_http(
        incoming,
        svc,
        Protocol::Http1,
        &Limits::ADMIN,
        metrics,
        shutdown,
    )
    .await;
}

fn handle<B>(req: &Request<B>, admin: &Admin) -> Response<Full<Bytes>> {
    let Admin {
        registry,
        ready,
        live,
        on_scrape,
        ..
    } = admin;
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/live" => match live.dead() {
            None => reply(StatusCode::OK, "live\n".into()),
            Some(why) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")),
        },
        "/ready" => match ready.not_ready() {
            None => reply(StatusCode::OK, "ready\n".into()),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => {
            if let Some(hook) = on_scrape {
                hook();
            }
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => {
                    let mut rsp = reply(StatusCode::OK, body);
                    rsp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(OPENMETRICS),
                    );
                    rsp
                }
                Err(_) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding failed\n".into(),
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from(body)));
    *rsp.status_mut() = status;
    rsp
}

#[cfg(test)]
mod tests;
