//! The tap server of `oxlink viz`: live request and response events from the proxies.
//!
//! A client (the `oxlink viz tap` and `viz top` commands) asks through the API server's Service
//! proxy (`services/tap:8088/proxy/tap?resource=deploy/web&namespace=…`), so the API server
//! authenticates it and authorizes `services/proxy` on this Service. The server resolves the
//! resource into its running meshed pods ([`pods`]), connects to each pod's proxy on its tap
//! port 4190 over mesh TLS with its own identity
//! (`tap.linkerd-viz.serviceaccount.identity.<ns>.<trust-domain>`, certified by identity like
//! destination's; the proxies accept no other tap client, see `LINKERD2_PROXY_TAP_SVC_NAME`),
//! calls `io.linkerd.proxy.tap.Tap/Observe` with Linkerd's filters ([`proxy`]), adds what the
//! cluster knows about both ends of each event (pod, namespace, owner), and streams the events
//! back as JSON lines (`oxlink_viz::tap`).
//!
//! What a client can make it hold is bounded ([`TapLimits`]): streams at once, new requests per
//! second (`--max-rps`, Linkerd's 100 by default, capped by the server), how long a stream lasts,
//! and events buffered for a slow client — past the buffer events are dropped, counted
//! (`tap_events_dropped_total`) and reported to the client, never queued.

mod args;
mod limit;
pub mod pods;
pub mod proxy;
mod server;

pub use self::{
    args::Args,
    server::{Config, Server, TapLimits, TapMetrics, serve},
};
