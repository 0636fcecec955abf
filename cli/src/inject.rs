//! `oxlink inject`: add the proxy to the workloads in YAML or JSON manifests.
//!
//! Auto mode (the default) only annotates pod templates, so that the proxy-injector webhook
//! injects the pods; `--manual` renders the proxy into the manifest with the same inject
//! function the webhook runs. The configuration comes from the cluster's `linkerd-config`
//! unless `--ignore-cluster` is given, in which case the built-in defaults apply.

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use k8s_openapi::api::core::v1::PodSpec;
use oxlink_crds::names::{annotations as anno, control_plane};
use oxlink_inject::{
    Values, differing_overrides, has_udp_ports,
    workload::{InjectOptions, ObjectResult, inject_object, template_pointer},
};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::{Path, PathBuf},
};

/// Output format of inject and uninject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    #[default]
    Yaml,
    Json,
}

/// Arguments of `oxlink inject`.
#[derive(Debug, clap::Args)]
pub(crate) struct InjectArgs {
    /// A file, a directory (read recursively), an http:// or https:// URL, or `-` for stdin.
    input: String,

    /// Render the proxy into the manifest instead of annotating it for the webhook.
    #[arg(long)]
    manual: bool,
    /// Do not read `linkerd-config` from the cluster; the built-in defaults apply.
    #[arg(long)]
    ignore_cluster: bool,
    /// Run the proxy in ingress mode (`linkerd.io/inject: ingress`).
    #[arg(long)]
    ingress: bool,
    /// Add the `linkerd-debug` sidecar.
    #[arg(long)]
    enable_debug_sidecar: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
    /// Namespace of the control plane.
    #[arg(long = "linkerd-namespace", short = 'L', default_value = control_plane::NAMESPACE)]
    linkerd_namespace: String,
    /// PEM file of the trust anchors (instead of those in the cluster); required with
    /// `--manual --ignore-cluster`.
    #[arg(long)]
    identity_trust_anchors_file: Option<PathBuf>,

    #[command(flatten)]
    proxy: ProxyFlags,
}

/// Proxy settings; each one given becomes a `config.linkerd.io/*` annotation (in auto mode,
/// only when it differs from the cluster's configuration).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ProxyFlags {
    /// Proxy image name.
    #[arg(long)]
    proxy_image: Option<String>,
    /// Tag of the proxy image.
    #[arg(long, short = 'v')]
    proxy_version: Option<String>,
    /// Image pull policy of the proxy (Always, IfNotPresent, Never).
    #[arg(long)]
    image_pull_policy: Option<String>,
    /// Proxy port for incoming traffic.
    #[arg(long)]
    inbound_port: Option<u16>,
    /// Proxy port for outgoing traffic.
    #[arg(long)]
    outbound_port: Option<u16>,
    /// Proxy port for the admin server.
    #[arg(long)]
    admin_port: Option<u16>,
    /// Proxy port for the control server.
    #[arg(long)]
    control_port: Option<u16>,
    /// Inbound ports that bypass the proxy.
    #[arg(long, value_delimiter = ',')]
    skip_inbound_ports: Vec<String>,
    /// Outbound ports that bypass the proxy.
    #[arg(long, value_delimiter = ',')]
    skip_outbound_ports: Vec<String>,
    /// Ports on which the proxy skips protocol detection.
    #[arg(long, value_delimiter = ',')]
    opaque_ports: Vec<String>,
    /// Inbound ports on which the proxy requires a client identity.
    #[arg(long, value_delimiter = ',')]
    require_identity_on_inbound_ports: Vec<String>,
    /// The proxy's user id.
    #[arg(long)]
    proxy_uid: Option<u32>,
    /// The proxy's group id.
    #[arg(long)]
    proxy_gid: Option<u32>,
    /// The proxy's log level.
    #[arg(long)]
    proxy_log_level: Option<String>,
    /// The proxy's log format (plain or json).
    #[arg(long)]
    proxy_log_format: Option<String>,
    /// CPU request of the proxy.
    #[arg(long)]
    proxy_cpu_request: Option<String>,
    /// CPU limit of the proxy.
    #[arg(long)]
    proxy_cpu_limit: Option<String>,
    /// Memory request of the proxy.
    #[arg(long)]
    proxy_memory_request: Option<String>,
    /// Memory limit of the proxy.
    #[arg(long)]
    proxy_memory_limit: Option<String>,
    /// Resolve ServiceProfiles for every name, not only cluster-local ones.
    #[arg(long)]
    enable_external_profiles: bool,
    /// Inbound policy of ports without a Server.
    #[arg(long)]
    default_inbound_policy: Option<String>,
    /// Seconds the proxy waits before exiting (classic layout only).
    #[arg(long)]
    wait_before_exit_seconds: Option<u64>,
    /// Close-wait timeout of proxy-init (a duration, such as `2m`).
    #[arg(long)]
    close_wait_timeout: Option<String>,
    /// Run the proxy as a native sidecar (true) or as a regular container (false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    native_sidecar: Option<bool>,
}

