//! `cargo xtask soak [--minutes N]`: the todo app and a gRPC pair under steady load through the
//! real proxies while a schedule of faults runs, counted by the load generators themselves.
//!
//! The mesh is set up as `cargo xtask demo` sets it up (the same [`Demo`] pieces): a local
//! cluster whose pods run for real, the control plane installed by `oxlink install` with two
//! replicas of every controller and a trust anchor whose key the soak keeps (to sign new
//! issuers), the todo app injected, and `e2e/fixtures/soak.yaml`: a meshed load generator sending
//! 20 GETs a second to todoui (todoui → todobackend → postgresdb) and a meshed gRPC client
//! sending 20 unary calls a second to a gRPC server of two replicas.
//!
//! Then faults, one after another, each with a window of steady load before it, the fault
//! itself (until the mesh has recovered), and a window after it; the schedule repeats while
//! the next fault can end within `--minutes` of the start (the first round, every fault once,
//! always runs to its end). After each
//! window the soak draws every load generator's counts (`POST :9000/window`; a load pod that
//! was replaced printed its last counts into its log, which the soak reads), so no request goes
//! uncounted. After each fault it samples the RSS of every controller replica.
//!
//! It prints a table, one row per fault: requests sent and failed, p99 latency before, during
//! and after, how long the fault took, and the controllers' RSS; and ends with one line,
//! `soak: N requests, M failed (R where a replica was left), K faults`. It fails when a request
//! failed during a fault that left a redundant replica serving, when a fault's own action
//! failed, when a controller's RSS grew beyond the bound ([`report::RSS_GROWTH_FACTOR`],
//! [`report::RSS_SLACK_MIB`]), or when a load pod's counts were lost.

mod report;

use crate::{
    demo::{self, APP_NS, CONTROL_NS, Demo},
    run,
};
use anyhow::{Context, Result, bail, ensure};
use oxlink_testapp::stats::Stats;
use report::{FaultRun, Rss, Window};
use serde_json::Value;
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// How long the soak runs, set-up included, in minutes: no fault starts that would end
    /// later (but the first round, every fault once, always runs to its end).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) minutes: u64,
    /// Seconds of steady load before and after each fault.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) window: u64,
    /// Leave this fault out (repeatable).
    #[arg(long, value_enum, value_name = "FAULT")]
    pub(crate) skip: Vec<Fault>,
}

/// The faults, in the order of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub(crate) enum Fault {
    /// SIGKILL one of identity's two replicas; its container restarts.
    KillIdentity,
    /// SIGKILL one of destination's two replicas.
    KillDestination,
    /// SIGKILL one of the proxy injector's two replicas.
    KillInjector,
    /// Stop and start the API server (localkube): every watch is dropped.
    RestartApiServer,
    /// Every controller replica's connections to the API server closed under it (`ss -K` in
    /// its network namespace), the API server staying up: each must notice and watch again.
    DropWatches,
    /// A new issuer, signed by the trust anchor, into `linkerd-identity-issuer`.
    RotateIssuer,
    /// todobackend and the gRPC server scaled 2 → 4 → 2.
    ChurnEndpoints,
    /// One todobackend pod and one gRPC server pod deleted under load.
    DeletePods,
    /// `oxlink identity rotate-anchor`: every meshed workload restarts, three times.
    RotateAnchor,
}

const FAULTS: [Fault; 9] = [
    Fault::KillIdentity,
    Fault::KillDestination,
    Fault::KillInjector,
    Fault::RestartApiServer,
    Fault::DropWatches,
    Fault::RotateIssuer,
    Fault::ChurnEndpoints,
    Fault::DeletePods,
    Fault::RotateAnchor,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::KillIdentity => "kill identity (1 of 2)",
            Fault::KillDestination => "kill destination (1 of 2)",
            Fault::KillInjector => "kill proxy-injector (1 of 2)",
            Fault::RestartApiServer => "restart the API server",
            Fault::DropWatches => "close the controllers' watches",
            Fault::RotateIssuer => "rotate the issuer",
            Fault::ChurnEndpoints => "churn endpoints 2→4→2",
            Fault::DeletePods => "delete pods mid-request",
            Fault::RotateAnchor => "rotate the trust anchor",
        }
    }

    /// Whether a replica of what the fault takes away is left serving. The API server has
    /// none, and closing the watches hits every controller replica at once; every controller
    /// runs two replicas, and the app's rollouts surge.
    fn redundant(self) -> bool {
        !matches!(self, Fault::RestartApiServer | Fault::DropWatches)
    }
}

