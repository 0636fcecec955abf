//! The HTTP/2 server of Destination and of the policy APIs. Each connection is one task that
//! accepts its requests and writes every one of its streams itself, and the Get streams of one connection that watch
//! the same key form one group with one receiver: when the index publishes a change, each
//! connection holding the key wakes once, queues the shared, pre-framed update on each of the
//! group's streams and flushes them in one write. (A general-purpose server runs a task per
//! stream, each woken on its own and handing its frames to the connection through the
//! connection's lock, which is most of the cost of a fan-out to thousands of streams.)
//!
//! Flow control is per stream, as HTTP/2 requires: a stream takes its next message only once
//! its window has room, so a reader that stops reading holds one message at most and, when it
//! reads again, gets the updates to the latest state rather than every version in between.

use super::{DestinationGrpc, EncodedStream, Open, SERVICE};
use crate::{
    discover::{Discover, EndpointsRx, EndpointsSnapshot},
    frame,
};
use futures::{FutureExt, Stream, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use h2::{
    Ping, PingPong, RecvStream, SendStream,
    server::{Connection, SendResponse},
};
use linkerd2_proxy_api::destination as pb;
use oxlink_admin::serve::{Limits, ServerMetrics};
use prost::bytes::{Bytes, BytesMut};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker, ready},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::watch,
    task::JoinSet,
    time::Instant,
};
use tonic::Status;

/// The largest request body read: a GetDestination is a path and a context token.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A gRPC service this server answers.
pub(crate) trait GrpcService: Send + Sync + 'static {
    /// The reply to a request for `path` whose body is `body` (unchecked); `None` when no
    /// method has that path.
    fn call(&self, path: &str, body: &[u8]) -> Option<Reply>;

    /// The flag that, when it turns, ends every stream and drains every connection.
    fn shutdown(&self) -> watch::Receiver<bool>;
}

/// What a request becomes.
pub(crate) enum Reply {
    /// A status alone: the request failed.
    Status(Status),
    /// One framed message, then status OK.
    Unary(Bytes),
    /// A Get, written together with the connection's other streams of its key.
    Endpoints(EndpointsRx, Open),
    /// Any other stream of framed messages.
    Stream(EncodedStream),
}

