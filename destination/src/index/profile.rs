//! ServiceProfiles, translated once into the proxy's route, retry and traffic-split messages,
//! and the profiles built from them for Services, pods and addresses.

use super::{Index, IndexResource, ObjKey, ProfileTarget, policy::routes::resource_meta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use linkerd2_proxy_api::{
    destination as pb,
    http_types::{HttpMethod, http_method},
};
use oxlink_crds::{
    ServiceProfile,
    duration::parse_duration,
    names::{annotations, groups},
    service_profile::{self as sp, ServiceProfileSpec},
};
use prost::bytes::Bytes;
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    ops::Deref,
    sync::Arc,
    time::Duration,
};

/// A profile as subscribers receive it: the message, and its encoding behind the gRPC
/// header, made once.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileSnapshot {
    pub message: pb::DestinationProfile,
    pub framed: Bytes,
}

impl ProfileSnapshot {
    pub(crate) fn new(message: pb::DestinationProfile) -> Self {
        let framed = crate::frame::framed(&message);
        Self { message, framed }
    }
}

impl Deref for ProfileSnapshot {
    type Target = pb::DestinationProfile;

    fn deref(&self) -> &pb::DestinationProfile {
        &self.message
    }
}

/// A ServiceProfile's spec in the proxy's terms; `dst_overrides` still lack the requested port.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Translated {
    pub(crate) routes: Vec<pb::Route>,
    pub(crate) retry_budget: Option<pb::RetryBudget>,
    pub(crate) dst_overrides: Vec<pb::WeightedDst>,
    /// The `smi.linkerd.io/skip` annotation: a TrafficSplit of the Service leaves this
    /// profile's `dst_overrides` alone.
    pub(crate) smi_skip: bool,
}

/// Retries may add 20% load, at least 10 per second, counted over 10 seconds.
pub(crate) fn default_retry_budget() -> pb::RetryBudget {
    pb::RetryBudget {
        retry_ratio: 0.2,
        min_retries_per_second: 10,
        ttl: Some(duration(Duration::from_secs(10))),
    }
}

/// Translates a spec. Routes that cannot be expressed are left out (and logged) rather than
/// failing the whole profile; an invalid retry budget falls back to the default.
pub(crate) fn translate(name: &str, spec: &ServiceProfileSpec) -> Translated {
    let routes = spec
        .routes
        .iter()
        .filter_map(|route| match translate_route(route) {
            Ok(route) => Some(route),
            Err(error) => {
                tracing::warn!(profile = %name, route = %route.name, %error, "skipping an invalid route");
                None
            }
        })
        .collect();
    let retry_budget = spec.retry_budget.as_ref().and_then(|b| {
        let ttl = parse_duration(&b.ttl)
            .inspect_err(
                |error| tracing::warn!(profile = %name, %error, "invalid retry budget ttl"),
            )
            .ok()?;
        Some(pb::RetryBudget {
            retry_ratio: b.retry_ratio,
            min_retries_per_second: u32::try_from(b.min_retries_per_second).ok()?,
            ttl: Some(duration(ttl)),
        })
    });
    let dst_overrides = spec
        .dst_overrides
        .iter()
        .filter_map(|dst| match weight(&dst.weight) {
            Some(weight) => Some(pb::WeightedDst {
                authority: dst.authority.clone(),
                weight,
                backend_ref: None,
            }),
            None => {
                tracing::warn!(profile = %name, authority = %dst.authority, "invalid weight");
                None
            }
        })
        .collect();
    Translated {
        routes,
        retry_budget,
        dst_overrides,
        smi_skip: false,
    }
}

fn translate_route(route: &sp::RouteSpec) -> Result<pb::Route, String> {
    let condition = request_match(&route.condition)?;
    let response_classes = route
        .response_classes
        .iter()
        .map(|class| {
            Ok(pb::ResponseClass {
                condition: Some(response_match(&class.condition)?),
                is_failure: class.is_failure,
            })
        })
        .collect::<Result<_, String>>()?;
    let timeout = match route.timeout.as_deref() {
        None => None,
        Some(t) => match parse_duration(t) {
            Ok(t) => Some(duration(t)),
            Err(error) => {
                tracing::warn!(route = %route.name, %error, "ignoring an invalid timeout");
                None
            }
        },
    };
    Ok(pb::Route {
        condition: Some(condition),
        response_classes,
        metrics_labels: HashMap::from([("route".to_string(), route.name.clone())]),
        is_retryable: route.is_retryable,
        timeout,
    })
}

