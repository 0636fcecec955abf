//! What makes an HTTPLocalRateLimitPolicy unusable, each reason precisely.

use super::*;
use serde_json::{Value, json};

fn limits(spec: Value) -> Result<Limits, InvalidRateLimit> {
    let spec: ratelimit_policy::HttpLocalRateLimitPolicySpec =
        serde_json::from_value(spec).unwrap();
    Limits::from_spec("ns", &spec)
}

fn server() -> Value {
    json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web-http"})
}

#[test]
fn valid_limits_resolve_client_namespaces() {
    let got = limits(json!({
        "targetRef": server(),
        "total": {"requestsPerSecond": 100},
        "identity": {"requestsPerSecond": 100},
        "overrides": [{"requestsPerSecond": 0, "clientRefs": [
            {"kind": "ServiceAccount", "name": "a"},
            {"group": "", "kind": "ServiceAccount", "name": "b", "namespace": ""},
            {"group": "core", "kind": "ServiceAccount", "name": "c", "namespace": "other"},
        ]}],
    }))
    .unwrap();
    assert_eq!(got.server, "web-http");
    assert_eq!((got.total, got.identity), (Some(100), Some(100)));
    assert_eq!(
        got.overrides,
        [(
            0,
            vec![
                ObjKey::new("ns", "a"),
                ObjKey::new("ns", "b"),
                ObjKey::new("other", "c")
            ]
        )]
    );
}

#[test]
fn each_reason_is_reported_precisely() {
    let sa = json!({"kind": "ServiceAccount", "name": "client"});
    for (spec, error) in [
        (
            json!({"targetRef": {"kind": "Service", "name": "web"}}),
            "spec.targetRef: core/Service cannot be rate limited (expected a Server)",
        ),
        (
            json!({"targetRef": {"group": "policy.linkerd.io", "kind": "HTTPRoute", "name": "r"}}),
            "spec.targetRef: policy.linkerd.io/HTTPRoute cannot be rate limited (expected a Server)",
        ),
        (
            json!({"targetRef": server(), "total": {"requestsPerSecond": -1}}),
            "spec.total: -1 requests per second is out of range",
        ),
        (
            json!({"targetRef": server(), "identity": {"requestsPerSecond": 4_294_967_296_u64}}),
            "spec.identity: 4294967296 requests per second is out of range",
        ),
        (
            json!({
                "targetRef": server(),
                "total": {"requestsPerSecond": 10},
                "identity": {"requestsPerSecond": 11},
            }),
            "spec.identity: 11 requests per second is more than total (10)",
        ),
        (
            json!({
                "targetRef": server(),
                "total": {"requestsPerSecond": 10},
                "overrides": [
                    {"requestsPerSecond": 10, "clientRefs": [sa]},
                    {"requestsPerSecond": 12, "clientRefs": [sa]},
                ],
            }),
            "spec.overrides[1]: 12 requests per second is more than total (10)",
        ),
        (
            json!({"targetRef": server(), "overrides": [{"requestsPerSecond": 1, "clientRefs": []}]}),
            "spec.overrides[0]: no clientRefs",
        ),
        (
            json!({"targetRef": server(), "overrides": [{"requestsPerSecond": 1, "clientRefs": [
                sa, {"kind": "Namespace", "name": "ns"},
            ]}]}),
            "spec.overrides[0].clientRefs[1]: unsupported kind core/Namespace (expected ServiceAccount)",
        ),
        (
            json!({"targetRef": server(), "overrides": [{"requestsPerSecond": 1, "clientRefs": [
                {"group": "policy.linkerd.io", "kind": "ServiceAccount", "name": "sa"},
            ]}]}),
            "spec.overrides[0].clientRefs[0]: unsupported kind policy.linkerd.io/ServiceAccount (expected ServiceAccount)",
        ),
    ] {
        assert_eq!(
            limits(spec.clone()).unwrap_err().to_string(),
            error,
            "{spec}"
        );
    }
}
