//! `oxlink check`: is the cluster ready for oxlink, and is oxlink healthy in it?
//!
//! The categories, their order, their wording and their hint anchors follow `linkerd check`, so
//! that runbooks and habits carry over: `--pre` before installing, `--crds` after installing the
//! CRDs, no flag for the control plane and `--proxy [-n NS]` for the data plane. Output is
//! Linkerd's √/×/‼ table, `-o short` (problems only) or `-o json`; the exit code is non-zero when
//! any check fails (warnings pass). A failed fatal check ends the run, as in Linkerd. With
//! `--wait`, failing checks are retried until they pass or the time is up.

mod checks;
mod cidr;
mod control_plane;
mod identity;
mod metadata;
mod opaque;
mod proxies;
pub(crate) mod report;

use crate::{ClusterArgs, error_chain};
use anyhow::{Context, Result};
use oxlink_crds::{duration::parse_duration, names::control_plane::NAMESPACE};
use report::{Category, Outcome, Output};
use std::{
    io::Write,
    time::{Duration, Instant},
};

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Only run pre-installation checks, to determine if the control plane can be installed.
    #[arg(long, conflicts_with = "crds")]
    pre: bool,
    /// Only run checks which determine if the CRDs are installed.
    #[arg(long, conflicts_with = "proxy")]
    crds: bool,
    /// Also run data plane checks, to determine if the data plane is healthy.
    #[arg(long, conflicts_with = "pre")]
    proxy: bool,
    /// Namespace to use for --proxy (default: all namespaces).
    #[arg(short = 'n', long, requires = "proxy")]
    namespace: Option<String>,
    /// Maximum allowed time for all tests to pass (Go duration).
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    wait: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Namespace in which the control plane is (or will be) installed.
    #[arg(short = 'L', long, default_value = NAMESPACE)]
    linkerd_namespace: String,
    /// Where the cluster is (the global `--kubeconfig` and `--context`).
    #[arg(skip)]
    cluster: ClusterArgs,
}

pub(crate) fn run(
    mut args: CheckArgs,
    cluster: &ClusterArgs,
    out: &mut impl Write,
    progress: &mut impl Write,
) -> Result<()> {
    args.cluster = cluster.clone();
    let categories = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run_until_deadline(&args, progress));
    report::render(&categories, args.output, out)?;
    if !report::success(&categories) {
        return Err(ChecksFailed.into());
    }
    Ok(())
}

/// Some checks failed; the report says which.
#[derive(Debug)]
pub(crate) struct ChecksFailed;

impl std::fmt::Display for ChecksFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some checks failed")
    }
}

impl std::error::Error for ChecksFailed {}

/// Runs every check; while some fail and `--wait` allows, waits a moment and runs them again.
async fn run_until_deadline(args: &CheckArgs, progress: &mut impl Write) -> Vec<Category> {
    let deadline = Instant::now() + args.wait;
    loop {
        let categories = run_once(args).await;
        if report::success(&categories) || Instant::now() >= deadline {
            return categories;
        }
        let failing: Vec<&str> = categories
            .iter()
            .flat_map(|c| &c.checks)
            .filter(|o| matches!(o.result, report::Verdict::Error(_)))
            .map(|o| o.description)
            .collect();
        let _ = writeln!(
            progress,
            "waiting for checks to pass ({} left): {}",
            humanize(deadline.saturating_duration_since(Instant::now())),
            failing.join("; ")
        );
        tokio::time::sleep(Duration::from_secs(2).min(deadline - Instant::now())).await;
    }
}

async fn run_once(args: &CheckArgs) -> Vec<Category> {
    let mut categories = Vec::new();
    for mut category in categories_once(args).await {
        let stop = category.stop_at_fatal();
        categories.push(category);
        if stop {
            break;
        }
    }
    categories
}

/// Every category that applies, in Linkerd's order (the caller stops at a fatal failure).
async fn categories_once(args: &CheckArgs) -> Vec<Category> {
    let ns = args.linkerd_namespace.as_str();
    let client = match args.cluster.client().await {
        Ok(client) => client,
        Err(e) => {
            return vec![Category::new(
                "kubernetes-api",
                vec![
                    Outcome::new("can initialize the client", "k8s-api", Err(error_chain(&e)))
                        .fatal(),
                ],
            )];
        }
    };
    let query = client
        .apiserver_version()
        .await
        .map(drop)
        .map_err(|e| e.to_string());
    let mut categories = vec![Category::new(
        "kubernetes-api",
        vec![
            Outcome::new("can initialize the client", "k8s-api", Ok(())),
            Outcome::new("can query the Kubernetes API", "k8s-api", query).fatal(),
        ],
    )];
    if !report::success(&categories) {
        return categories;
    }
    categories.push(checks::kubernetes_version(&client).await);
    if args.pre {
        categories.push(checks::pre_kubernetes_setup(&client, ns).await);
        categories.push(proxies::linkerd_version());
        return categories;
    }
    if args.crds {
        categories.push(checks::control_plane_crds(&client).await);
        categories.push(proxies::linkerd_version());
        return categories;
    }
    categories.push(control_plane::existence(&client, ns).await);
    categories.push(control_plane::config(&client, ns).await);
    categories.push(identity::identity(&client, ns).await);
    categories.push(identity::webhooks(&client, ns).await);
    let data_ns = args.namespace.as_deref();
    if args.proxy {
        let roots = identity::trust_roots(&client, ns).await;
        categories.push(proxies::identity_data_plane(&client, ns, data_ns, roots).await);
    }
    categories.push(proxies::linkerd_version());
    let values = proxies::values(&client, ns).await;
    if !args.proxy {
        categories.push(proxies::control_plane_version(&values));
    }
    let pods = proxies::control_plane_pods(&client, ns).await;
    categories.push(match pods {
        Ok(pods) => proxies::control_plane_proxy(&pods, &values),
        Err(e) => Category::new(
            "linkerd-control-plane-proxy",
            vec![Outcome::new(
                "control plane proxies are healthy",
                "l5d-cp-proxy-healthy",
                Err(e),
            )],
        ),
    });
    if args.proxy {
        categories.push(proxies::data_plane(&client, ns, data_ns, &values).await);
    }
    categories.push(control_plane::ha(&client, ns).await);
    categories
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests;
