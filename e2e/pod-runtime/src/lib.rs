//! A kubelet for localkube's nodes. It watches the pods bound to them and runs each as
//! processes in a network namespace of its own, as kubelet would: the real `linkerd2-proxy` and
//! `linkerd2-proxy-init` for the proxy image, oxlink's controllers for its image, and oxlink's
//! test app for application images. Cluster DNS and Service routing come from upstream CoreDNS
//! and kube-proxy, which localkube links and this runtime starts inside the pod network.
//!
//! Pods whose images it cannot run are reported Running without processes, with an Event
//! saying so. Without root (or with `--status-only`) every pod is.

pub mod container;
pub mod env;
pub mod exec;
pub mod image;
pub mod net;
pub mod pod;
pub mod probe;
pub mod services;
pub mod status;
pub mod volumes;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use image::{Images, Program};
use k8s_openapi::api::core::v1::{Container, Event, Node, Pod};
use kube::{Api, Client, runtime::watcher};
use parking_lot::Mutex;
use status::Kind;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::Ipv4Addr,
    path::PathBuf,
    sync::Arc,
};
use tokio::sync::watch;

/// Where the runtime keeps pods' volumes and logs, and the programs they run (`bin/`).
pub const STATE_DIR: &str = "/var/lib/oxlink-pods";

/// `oxlink-pod-runtime run` runs the nodes' pods; `exec` runs a command in a pod's network
/// namespace, like `kubectl exec`.
#[derive(Debug, clap::Parser)]
#[command(name = "oxlink-pod-runtime", version)]
pub enum Cli {
    /// Run the pods bound to localkube's nodes.
    Run(Args),
    /// Run a command inside a running pod's network namespace, with the pod's resolver
    /// (`oxlink-testapp` is on its PATH): its traffic goes through the pod's proxy.
    Exec(exec::ExecArgs),
}

impl Cli {
    pub async fn run(self) -> Result<()> {
        match self {
            Cli::Run(args) => args.run().await,
            Cli::Exec(args) => args.run().await,
        }
    }
}

/// `oxlink-pod-runtime run`'s flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The admin kubeconfig of the local cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Where pods' volumes, logs and the programs they run are kept.
    #[arg(long, default_value = STATE_DIR)]
    state_dir: PathBuf,
    /// The real linkerd2-proxy.
    #[arg(long, env = "OXLINK_PROXY_BIN")]
    proxy_bin: Option<PathBuf>,
    /// The real linkerd2-proxy-init.
    #[arg(long, env = "OXLINK_PROXY_INIT_BIN")]
    proxy_init_bin: Option<PathBuf>,
    /// The directory holding oxlink's binaries (controllers and oxlink-testapp).
    #[arg(long)]
    bin_dir: PathBuf,
    /// The localkube binary, which runs CoreDNS and kube-proxy.
    #[arg(long)]
    localkube_bin: PathBuf,
    /// The upstream Prometheus server, run for Prometheus' image (the viz extension's pod).
    #[arg(long, env = "OXLINK_PROMETHEUS_BIN")]
    prometheus_bin: Option<PathBuf>,
    /// Report every pod Running without running it, as localkube's node simulator does.
    #[arg(long)]
    status_only: bool,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// A file written once the pod network is up, and removed on exit.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Log filter.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

/// The programs pods run, copied where every container user can run them.
#[derive(Clone, Debug)]
pub struct Bins {
    proxy: PathBuf,
    proxy_init: PathBuf,
    dir: PathBuf,
}

/// The runtime shared by every pod's task.
pub struct Runtime {
    client: Client,
    images: Images,
    bins: Bins,
    state: PathBuf,
    real: bool,
    cluster_domain: String,
    /// The `kubernetes` Service's address, as kubelet puts it in every container's env.
    api_service: (String, u16),
    nodes: BTreeMap<String, NodeInfo>,
    ips: Mutex<HashMap<String, BTreeMap<u8, String>>>,
}

#[derive(Clone, Debug)]
struct NodeInfo {
    /// The first three octets of the node's pod CIDR (a /24).
    prefix: [u8; 3],
    address: String,
}

