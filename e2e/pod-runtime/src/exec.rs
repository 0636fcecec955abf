//! `oxlink-pod-runtime exec`: a command inside a pod's network namespace, as `kubectl exec`
//! would run it in the pod (localkube has no kubelet API to exec through).

use crate::{STATE_DIR, net};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The pod's namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The pod, by name; or use `--selector`.
    #[arg(required_unless_present = "selector")]
    pod: Option<String>,
    /// The first Running pod matching this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// The admin kubeconfig of the local cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

impl ExecArgs {
    pub async fn run(self) -> Result<()> {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig)?,
            &Default::default(),
        )
        .await?;
        let pods: Api<Pod> = Api::namespaced(Client::try_from(config)?, &self.namespace);
        let pod = match (&self.pod, &self.selector) {
            (Some(name), _) => pods
                .get(name)
                .await
                .with_context(|| format!("pod {}/{name}", self.namespace))?,
            (None, Some(sel)) => pods
                .list(&ListParams::default().labels(sel))
                .await?
                .items
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .with_context(|| format!("no Running pod in {} matches {sel}", self.namespace))?,
            (None, None) => bail!("name a pod or a --selector"),
        };
        let uid = pod.metadata.uid.as_deref().context("the pod has no UID")?;
        let netns = net::netns_name(uid);
        let path = format!(
            "{STATE_DIR}/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        let status = tokio::process::Command::new("ip")
            .args(["netns", "exec", &netns])
            .args(&self.command)
            .env("PATH", path)
            .status()
            .await
            .context("running ip netns exec")?;
        std::process::exit(status.code().unwrap_or(1));
    }
}
