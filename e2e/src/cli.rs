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

/// `OXLINK_CLI_BIN`: the built `oxlink` binary, which the suite runner builds and passes, for
/// tests of exit codes and stderr as a user sees them.
pub const CLI_BIN_ENV: &str = "OXLINK_CLI_BIN";

/// What a run of the built `oxlink` binary did.
#[derive(Debug)]
pub struct BinaryRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The built `oxlink` binary: `OXLINK_CLI_BIN`, else `oxlink` next to the test binary's
/// `deps/` directory (where `cargo build -p oxlink-cli` puts it).
fn binary() -> Result<std::path::PathBuf> {
    if let Some(bin) = std::env::var_os(CLI_BIN_ENV) {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe()?;
    let beside = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|debug| debug.join("oxlink"))
        .filter(|p| p.is_file());
    beside.with_context(|| {
        format!(
            "no built oxlink binary: set {CLI_BIN_ENV} or run `cargo build -p oxlink-cli` \
             (cargo xtask e2e does both)"
        )
    })
}

/// Runs the built `oxlink` binary with `args` against the suite's cluster.
pub fn oxlink_binary(args: &[&str]) -> Result<BinaryRun> {
    let bin = binary()?;
    let out = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(BinaryRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs the built `oxlink` binary with `args` for `run_for` and then stops it (SIGKILL), as a
/// user stops `viz tap` or `viz top` with Ctrl-C; what it printed until then. One that ends on
/// its own before is not stopped.
pub fn oxlink_binary_for(args: &[&str], run_for: std::time::Duration) -> Result<BinaryRun> {
    let bin = binary()?;
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let until = std::time::Instant::now() + run_for;
    while std::time::Instant::now() < until && child.try_wait()?.is_none() {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output()?;
    Ok(BinaryRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Starts the built `oxlink` binary with `args` (for commands that run until stopped), its
/// stdout piped.
pub fn oxlink_spawn(args: &[&str]) -> Result<std::process::Child> {
    let bin = binary()?;
    Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))
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
