//! The HTTP client of `load`, `get` and `todoui`: keep-alive connections from a small pool,
//! HTTP/1.1 or h2c prior knowledge, and a timeout over the whole exchange.

use crate::httpd::{Body, GRPC_STATUS, SERVED_BY};
use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{self, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use std::{error::Error, fmt, time::Duration};

/// Idle keep-alive connections kept per host.
const POOL: usize = 4;

/// A pooled HTTP client.
pub type Client = legacy::Client<HttpConnector, Body>;

/// A client speaking HTTP/1.1, or h2c with prior knowledge if `http2`.
pub fn new(http2: bool) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let mut builder = legacy::Client::builder(TokioExecutor::new());
    builder
        .pool_max_idle_per_host(POOL)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .http2_only(http2);
    builder.build(connector)
}

/// A response, read in full.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// The HTTP version it came over.
    pub version: Version,
    /// Its `x-served-by` header, if any.
    pub served_by: Option<String>,
    /// Its body.
    pub body: Bytes,
    /// Its `grpc-status`, from the headers (Trailers-Only) or the trailers, if any.
    pub grpc_status: Option<u32>,
}

/// Why no response came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// None within the timeout.
    Timeout(Duration),
    /// No connection.
    Connect(String),
    /// The connection failed during the exchange.
    Request(String),
}

impl Failure {
    /// A short name for counting: `timeout`, `connect` or `request`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Connect(_) => "connect",
            Self::Request(_) => "request",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(t) => write!(f, "no response within {t:?}"),
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Request(e) => write!(f, "request: {e}"),
        }
    }
}

/// Sends `req` and reads the response within `timeout`.
pub async fn send(
    client: &Client,
    req: Request<Body>,
    timeout: Duration,
) -> Result<Reply, Failure> {
    let exchange = async {
        let rsp = client
            .request(req)
            .await
            .map_err(|e| match e.is_connect() {
                true => Failure::Connect(chain(&e)),
                false => Failure::Request(chain(&e)),
            })?;
        let (parts, body) = rsp.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|e| Failure::Request(chain(&e)))?;
        let grpc_status = [Some(&parts.headers), collected.trailers()]
            .into_iter()
            .flatten()
            .find_map(|h| h.get(GRPC_STATUS))
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let body = collected.to_bytes();
        let served_by = parts
            .headers
            .get(SERVED_BY)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Ok(Reply {
            status: parts.status,
            version: parts.version,
            served_by,
            body,
            grpc_status,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(Failure::Timeout(timeout)))
}

/// An error and its sources, `: `-separated (hyper's own messages say little alone).
fn chain(e: &dyn Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        source = e.source();
    }
    msg
}
