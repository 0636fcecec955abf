//! The Kubernetes objects the destination index converts, a seeded index, and the index's
//! subscriptions.

use k8s_openapi::api::{
    core::v1::{Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use oxlink_crds::{
    ExternalWorkload, ServiceProfile, TrafficSplit, gateway,
    policy::{
        AuthorizationPolicy, EgressNetwork, HttpLocalRateLimitPolicy, HttpRoute,
        MeshTlsAuthentication, NetworkAuthentication, Server, ServerAuthorization,
    },
};
use oxlink_destination::index::{Config, Index, IndexResource};
use serde_json::{Value, json};

/// How many kinds [`apply_json`] knows.
pub const KINDS: u8 = 17;

/// Parses `bytes` as the object kind numbered `kind` (modulo [`KINDS`]); if it parses, applies
/// it, replaces the kind's objects with it (a watch re-list), and deletes it.
pub fn apply_json(index: &mut Index, kind: u8, bytes: &[u8]) {
    fn go<K: IndexResource>(index: &mut Index, bytes: &[u8]) {
        let Ok(obj) = serde_json::from_slice::<K>(bytes) else {
            return;
        };
        cycle(index, &obj);
    }
    match kind % KINDS {
        0 => go::<Service>(index, bytes),
        1 => go::<EndpointSlice>(index, bytes),
        2 => go::<Pod>(index, bytes),
        3 => go::<Node>(index, bytes),
        4 => go::<ServiceProfile>(index, bytes),
        5 => go::<TrafficSplit>(index, bytes),
        6 => go::<ExternalWorkload>(index, bytes),
        7 => go::<Server>(index, bytes),
        8 => go::<ServerAuthorization>(index, bytes),
        9 => go::<AuthorizationPolicy>(index, bytes),
        10 => go::<MeshTlsAuthentication>(index, bytes),
        11 => go::<NetworkAuthentication>(index, bytes),
        12 => go::<HttpRoute>(index, bytes),
        13 => go::<gateway::HttpRoute>(index, bytes),
        14 => go::<gateway::GrpcRoute>(index, bytes),
        15 => go::<HttpLocalRateLimitPolicy>(index, bytes),
        _ => go::<EgressNetwork>(index, bytes),
    }
}

/// Applies `obj`, re-lists its kind as `[obj]`, then deletes it.
pub fn cycle<K: IndexResource>(index: &mut Index, obj: &K) {
    index.apply(obj);
    index.reset(std::slice::from_ref(obj));
    let meta = obj.meta();
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    index.delete::<K>(&ns, &name);
}

/// Deserializes a JSON value the seed objects are written as.
fn obj<K: serde::de::DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a seed object deserializes")
}

/// Service `web` (cluster IP 10.96.0.10, port 80 → 8080) in `default`, its EndpointSlice, a
/// ready meshed pod behind it, a Server for the pod's port and a ServiceProfile for the
/// Service: enough for every subscription to have something to say.
pub fn seed(index: &mut Index) {
    let service: Service = obj(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }));
    let pod: Pod = obj(json!({
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web",
            "linkerd.io/control-plane-ns": "linkerd", "linkerd.io/proxy-deployment": "web"}},
        "spec": {"serviceAccountName": "web", "nodeName": "node-a", "containers": [
            {"name": "app", "image": "web", "ports": [{"containerPort": 8080, "name": "http"}]},
            {"name": "linkerd-proxy", "image": "proxy"}]},
        "status": {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "phase": "Running"},
    }));
    let slice: EndpointSlice = obj(json!({
        "metadata": {"name": "web-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"},
                       "nodeName": "node-a", "zone": "zone-a"}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }));
    let server: Server = obj(json!({
        "apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
        "metadata": {"name": "web-http", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http",
                 "proxyProtocol": "HTTP/1"},
    }));
    let profile: ServiceProfile = obj(json!({
        "apiVersion": "linkerd.io/v1alpha2", "kind": "ServiceProfile",
        "metadata": {"name": "web.default.svc.cluster.local", "namespace": "default"},
        "spec": {"routes": [{"name": "GET /", "condition": {"method": "GET", "pathRegex": "/"},
                             "timeout": "100ms"}]},
    }));
    index.apply(&service);
    index.apply(&pod);
    index.apply(&slice);
    index.apply(&server);
    index.apply(&profile);
}

