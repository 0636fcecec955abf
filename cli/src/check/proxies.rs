//! Versions and proxies: `linkerd-version`, `control-plane-version`,
//! `linkerd-control-plane-proxy` and, with `--proxy`, `linkerd-identity-data-plane` and
//! `linkerd-data-plane`.
//!
//! The "latest version" checks ask linkerd.io; oxlink never goes online, so they are skipped.
//! Versions are Linkerd release names (`edge-26.8.1`): the one the CLI installs and injects,
//! the one `linkerd-config` records, and the one each proxy runs.

use super::{
    checks::{list, message, name_of, namespace_exists},
    control_plane::config_values,
    metadata, opaque,
    report::{Category, Outcome},
};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Service};
use kube::{Api, Client};
use oxlink_crds::names::{annotations, control_plane as cp, env, labels, proxy};
use oxlink_inject::{Values, values::DEFAULT_LINKERD_VERSION};

/// The Linkerd release this CLI installs and injects.
pub(crate) const CLI_VERSION: &str = DEFAULT_LINKERD_VERSION;

const OFFLINE: &str = "oxlink check does not look up the latest release online";

// === linkerd-version ===

pub(crate) fn linkerd_version() -> Category {
    Category::new(
        "linkerd-version",
        vec![
            Outcome::skipped(
                "can determine the latest version",
                "l5d-version-latest",
                OFFLINE,
            ),
            Outcome::skipped("cli is up-to-date", "l5d-version-cli", OFFLINE),
        ],
    )
}

// === control-plane-version ===

/// The control plane's values from `linkerd-config`.
pub(crate) async fn values(client: &Client, ns: &str) -> Result<Values, String> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let config = configmaps
        .get(cp::CONFIG_CONFIGMAP)
        .await
        .map_err(|e| message(&e))?;
    config_values(&config)
}

pub(crate) fn control_plane_version(values: &Result<Values, String>) -> Category {
    let version = values.as_ref().map_err(Clone::clone).and_then(|v| {
        if v.linkerd_version.is_empty() {
            Err(format!(
                "linkerdVersion is not set in the {} values",
                cp::CONFIG_CONFIGMAP
            ))
        } else {
            Ok(v.linkerd_version.clone())
        }
    });
    let mut checks = vec![
        Outcome::new(
            "can retrieve the control plane version",
            "l5d-version-control",
            version.as_ref().map(drop).map_err(Clone::clone),
        )
        .fatal(),
        Outcome::skipped(
            "control plane is up-to-date",
            "l5d-version-control",
            OFFLINE,
        ),
    ];
    if let Ok(version) = version {
        checks.push(
            Outcome::new(
                "control plane and cli versions match",
                "l5d-version-control",
                versions_match(&version),
            )
            .warn_only(),
        );
    }
    Category::new("control-plane-version", checks)
}

/// Linkerd's `control plane running X but cli running Y`.
pub(crate) fn versions_match(control_plane: &str) -> Result<(), String> {
    if control_plane == CLI_VERSION {
        Ok(())
    } else {
        Err(format!(
            "control plane running {control_plane} but cli running {CLI_VERSION}"
        ))
    }
}

// === proxies ===

/// The `linkerd-proxy` container, a regular container or a native sidecar.
pub(crate) fn proxy_container(pod: &Pod) -> Option<&Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == proxy::PROXY_CONTAINER)
}

/// The proxy release a pod runs: its `linkerd.io/proxy-version` annotation, else the proxy
/// image's tag.
pub(crate) fn proxy_version(pod: &Pod) -> Option<String> {
    if let Some(v) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::PROXY_VERSION))
        .filter(|v| !v.is_empty())
    {
        return Some(v.clone());
    }
    let image = proxy_container(pod)?.image.as_deref()?;
    let (_, tag) = image.rsplit_once(':')?;
    (!tag.contains('/')).then(|| tag.to_string())
}

