//! The `oxlink-viz` chart, embedded at build time and rendered by the one chart renderer of
//! `oxlink install`: `oxlink viz install` and `helm template charts/oxlink-viz` cannot disagree.

use super::{NAMESPACE, cluster};
use crate::install::{
    chart::{self, ChartError, Document},
    values,
};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use std::{io::Write, path::PathBuf};

/// The chart's name, as in `Chart.yaml`.
pub(crate) const NAME: &str = "oxlink-viz";
/// The chart's default values.
pub(crate) const VALUES_YAML: &str = include_str!("../../../charts/oxlink-viz/values.yaml");

macro_rules! templates {
    ($($file:literal),* $(,)?) => {
        /// Every file of the chart's `templates/` directory, by name.
        pub(crate) const TEMPLATES: &[(&str, &str)] = &[$(
            ($file, include_str!(concat!("../../../charts/oxlink-viz/templates/", $file))),
        )*];
    };
}

templates![
    "_helpers.tpl",
    "namespace.yaml",
    "prometheus-rbac.yaml",
    "prometheus.yaml",
    "tap-rbac.yaml",
    "tap.yaml",
    "web.yaml",
];

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// A YAML file of chart values (repeatable; later files win).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    values: Vec<PathBuf>,
    /// A chart value, `key=value` in Helm's `--set` syntax (repeatable; applied after -f).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Namespace in which Linkerd is installed.
    #[arg(short = 'L', long, default_value = oxlink_crds::names::control_plane::NAMESPACE)]
    linkerd_namespace: String,
}

#[derive(Debug, Args)]
pub(crate) struct UninstallArgs {}

/// The chart's default values with `overlay` on top.
pub(crate) fn values_with(overlay: Value) -> Result<Value, values::ValuesError> {
    let mut v = values::from_yaml("values.yaml", VALUES_YAML)?;
    values::merge(&mut v, overlay);
    Ok(v)
}

/// Renders the chart like `helm template linkerd-viz charts/oxlink-viz -n linkerd-viz`.
pub(crate) fn render(values: &Value) -> Result<Vec<Document>, ChartError> {
    chart::render_chart(NAME, NAMESPACE, TEMPLATES, values, NAMESPACE)
}

impl InstallArgs {
    pub(crate) fn run(self, out: &mut impl Write) -> Result<()> {
        out.write_all(self.manifest()?.as_bytes())?;
        Ok(())
    }

    /// The extension's manifest: the defaults, `-f` files, `--set`, then what the CLI decides
    /// (its own Namespace, the control plane's namespace).
    pub(crate) fn manifest(&self) -> Result<String> {
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
        values::layer(
            &mut overlay,
            json!({"installNamespace": true, "linkerdNamespace": self.linkerd_namespace}),
        );
        let documents = render(&values_with(overlay)?)?;
        Ok(chart::manifest(&documents))
    }
}

impl UninstallArgs {
    /// Like `linkerd viz uninstall`: every cluster-wide object labelled
    /// `linkerd.io/extension=viz` (the Namespace takes everything inside it along).
    pub(crate) fn run(
        self,
        cluster_args: &crate::client::ClusterArgs,
        out: &mut impl Write,
    ) -> Result<()> {
        let objects = cluster::block_on(cluster::extension_objects(cluster_args))?;
        if objects.is_empty() {
            anyhow::bail!(
                "the linkerd-viz extension is not installed: no object is labelled linkerd.io/extension=viz"
            );
        }
        for (api_version, kind, name) in objects {
            writeln!(
                out,
                "---\napiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
