//! `oxlink-tap`'s command line.

use crate::{Config, Server, TapLimits, TapMetrics, serve};
use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use oxlink_admin::{
    Admin, LogArgs, Readiness, Tasks,
    serve::{LimitArgs, Limits, ServerMetrics},
    serve_admin, shutdown_signal,
};
use oxlink_crds::{
    duration::parse_duration,
    names::{
        control_plane::{
            IDENTITY_GRPC_PORT, IDENTITY_SERVICE, IDENTITY_SERVICE_ACCOUNT, PROXY_TAP_PORT,
            TAP_ADMIN_PORT, TAP_PORT, TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY,
        },
        identity::{service_account_identity, tap_identity},
        proxy::IDENTITY_TOKEN_PATH,
    },
};
use oxlink_tls::{CertifyClient, CertifyConfig, CertifyMetrics, ServingCert, TrustBundle};
use prometheus_client::registry::Registry;
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

/// The tap server of oxlink viz: live requests from the proxies' tap API.
#[derive(Debug, Parser)]
#[command(name = "oxlink-tap", version)]
pub struct Args {
    /// Address of the tap API (HTTP; reached through the API server's Service proxy).
    #[arg(long, env = "OXLINK_TAP_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], TAP_PORT)))]
    addr: SocketAddr,

    /// Address of the admin server (`/live`, `/ready`, `/metrics`).
    #[arg(long, env = "OXLINK_TAP_ADMIN_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], TAP_ADMIN_PORT)))]
    admin_addr: SocketAddr,

    /// Namespace of the Linkerd control plane (identity and the trust roots are there).
    #[arg(
        long,
        env = "OXLINK_TAP_CONTROLLER_NAMESPACE",
        default_value = "linkerd"
    )]
    controller_namespace: String,

    /// The mesh's trust domain.
    #[arg(
        long,
        env = "OXLINK_TAP_IDENTITY_TRUST_DOMAIN",
        default_value = "cluster.local"
    )]
    identity_trust_domain: String,

    /// The cluster's DNS domain.
    #[arg(
        long,
        env = "OXLINK_TAP_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,

    /// identity's gRPC address, where our certificate comes from
    /// [default: linkerd-identity.<controller-namespace>.svc.<cluster-domain>:8080].
    #[arg(long, env = "OXLINK_TAP_IDENTITY_ADDR")]
    identity_addr: Option<String>,

    /// Our ServiceAccount token (projected for the audience identity checks).
    #[arg(long, env = "OXLINK_TAP_IDENTITY_TOKEN_PATH", default_value = IDENTITY_TOKEN_PATH)]
    identity_token_path: PathBuf,

    /// The mesh's trust anchors (PEM) [default: read from the ConfigMap
    /// linkerd-identity-trust-roots in the controller namespace].
    #[arg(long, env = "OXLINK_TAP_IDENTITY_TRUST_ANCHORS")]
    identity_trust_anchors: Option<PathBuf>,

    /// Tap streams served at once.
    #[arg(long, env = "OXLINK_TAP_MAX_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    max_streams: u32,

    /// The highest --max-rps a client may ask for.
    #[arg(long, env = "OXLINK_TAP_MAX_RPS", default_value_t = 1000.0)]
    max_rps: f64,

    /// How long one stream lasts at most (Go duration syntax).
    #[arg(long, env = "OXLINK_TAP_MAX_DURATION", default_value = "1h", value_parser = parse_duration)]
    max_duration: Duration,

    /// Events buffered for one client; a slower client loses events (counted and reported).
    #[arg(long, env = "OXLINK_TAP_CLIENT_BUFFER", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    client_buffer: u32,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    logs: LogArgs,
}

impl Args {
    /// Parses the command line and runs the tap server until SIGINT or SIGTERM.
    pub fn parse_and_run() -> ExitCode {
        oxlink_admin::exit_code("oxlink-tap", Self::parse().run())
    }

