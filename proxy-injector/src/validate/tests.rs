use super::*;
use serde_json::json;

fn review(group: &str, kind: &str, operation: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "4b1c",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "x"},
            "namespace": "todo",
            "operation": operation,
            "object": object,
        }
    }))
    .unwrap()
}

fn profile(spec: Value) -> Value {
    json!({
        "apiVersion": "linkerd.io/v1alpha2",
        "kind": "ServiceProfile",
        "metadata": {"name": "todoui.todo.svc.cluster.local", "namespace": "todo"},
        "spec": spec,
    })
}

fn sp(spec: Value) -> Verdict {
    check_sp(profile(spec))
}

fn check_sp(object: Value) -> Verdict {
    let body = review("linkerd.io", "ServiceProfile", "CREATE", object);
    let validated = Webhook::ServiceProfile.review(&body).unwrap();
    let answer: Value = serde_json::from_slice(&validated.body).unwrap();
    assert_eq!(answer["response"]["uid"], "4b1c");
    let allowed = answer["response"]["allowed"].as_bool().unwrap();
    assert_eq!(allowed, !matches!(validated.verdict, Verdict::Denied(_)));
    if let Verdict::Denied(message) = &validated.verdict {
        assert_eq!(answer["response"]["status"]["message"], *message);
        assert_eq!(answer["response"]["status"]["code"], 400);
    }
    validated.verdict
}

#[track_caller]
fn denied(verdict: Verdict, expected: &str) {
    match verdict {
        Verdict::Denied(message) => assert!(
            message.contains(expected),
            "{message:?} does not contain {expected:?}"
        ),
        other => panic!("expected a denial containing {expected:?}, got {other:?}"),
    }
}

fn route(condition: Value) -> Value {
    json!({"routes": [{"name": "r", "condition": condition}]})
}

#[test]
fn the_workshop_profile_and_a_full_profile_are_allowed() {
    let todoui = serde_saphyr::from_str::<Value>(include_str!(
        "../../../e2e/fixtures/serviceprofile-todoui.yaml"
    ))
    .unwrap();
    assert_eq!(check_sp(todoui), Verdict::Allowed);
    let full = serde_saphyr::from_str::<Value>(include_str!(
        "../../../e2e/fixtures/serviceprofile-full.yaml"
    ))
    .unwrap();
    assert_eq!(check_sp(full), Verdict::Allowed);
    assert_eq!(sp(json!({})), Verdict::Allowed);
}

#[test]
fn an_unparsable_path_regex_is_denied_with_the_field_and_the_reason() {
    denied(
        sp(route(json!({"pathRegex": "/api/(v1"}))),
        r#"ServiceProfile "todoui.todo.svc.cluster.local": spec.routes[0].condition.pathRegex: invalid regular expression "/api/(v1": unclosed group"#,
    );
    denied(
        sp(route(
            json!({"all": [{"method": "GET"}, {"not": {"pathRegex": "[z-a]"}}]}),
        )),
        "spec.routes[0].condition.all[1].not.pathRegex: invalid regular expression \"[z-a]\"",
    );
    // Go-only syntax the proxy's engine does not take is refused too.
    denied(sp(route(json!({"pathRegex": "/(?P<id"}))), "pathRegex");
}

#[test]
fn bad_timeouts_and_methods_are_denied() {
    let bad =
        json!({"routes": [{"name": "r", "condition": {"method": "GET"}, "timeout": "100 ms"}]});
    denied(
        sp(bad),
        "spec.routes[0].timeout: invalid Go duration \"100 ms\"",
    );
    let bad = json!({"routes": [{"name": "r", "condition": {"method": "GET"}, "timeout": "10"}]});
    denied(sp(bad), "missing unit");
    denied(
        sp(route(json!({"method": "GE T"}))),
        "spec.routes[0].condition.method: \"GE T\" is not an HTTP method",
    );
}

#[test]
fn routes_need_a_name_and_a_condition_with_a_field_set() {
    denied(
        sp(json!({"routes": [{"condition": {"method": "GET"}}]})),
        "spec.routes[0].name: a route must have a name",
    );
    denied(
        sp(json!({"routes": [{"name": "", "condition": {"method": "GET"}}]})),
        "spec.routes[0].name",
    );
    denied(
        sp(json!({"routes": [{"name": "r"}]})),
        "spec.routes[0].condition: a route must have a condition",
    );
    denied(
        sp(route(json!({}))),
        "spec.routes[0].condition: a request match must set one of",
    );
    denied(
        sp(route(json!({"any": [{"not": {}}]}))),
        "spec.routes[0].condition.any[0].not: a request match must set one of",
    );
}

