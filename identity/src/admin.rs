//! The admin server: `/live`, `/ready` and `/metrics`.

use crate::{certify::IssuerState, metrics::Metrics};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};
use tokio::net::TcpListener;

/// Ready once the issuer Secret watch has synced and an issuer is loaded.
#[derive(Clone, Debug)]
pub struct Readiness {
    synced: Arc<AtomicBool>,
    issuer: IssuerState,
}

impl Readiness {
    pub fn new(issuer: IssuerState) -> Self {
        Self {
            synced: Arc::default(),
            issuer,
        }
    }

    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Acquire) && self.issuer.current().is_some()
    }

    /// Why the server is not ready, if it is not.
    fn reason(&self) -> Option<&'static str> {
        if !self.synced.load(Ordering::Acquire) {
            Some("the issuer Secret watch has not synced\n")
        } else if self.issuer.current().is_none() {
            Some("no valid issuer is loaded\n")
        } else {
            None
        }
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve_admin(
    listener: TcpListener,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    ready: Readiness,
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
        let (registry, metrics, ready) = (registry.clone(), metrics.clone(), ready.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let response = handle(&req, &registry, &metrics, &ready);
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
    metrics: &Metrics,
    ready: &Readiness,
) -> Response<Full<Bytes>> {
    let reply = |status, body: String| {
        let mut rsp = Response::new(Full::new(Bytes::from(body)));
        *rsp.status_mut() = status;
        rsp
    };
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/live" => reply(StatusCode::OK, "live\n".into()),
        "/ready" => match ready.reason() {
            None => reply(StatusCode::OK, "ready\n".into()),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, why.into()),
        },
        "/metrics" => {
            let expiry = ready
                .issuer
                .current()
                .and_then(|i| i.not_after().duration_since(SystemTime::now()).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            metrics.set_issuer_expiry(expiry);
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => {
                    let mut rsp = reply(StatusCode::OK, body);
                    rsp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
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
