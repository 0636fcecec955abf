//! `oxlink viz`: Linkerd's viz extension — `install`, `uninstall`, `check`, `dashboard`, the
//! metrics commands `stat`, `routes` and `edges`, answered by the extension's metrics API
//! (`oxlink-web`, reached through the API server's Service proxy, so the CLI needs nothing but a
//! kubeconfig) from the PromQL of `oxlink-viz`, and `tap` and `top`, read from the extension's tap
//! server (`oxlink-tap`) the same way.

mod chart;
mod check;
mod cluster;
mod dashboard;
mod metrics;
mod tap;

use anyhow::Result;
use clap::Subcommand;
use std::io::Write;

/// The extension's namespace and Helm release name, as Linkerd's.
pub(crate) const NAMESPACE: &str = "linkerd-viz";
/// The label every object of the extension carries.
pub(crate) const EXTENSION_LABEL: (&str, &str) = ("linkerd.io/extension", "viz");
/// The Deployment (and Service) of the dashboard and metrics API, as Linkerd names it.
pub(crate) const WEB: &str = "web";

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
    /// Listen to a traffic stream.
    Tap(tap::TapArgs),
    /// Display sorted information about live traffic.
    Top(tap::TopArgs),
    /// Open the Linkerd dashboard in a web browser.
    Dashboard(dashboard::DashboardArgs),
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
        VizCommand::Tap(args) => args.run(cluster, out),
        VizCommand::Top(args) => args.run(cluster, out),
        VizCommand::Dashboard(args) => args.run(cluster, out),
    }
}

/// Whether `error` is a failed `viz check` that was already reported.
pub(crate) fn is_reported(error: &anyhow::Error) -> bool {
    error.is::<check::VizChecksFailed>()
}

#[cfg(test)]
mod tests;
