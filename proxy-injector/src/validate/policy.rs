//! Policy resource checks, as Linkerd's policy admission controller makes them, limited to what
//! the CRD schemas cannot express: which kinds a reference may name, how many authentications of
//! each kind a policy may require, exceptions that fall outside (or swallow) their network,
//! regexes and timeouts the proxy could not use.

use k8s_openapi::{
    api::core::v1::{Namespace, ServiceAccount},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::Resource;
use oxlink_crds::{
    duration::parse_duration,
    names::cidr::Cidr,
    names::groups,
    policy::{
        AuthorizationPolicy, AuthorizationPolicySpec, EgressNetwork, EgressNetworkSpec,
        HttpLocalRateLimitPolicy, HttpLocalRateLimitPolicySpec, HttpRoute, HttpRouteSpec,
        MeshTlsAuthentication, MeshTlsAuthenticationSpec, NetworkAuthentication,
        NetworkAuthenticationSpec, Server, ServerAuthorization, ServerAuthorizationSpec,
        ServerSpec, httproute::PathMatchType,
    },
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

type Checked = Result<(), String>;

/// Checks one policy object of `kind`; `None` for kinds without checks.
pub(super) fn validate(kind: &str, object: &Value) -> Option<Checked> {
    let checked = if kind == Server::kind(&()) {
        spec(object).and_then(|s| server(&s))
    } else if kind == AuthorizationPolicy::kind(&()) {
        spec(object).and_then(|s| authorization_policy(&s))
    } else if kind == MeshTlsAuthentication::kind(&()) {
        spec(object).and_then(|s| meshtls_authentication(&s))
    } else if kind == NetworkAuthentication::kind(&()) {
        spec(object).and_then(|s: NetworkAuthenticationSpec| {
            if s.networks.is_empty() {
                return Err("spec.networks: at least one network must be given".into());
            }
            networks(&s.networks, "spec.networks")
        })
    } else if kind == ServerAuthorization::kind(&()) {
        spec(object).and_then(|s| server_authorization(&s))
    } else if kind == HttpRoute::kind(&()) {
        spec(object).and_then(|s| http_route(&s))
    } else if kind == EgressNetwork::kind(&()) {
        spec(object).and_then(|s: EgressNetworkSpec| networks(&s.networks, "spec.networks"))
    } else if kind == HttpLocalRateLimitPolicy::kind(&()) {
        spec(object).and_then(|s| rate_limit_policy(&s))
    } else {
        return None;
    };
    Some(checked)
}

fn spec<T: DeserializeOwned>(object: &Value) -> Result<T, String> {
    let spec = object.get("spec").ok_or("spec: the resource has no spec")?;
    serde_json::from_value(spec.clone()).map_err(|e| format!("spec: {e}"))
}

/// A reference's group: unset, empty and `core` (as Linkerd's examples spell it) all mean the
/// core group.
fn group_of(group: Option<&str>) -> &str {
    match group {
        None | Some("core") => groups::CORE,
        Some(group) => group,
    }
}

/// A reference's `group/kind`, with the core group spelled `core`.
fn group_kind(group: Option<&str>, kind: &str) -> String {
    match group_of(group) {
        "" => format!("core/{kind}"),
        group => format!("{group}/{kind}"),
    }
}

fn is<K: Resource<DynamicType = ()>>(group: Option<&str>, kind: &str) -> bool {
    group_of(group) == K::group(&()) && kind == K::kind(&())
}

fn server(spec: &ServerSpec) -> Checked {
    match (&spec.pod_selector, &spec.external_workload_selector) {
        (Some(_), None) | (None, Some(_)) => {}
        (Some(_), Some(_)) => {
            return Err(
                "spec: set exactly one of podSelector and externalWorkloadSelector, not both"
                    .into(),
            );
        }
        (None, None) => {
            return Err("spec: set one of podSelector and externalWorkloadSelector".into());
        }
    }
    match &spec.port {
        IntOrString::Int(port) if !(1..=65535).contains(port) => {
            Err(format!("spec.port: {port} is not a port number (1-65535)"))
        }
        IntOrString::String(name) => oxlink_crds::ports::port_spec(name)
            .map(drop)
            .map_err(|e| format!("spec.port: {e}")),
        IntOrString::Int(_) => Ok(()),
    }
}

/// Linkerd's refusal of a Server that selects the same port as another Server of its namespace,
/// and pods (or ExternalWorkloads) the other selects too, with Linkerd's message. As in Linkerd,
/// the port must be spelled the same (a number and a port name never overlap), and two
/// selectors overlap when either selects everything or they are equal; `others` is the
/// namespace's Servers, this one (by `name`) among them on an update.
pub(crate) fn overlapping_server(
    ns: &str,
    name: &str,
    spec: &ServerSpec,
    others: &[Server],
) -> Checked {
    for other in others {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        if other_name != name && other.spec.port == spec.port && overlaps(spec, &other.spec) {
            let port = match &other.spec.port {
                IntOrString::Int(port) => port.to_string(),
                IntOrString::String(name) => name.clone(),
            };
            return Err(format!(
                "Server spec '{ns}/{other_name}' already defines a policy for port {port}, and \
                 selects pods that would be selected by this Server"
            ));
        }
    }
    Ok(())
}

fn overlaps(a: &ServerSpec, b: &ServerSpec) -> bool {
    let (left, right) = match (
        (&a.pod_selector, &a.external_workload_selector),
        (&b.pod_selector, &b.external_workload_selector),
    ) {
        ((Some(left), None), (Some(right), None)) | ((None, Some(left)), (None, Some(right))) => {
            (left, right)
        }
        _ => return false,
    };
    // Unset and empty are the same selector.
    let parts = |s: &LabelSelector| {
        (
            s.match_labels.clone().unwrap_or_default(),
            s.match_expressions.clone().unwrap_or_default(),
        )
    };
    let (left, right) = (parts(left), parts(right));
    let selects_all = |(labels, exprs): &(BTreeMap<String, String>, Vec<_>)| {
        labels.is_empty() && exprs.is_empty()
    };
    selects_all(&left) || selects_all(&right) || left == right
}

fn authorization_policy(spec: &AuthorizationPolicySpec) -> Checked {
    let target = &spec.target_ref;
    let group = target.group.as_deref();
    let targetable = is::<Server>(group, &target.kind)
        || is::<HttpRoute>(group, &target.kind)
        || (group == Some(groups::GATEWAY)
            && matches!(target.kind.as_str(), "HTTPRoute" | "GRPCRoute"))
        || is::<Namespace>(group, &target.kind);
    if !targetable {
        return Err(format!(
            "spec.targetRef: {} cannot be targeted (expected a Server, an HTTPRoute, a GRPCRoute or a Namespace)",
            group_kind(group, &target.kind)
        ));
    }
    let refs = &spec.required_authentication_refs;
    let count = |f: &dyn Fn(Option<&str>, &str) -> bool| {
        refs.iter()
            .filter(|r| f(r.group.as_deref(), &r.kind))
            .count()
    };
    let mtls = count(&is::<MeshTlsAuthentication>);
    let sa = count(&is::<ServiceAccount>);
    let net = count(&is::<NetworkAuthentication>);
    let at = "spec.requiredAuthenticationRefs";
    if mtls > 1 {
        return Err(format!(
            "{at}: only one MeshTLSAuthentication may be required"
        ));
    }
    if sa > 1 {
        return Err(format!("{at}: only one ServiceAccount may be required"));
    }
    if mtls + sa > 1 {
        return Err(format!(
            "{at}: a MeshTLSAuthentication and a ServiceAccount may not be required together"
        ));
    }
    if net > 1 {
        return Err(format!(
            "{at}: only one NetworkAuthentication may be required"
        ));
    }
    if let Some(other) = refs.iter().find(|r| {
        let g = r.group.as_deref();
        !(is::<MeshTlsAuthentication>(g, &r.kind)
            || is::<ServiceAccount>(g, &r.kind)
            || is::<NetworkAuthentication>(g, &r.kind))
    }) {
        return Err(format!(
            "{at}: unsupported authentication kind {} (expected MeshTLSAuthentication, NetworkAuthentication or ServiceAccount)",
            group_kind(other.group.as_deref(), &other.kind)
        ));
    }
    Ok(())
}

fn meshtls_authentication(spec: &MeshTlsAuthenticationSpec) -> Checked {
    match (&spec.identities, &spec.identity_refs) {
        (Some(_), Some(_)) => Err("spec: set one of identities and identityRefs, not both".into()),
        (None, None) => Err("spec: set one of identities and identityRefs".into()),
        (Some(_), None) => Ok(()),
        (None, Some(refs)) => {
            for (i, r) in refs.iter().enumerate() {
                let g = r.group.as_deref();
                if !(is::<ServiceAccount>(g, &r.kind) || is::<Namespace>(g, &r.kind)) {
                    return Err(format!(
                        "spec.identityRefs[{i}]: unsupported kind {} (expected ServiceAccount or Namespace)",
                        group_kind(g, &r.kind)
                    ));
                }
            }
            Ok(())
        }
    }
}

fn server_authorization(spec: &ServerAuthorizationSpec) -> Checked {
    match (&spec.server.name, &spec.server.selector) {
        (Some(_), None) | (None, Some(_)) => {}
        _ => return Err("spec.server: set exactly one of name and selector".into()),
    }
    let client = &spec.client;
    match &client.mesh_tls {
        Some(_) if client.unauthenticated => {
            return Err("spec.client: unauthenticated must be false when meshTLS is set".into());
        }
        Some(mtls)
            if mtls.unauthenticated_tls
                && !(mtls.identities.is_empty() && mtls.service_accounts.is_empty()) =>
        {
            return Err(
                "spec.client.meshTLS: unauthenticatedTLS must be false when identities or serviceAccounts are set"
                    .into(),
            );
        }
        None if !client.unauthenticated => {
            return Err("spec.client: set meshTLS or unauthenticated: true".into());
        }
        _ => {}
    }
    networks(&client.networks, "spec.client.networks")
}

fn http_route(spec: &HttpRouteSpec) -> Checked {
    let mut servers = 0;
    let mut services = 0;
    for (i, parent) in spec.parent_refs.iter().enumerate() {
        let g = parent.group.as_deref();
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        // A parent reference without a group names a Gateway API resource, except a Service,
        // which Linkerd takes from the core group as its examples write it.
        let g = match g {
            None if kind != "Service" => Some(groups::GATEWAY),
            g => g,
        };
        if is::<Server>(g, kind) {
            servers += 1;
        } else if is::<k8s_openapi::api::core::v1::Service>(g, kind) || is::<EgressNetwork>(g, kind)
        {
            services += 1;
        } else {
            return Err(format!(
                "spec.parentRefs[{i}]: {} cannot be a parent (expected a Server, a Service or an EgressNetwork)",
                group_kind(g, kind)
            ));
        }
    }
    if servers > 0 && services > 0 {
        return Err(
            "spec.parentRefs: a route is either inbound (Server parents) or outbound (Service or EgressNetwork parents), not both"
                .into(),
        );
    }
    for (r, rule) in spec.rules.iter().enumerate() {
        for (m, matched) in rule.matches.iter().enumerate() {
            let Some(path) = &matched.path else { continue };
            if path.kind == PathMatchType::RegularExpression {
                let regex = path.value.as_deref().unwrap_or_default();
                regex::Regex::new(regex).map_err(|e| {
                    format!(
                        "spec.rules[{r}].matches[{m}].path.value: invalid regular expression {regex:?}: {}",
                        e.to_string().lines().last().unwrap_or_default().trim_start_matches("error: ")
                    )
                })?;
            }
        }
        if let Some(timeouts) = &rule.timeouts {
            let at = format!("spec.rules[{r}].timeouts");
            let parse = |key: &str, v: &Option<String>| {
                v.as_deref()
                    .map(|d| {
                        parse_duration(d)
                            .map_err(|e| format!("{at}.{key}: invalid duration {d:?}: {e}"))
                    })
                    .transpose()
            };
            let request = parse("request", &timeouts.request)?;
            let backend = parse("backendRequest", &timeouts.backend_request)?;
            if let (Some(request), Some(backend)) = (request, backend)
                && !request.is_zero()
                && backend > request
            {
                return Err(format!(
                    "{at}: backendRequest ({backend:?}) cannot be longer than request ({request:?})"
                ));
            }
        }
    }
    Ok(())
}

fn rate_limit_policy(spec: &HttpLocalRateLimitPolicySpec) -> Checked {
    let target = &spec.target_ref;
    if !is::<Server>(target.group.as_deref(), &target.kind) {
        return Err(format!(
            "spec.targetRef: {} cannot be rate limited (expected a Server)",
            group_kind(target.group.as_deref(), &target.kind)
        ));
    }
    // As Linkerd's webhook does: no per-identity or per-client rate above the total.
    if let Some(total) = &spec.total {
        let above = |rate: i64| rate > total.requests_per_second;
        if let Some(identity) = spec
            .identity
            .as_ref()
            .filter(|i| above(i.requests_per_second))
        {
            return Err(format!(
                "spec.identity.requestsPerSecond ({}) cannot be greater than spec.total.requestsPerSecond ({})",
                identity.requests_per_second, total.requests_per_second
            ));
        }
        if let Some((o, over)) = spec
            .overrides
            .iter()
            .enumerate()
            .find(|(_, over)| above(over.requests_per_second))
        {
            return Err(format!(
                "spec.overrides[{o}].requestsPerSecond ({}) cannot be greater than spec.total.requestsPerSecond ({})",
                over.requests_per_second, total.requests_per_second
            ));
        }
    }
    for (o, over) in spec.overrides.iter().enumerate() {
        for (c, client) in over.client_refs.iter().enumerate() {
            if !is::<ServiceAccount>(client.group.as_deref(), &client.kind) {
                return Err(format!(
                    "spec.overrides[{o}].clientRefs[{c}]: unsupported kind {} (expected ServiceAccount)",
                    group_kind(client.group.as_deref(), &client.kind)
                ));
            }
        }
    }
    Ok(())
}

/// Every network parses, and every exception lies inside its network without covering it.
fn networks(networks: &[oxlink_crds::policy::Network], at: &str) -> Checked {
    for (i, net) in networks.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let cidr: Cidr = net.cidr.parse().map_err(|e| format!("{at}.cidr: {e}"))?;
        for (j, except) in net.except.iter().enumerate() {
            let at = format!("{at}.except[{j}]");
            let except: Cidr = except.parse().map_err(|e| format!("{at}: {e}"))?;
            if except.contains(&cidr) {
                return Err(format!("{at}: {except} excludes all of {cidr}"));
            }
            if !cidr.contains(&except) {
                return Err(format!("{at}: {except} is not inside {cidr}"));
            }
        }
    }
    Ok(())
}