#[test]
fn unknown_fields_and_wrong_types_are_denied() {
    denied(
        sp(route(json!({"pathRegexp": "/"}))),
        "spec.routes[0].condition.pathRegexp: unknown field",
    );
    denied(
        sp(json!({"routes": [], "retryBudgett": {}})),
        "spec.retryBudgett: unknown field",
    );
    denied(
        sp(json!({"routes": {"name": "r"}})),
        "spec.routes: expected a list",
    );
    denied(
        sp(route(json!({"pathRegex": 7}))),
        "pathRegex: expected a string",
    );
    denied(
        sp(
            json!({"routes": [{"name": "r", "condition": {"method": "GET"}, "isRetryable": "yes"}]}),
        ),
        "spec.routes[0].isRetryable: expected true or false",
    );
    denied(
        check_sp(json!({"metadata": {"name": "web"}, "spec": []})),
        "spec: expected an object",
    );
}

#[test]
fn response_classes_need_a_condition_and_an_ordered_status_range() {
    let with_class = |class: Value| json!({"routes": [{"name": "r", "condition": {"method": "GET"}, "responseClasses": [class]}]});
    assert_eq!(
        sp(with_class(
            json!({"condition": {"status": {"min": 500, "max": 599}}, "isFailure": true})
        )),
        Verdict::Allowed
    );
    denied(
        sp(with_class(
            json!({"condition": {"status": {"min": 504, "max": 500}}}),
        )),
        "spec.routes[0].responseClasses[0].condition.status: range maximum 500 is smaller than minimum 504",
    );
    denied(
        sp(with_class(json!({"condition": {"status": {"min": 700}}}))),
        "status.min: 700 is not an HTTP status code",
    );
    denied(
        sp(with_class(json!({"isFailure": true}))),
        "responseClasses[0].condition: a response class must have a condition",
    );
    denied(
        sp(with_class(json!({"condition": {"not": {}}}))),
        "condition.not: a response match must set one of",
    );
    denied(
        sp(with_class(json!({"condition": {"status": {"min": "500"}}}))),
        "status.min: expected an integer",
    );
}

#[test]
fn a_retry_budget_out_of_the_proxys_range_is_denied() {
    let budget = |b: Value| json!({"retryBudget": b});
    assert_eq!(
        sp(budget(
            json!({"retryRatio": 0.2, "minRetriesPerSecond": 10, "ttl": "10s"})
        )),
        Verdict::Allowed
    );
    denied(
        sp(budget(
            json!({"retryRatio": -0.1, "minRetriesPerSecond": 10, "ttl": "10s"}),
        )),
        "spec.retryBudget.retryRatio: -0.1 is out of range",
    );
    denied(
        sp(budget(
            json!({"retryRatio": 1001, "minRetriesPerSecond": 10, "ttl": "10s"}),
        )),
        "retryRatio: 1001 is out of range",
    );
    denied(
        sp(budget(
            json!({"retryRatio": 0.2, "minRetriesPerSecond": -1, "ttl": "10s"}),
        )),
        "minRetriesPerSecond: -1 is out of range",
    );
    denied(
        sp(budget(
            json!({"retryRatio": 0.2, "minRetriesPerSecond": 10}),
        )),
        "spec.retryBudget.ttl: a retry budget must have a TTL",
    );
    denied(
        sp(budget(
            json!({"retryRatio": 0.2, "minRetriesPerSecond": 10, "ttl": "ten"}),
        )),
        "spec.retryBudget.ttl: invalid Go duration \"ten\"",
    );
    denied(
        sp(budget(
            json!({"retryRatio": 0.2, "minRetriesPerSecond": 10, "ttl": "2m"}),
        )),
        "spec.retryBudget.ttl: 2m is out of range (1s to 60s)",
    );
    denied(
        sp(budget(
            json!({"retryRatio": 0.2, "minRetriesPerSecond": 10, "ttl": "500ms"}),
        )),
        "out of range",
    );
}