/// The controllers: the name in the table, the binary their replicas run, their Deployment.
const CONTROLLERS: [(&str, &str, &str); 3] = [
    ("identity", "oxlink-identity", "linkerd-identity"),
    ("destination", "oxlink-destination", "linkerd-destination"),
    (
        "injector",
        "oxlink-proxy-injector",
        "linkerd-proxy-injector",
    ),
];
const CONTROLLER_REPLICAS: usize = 2;

/// The load generators' Deployments (label `app`, and the container's name).
const LOADS: [&str; 2] = ["load", "grpc-load"];
/// The port of their `POST /window`.
const STATS_PORT: u16 = 9000;
/// Where the pod runtime keeps each pod's container logs: `<ns>_<pod>_<uid>/logs/<container>.log`.
const POD_STATE: &str = "/var/lib/oxlink-pods/pods";

/// How long the mesh may take to recover from a fault.
const RECOVERY: Duration = Duration::from_secs(180);

pub(crate) fn run(args: SoakArgs) -> Result<()> {
    let mut demo = Demo::new("soak", demo::ctrl_c()?, demo::target_dir().join("debug"))?;
    let outcome = soak(&mut demo, &args);
    if let Err(e) = &outcome {
        eprintln!(
            "\nthe soak failed: {e:#}\nfiles and logs: {}",
            demo.dir().display()
        );
    }
    demo.teardown();
    let (runs, start_rss) = outcome?;
    let names: Vec<&'static str> = CONTROLLERS.iter().map(|c| c.0).collect();
    println!(
        "\ncontrollers' RSS in MiB, one number per replica; the bound at the end is {}× the \
         start + {} MiB",
        report::RSS_GROWTH_FACTOR,
        report::RSS_SLACK_MIB
    );
    print!("{}", report::table(&runs.runs, &start_rss, &names));
    let totals = report::totals(&runs.runs);
    let end_rss = runs.runs.last().map(|r| r.rss.clone()).unwrap_or_default();
    let grown = report::rss_growth(&start_rss, &end_rss);
    let mut problems = Vec::new();
    if totals.failed_redundant > 0 {
        problems.push(format!(
            "{} requests failed during faults that left a replica serving",
            totals.failed_redundant
        ));
    }
    if totals.faults_failed > 0 {
        problems.push(format!("{} faults did not complete", totals.faults_failed));
    }
    problems.extend(
        grown
            .into_iter()
            .map(|g| format!("RSS grew beyond the bound: {g}")),
    );
    problems.extend(
        runs.lost
            .iter()
            .map(|p| format!("the counts of load pod {p} were lost")),
    );
    for p in &problems {
        println!("{p}");
    }
    println!("{}", report::closing_line(&totals));
    if !problems.is_empty() {
        bail!("the soak failed: {}", problems.join("; "));
    }
    Ok(())
}

/// What the schedule produced.
struct Runs {
    runs: Vec<FaultRun>,
    /// Load pods whose last counts never showed up.
    lost: Vec<String>,
}

