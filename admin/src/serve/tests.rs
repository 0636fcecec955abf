//! The limits of [`serve_http`] against a raw HTTP/2 client that misbehaves on purpose.

use super::*;
use crate::test_util::{self as raw, RawH2};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};
use std::{net::SocketAddr, time::Duration};
use tokio::net::TcpListener;

/// Long enough for anything that is meant to happen; a test waits this long only when the
/// server fails to do what is tested.
const PATIENCE: Duration = Duration::from_secs(10);

fn limits() -> Limits {
    Limits {
        max_connections: 3,
        max_concurrent_streams: 100,
        max_header_list_size: 16 * 1024,
        handshake_timeout: Duration::from_millis(300),
        request_body_timeout: Duration::from_secs(60),
        keepalive_interval: Duration::from_secs(3600),
        keepalive_timeout: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
    }
}

struct Server {
    addr: SocketAddr,
    metrics: ServerMetrics,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A server that reads each request's body and answers 200 with its length, or 408 when the
/// body timed out.
async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = ServerMetrics::unregistered("test");
    let incoming = accept(listener, &limits, None, metrics.clone());
    let svc = service_fn(|req: Request<RequestBody>| async move {
        let (status, body) = match req.into_body().collect().await {
            Ok(body) => (StatusCode::OK, body.to_bytes().len().to_string()),
            Err(error) if error.downcast_ref::<BodyTimeout>().is_some() => {
                (StatusCode::REQUEST_TIMEOUT, error.to_string())
            }
            Err(error) => (StatusCode::BAD_REQUEST, error.to_string()),
        };
        let mut rsp = Response::new(Full::new(Bytes::from(body)));
        *rsp.status_mut() = status;
        Ok::<_, std::convert::Infallible>(rsp)
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let m = metrics.clone();
    tokio::spawn(async move {
        serve_http(incoming, svc, Protocol::Http2, &limits, m, async move {
            let _ = stopped.await;
        })
        .await
    });
    Server {
        addr,
        metrics,
        _stop: stop,
    }
}

/// A complete request on `stream` is answered with HEADERS (status 200).
async fn answered(client: &mut RawH2, stream: u32) -> bool {
    client.request(stream, "/", &[], true).await.unwrap();
    client
        .read_until(PATIENCE, |f| f.kind == raw::HEADERS && f.stream == stream)
        .await
        .is_some()
}

#[tokio::test]
async fn a_connection_that_never_sends_the_preface_is_closed() {
    let server = start(limits()).await;
    let mut silent = RawH2::tcp(server.addr).await.unwrap();
    assert!(
        silent.closed_within(PATIENCE).await,
        "a client that sent nothing was kept"
    );
    assert_eq!(server.metrics.refused_total("preface_timeout"), 1);
    // A client that sends the preface in time is served.
    let mut honest = RawH2::connect(server.addr).await.unwrap();
    tokio::time::sleep(limits().handshake_timeout * 2).await;
    assert!(answered(&mut honest, 1).await);
}

#[tokio::test]
async fn streams_past_the_limit_are_refused_and_other_connections_are_unaffected() {
    let server = start(limits()).await;
    let mut greedy = RawH2::connect(server.addr).await.unwrap();
    // 1,000 requests whose bodies never come: each holds its stream open.
    for i in 0..1_000u32 {
        greedy.request(2 * i + 1, "/", &[], false).await.unwrap();
    }
    let mut refused = 0;
    greedy
        .read_until(PATIENCE, |f| {
            if f.reset_code() == Some(raw::REFUSED_STREAM) {
                refused += 1;
            }
            refused == 900
        })
        .await
        .expect("the connection was closed");
    let mut honest = RawH2::connect(server.addr).await.unwrap();
    assert!(
        answered(&mut honest, 1).await,
        "another connection is served"
    );
    // Further streams are still refused, the 100 open ones are still served.
    greedy.request(2_001, "/", &[], true).await.unwrap();
    let refused = greedy
        .read_until(PATIENCE, |f| f.stream == 2_001)
        .await
        .unwrap();
    assert_eq!(refused.reset_code(), Some(raw::REFUSED_STREAM));
    greedy.grpc_message(1, b"hi").await.unwrap();
    assert!(
        greedy
            .read_until(PATIENCE, |f| f.kind == raw::HEADERS && f.stream == 1)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let server = start(Limits {
        keepalive_interval: Duration::from_millis(100),
        keepalive_timeout: Duration::from_millis(200),
        ..limits()
    })
    .await;
    let mut deaf = RawH2::connect(server.addr).await.unwrap();
    let ping = deaf.read_until(PATIENCE, |f| f.kind == raw::PING).await;
    assert!(ping.is_some(), "the server sent no PING");
    assert!(
        deaf.closed_within(PATIENCE).await,
        "a client that never answered a PING was kept"
    );
    assert_eq!(server.metrics.open(), 0);
}

#[tokio::test]
async fn an_oversize_header_list_is_refused_and_the_connection_kept() {
    let server = start(limits()).await;
    let mut client = RawH2::connect(server.addr).await.unwrap();
    let big = "x".repeat(20 * 1024);
    client
        .request(1, "/", &[("x-big", &big)], true)
        .await
        .unwrap();
    let answer = client
        .read_until(PATIENCE, |f| f.stream == 1)
        .await
        .unwrap();
    // Refused: 431 (anything but `:status 200`, HPACK's static entry 8) or a reset.
    assert!(
        answer.kind == raw::RST_STREAM || (answer.kind == raw::HEADERS && answer.payload != [0x88]),
        "{answer:?}"
    );
    assert!(
        answered(&mut client, 3).await,
        "the connection still serves"
    );
}

#[tokio::test]
async fn the_connection_cap_refuses_the_extra_connection_only() {
    let server = start(limits()).await;
    let mut honest = Vec::new();
    for _ in 0..3 {
        honest.push(RawH2::connect(server.addr).await.unwrap());
    }
    let mut extra = RawH2::tcp(server.addr).await.unwrap();
    assert!(
        extra.closed_within(PATIENCE).await,
        "the 4th connection was served"
    );
    assert_eq!(server.metrics.refused_total("limit"), 1);
    for (i, client) in honest.iter_mut().enumerate() {
        assert!(answered(client, 1).await, "connection {i} is served");
    }
    drop(honest.pop());
    // Once one has closed, a new connection is served again.
    let mut next = None;
    for _ in 0..100 {
        if let Ok(client) =
            tokio::time::timeout(Duration::from_millis(500), RawH2::connect(server.addr)).await
        {
            next = client.ok();
            if next.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered(next.as_mut().expect("no connection after one closed"), 1).await);
}

#[tokio::test]
async fn an_idle_connection_gets_goaway_and_a_slow_body_times_out() {
    let server = start(Limits {
        idle_timeout: Duration::from_millis(300),
        request_body_timeout: Duration::from_millis(200),
        ..limits()
    })
    .await;
    let mut client = RawH2::connect(server.addr).await.unwrap();
    client.request(1, "/", &[], false).await.unwrap();
    let body = client
        .read_until(PATIENCE, |f| f.kind == raw::DATA && f.stream == 1)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body.payload);
    assert!(body.contains("did not arrive within 200ms"), "{body}");
    let goaway = client.read_until(PATIENCE, |f| f.kind == raw::GOAWAY).await;
    assert!(goaway.is_some(), "the idle connection was not closed");
}