/// Serves `service` on each connection `incoming` yields (h2c or TLS, already handshaken)
/// within `limits` until `shutdown` completes or the service's shutdown flag turns: then every
/// open stream ends with status OK, each connection sends GOAWAY and closes once its streams
/// are done, and this returns when every connection has closed.
pub(crate) async fn serve<S: GrpcService, IO>(
    service: Arc<S>,
    incoming: impl Stream<Item = IO> + Send,
    limits: &Limits,
    metrics: ServerMetrics,
    shutdown: impl Future<Output = ()> + Send,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut flag = service.shutdown();
    tokio::pin!(incoming, shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = super::shutdown_signalled(&mut flag) => break,
            accepted = incoming.next() => match accepted {
                Some(io) => {
                    connections.spawn(connection(
                        service.clone(),
                        io,
                        limits.clone(),
                        metrics.clone(),
                        draining.clone(),
                    ));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = drain.send(true);
    while connections.join_next().await.is_some() {}
}

impl<D: Discover> DestinationGrpc<D> {
    /// Serves Destination (see [`serve`]).
    pub async fn serve<IO>(
        self: Arc<Self>,
        incoming: impl Stream<Item = IO> + Send,
        limits: &Limits,
        metrics: ServerMetrics,
        shutdown: impl Future<Output = ()> + Send,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        serve(self, incoming, limits, metrics, shutdown).await
    }
}

impl<D: crate::policy::DiscoverPolicy> super::PolicyService<D> {
    /// Serves both policy APIs (see [`serve`]).
    pub async fn serve<IO>(
        self: Arc<Self>,
        incoming: impl Stream<Item = IO> + Send,
        limits: &Limits,
        metrics: ServerMetrics,
        shutdown: impl Future<Output = ()> + Send,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        serve(self, incoming, limits, metrics, shutdown).await
    }
}

impl<D: Discover> GrpcService for DestinationGrpc<D> {
    fn call(&self, path: &str, body: &[u8]) -> Option<Reply> {
        let get = match path {
            "/io.linkerd.proxy.destination.Destination/Get" => true,
            "/io.linkerd.proxy.destination.Destination/GetProfile" => false,
            _ => return None,
        };
        let name = if get { "Get" } else { "GetProfile" };
        let request = match frame::decode::<pb::GetDestination>(body) {
            Ok(request) => request,
            Err(status) => return Some(Reply::Status(status)),
        };
        self.metrics.record_started(SERVICE, name);
        let reply = if get {
            self.get(request).map(|rx| {
                let open = Open::new(self.metrics.clone(), SERVICE, "get", "Get");
                Reply::Endpoints(rx, open)
            })
        } else {
            self.get_profile(request).map(Reply::Stream)
        };
        Some(reply.unwrap_or_else(|status| {
            self.metrics.record_handled(SERVICE, name, status.code());
            Reply::Status(status)
        }))
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// Reads one request and answers it; a stream to write is left to the connection.
async fn start<S: GrpcService>(
    service: Arc<S>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    body_timeout: Duration,
) -> Option<Started> {
    let (parts, body) = request.into_parts();
    let body = tokio::time::timeout(body_timeout, read_body(body))
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "the request body did not arrive within {body_timeout:?}"
            )))
        });
    let reply = match body {
        Ok(body) => service
            .call(parts.uri.path(), &body)
            .unwrap_or_else(|| Reply::Status(Status::unimplemented("no such method"))),
        Err(status) => Reply::Status(status),
    };
    if let Reply::Status(status) = reply {
        respond_status(&mut respond, status);
        return None;
    }
    let mut send = respond.send_response(grpc_response(), false).ok()?;
    match reply {
        Reply::Status(_) => None,
        Reply::Unary(message) => {
            if send.send_data(message, false).is_ok() {
                end(&mut send, Status::ok(""));
            }
            None
        }
        Reply::Endpoints(rx, open) => Some(Started::Get(rx, Member::new(send, open))),
        Reply::Stream(stream) => Some(Started::Stream(Pump { send, stream })),
    }
}

/// A request that became a stream.
enum Started {
    /// A Get, to join the group of its key.
    Get(EndpointsRx, Member),
    /// Any other stream (GetProfile), written on its own.
    Stream(Pump),
}