/// Every field set in a match must hold: one field is sent as itself, several as `all`.
fn request_match(m: &sp::RequestMatch) -> Result<pb::RequestMatch, String> {
    use pb::request_match::{Match, Seq};
    let mut matches = Vec::new();
    if !m.all.is_empty() {
        let all = m.all.iter().map(request_match).collect::<Result<_, _>>()?;
        matches.push(Match::All(Seq { matches: all }));
    }
    if !m.any.is_empty() {
        let any = m.any.iter().map(request_match).collect::<Result<_, _>>()?;
        matches.push(Match::Any(Seq { matches: any }));
    }
    if let Some(method) = &m.method {
        matches.push(Match::Method(http_method(method)));
    }
    if let Some(not) = &m.not {
        matches.push(Match::Not(Box::new(request_match(not)?)));
    }
    if let Some(regex) = &m.path_regex {
        matches.push(Match::Path(pb::PathMatch {
            regex: regex.clone(),
        }));
    }
    let one = |m| pb::RequestMatch { r#match: Some(m) };
    match matches.len() {
        0 => Err("a request condition must set at least one field".into()),
        1 => Ok(one(matches.remove(0))),
        _ => Ok(one(Match::All(Seq {
            matches: matches.into_iter().map(one).collect(),
        }))),
    }
}

fn response_match(m: &sp::ResponseMatch) -> Result<pb::ResponseMatch, String> {
    use pb::response_match::{Match, Seq};
    let mut matches = Vec::new();
    if !m.all.is_empty() {
        let all = m.all.iter().map(response_match).collect::<Result<_, _>>()?;
        matches.push(Match::All(Seq { matches: all }));
    }
    if !m.any.is_empty() {
        let any = m.any.iter().map(response_match).collect::<Result<_, _>>()?;
        matches.push(Match::Any(Seq { matches: any }));
    }
    if let Some(not) = &m.not {
        matches.push(Match::Not(Box::new(response_match(not)?)));
    }
    if let Some(status) = &m.status {
        let bound = |b: Option<i32>| b.and_then(|b| u32::try_from(b).ok()).unwrap_or(0);
        matches.push(Match::Status(pb::HttpStatusRange {
            min: bound(status.min),
            max: bound(status.max),
        }));
    }
    let one = |m| pb::ResponseMatch { r#match: Some(m) };
    match matches.len() {
        0 => Err("a response condition must set at least one field".into()),
        1 => Ok(one(matches.remove(0))),
        _ => Ok(one(Match::All(Seq {
            matches: matches.into_iter().map(one).collect(),
        }))),
    }
}

fn http_method(method: &str) -> HttpMethod {
    let method = method.trim().to_ascii_uppercase();
    let r#type = match http_method::Registered::from_str_name(&method) {
        Some(registered) => http_method::Type::Registered(registered.into()),
        None => http_method::Type::Unregistered(method),
    };
    HttpMethod {
        r#type: Some(r#type),
    }
}

/// A traffic-split weight: the quantity's milli-value times ten, so `1` is 10000 and `500m`
/// is 5000.
pub(super) fn weight(w: &IntOrString) -> Option<u32> {
    let milli = match w {
        IntOrString::Int(n) => u64::try_from(*n).ok()? * 1000,
        IntOrString::String(s) => quantity_milli(s)?,
    };
    u32::try_from(milli * 10).ok()
}

/// The milli-value of a Kubernetes quantity such as `1`, `0.5`, `500m` or `2k`.
fn quantity_milli(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        _ => return None,
    };
    let milli = (number * scale * 1000.0).ceil();
    (milli.is_finite() && milli >= 0.0).then_some(milli as u64)
}

pub(crate) fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

// === building profiles ===

impl Index {
    pub(super) fn profile(
        &self,
        target: &ProfileTarget,
        client_ns: Option<&str>,
    ) -> pb::DestinationProfile {
        match target {
            ProfileTarget::Service(svc, port) => self.service_profile(svc, *port, client_ns),
            ProfileTarget::Pod {
                service,
                hostname,
                port,
            } => match self.hostname_ip(service, hostname) {
                Some(ip) => self.endpoint_profile(SocketAddr::new(ip, *port)),
                // No such pod (yet): no endpoint to describe.
                None => pb::DestinationProfile {
                    retry_budget: Some(default_retry_budget()),
                    ..Default::default()
                },
            },
            // Conflicting Services are refused to new lookups (`conflicting_services`); a
            // stream opened before the conflict follows the first of them.
            ProfileTarget::Addr(addr) => {
                match self.cluster_ips.get(&addr.ip()).and_then(|s| s.first()) {
                    Some(svc) => self.service_profile(svc, addr.port(), client_ns),
                    None => self.endpoint_profile(*addr),
                }
            }
        }
    }

    /// The Services claiming `ip` as their cluster IP, when there is more than one.
    pub fn conflicting_services(&self, ip: IpAddr) -> Option<Vec<ObjKey>> {
        let claims = self.cluster_ips.get(&ip)?;
        (claims.len() > 1).then(|| claims.iter().cloned().collect())
    }

