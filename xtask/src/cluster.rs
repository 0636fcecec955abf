//! `cargo xtask cluster up|down|status`: the local Kubernetes from `e2e/localkube`.
//!
//! `up` builds the localkube binary when its sources changed (the binary is cached by a hash of
//! its sources, outside the work tree, and Go's build cache is reused), starts it in the
//! background, and waits until the API server is ready and the controllers and simulated nodes
//! are up. Every step is idempotent.

use crate::{
    paths::{self, source_hash},
    pods,
    run::{self, alive, signal},
};
use anyhow::{Context, Result, bail};
use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The API server's default port on 127.0.0.1; `OXLINK_LOCALKUBE_PORT` picks another, so that
/// two checkouts can each run a cluster. etcd listens on the next two ports.
const DEFAULT_PORT: u16 = 16443;

/// The API server's port: `OXLINK_LOCALKUBE_PORT`, or 16443.
fn port() -> Result<u16> {
    match std::env::var("OXLINK_LOCALKUBE_PORT") {
        Ok(p) => p
            .parse()
            .with_context(|| format!("OXLINK_LOCALKUBE_PORT={p} is not a port number")),
        Err(_) => Ok(DEFAULT_PORT),
    }
}
/// Names the pod runtime localkube was started for (`external`), while the real one runs.
const POD_RUNTIME_FILE: &str = "pod-runtime";

const READY_TIMEOUT: Duration = Duration::from_secs(240);

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Action {
    /// Build (if needed) and start the local cluster, and wait until it is ready.
    Up {
        /// Start from an empty etcd rather than the state of the last run.
        #[arg(long)]
        fresh: bool,
    },
    /// Stop the local cluster (its state stays in target/localkube until the next `up --fresh`).
    Down,
    /// Say whether the local cluster runs, and where its kubeconfig is.
    Status,
}

pub(crate) fn run(action: Action) -> Result<()> {
    let cluster = Cluster::from_env()?;
    match action {
        Action::Up { fresh } => {
            cluster.up(fresh)?;
            println!("export KUBECONFIG={}", cluster.kubeconfig().display());
            Ok(())
        }
        Action::Down => cluster.down(),
        Action::Status => {
            match cluster.running_pid() {
                Some(pid) if cluster.ready() => {
                    println!(
                        "localkube is running (pid {pid}) on https://127.0.0.1:{}",
                        cluster.port
                    );
                    println!("export KUBECONFIG={}", cluster.kubeconfig().display());
                    match pods::ready_file(cluster.dir()).exists() {
                        true => println!("pods run for real (logs in /var/lib/oxlink-pods/pods)"),
                        false => println!("pods are status only: no process runs"),
                    }
                }
                Some(pid) => println!("localkube is starting (pid {pid}), not ready yet"),
                None => println!("localkube is not running"),
            }
            Ok(())
        }
    }
}

/// One local cluster: its state directory and its API server port.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    dir: PathBuf,
    port: u16,
}

// === impl Cluster ===

impl Cluster {
    /// The workspace's cluster: `target/localkube`, on `OXLINK_LOCALKUBE_PORT` or 16443.
    pub(crate) fn from_env() -> Result<Self> {
        Ok(Self {
            dir: paths::localkube_dir(),
            port: port()?,
        })
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Starts the cluster unless it already runs, and waits until it is ready.
    pub(crate) fn up(&self, fresh: bool) -> Result<()> {
        let dir = &self.dir;
        if let Some(pid) = self.running_pid() {
            if fresh {
                self.down()?;
            } else {
                eprintln!("localkube is already running (pid {pid})");
                self.wait_ready(pid)?;
                // Started for the real runtime, which is not running (stopped, or crashed).
                if dir.join(POD_RUNTIME_FILE).exists() && !pods::running(dir) {
                    pods::start(dir, &build()?)?;
                }
                return Ok(());
            }
        }
        for port in [self.port, self.port + 1, self.port + 2] {
            if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
                bail!(
                    "port {port} on 127.0.0.1 is taken ({e}); stop what holds it \
                     (`ss -ltnp 'sport = :{port}'` shows it) or choose other ports with \
                     OXLINK_LOCALKUBE_PORT"
                );
            }
        }
        let binary = build()?;
        // Pods run for real when they can; otherwise the node simulator reports them.
        let runtime = pods::unavailable();
        if let Some(why) = &runtime {
            // CI runs as root with the data plane at hand: status-only pods there would hide
            // every data-plane test behind a skip.
            if std::env::var_os("CI").is_some_and(|v| v == "true") {
                bail!("CI must run pods for real, but cannot: {why}");
            }
            eprintln!("pods are status only (no process runs): {why}");
        }
        let _ = fs::remove_file(dir.join(POD_RUNTIME_FILE));
        if fresh {
            let _ = fs::remove_dir_all(dir.join("etcd"));
        }
        fs::create_dir_all(dir)?;
        fs::File::create(dir.join("localkube.log"))?;
        self.start(&binary, runtime.is_none())?;
        if runtime.is_none() {
            // A restart of localkube (by a test) must leave the pods to the runtime again.
            fs::write(dir.join(POD_RUNTIME_FILE), "external\n")?;
            pods::start(dir, &binary)?;
        }
        Ok(())
    }