fn soak(demo: &mut Demo, args: &SoakArgs) -> Result<(Runs, Rss)> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.minutes * 60);
    println!(
        "soak: setting up the mesh (the local cluster, the control plane, the todo app, the load)"
    );
    demo.build()?;
    demo.start_cluster()?;
    ensure!(
        demo.real(),
        "the soak needs pods that run for real (the pod runtime and the real proxy): run as \
         root with OXLINK_PROXY_BIN and OXLINK_PROXY_INIT_BIN set"
    );
    let mut soak = Soak {
        demo,
        pki: PathBuf::new(),
        pki_count: 0,
        seen: BTreeMap::new(),
        old_pod_dirs: pod_dirs(),
        started,
    };
    soak.install()?;
    let start_rss = controller_rss();
    println!(
        "soak: the mesh is up after {:.0}s; controllers' RSS (MiB): {start_rss:?}",
        started.elapsed().as_secs_f64()
    );

    let faults: Vec<Fault> = FAULTS
        .iter()
        .copied()
        .filter(|f| !args.skip.contains(f))
        .collect();
    let window = Duration::from_secs(args.window);
    let mut runs = Vec::new();
    let mut took: BTreeMap<Fault, Duration> = BTreeMap::new();
    let mut round = 1;
    'rounds: loop {
        for &fault in &faults {
            // After the first round, a fault starts only if it can end in time.
            let expected = took.get(&fault).copied().unwrap_or_default() + window * 2;
            if round > 1 && Instant::now() + expected > deadline {
                break 'rounds;
            }
            let t = Instant::now();
            let run = soak.fault(round, fault, window)?;
            took.insert(fault, t.elapsed().saturating_sub(window * 2));
            runs.push(run);
        }
        if faults.is_empty() || Instant::now() >= deadline {
            break;
        }
        round += 1;
    }
    // The load generators stop, print their last counts, and those go to the last window.
    for app in LOADS {
        soak.demo.kubectl(&[
            "scale",
            "-n",
            APP_NS,
            &format!("deployment/{app}"),
            "--replicas=0",
        ])?;
    }
    for app in LOADS {
        soak.wait_pods(app, 0)?;
    }
    let tail = soak.poll();
    if let Some(last) = runs.last_mut() {
        last.after.merge(&tail);
    }
    let lost = soak
        .seen
        .values()
        .filter(|p| !p.done)
        .map(|p| p.name.clone())
        .collect();
    Ok((Runs { runs, lost }, start_rss))
}

/// A load pod the soak has seen.
#[derive(Debug)]
struct LoadPod {
    name: String,
    app: &'static str,
    /// Whether its last counts were read from its log.
    done: bool,
}

struct Soak<'a> {
    demo: &'a Demo,
    /// The directory with the current trust anchor (ca.crt, ca.key) and issuer.
    pki: PathBuf,
    pki_count: u32,
    /// Load pods by UID.
    seen: BTreeMap<String, LoadPod>,
    /// The pod directories of the pod runtime from before the soak (of earlier runs).
    old_pod_dirs: BTreeSet<String>,
    started: Instant,
}

