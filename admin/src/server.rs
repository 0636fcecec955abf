//! The admin server: `/live`, `/ready` and `/metrics`, plain HTTP/1 on its own port.

use crate::Readiness;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Bytes, header, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use std::{future::Future, sync::Arc};
use tokio::net::TcpListener;

/// Run before each `/metrics` encoding, to refresh gauges that are read, not counted (the
/// issuer's remaining lifetime, index sizes).
pub type ScrapeHook = Arc<dyn Fn() + Send + Sync>;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve_admin(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: Readiness,
    on_scrape: Option<ScrapeHook>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin accept");
                    continue;
                }
            },
        };
        let (registry, ready, on_scrape) = (registry.clone(), ready.clone(), on_scrape.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let response = handle(&req, &registry, &ready, on_scrape.as_ref());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%error, "admin connection");
            }
        });
    }
}

fn handle<B>(
    req: &Request<B>,
    registry: &Registry,
    ready: &Readiness,
    on_scrape: Option<&ScrapeHook>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/live" => reply(StatusCode::OK, "live\n".into()),
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
