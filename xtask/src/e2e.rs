//! `cargo xtask e2e [--cluster localkube|kind]`: the e2e suite on a cluster.
//!
//! `localkube` (the default, what `cargo xtask test` runs) starts the local cluster fresh, runs
//! the suite and stops it. `kind` is for machines with Docker and kind: it builds the controller
//! image, creates (or reuses) a kind cluster, loads the image, installs both charts with Helm,
//! waits for the control plane, and runs the same suite against it.

use crate::{cluster, paths, run, tools};
use anyhow::{Context, Result, bail};
use std::process::Command;

/// The image `--cluster kind` builds and loads.
const IMAGE: &str = "oxlink/controller";
const IMAGE_TAG: &str = "dev";
const KIND_CLUSTER: &str = "oxlink";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ClusterKind {
    /// The local cluster of `e2e/localkube` (no Docker needed).
    Localkube,
    /// A kind cluster with the controllers as real images (needs Docker and kind).
    Kind,
}

#[derive(Debug, clap::Args)]
pub(crate) struct E2eArgs {
    /// Which cluster to run the suite on.
    #[arg(long, value_enum, default_value = "localkube")]
    cluster: ClusterKind,
    /// Leave the cluster running afterwards.
    #[arg(long)]
    keep_cluster: bool,
    /// Passed to the test binaries (e.g. a test name filter).
    #[arg(last = true)]
    args: Vec<String>,
}

pub(crate) fn run(args: E2eArgs) -> Result<()> {
    tools::ensure(tools::Tool::Helm)?;
    tools::ensure(tools::Tool::Kubectl)?;
    build()?;
    let mut report = run::TestReport::default();
    let result = match args.cluster {
        ClusterKind::Localkube => {
            let cluster = cluster::Cluster::from_env()?;
            cluster.up(true)?;
            let result = suite(
                &cluster.kubeconfig(),
                Some(&cluster),
                &args.args,
                &mut report,
            );
            if !args.keep_cluster {
                cluster.down()?;
            }
            result
        }
        ClusterKind::Kind => {
            let kubeconfig = kind_up()?;
            let result = suite(&kubeconfig, None, &args.args, &mut report);
            if !args.keep_cluster {
                run::status(Command::new("kind").args([
                    "delete",
                    "cluster",
                    "--name",
                    KIND_CLUSTER,
                ]))?;
            }
            result
        }
    };
    // The failed and skipped tests by name, then `N passed, N failed, N skipped`, also when
    // some failed.
    report.print_summary();
    result
}

/// Builds the suite without running it.
pub(crate) fn build() -> Result<()> {
    run::status(run::cargo().args(["test", "-p", "oxlink-e2e", "--locked", "--no-run"]))?;
    // The suite also runs the built `oxlink` binary, for its exit codes (`OXLINK_CLI_BIN`).
    run::status(run::cargo().args(["build", "-p", "oxlink-cli", "--bin", "oxlink", "--locked"]))
}

/// Runs the suite against the cluster of `kubeconfig`, with the pinned tools first on `PATH`.
/// On localkube, the tests that restart the API server learn how (`e2e/src/localkube.rs`).
/// The tests that ran are added to `report`, also when some fail.
pub(crate) fn suite(
    kubeconfig: &std::path::Path,
    localkube: Option<&cluster::Cluster>,
    extra: &[String],
    report: &mut run::TestReport,
) -> Result<()> {
    let mut cmd = run::cargo();
    cmd.args([
        "test",
        "-p",
        "oxlink-e2e",
        "--locked",
        "--",
        "--test-threads=4",
    ])
    .args(extra)
    .env("KUBECONFIG", kubeconfig)
    .env(
        "OXLINK_CLI_BIN",
        crate::paths::debug_bin_dir().join("oxlink"),
    )
    .env("PATH", tools::path_with_tools()?);
    if let Some(cluster) = localkube {
        cmd.env("OXLINK_E2E_LOCALKUBE_BIN", cluster::build()?)
            .env("OXLINK_E2E_LOCALKUBE_DIR", cluster.dir());
    }
    run::tests(&mut cmd, report)
}

/// Builds and loads the image, creates the kind cluster if needed, installs the charts, and
/// returns the cluster's kubeconfig.
fn kind_up() -> Result<std::path::PathBuf> {
    for (program, arg) in [("docker", "version"), ("kind", "version")] {
        if !run::available(program, arg) {
            bail!("`--cluster kind` needs {program} on PATH (and a running Docker engine)");
        }
    }
    let workspace = paths::workspace();
    let image = format!("{IMAGE}:{IMAGE_TAG}");
    run::status(
        Command::new("docker")
            .args(["build", "-t", &image])
            .arg(&workspace),
    )?;
    let clusters = run::output(Command::new("kind").args(["get", "clusters"]))?;
    if !clusters.lines().any(|c| c.trim() == KIND_CLUSTER) {
        run::status(Command::new("kind").args(["create", "cluster", "--name", KIND_CLUSTER]))?;
    }
    run::status(Command::new("kind").args([
        "load",
        "docker-image",
        &image,
        "--name",
        KIND_CLUSTER,
    ]))?;
    let kubeconfig = workspace.join("target").join("kind-kubeconfig");
    let config =
        run::output(Command::new("kind").args(["get", "kubeconfig", "--name", KIND_CLUSTER]))?;
    std::fs::write(&kubeconfig, config)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    // The chart mints no certificates: a trust anchor and issuer, as `oxlink identity generate`
    // writes them, go in as values (like Linkerd's `--set-file identityTrustAnchorsPEM=…`).
    let identity = workspace.join("target").join("kind-identity");
    run::status(
        run::cargo()
            .args([
                "run",
                "--quiet",
                "--locked",
                "-p",
                "oxlink-cli",
                "--",
                "identity",
                "generate",
                "--force",
                "--dir",
            ])
            .arg(&identity),
    )?;
    let set_file = |key: &str, file: &str| format!("{key}={}", identity.join(file).display());
    let helm = tools::ensure(tools::Tool::Helm)?;
    let charts = workspace.join("charts");
    run::status(
        Command::new(&helm)
            .args(["upgrade", "--install", "oxlink-crds"])
            .arg(charts.join("oxlink-crds"))
            .env("KUBECONFIG", &kubeconfig),
    )?;
    run::status(
        Command::new(&helm)
            .args(["upgrade", "--install", "oxlink-control-plane"])
            .arg(charts.join("oxlink-control-plane"))
            .args(["--namespace", "linkerd", "--create-namespace"])
            .args(["--set", &format!("controllerImage={IMAGE}")])
            .args(["--set", &format!("controllerImageVersion={IMAGE_TAG}")])
            .args(["--set-file", &set_file("identityTrustAnchorsPEM", "ca.crt")])
            .args([
                "--set-file",
                &set_file("identity.issuer.tls.crtPEM", "issuer.crt"),
            ])
            .args([
                "--set-file",
                &set_file("identity.issuer.tls.keyPEM", "issuer.key"),
            ])
            .args(["--wait", "--timeout", "5m"])
            .env("KUBECONFIG", &kubeconfig),
    )?;
    Ok(kubeconfig)
}
