//! A container's environment, resolved as kubelet resolves it: `fieldRef`s from the pod,
//! `resourceFieldRef`s from the container's resources, keys of ConfigMaps and Secrets, and
//! `$(VAR)` references to variables defined before.

use k8s_openapi::{
    api::core::v1::{Container, Pod},
    apimachinery::pkg::api::resource::Quantity,
};
use std::collections::BTreeMap;

/// What an env var may refer to outside the pod object.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// ConfigMaps of the pod's namespace, by name.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secrets of the pod's namespace, by name, decoded.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The node's allocatable CPU cores, for `limits.cpu` without a limit.
    pub node_cpus: u64,
    /// The node's allocatable memory in bytes, for `limits.memory` without a limit.
    pub node_memory: u64,
}

/// The variables kubelet puts first: the API server's Service.
pub fn kubernetes_service(host: &str, port: u16) -> Vec<(String, String)> {
    vec![
        ("KUBERNETES_SERVICE_HOST".into(), host.into()),
        ("KUBERNETES_SERVICE_PORT".into(), port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.to_string()),
        ("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}")),
    ]
}

/// The container's variables in order, appended to `base`; a later definition of a name
/// replaces an earlier one. Errors name the variable that cannot be resolved.
pub fn resolve(
    pod: &Pod,
    c: &Container,
    sources: &Sources,
    base: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    let mut vars = base;
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(n, _)| *n != k);
        vars.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (map, name, optional) = if let Some(r) = &from.config_map_ref {
            (&sources.config_maps, &r.name, r.optional)
        } else if let Some(r) = &from.secret_ref {
            (&sources.secrets, &r.name, r.optional)
        } else {
            continue;
        };
        match map.get(name) {
            Some(data) => data
                .iter()
                .for_each(|(k, v)| set(&mut vars, format!("{prefix}{k}"), v.clone())),
            None if optional == Some(true) => {}
            None => return Err(format!("envFrom refers to {name:?}, which does not exist")),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => expand(e.value.as_deref().unwrap_or_default(), &vars),
            Some(from) => {
                let value = if let Some(f) = &from.field_ref {
                    field(pod, &f.field_path)
                } else if let Some(r) = &from.resource_field_ref {
                    resource(c, &r.resource, r.divisor.as_ref(), sources)
                } else if let Some(k) = &from.config_map_key_ref {
                    key(&sources.config_maps, &k.name, &k.key, k.optional)
                } else if let Some(k) = &from.secret_key_ref {
                    key(&sources.secrets, &k.name, &k.key, k.optional)
                } else {
                    Err("an empty valueFrom".into())
                };
                match value {
                    Ok(Some(v)) => v,
                    Ok(None) => continue,
                    Err(why) => return Err(format!("env {}: {why}", e.name)),
                }
            }
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

/// Expands `$(NAME)` with the variables defined so far; `$$` is a literal `$`, and a
/// reference to an undefined name stays as written.
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match vars.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[i..i + 2 + end + 1]),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn key(
    maps: &BTreeMap<String, BTreeMap<String, String>>,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, String> {
    match maps.get(name).and_then(|m| m.get(key)) {
        Some(v) => Ok(Some(v.clone())),
        None if optional == Some(true) => Ok(None),
        None => Err(format!("key {key:?} of {name:?} does not exist")),
    }
}

/// A downward-API field of the pod.
pub fn field(pod: &Pod, path: &str) -> Result<Option<String>, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        let k = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(k)).cloned().unwrap_or_default())
    };
    if let Some(v) = keyed("metadata.labels['", meta.labels.as_ref()) {
        return Ok(Some(v));
    }
    if let Some(v) = keyed("metadata.annotations['", meta.annotations.as_ref()) {
        return Ok(Some(v));
    }
    let v = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.hostIPs" => status.and_then(|s| s.host_ips.as_ref()).map(|ips| {
            let ips: Vec<_> = ips.iter().map(|i| i.ip.as_str()).collect();
            ips.join(",")
        }),
        "status.podIPs" => status.and_then(|s| s.pod_ips.as_ref()).map(|ips| {
            let ips: Vec<_> = ips.iter().map(|i| i.ip.as_str()).collect();
            ips.join(",")
        }),
        other => return Err(format!("unsupported fieldRef {other:?}")),
    };
    Ok(Some(v.unwrap_or_default()))
}

fn resource(
    c: &Container,
    name: &str,
    divisor: Option<&Quantity>,
    sources: &Sources,
) -> Result<Option<String>, String> {
    let res = c.resources.as_ref();
    let (kind, which) = name
        .split_once('.')
        .ok_or_else(|| format!("unsupported resource {name:?}"))?;
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported resource {name:?}")),
    };
    let given = map
        .and_then(|m| m.get(which))
        .map(|q| oxlink_crds::quantity::parse(&q.0));
    let value = match (given, kind, which) {
        (Some(v), _, _) => v?,
        (None, "limits", "cpu") => sources.node_cpus as f64,
        (None, "limits", "memory") => sources.node_memory as f64,
        (None, _, "cpu" | "memory" | "ephemeral-storage") => 0.0,
        _ => return Err(format!("unsupported resource {name:?}")),
    };
    let divisor = match divisor {
        Some(d) => oxlink_crds::quantity::parse(&d.0)?,
        None => 1.0,
    };
    if divisor <= 0.0 {
        return Err(format!("divisor of {name} must be positive"));
    }
    // Kubelet rounds up, and never reports less than 1 for a CPU request or limit.
    let v = (value / divisor).ceil() as u64;
    Ok(Some(
        match which {
            "cpu" => v.max(1),
            _ => v,
        }
        .to_string(),
    ))
}

#[cfg(test)]
mod tests;
