//! One pod's life on a node: its network, volumes, init containers in order (native sidecars
//! waited for by their startup probe), containers, probes, restarts, status, and graceful
//! deletion. A pod whose images the runtime cannot run is reported Running without processes,
//! as localkube's node simulator does, and an Event says so.

use crate::{
    Runtime,
    container::{self, Mount},
    env,
    image::{self, Program},
    net::PodNet,
    probe::{self, Outcome},
    status::{self, ContainerState, Kind, Terminated, Tracked},
    volumes,
};
use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use std::{
    net::Ipv4Addr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::{sync::watch, task::JoinSet};

/// The latest version of the pod, or `None` once it is gone from the API.
pub type PodRx = watch::Receiver<Option<Arc<Pod>>>;

/// Runs a pod until it is deleted.
pub async fn run(rt: Arc<Runtime>, mut rx: PodRx) {
    let Some(pod) = rx.borrow().clone() else {
        return;
    };
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let Some(ip) = rt.allocate(&node, &uid, &pod) else {
        tracing::warn!(pod = %key, "node {node} has no pod IPs left");
        return;
    };
    let plan = rt.plan(&pod);
    let result = match plan {
        Ok(programs) => run_real(&rt, &pod, ip, programs, &mut rx).await,
        Err(why) => status_only(&rt, &pod, ip, &why, &mut rx).await,
    };
    if let Err(e) = result {
        tracing::warn!(pod = %key, "{e:#}");
    }
    rt.release(&node, &uid);
    if !runtime_stopping(&rx) {
        confirm_deletion(&rt, &pod).await;
    }
}

/// Whether the pod's processes stop because the runtime stops, not because the pod is deleted:
/// then the pod stays in the API, for the next runtime to start again.
fn runtime_stopping(rx: &PodRx) -> bool {
    rx.has_changed().is_err()
        && rx
            .borrow()
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
}

async fn wait_deleted(rx: &mut PodRx) {
    loop {
        if rx
            .borrow()
            .as_ref()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn status_only(
    rt: &Runtime,
    pod: &Pod,
    ip: Ipv4Addr,
    why: &str,
    rx: &mut PodRx,
) -> Result<()> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    if phase.as_deref() != Some("Running") {
        let message = format!(
            "localkube runs no process for this pod ({why}); it is reported Running without one"
        );
        rt.event(pod, "StatusOnly", &message).await;
        let containers: Vec<Tracked> = rt
            .order(pod)
            .into_iter()
            .map(|(spec, kind)| {
                let done = kind == Kind::Init;
                let t = SystemTime::now();
                let state = ContainerState {
                    running: !done,
                    started: !done,
                    ready: !done,
                    started_at: Some(t),
                    terminated: done.then(|| Terminated {
                        exit_code: 0,
                        reason: "Completed".into(),
                        started_at: t,
                        finished_at: t,
                    }),
                    ..Default::default()
                };
                Tracked {
                    spec,
                    kind,
                    state: Arc::new(parking_lot::Mutex::new(state)),
                }
            })
            .collect();
        let facts = status::PodFacts {
            pod,
            pod_ip: ip.to_string(),
            host_ip: rt.host_ip(pod),
            start_time: SystemTime::now(),
            initialized: true,
            message: None,
        };
        let status = status::build(&facts, &containers, &mut status::Conditions::default());
        write_status(rt, pod, &status).await?;
    }
    wait_deleted(rx).await;
    Ok(())
}

fn write_status(
    rt: &Runtime,
    pod: &Pod,
    status: &serde_json::Value,
) -> impl Future<Output = Result<()>> + Send + use<> {
    let api: Api<Pod> = Api::namespaced(
        rt.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({"status": status});
    async move {
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(r)) if r.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Confirms the deletion once nothing runs any more, as kubelet does.
fn confirm_deletion(rt: &Runtime, pod: &Pod) -> impl Future<Output = ()> + Send + use<> {
    let api: Api<Pod> = Api::namespaced(
        rt.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    async move {
        let _ = api.delete(&name, &params).await;
    }
}

/// A running pod's shared facts for its container tasks.
struct Ctx {
    rt: Arc<Runtime>,
    /// The pod with its IP filled in, for fieldRefs.
    pod: Pod,
    net: PodNet,
    volumes: PathBuf,
    logs: PathBuf,
    sources: env::Sources,
    stop: watch::Receiver<bool>,
    /// Set once a pod that does not restart has finished: its sidecars stop for good.
    completed: std::sync::atomic::AtomicBool,
}

async fn run_real(
    rt: &Arc<Runtime>,
    pod: &Pod,
    ip: Ipv4Addr,
    programs: Vec<(Container, Kind, Program)>,
    rx: &mut PodRx,
) -> Result<()> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let dir = rt.state.join("pods").join(format!("{ns}_{name}_{uid}"));
    let (volumes_dir, logs) = (dir.join("volumes"), dir.join("logs"));
    std::fs::create_dir_all(&volumes_dir)?;
    std::fs::create_dir_all(&logs)?;
    // Volume directories are traversed by the containers' users.
    for d in [&rt.state.join("pods"), &dir, &volumes_dir] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }

    let mut pod_ipd = pod.clone();
    let host_ip = rt.host_ip(pod);
    {
        let st = pod_ipd.status.get_or_insert_with(Default::default);
        st.pod_ip = Some(ip.to_string());
        st.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
            ip: ip.to_string(),
        }]);
        st.host_ip = Some(host_ip.clone());
        st.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: host_ip.clone(),
        }]);
    }
    let net = PodNet::new(&uid, ip);
    net.up(&crate::net::resolv_conf(&ns, &rt.cluster_domain))
        .await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let tracked: Vec<Tracked> = programs
        .iter()
        .map(|(spec, kind, _)| Tracked {
            spec: spec.clone(),
            kind: *kind,
            state: Default::default(),
        })
        .collect();
    let start_time = SystemTime::now();
    let initialized = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let message: Arc<parking_lot::Mutex<Option<String>>> = Default::default();

    // The status writer: whenever what would be written changes.
    {
        let (rt, pod, tracked) = (rt.clone(), pod.clone(), tracked.clone());
        let (initialized, message, mut stop) =
            (initialized.clone(), message.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let mut conds = status::Conditions::default();
            let mut last = serde_json::Value::Null;
            loop {
                let facts = status::PodFacts {
                    pod: &pod,
                    pod_ip: ip.to_string(),
                    host_ip: host_ip.clone(),
                    start_time,
                    initialized: initialized.load(std::sync::atomic::Ordering::SeqCst),
                    message: message.lock().clone(),
                };
                let status = status::build(&facts, &tracked, &mut conds);
                if status != last {
                    match write_status(&rt, &pod, &status).await {
                        Ok(()) => last = status,
                        Err(e) => tracing::debug!("writing status: {e:#}"),
                    }
                }
                if *stop.borrow() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.changed() => {}
                }
            }
        });
    }

    // Volumes and env sources, retried as kubelet retries a mount that fails.
    let prepared = async {
        let mut reported = false;
        loop {
            let attempt = async {
                let sources = volumes::env_sources(&rt.client, &pod_ipd).await?;
                let tokens = volumes::prepare(&rt.client, &pod_ipd, &volumes_dir).await?;
                anyhow::Ok((sources, tokens))
            };
            match attempt.await {
                Ok(v) => {
                    *message.lock() = None;
                    return v;
                }
                Err(e) => {
                    *message.lock() = Some(format!("{e:#}"));
                    if !reported {
                        rt.event(pod, "FailedMount", &format!("{e:#}")).await;
                        reported = true;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    };
    let (sources, tokens) = tokio::select! {
        v = prepared => v,
        _ = wait_deleted(rx) => return shutdown(stop_tx, tasks, net, Vec::new(), 0).await,
    };
    for t in tokens {
        let (rt, pod) = (rt.clone(), pod_ipd.clone());
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(volumes::refresh_after(t.expiration_seconds)).await;
                if let Err(e) = volumes::write_token(&rt.client, &pod, &t).await {
                    tracing::warn!("refreshing a token: {e:#}");
                }
            }
        });
    }

    let ctx = Arc::new(Ctx {
        rt: rt.clone(),
        pod: pod_ipd,
        net: net.clone(),
        volumes: volumes_dir,
        logs,
        sources,
        stop: stop_rx.clone(),
        completed: Default::default(),
    });
    let restart_always = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .is_none_or(|p| p == "Always");

    // Init containers in order, then the containers.
    let started = async {
        for ((spec, kind, program), t) in programs.iter().zip(&tracked) {
            match kind {
                Kind::Init => loop {
                    let code = run_once(&ctx, spec, program, &t.state).await?;
                    if code == 0 {
                        break;
                    }
                    if !restart_always
                        && pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref())
                            == Some("Never")
                    {
                        return Err(anyhow!(
                            "init container {} failed with exit code {code}",
                            spec.name
                        ));
                    }
                    t.state.lock().restarts += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                },
                Kind::Sidecar => {
                    supervise(&ctx, spec, program, &t.state, true);
                    let has_startup = spec.startup_probe.is_some();
                    while !t.state.lock().started {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let _ = has_startup;
                }
                Kind::Main => {}
            }
        }
        initialized.store(true, std::sync::atomic::Ordering::SeqCst);
        for ((spec, kind, program), t) in programs.iter().zip(&tracked) {
            if *kind == Kind::Main {
                supervise(&ctx, spec, program, &t.state, restart_always);
            }
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = started => if let Err(e) = r {
            *message.lock() = Some(format!("{e:#}"));
            tracing::warn!("{e:#}");
            wait_deleted(rx).await;
        } else {
            if !restart_always {
                tokio::select! {
                    _ = stop_sidecars_when_done(&ctx, &tracked) => {}
                    _ = wait_deleted(rx) => {}
                }
            }
            wait_deleted(rx).await;
        },
        _ = wait_deleted(rx) => {}
    }
    let grace = match runtime_stopping(rx) {
        true => 2,
        false => rx
            .borrow()
            .as_ref()
            .and_then(|p| p.metadata.deletion_grace_period_seconds)
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30),
    };
    shutdown(stop_tx, tasks, net, tracked, grace).await
}