use oxlink_destination::{
    discover::{Discover, EndpointsFilter, ObjKey, ProfileTarget},
    index::{SharedIndex, policy::OutboundTarget},
    policy::{DiscoverPolicy, Workload},
};
use std::{any::Any, collections::BTreeMap, net::SocketAddr};

/// A receiver of any API, held only to keep its subscription alive.
pub type Held = Box<dyn Any>;

/// One subscriber on each API for the seeded objects (see [`seed`]).
pub fn subscribe_all(index: &mut Index) -> Vec<Held> {
    let svc = ObjKey::new("default", "web");
    let addr = |s: &str| s.parse::<SocketAddr>().expect("an address");
    let mut held: Vec<Held> = vec![
        Box::new(index.watch_endpoints(
            &svc,
            &EndpointsFilter {
                port: 80,
                hostname: None,
                node: Some("node-a".into()),
            },
        )),
        Box::new(index.watch_profile(&ProfileTarget::Service(svc.clone(), 80), Some("default"))),
        Box::new(index.watch_profile(&ProfileTarget::Addr(addr("10.96.0.10:80")), None)),
        Box::new(index.watch_profile(&ProfileTarget::Addr(addr("10.244.0.5:8080")), None)),
    ];
    if let Ok(rx) = index.watch_inbound(&ObjKey::new("default", "web-0"), 8080) {
        held.push(Box::new(rx));
    }
    if let Ok(rx) = index.watch_outbound(&OutboundTarget::Service(svc, 80)) {
        held.push(Box::new(rx));
    }
    held
}

const NAMESPACES: [&str; 2] = ["default", "other"];
const NAMES: [&str; 3] = ["web", "api", "db"];
const PORTS: [u16; 3] = [80, 8080, 9090];

/// The objects the stateful fuzzer writes, by kind, namespace and name.
#[derive(Default)]
struct Model {
    services: BTreeMap<(usize, usize), Service>,
    slices: BTreeMap<(usize, usize), EndpointSlice>,
    pods: BTreeMap<(usize, usize), Pod>,
    profiles: BTreeMap<(usize, usize), ServiceProfile>,
}

/// How many subscription keys the index holds, over every API.
pub fn keys(index: &Index) -> usize {
    let (sizes, policy) = (index.sizes(), index.policy_sizes());
    sizes.endpoint_keys + sizes.profile_keys + policy.inbound_keys + policy.outbound_keys
}

/// Everything a caller can do to make the index let go of keys nobody subscribes to: write
/// once more (the index prunes closed subscriptions of what a write touches), re-applying every
/// object the fuzzer wrote so that all of them are touched, plus one write of an unrelated
/// object. A key kept under an object that does not exist (an unknown Service name, any
/// address) is not reached this way; only subscriptions that give their key back when they are
/// dropped make the invariant hold for those.
fn sweep(index: &SharedIndex, model: &Model) {
    let mut index = index.write();
    for service in model.services.values() {
        index.apply(service);
    }
    for slice in model.slices.values() {
        index.apply(slice);
    }
    for pod in model.pods.values() {
        index.apply(pod);
    }
    for profile in model.profiles.values() {
        index.apply(profile);
    }
    let node: Node = obj(json!({"metadata": {"name": "sweep"}}));
    index.apply(&node);
    index.delete::<Node>("", "sweep");
}

