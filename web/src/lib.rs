//! `oxlink-web`: the viz extension's **metrics API** and **dashboard**, one small server.
//!
//! Linkerd runs these as two Go deployments (`metrics-api`, a gRPC API over HTTP, and `web`, a
//! Go server with a React app that calls it). Ours is one process, deployed as the `web`
//! Deployment, with two listeners answering the same requests:
//!
//! - `:8084` (Service `web`): the dashboard. Its `Host` must match `--enforced-host` (Linkerd's
//!   regular expression: `localhost`, `127.0.0.1`, `[::1]`, `web.linkerd-viz.svc…`), so a page
//!   that rebinds a DNS name to a port-forward cannot read it.
//! - `:8085` (Service `metrics-api`): the same API and pages without the `Host` check, for
//!   clients inside the cluster and those that come through the API server's Service proxy
//!   (`oxlink viz stat|routes|edges|check` and the local port of `oxlink viz dashboard`, whose
//!   own listener checks `Host`).
//!
//! The API ([`server`]) answers stat, routes and edges as JSON: the request is `oxlink-viz`'s
//! ([`oxlink_viz::api`], validated there once, so the CLI and the server refuse the same input
//! with the same words), the PromQL is `oxlink-viz`'s, the MESHED counts and ServiceProfile
//! routes come from Kubernetes ([`cluster`]), Prometheus' answers from [`prometheus`] (the
//! bundled one, or the chart's `prometheusUrl`), and the rows are `oxlink-viz`'s, so the CLI's
//! tables print exactly what they printed when the CLI ran the queries itself.
//!
//! The dashboard is one HTML page, a stylesheet and a small script (no build step, embedded in
//! the binary): an overview of namespaces with their meshed pods and golden metrics, a
//! namespace's deployments and pods, and a deployment's stats, routes (with `[DEFAULT]`) and
//! edges, each fetched from the API.
//!
//! Every listener runs on `oxlink_admin::serve` with [`oxlink_admin::serve::Limits::WEB`]
//! (connections, header size, handshake, idle time); API requests in flight are bounded by
//! [`server::MAX_IN_FLIGHT`] (more are refused with 503, not queued) and each by
//! [`server::REQUEST_TIMEOUT`]; a request with a body, a query string over
//! [`oxlink_viz::api::MAX_QUERY_BYTES`] or bad input is refused before anything is asked of
//! Kubernetes or Prometheus, and Prometheus' answers are read up to
//! [`prometheus::MAX_ANSWER_BYTES`].
//!
//! Not here yet: the live tap view and the topology picture (tap is its own server), Grafana
//! links, TLS to an external Prometheus (`prometheusUrl` must be `http://`).

mod args;
pub mod cluster;
pub mod metrics;
pub mod prometheus;
pub mod serve;
pub mod server;

pub use args::Args;
