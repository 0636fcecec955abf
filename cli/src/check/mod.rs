//! `oxlink check`: is the cluster ready for oxlink, and is oxlink healthy in it?
//!
//! The categories, their order and their wording follow `linkerd check`, so that runbooks and
//! habits carry over: `--pre` before installing, `--crds` after installing the CRDs, and no flag
//! for the control plane. Output is Linkerd's √/×/‼ table, `-o short` (problems only) or
//! `-o json`; the exit code is non-zero when any check fails. With `--wait`, failing checks are
//! retried until they pass or the time is up.

mod checks;
mod report;

use anyhow::{Context, Result};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use oxlink_crds::{duration::parse_duration, names::control_plane::NAMESPACE};
use report::{Category, Outcome, Output};
use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Only run pre-installation checks, to determine if the control plane can be installed.
    #[arg(long, conflicts_with = "crds")]
    pre: bool,
    /// Only run checks which determine if the CRDs are installed.
    #[arg(long)]
    crds: bool,
    /// Maximum allowed time for all tests to pass (Go duration).
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    wait: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Namespace in which the control plane is (or will be) installed.
    #[arg(short = 'L', long, default_value = NAMESPACE)]
    linkerd_namespace: String,
    /// Path to the kubeconfig file to use for CLI requests (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Name of the kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
}

pub(crate) fn run(args: CheckArgs, out: &mut impl Write, progress: &mut impl Write) -> Result<()> {
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
    let ns = &args.linkerd_namespace;
    let client = match client(args).await {
        Ok(client) => client,
        Err(e) => {
            return vec![Category {
                name: "kubernetes-api",
                checks: vec![Outcome::new(
                    "can initialize the client",
                    Err(format!("{e:#}")),
                    "check --kubeconfig / $KUBECONFIG and --context",
                )],
            }];
        }
    };
    let query = client
        .apiserver_version()
        .await
        .map(drop)
        .map_err(|e| e.to_string());
    let reachable = query.is_ok();
    let mut categories = vec![Category {
        name: "kubernetes-api",
        checks: vec![
            Outcome::new("can initialize the client", Ok(()), ""),
            Outcome::new(
                "can query the Kubernetes API",
                query,
                "is the API server reachable with these credentials?",
            ),
        ],
    }];
    if !reachable {
        return categories;
    }
    categories.push(checks::kubernetes_version(&client).await);
    if args.pre {
        categories.push(checks::pre_kubernetes_setup(&client, ns).await);
    } else if args.crds {
        categories.push(checks::control_plane_crds(&client).await);
    } else {
        categories.push(checks::control_plane_config(&client, ns).await);
        categories.push(checks::control_plane_existence(&client, ns).await);
        categories.push(checks::identity(&client, ns).await);
    }
    categories
}

async fn client(args: &CheckArgs) -> Result<Client> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None if args.context.is_some() => Config::from_kubeconfig(&options).await?,
        None => Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
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