impl Soak<'_> {
    /// The trust anchor and issuer, the control plane (two replicas of every controller), the
    /// todo app and the load; then one window drawn and dropped (the start-up).
    fn install(&mut self) -> Result<()> {
        self.pki = self.next_pki_dir()?;
        let pki = self.pki.display().to_string();
        self.demo.oxlink(&["identity", "generate", "--dir", &pki])?;
        let file = |name: &str| self.pki.join(name).display().to_string();
        let (ca, crt, key) = (file("ca.crt"), file("issuer.crt"), file("issuer.key"));
        let replicas = format!("controllerReplicas={CONTROLLER_REPLICAS}");
        self.demo.install_with_oxlink(&[
            "--identity-trust-anchors-file",
            &ca,
            "--identity-issuer-certificate-file",
            &crt,
            "--identity-issuer-key-file",
            &key,
            "--set",
            &replicas,
        ])?;
        self.demo.wait_for_controller_pods()?;
        self.demo.oxlink(&["check", "--wait", "2m"])?;
        self.demo.deploy_todo_app()?;
        self.demo
            .kubectl(&["apply", "-n", APP_NS, "-f", &demo::fixture("soak.yaml")])?;
        for deploy in ["load", "grpc-server", "grpc-load"] {
            self.demo.kubectl(&[
                "rollout",
                "status",
                "-n",
                APP_NS,
                &format!("deployment/{deploy}"),
                "--timeout=120s",
            ])?;
        }
        // Requests flow through every hop before the first fault.
        std::thread::sleep(Duration::from_secs(3));
        let first = self.poll();
        std::thread::sleep(Duration::from_secs(3));
        let check = self.poll();
        println!(
            "soak: load flowing: {} sent in the start-up ({} failed, not counted), then {} sent, {} failed",
            first.sent, first.failed, check.sent, check.failed
        );
        ensure!(check.sent > 0, "the load generators sent nothing");
        ensure!(
            check.failed < check.sent,
            "every request failed before any fault: the mesh is not serving"
        );
        Ok(())
    }

    fn next_pki_dir(&mut self) -> Result<PathBuf> {
        let dir = self.demo.dir().join(format!("pki-{}", self.pki_count));
        self.pki_count += 1;
        let _ = fs::remove_dir_all(&dir);
        Ok(dir)
    }

    /// One fault: a window before, the fault until the mesh has recovered, a window after.
    fn fault(&mut self, round: u32, fault: Fault, window: Duration) -> Result<FaultRun> {
        println!(
            "\nsoak [{}] round {round}: {}",
            elapsed(self.started),
            fault.name()
        );
        let t0 = Instant::now();
        self.sleep(window)?;
        let before = self.poll();
        let t = Instant::now();
        let outcome = self.act(fault).map_err(|e| format!("{e:#}"));
        let secs = t.elapsed().as_secs_f64();
        let during = self.poll();
        self.sleep(window)?;
        let after = self.poll();
        let rss = controller_rss();
        let run = FaultRun {
            round,
            name: fault.name(),
            redundant: fault.redundant(),
            outcome,
            secs,
            before,
            during,
            after,
            rss,
        };
        let total = run.total();
        println!(
            "soak [{}] {}: {} in {secs:.0}s; {} sent ({:.1}/s), {} failed {}; RSS {:?}",
            elapsed(self.started),
            fault.name(),
            match &run.outcome {
                Ok(note) => format!("done ({note})"),
                Err(e) => format!("FAILED ({e})"),
            },
            total.sent,
            total.sent as f64 / t0.elapsed().as_secs_f64(),
            total.failed,
            total.failure_kinds(),
            run.rss
        );
        Ok(run)
    }

    /// The fault's action, returning once the mesh has recovered from it.
    fn act(&mut self, fault: Fault) -> Result<String> {
        match fault {
            Fault::KillIdentity => self.kill(0),
            Fault::KillDestination => self.kill(1),
            Fault::KillInjector => self.kill(2),
            Fault::RestartApiServer => {
                let t = Instant::now();
                self.demo.cluster().restart_api_server()?;
                let back = t.elapsed().as_secs_f64();
                for (_, _, deploy) in CONTROLLERS {
                    self.wait_deployment(CONTROL_NS, deploy, CONTROLLER_REPLICAS)?;
                }
                Ok(format!("API server back after {back:.1}s"))
            }
            Fault::DropWatches => self.drop_watches(),
            Fault::RotateIssuer => self.rotate_issuer(),
            Fault::ChurnEndpoints => {
                for n in [4, 2] {
                    for app in ["todobackend", "grpc-server"] {
                        self.demo.kubectl(&[
                            "scale",
                            "-n",
                            APP_NS,
                            &format!("deployment/{app}"),
                            &format!("--replicas={n}"),
                        ])?;
                    }
                    for app in ["todobackend", "grpc-server"] {
                        self.wait_pods(app, n)?;
                    }
                }
                Ok("todobackend and grpc-server 2→4→2".into())
            }
            Fault::DeletePods => {
                let mut deleted = Vec::new();
                for app in ["todobackend", "grpc-server"] {
                    let pods = self.pods(APP_NS, app)?;
                    let name = pods
                        .first()
                        .and_then(|p| p["metadata"]["name"].as_str())
                        .with_context(|| format!("no {app} pod to delete"))?
                        .to_string();
                    self.demo
                        .kubectl(&["delete", "pod", "-n", APP_NS, &name, "--wait=false"])?;
                    deleted.push(name);
                }
                for app in ["todobackend", "grpc-server"] {
                    self.wait_pods(app, 2)?;
                }
                Ok(format!("deleted {}", deleted.join(", ")))
            }
            Fault::RotateAnchor => self.rotate_anchor(),
        }
    }

    /// SIGKILLs the first replica of controller `i` and waits until its container has
    /// restarted and every replica is Ready again.
    fn kill(&self, i: usize) -> Result<String> {
        let (name, binary, deploy) = CONTROLLERS[i];
        let before = controller_pids(binary);
        ensure!(
            before.len() == CONTROLLER_REPLICAS,
            "{name} runs {} processes, not {CONTROLLER_REPLICAS}: {before:?}",
            before.len()
        );
        let victim = before[0];
        crate::run::signal(victim, "KILL");
        let t = Instant::now();
        loop {
            let now = controller_pids(binary);
            if now.len() == CONTROLLER_REPLICAS && !now.contains(&victim) {
                break;
            }
            if t.elapsed() > RECOVERY {
                bail!("{name}'s killed replica (pid {victim}) did not come back: {now:?}");
            }
            self.sleep(Duration::from_millis(200))?;
        }
        let restarted = t.elapsed().as_secs_f64();
        self.wait_deployment(CONTROL_NS, deploy, CONTROLLER_REPLICAS)?;
        Ok(format!(
            "pid {victim} killed, restarted after {restarted:.1}s, Ready after {:.1}s",
            t.elapsed().as_secs_f64()
        ))
    }

    /// Closes every controller replica's connections to the API server (its watches among
    /// them) and waits until each has connected again and every replica is Ready.
    fn drop_watches(&self) -> Result<String> {
        let pids: Vec<(&str, u32)> = CONTROLLERS
            .iter()
            .flat_map(|(name, binary, _)| controller_pids(binary).into_iter().map(|p| (*name, p)))
            .collect();
        let t = Instant::now();
        let mut closed = 0;
        for &(name, pid) in &pids {
            let filter = api_server_filter(pid)
                .with_context(|| format!("where {name} (pid {pid}) finds the API server"))?;
            let out = run::output(
                std::process::Command::new("nsenter")
                    .args(["-t", &pid.to_string(), "-n", "ss", "-K", "-t", "-n"])
                    .args(&filter),
            )?;
            // One header line, then one line per closed socket.
            closed += out.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
        }
        ensure!(closed > 0, "no connection to the API server to close");
        for &(name, pid) in &pids {
            let filter = api_server_filter(pid)?;
            loop {
                let out = run::output(
                    std::process::Command::new("nsenter")
                        .args([
                            "-t",
                            &pid.to_string(),
                            "-n",
                            "ss",
                            "-t",
                            "-n",
                            "state",
                            "established",
                        ])
                        .args(&filter),
                )
                .unwrap_or_default();
                if out.lines().skip(1).any(|l| !l.trim().is_empty()) {
                    break;
                }
                if t.elapsed() > RECOVERY {
                    bail!("{name} (pid {pid}) did not connect to the API server again");
                }
                self.sleep(Duration::from_millis(200))?;
            }
        }
        let back = t.elapsed().as_secs_f64();
        for (_, _, deploy) in CONTROLLERS {
            self.wait_deployment(CONTROL_NS, deploy, CONTROLLER_REPLICAS)?;
        }
        Ok(format!(
            "{closed} connections of {} replicas closed, all connected again after {back:.1}s",
            pids.len()
        ))
    }

    /// A new issuer signed by the current trust anchor, written into the issuer Secret, which
    /// identity reloads without a restart.
    fn rotate_issuer(&self) -> Result<String> {
        let pki = self.pki.display().to_string();
        self.demo.oxlink(&[
            "identity",
            "generate",
            "--dir",
            &pki,
            "--anchor-dir",
            &pki,
            "--force",
        ])?;
        let from =
            |key: &str, file: &str| format!("--from-file={key}={}", self.pki.join(file).display());
        let secret = self.demo.kubectl_output(&[
            "create",
            "secret",
            "generic",
            "linkerd-identity-issuer",
            "-n",
            CONTROL_NS,
            &from("crt.pem", "issuer.crt"),
            &from("key.pem", "issuer.key"),
            "--dry-run=client",
            "-o",
            "yaml",
        ])?;
        self.demo.kubectl_stdin(&["apply", "-f", "-"], &secret)?;
        // identity must stay Ready on the new issuer.
        self.sleep(Duration::from_secs(3))?;
        self.wait_deployment(CONTROL_NS, "linkerd-identity", CONTROLLER_REPLICAS)?;
        Ok("new issuer in linkerd-identity-issuer".into())
    }

    /// `oxlink identity rotate-anchor`, generating the new anchor into a new directory that
    /// becomes the current one when the rotation completes.
    fn rotate_anchor(&mut self) -> Result<String> {
        let dir = self.next_pki_dir()?;
        let out = self.demo.oxlink_output(&[
            "identity",
            "rotate-anchor",
            "--dir",
            &dir.display().to_string(),
            "--batch",
            "3",
            "--timeout",
            "3m",
        ]);
        let log = dir.with_extension("log");
        let text = match &out {
            Ok(text) => text.clone(),
            Err(e) => format!("{e:#}"),
        };
        let _ = fs::write(&log, &text);
        let text = out.with_context(|| format!("the rotation's output: {}", log.display()))?;
        ensure!(
            text.contains("trust anchor rotation complete"),
            "the rotation did not say it completed; see {}",
            log.display()
        );
        self.pki = dir;
        for (_, _, deploy) in CONTROLLERS {
            self.wait_deployment(CONTROL_NS, deploy, CONTROLLER_REPLICAS)?;
        }
        Ok(format!("complete; log {}", log.display()))
    }

    /// Sleeps, waking for Ctrl-C.
    fn sleep(&self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.demo.interrupted()?;
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(200)));
        }
        Ok(())
    }

    /// The pods of `app` in `ns`, as JSON objects.
    fn pods(&self, ns: &str, app: &str) -> Result<Vec<Value>> {
        let out = self.demo.kubectl_output(&[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("app={app}"),
            "-o",
            "json",
        ])?;
        let list: Value = serde_json::from_str(&out).context("kubectl get pods -o json")?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `app` in the app's namespace has exactly `n` pods, every one Ready and none
    /// terminating.
    fn wait_pods(&self, app: &str, n: usize) -> Result<()> {
        let t = Instant::now();
        loop {
            let pods = self.pods(APP_NS, app)?;
            let ready = pods
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && is_ready(p))
                .count();
            if pods.len() == n && ready == n {
                return Ok(());
            }
            if t.elapsed() > RECOVERY {
                bail!(
                    "{app}: {} pods, {ready} Ready, after {}s; wanted {n}",
                    pods.len(),
                    RECOVERY.as_secs()
                );
            }
            self.sleep(Duration::from_millis(500))?;
        }
    }

    /// Waits until Deployment `ns/name` has `n` Ready replicas and no others.
    fn wait_deployment(&self, ns: &str, name: &str, n: usize) -> Result<()> {
        let t = Instant::now();
        let want = format!("{n} {n} {n}");
        loop {
            let got = self
                .demo
                .kubectl_output(&[
                    "get",
                    "deployment",
                    "-n",
                    ns,
                    name,
                    "-o",
                    "jsonpath={.status.replicas} {.status.readyReplicas} {.status.updatedReplicas}",
                ])
                .unwrap_or_default();
            if got.trim() == want {
                return Ok(());
            }
            if t.elapsed() > RECOVERY {
                bail!(
                    "deployment {ns}/{name}: replicas, Ready, updated = {got:?} after {}s; wanted {want}",
                    RECOVERY.as_secs()
                );
            }
            self.sleep(Duration::from_millis(500))?;
        }
    }

    /// Draws every load generator's counts since the last draw: a window from each running
    /// load pod, and the last counts of each one that has stopped since. Problems reaching a
    /// pod are reported and leave its counts for the next draw.
    fn poll(&mut self) -> Window {
        let mut window = Window::default();
        let mut listed = BTreeSet::new();
        for app in LOADS {
            let pods = match self.pods(APP_NS, app) {
                Ok(pods) => pods,
                Err(e) => {
                    eprintln!("soak: listing the {app} pods: {e:#}");
                    // Without the list, no pod is taken for gone.
                    listed.extend(self.seen.keys().cloned());
                    continue;
                }
            };
            for pod in pods {
                let (Some(uid), Some(name)) = (
                    pod["metadata"]["uid"].as_str(),
                    pod["metadata"]["name"].as_str(),
                ) else {
                    continue;
                };
                listed.insert(uid.to_string());
                self.seen.entry(uid.to_string()).or_insert_with(|| LoadPod {
                    name: name.to_string(),
                    app,
                    done: false,
                });
                let Some(ip) = pod["status"]["podIP"]
                    .as_str()
                    .and_then(|ip| ip.parse().ok())
                else {
                    continue;
                };
                match load_window(SocketAddr::new(ip, STATS_PORT)) {
                    Ok(stats) => window.add(app, &stats),
                    // A pod on its way out has stopped serving; its log has its last counts.
                    Err(e) if !pod["metadata"]["deletionTimestamp"].is_null() => {
                        let _ = e;
                    }
                    Err(e) => eprintln!("soak: the counts of {name}: {e:#}"),
                }
            }
        }
        // A load pod that came and went between two draws (a rotation restarts the load
        // generators more than once) is known only by the directory the runtime gave it.
        for dir in pod_dirs().difference(&self.old_pod_dirs) {
            if let Some((app, name, uid)) = load_pod_dir(dir) {
                self.seen.entry(uid.to_string()).or_insert_with(|| LoadPod {
                    name: name.to_string(),
                    app,
                    done: false,
                });
            }
        }
        for (uid, pod) in &mut self.seen {
            if pod.done || listed.contains(uid) {
                continue;
            }
            if let Some(stats) = last_counts(&pod.name, uid, pod.app) {
                window.add(pod.app, &stats);
                pod.done = true;
            }
        }
        window
    }
}

