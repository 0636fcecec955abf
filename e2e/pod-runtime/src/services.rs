//! The cluster's DNS and Service routing from upstream components that localkube links:
//! CoreDNS (kubernetes plugin) on the host's side of the pod network, and kube-proxy (iptables
//! mode) in the router namespace, where pods' traffic to Service IPs passes.

use crate::net;
use anyhow::{Context, Result};
use std::{path::Path, process::Stdio};
use tokio::process::{Child, Command};

/// Starts CoreDNS and kube-proxy, and restarts either when it exits; they stop when the
/// returned task is aborted or dropped.
pub async fn start(
    localkube: &Path,
    kubeconfig: &Path,
    state: &Path,
    cluster_domain: &str,
    api_port: u16,
    node: &str,
) -> Result<tokio::task::JoinSet<()>> {
    let corefile = state.join("Corefile");
    std::fs::write(&corefile, corefile_text(kubeconfig, cluster_domain))?;
    // kube-proxy runs in the router, which reaches the API server through the host's link.
    let proxy_kubeconfig = state.join("kube-proxy.kubeconfig");
    let mut kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    for c in &mut kc.clusters {
        if let Some(cluster) = c.cluster.as_mut() {
            cluster.server = Some(format!("https://{}:{api_port}", net::HOST_IP));
            cluster.tls_server_name = Some("localhost".into());
        }
    }
    std::fs::write(&proxy_kubeconfig, serde_json::to_vec_pretty(&kc)?)?;
    let logs = state.join("logs");
    std::fs::create_dir_all(&logs)?;
    let coredns: Vec<String> = vec![
        localkube.display().to_string(),
        "coredns".into(),
        "-conf".into(),
        corefile.display().to_string(),
    ];
    let mut kube_proxy: Vec<String> = vec![
        "ip".into(),
        "netns".into(),
        "exec".into(),
        net::ROUTER_NS.into(),
        localkube.display().to_string(),
        "kube-proxy".into(),
        format!("--kubeconfig={}", proxy_kubeconfig.display()),
    ];
    kube_proxy.extend(kube_proxy_flags(node));
    let mut set = tokio::task::JoinSet::new();
    for (name, argv) in [("coredns", coredns), ("kube-proxy", kube_proxy)] {
        let log = logs.join(format!("{name}.log"));
        // Started once here, so that a command that cannot start fails the runtime.
        let first = spawn(&argv, &log).with_context(|| format!("starting {name}"))?;
        set.spawn(supervise(name, argv, log, first));
    }
    Ok(set)
}

fn spawn(argv: &[String], log: &Path) -> Result<Child> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .kill_on_drop(true)
        .spawn()?)
}

async fn supervise(
    name: &'static str,
    argv: Vec<String>,
    log: std::path::PathBuf,
    mut child: Child,
) {
    loop {
        let status = child.wait().await;
        tracing::warn!(
            "{name} exited ({status:?}); restarting it (see {})",
            log.display()
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        child = match spawn(&argv, &log) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("restarting {name}: {e:#}");
                return;
            }
        };
    }
}

fn kube_proxy_flags(node: &str) -> Vec<String> {
    [
        format!("--hostname-override={node}"),
        "--proxy-mode=iptables".into(),
        format!("--cluster-cidr={}", net::POD_CIDR),
        "--conntrack-max-per-core=0".into(),
        "--conntrack-tcp-timeout-established=0".into(),
        "--conntrack-tcp-timeout-close-wait=0".into(),
        // Empty: no metrics or health servers.
        "--metrics-bind-address=".into(),
        "--healthz-bind-address=".into(),
        "--nodeport-addresses=primary".into(),
        "--v=1".into(),
    ]
    .into()
}

/// Answers the cluster's names only: nothing is forwarded outside.
fn corefile_text(kubeconfig: &Path, cluster_domain: &str) -> String {
    format!(
        ".:53 {{\n    bind {host}\n    errors\n    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{\n        kubeconfig {kc}\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 5\n    }}\n}}\n",
        host = net::HOST_IP,
        kc = kubeconfig.display(),
    )
}
