//! The API-server client's metrics, named as Linkerd's Go controllers name their Kubernetes
//! client's (`http_client_*{client="k8s"}`), plus the connections the client holds.
//!
//! They are process-wide: every client [`crate::client`] builds records into them, and each
//! controller registers them in its registry with [`register`].

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use std::sync::LazyLock;

/// The `client` label of every series, as in Linkerd.
const CLIENT: &str = "k8s";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    client: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    client: &'static str,
    /// Lower-case HTTP method.
    method: String,
    /// HTTP status code, or `error` when no response came.
    code: String,
}

#[derive(Clone, Debug)]
pub(crate) struct ClientMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    in_flight: Family<ClientLabels, Gauge>,
    connections: Family<ClientLabels, Counter>,
    open_connections: Family<ClientLabels, Gauge>,
}

pub(crate) static METRICS: LazyLock<ClientMetrics> = LazyLock::new(|| ClientMetrics {
    requests: Family::default(),
    latency: Family::new_with_constructor(|| {
        Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
    }),
    in_flight: Family::default(),
    connections: Family::default(),
    open_connections: Family::default(),
});

/// Registers the API-server client metrics of this process in `registry`:
/// `http_client_requests_total{client,method,code}`,
/// `http_client_request_latency_seconds{client,method,code}` (to the response headers),
/// `http_client_in_flight_requests`, `http_client_connections_total` (connections opened) and
/// `http_client_open_connections`.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register(
        "http_client_requests",
        "Requests to the Kubernetes API server by method and status code",
        m.requests.clone(),
    );
    registry.register_with_unit(
        "http_client_request_latency",
        "Time from sending a request to the API server to its response headers",
        Unit::Seconds,
        m.latency.clone(),
    );
    registry.register(
        "http_client_in_flight_requests",
        "Requests to the API server waiting for their response headers",
        m.in_flight.clone(),
    );
    registry.register(
        "http_client_connections",
        "TCP connections opened to the API server",
        m.connections.clone(),
    );
    registry.register(
        "http_client_open_connections",
        "TCP connections to the API server that are open",
        m.open_connections.clone(),
    );
}

const LABELS: ClientLabels = ClientLabels { client: CLIENT };

impl ClientMetrics {
    pub(crate) fn request_started(&self) {
        self.in_flight.get_or_create(&LABELS).inc();
    }

    pub(crate) fn request_ended(&self, method: &http::Method, code: Option<u16>, secs: f64) {
        self.in_flight.get_or_create(&LABELS).dec();
        let labels = RequestLabels {
            client: CLIENT,
            method: method.as_str().to_ascii_lowercase(),
            code: code.map_or_else(|| "error".to_string(), |c| c.to_string()),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(secs);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.get_or_create(&LABELS).inc();
        self.open_connections.get_or_create(&LABELS).inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.get_or_create(&LABELS).dec();
    }

    pub(crate) fn open_connections(&self) -> i64 {
        self.open_connections.get_or_create(&LABELS).get()
    }
}

/// Connections to API servers that clients of this process hold open now.
pub fn open_connections() -> i64 {
    METRICS.open_connections()
}