/// Serves one connection until the client closes it, it fails, stops answering PINGs, or it
/// has drained (at shutdown, or after `limits.idle_timeout` without a stream).
async fn connection<S: GrpcService, IO>(
    service: Arc<S>,
    io: IO,
    limits: Limits,
    metrics: ServerMetrics,
    mut draining: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .handshake(Batched(io));
    let mut conn: Connection<Batched<IO>, Bytes> =
        match tokio::time::timeout(limits.handshake_timeout, handshake).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => {
                tracing::debug!(%error, "HTTP/2 handshake failed");
                return;
            }
            Err(_) => {
                metrics.refused("preface_timeout");
                tracing::debug!("no HTTP/2 preface within the handshake timeout");
                return;
            }
        };
    let keepalive = keepalive(conn.ping_pong(), &limits);
    tokio::pin!(keepalive);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let mut last_busy = Instant::now();
    let mut starting: FuturesUnordered<BoxFuture<'static, Option<Started>>> =
        FuturesUnordered::new();
    let mut groups: FuturesUnordered<Group> = FuturesUnordered::new();
    let mut pumps: FuturesUnordered<Pump> = FuturesUnordered::new();
    let mut drained = false;
    let mut closing = false;
    loop {
        if !(starting.is_empty() && groups.is_empty() && pumps.is_empty()) {
            last_busy = Instant::now();
        }
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    let body_timeout = limits.request_body_timeout;
                    starting.push(start(service.clone(), request, respond, body_timeout).boxed());
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "HTTP/2 connection failed");
                    return;
                }
                None => return,
            },
            Some(started) = starting.next(), if !starting.is_empty() => match started {
                None => {}
                Some(Started::Get(_, mut member)) if drained => member.end(Status::ok("")),
                Some(Started::Stream(mut pump)) if drained => pump.end(Status::ok("")),
                Some(Started::Get(rx, member)) => {
                    match groups.iter_mut().find(|group| group.rx.same_channel(&rx)) {
                        Some(group) => group.join(member),
                        None => groups.push(Group::new(rx, member)),
                    }
                }
                Some(Started::Stream(pump)) => pumps.push(pump),
            },
            Some(()) = groups.next(), if !groups.is_empty() => {}
            Some(()) = pumps.next(), if !pumps.is_empty() => {}
            why = &mut keepalive => {
                tracing::debug!(%why, "closing a connection whose peer does not answer PINGs");
                return;
            }
            _ = &mut idle, if !closing => {
                let deadline = last_busy + limits.idle_timeout;
                let busy = !(starting.is_empty() && groups.is_empty() && pumps.is_empty());
                if !busy && deadline <= Instant::now() {
                    tracing::debug!("closing an idle connection");
                    closing = true;
                    conn.graceful_shutdown();
                } else {
                    idle.as_mut().reset(deadline.max(Instant::now() + limits.idle_timeout / 4));
                }
            }
            _ = super::shutdown_signalled(&mut draining), if !drained => {
                drained = true;
                for group in std::mem::take(&mut groups) {
                    for mut member in group.members {
                        member.end(Status::ok(""));
                    }
                }
                for mut pump in std::mem::take(&mut pumps) {
                    pump.end(Status::ok(""));
                }
                conn.graceful_shutdown();
            }
        }
    }
}

/// A connection that h2 writes to as one without vectored writes. h2 then copies every DATA
/// frame smaller than 1 KiB into its write buffer (instead of writing each one on its own,
/// behind its header, as it does for frames of 256 bytes or more on vectored IO), so a
/// fan-out's small updates to a connection's many streams leave in a few large writes rather
/// than one system call per stream; larger frames (a first snapshot) are still written
/// without a copy.
struct Batched<IO>(IO);

impl<IO: AsyncRead + Unpin> AsyncRead for Batched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Batched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Sends a PING every `limits.keepalive_interval`; completes (with why) when one is not
/// answered within `limits.keepalive_timeout`, or the connection can no longer ping.
async fn keepalive(ping_pong: Option<PingPong>, limits: &Limits) -> String {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(limits.keepalive_interval).await;
        match tokio::time::timeout(limits.keepalive_timeout, ping_pong.ping(Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return format!("PING failed: {error}"),
            Err(_) => {
                return format!("no PING answer within {:?}", limits.keepalive_timeout);
            }
        }
    }
}

/// The Get streams of one connection that watch one key, woken together by its receiver.
/// Completes when the last of them has ended.
struct Group {
    rx: EndpointsRx,
    /// Each snapshot published after `current`; ends when the index drops the key.
    changes: futures::stream::BoxStream<'static, Arc<EndpointsSnapshot>>,
    current: Arc<EndpointsSnapshot>,
    /// The index dropped the key: each member ends once it has sent what it still owes.
    gone: bool,
    members: Vec<Member>,
    /// Woken when a member joins.
    waker: Option<Waker>,
}

impl Group {
    fn new(mut rx: EndpointsRx, member: Member) -> Self {
        let current = rx.borrow_and_update().clone();
        let changes = futures::stream::unfold(rx.clone(), |mut rx| async move {
            rx.changed().await.ok()?;
            let snapshot = rx.borrow_and_update().clone();
            Some((snapshot, rx))
        })
        .boxed();
        Self {
            rx,
            changes,
            current,
            gone: false,
            members: vec![member],
            waker: None,
        }
    }

