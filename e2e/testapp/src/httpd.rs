//! HTTP serving shared by every server role: HTTP/1.1 and h2c (prior knowledge) on one port,
//! request bodies read in full, and `x-served-by` on every response.

use crate::listen::{self, Server};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Bytes, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use serde::Serialize;
use std::{convert::Infallible, future::Future, io, net::SocketAddr, sync::Arc};

/// The body of every response the servers send.
pub type Body = Full<Bytes>;

/// The header naming the pod that answered.
pub const SERVED_BY: &str = "x-served-by";

/// The largest request body the servers read.
const MAX_BODY: usize = 1 << 20;

/// Answers requests whose bodies have been read.
pub trait Handler: Send + Sync + 'static {
    /// The response to one request.
    fn handle(&self, req: Request<Bytes>) -> impl Future<Output = Response<Body>> + Send;
}

/// Serves `handler` on `addr`, naming `pod` in `x-served-by`.
pub async fn serve<H: Handler>(addr: SocketAddr, pod: &str, handler: Arc<H>) -> io::Result<Server> {
    let listener = listen::bind(addr).await?;
    let served_by = HeaderValue::from_str(pod).unwrap_or(HeaderValue::from_static("unnamed"));
    Server::spawn(listener, move |stream| {
        let (handler, served_by) = (handler.clone(), served_by.clone());
        async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (handler, served_by) = (handler.clone(), served_by.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let mut rsp = match Limited::new(body, MAX_BODY).collect().await {
                        Ok(body) => {
                            let req = Request::from_parts(parts, body.to_bytes());
                            handler.handle(req).await
                        }
                        Err(e) => text(StatusCode::BAD_REQUEST, format!("reading body: {e}\n")),
                    };
                    rsp.headers_mut().insert(SERVED_BY, served_by);
                    Ok::<_, Infallible>(rsp)
                }
            });
            // A client that goes away mid-request is not our problem.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    })
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", body.into())
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, "application/json", body.into()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding: {e}\n"),
        ),
    }
}

/// The content type of gRPC requests and responses.
pub const GRPC: &str = "application/grpc";

/// Whether `req` is a gRPC call (`content-type: application/grpc`, `+proto` and the like).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(GRPC))
}

/// A gRPC response in the Trailers-Only form: HTTP 200 with `grpc-status` (and, unless OK,
/// `grpc-message`) in its headers and no message. `status` maps to the gRPC code a server
/// behind it would give: 200 → OK, 503 → UNAVAILABLE, 500 → INTERNAL, any other → UNKNOWN.
pub fn grpc(status: StatusCode) -> Response<Body> {
    let code = match status.as_u16() {
        200 => 0,
        503 => 14,
        500 => 13,
        _ => 2,
    };
    let mut rsp = with_type(StatusCode::OK, GRPC, Bytes::new());
    rsp.headers_mut()
        .insert(GRPC_STATUS, HeaderValue::from(code));
    if code != 0 {
        rsp.headers_mut().insert(
            "grpc-message",
            HeaderValue::from_str(&format!("HTTP status {}", status.as_u16()))
                .unwrap_or(HeaderValue::from_static("error")),
        );
    }
    rsp
}

/// The header (or trailer) with a gRPC call's status code.
pub const GRPC_STATUS: &str = "grpc-status";

/// An HTML response.
pub fn html(status: StatusCode, body: String) -> Response<Body> {
    with_type(status, "text/html; charset=utf-8", body.into())
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut rsp = Response::new(Full::new(body));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}