/// Stops the containers (regular ones first, then sidecars in reverse order), waiting up to the
/// grace period before killing what is left, then removes the network.
async fn shutdown(
    stop: watch::Sender<bool>,
    mut tasks: JoinSet<()>,
    net: PodNet,
    tracked: Vec<Tracked>,
    grace: i64,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace.max(0) as u64);
    let _ = stop.send(true);
    let mains: Vec<_> = tracked.iter().filter(|t| t.kind == Kind::Main).collect();
    let sidecars: Vec<_> = tracked
        .iter()
        .rev()
        .filter(|t| t.kind == Kind::Sidecar)
        .collect();
    for group in [mains, sidecars] {
        for t in &group {
            let pid = t.state.lock().pid;
            if let Some(pid) = pid {
                container::signal(pid, "TERM").await;
            }
        }
        while tokio::time::Instant::now() < deadline
            && group.iter().any(|t| t.state.lock().pid.is_some())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for t in &tracked {
        let pid = t.state.lock().pid;
        if let Some(pid) = pid {
            container::signal(pid, "KILL").await;
        }
    }
    while tracked.iter().any(|t| t.state.lock().pid.is_some()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    net.down().await;
    Ok(())
}

/// A pod that does not restart (a Job's) is done when its containers have exited; then its
/// sidecars are stopped, as kubelet stops native sidecars, and the pod's phase is final.
async fn stop_sidecars_when_done(ctx: &Ctx, tracked: &[Tracked]) {
    let mains: Vec<&Tracked> = tracked.iter().filter(|t| t.kind == Kind::Main).collect();
    while !mains.iter().all(|t| {
        let s = t.state.lock();
        !s.running && s.terminated.is_some()
    }) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ctx.completed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tracked.iter().rev().filter(|t| t.kind == Kind::Sidecar) {
        let pid = t.state.lock().pid;
        if let Some(pid) = pid {
            container::signal(pid, "TERM").await;
        }
    }
}

/// Runs an init container once and returns its exit code.
async fn run_once(
    ctx: &Ctx,
    spec: &Container,
    program: &Program,
    state: &status::Shared,
) -> Result<i32> {
    let mut child = start(ctx, spec, program, state).await?;
    let exit = child.wait().await?;
    let code = exit.code().unwrap_or(128 + 9);
    finished(state, code);
    Ok(code)
}

fn finished(state: &status::Shared, code: i32) {
    let mut s = state.lock();
    s.running = false;
    s.ready = false;
    s.started = false;
    s.pid = None;
    let t = Terminated {
        exit_code: code,
        reason: if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        },
        started_at: s.started_at.unwrap_or_else(SystemTime::now),
        finished_at: SystemTime::now(),
    };
    s.last_terminated = s.terminated.take();
    s.terminated = Some(t);
}