    /// The profile of one endpoint: a running pod's, or a bare address.
    pub(super) fn endpoint_profile(&self, addr: SocketAddr) -> pb::DestinationProfile {
        let pod = self
            .pod_ips
            .get(&addr.ip())
            .and_then(|k| Some((k, self.pods.get(k)?)));
        let (endpoint, opaque) = match pod {
            Some((key, pod)) => {
                let mut wa = self.weighted_addr(addr, Some(pod));
                wa.metric_labels.insert("namespace".into(), key.ns.clone());
                (wa, self.is_opaque(pod, addr.port()))
            }
            None => (self.weighted_addr(addr, None), false),
        };
        pb::DestinationProfile {
            opaque_protocol: opaque,
            retry_budget: Some(default_retry_budget()),
            endpoint: Some(endpoint),
            ..Default::default()
        }
    }

    /// The address of the Service's endpoint with `hostname`.
    pub(super) fn hostname_ip(&self, svc: &ObjKey, hostname: &str) -> Option<IpAddr> {
        self.service_slices
            .get(svc)?
            .iter()
            .filter_map(|s| self.slices.get(s))
            .flat_map(|s| &s.endpoints)
            .find(|e| e.hostname.as_deref() == Some(hostname))?
            .addresses
            .first()
            .copied()
    }

    pub(super) fn service_profile(
        &self,
        svc: &ObjKey,
        port: u16,
        client_ns: Option<&str>,
    ) -> pb::DestinationProfile {
        let fqn = format!("{}.{}.svc.{}", svc.name, svc.ns, self.config.cluster_domain);
        // The client's own namespace first, then the Service's.
        let profile = client_ns
            .into_iter()
            .chain([svc.ns.as_str()])
            .map(|ns| ObjKey::new(ns, &fqn))
            .find_map(|key| Some((self.profiles.get(&key)?, key)));
        // A TrafficSplit replaces the dstOverrides of the apex namespace's profile (as the SMI
        // adaptor rewrites that profile), unless the profile opts out; a profile of the
        // client's own namespace is not the adaptor's and stays as written.
        let split_applies = match &profile {
            None => true,
            Some((profile, key)) => key.ns == svc.ns && !profile.smi_skip,
        };
        let opaque = self
            .services
            .get(svc)
            .and_then(|s| s.opaque_ports.as_ref())
            .unwrap_or(&self.config.default_opaque_ports)
            .contains(port);
        let mut out = pb::DestinationProfile {
            fully_qualified_name: fqn,
            opaque_protocol: opaque,
            retry_budget: Some(default_retry_budget()),
            // Linkerd names the core API group "core" in these references (not "").
            parent_ref: Some(resource_meta("core", "Service", &svc.ns, &svc.name, port)),
            profile_ref: profile.as_ref().map(|(_, key)| {
                resource_meta(groups::LINKERD, "ServiceProfile", &key.ns, &key.name, 0)
            }),
            ..Default::default()
        };
        if let Some((profile, _)) = profile {
            out.routes = profile.routes.clone();
            if let Some(budget) = &profile.retry_budget {
                out.retry_budget = Some(*budget);
            }
            out.dst_overrides = profile
                .dst_overrides
                .iter()
                .map(|dst| {
                    let mut dst = dst.clone();
                    if !has_port(&dst.authority) {
                        dst.authority = format!("{}:{port}", dst.authority);
                    }
                    dst
                })
                .collect();
        }
        if split_applies && let Some(backends) = self.split_backends(svc) {
            out.dst_overrides = backends
                .into_iter()
                .map(|(backend, weight)| pb::WeightedDst {
                    authority: self.service_authority(backend, port),
                    weight,
                    backend_ref: None,
                })
                .collect();
        }
        out
    }

    /// The Service a ServiceProfile named `<svc>.<ns>.svc.<cluster-domain>` describes.
    pub(super) fn profile_service(&self, fqn: &str) -> Option<ObjKey> {
        let prefix = fqn
            .strip_suffix(self.config.cluster_domain.as_str())?
            .strip_suffix(".svc.")?;
        let (name, ns) = prefix.split_once('.')?;
        (!ns.contains('.')).then(|| ObjKey::new(ns, name))
    }
}

fn has_port(authority: &str) -> bool {
    authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.ends_with(':') && port.parse::<u16>().is_ok())
}

impl IndexResource for ServiceProfile {
    fn apply(index: &mut Index, obj: &Self) {
        let Some(key) = ObjKey::of(&obj.metadata) else {
            return;
        };
        let mut translated = translate(&format!("{}/{}", key.ns, key.name), &obj.spec);
        translated.smi_skip = obj
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(annotations::SMI_SKIP));
        if index
            .profiles
            .get(&key)
            .is_some_and(|old| **old == translated)
        {
            return;
        }
        if let Some(svc) = index.profile_service(&key.name) {
            index.dirty_services.insert(svc);
        }
        index.profiles.insert(key, Arc::new(translated));
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        if index.profiles.remove(key).is_some()
            && let Some(svc) = index.profile_service(&key.name)
        {
            index.dirty_services.insert(svc);
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.profiles.keys().cloned().collect()
    }
}
