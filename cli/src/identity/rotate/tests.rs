use super::{
    cluster::{Kind, Workload, owners, rollout_status},
    input::{Files, material},
    plan_text,
    state::{Rotation, Step, anchor_id, batches, gauge, issued_after},
};
use k8s_openapi::api::core::v1::Pod;
use oxlink_tls::{ChainSummary, fixtures as fx, pem};
use serde_json::json;
use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

const NAMES: (&str, &str) = (
    "root.linkerd.cluster.local",
    "identity.linkerd.cluster.local",
);

fn now() -> SystemTime {
    // Inside every fixture's validity (2025–2125).
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxlink-rotate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, text) in files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    dir
}

/// New anchor `other` with its issuer, as files, against the installed `ANCHOR_CRT`.
fn given(name: &str, anchor: &str, crt: &str, key: &str) -> Files {
    let dir = scratch(
        name,
        &[("ca.crt", anchor), ("issuer.crt", crt), ("issuer.key", key)],
    );
    Files {
        new_anchor: Some(dir.join("ca.crt")),
        issuer_crt: Some(dir.join("issuer.crt")),
        issuer_key: Some(dir.join("issuer.key")),
    }
}

fn err(files: &Files, external: bool, now: SystemTime) -> String {
    format!(
        "{:#}",
        material(files, fx::ANCHOR_CRT, external, NAMES, now).unwrap_err()
    )
}

// === input ===