/// Linkerd's `CheckPodsRunning`: there are proxies, and every one is in a running pod and
/// ready. `ns` names the namespace in the "none found" message.
pub(crate) fn proxies_ready(pods: &[Pod], ns: Option<&str>) -> Result<(), String> {
    if pods.is_empty() {
        let mut msg = format!("no \"{}\" containers found", proxy::PROXY_CONTAINER);
        if let Some(ns) = ns {
            msg.push_str(&format!(" in the \"{ns}\" namespace"));
        }
        return Err(msg);
    }
    for pod in pods {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Unknown");
        if phase == "Succeeded" {
            continue;
        }
        if phase != "Running" || pod.metadata.deletion_timestamp.is_some() {
            let status = if pod.metadata.deletion_timestamp.is_some() {
                "Terminating"
            } else {
                phase
            };
            return Err(format!(
                "pod \"{}\" status is {status}",
                name_of(&pod.metadata)
            ));
        }
        if !proxy_ready(pod) {
            return Err(format!(
                "container \"{}\" in pod \"{}\" is not ready",
                proxy::PROXY_CONTAINER,
                name_of(&pod.metadata)
            ));
        }
    }
    Ok(())
}

fn proxy_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .any(|c| c.name == proxy::PROXY_CONTAINER && c.ready)
    })
}

/// Linkerd's `some proxies are not running the current version:` list, against `want`.
pub(crate) fn proxies_up_to_date(pods: &[Pod], want: &str) -> Result<(), String> {
    let outdated: Vec<String> = pods
        .iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && proxy_container(p).is_some()
        })
        .filter_map(|p| {
            let version = proxy_version(p)?;
            (version != want).then(|| format!("\t* {} ({version})", name_of(&p.metadata)))
        })
        .collect();
    if outdated.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "some proxies are not running the current version:\n{}",
            outdated.join("\n")
        ))
    }
}

/// Linkerd's `<pod> running X but cli running Y` for the first proxy that differs.
pub(crate) fn proxies_match_cli(pods: &[Pod]) -> Result<(), String> {
    for pod in pods {
        if let Some(version) = proxy_version(pod)
            && version != CLI_VERSION
        {
            return Err(format!(
                "{} running {version} but cli running {CLI_VERSION}",
                name_of(&pod.metadata)
            ));
        }
    }
    Ok(())
}

/// Linkerd's `checkPodsProxiesCertificate`: each proxy's `LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS`
/// equals the trust roots (control-plane pods excepted: they read the ConfigMap). With
/// `all_namespaces`, offenders are named `ns/pod`.
pub(crate) fn proxies_trust_roots(
    pods: &[Pod],
    roots: &str,
    control_plane_ns: &str,
    all_namespaces: bool,
) -> Result<(), String> {
    let offending: Vec<String> = pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() != Some(control_plane_ns))
        .filter_map(|p| {
            let anchors = proxy_container(p)?
                .env
                .iter()
                .flatten()
                .find(|e| e.name == env::IDENTITY_TRUST_ANCHORS)?
                .value
                .clone()
                .unwrap_or_default();
            (anchors.trim() != roots.trim()).then(|| {
                if all_namespaces {
                    format!(
                        "* {}/{}",
                        p.metadata.namespace.as_deref().unwrap_or_default(),
                        name_of(&p.metadata)
                    )
                } else {
                    format!("* {}", name_of(&p.metadata))
                }
            })
        })
        .collect();
    if offending.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Some pods do not have the current trust bundle and must be restarted:\n\t{}",
            offending.join("\n\t")
        ))
    }
}

// === linkerd-control-plane-proxy ===

/// oxlink's controllers terminate mesh TLS themselves: there are no proxies to check unless a
/// control-plane pod carries one (the `--plaintext` layout behind a sidecar).
pub(crate) fn control_plane_proxy(pods: &[Pod], values: &Result<Values, String>) -> Category {
    const HEALTHY: (&str, &str) = ("control plane proxies are healthy", "l5d-cp-proxy-healthy");
    const CURRENT: (&str, &str) = (
        "control plane proxies are up-to-date",
        "l5d-cp-proxy-version",
    );
    const CLI: (&str, &str) = (
        "control plane proxies and cli versions match",
        "l5d-cp-proxy-cli-version",
    );
    let proxied: Vec<Pod> = pods
        .iter()
        .filter(|p| proxy_container(p).is_some())
        .cloned()
        .collect();
    if proxied.is_empty() {
        let reason = "the oxlink control plane runs without proxies";
        return Category::new(
            "linkerd-control-plane-proxy",
            [HEALTHY, CURRENT, CLI]
                .into_iter()
                .map(|(d, a)| Outcome::skipped(d, a, reason))
                .collect(),
        );
    }
    let current = values
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|v| proxies_up_to_date(&proxied, v.proxy_version()));
    Category::new(
        "linkerd-control-plane-proxy",
        vec![
            Outcome::new(HEALTHY.0, HEALTHY.1, proxies_ready(&proxied, None)).fatal(),
            Outcome::new(CURRENT.0, CURRENT.1, current).warn_only(),
            Outcome::new(CLI.0, CLI.1, proxies_match_cli(&proxied)).warn_only(),
        ],
    )
}