    fn join(&mut self, member: Member) {
        self.members.push(member);
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}

impl Future for Group {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        while !this.gone {
            match this.changes.poll_next_unpin(cx) {
                Poll::Ready(Some(snapshot)) => this.current = snapshot,
                Poll::Ready(None) => this.gone = true,
                Poll::Pending => break,
            }
        }
        let (current, gone) = (&this.current, this.gone);
        this.members
            .retain_mut(|member| member.poll_send(current, gone, cx));
        if this.members.is_empty() {
            return Poll::Ready(());
        }
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            this.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// One Get stream: the snapshot it last caught up with, and the updates still to send.
struct Member {
    send: SendStream<Bytes>,
    last: Option<Arc<EndpointsSnapshot>>,
    pending: Arc<[Bytes]>,
    next: usize,
    open: Open,
}

impl Member {
    fn new(send: SendStream<Bytes>, open: Open) -> Self {
        Self {
            send,
            last: None,
            pending: Arc::new([]),
            next: 0,
            open,
        }
    }

    /// Sends what the stream owes to catch up with `current`, as far as its window allows.
    /// False when the stream is over: reset by the client, failed, or ended because the key
    /// is `gone`.
    fn poll_send(
        &mut self,
        current: &Arc<EndpointsSnapshot>,
        gone: bool,
        cx: &mut Context<'_>,
    ) -> bool {
        loop {
            let Some(update) = self.pending.get(self.next) else {
                if !self
                    .last
                    .as_ref()
                    .is_some_and(|last| Arc::ptr_eq(last, current))
                {
                    self.pending = current.updates_since(self.last.as_deref());
                    self.next = 0;
                    self.last = Some(current.clone());
                    continue;
                }
                if gone {
                    self.end(Status::ok(""));
                    return false;
                }
                // Caught up: only a reset can happen to it now.
                return self.send.poll_reset(cx).is_pending();
            };
            match poll_room(&mut self.send, cx) {
                Poll::Ready(true) => {}
                Poll::Ready(false) => return false,
                Poll::Pending => return true,
            }
            if self.send.send_data(update.clone(), false).is_err() {
                return false;
            }
            self.next += 1;
            self.open.sent();
        }
    }

    fn end(&mut self, status: Status) {
        end(&mut self.send, status);
    }
}

/// Waits until `send`'s window has room for one more byte, which is enough to take the next
/// message: h2 queues what the window does not hold yet, and the stream asks for more only
/// once that is sent. False when the stream is closed or reset.
fn poll_room(send: &mut SendStream<Bytes>, cx: &mut Context<'_>) -> Poll<bool> {
    send.reserve_capacity(1);
    if send.capacity() > 0 {
        return Poll::Ready(send.poll_reset(cx).is_pending());
    }
    loop {
        match ready!(send.poll_capacity(cx)) {
            Some(Ok(0)) => {}
            Some(Ok(_)) => return Poll::Ready(true),
            Some(Err(_)) | None => return Poll::Ready(false),
        }
    }
}

/// Ends the stream with `status` in its trailers.
fn end(send: &mut SendStream<Bytes>, status: Status) {
    let mut trailers = http::HeaderMap::new();
    if status.add_header(&mut trailers).is_ok() {
        let _ = send.send_trailers(trailers);
    } else {
        send.send_reset(h2::Reason::INTERNAL_ERROR);
    }
}

/// A stream of its own (GetProfile): its messages, written as its window allows. Completes
/// when the stream ends, fails, or the client resets it.
struct Pump {
    send: SendStream<Bytes>,
    stream: EncodedStream,
}

impl Pump {
    fn end(&mut self, status: Status) {
        end(&mut self.send, status);
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if !ready!(poll_room(&mut this.send, cx)) {
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

#[cfg(test)]
mod tests;
