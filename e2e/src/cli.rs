//! Running the `oxlink` CLI, `kubectl` and `helm` from tests, as a user would on the command line.

use anyhow::{Context, Result, ensure};
use clap::Parser;
use std::{
    io::Write,
    process::{Command, Stdio},
};

/// What `oxlink <args>` prints (the binary's `main` only calls this).
pub fn oxlink(args: &[&str]) -> Result<String> {
    let cli =
        oxlink_cli::Cli::try_parse_from(std::iter::once("oxlink").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    cli.run(&mut out)?;
    Ok(String::from_utf8(out)?)
}

/// Runs a tool (helm, kubectl) with `stdin`, failing with its stderr.
pub fn tool(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program} (is it on PATH?)"))?;
    let mut input = child.stdin.take().context("stdin")?;
    input.write_all(stdin.unwrap_or_default().as_bytes())?;
    drop(input);
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The pinned `kubectl` against the suite's cluster.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String> {
    ensure!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set; run the e2e suite through `cargo xtask test`"
    );
    tool("kubectl", args, stdin)
}

/// Removes what `oxlink install` created but the CRDs, waiting until it is gone (the
/// `linkerd` namespace included), so the next test can install again.
pub fn uninstall_control_plane() -> Result<()> {
    let uninstall = oxlink(&["uninstall"]).unwrap_or_default();
    let without_crds: String = uninstall
        .split("---\n")
        .filter(|d| !d.trim().is_empty() && !d.contains("kind: CustomResourceDefinition"))
        .map(|d| format!("---\n{d}"))
        .collect();
    if without_crds.is_empty() {
        kubectl(
            &[
                "delete",
                "namespace",
                "linkerd",
                "--ignore-not-found",
                "--wait",
            ],
            None,
        )
        .map(drop)
    } else {
        kubectl(
            &["delete", "--ignore-not-found", "--wait", "-f", "-"],
            Some(&without_crds),
        )
        .map(drop)
    }
}

/// Waits until the control plane's three Deployments have rolled out.
pub fn wait_for_control_plane() -> Result<()> {
    for deployment in [
        "linkerd-identity",
        "linkerd-destination",
        "linkerd-proxy-injector",
    ] {
        kubectl(
            &[
                "rollout",
                "status",
                "-n",
                "linkerd",
                "--timeout=120s",
                &format!("deployment/{deployment}"),
            ],
            None,
        )?;
    }
    Ok(())
}