    /// Starts localkube (appending to its log), for the real pod runtime (`external`) or the
    /// node simulator, and waits until it is ready.
    fn start(&self, binary: &Path, external: bool) -> Result<()> {
        let dir = &self.dir;
        let log = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("localkube.log"))?;
        let mut cmd = Command::new(binary);
        cmd.arg("up")
            .arg("--dir")
            .arg(dir)
            .arg(format!("--port={}", self.port))
            .arg(format!("--etcd-port={}", self.port + 1))
            .arg(format!(
                "--pod-runtime={}",
                if external { "external" } else { "simulated" }
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group: the cluster outlives this command and ignores our Ctrl-C.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let started = Instant::now();
        let child = cmd.spawn().context("starting localkube")?;
        fs::write(dir.join("pid"), child.id().to_string())?;
        eprintln!(
            "started localkube (pid {}), waiting for it to be ready",
            child.id()
        );
        self.wait_ready(child.id())?;
        eprintln!(
            "localkube ready after {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Restarts the API server (localkube: etcd, the API server and the controllers) and
    /// leaves the pods alone: the pod runtime keeps running them and re-watches. Every watch
    /// and connection to the API server is dropped on the way.
    pub(crate) fn restart_api_server(&self) -> Result<()> {
        let pid = self
            .running_pid()
            .context("localkube is not running: nothing to restart")?;
        let external = self.dir.join(POD_RUNTIME_FILE).exists();
        let binary = build()?;
        self.stop_localkube(pid);
        self.start(&binary, external)
    }

    /// SIGTERM, then SIGKILL after 30 seconds; forgets its pid and readiness.
    fn stop_localkube(&self, pid: u32) {
        signal(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(pid) {
            eprintln!("localkube (pid {pid}) did not stop within 30s; killing it");
            signal(pid, "KILL");
        }
        let _ = fs::remove_file(self.dir.join("pid"));
        let _ = fs::remove_file(self.dir.join("ready"));
    }

    /// Stops the cluster if it runs: SIGTERM, then SIGKILL after 30 seconds.
    pub(crate) fn down(&self) -> Result<()> {
        let dir = &self.dir;
        pods::stop(dir);
        let Some(pid) = self.running_pid() else {
            eprintln!("localkube is not running");
            let _ = fs::remove_file(dir.join("pid"));
            return Ok(());
        };
        self.stop_localkube(pid);
        eprintln!("localkube stopped");
        Ok(())
    }

    fn wait_ready(&self, pid: u32) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.ready() {
                return Ok(());
            }
            if !alive(pid) {
                bail!(
                    "localkube exited before it was ready\n{}",
                    log_tails(&self.dir)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "localkube was not ready after {}s\n{}",
                    READY_TIMEOUT.as_secs(),
                    log_tails(&self.dir)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// localkube writes `ready` once the API server, controllers and nodes are up, and removes
    /// it when it stops.
    fn ready(&self) -> bool {
        self.dir.join("ready").exists()
    }

    /// The cluster's state directory (etcd data, kubeconfig, logs, `pid`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the cluster runs and is ready.
    pub(crate) fn is_running(&self) -> bool {
        self.running_pid().is_some() && self.ready()
    }

    fn running_pid(&self) -> Option<u32> {
        let pid = fs::read_to_string(self.dir.join("pid")).ok()?;
        let pid = pid.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }
}

/// Builds localkube if no binary for the current sources is cached, and returns its path.
pub(crate) fn build() -> Result<PathBuf> {
    let src = paths::workspace().join("e2e").join("localkube");
    let ldflags = version_ldflags(&kubernetes_version(&src)?);
    let binary = paths::cache()
        .join("localkube")
        .join(format!("localkube-{:016x}", source_hash(&src, &ldflags)?));
    if binary.exists() {
        return Ok(binary);
    }
    if !run::available("go", "version") {
        bail!(
            "Go is not installed or not on PATH; localkube needs Go 1.24 or newer (https://go.dev/dl)"
        );
    }
    fs::create_dir_all(binary.parent().expect("cache path has a parent"))?;
    eprintln!("building localkube (the first build compiles Kubernetes and takes several minutes)");
    let started = Instant::now();
    let tmp = binary.with_extension("tmp");
    run::status(
        Command::new("go")
            .current_dir(&src)
            .env("GOFLAGS", "-buildvcs=false")
            .args(["build", "-trimpath", &ldflags, "-o"])
            .arg(&tmp)
            .arg("."),
    )
    .context("building e2e/localkube")?;
    fs::rename(&tmp, &binary)?;
    eprintln!(
        "built localkube in {:.0}s ({} MiB)",
        started.elapsed().as_secs_f64(),
        fs::metadata(&binary)?.len() >> 20
    );
    Ok(binary)
}

/// The `k8s.io/kubernetes` version that localkube's go.mod pins, e.g. `v1.34.4`.
fn kubernetes_version(src: &Path) -> Result<String> {
    let gomod = fs::read_to_string(src.join("go.mod"))?;
    gomod
        .lines()
        .filter_map(|l| l.trim().strip_prefix("k8s.io/kubernetes "))
        .map(|v| v.trim().to_string())
        .find(|v| v.starts_with('v'))
        .context("e2e/localkube/go.mod does not require k8s.io/kubernetes")
}

/// Linker flags that strip the binary and stamp the Kubernetes version into it, as the upstream
/// release build does; without them the API server reports `v0.0.0-master`, which kubectl and
/// Helm refuse to parse.
fn version_ldflags(version: &str) -> String {
    let mut parts = version.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut flags = String::from("-ldflags=-s -w");
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (var, value) in [
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            flags.push_str(&format!(" -X {pkg}.{var}={value}"));
        }
    }
    flags
}

fn log_tails(dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "localkube.log",
        "logs/apiserver.log",
        "logs/controller-manager.log",
    ] {
        let path = dir.join(name);
        if let Ok(text) = fs::read_to_string(&path) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            out.push_str(&format!(
                "--- last lines of {} ---\n{}\n",
                path.display(),
                tail.join("\n")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_kubernetes_version_is_read_from_go_mod() {
        let src = paths::workspace().join("e2e").join("localkube");
        let version = kubernetes_version(&src).unwrap();
        assert!(version.starts_with("v1.34."), "{version}");
    }

    #[test]
    fn ldflags_stamp_the_version_for_server_and_client_packages() {
        let flags = version_ldflags("v1.34.4");
        assert!(flags.starts_with("-ldflags=-s -w "));
        for pkg in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            assert!(
                flags.contains(&format!("-X {pkg}.gitVersion=v1.34.4")),
                "{flags}"
            );
            assert!(flags.contains(&format!("-X {pkg}.gitMajor=1 ")), "{flags}");
            assert!(flags.contains(&format!("-X {pkg}.gitMinor=34 ")), "{flags}");
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn up_refuses_a_taken_port_and_starts_nothing() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let dir = scratch("taken");
        let cluster = Cluster {
            dir: dir.clone(),
            port,
        };
        let err = cluster.up(false).unwrap_err().to_string();
        assert!(
            err.contains(&format!("port {port} on 127.0.0.1 is taken")),
            "{err}"
        );
        assert!(!dir.join("pid").exists(), "nothing was started");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn down_and_status_of_a_cluster_that_does_not_run() {
        let dir = scratch("stopped");
        // A pid file left behind by a cluster that is gone (pid 0 never names a process we own).
        fs::write(dir.join("pid"), "0").unwrap();
        let cluster = Cluster {
            dir: dir.clone(),
            port: 1,
        };
        assert_eq!(cluster.running_pid(), None);
        cluster.down().unwrap();
        assert!(!dir.join("pid").exists(), "the stale pid file is removed");
        fs::remove_dir_all(dir).unwrap();
    }
}
