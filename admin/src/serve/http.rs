//! Serving a hyper service on the connections [`super::accept`] yields, with the limits.

use super::{Conn, Incoming, Limits, PREFACE_LEN, ServerMetrics};
use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming as IncomingBody, SizeHint},
    service::Service,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use parking_lot::Mutex;
use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{task::JoinSet, time::Instant};

/// What a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// HTTP/2 when the client's preface says so, else HTTP/1.1.
    Auto,
}

/// Serves `service` on each connection `incoming` yields until `shutdown` completes; then
/// each connection finishes its requests in flight and closes (GOAWAY on HTTP/2), and this
/// returns when all have closed. Every request's body is a [`RequestBody`], which fails once
/// `limits.request_body_timeout` has passed since the request arrived.
pub async fn serve_http<S, B>(
    mut incoming: Incoming,
    service: S,
    protocol: Protocol,
    limits: &Limits,
    metrics: ServerMetrics,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (drain, draining) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = incoming.next() => match accepted {
                Some(conn) => {
                    connections.spawn(connection(
                        conn,
                        service.clone(),
                        protocol,
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
    drop(incoming);
    let _ = drain.send(true);
    while connections.join_next().await.is_some() {}
}

async fn connection<S, B>(
    conn: Conn,
    service: S,
    protocol: Protocol,
    limits: Limits,
    metrics: ServerMetrics,
    mut draining: tokio::sync::watch::Receiver<bool>,
) where
    S: Service<Request<RequestBody>, Response = Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (peer, read) = (conn.peer(), conn.bytes_read());
    let activity = Activity::default();
    let service = Limited {
        inner: Arc::new(service),
        activity: activity.clone(),
        body_timeout: limits.request_body_timeout,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .max_buf_size((limits.max_header_list_size as usize).max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    let builder = match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
        Protocol::Auto => builder,
    };
    let conn = builder.serve_connection(TokioIo::new(conn), service);
    tokio::pin!(conn);
    let preface = tokio::time::sleep(limits.handshake_timeout);
    tokio::pin!(preface);
    let mut prefaced = false;
    let mut closing = false;
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            result = &mut conn => {
                if let Err(error) = result {
                    tracing::debug!(server = metrics.server(), %peer, %error, "connection");
                }
                return;
            }
            _ = &mut preface, if !prefaced => {
                if read.load(Ordering::Relaxed) < PREFACE_LEN {
                    metrics.refused("preface_timeout");
                    tracing::debug!(server = metrics.server(), %peer, "no request within the handshake timeout");
                    return;
                }
                prefaced = true;
            }
            _ = &mut idle, if !closing => match activity.idle_until(limits.idle_timeout) {
                None => {
                    tracing::debug!(server = metrics.server(), %peer, "closing an idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some(deadline) => idle.as_mut().reset(deadline),
            },
            _ = draining.wait_for(|d| *d), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Clone)]
struct Activity(Arc<ActivityInner>);

struct ActivityInner {
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(ActivityInner {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        }))
    }
}

impl Activity {
    fn start(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// `None` when the connection has been idle for `timeout`, else when to look again.
    fn idle_until(&self, timeout: Duration) -> Option<Instant> {
        if self.0.in_flight.load(Ordering::Acquire) > 0 {
            return Some(Instant::now() + timeout);
        }
        let deadline = *self.0.since.lock() + timeout;
        (deadline > Instant::now()).then_some(deadline)
    }
}

/// One request in flight; ends when its response is ready.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.0.since.lock() = Instant::now();
        self.0.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service with the request-body timeout and activity tracking around it.
struct Limited<S> {
    inner: Arc<S>,
    activity: Activity,
    body_timeout: Duration,
}

impl<S, B> Service<Request<IncomingBody>> for Limited<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, req: Request<IncomingBody>) -> Self::Future {
        let in_flight = self.activity.start();
        let deadline = Instant::now() + self.body_timeout;
        let future = self.inner.call(req.map(|body| RequestBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            timeout: self.body_timeout,
        }));
        Box::pin(async move {
            let response = future.await;
            drop(in_flight);
            response
        })
    }
}

/// A request body that fails with [`BodyTimeout`] once the request-body timeout has passed
/// and it has not ended.
pub struct RequestBody {
    inner: IncomingBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

impl Body for RequestBody {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