impl Args {
    pub async fn run(self) -> Result<()> {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(&self.log_level))
            .with_ansi(false)
            .init();
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig)?,
            &Default::default(),
        )
        .await?;
        let api_port = config.cluster_url.port_u16().unwrap_or(443);
        let client = Client::try_from(config)?;
        let real = !self.status_only;
        std::fs::create_dir_all(&self.state_dir)?;
        let bins = if real {
            if !is_root() {
                bail!("running pods needs root (network namespaces); use --status-only");
            }
            let proxy = self
                .proxy_bin
                .clone()
                .context("OXLINK_PROXY_BIN is not set: where is linkerd2-proxy?")?;
            let init = self
                .proxy_init_bin
                .clone()
                .context("OXLINK_PROXY_INIT_BIN is not set: where is linkerd2-proxy-init?")?;
            install_bins(
                &self.state_dir,
                &proxy,
                &init,
                &self.bin_dir,
                self.prometheus_bin.as_deref(),
            )?
        } else {
            Bins {
                proxy: PathBuf::new(),
                proxy_init: PathBuf::new(),
                dir: PathBuf::new(),
            }
        };
        let nodes = wait_nodes(&client).await?;
        let mut children = tokio::task::JoinSet::new();
        if real {
            net::setup(api_port)
                .await
                .context("setting up the pod network")?;
            children = services::start(
                &self.localkube_bin,
                &self.kubeconfig,
                &self.state_dir,
                &self.cluster_domain,
                api_port,
                nodes.keys().next().map(String::as_str).unwrap_or_default(),
            )
            .await?;
            tracing::info!(
                "pod network up: pods in 10.244.0.0/16, Services in 10.96.0.0/16, DNS at {}",
                net::HOST_IP
            );
        } else {
            tracing::info!("status only: pods are reported Running, and no process runs");
        }
        let rt = Arc::new(Runtime {
            client: client.clone(),
            images: Images::default(),
            bins,
            state: self.state_dir.clone(),
            real,
            cluster_domain: self.cluster_domain.clone(),
            api_service: ("10.96.0.1".into(), 443),
            nodes,
            ips: Default::default(),
        });
        if let Some(f) = &self.ready_file {
            std::fs::write(f, format!("{}\n", std::process::id()))?;
        }
        let result = rt.clone().watch(shutdown_signal()).await;
        tracing::info!("stopping");
        if let Some(f) = &self.ready_file {
            let _ = std::fs::remove_file(f);
        }
        if real {
            children.abort_all();
            while children.join_next().await.is_some() {}
            net::teardown(api_port).await;
        }
        result
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Copies the programs into the state directory, where container users (the proxy's 2102, the
/// controllers' 65532) can run them, whatever the permissions of their original homes.
fn install_bins(
    state: &std::path::Path,
    proxy: &std::path::Path,
    init: &std::path::Path,
    dir: &std::path::Path,
    prometheus: Option<&std::path::Path>,
) -> Result<Bins> {
    use std::os::unix::fs::PermissionsExt;
    let bin = state.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    let copy = |from: &std::path::Path, name: &str| -> Result<PathBuf> {
        let to = bin.join(name);
        let tmp = bin.join(format!(".{name}.tmp"));
        std::fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &to)?;
        Ok(to)
    };
    let proxy = copy(proxy, "linkerd2-proxy")?;
    let proxy_init = copy(init, "linkerd2-proxy-init")?;
    for name in image::CONTROLLERS.iter().chain(["oxlink-testapp"].iter()) {
        let from = dir.join(name);
        if from.exists() {
            copy(&from, name)?;
        } else {
            tracing::warn!(
                "{} is not built: pods that need it will not start",
                from.display()
            );
        }
    }
    match prometheus {
        Some(from) => {
            copy(from, image::PROMETHEUS)?;
        }
        None => tracing::warn!("no --prometheus-bin: Prometheus pods will not start"),
    }
    Ok(Bins {
        proxy,
        proxy_init,
        dir: bin,
    })
}

async fn wait_nodes(client: &Client) -> Result<BTreeMap<String, NodeInfo>> {
    let api: Api<Node> = Api::all(client.clone());
    for _ in 0..100 {
        let mut nodes = BTreeMap::new();
        for n in api.list(&Default::default()).await?.items {
            let name = n.metadata.name.clone().unwrap_or_default();
            let cidr = n
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.clone())
                .unwrap_or_default();
            let octets: Vec<u8> = cidr
                .split('/')
                .next()
                .unwrap_or_default()
                .split('.')
                .filter_map(|o| o.parse().ok())
                .collect();
            let address = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.first())
                .map(|a| a.address.clone())
                .unwrap_or_default();
            if octets.len() == 4 && cidr.ends_with("/24") {
                nodes.insert(
                    name,
                    NodeInfo {
                        prefix: [octets[0], octets[1], octets[2]],
                        address,
                    },
                );
            }
        }
        if !nodes.is_empty() {
            return Ok(nodes);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    bail!("no Node with a /24 pod CIDR registered")
}