    fn run(self) -> anyhow::Result<()> {
        if !(self.max_rps.is_finite() && self.max_rps > 0.0) {
            anyhow::bail!(
                "--max-rps must be a number above zero, not {}",
                self.max_rps
            );
        }
        self.logs.init().context("--log-level")?;
        let limits = self.limits.limits(Limits {
            max_connections: 1_000,
            max_concurrent_streams: 100,
            ..Limits::GRPC
        });
        oxlink_admin::runtime()
            .context("starting the runtime")?
            .block_on(self.serve(limits))
    }

    async fn serve(self, limits: Limits) -> anyhow::Result<()> {
        let client = oxlink_kube::infer().await.context("Kubernetes client")?;
        let (listener, admin_listener) =
            oxlink_admin::bind_pair(self.addr, self.admin_addr).await?;
        let ns = &self.controller_namespace;
        let td = &self.identity_trust_domain;
        let anchors = match &self.identity_trust_anchors {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("--identity-trust-anchors {}", path.display()))?;
                TrustBundle::from_pem(&pem)
                    .with_context(|| format!("--identity-trust-anchors {}", path.display()))?
            }
            None => {
                let context =
                    || format!("the trust anchors in ConfigMap {ns}/{TRUST_ROOTS_CONFIGMAP}");
                let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get(TRUST_ROOTS_CONFIGMAP)
                    .await
                    .with_context(context)?;
                let pem = cm
                    .data
                    .and_then(|mut d| d.remove(TRUST_ROOTS_KEY))
                    .with_context(|| format!("{}: no key {TRUST_ROOTS_KEY}", context()))?;
                TrustBundle::from_pem(pem.as_bytes()).with_context(context)?
            }
        };
        let certify = CertifyConfig {
            identity_addr: self.identity_addr.clone().unwrap_or_else(|| {
                format!(
                    "{IDENTITY_SERVICE}.{ns}.svc.{}:{IDENTITY_GRPC_PORT}",
                    self.cluster_domain
                )
            }),
            identity_server_name: service_account_identity(IDENTITY_SERVICE_ACCOUNT, ns, ns, td),
            anchors: anchors.clone(),
            name: tap_identity(ns, td),
            token_path: self.identity_token_path.clone(),
        };
        let mut tasks = Tasks::default();
        let ready = Readiness::default();
        let mut registry = Registry::default();
        oxlink_kube::metrics::register(&mut registry);
        let cert = Arc::new(ServingCert::default());
        let held = cert.clone();
        ready.require("no certificate from identity yet", move || held.is_set());
        let certifier = CertifyClient::new(certify)?;
        tasks.background(
            "the certificate renewal",
            certifier.run(cert.clone(), CertifyMetrics::register(&mut registry)),
        );
        let tls = Arc::new(oxlink_tls::client_config(cert, &anchors)?);
        let metrics = TapMetrics::register(&mut registry);
        let connections = ServerMetrics::register(&mut registry, "tap");
        let config = Config {
            trust_domain: td.clone(),
            proxy_tap_port: PROXY_TAP_PORT,
            limits: TapLimits {
                max_streams: self.max_streams as usize,
                max_rps: self.max_rps,
                max_duration: self.max_duration,
                buffer: self.client_buffer as usize,
            },
        };
        tasks.server(
            "the tap API server",
            serve(
                listener,
                Server {
                    client,
                    tls,
                    config,
                    metrics,
                    connections: connections.clone(),
                    limits,
                },
                tasks.signal(),
            ),
        );
        let admin = Admin {
            registry: Arc::new(registry),
            ready,
            live: tasks.liveness(),
            on_scrape: None,
            connections: connections.for_server("admin"),
        };
        tasks.server(
            "the admin server",
            serve_admin(admin_listener, admin, tasks.signal()),
        );
        tracing::info!(addr = %self.addr, admin = %self.admin_addr, identity = %tap_identity(ns, td), "tap started");
        shutdown_signal().await;
        tracing::info!("shutting down");
        tasks.shutdown(Duration::from_secs(5)).await;
        Ok(())
    }
}
