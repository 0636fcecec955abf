use super::{
    cidr::{Networks, parse_cidr},
    control_plane::{
        control_plane_pods_ready, ha_checks, missing, replica_set_failures, unschedulable_pods,
    },
    identity::{
        IdentityMaterial, expiring_soon, identity_checks, identity_material, validity,
        webhook_cert, webhook_cert_lasting,
    },
    metadata,
    proxies::{
        CLI_VERSION, control_plane_proxy, control_plane_version, proxies_match_cli, proxies_ready,
        proxies_trust_roots, proxies_up_to_date, proxy_version, versions_match,
    },
    report::{Category, Outcome, Output, Verdict, render, success},
};
use crate::algorithm;
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::{Namespace, Node, Pod, Secret, Service, ServiceAccount},
    },
};
use oxlink_crds::names::{annotations, control_plane as cp, env, labels, proxy};
use oxlink_inject::Values;
use oxlink_proxy_injector::cert::SelfManagedCert;
use oxlink_tls::{ChainSummary, generate};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn sample(fail: bool) -> Vec<Category> {
    vec![
        Category::new(
            "kubernetes-api",
            vec![
                Outcome::new("can initialize the client", "k8s-api", Ok(())),
                Outcome::new("can query the Kubernetes API", "k8s-api", Ok(())),
            ],
        ),
        Category::new(
            "linkerd-identity",
            vec![
                Outcome::new(
                    "certificate config is valid",
                    "l5d-identity-cert-config-valid",
                    Ok(()),
                ),
                Outcome::new(
                    "issuer cert is valid for at least 60 days",
                    "l5d-identity-issuer-cert-not-expiring-soon",
                    Err("issuer certificate will expire on 2027-01-01T00:00:00Z".into()),
                )
                .warn_only(),
                Outcome::new(
                    "issuer cert is issued by the trust anchor",
                    "l5d-identity-issuer-cert-issued-by-trust-anchor",
                    if fail {
                        Err("untrusted".into())
                    } else {
                        Ok(())
                    },
                ),
                Outcome::skipped("not shown", "nowhere", "does not apply"),
            ],
        ),
        Category::new(
            "linkerd-version",
            vec![Outcome::skipped(
                "cli is up-to-date",
                "l5d-version-cli",
                "offline",
            )],
        ),
    ]
}

