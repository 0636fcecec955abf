//! The tap API: `GET /tap?resource=…&namespace=…` answered with a stream of JSON lines, and the
//! per-stream tasks that tap each pod's proxy.

use crate::{
    limit::Bucket,
    pods::{self, Directory, ResolveError, Target},
    proxy,
};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use kube::Client;
use linkerd2_proxy_api::tap::ObserveRequest;
use oxlink_admin::serve::{Limits, Protocol, RequestBody, ServerMetrics, accept, serve_http};
use oxlink_tls::ClientConfig;
use oxlink_viz::tap::{HttpEvent, StreamId, StreamLine, StreamStatus, TapRequest};
use parking_lot::Mutex;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use std::{
    collections::HashSet,
    convert::Infallible,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, mpsc::error::TrySendError},
    task::JoinSet,
};

type Body = BoxBody<Bytes, Infallible>;

/// Request streams remembered per pod so that their responses are shown with them.
const MAX_ADMITTED: usize = 10_000;

/// What one client can make the server hold.
#[derive(Clone, Debug)]
pub struct TapLimits {
    /// Tap streams served at once; more are refused (429).
    pub max_streams: usize,
    /// The highest `--max-rps` a client may ask for.
    pub max_rps: f64,
    /// How long a stream lasts at most; it then ends with a word to the client.
    pub max_duration: Duration,
    /// Events buffered for one client; past it, events are dropped and counted.
    pub buffer: usize,
}

impl Default for TapLimits {
    fn default() -> Self {
        Self {
            max_streams: 100,
            max_rps: 1_000.0,
            max_duration: Duration::from_secs(3600),
            buffer: 1_000,
        }
    }
}

/// The server's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub trust_domain: String,
    /// The proxies' tap port.
    pub proxy_tap_port: u16,
    pub limits: TapLimits,
}

/// The tap server's metrics.
#[derive(Clone, Debug, Default)]
pub struct TapMetrics {
    streams: Gauge,
    refused: Counter,
    events: Counter,
    dropped: Counter,
    pod_errors: Counter,
}

impl TapMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("tap_streams", "Tap streams being served", m.streams.clone());
        registry.register(
            "tap_streams_refused",
            "Tap streams refused because --max-streams were being served",
            m.refused.clone(),
        );
        registry.register("tap_events", "Events sent to clients", m.events.clone());
        registry.register(
            "tap_events_dropped",
            "Events dropped because a client read too slowly",
            m.dropped.clone(),
        );
        registry.register(
            "tap_pod_errors",
            "Taps of a pod's proxy that failed",
            m.pod_errors.clone(),
        );
        m
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

struct Shared {
    client: Client,
    tls: Arc<ClientConfig>,
    config: Config,
    streams: Arc<Semaphore>,
    metrics: TapMetrics,
}

/// What the tap API server runs with.
pub struct Server {
    pub client: Client,
    /// Mesh TLS to the proxies, presenting our certificate.
    pub tls: Arc<ClientConfig>,
    pub config: Config,
    pub metrics: TapMetrics,
    pub connections: ServerMetrics,
    pub limits: Limits,
}

/// Serves the tap API on `listener` (HTTP/1) until `shutdown` completes.
pub async fn serve(listener: TcpListener, server: Server, shutdown: impl Future<Output = ()>) {
    let Server {
        client,
        tls,
        config,
        metrics,
        connections,
        limits,
    } = server;
    let shared = Arc::new(Shared {
        client,
        tls,
        streams: Arc::new(Semaphore::new(config.limits.max_streams)),
        config,
        metrics,
    });
    let incoming = accept(listener, &limits, None, connections.clone());
    let svc = hyper::service::service_fn(move |req: Request<RequestBody>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    serve_http(
        incoming,
        svc,
        Protocol::Http1,
        &limits,
        connections,
        shutdown,
    )
    .await;
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut body = message.into();
    body.push('\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("a valid response")
}

fn line(l: &StreamLine) -> Bytes {
    let mut v = serde_json::to_vec(l).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn status_line(error: String) -> Bytes {
    line(&StreamLine::Status(StreamStatus {
        dropped: 0,
        error: Some(error),
    }))
}

async fn handle<B>(shared: Arc<Shared>, req: Request<B>) -> Response<Body> {
    if req.uri().path() != "/tap" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the tap API is GET /tap?resource=TYPE/NAME&namespace=NS",
        );
    }
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "the tap API takes GET only");
    }
    let limits = &shared.config.limits;
    let tap = match TapRequest::from_query(req.uri().query().unwrap_or_default())
        .and_then(|r| r.validate(limits.max_rps).map(|()| r))
    {
        Ok(tap) => tap,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Ok(permit) = shared.streams.clone().try_acquire_owned() else {
        shared.metrics.refused.inc();
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "the tap server is serving its limit of {} streams; try again later",
                limits.max_streams
            ),
        );
    };
    let targets = match pods::resolve(
        &shared.client,
        &tap.resource,
        &tap.namespace,
        &shared.config.trust_domain,
    )
    .await
    {
        Ok(t) => t,
        Err(e @ ResolveError::Api(_)) => {
            return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        Err(e) => return text(StatusCode::NOT_FOUND, e.to_string()),
    };
    let directory = match Directory::load(&shared.client).await {
        Ok(d) => d,
        Err(e) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reading the cluster's pods: {e}"),
            );
        }
    };
    tracing::info!(resource = %tap.resource.display(), ns = %tap.namespace, pods = targets.len(), max_rps = tap.max_rps, "tap started");
    let (tx, rx) = mpsc::channel::<Bytes>(limits.buffer.max(1));
    tokio::spawn(run_stream(shared, tap, targets, directory, tx, permit));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(BoxBody::new(StreamBody::new(body)))
        .expect("a valid response")
}

