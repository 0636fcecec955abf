//! The destination and policy HTTP/2 server, driven over an in-memory connection: raw bytes
//! as a client's side of the connection, or one well-formed gRPC request with a fuzzed body.

use crate::objects;
use bytes::{BufMut, Bytes, BytesMut};
use oxlink_admin::serve::{Limits, ServerMetrics};
use oxlink_destination::{
    Metrics,
    grpc::{DestinationGrpc, PolicyService},
    index::{Config, Index, SharedIndex},
};
use std::{sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    sync::watch,
};

/// The HTTP/2 client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Every method the two servers answer, and one they do not.
pub const METHODS: [(&str, bool); 7] = [
    ("/io.linkerd.proxy.destination.Destination/Get", true),
    ("/io.linkerd.proxy.destination.Destination/GetProfile", true),
    (
        "/io.linkerd.proxy.inbound.InboundServerPolicies/GetPort",
        false,
    ),
    (
        "/io.linkerd.proxy.inbound.InboundServerPolicies/WatchPort",
        false,
    ),
    ("/io.linkerd.proxy.outbound.OutboundPolicies/Get", false),
    ("/io.linkerd.proxy.outbound.OutboundPolicies/Watch", false),
    ("/io.linkerd.proxy.destination.Destination/Nope", true),
];

/// A generous bound on any one step, in paused (virtual) time.
const STEP: Duration = Duration::from_secs(30);

/// A seeded index shared with a server on the far end of the returned connection: Destination
/// when `destination`, else the policy APIs. Sending `true` on the returned flag drains it.
fn spawn_server(
    destination: bool,
) -> (
    DuplexStream,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let index: SharedIndex = Index::shared(Config::default());
    objects::seed(&mut index.write());
    let metrics = Metrics::register(&mut Default::default(), index.clone());
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (stop, stopped) = watch::channel(false);
    let incoming = futures::stream::iter([server]);
    let never = std::future::pending::<()>();
    let (limits, connections) = (Limits::GRPC, ServerMetrics::unregistered("fuzz"));
    let index = Arc::new(index);
    let task = if destination {
        let grpc = Arc::new(DestinationGrpc::new(
            index,
            "cluster.local",
            stopped,
            metrics,
        ));
        tokio::spawn(async move { grpc.serve(incoming, &limits, connections, never).await })
    } else {
        let grpc = Arc::new(PolicyService::new(index, "cluster.local", stopped, metrics));
        tokio::spawn(async move { grpc.serve(incoming, &limits, connections, never).await })
    };
    (client, stop, task)
}

/// Writes `bytes` as the client's side of a connection to the Destination server (after the
/// connection preface when `preface`), closes the write side, and reads what the server says
/// until it closes or stops talking; then drains the server.
pub async fn raw_connection(bytes: &[u8], preface: bool) {
    let (mut client, stop, server) = spawn_server(true);
    let mut input = Vec::with_capacity(PREFACE.len() + bytes.len());
    if preface {
        input.extend_from_slice(PREFACE);
    }
    input.extend_from_slice(bytes);
    let (mut read, mut write) = tokio::io::split(&mut client);
    let writer = async {
        let _ = write.write_all(&input).await;
        let _ = write.shutdown().await;
    };
    let reader = async {
        let mut buf = vec![0; 16 * 1024];
        while let Ok(Ok(n)) = tokio::time::timeout(STEP, read.read(&mut buf)).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::join!(writer, reader);
    drop(client);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(STEP, server).await;
}

/// Sends one gRPC request for `METHODS[method]` whose body is `body` (framed as a gRPC
/// message when `frame`, else as it is) and reads the response's headers, first message and
/// trailers, as far as they come.
pub async fn request(method: usize, body: &[u8], frame: bool) {
    let (path, destination) = METHODS[method % METHODS.len()];
    let (client, stop, server) = spawn_server(destination);
    let Ok((mut h2, conn)) = h2::client::handshake(client).await else {
        return;
    };
    let conn = tokio::spawn(conn);
    let request = http::Request::post(format!("http://destination{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("a valid request");
    if let Ok((response, mut send)) = h2.send_request(request, false) {
        let payload = if frame {
            let mut framed = BytesMut::with_capacity(5 + body.len());
            framed.put_u8(0);
            framed.put_u32(body.len() as u32);
            framed.put_slice(body);
            framed.freeze()
        } else {
            Bytes::copy_from_slice(body)
        };
        let _ = send.send_data(payload, true);
        if let Ok(Ok(response)) = tokio::time::timeout(STEP, response).await {
            let mut body = response.into_body();
            if let Ok(Some(Ok(data))) = tokio::time::timeout(STEP, body.data()).await {
                let _ = body.flow_control().release_capacity(data.len());
            }
            let _ = tokio::time::timeout(STEP, body.trailers()).await;
        }
    }
    drop(h2);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(STEP, server).await;
    conn.abort();
}