/// The names of the pod runtime's pod directories (`<ns>_<pod>_<uid>`).
fn pod_dirs() -> BTreeSet<String> {
    fs::read_dir(POD_STATE)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The load generator, pod name and UID of a pod directory of the app's namespace, if it is a
/// load generator's.
fn load_pod_dir(dir: &str) -> Option<(&'static str, &str, &str)> {
    let rest = dir.strip_prefix(APP_NS)?.strip_prefix('_')?;
    let (name, uid) = rest.rsplit_once('_')?;
    let app = LOADS.into_iter().find(|app| {
        name.strip_prefix(app)
            .and_then(|r| r.strip_prefix('-'))
            // `<deployment>-<replicaset hash>-<suffix>`: no more dashes after the app's name.
            .is_some_and(|r| r.matches('-').count() == 1)
    })?;
    Some((app, name, uid))
}

/// The `ss` filter for the connections of process `pid` to the API server, by the address
/// its pod was given (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`).
fn api_server_filter(pid: u32) -> Result<Vec<String>> {
    let environ = fs::read(format!("/proc/{pid}/environ"))?;
    let var = |name: &str| {
        environ
            .split(|&b| b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
            .with_context(|| format!("{name} is not set"))
    };
    let (host, port) = (
        var("KUBERNETES_SERVICE_HOST")?,
        var("KUBERNETES_SERVICE_PORT")?,
    );
    Ok(vec![
        "dst".into(),
        host,
        "dport".into(),
        "=".into(),
        format!(":{port}"),
    ])
}

/// A load generator's counts since its last window (`POST /window`).
fn load_window(addr: SocketAddr) -> Result<Stats> {
    let (status, body) = run::http(addr, "POST", "/window", Duration::from_secs(5))?;
    ensure!(
        status == 200,
        "POST /window on {addr} answered {status}: {body}"
    );
    serde_json::from_str(&body).with_context(|| format!("POST /window on {addr}: {body}"))
}

/// The counts a stopped load pod printed last (its counts since its last window).
fn last_counts(name: &str, uid: &str, container: &str) -> Option<Stats> {
    let log = Path::new(POD_STATE)
        .join(format!("{APP_NS}_{name}_{uid}"))
        .join("logs")
        .join(format!("{container}.log"));
    let text = fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Stats>(l.trim()).ok())
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The pids of the processes running `binary` in a pod (a network namespace other than ours),
/// oldest first.
fn controller_pids(binary: &str) -> Vec<u32> {
    let own_net = fs::read_link("/proc/self/ns/net").ok();
    let mut pids: Vec<(u64, u32)> = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        let argv0 = String::from_utf8_lossy(argv0);
        if argv0.rsplit('/').next() != Some(binary) {
            continue;
        }
        if fs::read_link(format!("/proc/{pid}/ns/net")).ok() == own_net {
            continue;
        }
        // Field 22 of stat: the start time, to order them.
        let start = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse().ok())
            })
            .unwrap_or(0);
        pids.push((start, pid));
    }
    pids.sort();
    pids.into_iter().map(|(_, pid)| pid).collect()
}

