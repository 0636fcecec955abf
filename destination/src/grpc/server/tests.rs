//! The HTTP/2 server's limits, against a raw client that misbehaves on purpose (and tonic
//! clients that do not).

use super::*;
use crate::{grpc::DestinationGrpc, metrics::Metrics, test_util::mk_index};
use oxlink_admin::{
    serve::accept,
    test_util::{self as raw, RawH2},
};
use prost::Message;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Long enough for anything that is meant to happen; a test waits this long only when the
/// server fails to do what is tested.
const PATIENCE: Duration = Duration::from_secs(10);

const GET_PROFILE: &str = "/io.linkerd.proxy.destination.Destination/GetProfile";

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
    connections: ServerMetrics,
    _shutdown: watch::Sender<bool>,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, rx) = watch::channel(false);
    let grpc = Arc::new(DestinationGrpc::new(
        Arc::new(mk_index()),
        "cluster.local",
        rx,
        Arc::new(Metrics::default()),
    ));
    let connections = ServerMetrics::unregistered("destination");
    let incoming = accept(listener, &limits, None, connections.clone());
    let c = connections.clone();
    tokio::spawn(async move { serve(grpc, incoming, &limits, c, std::future::pending()).await });
    Server {
        addr,
        connections,
        _shutdown: shutdown,
    }
}

/// A GetProfile for an unknown Service is answered (with a default profile): HEADERS come.
async fn answered(client: &mut RawH2, stream: u32) -> bool {
    let request = linkerd2_proxy_api::destination::GetDestination {
        path: "web.ns.svc.cluster.local:80".into(),
        ..Default::default()
    };
    client
        .request(stream, GET_PROFILE, &[], false)
        .await
        .unwrap();
    client
        .grpc_message(stream, &request.encode_to_vec())
        .await
        .unwrap();
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
    assert_eq!(server.connections.refused_total("preface_timeout"), 1);
    let mut honest = RawH2::connect(server.addr).await.unwrap();
    tokio::time::sleep(limits().handshake_timeout * 2).await;
    assert!(answered(&mut honest, 1).await);
}

#[tokio::test]
async fn streams_past_the_limit_are_refused_and_other_connections_are_unaffected() {
    let server = start(limits()).await;
    let mut greedy = RawH2::connect(server.addr).await.unwrap();
    // 1,000 GetProfile requests whose bodies never come: each holds its stream open.
    for i in 0..1_000u32 {
        greedy
            .request(2 * i + 1, GET_PROFILE, &[], false)
            .await
            .unwrap();
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
    // The 100 streams within the limit are served.
    let request = linkerd2_proxy_api::destination::GetDestination {
        path: "web.ns.svc.cluster.local:80".into(),
        ..Default::default()
    };
    greedy
        .grpc_message(1, &request.encode_to_vec())
        .await
        .unwrap();
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
    // A stream is open the whole time: a proxy's connection is never idle.
    deaf.request(1, GET_PROFILE, &[], false).await.unwrap();
    let ping = deaf.read_until(PATIENCE, |f| f.kind == raw::PING).await;
    assert!(ping.is_some(), "the server sent no PING");
    assert!(
        deaf.closed_within(PATIENCE).await,
        "a client that never answered a PING was kept"
    );
    // One that answers is kept.
    let mut alive = RawH2::connect(server.addr).await.unwrap();
    for _ in 0..5 {
        let ping = alive
            .read_until(PATIENCE, |f| f.kind == raw::PING)
            .await
            .expect("the server closed a connection that answers its PINGs");
        alive
            .frame(raw::PING, raw::ACK, 0, &ping.payload)
            .await
            .unwrap();
    }
    assert!(answered(&mut alive, 1).await);
}

#[tokio::test]
async fn an_oversize_header_list_is_refused_and_the_connection_kept() {
    let server = start(limits()).await;
    let mut client = RawH2::connect(server.addr).await.unwrap();
    let big = "x".repeat(20 * 1024);
    client
        .request(1, GET_PROFILE, &[("x-big", &big)], true)
        .await
        .unwrap();
    let answer = client
        .read_until(PATIENCE, |f| f.stream == 1)
        .await
        .unwrap();
    // Refused: 431 (anything but `:status 200`, HPACK's static entry 8) or a reset.
    assert!(
        answer.kind == raw::RST_STREAM
            || (answer.kind == raw::HEADERS && answer.payload[0] != 0x88),
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
    assert_eq!(server.connections.refused_total("limit"), 1);
    assert_eq!(server.connections.open(), 3);
    for (i, client) in honest.iter_mut().enumerate() {
        assert!(answered(client, 1).await, "connection {i} is served");
    }
}

#[tokio::test]
async fn an_idle_connection_gets_goaway_and_a_missing_body_times_out() {
    let server = start(Limits {
        idle_timeout: Duration::from_millis(300),
        request_body_timeout: Duration::from_millis(200),
        ..limits()
    })
    .await;
    let mut client = RawH2::connect(server.addr).await.unwrap();
    client.request(1, GET_PROFILE, &[], false).await.unwrap();
    // Trailers-only (DEADLINE_EXCEEDED): HEADERS that end the stream.
    let status = client
        .read_until(PATIENCE, |f| f.kind == raw::HEADERS && f.stream == 1)
        .await
        .unwrap();
    assert_eq!(
        status.flags & raw::END_STREAM,
        raw::END_STREAM,
        "{status:?}"
    );
    let goaway = client.read_until(PATIENCE, |f| f.kind == raw::GOAWAY).await;
    assert!(goaway.is_some(), "the idle connection was not closed");
}