/// What the tasks of one stream share.
struct Stream {
    tx: mpsc::Sender<Bytes>,
    bucket: Mutex<Bucket>,
    directory: Directory,
    dropped: AtomicU64,
    metrics: TapMetrics,
}

impl Stream {
    /// Sends a line unless the client's buffer is full (then it is counted as dropped);
    /// `false` once the client has gone.
    fn send(&self, bytes: Bytes) -> bool {
        match self.tx.try_send(bytes) {
            Ok(()) => {
                self.metrics.events.inc();
                true
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.dropped.inc();
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

async fn run_stream(
    shared: Arc<Shared>,
    tap: TapRequest,
    targets: Vec<Target>,
    directory: Directory,
    tx: mpsc::Sender<Bytes>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _permit = permit;
    shared.metrics.streams.inc();
    let stream = Arc::new(Stream {
        tx: tx.clone(),
        bucket: Mutex::new(Bucket::new(tap.max_rps, Instant::now())),
        directory,
        dropped: AtomicU64::new(0),
        metrics: shared.metrics.clone(),
    });
    let observe = proxy::observe_request(&tap, u32::MAX);
    let mut pods = JoinSet::new();
    for target in targets {
        pods.spawn(tap_pod(
            target,
            observe.clone(),
            shared.clone(),
            stream.clone(),
        ));
    }
    let deadline = tokio::time::sleep(shared.config.limits.max_duration);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tx.closed() => break,
            _ = &mut deadline => {
                let _ = tx.try_send(status_line(format!(
                    "the stream reached the tap server's limit of {:?}",
                    shared.config.limits.max_duration
                )));
                break;
            }
            Some(_) = pods.join_next() => {
                if pods.is_empty() {
                    let _ = tx.try_send(status_line("every tapped proxy ended its tap".into()));
                    break;
                }
            }
            _ = tick.tick() => {
                let n = stream.dropped.swap(0, Ordering::Relaxed);
                if n > 0 {
                    let status = line(&StreamLine::Status(StreamStatus { dropped: n, error: None }));
                    if tx.try_send(status).is_err() {
                        stream.dropped.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    pods.abort_all();
    shared.metrics.streams.dec();
    tracing::info!(resource = %tap.resource.display(), ns = %tap.namespace, "tap ended");
}

async fn tap_pod(
    target: Target,
    observe: ObserveRequest,
    shared: Arc<Shared>,
    stream: Arc<Stream>,
) {
    let result: Result<(), proxy::ProxyError> = async {
        let mut client = proxy::connect(
            target.ip,
            shared.config.proxy_tap_port,
            &target.identity,
            shared.tls.clone(),
        )
        .await?;
        let mut events = client
            .observe(observe)
            .await
            .map_err(|s| proxy::ProxyError::Observe(Box::new(s)))?
            .into_inner();
        let mut admitted: HashSet<StreamId> = HashSet::new();
        loop {
            let message = tokio::select! {
                _ = stream.tx.closed() => return Ok(()),
                m = events.message() => m,
            };
            let Some(event) = message.map_err(|s| proxy::ProxyError::Observe(Box::new(s)))? else {
                return Ok(());
            };
            let Some(mut event) = proxy::event(event) else {
                continue;
            };
            let id = event.http.id();
            let shown = match &event.http {
                HttpEvent::RequestInitEvent(_) => {
                    let take = stream.bucket.lock().take(Instant::now());
                    if take {
                        if admitted.len() >= MAX_ADMITTED {
                            admitted.clear();
                        }
                        admitted.insert(id);
                    }
                    take
                }
                HttpEvent::ResponseInitEvent(_) => admitted.contains(&id),
                HttpEvent::ResponseEndEvent(_) => admitted.remove(&id),
            };
            if !shown {
                continue;
            }
            stream.directory.hydrate(&mut event.source);
            stream.directory.hydrate(&mut event.destination);
            if !stream.send(line(&StreamLine::Event(Box::new(event)))) {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(error) = result {
        shared.metrics.pod_errors.inc();
        tracing::info!(pod = %target.name, ns = %target.namespace, %error, "tap failed");
        let _ = stream.tx.try_send(status_line(format!(
            "pod/{} in namespace {}: {error}",
            target.name, target.namespace
        )));
    }
}