/// Each controller's replicas' RSS in MiB.
fn controller_rss() -> Rss {
    let mut rss = Rss::new();
    for (name, binary, _) in CONTROLLERS {
        let replicas = controller_pids(binary)
            .into_iter()
            .filter_map(|pid| {
                let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let kb: f64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()?;
                Some(kb / 1024.0)
            })
            .collect();
        rss.insert(name, replicas);
    }
    rss
}

fn elapsed(since: Instant) -> String {
    let s = since.elapsed().as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        soak: SoakArgs,
    }

    #[test]
    fn flags_default_to_thirty_minutes_of_every_fault() {
        let cli = Cli::try_parse_from(["soak"]).unwrap();
        assert_eq!((cli.soak.minutes, cli.soak.window), (30, 10));
        assert!(cli.soak.skip.is_empty());
        let cli =
            Cli::try_parse_from(["soak", "--minutes", "3", "--skip", "rotate-anchor"]).unwrap();
        assert_eq!(cli.soak.skip, [Fault::RotateAnchor]);
        let err = Cli::try_parse_from(["soak", "--minutes", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--minutes"), "{err}");
        let err = Cli::try_parse_from(["soak", "--skip", "nap"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("kill-identity"), "{err}");
    }

    #[test]
    fn only_the_api_server_and_the_watches_have_no_replica() {
        let lone: Vec<Fault> = FAULTS.iter().copied().filter(|f| !f.redundant()).collect();
        assert_eq!(lone, [Fault::RestartApiServer, Fault::DropWatches]);
    }

    #[test]
    fn load_pod_directories_are_told_apart() {
        assert_eq!(
            load_pod_dir("todo_load-686796f8f9-px97v_acba72df-4ccd"),
            Some(("load", "load-686796f8f9-px97v", "acba72df-4ccd"))
        );
        assert_eq!(
            load_pod_dir("todo_grpc-load-664f4bf5bd-lrz9b_2f220f54"),
            Some(("grpc-load", "grpc-load-664f4bf5bd-lrz9b", "2f220f54"))
        );
        for other in [
            "todo_todoui-764fc6b66-lpkph_28926926",
            "linkerd_load-686796f8f9-px97v_acba72df",
            "todo_load-balancer-686796f8f9-px97v_acba72df",
            "todo_load-686796f8f9-px97v",
        ] {
            assert_eq!(load_pod_dir(other), None, "{other}");
        }
    }

    #[test]
    fn a_stopped_load_pods_last_counts_are_read_from_its_log() {
        assert!(last_counts("no-such-pod", "no-uid", "load").is_none());
    }

    #[test]
    fn no_controller_runs_in_this_process_namespace() {
        // The xtask test itself is no pod: a binary of ours is never taken for a controller.
        let me = std::env::current_exe().unwrap();
        let name = me.file_name().unwrap().to_str().unwrap();
        assert!(controller_pids(name).is_empty());
    }
}
