//! Stopping and starting the local cluster from a test, to see how servers ride out an API
//! server restart. localkube keeps its state (etcd, certificates) in its directory, so the
//! cluster comes back with every object it had.
//!
//! The hook: `cargo xtask test` sets `OXLINK_E2E_LOCALKUBE_BIN` (the localkube binary it built)
//! and `OXLINK_E2E_LOCALKUBE_DIR` (the cluster's state directory, holding `pid`). The API
//! server's port is the one the `KUBECONFIG` cluster listens on and etcd's the next one, as
//! `cargo xtask cluster up` starts it. Without the hook (neither variable set, as on kind),
//! [`Localkube::from_env`] finds no cluster to restart and the tests that need it skip,
//! explicitly ([`crate::skip`]), so that they are counted as skipped; a hook that is set but
//! does not lead to a running localkube fails them. By hand:
//!
//! ```text
//! OXLINK_E2E_LOCALKUBE_BIN=$(readlink /proc/$(cat target/localkube/pid)/exe) \
//! OXLINK_E2E_LOCALKUBE_DIR=$PWD/target/localkube KUBECONFIG=$PWD/target/localkube/kubeconfig \
//! cargo test -p oxlink-e2e --test destination_tls
//! ```

use anyhow::{Context, Result, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

/// The binary `cargo xtask test` built and started the cluster with.
pub const BIN_ENV: &str = "OXLINK_E2E_LOCALKUBE_BIN";
/// The cluster's state directory.
pub const DIR_ENV: &str = "OXLINK_E2E_LOCALKUBE_DIR";

/// How long a stop or a start may take.
const LIMIT: Duration = Duration::from_secs(120);

/// The running local cluster, as a test can stop and start it.
#[derive(Debug)]
pub struct Localkube {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Localkube {
    /// The cluster named by the hook's variables; `None` when neither is set (no hook, as on
    /// kind). Fails when the hook is set but does not name a running local cluster.
    pub async fn from_env() -> Result<Option<Self>> {
        let (bin, dir) = (std::env::var_os(BIN_ENV), std::env::var_os(DIR_ENV));
        if bin.is_none() && dir.is_none() {
            return Ok(None);
        }
        let var = |name: &str, value: Option<std::ffi::OsString>| {
            value
                .map(PathBuf::from)
                .with_context(|| format!("{name} is not set, but the rest of the hook is"))
        };
        let (bin, dir) = (var(BIN_ENV, bin)?, var(DIR_ENV, dir)?);
        if !bin.is_file() {
            bail!("{BIN_ENV}={} is not a file", bin.display());
        }
        let config = kube::Config::infer().await.context("KUBECONFIG")?;
        let url = config.cluster_url;
        if url.host() != Some("127.0.0.1") {
            bail!("the KUBECONFIG cluster {url} is not a local one");
        }
        let port = url
            .port_u16()
            .with_context(|| format!("the KUBECONFIG cluster {url} names no port"))?;
        let this = Self { bin, dir, port };
        this.pid()
            .with_context(|| format!("no localkube runs from {}", this.dir.display()))?;
        Ok(Some(this))
    }

    /// Stops the cluster (SIGTERM) and waits until it has exited.
    pub async fn stop(&self) -> Result<()> {
        let pid = self.pid().context("localkube is not running")?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {pid}: {status}");
        }
        self.wait("localkube to exit", || !alive(pid)).await?;
        let _ = fs::remove_file(self.dir.join("pid"));
        Ok(())
    }

    /// Starts the cluster again from its directory, the way `cargo xtask cluster up` does, and
    /// waits until it is ready.
    pub async fn start(&self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("localkube.log"))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("up")
            .arg("--dir")
            .arg(&self.dir)
            .arg(format!("--port={}", self.port))
            .arg(format!("--etcd-port={}", self.port + 1))
            .args(pod_runtime(&self.dir))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group, like `cargo xtask cluster up` starts it: it outlives the test.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("starting localkube")?;
        fs::write(self.dir.join("pid"), child.id().to_string())?;
        let pid = child.id();
        let ready = self.dir.join("ready");
        self.wait("localkube to be ready", || ready.exists() || !alive(pid))
            .await?;
        if !alive(pid) {
            bail!(
                "localkube exited before it was ready; see {}",
                self.dir.join("localkube.log").display()
            );
        }
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        let pid = fs::read_to_string(self.dir.join("pid")).ok()?;
        let pid = pid.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    async fn wait(&self, what: &str, done: impl Fn() -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while !done() {
            if tokio::time::Instant::now() > deadline {
                bail!("timed out after {LIMIT:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// The `--pod-runtime` flag the cluster was started with: `cargo xtask cluster up` writes
/// `pod-runtime` when the real pod runtime runs the pods.
fn pod_runtime(dir: &Path) -> Option<String> {
    let mode = fs::read_to_string(dir.join("pod-runtime")).ok()?;
    Some(format!("--pod-runtime={}", mode.trim()))
}

/// Whether `pid` runs (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}
