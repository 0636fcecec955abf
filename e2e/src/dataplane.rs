//! The real data plane on localkube: whether pods run for real (the pod runtime of
//! `e2e/pod-runtime` runs), commands run inside a pod's network namespace as a `kubectl exec`
//! would, and the proxies' metrics.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use std::{net::IpAddr, path::PathBuf, process::Command, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Whether pods run for real on the suite's cluster, or why not: the runtime writes
/// `pod-runtime.ready` into the cluster's directory while it runs them.
pub fn runtime() -> std::result::Result<(), String> {
    let dir = std::env::var_os(crate::localkube::DIR_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} is not set: not on localkube", crate::localkube::DIR_ENV))?;
    match dir.join("pod-runtime.ready").exists() {
        true => Ok(()),
        false => Err(
            "the pod runtime does not run: pods are status only (it needs root, iptables, \
             OXLINK_PROXY_BIN and OXLINK_PROXY_INIT_BIN)"
                .into(),
        ),
    }
}

/// One request's outcome, as `oxlink-testapp get` prints it.
#[derive(Debug, serde::Deserialize)]
pub struct Reply {
    pub status: Option<u16>,
    pub served_by: Option<String>,
    pub ms: Option<f64>,
    pub error: Option<String>,
}

/// Runs `oxlink-testapp ARGS` inside the pod's network namespace (so its traffic goes through
/// the pod's proxy, as the pod's own would), with the pod's resolver.
pub fn testapp(pod: &Pod, args: &[&str]) -> Result<String> {
    let uid = pod.metadata.uid.as_deref().context("the pod has no UID")?;
    let ns = oxlink_pod_runtime::net::netns_name(uid);
    let bin = PathBuf::from(oxlink_pod_runtime::STATE_DIR).join("bin/oxlink-testapp");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&bin)
        .args(args)
        .output()
        .context("running ip netns exec")?;
    if !out.status.success() {
        bail!(
            "oxlink-testapp {args:?} in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `count` sequential GETs of `url` from inside the pod.
pub fn get(pod: &Pod, url: &str, count: u32) -> Result<Vec<Reply>> {
    let out = testapp(
        pod,
        &["get", url, "--count", &count.to_string(), "--timeout", "5s"],
    )?;
    out.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {l:?}")))
        .collect()
}

/// The Prometheus text a proxy serves on its admin port.
pub async fn proxy_metrics(ip: IpAddr) -> Result<String> {
    http_get(ip, 4191, "/metrics")
        .await
        .context("the proxy's admin port")
}

/// The body of a plain HTTP/1.0 GET from the host that must answer 200 within 10s.
pub async fn http_get(ip: IpAddr, port: u16, path: &str) -> Result<String> {
    let fetch = async {
        let mut conn = TcpStream::connect((ip, port)).await?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: e2e\r\n\r\n").as_bytes())
            .await?;
        let mut body = String::new();
        conn.read_to_string(&mut body).await?;
        anyhow::Ok(body)
    };
    let text = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .with_context(|| format!("GET {ip}:{port}{path} did not answer within 10s"))??;
    match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_string())
        }
        _ => bail!("GET {ip}:{port}{path} answered {:?}", text.lines().next()),
    }
}

/// The lines of a metrics text with this name that carry every one of `labels`.
pub fn series<'a>(text: &'a str, name: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .collect()
}

/// The sum of the values of those lines.
pub fn sum(lines: &[&str]) -> f64 {
    lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