#[test]
fn a_given_anchor_and_issuer_are_accepted() {
    let files = given(
        "ok",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    let m = material(&files, fx::ANCHOR_CRT, false, NAMES, now()).unwrap();
    let der = pem::certificates(fx::OTHER_ANCHOR_CRT.as_bytes()).unwrap();
    assert_eq!(m.anchor_id, anchor_id(&der[0]));
    assert!(m.issuer.is_some());
    assert!(m.generated_anchor_key.is_none());
}

#[test]
fn without_files_an_anchor_and_issuer_are_generated() {
    let m = material(
        &Files::default(),
        fx::ANCHOR_CRT,
        false,
        NAMES,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(m.anchor_subject, "CN=root.linkerd.cluster.local");
    assert!(m.generated_anchor_key.is_some());
    let (crt, _) = m.issuer.unwrap();
    let issuer = ChainSummary::from_pem(crt.as_bytes()).unwrap();
    assert_eq!(issuer[0].subject, "CN=identity.linkerd.cluster.local");
}

#[test]
fn an_unreadable_anchor_file_is_refused() {
    let mut files = given(
        "unreadable",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    files.new_anchor = Some(PathBuf::from("/nonexistent/ca.crt"));
    let e = err(&files, false, now());
    assert!(
        e.contains("--new-anchor-file /nonexistent/ca.crt: cannot read it"),
        "{e}"
    );
}

#[test]
fn an_anchor_file_that_is_not_a_certificate_is_refused() {
    let files = given(
        "garbage",
        "not a certificate\n",
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    let e = err(&files, false, now());
    assert!(e.contains("--new-anchor-file: "), "{e}");
}

#[test]
fn an_anchor_file_with_two_certificates_is_refused() {
    let two = format!("{}{}", fx::OTHER_ANCHOR_CRT, fx::ANCHOR_CRT);
    let files = given("two", &two, fx::OTHER_ISSUER_CRT, fx::OTHER_ISSUER_KEY);
    let e = err(&files, false, now());
    assert!(e.contains("must hold exactly one certificate"), "{e}");
    assert!(e.contains("found 2"), "{e}");
}

#[test]
fn an_expired_anchor_is_refused() {
    let files = given(
        "expired",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    // 2200: every fixture has expired.
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(7_258_118_400);
    let e = err(&files, false, later);
    assert!(e.contains("the trust anchor CN="), "{e}");
    assert!(e.contains("expired on"), "{e}");
}

#[test]
fn an_anchor_that_is_not_a_ca_is_refused() {
    let files = given(
        "not-ca",
        fx::NOT_CA_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    let e = err(&files, false, now());
    assert!(e.contains("is not a CA certificate"), "{e}");
}

#[test]
fn the_installed_anchor_is_refused_as_the_new_one() {
    let files = given("same", fx::ANCHOR_CRT, fx::ISSUER_CRT, fx::ISSUER_KEY);
    let e = err(&files, false, now());
    assert!(e.contains("is already in the trust bundle"), "{e}");
}

#[test]
fn an_issuer_key_that_does_not_match_is_refused() {
    let files = given(
        "mismatch",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::ISSUER_KEY,
    );
    let e = err(&files, false, now());
    assert!(
        e.contains("the new issuer cannot be used with the new trust anchor"),
        "{e}"
    );
    assert!(
        e.contains("does not belong to the issuer certificate"),
        "{e}"
    );
}

#[test]
fn an_issuer_not_signed_by_the_new_anchor_is_refused() {
    let files = given(
        "untrusted",
        fx::OTHER_ANCHOR_CRT,
        fx::ISSUER_CRT,
        fx::ISSUER_KEY,
    );
    let e = err(&files, false, now());
    assert!(e.contains("does not verify to the trust anchors"), "{e}");
}

#[test]
fn an_issuer_certificate_without_its_key_is_refused() {
    let mut files = given(
        "half",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    files.issuer_key = None;
    let e = err(&files, false, now());
    assert!(e.contains("go together: give both or neither"), "{e}");
}

#[test]
fn an_issuer_without_the_new_anchor_is_refused() {
    let mut files = given(
        "no-anchor",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    files.new_anchor = None;
    let e = err(&files, false, now());
    assert!(e.contains("give --new-anchor-file too"), "{e}");
}

#[test]
fn an_anchor_without_an_issuer_is_refused_unless_the_issuer_is_external() {
    let mut files = given(
        "anchor-only",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    files.issuer_crt = None;
    files.issuer_key = None;
    let e = err(&files, false, now());
    assert!(e.contains("give the new issuer with"), "{e}");
    let m = material(&files, fx::ANCHOR_CRT, true, NAMES, now()).unwrap();
    assert!(m.issuer.is_none(), "an external issuer is not written");
}

#[test]
fn an_external_issuer_needs_the_anchor_and_takes_no_issuer_files() {
    let e = err(&Files::default(), true, now());
    assert!(
        e.contains("give the new trust anchor with --new-anchor-file"),
        "{e}"
    );
    let files = given(
        "external",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    let e = err(&files, true, now());
    assert!(e.contains("the issuer is managed externally"), "{e}");
}

#[test]
fn a_broken_installed_bundle_is_refused() {
    let files = given(
        "broken-bundle",
        fx::OTHER_ANCHOR_CRT,
        fx::OTHER_ISSUER_CRT,
        fx::OTHER_ISSUER_KEY,
    );
    let e = format!(
        "{:#}",
        material(&files, "garbage", false, NAMES, now()).unwrap_err()
    );
    assert!(e.contains("the installed trust bundle"), "{e}");
}

// === state ===

#[test]
fn the_steps_run_in_order_and_end_complete() {
    let mut step = Step::AddAnchor;
    let mut seen = vec![step];
    while step != Step::Complete {
        step = step.next();
        seen.push(step);
    }
    assert_eq!(&seen[..7], &Step::ALL);
    assert_eq!(seen.last(), Some(&Step::Complete));
    assert_eq!(Step::Verify.number(), 5);
    assert_eq!(Step::RestartForIssuer.to_string(), "restart-for-issuer");
}

#[test]
fn the_state_round_trips_and_tolerates_missing_fields() {
    let r = Rotation {
        step: Step::RestartForIssuer,
        new_anchor: "ab".into(),
        new_anchor_subject: "CN=root".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        external_issuer: false,
        restart_token: Some("2026-01-01T00:01:00Z".into()),
        issuer_switched_at: Some(1),
        restarts: 3,
        completed_at: None,
    };
    assert_eq!(Rotation::parse(&r.to_json()).unwrap(), r);
    let minimal = Rotation::parse(
        r#"{"step":"verify","newAnchor":"ab","newAnchorSubject":"CN=x","startedAt":"t"}"#,
    )
    .unwrap();
    assert_eq!(minimal.step, Step::Verify);
    assert!(minimal.in_progress());
    assert!(
        minimal.summary().contains("step 5/7"),
        "{}",
        minimal.summary()
    );
    let e = Rotation::parse(r#"{"step":"jump"}"#).unwrap_err();
    assert!(e.contains("cannot be read"), "{e}");
}

#[test]
fn a_certificate_is_new_when_it_expires_a_lifetime_after_the_switch() {
    let day = Duration::from_secs(86400);
    let switched = 1_000_000;
    let issuer_expiry = 5_000_000_000;
    // Issued 10s after the switch (24h + 20s skew).
    assert!(issued_after(
        (switched + 10 + 86400 + 20) as f64,
        switched,
        day,
        issuer_expiry
    ));
    // Issued an hour before it.
    assert!(!issued_after(
        (switched - 3600 + 86400 + 20) as f64,
        switched,
        day,
        issuer_expiry
    ));
    // Capped at the new issuer's expiry.
    assert!(issued_after(
        (switched + 100) as f64,
        switched,
        day,
        switched + 100
    ));
}

#[test]
fn gauges_are_read_from_prometheus_text() {
    let text = "# HELP identity_cert_expiration_timestamp_seconds Time when the cert expires.\n\
                # TYPE identity_cert_expiration_timestamp_seconds gauge\n\
                identity_cert_expiration_timestamp_seconds_total 3\n\
                identity_cert_expiration_timestamp_seconds 1764892800\n";
    assert_eq!(
        gauge(text, "identity_cert_expiration_timestamp_seconds"),
        Some(1_764_892_800.0)
    );
    assert_eq!(
        gauge("", "identity_cert_expiration_timestamp_seconds"),
        None
    );
}

#[test]
fn batches_split_and_never_are_empty() {
    let items = [1, 2, 3, 4, 5];
    assert_eq!(batches(&items, 2), vec![vec![1, 2], vec![3, 4], vec![5]]);
    assert_eq!(batches(&items, 0).len(), 5);
    assert!(batches::<u8>(&[], 3).is_empty());
}

// === cluster decisions ===

#[test]
fn a_deployment_rollout_is_complete_only_without_old_pods() {
    let d = |observed: i64, replicas: i64, updated: i64, available: i64| {
        json!({
            "metadata": {"generation": 3},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": observed, "replicas": replicas,
                       "updatedReplicas": updated, "availableReplicas": available},
        })
    };
    assert!(rollout_status(Kind::Deployment, &d(3, 2, 2, 2)).complete());
    assert!(
        !rollout_status(Kind::Deployment, &d(2, 2, 2, 2)).complete(),
        "not observed"
    );
    assert!(
        !rollout_status(Kind::Deployment, &d(3, 3, 2, 2)).complete(),
        "an old pod left"
    );
    assert!(
        !rollout_status(Kind::Deployment, &d(3, 2, 1, 2)).complete(),
        "not updated"
    );
    assert!(
        !rollout_status(Kind::Deployment, &d(3, 2, 2, 1)).complete(),
        "not available"
    );
}

#[test]
fn statefulset_and_daemonset_rollouts() {
    let sts = |current: &str| {
        json!({
            "metadata": {"generation": 1},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": 1, "currentRevision": current, "updateRevision": "b"},
        })
    };
    assert!(rollout_status(Kind::StatefulSet, &sts("b")).complete());
    assert!(!rollout_status(Kind::StatefulSet, &sts("a")).complete());
    let ds = json!({
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                   "updatedNumberScheduled": 1, "numberAvailable": 2},
    });
    assert!(!rollout_status(Kind::DaemonSet, &ds).complete());
}

fn pod(ns: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns,
                     "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
    }))
    .unwrap()
}

#[test]
fn meshed_pods_map_to_their_workloads_once() {
    let pods = [
        pod("a", "web-1", &[("linkerd.io/proxy-deployment", "web")]),
        pod("a", "web-2", &[("linkerd.io/proxy-deployment", "web")]),
        pod("b", "db-0", &[("linkerd.io/proxy-statefulset", "db")]),
        pod("b", "bare", &[]),
    ];
    let (workloads, unmanaged) = owners(&pods);
    assert_eq!(
        workloads,
        vec![
            Workload {
                namespace: "a".into(),
                kind: Kind::Deployment,
                name: "web".into()
            },
            Workload {
                namespace: "b".into(),
                kind: Kind::StatefulSet,
                name: "db".into()
            },
        ]
    );
    assert_eq!(unmanaged, vec!["b/bare".to_string()]);
    assert_eq!(workloads[0].to_string(), "deployment/web -n a");
}

#[test]
fn the_plan_lists_steps_batches_and_unmanaged_pods() {
    let rotation = Rotation {
        step: Step::RestartForIssuer,
        new_anchor: "ab".into(),
        new_anchor_subject: "CN=root.new".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        external_issuer: false,
        restart_token: None,
        issuer_switched_at: None,
        restarts: 0,
        completed_at: None,
    };
    let anchors = ChainSummary::from_pem(fx::ANCHOR_CRT.as_bytes()).unwrap();
    let w = |name: &str| Workload {
        namespace: "todo".into(),
        kind: Kind::Deployment,
        name: name.into(),
    };
    let text = plan_text(
        &rotation,
        &anchors,
        None,
        &[w("linkerd-identity")],
        &[w("a"), w("b"), w("c")],
        &["todo/bare".into()],
        2,
        Duration::from_secs(5),
    );
    assert!(text.contains("dry run: nothing is changed"), "{text}");
    assert!(text.contains("resuming: a trust anchor rotation"), "{text}");
    assert!(
        text.contains("3 in 2 batches of up to 2, 5s apart"),
        "{text}"
    );
    assert!(text.contains("batch 2: deployment/c -n todo"), "{text}");
    assert!(text.contains("‼ pod todo/bare"), "{text}");
    assert!(text.contains("  √ 3. switch the issuer"), "{text}");
    assert!(
        text.contains("  → 4. restart the meshed workloads"),
        "{text}"
    );
    assert!(text.contains("    5. check that every proxy"), "{text}");
}

#[test]
fn check_warns_about_an_unfinished_rotation_only() {
    use super::check_rotation;
    assert_eq!(check_rotation(None), Ok(()));
    let done = r#"{"step":"complete","newAnchor":"ab","newAnchorSubject":"CN=x","startedAt":"t","completedAt":"u"}"#;
    assert_eq!(check_rotation(Some(done)), Ok(()));
    let open = r#"{"step":"restart-for-bundle","newAnchor":"ab","newAnchorSubject":"CN=x","startedAt":"t"}"#;
    let e = check_rotation(Some(open)).unwrap_err();
    assert!(e.contains("is at step 2/7"), "{e}");
    assert!(
        e.contains("run `oxlink identity rotate-anchor` to resume it"),
        "{e}"
    );
    assert!(
        check_rotation(Some("{"))
            .unwrap_err()
            .contains("oxlink.io/anchor-rotation")
    );
}

#[test]
fn rewritten_values_still_parse_for_the_injector_and_the_cli() {
    use crate::install::{chart, values};
    let mut v = values::from_yaml("values.yaml", chart::VALUES_YAML).unwrap();
    v["identityTrustAnchorsPEM"] = json!(format!("{}{}", fx::ANCHOR_CRT, fx::OTHER_ANCHOR_CRT));
    let text = super::cluster::values_text(&v).unwrap();
    let injector = oxlink_proxy_injector::values::Values::from_yaml(&text).unwrap();
    assert_eq!(
        injector.identity_trust_anchors_pem,
        format!("{}{}", fx::ANCHOR_CRT, fx::OTHER_ANCHOR_CRT)
    );
    let back = values::from_yaml("linkerd-config", &text).unwrap();
    assert_eq!(
        back["identityTrustAnchorsPEM"],
        v["identityTrustAnchorsPEM"]
    );
    assert_eq!(back["proxy"]["gid"], v["proxy"]["gid"]);
}

/// Only pods that run a proxy (native sidecar or container) have a certificate to check; the
/// controllers carry the control-plane label without one.
#[test]
fn only_pods_with_a_proxy_container_are_checked() {
    let pod = |spec: serde_json::Value| -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    };
    let native = pod(serde_json::json!({
        "initContainers": [{"name": "linkerd-init"}, {"name": "linkerd-proxy", "restartPolicy": "Always"}],
        "containers": [{"name": "app"}]
    }));
    let classic =
        pod(serde_json::json!({"containers": [{"name": "linkerd-proxy"}, {"name": "app"}]}));
    let controller = pod(serde_json::json!({"containers": [{"name": "identity"}]}));
    assert!(super::cluster::has_proxy(&native));
    assert!(super::cluster::has_proxy(&classic));
    assert!(!super::cluster::has_proxy(&controller));
}