fn rendered(categories: &[Category], output: Output) -> String {
    let mut out = Vec::new();
    render(categories, output, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

// === report ===

#[test]
fn table_is_linkerds_layout() {
    assert_eq!(
        rendered(&sample(false), Output::Table),
        "kubernetes-api\n\
         --------------\n\
         √ can initialize the client\n\
         √ can query the Kubernetes API\n\
         \n\
         linkerd-identity\n\
         ----------------\n\
         √ certificate config is valid\n\
         ‼ issuer cert is valid for at least 60 days\n\
         \x20   issuer certificate will expire on 2027-01-01T00:00:00Z\n\
         \x20   see https://linkerd.io/2/checks/#l5d-identity-issuer-cert-not-expiring-soon for hints\n\
         √ issuer cert is issued by the trust anchor\n\
         \n\
         Status check results are √\n"
    );
}

#[test]
fn warnings_pass_errors_fail() {
    assert!(success(&sample(false)));
    assert!(!success(&sample(true)));
    let table = rendered(&sample(true), Output::Table);
    assert!(
        table.contains(
            "× issuer cert is issued by the trust anchor\n    untrusted\n    \
             see https://linkerd.io/2/checks/#l5d-identity-issuer-cert-issued-by-trust-anchor for hints\n"
        ),
        "{table}"
    );
    assert!(table.ends_with("Status check results are ×\n"), "{table}");
}

#[test]
fn short_shows_only_problems() {
    let short = rendered(&sample(true), Output::Short);
    assert!(!short.contains("kubernetes-api"), "{short}");
    assert!(!short.contains("√ certificate config is valid"), "{short}");
    assert!(short.contains("‼ issuer cert is valid for at least 60 days"));
    assert!(short.contains("× issuer cert is issued by the trust anchor"));
}

#[test]
fn json_is_linkerds_shape() {
    let doc: Value = serde_json::from_str(&rendered(&sample(true), Output::Json)).unwrap();
    assert_eq!(doc["success"], false);
    assert_eq!(doc["warning"], true);
    let categories = doc["categories"].as_array().unwrap();
    assert_eq!(categories.len(), 2, "an all-skipped category is left out");
    assert_eq!(categories[0]["categoryName"], "kubernetes-api");
    assert_eq!(
        categories[0]["checks"][0],
        json!({"description": "can initialize the client", "result": "success"})
    );
    let checks = categories[1]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "skipped checks are left out");
    assert_eq!(
        checks[2],
        json!({
            "description": "issuer cert is issued by the trust anchor",
            "result": "error",
            "error": "untrusted",
            "hint": "https://linkerd.io/2/checks/#l5d-identity-issuer-cert-issued-by-trust-anchor",
        })
    );
    assert_eq!(checks[1]["result"], "warning");
}

#[test]
fn a_fatal_failure_ends_the_category_and_a_warning_stays_a_warning() {
    let mut category = Category::new(
        "c",
        vec![
            Outcome::new("a", "x", Ok(())).fatal(),
            Outcome::new("b", "x", Err("e".into())).warn_only().fatal(),
            Outcome::new("c", "x", Err("e".into())).fatal(),
            Outcome::new("d", "x", Ok(())),
        ],
    );
    assert!(category.stop_at_fatal());
    assert_eq!(
        category
            .checks
            .iter()
            .map(|o| o.description)
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(!Category::new("c", vec![Outcome::new("a", "x", Ok(())).fatal()]).stop_at_fatal());
    let o = Outcome::new("x", "h", Err("e".into())).warn_only();
    assert_eq!(o.result, Verdict::Warning("e".into()));
    assert_eq!(
        Outcome::new("x", "a", Ok(())).warn_only().result,
        Verdict::Success
    );
}

// === identity ===

fn summary(not_before: SystemTime, not_after: SystemTime) -> ChainSummary {
    ChainSummary {
        subject: "CN=root.linkerd.cluster.local".into(),
        issuer: "CN=root.linkerd.cluster.local".into(),
        dns_names: vec![],
        not_before,
        not_after,
        is_ca: true,
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn validity_and_expiry_read_as_linkerds() {
    // 2026-11-26T00:00:00Z
    let now = at(1_795_651_200);
    let cert = summary(now - DAY, now + 30 * DAY);
    assert_eq!(validity(&cert, now), Ok(()));
    assert_eq!(
        expiring_soon(&cert, now),
        Err("will expire on 2026-12-26T00:00:00Z".into())
    );
    assert_eq!(expiring_soon(&summary(now, now + 61 * DAY), now), Ok(()));
    assert_eq!(
        validity(&cert, now + 31 * DAY),
        Err("not valid anymore. Expired on 2026-12-26T00:00:00Z".into())
    );
    assert_eq!(
        validity(&cert, now - 2 * DAY),
        Err("not valid before: 2026-11-25T00:00:00Z".into())
    );
}

fn material(anchor_days: u32, issuer_days: u32, now: SystemTime) -> IdentityMaterial {
    IdentityMaterial {
        anchors: vec![summary(now - DAY, now + anchor_days * DAY)],
        anchors_algorithm: Ok(()),
        issuer_algorithm: Ok(()),
        issuer: ChainSummary {
            subject: "CN=identity.linkerd.cluster.local".into(),
            ..summary(now - DAY, now + issuer_days * DAY)
        },
        issued_by_anchor: Ok(()),
    }
}

fn result_of<'a>(checks: &'a [Outcome], description: &str) -> &'a Verdict {
    &checks
        .iter()
        .find(|o| o.description == description)
        .unwrap_or_else(|| panic!("no check {description} in {checks:#?}"))
        .result
}

#[test]
fn an_issuer_expiring_within_60_days_is_a_warning() {
    let now = at(1_795_651_200);
    let checks = identity_checks(Ok(material(365, 59, now)), now);
    assert_eq!(
        result_of(&checks, "issuer cert is valid for at least 60 days"),
        &Verdict::Warning("issuer certificate will expire on 2027-01-24T00:00:00Z".into())
    );
    assert_eq!(
        result_of(&checks, "issuer cert is within its validity period"),
        &Verdict::Success
    );
    assert_eq!(
        result_of(&checks, "trust anchors are valid for at least 60 days"),
        &Verdict::Success
    );
    let checks = identity_checks(Ok(material(365, 365, now)), now);
    assert!(
        checks.iter().all(|o| o.result == Verdict::Success),
        "{checks:#?}"
    );
}

#[test]
fn an_anchor_expiring_within_60_days_is_a_warning_and_an_expired_one_an_error() {
    let now = at(1_795_651_200);
    let checks = identity_checks(Ok(material(10, 5, now)), now);
    assert_eq!(
        result_of(&checks, "trust anchors are valid for at least 60 days"),
        &Verdict::Warning(
            "Anchors expiring soon:\n\t* CN=root.linkerd.cluster.local will expire on 2026-12-06T00:00:00Z"
                .into()
        )
    );
    let later = now + 11 * DAY;
    let checks = identity_checks(Ok(material(10, 5, now)), later);
    assert_eq!(
        result_of(&checks, "trust anchors are within their validity period"),
        &Verdict::Error(
            "Invalid anchors:\n\t* CN=root.linkerd.cluster.local not valid anymore. Expired on 2026-12-06T00:00:00Z"
                .into()
        )
    );
    assert_eq!(
        result_of(&checks, "issuer cert is within its validity period"),
        &Verdict::Error(
            "issuer certificate is not valid anymore. Expired on 2026-12-01T00:00:00Z".into()
        )
    );
}

#[test]
fn unreadable_identity_config_is_one_fatal_failure() {
    let checks = identity_checks(
        Err("secrets \"linkerd-identity-issuer\" not found".into()),
        at(0),
    );
    assert_eq!(checks.len(), 1);
    assert!(checks[0].fatal);
    assert_eq!(
        checks[0].result,
        Verdict::Error("secrets \"linkerd-identity-issuer\" not found".into())
    );
}

fn issuer_secret(crt: &str, key: &str, keys: (&str, &str)) -> Secret {
    Secret {
        data: Some(
            [
                (keys.0.to_string(), ByteString(crt.as_bytes().to_vec())),
                (keys.1.to_string(), ByteString(key.as_bytes().to_vec())),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

#[test]
fn the_issuer_must_chain_to_the_trust_roots_in_either_secret_scheme() {
    let now = SystemTime::now();
    let anchor = generate::trust_anchor("root.linkerd.cluster.local", 365 * DAY, now).unwrap();
    let issuer =
        generate::issuer(&anchor, "identity.linkerd.cluster.local", 30 * DAY, now).unwrap();
    for keys in [
        (cp::ISSUER_CRT_KEY, cp::ISSUER_KEY_KEY),
        (cp::TLS_CRT_KEY, cp::TLS_KEY_KEY),
    ] {
        let secret = issuer_secret(&issuer.crt_pem, &issuer.key_pem, keys);
        let m = identity_material(&anchor.crt_pem, &secret).unwrap();
        assert_eq!(m.issued_by_anchor, Ok(()));
        assert_eq!(m.anchors_algorithm, Ok(()));
        assert_eq!(m.issuer_algorithm, Ok(()));
        assert_eq!(m.anchors.len(), 1);
        assert!(m.issuer.subject.contains("identity.linkerd.cluster.local"));
    }
    let other = generate::trust_anchor("other", 365 * DAY, now).unwrap();
    let secret = issuer_secret(
        &issuer.crt_pem,
        &issuer.key_pem,
        (cp::ISSUER_CRT_KEY, cp::ISSUER_KEY_KEY),
    );
    let m = identity_material(&other.crt_pem, &secret).unwrap();
    assert!(m.issued_by_anchor.is_err());
    // An RSA trust anchor is fine; the list names what is not.
    let m = identity_material(RSA_2048_CRT, &secret).unwrap();
    assert_eq!(m.anchors_algorithm, Ok(()));

    let broken = issuer_secret("nope", &issuer.key_pem, ("other", "keys"));
    let e = identity_material(&anchor.crt_pem, &broken).err().unwrap();
    assert_eq!(
        e,
        "key tls.crt needs to exist in secret linkerd-identity-issuer"
    );
    assert!(identity_material("not pem", &secret).is_err());
}

// === webhooks ===

#[test]
fn the_injector_cert_must_match_the_webhook_ca_bundle_and_name() {
    let now = SystemTime::now();
    let minting = SelfManagedCert::for_service(
        "linkerd",
        cp::PROXY_INJECTOR_SERVICE,
        cp::PROXY_INJECTOR_WEBHOOK_CONFIG,
    );
    let pem = minting.mint(now).unwrap();
    let crt = pem.crt.as_bytes();
    let name = "linkerd-proxy-injector.linkerd.svc";
    assert_eq!(webhook_cert(crt, crt, name, now), Ok(()));
    assert_eq!(webhook_cert_lasting(crt, now), Ok(()));

    let e = webhook_cert(crt, crt, "linkerd-proxy-injector.other.svc", now).unwrap_err();
    assert_eq!(
        e,
        "cert is not issued by the trust anchor: x509: certificate is valid for \
         linkerd-proxy-injector.linkerd.svc, linkerd-sp-validator.linkerd.svc, \
         linkerd-policy-validator.linkerd.svc, not linkerd-proxy-injector.other.svc"
    );
    let stale = minting.mint(now).unwrap();
    let e = webhook_cert(stale.crt.as_bytes(), crt, name, now).unwrap_err();
    assert!(
        e.starts_with("cert is not issued by the trust anchor: "),
        "{e}"
    );

    let later = now + 366 * DAY;
    let e = webhook_cert(crt, crt, name, later).unwrap_err();
    assert!(
        e.starts_with("anchors not within their validity period:\n\t* "),
        "{e}"
    );
    let e = webhook_cert_lasting(crt, now + 320 * DAY).unwrap_err();
    assert!(e.starts_with("certificate will expire on "), "{e}");
    assert!(webhook_cert(b"", crt, name, now).is_err());
}

// === control plane objects ===

fn object<T: k8s_openapi::serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn mk_pod(name: &str, phase: &str, ready: bool) -> Pod {
    object(json!({
        "metadata": {"name": name, "namespace": "linkerd"},
        "spec": {"containers": [{"name": "main", "image": "x"}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{
                "name": "main", "ready": ready, "restartCount": 0, "image": "x", "imageID": "x",
            }],
        },
    }))
}

fn mk_named<T: k8s_openapi::serde::de::DeserializeOwned>(name: &str) -> T {
    object(json!({"metadata": {"name": name}}))
}

#[test]
fn control_plane_pods_must_exist_run_and_be_ready() {
    let deployments: Vec<Deployment> = [
        "linkerd-destination",
        "linkerd-identity",
        "linkerd-proxy-injector",
    ]
    .into_iter()
    .map(mk_named)
    .collect();
    let pods = vec![
        mk_pod("linkerd-destination-6f9d-abcde", "Running", true),
        mk_pod("linkerd-identity-5c7b-fghij", "Running", true),
        mk_pod("linkerd-proxy-injector-7d8e-klmno", "Running", true),
    ];
    assert_eq!(control_plane_pods_ready(&deployments, &pods), Ok(()));
    assert_eq!(
        control_plane_pods_ready(&deployments[..2], &pods),
        Err("No running pods for \"linkerd-proxy-injector\"".into())
    );
    let mut unready = pods.clone();
    unready[1] = mk_pod("linkerd-identity-5c7b-fghij", "Running", false);
    assert_eq!(
        control_plane_pods_ready(&deployments, &unready),
        Err("pod/linkerd-identity-5c7b-fghij container main is not ready".into())
    );
    unready[1] = mk_pod("linkerd-identity-5c7b-fghij", "Pending", false);
    assert_eq!(
        control_plane_pods_ready(&deployments, &unready),
        Err("No running pods for \"linkerd-identity\"".into())
    );
    // A pod of another Deployment whose name merely starts the same does not count.
    unready[1] = mk_pod("linkerd-identity-extra-5c7b-fghij", "Running", true);
    assert!(control_plane_pods_ready(&deployments, &unready).is_err());
}

#[test]
fn missing_objects_are_named_as_linkerd_does() {
    let found: Vec<ServiceAccount> = vec![mk_named("linkerd-identity"), mk_named("unrelated")];
    assert_eq!(
        missing(
            "ServiceAccounts",
            &found,
            [
                "linkerd-proxy-injector",
                "linkerd-identity",
                "linkerd-destination"
            ]
        ),
        Err("missing ServiceAccounts: linkerd-destination, linkerd-proxy-injector".into())
    );
    assert_eq!(
        missing("ServiceAccounts", &found, ["linkerd-identity"]),
        Ok(())
    );
}

#[test]
fn replica_failures_and_unschedulable_pods_are_reported() {
    let rs: ReplicaSet = object(json!({
        "metadata": {"name": "linkerd-identity-5c7b"},
        "status": {"replicas": 0, "conditions": [{
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"x\" is forbidden",
        }]},
    }));
    assert_eq!(
        replica_set_failures(&[rs]),
        Err("FailedCreate: pods \"x\" is forbidden".into())
    );
    assert_eq!(replica_set_failures(&[mk_named("fine")]), Ok(()));
    let pod: Pod = object(json!({
        "metadata": {"name": "p"},
        "status": {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available",
        }]},
    }));
    assert_eq!(
        unschedulable_pods(&[pod]),
        Err("p: 0/1 nodes are available".into())
    );
}

// === cluster networks ===

#[test]
fn cluster_networks_cover_pods_services_and_node_cidrs() {
    let networks = Networks::parse("10.0.0.0/8,fd00::/8").unwrap();
    assert_eq!(
        Networks::parse("10.0.0.0/8,nope").unwrap_err(),
        "invalid CIDR address: nope"
    );
    assert!(parse_cidr("10.0.0.0/33").is_err());
    let node = |cidr: &str| -> Node {
        object(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": cidr}}))
    };
    assert_eq!(
        networks.uncovered_pod_cidrs(&[node("10.244.0.0/24")]),
        Some(Ok(()))
    );
    assert_eq!(
        networks.uncovered_pod_cidrs(&[node("192.168.0.0/16"), node("10.0.0.0/7")]),
        Some(Err(
            "node has podCIDR(s) [10.0.0.0/7 192.168.0.0/16] which are not contained in the \
             Linkerd clusterNetworks.\n\tTry installing linkerd via --set \
             clusterNetworks=\"10.0.0.0/7\\,192.168.0.0/16\""
                .into()
        ))
    );
    assert_eq!(networks.uncovered_pod_cidrs(&[mk_named("n")]), None);

    let pod = |ip: &str| -> Pod {
        object(json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"podIP": ip}}))
    };
    assert_eq!(
        networks.uncovered_pods(&[pod("10.1.2.3"), pod("fd00::5")]),
        Ok(())
    );
    assert_eq!(
        networks.uncovered_pods(&[pod("172.16.0.1")]),
        Err("the Linkerd clusterNetworks [\"10.0.0.0/8,fd00::/8\"] do not include pod ns/p (172.16.0.1)".into())
    );
    let svc = |ip: &str| -> Service {
        object(json!({"metadata": {"name": "s", "namespace": "ns"}, "spec": {"clusterIP": ip}}))
    };
    assert_eq!(
        networks.uncovered_services(&[svc("None"), svc("10.96.0.1")]),
        Ok(())
    );
    assert!(networks.uncovered_services(&[svc("192.168.1.1")]).is_err());
}

// === proxies and versions ===

fn mk_proxied(name: &str, anchors: &str, version: Option<&str>, ready: bool) -> Pod {
    let mut annotations = serde_json::Map::new();
    if let Some(v) = version {
        annotations.insert(annotations::PROXY_VERSION.into(), json!(v));
    }
    object(json!({
        "metadata": {
            "name": name,
            "namespace": "app",
            "labels": {labels::CONTROL_PLANE_NS: "linkerd"},
            "annotations": annotations,
        },
        "spec": {
            "initContainers": [{
                "name": proxy::PROXY_CONTAINER,
                "image": "cr.l5d.io/linkerd/proxy:edge-1.0",
                "restartPolicy": "Always",
                "env": [{"name": env::IDENTITY_TRUST_ANCHORS, "value": anchors}],
            }],
            "containers": [{"name": "app", "image": "app"}],
        },
        "status": {
            "phase": "Running",
            "initContainerStatuses": [{
                "name": proxy::PROXY_CONTAINER, "ready": ready, "restartCount": 0,
                "image": "x", "imageID": "x",
            }],
        },
    }))
}

#[test]
fn data_plane_proxies_must_be_running_and_ready() {
    assert_eq!(
        proxies_ready(&[], Some("app")),
        Err("no \"linkerd-proxy\" containers found in the \"app\" namespace".into())
    );
    assert_eq!(
        proxies_ready(&[], None),
        Err("no \"linkerd-proxy\" containers found".into())
    );
    let ok = mk_proxied("web-1", "A", None, true);
    assert_eq!(proxies_ready(std::slice::from_ref(&ok), None), Ok(()));
    assert_eq!(
        proxies_ready(&[ok.clone(), mk_proxied("web-2", "A", None, false)], None),
        Err("container \"linkerd-proxy\" in pod \"web-2\" is not ready".into())
    );
    let mut pending = ok.clone();
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    assert_eq!(
        proxies_ready(&[pending], None),
        Err("pod \"web-1\" status is Pending".into())
    );
}

#[test]
fn proxy_versions_come_from_the_annotation_or_the_image() {
    assert_eq!(
        proxy_version(&mk_proxied("p", "A", Some("edge-2.0"), true)).as_deref(),
        Some("edge-2.0")
    );
    let pod = mk_proxied("p", "A", None, true);
    assert_eq!(proxy_version(&pod).as_deref(), Some("edge-1.0"));
    assert_eq!(
        proxies_up_to_date(std::slice::from_ref(&pod), "edge-1.0"),
        Ok(())
    );
    assert_eq!(
        proxies_up_to_date(&[pod], "edge-2.0"),
        Err("some proxies are not running the current version:\n\t* p (edge-1.0)".into())
    );
    let current = mk_proxied("p", "A", Some(CLI_VERSION), true);
    assert_eq!(proxies_match_cli(&[current]), Ok(()));
    assert_eq!(
        proxies_match_cli(&[mk_proxied("p", "A", Some("edge-0.1"), true)]),
        Err(format!("p running edge-0.1 but cli running {CLI_VERSION}"))
    );
    let mut values = Values {
        linkerd_version: "edge-3".into(),
        ..Values::default()
    };
    assert_eq!(values.proxy_version(), "edge-3");
    values.proxy.image.version = "edge-4".into();
    assert_eq!(values.proxy_version(), "edge-4");
}

#[test]
fn proxies_must_carry_the_current_trust_roots() {
    let roots = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n";
    let good = mk_proxied("good", roots.trim(), None, true);
    let stale = mk_proxied("stale", "old", None, true);
    assert_eq!(
        proxies_trust_roots(std::slice::from_ref(&good), roots, "linkerd", false),
        Ok(())
    );
    assert_eq!(
        proxies_trust_roots(&[good.clone(), stale.clone()], roots, "linkerd", false),
        Err(
            "Some pods do not have the current trust bundle and must be restarted:\n\t* stale"
                .into()
        )
    );
    assert_eq!(
        proxies_trust_roots(std::slice::from_ref(&stale), roots, "linkerd", true),
        Err(
            "Some pods do not have the current trust bundle and must be restarted:\n\t* app/stale"
                .into()
        )
    );
    // Control-plane pods read the ConfigMap themselves.
    assert_eq!(proxies_trust_roots(&[stale], roots, "app", true), Ok(()));
}

#[test]
fn the_control_plane_proxy_checks_are_skipped_without_proxies() {
    let values = Ok(Values::default());
    let category = control_plane_proxy(&[mk_pod("linkerd-identity-1-2", "Running", true)], &values);
    assert_eq!(category.name, "linkerd-control-plane-proxy");
    assert_eq!(category.checks.len(), 3);
    assert!(
        category.checks.iter().all(|o| o.result
            == Verdict::Skipped("the oxlink control plane runs without proxies".into()))
    );
    // A control plane behind sidecars gets them checked.
    let category = control_plane_proxy(
        &[mk_proxied("linkerd-identity-1-2", "A", None, false)],
        &values,
    );
    assert_eq!(
        category.checks[0].result,
        Verdict::Error(
            "container \"linkerd-proxy\" in pod \"linkerd-identity-1-2\" is not ready".into()
        )
    );
}

#[test]
fn control_plane_and_cli_versions_are_compared_without_going_online() {
    assert_eq!(versions_match(CLI_VERSION), Ok(()));
    assert_eq!(
        versions_match("edge-1.0"),
        Err(format!(
            "control plane running edge-1.0 but cli running {CLI_VERSION}"
        ))
    );
    let values = Values {
        linkerd_version: "edge-1.0".into(),
        ..Values::default()
    };
    let category = control_plane_version(&Ok(values));
    assert!(matches!(category.checks[1].result, Verdict::Skipped(_)));
    assert!(matches!(&category.checks[2].result, Verdict::Warning(e) if e.contains("edge-1.0")));
    let category = control_plane_version(&Err("configmaps \"linkerd-config\" not found".into()));
    assert_eq!(category.checks.len(), 2);
    assert!(category.checks[0].fatal);
}

// === metadata and HA ===

#[test]
fn labels_that_should_be_annotations_and_back_are_listed() {
    let pod: Pod = object(json!({"metadata": {
        "name": "web", "namespace": "app",
        "labels": {
            "config.linkerd.io/proxy-cpu-limit": "1",
            annotations::INJECT: "enabled",
            "app": "web",
        },
    }}));
    assert_eq!(
        metadata::pod_labels(&[pod, mk_named::<Pod>("fine")]),
        Err(
            "Some labels on data plane pods should be annotations:\n\t* app/web\n\t\t\
             config.linkerd.io/proxy-cpu-limit\n\t\tlinkerd.io/inject"
                .into()
        )
    );
    let svc: Service = object(json!({"metadata": {
        "name": "s", "namespace": "app",
        "labels": {"config.alpha.linkerd.io/x": "1"},
        "annotations": {labels::MULTICLUSTER_EXPORTED: "true"},
    }}));
    assert_eq!(
        metadata::service_labels(std::slice::from_ref(&svc)),
        Err("Some labels on data plane services should be annotations:\n\t* app/s\n\t\tconfig.alpha.linkerd.io/x".into())
    );
    assert_eq!(
        metadata::service_annotations(&[svc]),
        Err("Some annotations on data plane services should be labels:\n\t* app/s\n\t\tmirror.linkerd.io/exported".into())
    );
    assert_eq!(
        metadata::service_annotations(&[mk_named::<Service>("s")]),
        Ok(())
    );
}

#[test]
fn ha_checks_apply_only_when_the_injector_fails_closed() {
    let checks = ha_checks(false, Err("unused".into()), Err("unused".into()));
    assert!(
        checks
            .iter()
            .all(|o| matches!(o.result, Verdict::Skipped(_)))
    );

    let replicas = |name: &str, available: i32| -> Deployment {
        object(json!({"metadata": {"name": name}, "status": {"availableReplicas": available}}))
    };
    let kube_system: Namespace = object(json!({"metadata": {
        "name": "kube-system",
        "labels": {labels::ADMISSION_WEBHOOKS: labels::ADMISSION_WEBHOOKS_DISABLED},
    }}));
    let deployments = vec![
        replicas("linkerd-destination", 3),
        replicas("linkerd-identity", 1),
        replicas("linkerd-proxy-injector", 3),
    ];
    let checks = ha_checks(true, Ok(kube_system), Ok(deployments.clone()));
    assert_eq!(checks[0].result, Verdict::Success);
    assert_eq!(
        checks[1].result,
        Verdict::Warning("not enough replicas available for [linkerd-identity]".into())
    );
    let checks = ha_checks(true, Ok(mk_named("kube-system")), Ok(deployments));
    assert_eq!(
        checks[0].result,
        Verdict::Warning(
            "kube-system namespace needs to have the label config.linkerd.io/admission-webhooks: \
             disabled if injector webhook failure policy is Fail"
                .into()
        )
    );
}

// === key algorithms ===

/// A self-signed RSA 2048 certificate (public data only).
const RSA_2048_CRT: &str = "-----BEGIN CERTIFICATE-----\nMIIDBzCCAe+gAwIBAgIUSxgO5AaKdiQpGfHoFKmF1m9eet0wDQYJKoZIhvcNAQEL\nBQAwEzERMA8GA1UEAwwIcnNhLXJvb3QwHhcNMjYxMTI2MTM1NzQzWhcNMzYxMTIz\nMTM1NzQzWjATMREwDwYDVQQDDAhyc2Etcm9vdDCCASIwDQYJKoZIhvcNAQEBBQAD\nggEPADCCAQoCggEBAL9Bex/fs/qbULi7PCElvHenCe4TSNN/hg3JhCj4t9iQZ0fs\nBfcssXC3PsBgTBpw/Zp/ZX7c2W8vz6vxpEhXd0HtEpoN4x4E14dr0O4uia4wYPoC\npLR7CamwRBs9ckRR7VFD+QLk9orF3Pul648XjdgsryBsvyCwIr678b+bhpDNrWEv\nMb5r32xaLUXIf4vegUd+0Aq3VSNdGIQy0l301naipG3+zx/5YoNw3iDCay7QPV2Q\nXxa7Z0En3UPvxVEszPGoCDr7xKNV1qThYTb85LtEjMKK33xju+5wVIgGa7j8QRm/\nawZj0s/Tze2Od07DdydSPe28crV6lc1apOYvUaECAwEAAaNTMFEwHQYDVR0OBBYE\nFLe/axok1Dnn37tkMWm0modYy3t6MB8GA1UdIwQYMBaAFLe/axok1Dnn37tkMWm0\nmodYy3t6MA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQELBQADggEBABIItUj4\nLVOT9BXbCxiL7PBQPuDgHJOUtqna/3GgZnjhA3W/mcLUhGk8kQhqVEla0UJ1ZSmj\n8VkLaXD7l97ZzjcteDql/Y6e5cUPrZ0JEL6/wTQOjKLf9prxMKmMisamKfAH27eE\n5pP95r94cMXme/ONQ6JsG4Qi3aNJORt5A7vEHQNQoVlHuFoB2B+LemNj/Rlf+Liq\n2iUnST+Ly4GRw1l3/m9YXj8QSI1Ul2cMiHyGR4bEQzbkinJBoJvj/r0rQGWyJWsI\nJk9tXnpsEmW1a+Rwa3z8JQ8YRu2MI7lstS3G7jjRuVqVGrhDYciPBHDclkr/VZ7U\nnJg/RRKfDzXmF2s=\n-----END CERTIFICATE-----\n";

fn der_of(pem: &str) -> Vec<u8> {
    oxlink_tls::pem::certificates(pem.as_bytes()).unwrap()[0].to_vec()
}

fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn issuers_need_p256_and_anchors_p256_or_rsa() {
    let p256 = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let p384 = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
    let rsa = der_of(RSA_2048_CRT);
    assert_eq!(algorithm::issuer(&p256), Ok(()));
    assert_eq!(algorithm::anchor(&p256), Ok(()));
    assert_eq!(algorithm::anchor(&rsa), Ok(()));
    assert_eq!(
        algorithm::issuer(&p384),
        Err("must use P-256 curve for public key, instead P-384 was used".into())
    );
    assert_eq!(
        algorithm::anchor(&p384),
        Err("must use P-256 curve for public key, instead P-384 was used".into())
    );
    assert_eq!(
        algorithm::issuer(&rsa),
        Err("must use ECDSA for public key algorithm, instead RSA was used".into())
    );
    assert!(algorithm::issuer(b"not a certificate").is_err());
}

// === opaque ports ===

fn mk_service(opaque: Option<&str>, port: i32, target: Value) -> Service {
    let mut meta = json!({"name": "db", "namespace": "app"});
    if let Some(o) = opaque {
        meta["annotations"] = json!({annotations::OPAQUE_PORTS: o});
    }
    object(json!({
        "metadata": meta,
        "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": port, "targetPort": target}]},
    }))
}

