//! Command-line flags of `oxlink-web` and the process around the library.

use crate::{metrics::Metrics, prometheus::Prometheus, serve, server::DEFAULT_ENFORCED_HOST};
use anyhow::Context;
use clap::Parser;
use oxlink_admin::{
    LogArgs, Tasks,
    serve::{LimitArgs, Limits},
    shutdown_signal,
};
use regex::Regex;
use std::{net::SocketAddr, process::ExitCode, time::Duration};

/// The viz extension's dashboard and metrics API.
#[derive(Debug, Parser)]
#[command(name = "oxlink-web", version)]
pub struct Args {
    /// Address of the dashboard (pages and the API its script calls); `Host` is checked
    /// against `--enforced-host`.
    #[arg(long, env = "OXLINK_WEB_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], serve::WEB_PORT)))]
    addr: SocketAddr,

    /// Address of the metrics API (and the same pages) for clients that reach it through the
    /// API server or from inside the cluster: no `Host` check.
    #[arg(long, env = "OXLINK_WEB_METRICS_API_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], serve::METRICS_API_PORT)))]
    metrics_api_addr: SocketAddr,

    /// Address of the admin server (`/live`, `/ready`, `/metrics`).
    #[arg(long, env = "OXLINK_WEB_ADMIN_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], serve::ADMIN_PORT)))]
    admin_addr: SocketAddr,

    /// The Prometheus whose proxy metrics are read (the chart's `prometheusUrl`, else the
    /// bundled one).
    #[arg(long, env = "OXLINK_WEB_PROMETHEUS_URL", default_value = crate::prometheus::DEFAULT_URL)]
    prometheus_url: String,

    /// Regular expression the dashboard's `Host` header must match (Linkerd's
    /// `-enforced-host`); requests by any other name are refused, against DNS rebinding.
    #[arg(long, env = "OXLINK_WEB_ENFORCED_HOST", default_value = DEFAULT_ENFORCED_HOST)]
    enforced_host: Regex,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    logs: LogArgs,
}

/// How long requests in flight get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Args {
    /// Parses the command line and serves until SIGINT or SIGTERM.
    pub fn parse_and_run() -> ExitCode {
        oxlink_admin::exit_code("oxlink-web", Self::parse().run())
    }

    fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            metrics_api_addr,
            admin_addr,
            prometheus_url,
            enforced_host,
            limits,
            logs,
        } = self;
        let limits = limits.limits(Limits::WEB);
        logs.init().context("--log-level")?;
        let prometheus = Prometheus::new(&prometheus_url)?;
        oxlink_admin::runtime()
            .context("starting the runtime")?
            .block_on(async move {
                let client = oxlink_kube::infer().await.context("Kubernetes client")?;
                let metrics = Metrics { client, prometheus };
                let listeners = serve::Listeners::bind(addr, metrics_api_addr, admin_addr).await?;
                let running =
                    serve::spawn(metrics, enforced_host, limits, listeners, Tasks::default())?;
                shutdown_signal().await;
                tracing::info!("shutting down");
                running.shutdown(SHUTDOWN_GRACE).await;
                Ok(())
            })
    }
}
