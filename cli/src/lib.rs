//! The `oxlink` command line: what a Linkerd user types, with oxlink behind it.
//!
//! This crate owns the `oxlink` binary: `install` (CRDs and the control plane, rendered from the
//! same source as the Helm charts), `upgrade`, `uninstall`, `check` (pre-flight, control plane and proxy health),
//! `inject` / `uninject` (the same pure inject function the webhook uses), `identity`, `viz`
//! (the viz extension and its `stat`, `routes`, `edges`, `dashboard`) and `version`. Flag names, defaults and messages follow the `linkerd` CLI so that existing
//! scripts and habits keep working.

use clap::{Parser, Subcommand};

mod algorithm;
mod check;
mod client;
pub(crate) mod identity;
mod inject;
mod install;
mod uninject;
mod uninstall;
mod upgrade;
mod viz;

/// Whether `error` was already reported on the output (a failed `check`), so that only the
/// exit code is left to give.
pub fn is_reported(error: &anyhow::Error) -> bool {
    error.is::<check::ChecksFailed>() || viz::is_reported(error)
}

pub use self::client::{ClusterArgs, error_chain};

/// The oxlink release this binary belongs to.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// oxlink manages a Linkerd-compatible service mesh.
#[derive(Debug, Parser)]
#[command(name = "oxlink", version = VERSION)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where the cluster is, for the commands that talk to one.
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Output Kubernetes configs to install oxlink (pipe them to `kubectl apply -f -`).
    Install(Box<install::InstallArgs>),
    /// Output Kubernetes configs to upgrade the installed control plane, keeping its identity.
    Upgrade(Box<upgrade::UpgradeArgs>),
    /// Output every object of the control plane (pipe them to `kubectl delete -f -`).
    Uninstall(uninstall::UninstallArgs),
    /// Check the cluster before installing, the CRDs, or the control plane's health.
    Check(check::CheckArgs),
    /// Generate the mesh's trust anchor and issuer, or inspect certificate chains.
    Identity {
        #[command(subcommand)]
        command: identity::IdentityCommand,
    },
    /// Add the Linkerd proxy to the workloads of Kubernetes manifests.
    Inject(Box<inject::InjectArgs>),
    /// Remove the Linkerd proxy from the workloads of Kubernetes manifests.
    Uninject(uninject::UninjectArgs),
    /// Linkerd's viz extension: install it, check it, and read the mesh's traffic metrics
    /// (`stat`, `routes`, `edges`).
    Viz {
        #[command(subcommand)]
        command: viz::VizCommand,
    },
    /// Print the client version.
    Version {
        /// Print the client version only.
        #[arg(long)]
        client: bool,
        /// Print the version number(s) only, with no additional output.
        #[arg(long)]
        short: bool,
    },
}

impl Cli {
    /// Runs the parsed command, writing its output to `out`.
    pub fn run(self, out: &mut impl std::io::Write) -> anyhow::Result<()> {
        let cluster = self.cluster;
        match self.command {
            Command::Install(args) => args.run(&cluster, out)?,
            Command::Upgrade(args) => args.run(&cluster, out)?,
            Command::Uninstall(args) => args.run(&cluster, out)?,
            Command::Check(args) => check::run(args, &cluster, out, &mut std::io::stderr().lock())?,
            Command::Identity { command } => identity::run(command, &cluster, out)?,
            Command::Inject(args) => {
                args.run(
                    &cluster,
                    &mut std::io::stdin().lock(),
                    out,
                    &mut std::io::stderr().lock(),
                )?;
            }
            Command::Uninject(args) => {
                args.run(
                    &mut std::io::stdin().lock(),
                    out,
                    &mut std::io::stderr().lock(),
                )?;
            }
            Command::Viz { command } => viz::run(command, &cluster, out)?,
            Command::Version { client: _, short } => {
                if short {
                    writeln!(out, "{VERSION}")?;
                } else {
                    writeln!(out, "Client version: {VERSION}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
