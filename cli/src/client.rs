//! The one Kubernetes client setup of every command that talks to a cluster, with kubectl's
//! and linkerd's `--kubeconfig` and `--context`, and errors that give each cause once.

use anyhow::{Context, Result};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use std::path::{Path, PathBuf};

/// Where the cluster is: the flags every command that talks to a cluster takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file to use for CLI requests (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
}

// === impl ClusterArgs ===

impl ClusterArgs {
    /// A client for the cluster the flags (or `$KUBECONFIG`, `~/.kube/config`, or the pod this
    /// runs in) name.
    pub async fn client(&self) -> Result<Client> {
        let config = self.config().await?;
        Ok(oxlink_kube::client(config)?)
    }

    async fn config(&self) -> Result<Config> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let (kubeconfig, missing) = match &self.kubeconfig {
            Some(path) => (Some(read(path)?), Vec::new()),
            None => self.default_kubeconfig()?,
        };
        match kubeconfig {
            Some(kubeconfig) => Ok(Config::from_custom_kubeconfig(kubeconfig, &options).await?),
            // No kubeconfig at all: inside a pod, its ServiceAccount (as kubectl does).
            None => Config::incluster().map_err(|_| {
                let missing: Vec<_> = missing.iter().map(|p| p.display().to_string()).collect();
                anyhow::anyhow!(
                    "no kubeconfig: {} does not exist, and this is not a pod in a cluster",
                    missing.join(", ")
                )
            }),
        }
    }

    /// `$KUBECONFIG`'s files (those that exist, merged), or `~/.kube/config` if it exists; and
    /// the files that do not.
    fn default_kubeconfig(&self) -> Result<(Option<Kubeconfig>, Vec<PathBuf>)> {
        let paths: Vec<PathBuf> = match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(list) => std::env::split_paths(&list).collect(),
            None => std::env::home_dir()
                .map(|home| home.join(".kube").join("config"))
                .into_iter()
                .collect(),
        };
        let mut merged: Option<Kubeconfig> = None;
        let mut missing = Vec::new();
        for path in paths {
            if !path.exists() {
                missing.push(path);
                continue;
            }
            let next = read(&path)?;
            merged = Some(match merged {
                None => next,
                Some(m) => m
                    .merge(next)
                    .with_context(|| format!("merging {}", path.display()))?,
            });
        }
        Ok((merged, missing))
    }
}

fn read(path: &Path) -> Result<Kubeconfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Kubeconfig::from_yaml(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `error` and its causes, joined by `: `, leaving out each cause whose text an earlier one
/// already says (Kubernetes client errors repeat their sources in their own message).
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_already_says_is_given_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(io)
            .context("failed to read kubeconfig: No such file or directory")
            .context("connecting to the cluster");
        assert_eq!(
            error_chain(&e),
            "connecting to the cluster: failed to read kubeconfig: No such file or directory"
        );
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_names_the_file_and_the_cause_once() {
        let args = ClusterArgs {
            kubeconfig: Some("/nonexistent/oxlink/kubeconfig".into()),
            context: None,
        };
        let Err(e) = args.client().await else {
            panic!("a client from a missing kubeconfig")
        };
        let text = error_chain(&e);
        assert!(
            text.starts_with("reading /nonexistent/oxlink/kubeconfig: "),
            "{text}"
        );
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
    }
}
