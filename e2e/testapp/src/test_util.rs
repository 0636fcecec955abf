//! Helpers for the in-process tests: everything on 127.0.0.1.

use crate::client::{self, Reply};
use http::{Method, Request};
use http_body_util::Full;
use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

/// 127.0.0.1 on a port the kernel picks.
pub(crate) fn any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A 127.0.0.1 port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind(any_port()).unwrap();
    listener.local_addr().unwrap().port()
}

/// One request, with how long it took.
pub(crate) async fn fetch(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
    http2: bool,
) -> (Reply, Duration) {
    let mut req = Request::new(Full::from(body.to_string()));
    *req.method_mut() = method;
    *req.uri_mut() = format!("http://{addr}{path}").parse().unwrap();
    let started = Instant::now();
    let client = client::new(http2);
    let reply = client::send(&client, req, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    (reply, started.elapsed())
}

/// `GET path` over HTTP/1.1.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Reply {
    fetch(addr, Method::GET, path, "", false).await.0
}

/// The body as text.
pub(crate) fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}
