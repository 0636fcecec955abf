//! The one way an oxlink server accepts and serves connections, with the limits every one of
//! them needs because no sidecar stands in front of it.
//!
//! [`accept`] is the only accept loop: it backs off when `accept(2)` fails (out of file
//! descriptors must not spin), refuses connections past [`Limits::max_connections`] (logged
//! once per episode and counted in `server_connections_refused_total`), and completes TLS
//! handshakes concurrently within [`Limits::handshake_timeout`]. [`serve_http`] serves a hyper
//! service (HTTP/1, HTTP/2 or both) on what `accept` yields, with the HTTP/2 limits, keep-alive
//! pings, the request-body timeout and the idle timeout applied; destination's own HTTP/2
//! server applies the same [`Limits`] to its `h2` connections.
//!
//! The defaults, and why:
//!
//! | limit | gRPC (identity, destination, policy) | webhook | admin | web (dashboard, metrics API) | why |
//! |---|---|---|---|---|---|
//! | connections | 10,000 | 1,000 | 100 | 200 | every proxy holds one connection to each destination and policy replica; 10,000 meshed pods per replica is a large cluster. The webhook's clients are API servers (a few connections), the admin server's are kubelet and Prometheus, the web server's a few browsers (six connections each) and CLIs. |
//! | streams per connection | 1,000 | 100 | — | 100 | a proxy opens a Get and a GetProfile per active outbound target on one destination connection, and an OutboundPolicies watch per target plus an InboundServerPolicies watch per port on one policy connection, each held for up to an hour (`CONTROL_STREAM_LIFETIME`). 1,000 lets one proxy follow 500 services at once; kube-apiserver uses the same 1,000 for the same shape (long-lived watches on one connection). A client past the limit waits for a stream to end, so the limit must be well above what a proxy opens. Certify and admission reviews are unary: 100, envoy's recommendation for edge servers (Go's default is 250). |
//! | header list | 16 KiB | 16 KiB | 16 KiB | 16 KiB | hyper's default and the proxy's; a proxy's gRPC headers are a few hundred bytes (envoy allows 60 KiB, h2's own default is 16 MiB). |
//! | TLS handshake and HTTP/2 preface (HTTP/1: the request head) | 10 s | 10 s | 10 s | 10 s | the proxy's own protocol-detection timeout. |
//! | request body | 10 s | 10 s | 10 s | 10 s (the web server takes no body) | a proxy sends its whole request at once; the API server gives a webhook 10 s by default. |
//! | HTTP/2 keep-alive ping, answer within | 30 s, 20 s | 30 s, 20 s | — | 30 s, 20 s | a peer whose node is gone is reaped within a minute; 20 s (gRPC-go's default ping timeout) tolerates a starved node where the proxy's 3 s would not. |
//! | idle connection (no request in flight) | 10 min | 90 s | 90 s | 90 s | envoy closes idle connections after an hour, Go's HTTP client its own after 90 s; a proxy with no open stream to us for 10 minutes reconnects cheaply. |

mod accept;
mod args;
mod http;
mod metrics;

pub use self::{
    accept::{Conn, Incoming, accept},
    args::LimitArgs,
    http::{BodyTimeout, Protocol, RequestBody, serve_http},
    metrics::ServerMetrics,
};
use std::time::Duration;

/// The resource limits of one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// HTTP/2 streams a client may have open on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`);
    /// a stream past it is refused with `REFUSED_STREAM`.
    pub max_concurrent_streams: u32,
    /// The largest header list accepted (`SETTINGS_MAX_HEADER_LIST_SIZE`), in bytes.
    pub max_header_list_size: u32,
    /// Time to complete the TLS handshake, and then to send the HTTP/2 preface (or an HTTP/1
    /// request head).
    pub handshake_timeout: Duration,
    /// Time to send a request's whole body once its headers have arrived.
    pub request_body_timeout: Duration,
    /// An HTTP/2 PING is sent this often ...
    pub keepalive_interval: Duration,
    /// ... and the connection is closed when it is not answered within this.
    pub keepalive_timeout: Duration,
    /// A connection without a request in flight for this long is closed (GOAWAY first).
    pub idle_timeout: Duration,
}

/// The length of the HTTP/2 client preface. A client that has not sent this many bytes within
/// [`Limits::handshake_timeout`] is dropped; every HTTP/1.1 request, with its mandatory `Host`
/// header, is longer.
pub const PREFACE_LEN: u64 = 24;

impl Limits {
    /// identity, destination and policy: gRPC servers of proxies.
    pub const GRPC: Self = Self {
        max_connections: 10_000,
        max_concurrent_streams: 1_000,
        max_header_list_size: 16 * 1024,
        handshake_timeout: Duration::from_secs(10),
        request_body_timeout: Duration::from_secs(10),
        keepalive_interval: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(600),
    };

    /// The proxy-injector's admission server, called by API servers.
    pub const WEBHOOK: Self = Self {
        max_connections: 1_000,
        max_concurrent_streams: 100,
        idle_timeout: Duration::from_secs(90),
        ..Self::GRPC
    };

    /// The viz dashboard and metrics API (`oxlink-web`): browsers and CLIs, a few at a time.
    pub const WEB: Self = Self {
        max_connections: 200,
        max_concurrent_streams: 100,
        idle_timeout: Duration::from_secs(90),
        ..Self::GRPC
    };

    /// The admin server (`/live`, `/ready`, `/metrics`), HTTP/1 only.
    pub const ADMIN: Self = Self {
        max_connections: 100,
        max_concurrent_streams: 1,
        idle_timeout: Duration::from_secs(90),
        ..Self::GRPC
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::GRPC
    }
}

#[cfg(test)]
mod tests;
