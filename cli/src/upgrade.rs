//! `oxlink upgrade`: re-renders the control plane from the values stored in `linkerd-config`
//! (and the issuer key in its Secret), with `--ha`, `-f`, `--set` or a new issuer applied on
//! top. What is not changed stays as installed — the trust anchors and the issuer included.

use crate::install::{self, IssuerArgs, ValuesArgs, certs, chart, cluster, values};
use anyhow::Result;
use clap::Args;
use oxlink_crds::names::control_plane::NAMESPACE;
use serde_json::Value;
use std::{io::Write, time::SystemTime};

#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    #[command(flatten)]
    pub values: ValuesArgs,
    #[command(flatten)]
    pub issuer: IssuerArgs,
}

// === impl UpgradeArgs ===

impl UpgradeArgs {
    pub(crate) fn run(self, kube: &crate::ClusterArgs, out: &mut impl Write) -> Result<()> {
        let installed = cluster::block_on(cluster::installed_values(kube, NAMESPACE))?;
        out.write_all(self.manifest(installed, SystemTime::now())?.as_bytes())?;
        Ok(())
    }

    /// The manifest for values `installed` (as read from the cluster) with this upgrade's changes.
    pub(crate) fn manifest(&self, installed: Value, now: SystemTime) -> Result<String> {
        let mut values = chart::default_values(false)?;
        values::merge(&mut values, installed);
        if self.values.ha {
            values::merge(&mut values, ha_only()?);
        }
        if let (Some(crt), Some(key)) = (
            &self.issuer.identity_issuer_certificate_file,
            &self.issuer.identity_issuer_key_file,
        ) {
            let anchors = values["identityTrustAnchorsPEM"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let identity = certs::Identity::from_files(anchors, crt, key, now)?;
            values::merge(&mut values, identity.values());
        }
        values::merge(&mut values, self.values.overlay()?);
        certs::check_values(&values, now)?;
        install::render(&values)
    }
}

/// The HA file's own settings, so that `--ha` wins over the installed values.
fn ha_only() -> Result<Value> {
    Ok(values::from_yaml("values-ha.yaml", chart::VALUES_HA_YAML)?)
}
