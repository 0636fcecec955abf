//! The pod runtime of the local cluster (`e2e/pod-runtime`): with it, pods bound to localkube's
//! nodes run for real, with the real linkerd2-proxy; without it, localkube's node simulator
//! reports them Running and no process runs.
//!
//! It runs when it can: as root, with `iptables` on the machine, and with the data plane's
//! binaries named by `OXLINK_PROXY_BIN` and `OXLINK_PROXY_INIT_BIN` (`.ci/run` sets both).
//! Otherwise `cargo xtask cluster up` says why and falls back to status-only pods.

use crate::{run, tools};
use anyhow::{Context, Result, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The data plane's binaries, named by these variables.
pub(crate) const PROXY_ENV: &str = "OXLINK_PROXY_BIN";
pub(crate) const PROXY_INIT_ENV: &str = "OXLINK_PROXY_INIT_BIN";

/// The packages whose binaries pods run, built before the runtime starts.
const PACKAGES: [&str; 7] = [
    "oxlink-pod-runtime",
    "oxlink-testapp",
    "oxlink-identity",
    "oxlink-destination",
    "oxlink-proxy-injector",
    "oxlink-tap",
    "oxlink-web",
];

/// Why pods cannot run for real here, or `None` when they can.
pub(crate) fn unavailable() -> Option<String> {
    let uid = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
    });
    if uid.as_deref() != Some("0") {
        return Some("not running as root (pods need network namespaces)".into());
    }
    for var in [PROXY_ENV, PROXY_INIT_ENV] {
        match std::env::var_os(var).map(PathBuf::from) {
            None => return Some(format!("{var} is not set")),
            Some(p) if !p.is_file() => return Some(format!("{var}={} is not a file", p.display())),
            Some(_) => {}
        }
    }
    for (tool, version) in [
        ("iptables", "--version"),
        ("ip", "-V"),
        ("setpriv", "--version"),
    ] {
        if !run::available(tool, version) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

fn bin_dir() -> PathBuf {
    crate::paths::debug_bin_dir()
}

/// Builds the runtime and the programs pods run, starts the runtime for the cluster in `dir`,
/// and waits until its pod network is up.
pub(crate) fn start(dir: &Path, localkube: &Path) -> Result<()> {
    let mut build = run::cargo();
    build.args(["build", "--locked"]);
    for p in PACKAGES {
        build.args(["-p", p]);
    }
    run::status(&mut build).context("building the pod runtime and the programs pods run")?;
    let ready = ready_file(dir);
    let _ = fs::remove_file(&ready);
    fs::create_dir_all(dir.join("logs"))?;
    let log = fs::File::create(dir.join("logs").join("pod-runtime.log"))?;
    let mut cmd = Command::new(bin_dir().join("oxlink-pod-runtime"));
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--localkube-bin")
        .arg(localkube)
        .arg("--prometheus-bin")
        .arg(crate::prometheus::build()?)
        .arg("--ready-file")
        .arg(&ready)
        .env("PATH", tools::path_with_tools()?)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().context("starting oxlink-pod-runtime")?;
    fs::write(pid_file(dir), child.id().to_string())?;
    let started = Instant::now();
    while !ready.exists() {
        if !crate::run::alive(child.id()) {
            bail!(
                "the pod runtime exited before it was ready; see {}",
                dir.join("logs").join("pod-runtime.log").display()
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the pod runtime was not ready after 60s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "pod runtime (pid {}) ready after {:.1}s: pods run for real, with the real linkerd2-proxy",
        child.id(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Stops the runtime, which stops every pod's processes and removes the pod network.
pub(crate) fn stop(dir: &Path) {
    let Some(pid) = fs::read_to_string(pid_file(dir))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|p| crate::run::alive(*p))
    else {
        let _ = fs::remove_file(pid_file(dir));
        return;
    };
    crate::run::signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::run::alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if crate::run::alive(pid) {
        eprintln!("the pod runtime (pid {pid}) did not stop within 60s; killing it");
        crate::run::signal(pid, "KILL");
    }
    let _ = fs::remove_file(pid_file(dir));
    let _ = fs::remove_file(ready_file(dir));
    eprintln!("pod runtime stopped");
}

/// Whether the runtime of the cluster in `dir` runs.
pub(crate) fn running(dir: &Path) -> bool {
    fs::read_to_string(pid_file(dir))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(crate::run::alive)
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("pod-runtime.pid")
}

/// Present while the runtime runs pods for real; the e2e tests of the data plane look for it.
pub(crate) fn ready_file(dir: &Path) -> PathBuf {
    dir.join("pod-runtime.ready")
}