// === impl ProxyFlags ===

impl ProxyFlags {
    /// The annotations that carry the given flags.
    fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut set = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                out.insert(key.to_string(), v);
            }
        };
        let list = |v: &[String]| (!v.is_empty()).then(|| v.join(","));
        let s = |v: &Option<String>| v.clone();
        set(anno::PROXY_IMAGE, s(&self.proxy_image));
        set(anno::PROXY_VERSION_OVERRIDE, s(&self.proxy_version));
        set(anno::IMAGE_PULL_POLICY, s(&self.image_pull_policy));
        set(anno::INBOUND_PORT, self.inbound_port.map(|p| p.to_string()));
        set(
            anno::OUTBOUND_PORT,
            self.outbound_port.map(|p| p.to_string()),
        );
        set(anno::ADMIN_PORT, self.admin_port.map(|p| p.to_string()));
        set(anno::CONTROL_PORT, self.control_port.map(|p| p.to_string()));
        set(anno::SKIP_INBOUND_PORTS, list(&self.skip_inbound_ports));
        set(anno::SKIP_OUTBOUND_PORTS, list(&self.skip_outbound_ports));
        set(anno::OPAQUE_PORTS, list(&self.opaque_ports));
        set(
            anno::PROXY_REQUIRE_IDENTITY_INBOUND_PORTS,
            list(&self.require_identity_on_inbound_ports),
        );
        set(anno::PROXY_UID, self.proxy_uid.map(|u| u.to_string()));
        set(anno::PROXY_GID, self.proxy_gid.map(|g| g.to_string()));
        set(anno::PROXY_LOG_LEVEL, s(&self.proxy_log_level));
        set(anno::PROXY_LOG_FORMAT, s(&self.proxy_log_format));
        set(anno::PROXY_CPU_REQUEST, s(&self.proxy_cpu_request));
        set(anno::PROXY_CPU_LIMIT, s(&self.proxy_cpu_limit));
        set(anno::PROXY_MEMORY_REQUEST, s(&self.proxy_memory_request));
        set(anno::PROXY_MEMORY_LIMIT, s(&self.proxy_memory_limit));
        set(
            anno::ENABLE_EXTERNAL_PROFILES,
            self.enable_external_profiles.then(|| "true".into()),
        );
        set(
            anno::DEFAULT_INBOUND_POLICY,
            s(&self.default_inbound_policy),
        );
        set(
            anno::PROXY_WAIT_BEFORE_EXIT_SECONDS,
            self.wait_before_exit_seconds.map(|w| w.to_string()),
        );
        set(anno::CLOSE_WAIT_TIMEOUT, s(&self.close_wait_timeout));
        set(
            anno::PROXY_ENABLE_NATIVE_SIDECAR,
            self.native_sidecar.map(|n| n.to_string()),
        );
        out
    }
}

// === impl InjectArgs ===

impl InjectArgs {
    pub(crate) fn run(
        self,
        kube: &crate::ClusterArgs,
        stdin: &mut dyn Read,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let Self {
            input,
            manual,
            ignore_cluster,
            ingress,
            enable_debug_sidecar,
            output,
            linkerd_namespace,
            identity_trust_anchors_file,
            proxy,
        } = self;
        let (values, cluster_anchors) = if ignore_cluster {
            (Values::default(), String::new())
        } else {
            cluster::load(kube, &linkerd_namespace)?
        };
        let anchors = match &identity_trust_anchors_file {
            Some(path) => {
                let pem = std::fs::read_to_string(path).with_context(|| {
                    format!("reading --identity-trust-anchors-file {}", path.display())
                })?;
                oxlink_tls::TrustBundle::from_pem(pem.as_bytes()).with_context(|| {
                    format!(
                        "--identity-trust-anchors-file {} does not hold usable trust anchors",
                        path.display()
                    )
                })?;
                pem
            }
            None if manual && cluster_anchors.trim().is_empty() => bail!(
                "--manual needs the trust anchors: pass --identity-trust-anchors-file \
                 (or leave out --ignore-cluster to read them from the cluster)"
            ),
            None => cluster_anchors,
        };
        let given = proxy.annotations();
        let service_annotations = given
            .get(anno::OPAQUE_PORTS)
            .map(|v| BTreeMap::from([(anno::OPAQUE_PORTS.to_string(), v.clone())]))
            .unwrap_or_default();
        // As Linkerd does, only the flags that were given and that change what the cluster's
        // configuration says become annotations; manual injection renders every given flag.
        let mut annotations = if manual {
            given
        } else {
            differing_overrides(&values, &given)
        };
        annotations.insert(
            anno::INJECT.into(),
            if ingress {
                anno::INJECT_INGRESS
            } else {
                anno::INJECT_ENABLED
            }
            .into(),
        );
        if enable_debug_sidecar {
            annotations.insert(anno::ENABLE_DEBUG_SIDECAR.into(), "true".into());
        }
        let created_by = format!("oxlink/cli {}", crate::VERSION);
        let opts = InjectOptions {
            values: &values,
            trust_anchors_pem: &anchors,
            control_plane_namespace: &linkerd_namespace,
            created_by: &created_by,
            manual,
            annotations,
            service_annotations,
        };
        let mut docs = read_input(&input, stdin)?;
        let mut report = Vec::new();
        for doc in &mut docs {
            for_each_object(doc, &mut |obj| {
                let udp = has_udp(obj);
                let result = inject_object(obj, &opts)?;
                report.push(report_line(obj, &result));
                if udp && matches!(result, ObjectResult::Injected | ObjectResult::Annotated) {
                    report.push(format!(
                        "{}: UDP port(s) configured on the pod spec; the proxy does not carry UDP",
                        describe(obj)
                    ));
                }
                Ok(())
            })?;
        }
        write_output(&docs, output, out)?;
        write_report(&report, err)
    }
}