#[test]
fn dst_overrides_and_opaque_ports_are_checked() {
    assert_eq!(
        sp(
            json!({"dstOverrides": [{"authority": "a.ns.svc.cluster.local:80", "weight": "500m"}, {"authority": "b:80", "weight": 1}], "opaquePorts": ["3306", "4000-4100"]})
        ),
        Verdict::Allowed
    );
    denied(
        sp(json!({"dstOverrides": [{"authority": "", "weight": 1}]})),
        "spec.dstOverrides[0].authority",
    );
    denied(
        sp(json!({"dstOverrides": [{"authority": "a:80", "weight": "-1"}]})),
        "spec.dstOverrides[0].weight: \"-1\" is not a non-negative quantity",
    );
    denied(
        sp(json!({"dstOverrides": [{"authority": "a:80"}]})),
        "spec.dstOverrides[0].weight: an override must have a weight",
    );
    denied(
        sp(json!({"opaquePorts": ["70000"]})),
        "spec.opaquePorts[0]: invalid port \"70000\"",
    );
}

#[test]
fn the_profile_name_must_be_a_dns_subdomain() {
    let mut object = profile(json!({}));
    object["metadata"]["name"] = json!("Todo_UI");
    denied(
        check_sp(object),
        "metadata.name: \"Todo_UI\" is not a DNS-1123 subdomain",
    );
}

#[test]
fn other_kinds_and_operations_are_ignored() {
    let bad = profile(route(json!({"pathRegex": "("})));
    for op in ["DELETE", "CONNECT"] {
        let body = review("linkerd.io", "ServiceProfile", op, bad.clone());
        assert_eq!(
            Webhook::ServiceProfile.review(&body).unwrap().verdict,
            Verdict::Ignored
        );
    }
    let body = review("policy.linkerd.io", "Server", "CREATE", json!({}));
    assert_eq!(
        Webhook::ServiceProfile.review(&body).unwrap().verdict,
        Verdict::Ignored
    );
    let body = review("linkerd.io", "ServiceProfile", "CREATE", bad);
    assert_eq!(
        Webhook::Policy.review(&body).unwrap().verdict,
        Verdict::Ignored
    );
    let body = review("policy.linkerd.io", "Unheard", "CREATE", json!({}));
    assert_eq!(
        Webhook::Policy.review(&body).unwrap().verdict,
        Verdict::Ignored
    );
    // UPDATE is checked like CREATE.
    let body = review(
        "linkerd.io",
        "ServiceProfile",
        "UPDATE",
        profile(route(json!({"pathRegex": "("}))),
    );
    assert!(matches!(
        Webhook::ServiceProfile.review(&body).unwrap().verdict,
        Verdict::Denied(_)
    ));
}

#[test]
fn a_body_that_is_not_a_review_is_an_error() {
    assert!(matches!(
        Webhook::Policy.review(b"{}"),
        Err(ReviewError::Decode(_))
    ));
    let wrong = serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}),
    )
    .unwrap();
    assert!(matches!(
        Webhook::ServiceProfile.review(&wrong),
        Err(ReviewError::Version { .. })
    ));
}

// === policy ===

fn policy(kind: &str, spec: Value) -> Verdict {
    let object = json!({"metadata": {"name": "p", "namespace": "todo"}, "spec": spec});
    let body = review("policy.linkerd.io", kind, "CREATE", object);
    Webhook::Policy.review(&body).unwrap().verdict
}

#[test]
fn a_server_needs_exactly_one_selector_and_a_real_port() {
    let sel = json!({"matchLabels": {"app": "web"}});
    assert_eq!(
        policy("Server", json!({"podSelector": sel, "port": 8080})),
        Verdict::Allowed
    );
    assert_eq!(
        policy(
            "Server",
            json!({"externalWorkloadSelector": sel, "port": "http"})
        ),
        Verdict::Allowed
    );
    denied(
        policy(
            "Server",
            json!({"podSelector": sel, "externalWorkloadSelector": sel, "port": 80}),
        ),
        r#"Server "p": spec: set exactly one of podSelector and externalWorkloadSelector, not both"#,
    );
    denied(
        policy("Server", json!({"port": 80})),
        "spec: set one of podSelector and externalWorkloadSelector",
    );
    denied(
        policy("Server", json!({"podSelector": sel, "port": 0})),
        "spec.port: 0 is not a port number",
    );
    denied(
        policy(
            "Server",
            json!({"podSelector": sel, "port": 80, "accessPolicy": "maybe"}),
        ),
        "spec: unknown variant `maybe`",
    );
}

