//! `opaque ports are properly annotated`: a port marked opaque on a pod is marked opaque on
//! each Service that targets it, and the other way round (Linkerd's
//! `misconfiguredOpaqueAnnotation`, same rules and words).

use super::checks::{list, name_of};
use k8s_openapi::{
    api::{
        core::v1::{Pod, Service, ServicePort},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::Client;
use oxlink_crds::names::{annotations::OPAQUE_PORTS, labels::SLICE_SERVICE_NAME};

fn opaque_list(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Vec<String> {
    annotations
        .and_then(|a| a.get(OPAQUE_PORTS))
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// The target port as Go's `IntOrString` reads: `(IntVal, StrVal)`, `(0, "")` when unset.
fn target(sp: &ServicePort) -> (i32, &str) {
    match &sp.target_port {
        Some(IntOrString::Int(i)) => (*i, ""),
        Some(IntOrString::String(s)) => (0, s.as_str()),
        None => (0, ""),
    }
}

fn container_ports(pod: &Pod) -> impl Iterator<Item = (i32, &str)> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| (p.container_port, p.name.as_deref().unwrap_or_default()))
}

fn port_number(p: &str, pod: &Pod) -> Result<i32, String> {
    p.parse().map_err(|_| {
        format!(
            "failed to convert {p} to port number for pod {}",
            name_of(&pod.metadata)
        )
    })
}

/// Whether `service` and `pod` agree on which of the ports between them are opaque.
pub(crate) fn misconfigured(service: &Service, pod: &Pod) -> Result<(), String> {
    let svc_ports = opaque_list(service.metadata.annotations.as_ref());
    let pod_ports = opaque_list(pod.metadata.annotations.as_ref());
    let svc = name_of(&service.metadata);
    let pod_name = name_of(&pod.metadata);
    let ports: &[ServicePort] = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();

    // Every opaque Service port that reaches a pod port is opaque on the pod.
    'svc: for p in &svc_ports {
        let port = port_number(p, pod)?;
        for sp in ports.iter().filter(|sp| sp.port == port) {
            let (int, name) = target(sp);
            for (cport, cname) in container_ports(pod) {
                if cport == int || cname == name {
                    let str_port = match sp.target_port {
                        Some(IntOrString::String(_)) => cport.to_string(),
                        _ => int.to_string(),
                    };
                    if pod_ports.contains(&str_port) {
                        continue 'svc;
                    }
                    return Err(format!(
                        "service {svc} expects target port {str_port} to be opaque; add it to pod {pod_name} {OPAQUE_PORTS} annotation"
                    ));
                }
            }
        }
    }

    // Every opaque pod port that a Service port reaches is opaque on the Service.
    'pod: for p in &pod_ports {
        if svc_ports.contains(p) {
            continue;
        }
        let port = port_number(p, pod)?;
        for sp in ports {
            let (int, _) = target(sp);
            if matches!(sp.target_port, Some(IntOrString::Int(0)) | None) && sp.port == port {
                return Err(format!(
                    "service {svc} targets the opaque port {port}; add it to its {OPAQUE_PORTS} annotation"
                ));
            }
            if int == port {
                if svc_ports.contains(&sp.port.to_string()) {
                    continue 'pod;
                }
                return Err(format!(
                    "service {svc} targets the opaque port {port} through {0}; add {0} to its {OPAQUE_PORTS} annotation",
                    sp.port
                ));
            }
        }
        for sp in ports {
            let (_, name) = target(sp);
            if name.is_empty() {
                continue;
            }
            for (cport, cname) in container_ports(pod) {
                if cport == port && cname == name {
                    if svc_ports.contains(&sp.port.to_string()) {
                        continue 'pod;
                    }
                    return Err(format!(
                        "service {svc} targets the opaque port {cname} through {0}; add {0} to its {OPAQUE_PORTS} annotation",
                        sp.port
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Every non-headless Service against the pods its EndpointSlices point at.
pub(crate) fn judge(
    services: &[Service],
    slices: &[EndpointSlice],
    pods: &[Pod],
) -> Result<(), String> {
    let mut errors = Vec::new();
    for service in services {
        if service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
            continue;
        }
        let ns = service.metadata.namespace.as_deref();
        let name = service.metadata.name.as_deref();
        let mut targets: Vec<&str> = slices
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == ns
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SLICE_SERVICE_NAME))
                        .map(String::as_str)
                        == name
            })
            .flat_map(|s| &s.endpoints)
            .filter_map(|e| e.target_ref.as_ref())
            .filter(|r| r.kind.as_deref() == Some("Pod"))
            .filter_map(|r| r.name.as_deref())
            .collect();
        targets.sort();
        targets.dedup();
        for target in targets {
            let Some(pod) = pods.iter().find(|p| {
                p.metadata.namespace.as_deref() == ns && p.metadata.name.as_deref() == Some(target)
            }) else {
                continue;
            };
            if let Err(e) = misconfigured(service, pod) {
                errors.push(format!("\t* {e}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n    "))
    }
}

pub(crate) async fn opaque_ports(client: &Client, ns: Option<&str>) -> Result<(), String> {
    let services = list::<Service>(client, ns, None).await?;
    let slices = list::<EndpointSlice>(client, ns, None).await?;
    let pods = list::<Pod>(client, ns, None).await?;
    judge(&services, &slices, &pods)
}