/// The pods of the control plane namespace, for [`control_plane_proxy`].
pub(crate) async fn control_plane_pods(client: &Client, ns: &str) -> Result<Vec<Pod>, String> {
    list::<Pod>(client, Some(ns), None).await
}

// === --proxy ===

/// The meshed pods of the data plane namespace (all when `None`): those labelled with our
/// control plane's namespace.
async fn data_plane_pods(
    client: &Client,
    control_plane_ns: &str,
    ns: Option<&str>,
) -> Result<Vec<Pod>, String> {
    let selector = format!("{}={control_plane_ns}", labels::CONTROL_PLANE_NS);
    list::<Pod>(client, ns, Some(&selector)).await
}

pub(crate) async fn identity_data_plane(
    client: &Client,
    control_plane_ns: &str,
    ns: Option<&str>,
    roots: Result<String, String>,
) -> Category {
    let result = match (data_plane_pods(client, control_plane_ns, ns).await, roots) {
        (Ok(pods), Ok(roots)) => proxies_trust_roots(&pods, &roots, control_plane_ns, ns.is_none()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    Category::new(
        "linkerd-identity-data-plane",
        vec![
            Outcome::new(
                "data plane proxies certificate match CA",
                "l5d-identity-data-plane-proxies-certs-match-ca",
                result,
            )
            .warn_only(),
        ],
    )
}

pub(crate) async fn data_plane(
    client: &Client,
    control_plane_ns: &str,
    ns: Option<&str>,
    values: &Result<Values, String>,
) -> Category {
    let exists = match ns {
        Some(ns) => namespace_exists(client, ns).await,
        None => Ok(()),
    };
    let pods = data_plane_pods(client, control_plane_ns, ns).await;
    let services = list::<Service>(client, ns, None).await;
    let with = |f: &dyn Fn(&[Pod]) -> Result<(), String>| pods.clone().and_then(|p| f(&p));
    let current = values.as_ref().map_err(Clone::clone).and_then(|v| {
        let want = v.proxy_version();
        with(&|p| proxies_up_to_date(p, want))
    });
    Category::new(
        "linkerd-data-plane",
        vec![
            Outcome::new(
                "data plane namespace exists",
                "l5d-data-plane-exists",
                exists,
            )
            .fatal(),
            Outcome::new(
                "data plane proxies are ready",
                "l5d-data-plane-ready",
                with(&|p| proxies_ready(p, ns)),
            )
            .fatal(),
            Outcome::new(
                "data plane is up-to-date",
                "l5d-data-plane-version",
                current,
            )
            .warn_only(),
            Outcome::new(
                "data plane and cli versions match",
                "l5d-data-plane-cli-version",
                with(&proxies_match_cli),
            )
            .warn_only(),
            Outcome::new(
                "data plane pod labels are configured correctly",
                "l5d-data-plane-pod-labels",
                with(&metadata::pod_labels),
            )
            .warn_only(),
            Outcome::new(
                "data plane service labels are configured correctly",
                "l5d-data-plane-services-labels",
                services.clone().and_then(|s| metadata::service_labels(&s)),
            )
            .warn_only(),
            Outcome::new(
                "data plane service annotations are configured correctly",
                "l5d-data-plane-services-annotations",
                services.and_then(|s| metadata::service_annotations(&s)),
            )
            .warn_only(),
            Outcome::new(
                "opaque ports are properly annotated",
                "linkerd-opaque-ports-definition",
                opaque::opaque_ports(client, ns).await,
            )
            .warn_only(),
        ],
    )
}
