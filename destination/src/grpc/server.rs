//! Destination's HTTP/2 server. Each connection is one task that accepts its requests and
//! writes every one of its streams itself: when the index publishes a change, a connection
//! with a hundred subscribers of the changed key wakes once, queues a hundred DATA frames (the
//! shared, pre-framed update) and flushes them in one write. (A general-purpose server runs a
//! task per stream, each handing its frames to the connection through the connection's lock,
//! which is most of the cost of a fan-out to thousands of streams.)
//!
//! Flow control is per stream, as HTTP/2 requires: a stream takes its next message only once
//! its window has room, so a reader that stops reading holds one message at most and, when it
//! reads again, gets the updates to the latest state rather than every version in between.

use super::{DestinationGrpc, EncodedStream, SERVICE};
use crate::{discover::Discover, frame};
use futures::{FutureExt, Stream, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use h2::{
    RecvStream, SendStream,
    server::{Connection, SendResponse},
};
use linkerd2_proxy_api::destination as pb;
use prost::{
    Message,
    bytes::{Bytes, BytesMut},
};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::watch,
    task::JoinSet,
};
use tonic::{Status, codegen::http};

/// The largest request body read: a GetDestination is a path and a context token.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

impl<D: Discover> DestinationGrpc<D> {
    /// Serves Destination on each connection `incoming` yields (h2c or TLS, already
    /// handshaken) until `shutdown` completes or the streams' shutdown flag turns: then every
    /// open stream ends with status OK, each connection sends GOAWAY and closes once its
    /// streams are done, and this returns when every connection has closed.
    pub async fn serve<IO>(
        self: Arc<Self>,
        incoming: impl Stream<Item = std::io::Result<IO>> + Send,
        shutdown: impl Future<Output = ()> + Send,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (drain, draining) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut flag = self.shutdown.clone();
        tokio::pin!(incoming, shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = super::shutdown_signalled(&mut flag) => break,
                accepted = incoming.next() => match accepted {
                    Some(Ok(io)) => {
                        connections.spawn(connection(self.clone(), io, draining.clone()));
                    }
                    Some(Err(error)) => tracing::debug!(%error, "accept"),
                    None => break,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let _ = drain.send(true);
        while connections.join_next().await.is_some() {}
    }

    /// Reads one request, and answers it: with a stream to pump, or with a status.
    async fn start(
        self: Arc<Self>,
        request: http::Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
    ) -> Option<Pump> {
        let (name, call): (_, fn(&Self, _) -> _) = match request.uri().path() {
            "/io.linkerd.proxy.destination.Destination/Get" => ("Get", Self::get),
            "/io.linkerd.proxy.destination.Destination/GetProfile" => {
                ("GetProfile", Self::get_profile)
            }
            _ => {
                respond_status(&mut respond, Status::unimplemented("no such method"));
                return None;
            }
        };
        let body = read_body(request.into_body()).await;
        let request = match body.and_then(|body| decode_request(&body)) {
            Ok(request) => request,
            Err(status) => {
                respond_status(&mut respond, status);
                return None;
            }
        };
        self.metrics.record_started(SERVICE, name);
        match call(&self, request) {
            Ok(stream) => {
                let send = respond.send_response(grpc_response(), false).ok()?;
                Some(Pump { send, stream })
            }
            Err(status) => {
                self.metrics.record_handled(SERVICE, name, status.code());
                respond_status(&mut respond, status);
                None
            }
        }
    }
}

/// Serves one connection until the client closes it, it fails, or it has drained.
async fn connection<D: Discover, IO>(
    grpc: Arc<DestinationGrpc<D>>,
    io: IO,
    mut draining: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn: Connection<IO, Bytes> = match h2::server::handshake(io).await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::debug!(%error, "HTTP/2 handshake failed");
            return;
        }
    };
    let mut starting: FuturesUnordered<BoxFuture<'static, Option<Pump>>> = FuturesUnordered::new();
    let mut pumps: FuturesUnordered<Pump> = FuturesUnordered::new();
    let mut drained = false;
    loop {
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    starting.push(grpc.clone().start(request, respond).boxed());
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "HTTP/2 connection failed");
                    return;
                }
                None => return,
            },
            Some(started) = starting.next(), if !starting.is_empty() => {
                if let Some(mut pump) = started {
                    if drained {
                        pump.end(Status::ok(""));
                    } else {
                        pumps.push(pump);
                    }
                }
            }
            Some(()) = pumps.next(), if !pumps.is_empty() => {}
            _ = super::shutdown_signalled(&mut draining), if !drained => {
                drained = true;
                for mut pump in std::mem::take(&mut pumps) {
                    pump.end(Status::ok(""));
                }
                conn.graceful_shutdown();
            }
        }
    }
}

/// One response stream: its messages, written as its window allows. Completes when the
/// stream ends, fails, or the client resets it.
struct Pump {
    send: SendStream<Bytes>,
    stream: EncodedStream,
}

impl Pump {
    /// Ends the stream with `status` in its trailers.
    fn end(&mut self, status: Status) {
        let mut trailers = http::HeaderMap::new();
        if status.add_header(&mut trailers).is_ok() {
            let _ = self.send.send_trailers(trailers);
        } else {
            self.send.send_reset(h2::Reason::INTERNAL_ERROR);
        }
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            // Room for one more byte is enough to take the next message: h2 queues what the
            // window does not hold yet, and the stream asks for more only once that is sent.
            this.send.reserve_capacity(1);
            if this.send.capacity() == 0 {
                loop {
                    match ready!(this.send.poll_capacity(cx)) {
                        Some(Ok(0)) => {}
                        Some(Ok(_)) => break,
                        Some(Err(_)) | None => return Poll::Ready(()),
                    }
                }
            } else if this.send.poll_reset(cx).is_ready() {
                return Poll::Ready(());
            }
            match ready!(this.stream.poll_next_unpin(cx)) {
                Some(Ok(message)) => {
                    if this.send.send_data(message, false).is_err() {
                        return Poll::Ready(());
                    }
                }
                Some(Err(status)) => {
                    this.end(status);
                    return Poll::Ready(());
                }
                None => {
                    this.end(Status::ok(""));
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// The request: exactly one uncompressed message.
pub(super) fn decode_request(body: &[u8]) -> Result<pb::GetDestination, Status> {
    pb::GetDestination::decode(frame::unframed(body)?)
        .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
}

/// The request body, up to [`MAX_REQUEST_BYTES`].
async fn read_body(mut body: RecvStream) -> Result<Bytes, Status> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| Status::internal(format!("reading the request: {e}")))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > MAX_REQUEST_BYTES {
            return Err(Status::resource_exhausted(format!(
                "the request is larger than {MAX_REQUEST_BYTES} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The response headers of a gRPC stream.
fn grpc_response() -> http::Response<()> {
    let mut rsp = http::Response::new(());
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    rsp
}

/// Answers with `status` alone: a trailers-only response.
fn respond_status(respond: &mut SendResponse<Bytes>, status: Status) {
    let mut rsp = grpc_response();
    if status.add_header(rsp.headers_mut()).is_err() {
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    }
    let _ = respond.send_response(rsp, true);
}