async fn start(
    ctx: &Ctx,
    spec: &Container,
    program: &Program,
    state: &status::Shared,
) -> Result<tokio::process::Child> {
    let spec_run = ctx.container_spec(spec, program)?;
    if *program == Program::Proxy {
        ctx.write_proxy_identity(&spec_run)?;
    }
    let child = container::spawn(&spec_run)?;
    let mut s = state.lock();
    s.pid = child.id();
    s.running = true;
    s.started_at = Some(SystemTime::now());
    s.waiting = None;
    if s.terminated.is_some() {
        s.last_terminated = s.terminated.take();
    }
    Ok(child)
}

/// Keeps a container running (restarting it when `restart`), with its probes.
fn supervise(
    ctx: &Arc<Ctx>,
    spec: &Container,
    program: &Program,
    state: &status::Shared,
    restart: bool,
) {
    let (ctx, spec, program, state) = (ctx.clone(), spec.clone(), program.clone(), state.clone());
    tokio::spawn(async move {
        let mut stop = ctx.stop.clone();
        let mut backoff = Duration::from_millis(500);
        loop {
            if stopping(&stop) {
                return;
            }
            let mut child = match start(&ctx, &spec, &program, &state).await {
                Ok(c) => c,
                Err(e) => {
                    state.lock().waiting = Some("CreateContainerError".into());
                    tracing::warn!(container = %spec.name, "{e:#}");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let probes = tokio::spawn(probe_loop(ctx.clone(), spec.clone(), state.clone()));
            let code = tokio::select! {
                exit = child.wait() => exit.ok().and_then(|e| e.code()).unwrap_or(137),
                _ = wait_stop(&mut stop) => {
                    let code = child.wait().await.ok().and_then(|e| e.code()).unwrap_or(137);
                    probes.abort();
                    finished(&state, code);
                    return;
                }
            };
            probes.abort();
            finished(&state, code);
            let done = ctx.completed.load(std::sync::atomic::Ordering::SeqCst);
            if !restart || done || stopping(&stop) || (code == 0 && ctx.restart_on_failure_only()) {
                return;
            }
            state.lock().restarts += 1;
            state.lock().waiting = Some("CrashLoopBackOff".into());
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
}

/// Startup, readiness and liveness probes of one running container.
async fn probe_loop(ctx: Arc<Ctx>, spec: Container, state: status::Shared) {
    let ip = ctx.net.ip;
    if let Some(p) = &spec.startup_probe {
        tokio::time::sleep(Duration::from_secs(
            p.initial_delay_seconds.unwrap_or(0) as u64
        ))
        .await;
        let mut failures = 0;
        loop {
            match probe::run(p, &spec, ip).await {
                Outcome::Success => break,
                Outcome::Failure(_) => failures += 1,
            }
            if failures >= p.failure_threshold.unwrap_or(3) {
                kill(&state).await;
                return;
            }
            tokio::time::sleep(Duration::from_secs(
                p.period_seconds.unwrap_or(10).max(1) as u64
            ))
            .await;
        }
    }
    state.lock().started = true;
    if spec.readiness_probe.is_none() {
        state.lock().ready = true;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let started = tokio::time::Instant::now();
    let (mut r_next, mut l_next) = (started, started);
    let mut l_failures = 0;
    let mut r_count = (0, 0);
    if let Some(p) = &spec.readiness_probe {
        r_next += Duration::from_secs(p.initial_delay_seconds.unwrap_or(0) as u64);
    }
    if let Some(p) = &spec.liveness_probe {
        l_next += Duration::from_secs(p.initial_delay_seconds.unwrap_or(0) as u64);
    }
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        if let Some(p) = &spec.readiness_probe
            && now >= r_next
        {
            // Kubelet probes readiness every period; we look more often until first ready.
            let ok = probe::run(p, &spec, ip).await == Outcome::Success;
            r_count = if ok {
                (r_count.0 + 1, 0)
            } else {
                (0, r_count.1 + 1)
            };
            let mut s = state.lock();
            if ok && r_count.0 >= p.success_threshold.unwrap_or(1) {
                s.ready = true;
            } else if !ok && r_count.1 >= p.failure_threshold.unwrap_or(3) {
                s.ready = false;
            }
            let period = if s.ready {
                p.period_seconds.unwrap_or(10).max(1) as u64 * 1000
            } else {
                500
            };
            r_next = now + Duration::from_millis(period);
        }
        if let Some(p) = &spec.liveness_probe
            && now >= l_next
        {
            match probe::run(p, &spec, ip).await {
                Outcome::Success => l_failures = 0,
                Outcome::Failure(why) => {
                    l_failures += 1;
                    if l_failures >= p.failure_threshold.unwrap_or(3) {
                        tracing::info!(container = %spec.name, "liveness probe failed: {why}; restarting");
                        kill(&state).await;
                        return;
                    }
                }
            }
            l_next = now + Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
        }
    }
}

async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

async fn kill(state: &status::Shared) {
    let pid = state.lock().pid;
    if let Some(pid) = pid {
        container::signal(pid, "KILL").await;
    }
}

// === impl Ctx ===

impl Ctx {
    fn restart_on_failure_only(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure")
    }

    fn container_spec(&self, c: &Container, program: &Program) -> Result<container::Spec> {
        let pod = &self.pod;
        let mut base = vec![(
            "HOSTNAME".to_string(),
            pod.metadata.name.clone().unwrap_or_default(),
        )];
        base.extend(env::kubernetes_service(
            &self.rt.api_service.0,
            self.rt.api_service.1,
        ));
        let vars = env::resolve(pod, c, &self.sources, base).map_err(|e| anyhow!(e))?;
        let bins = &self.rt.bins;
        let args = |vars: &[(String, String)]| -> Vec<String> {
            c.args
                .iter()
                .flatten()
                .map(|a| env::expand(a, vars))
                .collect()
        };
        let argv: Vec<String> = match program {
            Program::Proxy => vec![bins.proxy.display().to_string()],
            Program::ProxyInit => std::iter::once(bins.proxy_init.display().to_string())
                .chain(args(&vars))
                .collect(),
            Program::Controller(bin) => std::iter::once(bins.dir.join(bin).display().to_string())
                .chain(args(&vars))
                .collect(),
            Program::Prometheus => {
                std::iter::once(bins.dir.join(image::PROMETHEUS).display().to_string())
                    .chain(args(&vars))
                    .collect()
            }
            Program::TestApp(app_args) => {
                std::iter::once(bins.dir.join("oxlink-testapp").display().to_string())
                    .chain(app_args.iter().map(|a| env::expand(a, &vars)))
                    .collect()
            }
        };
        let mut mounts = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let mut source = self.volumes.join(&m.name);
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                source = source.join(sub);
            }
            if !source.exists() {
                return Err(anyhow!(
                    "volume {:?} of mount {} does not exist",
                    m.name,
                    m.mount_path
                ));
            }
            mounts.push(Mount {
                source,
                target: m.mount_path.clone(),
                read_only: m.read_only == Some(true),
            });
        }
        let sc = c.security_context.as_ref();
        let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        // linkerd-init needs NET_ADMIN; without capability handling it runs as root.
        let uid = match program {
            Program::ProxyInit => None,
            _ => sc
                .and_then(|s| s.run_as_user)
                .or_else(|| psc.and_then(|s| s.run_as_user)),
        };
        let gid = match program {
            Program::ProxyInit => None,
            _ => sc
                .and_then(|s| s.run_as_group)
                .or_else(|| psc.and_then(|s| s.run_as_group)),
        };
        Ok(container::Spec {
            netns: self.net.ns.clone(),
            argv,
            env: vars,
            mounts,
            uid,
            gid,
            workdir: c.working_dir.clone(),
            log: self.logs.join(format!("{}.log", c.name)),
        })
    }

    /// What the proxy image's entrypoint does before it starts the proxy: a fresh key and a
    /// CSR for the local identity in the identity directory.
    fn write_proxy_identity(&self, spec: &container::Spec) -> Result<()> {
        let get = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let dir = get("LINKERD2_PROXY_IDENTITY_DIR")
            .context("the proxy has no LINKERD2_PROXY_IDENTITY_DIR")?;
        let name = get("LINKERD2_PROXY_IDENTITY_LOCAL_NAME")
            .context("the proxy has no LINKERD2_PROXY_IDENTITY_LOCAL_NAME")?;
        let mount = spec
            .mounts
            .iter()
            .find(|m| m.target.trim_end_matches('/') == dir.trim_end_matches('/'))
            .with_context(|| format!("no volume is mounted at the identity directory {dir}"))?;
        let (key, csr) = oxlink_tls::generate::key_and_csr(&name)?;
        let uid = spec.uid.map(|u| u as u32);
        for (file, data) in [("key.p8", key.serialize_der()), ("csr.der", csr)] {
            let path = mount.source.join(file);
            volumes::write_file(&path, &data, 0o600)?;
            std::os::unix::fs::chown(&path, uid, spec.gid.map(|g| g as u32).or(uid))?;
        }
        Ok(())
    }
}
