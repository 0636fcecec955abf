//! `oxlink install`: the CRDs, or the control plane rendered from the `oxlink-control-plane`
//! chart itself (embedded at build time) by a renderer for the chart's template subset — so
//! `oxlink install` and `helm install` cannot disagree.
//!
//! Like `linkerd install`, it refuses when the CRDs are missing or the control plane is already
//! there, generates a trust anchor and an issuer unless given them, and takes `--ha`, `--set`
//! and `-f`.

pub(crate) mod certs;
pub(crate) mod chart;
pub(crate) mod cluster;
pub(crate) mod template;
pub(crate) mod values;

use anyhow::{Context, Result};
use clap::Args;
use oxlink_crds::names::control_plane::{ISSUER_SCHEME_KUBERNETES, NAMESPACE};
use serde_json::{Value, json};
use std::{io::Write, path::PathBuf, time::SystemTime};

/// Chart values from the command line: `--ha`, `-f` files and `--set`, applied in that order.
#[derive(Debug, Default, Args)]
pub(crate) struct ValuesArgs {
    /// Use the high-availability values (3 replicas, PodDisruptionBudgets, anti-affinity,
    /// `failurePolicy: Fail`).
    #[arg(long)]
    pub ha: bool,
    /// A YAML file of chart values (repeatable; later files win).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// A chart value, `key=value` in Helm's `--set` syntax (repeatable; applied after -f).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// A new issuer for the mesh's identities.
#[derive(Debug, Default, Args)]
pub(crate) struct IssuerArgs {
    /// PEM file with the issuer certificate (issuer first), signed by the trust anchors.
    #[arg(long, value_name = "FILE", requires = "identity_issuer_key_file")]
    pub identity_issuer_certificate_file: Option<PathBuf>,
    /// PEM file with the issuer's private key (ECDSA P-256).
    #[arg(
        long,
        value_name = "FILE",
        requires = "identity_issuer_certificate_file"
    )]
    pub identity_issuer_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// Output the custom resource definitions only.
    #[arg(long)]
    pub crds: bool,
    #[command(flatten)]
    pub values: ValuesArgs,
    /// PEM file with the trust anchors the issuer chains to.
    #[arg(long, value_name = "FILE")]
    pub identity_trust_anchors_file: Option<PathBuf>,
    #[command(flatten)]
    pub issuer: IssuerArgs,
    /// The issuer Secret (`kubernetes.io/tls`, with `ca.crt`) is managed outside oxlink, e.g.
    /// by cert-manager; the trust anchors come from its `ca.crt` unless given.
    #[arg(long, conflicts_with_all = ["identity_issuer_certificate_file", "identity_issuer_key_file"])]
    pub identity_external_issuer: bool,
    /// Render without looking at the cluster (no CRD or existing-install checks).
    #[arg(long)]
    pub ignore_cluster: bool,
}

// === impl ValuesArgs ===

impl ValuesArgs {
    /// The `-f` files, then the `--set` expressions, as one overlay.
    pub(crate) fn overlay(&self) -> Result<Value> {
        let mut overlay = json!({});
        for path in &self.values {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading values file {}", path.display()))?;
            values::layer(
                &mut overlay,
                values::from_yaml(&path.display().to_string(), &text)?,
            );
        }
        for expr in &self.set {
            values::layer(&mut overlay, values::parse_set(expr)?);
        }
        Ok(overlay)
    }
}

// === impl InstallArgs ===

impl InstallArgs {
    pub(crate) fn run(self, kube: &crate::ClusterArgs, out: &mut impl Write) -> Result<()> {
        if self.crds {
            out.write_all(oxlink_crds::install::manifest().as_bytes())?;
            return Ok(());
        }
        let external_anchors = if self.ignore_cluster {
            None
        } else {
            cluster::block_on(cluster::preflight(
                kube,
                NAMESPACE,
                self.identity_external_issuer && self.identity_trust_anchors_file.is_none(),
            ))?
        };
        out.write_all(
            self.manifest(external_anchors, SystemTime::now())?
                .as_bytes(),
        )?;
        Ok(())
    }

    /// The control plane's manifest; `external_anchors` are the `ca.crt` of an external issuer's
    /// Secret read from the cluster.
    pub(crate) fn manifest(
        &self,
        external_anchors: Option<String>,
        now: SystemTime,
    ) -> Result<String> {
        let user = self.values.overlay()?;
        let mut values = chart::default_values(self.values.ha)?;
        let anchors_file = self
            .identity_trust_anchors_file
            .as_deref()
            .map(|path| certs::read_file("--identity-trust-anchors-file", path))
            .transpose()?;
        let identity = if self.identity_external_issuer {
            let anchors = anchors_file.or(external_anchors).context(
                "--identity-external-issuer needs the trust anchors: pass \
                 --identity-trust-anchors-file, or drop --ignore-cluster to read ca.crt of \
                 Secret linkerd-identity-issuer",
            )?;
            json!({
                "identityTrustAnchorsPEM": anchors,
                "identity": {"issuer": {"scheme": ISSUER_SCHEME_KUBERNETES}},
            })
        } else {
            let issuer = match (
                &self.issuer.identity_issuer_certificate_file,
                &self.issuer.identity_issuer_key_file,
            ) {
                (Some(crt), Some(key)) => {
                    let anchors = anchors_file.context(
                        "--identity-issuer-certificate-file needs --identity-trust-anchors-file \
                         (the anchors the issuer chains to)",
                    )?;
                    certs::Identity::from_files(anchors, crt, key, now)?
                }
                _ => {
                    anyhow::ensure!(
                        anchors_file.is_none(),
                        "--identity-trust-anchors-file needs --identity-issuer-certificate-file \
                         and --identity-issuer-key-file (an issuer signed by those anchors)"
                    );
                    let mut merged = values.clone();
                    values::merge(&mut merged, user.clone());
                    certs::Identity::generate(&certs::trust_domain(&merged), now)?
                }
            };
            issuer.values()
        };
        values::merge(&mut values, identity);
        values::merge(&mut values, json!({"installNamespace": true}));
        values::merge(&mut values, user);
        certs::check_values(&values, now)?;
        render(&values)
    }
}

/// The chart rendered with `values` in the control plane's namespace, as one YAML stream.
pub(crate) fn render(values: &Value) -> Result<String> {
    let documents = chart::render(values, NAMESPACE)?;
    Ok(chart::manifest(&documents))
}

#[cfg(test)]
mod tests;