/// Runs the operations `data` encodes on a fresh index, checking the subscription-key
/// invariant after every sweep and at the end.
pub fn run_ops(data: &[u8]) {
    use libfuzzer_sys::arbitrary::Unstructured;
    let mut u = Unstructured::new(data);
    let index: SharedIndex = Index::shared(Config::default());
    let mut model = Model::default();
    let mut held: Vec<Held> = Vec::new();
    let check = |index: &SharedIndex, held: usize, model: &Model| {
        sweep(index, model);
        let keys = keys(&index.read());
        assert!(
            keys <= held,
            "{keys} subscription keys remain after a sweep with {held} subscribers"
        );
    };
    for _ in 0..64 {
        let Ok(op) = u.int_in_range(0u8..=14) else {
            break;
        };
        let ns = u.choose_index(NAMESPACES.len()).unwrap_or(0);
        let name = u.choose_index(NAMES.len()).unwrap_or(0);
        let k = (ns, name);
        let (ns_s, name_s) = (NAMESPACES[ns], NAMES[name]);
        let ip = u.int_in_range(1u8..=3).unwrap_or(1);
        let port = PORTS[u.choose_index(PORTS.len()).unwrap_or(0)];
        let flag = u.arbitrary::<bool>().unwrap_or(false);
        match op {
            0 => {
                let svc: Service = obj(json!({
                    "metadata": {"name": name_s, "namespace": ns_s},
                    "spec": {"clusterIP": format!("10.96.0.{ip}"), "selector": {"app": name_s},
                             "ports": [{"port": port, "targetPort": 8080}]},
                }));
                index.write().apply(&svc);
                model.services.insert(k, svc);
            }
            1 => {
                index.write().delete::<Service>(ns_s, name_s);
                model.services.remove(&k);
            }
            2 => {
                let slice: EndpointSlice = obj(json!({
                    "metadata": {"name": format!("{name_s}-x"), "namespace": ns_s,
                                 "labels": {"kubernetes.io/service-name": name_s}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [format!("10.244.0.{ip}")],
                                   "conditions": {"ready": flag},
                                   "targetRef": {"kind": "Pod", "name": format!("pod-{ip}"),
                                                 "namespace": ns_s}}],
                    "ports": [{"port": 8080}],
                }));
                index.write().apply(&slice);
                model.slices.insert(k, slice);
            }
            3 => {
                index
                    .write()
                    .delete::<EndpointSlice>(ns_s, &format!("{name_s}-x"));
                model.slices.remove(&k);
            }
            4 => {
                let pod: Pod = obj(json!({
                    "metadata": {"name": format!("pod-{ip}"), "namespace": ns_s,
                                 "labels": {"app": name_s}},
                    "spec": {"containers": [{"name": "app",
                                             "ports": [{"containerPort": 8080}]}]},
                    "status": {"podIP": format!("10.244.0.{ip}"), "phase": "Running"},
                }));
                index.write().apply(&pod);
                model.pods.insert((ns, usize::from(ip)), pod);
            }
            5 => {
                index.write().delete::<Pod>(ns_s, &format!("pod-{ip}"));
                model.pods.remove(&(ns, usize::from(ip)));
            }
            6 => {
                let profile: ServiceProfile = obj(json!({
                    "metadata": {"name": format!("{name_s}.{ns_s}.svc.cluster.local"),
                                 "namespace": ns_s},
                    "spec": {"routes": [{"name": "r", "condition": {"pathRegex": "/"}}]},
                }));
                index.write().apply(&profile);
                model.profiles.insert(k, profile);
            }
            7 => {
                index
                    .write()
                    .delete::<ServiceProfile>(ns_s, &format!("{name_s}.{ns_s}.svc.cluster.local"));
                model.profiles.remove(&k);
            }
            8 => {
                let filter = EndpointsFilter {
                    port,
                    hostname: flag.then(|| format!("pod-{ip}")),
                    node: None,
                };
                if let Ok(rx) = index.endpoints(&ObjKey::new(ns_s, name_s), &filter) {
                    held.push(Box::new(rx));
                }
            }
            9 => {
                let target = ProfileTarget::Service(ObjKey::new(ns_s, name_s), port);
                let client_ns = flag.then_some(NAMESPACES[1 - ns]);
                if let Ok(rx) = index.profile(&target, client_ns) {
                    held.push(Box::new(rx));
                }
            }
            10 => {
                let octet = if flag { 96 } else { 244 };
                let addr = SocketAddr::from(([10, octet, 0, ip], port));
                if let Ok(rx) = index.profile(&ProfileTarget::Addr(addr), None) {
                    held.push(Box::new(rx));
                }
            }
            11 => {
                let workload = Workload::Pod(ObjKey::new(ns_s, format!("pod-{ip}")));
                if let Ok(rx) = index.inbound(&workload, port) {
                    held.push(Box::new(rx));
                }
            }
            12 => {
                let target = if flag {
                    OutboundTarget::Service(ObjKey::new(ns_s, name_s), port)
                } else {
                    OutboundTarget::Addr(SocketAddr::from(([10, 96, 0, ip], port)))
                };
                if let Ok(rx) = index.outbound(&target) {
                    held.push(Box::new(rx));
                }
            }
            13 => {
                if !held.is_empty() {
                    let at = usize::from(ip) % held.len();
                    held.swap_remove(at);
                }
            }
            _ => check(&index, held.len(), &model),
        }
    }
    held.clear();
    check(&index, 0, &model);
}
