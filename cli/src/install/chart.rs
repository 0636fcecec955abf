//! The `oxlink-control-plane` chart, embedded at build time, and its rendering: the same
//! templates and values files that `helm install charts/oxlink-control-plane` uses.

use super::template::{TemplateError, Templates};
use super::values::{self, ValuesError};
use serde_json::{Value, json};

/// The chart's name, as in `Chart.yaml` (and in Helm's `# Source:` comments).
pub(crate) const NAME: &str = "oxlink-control-plane";

/// The chart's default values.
pub(crate) const VALUES_YAML: &str =
    include_str!("../../../charts/oxlink-control-plane/values.yaml");
/// The chart's high-availability values, layered over the defaults by `--ha`.
pub(crate) const VALUES_HA_YAML: &str =
    include_str!("../../../charts/oxlink-control-plane/values-ha.yaml");

macro_rules! templates {
    ($($file:literal),* $(,)?) => {
        /// Every file of the chart's `templates/` directory, by name.
        pub(crate) const TEMPLATES: &[(&str, &str)] = &[$(
            ($file, include_str!(concat!("../../../charts/oxlink-control-plane/templates/", $file))),
        )*];
    };
}

templates![
    "_helpers.tpl",
    "config.yaml",
    "destination-rbac.yaml",
    "destination.yaml",
    "identity-rbac.yaml",
    "identity.yaml",
    "namespace.yaml",
    "networkpolicy.yaml",
    "proxy-injector-rbac.yaml",
    "proxy-injector.yaml",
    "webhooks.yaml",
];

/// Helm's install order of kinds; [`render`] sorts documents by it, as `helm template` does.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Rendering failed: a value file, a template, or a document without a kind.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChartError {
    #[error(transparent)]
    Values(#[from] ValuesError),
    #[error("rendering the chart")]
    Template(#[from] TemplateError),
    #[error("{file}: a rendered document has no `kind`")]
    NoKind { file: String },
}

/// One rendered object: its kind, the template it came from, and its YAML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Document {
    pub kind: String,
    pub file: String,
    pub yaml: String,
}

/// The chart's default values, optionally with the HA values over them.
pub(crate) fn default_values(ha: bool) -> Result<Value, ValuesError> {
    let mut values = values::from_yaml("values.yaml", VALUES_YAML)?;
    if ha {
        values::merge(
            &mut values,
            values::from_yaml("values-ha.yaml", VALUES_HA_YAML)?,
        );
    }
    Ok(values)
}

/// Renders every template with `values` in `namespace`, sorted like `helm template`.
pub(crate) fn render(values: &Value, namespace: &str) -> Result<Vec<Document>, ChartError> {
    render_chart(NAME, "linkerd", TEMPLATES, values, namespace)
}

/// Renders an embedded chart's templates (`_`-prefixed files only define) as release `release`
/// in `namespace`, sorted like `helm template`: the one renderer of every chart the CLI installs.
pub(crate) fn render_chart(
    chart: &str,
    release: &str,
    files: &[(&str, &str)],
    values: &Value,
    namespace: &str,
) -> Result<Vec<Document>, ChartError> {
    let source = |file: &str| format!("{chart}/templates/{file}");
    let mut templates = Templates::default();
    for (file, text) in files {
        templates.parse(&source(file), text)?;
    }
    let data = json!({
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace, "Service": "oxlink"},
        "Chart": {"Name": chart},
    });
    let mut documents = Vec::new();
    for (file, _) in files.iter().filter(|(f, _)| !f.starts_with('_')) {
        let file = source(file);
        let text = templates.render(&file, &data)?;
        for yaml in split_documents(&text) {
            let kind = yaml
                .lines()
                .find_map(|l| l.strip_prefix("kind:"))
                .map(|k| k.trim().to_string())
                .ok_or_else(|| ChartError::NoKind { file: file.clone() })?;
            documents.push(Document {
                kind,
                file: file.clone(),
                yaml,
            });
        }
    }
    documents.sort_by_key(|d| {
        KIND_ORDER
            .iter()
            .position(|k| *k == d.kind)
            .unwrap_or(KIND_ORDER.len())
    });
    Ok(documents)
}

/// The documents as one YAML stream, each headed by its source like `helm template` does.
pub(crate) fn manifest(documents: &[Document]) -> String {
    documents
        .iter()
        .map(|d| format!("---\n# Source: {}\n{}\n", d.file, d.yaml))
        .collect()
}

/// Splits a rendered file on `---` lines, dropping documents with only blanks and comments.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else {
            let doc = documents.last_mut().expect("never empty");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    documents
        .into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| d.trim_end().to_string())
        .collect()
}

#[cfg(test)]
mod tests;