// === impl Runtime ===

impl Runtime {
    /// Watches every pod and hands each bound to one of our nodes to a task of its own.
    /// Until `shutdown`; then every pod's processes are stopped (the pods stay in the API).
    async fn watch(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> Result<()> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut pods: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let stream = watcher(api, watcher::Config::default());
        futures::pin_mut!(stream);
        futures::pin_mut!(shutdown);
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                _ = &mut shutdown => None,
            };
            let Some(event) = event else { break };
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("watching pods: {e}");
                    continue;
                }
            };
            match event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    let node = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .unwrap_or_default();
                    if !self.nodes.contains_key(node) {
                        continue;
                    }
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    let pod = Arc::new(pod);
                    match pods.get(&uid) {
                        Some(tx) => {
                            let _ = tx.send(Some(pod));
                        }
                        None => {
                            let (tx, rx) = watch::channel(Some(pod));
                            pods.insert(uid, tx);
                            tasks.spawn(pod::run(self.clone(), rx));
                        }
                    }
                }
                watcher::Event::Delete(pod) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if let Some(tx) = pods.remove(&uid) {
                        let _ = tx.send(None);
                    }
                }
                watcher::Event::Init | watcher::Event::InitDone => {}
            }
            while tasks.try_join_next().is_some() {}
        }
        drop(pods);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// The pod's containers in start order.
    fn order(&self, pod: &Pod) -> Vec<(Container, Kind)> {
        let Some(spec) = pod.spec.as_ref() else {
            return Vec::new();
        };
        let inits = spec.init_containers.iter().flatten().map(|c| {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            (c.clone(), if sidecar { Kind::Sidecar } else { Kind::Init })
        });
        inits
            .chain(spec.containers.iter().map(|c| (c.clone(), Kind::Main)))
            .collect()
    }

    /// What each container runs, or why the pod is reported without running.
    fn plan(&self, pod: &Pod) -> Result<Vec<(Container, Kind, Program)>, String> {
        if !self.real {
            return Err("the runtime runs in status-only mode".into());
        }
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            return Err("hostNetwork pods are not run".into());
        }
        self.order(pod)
            .into_iter()
            .map(|(c, kind)| {
                let program = self
                    .images
                    .program(&c)
                    .map_err(|e| format!("container {}: {e}", c.name))?;
                Ok((c, kind, program))
            })
            .collect()
    }

    fn host_ip(&self, pod: &Pod) -> String {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        self.nodes
            .get(node)
            .map(|n| n.address.clone())
            .unwrap_or_default()
    }

    /// A pod IP on the node: the one the pod already reports, if free, or the next free one.
    fn allocate(&self, node: &str, uid: &str, pod: &Pod) -> Option<Ipv4Addr> {
        let info = self.nodes.get(node)?;
        let [a, b, c] = info.prefix;
        let mut ips = self.ips.lock();
        let used = ips.entry(node.to_string()).or_default();
        let current: Option<Ipv4Addr> = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        if let Some(ip) = current
            && ip.octets()[..3] == [a, b, c]
            && used.get(&ip.octets()[3]).is_none_or(|u| u == uid)
        {
            used.insert(ip.octets()[3], uid.to_string());
            return Some(ip);
        }
        let taken: BTreeSet<u8> = used.keys().copied().collect();
        let last = (2..=254u8).find(|o| !taken.contains(o))?;
        used.insert(last, uid.to_string());
        Some(Ipv4Addr::new(a, b, c, last))
    }

    fn release(&self, node: &str, uid: &str) {
        if let Some(used) = self.ips.lock().get_mut(node) {
            used.retain(|_, u| u != uid);
        }
    }

    /// Records an Event on the pod, as kubelet does for what it does to it.
    fn event(
        &self,
        pod: &Pod,
        reason: &str,
        message: &str,
    ) -> impl Future<Output = ()> + Send + use<> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = oxlink_tls::utc_rfc3339(std::time::SystemTime::now());
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let event: Option<Event> = serde_json::from_value(serde_json::json!({
            "metadata": {"generateName": format!("{name}."), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns, "uid": pod.metadata.uid},
            "type": if reason == "StatusOnly" { "Normal" } else { "Warning" },
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet", "host": node},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }))
        .ok();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let line = format!("{ns}/{name}: {reason}: {message}");
        async move {
            tracing::info!("{line}");
            if let Some(event) = event
                && let Err(e) = api.create(&Default::default(), &event).await
            {
                tracing::debug!("recording an event: {e}");
            }
        }
    }
}
