//! `oxlink viz`: Linkerd's viz extension — `install`, `uninstall`, `check`, and the metrics
//! commands `stat`, `routes` and `edges`, read from the extension's Prometheus (through the API
//! server's Service proxy, so the CLI needs nothing but a kubeconfig) by the PromQL of
//! `oxlink-viz`.

mod chart;
mod check;
pub(crate) mod cluster;
mod metrics;

use anyhow::Result;
use clap::Subcommand;
use std::io::Write;

#[derive(Debug, Subcommand)]
pub(crate) enum VizCommand {
    /// Output Kubernetes resources to install the linkerd-viz extension (pipe them to
    /// `kubectl apply -f -`).
    Install(chart::InstallArgs),
    /// Output Kubernetes resources to uninstall the linkerd-viz extension (pipe them to
    /// `kubectl delete -f -`).
    Uninstall(chart::UninstallArgs),
    /// Check the linkerd-viz extension for potential problems.
    Check(check::CheckArgs),
    /// Display traffic stats about one or many resources.
    Stat(metrics::StatArgs),
    /// Display route stats about a resource's ServiceProfile routes, and `[DEFAULT]`.
    Routes(metrics::RoutesArgs),
    /// Display connections between resources, and Linkerd-proxied mTLS status.
    Edges(metrics::EdgesArgs),
}

pub(crate) fn run(
    command: VizCommand,
    cluster: &crate::client::ClusterArgs,
    out: &mut impl Write,
) -> Result<()> {
    match command {
        VizCommand::Install(args) => args.run(out),
        VizCommand::Uninstall(args) => args.run(cluster, out),
        VizCommand::Check(args) => check::run(args, cluster, out),
        VizCommand::Stat(args) => args.run(cluster, out),
        VizCommand::Routes(args) => args.run(cluster, out),
        VizCommand::Edges(args) => args.run(cluster, out),
    }
}

/// Whether `error` is a failed `viz check` that was already reported.
pub(crate) fn is_reported(error: &anyhow::Error) -> bool {
    error.is::<check::VizChecksFailed>()
}

#[cfg(test)]
mod tests;