/// Whether the object's pod template declares a UDP port.
fn has_udp(obj: &Value) -> bool {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let Some(pointer) = template_pointer(kind) else {
        return false;
    };
    let spec = obj.pointer(&format!("{pointer}/spec")).cloned();
    spec.and_then(|s| serde_json::from_value::<PodSpec>(s).ok())
        .is_some_and(|s| has_udp_ports(&s))
}

fn report_line(obj: &Value, result: &ObjectResult) -> String {
    let what = describe(obj);
    match result {
        ObjectResult::Injected => format!("{what} injected"),
        ObjectResult::Annotated => format!("{what} annotated"),
        ObjectResult::Skipped(reason) => format!("{what} skipped: {reason}"),
        ObjectResult::Unsupported => format!("{what} skipped"),
    }
}

/// `deployment "web"`, as Linkerd's report names objects.
pub(crate) fn describe(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("object").to_lowercase();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{kind} \"{name}\"")
}

/// Calls `f` on the object, or on each item of a `List`.
pub(crate) fn for_each_object(
    doc: &mut Value,
    f: &mut dyn FnMut(&mut Value) -> Result<()>,
) -> Result<()> {
    if doc["kind"] == "List" {
        if let Some(Value::Array(items)) = doc.get_mut("items") {
            for item in items {
                f(item)?;
            }
        }
        return Ok(());
    }
    f(doc)
}

/// Every document of `input`: stdin (`-`), an `http(s)://` URL, one file, or the YAML and JSON
/// files under a directory, in path order.
pub(crate) fn read_input(input: &str, stdin: &mut dyn Read) -> Result<Vec<Value>> {
    let mut texts = Vec::new();
    if input == "-" {
        let mut text = String::new();
        stdin.read_to_string(&mut text).context("reading stdin")?;
        texts.push(("stdin".to_string(), text));
    } else if url::is_url(input) {
        texts.push((input.to_string(), url::fetch(input)?));
    } else {
        let path = Path::new(input);
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            texts.push((file.display().to_string(), text));
        }
    }
    let mut docs = Vec::new();
    for (name, text) in texts {
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("{name} is not valid YAML or JSON"))?;
        docs.extend(parsed.into_iter().filter(|d| !d.is_null()));
    }
    Ok(docs)
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for entry in entries {
        let manifest = entry
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
        if entry.is_dir() {
            collect_files(&entry, files)?;
        } else if manifest {
            files.push(entry);
        }
    }
    Ok(())
}

/// The stderr report, as Linkerd frames it: a blank line, one line per object, a blank line.
pub(crate) fn write_report(report: &[String], err: &mut dyn Write) -> Result<()> {
    writeln!(err)?;
    for line in report {
        writeln!(err, "{line}")?;
    }
    writeln!(err)?;
    Ok(())
}

/// Writes documents as a YAML stream or as JSON (one object per document).
pub(crate) fn write_output(docs: &[Value], output: Output, out: &mut dyn Write) -> Result<()> {
    for (i, doc) in docs.iter().enumerate() {
        match output {
            Output::Yaml => {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                out.write_all(serde_saphyr::to_string(doc)?.as_bytes())?;
            }
            Output::Json => {
                serde_json::to_writer_pretty(&mut *out, doc)?;
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

mod cluster;
#[cfg(test)]
mod tests;
mod url;