#[test]
fn an_authorization_policy_targets_enforceable_kinds_with_supported_authentications() {
    let target = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web"});
    let mtls = json!({"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "m"});
    let net = json!({"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": "n"});
    let sa = json!({"kind": "ServiceAccount", "name": "sa"});
    let ap = |target: Value, refs: Value| {
        policy(
            "AuthorizationPolicy",
            json!({"targetRef": target, "requiredAuthenticationRefs": refs}),
        )
    };
    assert_eq!(ap(target.clone(), json!([mtls, net])), Verdict::Allowed);
    assert_eq!(
        ap(json!({"kind": "Namespace", "name": "todo"}), json!([sa])),
        Verdict::Allowed
    );
    assert_eq!(
        ap(
            json!({"group": "gateway.networking.k8s.io", "kind": "GRPCRoute", "name": "g"}),
            json!([])
        ),
        Verdict::Allowed
    );
    denied(
        ap(json!({"kind": "Service", "name": "web"}), json!([])),
        "spec.targetRef: core/Service cannot be targeted",
    );
    denied(
        ap(
            json!({"group": "apps", "kind": "Deployment", "name": "web"}),
            json!([]),
        ),
        "apps/Deployment cannot be targeted",
    );
    denied(
        ap(target.clone(), json!([mtls, mtls])),
        "only one MeshTLSAuthentication may be required",
    );
    denied(
        ap(target.clone(), json!([mtls, sa])),
        "a MeshTLSAuthentication and a ServiceAccount may not be required together",
    );
    denied(
        ap(target.clone(), json!([sa, sa])),
        "only one ServiceAccount",
    );
    denied(
        ap(target.clone(), json!([net, net])),
        "only one NetworkAuthentication",
    );
    denied(
        ap(target, json!([{"kind": "Secret", "name": "s"}])),
        "unsupported authentication kind core/Secret",
    );
}

#[test]
fn meshtls_authentications_name_identities_or_service_accounts_and_namespaces() {
    assert_eq!(
        policy(
            "MeshTLSAuthentication",
            json!({"identities": ["*.todo.serviceaccount.identity.linkerd.cluster.local"]})
        ),
        Verdict::Allowed
    );
    assert_eq!(
        policy(
            "MeshTLSAuthentication",
            json!({"identityRefs": [{"kind": "ServiceAccount", "name": "web"}, {"kind": "Namespace", "name": "todo"}]})
        ),
        Verdict::Allowed
    );
    denied(
        policy("MeshTLSAuthentication", json!({})),
        "spec: set one of identities and identityRefs",
    );
    denied(
        policy(
            "MeshTLSAuthentication",
            json!({"identities": ["a"], "identityRefs": []}),
        ),
        "not both",
    );
    denied(
        policy(
            "MeshTLSAuthentication",
            json!({"identityRefs": [{"kind": "Pod", "name": "web"}]}),
        ),
        "spec.identityRefs[0]: unsupported kind core/Pod",
    );
}

#[test]
fn network_exceptions_must_lie_inside_their_network() {
    let na = |networks: Value| policy("NetworkAuthentication", json!({"networks": networks}));
    assert_eq!(
        na(
            json!([{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.4"]}, {"cidr": "::/0"}])
        ),
        Verdict::Allowed
    );
    denied(na(json!([])), "spec.networks: at least one network");
    denied(
        na(json!([{"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}])),
        "spec.networks[0].except[0]: 192.168.0.0/16 is not inside 10.0.0.0/8",
    );
    denied(
        na(json!([{"cidr": "10.1.0.0/16", "except": ["10.0.0.0/8"]}])),
        "10.0.0.0/8 excludes all of 10.1.0.0/16",
    );
    denied(
        na(json!([{"cidr": "10.0.0.0/40"}])),
        "spec.networks[0].cidr: \"10.0.0.0/40\" has an invalid prefix length",
    );
    assert_eq!(
        policy(
            "EgressNetwork",
            json!({"trafficPolicy": "Allow", "networks": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}]})
        ),
        Verdict::Allowed
    );
    denied(
        policy(
            "EgressNetwork",
            json!({"trafficPolicy": "Allow", "networks": [{"cidr": "1.2.3.0/24", "except": ["::1"]}]}),
        ),
        "is not inside",
    );
}

#[test]
fn server_authorizations_are_consistent() {
    let server = json!({"name": "web"});
    let saz = |client: Value| {
        policy(
            "ServerAuthorization",
            json!({"server": server, "client": client}),
        )
    };
    assert_eq!(
        saz(json!({"meshTLS": {"serviceAccounts": [{"name": "web"}]}})),
        Verdict::Allowed
    );
    assert_eq!(
        saz(json!({"unauthenticated": true, "networks": [{"cidr": "10.0.0.0/8"}]})),
        Verdict::Allowed
    );
    denied(
        saz(json!({"unauthenticated": true, "meshTLS": {"unauthenticatedTLS": true}})),
        "spec.client: unauthenticated must be false when meshTLS is set",
    );
    denied(
        saz(json!({"meshTLS": {"unauthenticatedTLS": true, "identities": ["a"]}})),
        "unauthenticatedTLS must be false when identities or serviceAccounts are set",
    );
    denied(
        saz(json!({})),
        "spec.client: set meshTLS or unauthenticated: true",
    );
    denied(
        policy(
            "ServerAuthorization",
            json!({"server": {"name": "a", "selector": {}}, "client": {"unauthenticated": true}}),
        ),
        "spec.server: set exactly one of name and selector",
    );
}

#[test]
fn http_routes_have_one_kind_of_parent_and_usable_regexes_and_timeouts() {
    let server = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web"});
    let service = json!({"group": "core", "kind": "Service", "name": "web", "port": 80});
    let svc = json!({"group": "", "kind": "Service", "name": "web", "port": 80});
    let route = |parents: Value, rules: Value| {
        policy("HTTPRoute", json!({"parentRefs": parents, "rules": rules}))
    };
    assert_eq!(route(json!([server]), json!([])), Verdict::Allowed);
    assert_eq!(
        route(
            json!([svc]),
            json!([{"matches": [{"path": {"type": "RegularExpression", "value": "/api/.*"}}], "timeouts": {"request": "10s", "backendRequest": "2s"}}])
        ),
        Verdict::Allowed
    );
    denied(
        route(json!([server, svc]), json!([])),
        "spec.parentRefs: a route is either inbound",
    );
    denied(
        route(json!([{"name": "gw"}]), json!([])),
        "spec.parentRefs[0]: gateway.networking.k8s.io/Gateway cannot be a parent",
    );
    assert_eq!(route(json!([service]), json!([])), Verdict::Allowed);
    assert_eq!(
        route(json!([{"kind": "Service", "name": "web"}]), json!([])),
        Verdict::Allowed
    );
    denied(
        route(
            json!([{"group": "apps", "kind": "Service", "name": "web"}]),
            json!([]),
        ),
        "spec.parentRefs[0]: apps/Service cannot be a parent",
    );
    denied(
        route(
            json!([svc]),
            json!([{"matches": [{"path": {"type": "RegularExpression", "value": "/api/(("}}]}]),
        ),
        "spec.rules[0].matches[0].path.value: invalid regular expression \"/api/((\"",
    );
    denied(
        route(
            json!([svc]),
            json!([{"timeouts": {"request": "1s", "backendRequest": "2s"}}]),
        ),
        "spec.rules[0].timeouts: backendRequest (2s) cannot be longer than request (1s)",
    );
    assert_eq!(
        route(
            json!([svc]),
            json!([{"timeouts": {"request": "0s", "backendRequest": "2s"}}])
        ),
        Verdict::Allowed
    );
}

#[test]
fn rate_limits_target_servers_and_override_service_accounts() {
    let server = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web"});
    let rl = |target: Value, overrides: Value| {
        policy(
            "HTTPLocalRateLimitPolicy",
            json!({"targetRef": target, "total": {"requestsPerSecond": 100}, "overrides": overrides}),
        )
    };
    assert_eq!(
        rl(
            server.clone(),
            json!([{"requestsPerSecond": 10, "clientRefs": [{"kind": "ServiceAccount", "name": "a"}]}])
        ),
        Verdict::Allowed
    );
    denied(
        rl(json!({"kind": "Service", "name": "web"}), json!([])),
        "spec.targetRef: core/Service cannot be rate limited",
    );
    denied(
        rl(
            server,
            json!([{"requestsPerSecond": 10, "clientRefs": [{"kind": "Namespace", "name": "a"}]}]),
        ),
        "spec.overrides[0].clientRefs[0]: unsupported kind core/Namespace",
    );
}

#[test]
fn rate_limits_per_identity_and_client_stay_within_the_total() {
    let server = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web"});
    let sa = json!([{"kind": "ServiceAccount", "name": "a"}]);
    let rl = |spec: Value| {
        let mut spec = spec;
        spec["targetRef"] = server.clone();
        policy("HTTPLocalRateLimitPolicy", spec)
    };
    assert_eq!(
        rl(
            json!({"total": {"requestsPerSecond": 100}, "identity": {"requestsPerSecond": 100},
                  "overrides": [{"requestsPerSecond": 100, "clientRefs": sa}]})
        ),
        Verdict::Allowed,
        "equal to the total"
    );
    assert_eq!(
        rl(json!({"identity": {"requestsPerSecond": 500},
                  "overrides": [{"requestsPerSecond": 900, "clientRefs": sa}]})),
        Verdict::Allowed,
        "no total to exceed"
    );
    denied(
        rl(json!({"total": {"requestsPerSecond": 100}, "identity": {"requestsPerSecond": 101}})),
        "spec.identity.requestsPerSecond (101) cannot be greater than spec.total.requestsPerSecond (100)",
    );
    denied(
        rl(json!({"total": {"requestsPerSecond": 100},
                  "overrides": [{"requestsPerSecond": 10, "clientRefs": sa},
                                {"requestsPerSecond": 200, "clientRefs": sa}]})),
        "spec.overrides[1].requestsPerSecond (200) cannot be greater than spec.total.requestsPerSecond (100)",
    );
}

/// A cluster holding only the Servers of namespace `todo`, and counting its lookups.
struct WithServers {
    servers: Vec<oxlink_crds::policy::Server>,
    lookups: std::sync::atomic::AtomicUsize,
}

impl Cluster for WithServers {
    fn namespace_annotations<'a>(
        &'a self,
        _: &'a str,
    ) -> admission::BoxFuture<
        'a,
        Result<std::collections::BTreeMap<String, String>, admission::LookupError>,
    > {
        unreachable!("the validator looks up no namespace")
    }

    fn owner<'a>(
        &'a self,
        _: &'a str,
        _: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> admission::BoxFuture<'a, Result<crate::inject::Owner, admission::LookupError>> {
        unreachable!("the validator looks up no owner")
    }

    fn servers<'a>(
        &'a self,
        namespace: &'a str,
    ) -> admission::BoxFuture<'a, Result<Vec<oxlink_crds::policy::Server>, admission::LookupError>>
    {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let servers = match namespace {
            "todo" => self.servers.clone(),
            "broken" => {
                return Box::pin(async { Err(admission::LookupError("forbidden".into())) });
            }
            _ => Vec::new(),
        };
        Box::pin(async move { Ok(servers) })
    }
}

fn server(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "policy.linkerd.io/v1beta3",
        "kind": "Server",
        "metadata": {"name": name, "namespace": "todo"},
        "spec": spec,
    })
}

fn cluster_with(servers: &[Value]) -> WithServers {
    WithServers {
        servers: servers
            .iter()
            .map(|s| serde_json::from_value(s.clone()).unwrap())
            .collect(),
        lookups: Default::default(),
    }
}

/// The verdict of the policy webhook, with `cluster`, on `operation` of Server `object`.
fn server_in(cluster: &WithServers, operation: &str, object: Value) -> Verdict {
    let body = review("policy.linkerd.io", "Server", operation, object);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let validated = runtime
        .block_on(Webhook::Policy.review_in(&body, cluster))
        .unwrap();
    let answer: Value = serde_json::from_slice(&validated.body).unwrap();
    if let Verdict::Denied(message) = &validated.verdict {
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["message"], *message);
    } else {
        assert_eq!(answer["response"]["allowed"], true);
    }
    validated.verdict
}

const OVERLAP: &str = "Server spec 'todo/web-http' already defines a policy for port 8080, and \
                       selects pods that would be selected by this Server";

#[test]
fn a_server_overlapping_another_on_the_same_port_is_refused_with_linkerds_message() {
    let web = json!({"matchLabels": {"app": "web"}});
    let existing = server("web-http", json!({"podSelector": web, "port": 8080}));
    let cluster = cluster_with(std::slice::from_ref(&existing));
    // The same selector and port: Linkerd's message, exactly.
    assert_eq!(
        server_in(
            &cluster,
            "CREATE",
            server("web-too", json!({"podSelector": web, "port": 8080}))
        ),
        Verdict::Denied(OVERLAP.into())
    );
    // A selector of everything overlaps any other, either way round.
    for selector in [json!({}), json!({"matchLabels": {}})] {
        assert_eq!(
            server_in(
                &cluster,
                "CREATE",
                server("all", json!({"podSelector": selector, "port": 8080}))
            ),
            Verdict::Denied(OVERLAP.into())
        );
    }
    let everything = cluster_with(&[server("web-http", json!({"podSelector": {}, "port": 8080}))]);
    assert_eq!(
        server_in(
            &everything,
            "CREATE",
            server(
                "db",
                json!({"podSelector": {"matchLabels": {"app": "db"}}, "port": 8080})
            )
        ),
        Verdict::Denied(OVERLAP.into())
    );
    // What does not overlap, as Linkerd judges it: another port, the same port spelled as a
    // name, other labels, ExternalWorkloads against pods; and the Server itself on an update.
    for (name, spec) in [
        ("web-admin", json!({"podSelector": web, "port": 9990})),
        ("web-named", json!({"podSelector": web, "port": "http"})),
        (
            "db",
            json!({"podSelector": {"matchLabels": {"app": "db"}}, "port": 8080}),
        ),
        ("vms", json!({"externalWorkloadSelector": {}, "port": 8080})),
        ("web-http", json!({"podSelector": {}, "port": 8080})),
    ] {
        assert_eq!(
            server_in(&cluster, "UPDATE", server(name, spec)),
            Verdict::Allowed,
            "{name}"
        );
    }
    // ExternalWorkload selectors overlap among themselves the same way.
    let vms = cluster_with(&[server(
        "web-http",
        json!({"externalWorkloadSelector": {"matchLabels": {"app": "vm"}}, "port": 8080}),
    )]);
    assert_eq!(
        server_in(
            &vms,
            "CREATE",
            server("vms", json!({"externalWorkloadSelector": {}, "port": 8080}))
        ),
        Verdict::Denied(OVERLAP.into())
    );
}

#[test]
fn the_overlap_lookup_is_made_only_for_valid_servers_and_a_failed_one_denies() {
    let cluster = cluster_with(&[]);
    // Invalid on its own: denied without a lookup.
    denied(
        server_in(&cluster, "CREATE", server("web", json!({"port": 8080}))),
        "set one of podSelector and externalWorkloadSelector",
    );
    // Other kinds are not looked up either.
    let body = review(
        "policy.linkerd.io",
        "NetworkAuthentication",
        "CREATE",
        json!({"metadata": {"name": "n"}, "spec": {"networks": [{"cidr": "10.0.0.0/8"}]}}),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let validated = runtime
        .block_on(Webhook::Policy.review_in(&body, &cluster))
        .unwrap();
    assert_eq!(validated.verdict, Verdict::Allowed);
    assert_eq!(
        cluster.lookups.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // A valid Server is looked up in its namespace; when the lookup fails, it is denied.
    let mut broken = server("web", json!({"podSelector": {}, "port": 8080}));
    broken["metadata"]["namespace"] = json!("broken");
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "4b1c",
            "kind": {"group": "policy.linkerd.io", "version": "v1beta3", "kind": "Server"},
            "resource": {"group": "policy.linkerd.io", "version": "v1beta3", "resource": "servers"},
            "namespace": "broken",
            "operation": "CREATE",
            "object": broken,
        }
    }))
    .unwrap();
    let validated = runtime
        .block_on(Webhook::Policy.review_in(&body, &cluster))
        .unwrap();
    denied(validated.verdict, "Server \"web\": forbidden");
    assert_eq!(
        cluster.lookups.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