fn mk_db_pod(opaque: Option<&str>) -> Pod {
    let mut meta = json!({"name": "db-0", "namespace": "app"});
    if let Some(o) = opaque {
        meta["annotations"] = json!({annotations::OPAQUE_PORTS: o});
    }
    object(json!({
        "metadata": meta,
        "spec": {"containers": [{"name": "db", "ports": [{"name": "sql", "containerPort": 5432}]}]},
    }))
}

#[test]
fn opaque_ports_must_agree_between_services_and_pods() {
    use super::opaque::{judge, misconfigured};
    // Both sides agree, or neither says anything.
    assert_eq!(
        misconfigured(
            &mk_service(Some("5432"), 5432, json!(5432)),
            &mk_db_pod(Some("5432"))
        ),
        Ok(())
    );
    assert_eq!(
        misconfigured(&mk_service(None, 80, json!(5432)), &mk_db_pod(None)),
        Ok(())
    );
    // The Service says opaque, the pod does not.
    assert_eq!(
        misconfigured(
            &mk_service(Some("5432"), 5432, json!("sql")),
            &mk_db_pod(None)
        ),
        Err(
            "service db expects target port 5432 to be opaque; add it to pod db-0 \
             config.linkerd.io/opaque-ports annotation"
                .into()
        )
    );
    // The pod says opaque; the Service reaches it through another port, by number or name.
    assert_eq!(
        misconfigured(&mk_service(None, 80, json!(5432)), &mk_db_pod(Some("5432"))),
        Err(
            "service db targets the opaque port 5432 through 80; add 80 to its \
             config.linkerd.io/opaque-ports annotation"
                .into()
        )
    );
    assert_eq!(
        misconfigured(
            &mk_service(None, 80, json!("sql")),
            &mk_db_pod(Some("5432"))
        ),
        Err(
            "service db targets the opaque port sql through 80; add 80 to its \
             config.linkerd.io/opaque-ports annotation"
                .into()
        )
    );
    assert_eq!(
        misconfigured(
            &mk_service(Some("80"), 80, json!("sql")),
            &mk_db_pod(Some("5432"))
        ),
        Ok(())
    );
    assert_eq!(
        misconfigured(
            &mk_service(None, 80, json!(5432)),
            &mk_db_pod(Some("4000-5000"))
        ),
        Err("failed to convert 4000-5000 to port number for pod db-0".into())
    );

    // Services meet the pods their EndpointSlices name.
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = object(json!({
        "metadata": {"name": "db-x", "namespace": "app", "labels": {labels::SLICE_SERVICE_NAME: "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "targetRef": {"kind": "Pod", "name": "db-0", "namespace": "app"}}],
    }));
    let service = mk_service(None, 80, json!(5432));
    let pod = mk_db_pod(Some("5432"));
    assert_eq!(
        judge(
            std::slice::from_ref(&service),
            std::slice::from_ref(&slice),
            std::slice::from_ref(&pod)
        ),
        Err(
            "\t* service db targets the opaque port 5432 through 80; add 80 to its \
             config.linkerd.io/opaque-ports annotation"
                .into()
        )
    );
    assert_eq!(
        judge(
            std::slice::from_ref(&service),
            &[],
            std::slice::from_ref(&pod)
        ),
        Ok(())
    );
    let mut headless = service;
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    assert_eq!(judge(&[headless], &[slice], &[pod]), Ok(()));
}
