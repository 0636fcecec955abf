use super::*;
use clap::CommandFactory;

#[test]
fn flags_are_consistent() {
    Args::command().debug_assert();
}

#[test]
fn defaults_match_linkerd() {
    let args = Args::try_parse_from(["oxlink-destination"]).unwrap();
    assert_eq!(args.addr, "0.0.0.0:8086".parse().unwrap());
    assert_eq!(args.admin_addr, "0.0.0.0:9996".parse().unwrap());
    assert_eq!(args.controller_namespace, "linkerd");
    assert_eq!(args.identity_trust_domain, "cluster.local");
    assert_eq!(args.cluster_domain, "cluster.local");
    assert!(args.enable_h2_upgrade);
    assert_eq!(args.policy_addr, "0.0.0.0:8090".parse().unwrap());
    assert_eq!(args.default_policy, DefaultPolicy::AllUnauthenticated);
    assert_eq!(args.cluster_networks.0.len(), 5);
    assert_eq!(args.probe_networks.0.len(), 2);
    let opaque = PortSet::parse(&args.default_opaque_ports, |_| None);
    for port in [25, 587, 3306, 4444, 5432, 6379, 9300, 11211] {
        assert!(opaque.contains(port), "{port}");
    }
}

#[test]
fn kebab_case_flags() {
    let args = Args::try_parse_from([
        "oxlink-destination",
        "--addr=127.0.0.1:1",
        "--admin-addr=127.0.0.1:2",
        "--controller-namespace=mesh",
        "--identity-trust-domain=example.org",
        "--cluster-domain=corp.local",
        "--default-opaque-ports=1-3",
        "--enable-h2-upgrade=false",
        "--shutdown-grace-period=1m30s",
        "--log-format=json",
        "--log-level=debug",
    ])
    .unwrap();
    assert_eq!(args.controller_namespace, "mesh");
    assert_eq!(args.cluster_domain, "corp.local");
    assert!(!args.enable_h2_upgrade);
    assert_eq!(args.shutdown_grace_period, Duration::from_secs(90));
    assert_eq!(args.logs.log_format, oxlink_admin::LogFormat::Json);
    assert_eq!(args.logs.log_level, "debug");
    assert!(Args::try_parse_from(["oxlink-destination", "--shutdown-grace-period=soon"]).is_err());
}

#[test]
fn policy_flags() {
    let args = Args::try_parse_from([
        "oxlink-destination",
        "--policy-addr=127.0.0.1:3",
        "--default-policy=cluster-authenticated",
        "--cluster-networks=10.0.0.0/16, fd00::/8",
        "--probe-networks=192.0.2.0/24",
    ])
    .unwrap();
    assert_eq!(args.policy_addr, "127.0.0.1:3".parse().unwrap());
    assert_eq!(args.default_policy, DefaultPolicy::ClusterAuthenticated);
    assert_eq!(args.cluster_networks.0.len(), 2);
    assert_eq!(args.probe_networks.0[0].to_string(), "192.0.2.0/24");
    for bad in [
        "--default-policy=allow",
        "--cluster-networks=10.0.0.0/40",
        "--probe-networks=everywhere",
    ] {
        assert!(
            Args::try_parse_from(["oxlink-destination", bad]).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn tls_by_default_with_identity_where_the_chart_puts_it() {
    let args = Args::try_parse_from(["oxlink-destination"]).unwrap();
    assert!(!args.plaintext);
    assert_eq!(args.identity_addr, None);
    assert_eq!(
        args.identity_token_path,
        PathBuf::from(format!(
            "{}/{}",
            oxlink_crds::names::proxy::IDENTITY_TOKEN_DIR,
            oxlink_crds::names::proxy::IDENTITY_TOKEN_FILE_NAME
        ))
    );
    assert_eq!(args.identity_trust_anchors, PathBuf::from(TRUST_ROOTS_PATH));
    let config = certify_config(
        &args.controller_namespace,
        &args.identity_trust_domain,
        &args.cluster_domain,
        args.identity_addr,
        oxlink_tls::fixtures::anchors(),
        args.identity_token_path,
    );
    assert_eq!(
        config.identity_addr,
        "linkerd-identity.linkerd.svc.cluster.local:8080"
    );
    assert_eq!(
        config.identity_server_name,
        "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
    );
    assert_eq!(
        config.name,
        "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
    );
}

#[test]
fn identity_flags() {
    let args = Args::try_parse_from([
        "oxlink-destination",
        "--controller-namespace=mesh",
        "--identity-trust-domain=example.org",
        "--identity-addr=127.0.0.1:9",
        "--identity-token-path=/t",
        "--identity-trust-anchors=/a.pem",
    ])
    .unwrap();
    let config = certify_config(
        &args.controller_namespace,
        &args.identity_trust_domain,
        &args.cluster_domain,
        args.identity_addr,
        oxlink_tls::fixtures::anchors(),
        args.identity_token_path,
    );
    assert_eq!(config.identity_addr, "127.0.0.1:9");
    assert_eq!(config.token_path, PathBuf::from("/t"));
    assert_eq!(args.identity_trust_anchors, PathBuf::from("/a.pem"));
    assert_eq!(
        config.identity_server_name,
        "linkerd-identity.mesh.serviceaccount.identity.mesh.example.org"
    );
    assert_eq!(
        config.name,
        "linkerd-destination.mesh.serviceaccount.identity.mesh.example.org"
    );
    let plain = Args::try_parse_from(["oxlink-destination", "--plaintext"]).unwrap();
    assert!(plain.plaintext);
}

#[test]
fn unreadable_or_bad_trust_anchors_fail_to_start() {
    let dir = std::env::temp_dir().join(format!("oxlink-destination-args-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let good = dir.join("good.pem");
    std::fs::write(&good, oxlink_tls::fixtures::ANCHOR_CRT).unwrap();
    for path in [dir.join("missing.pem"), bad] {
        let err = format!("{:#}", load_anchors(&path).unwrap_err());
        assert!(
            err.starts_with(&format!("--identity-trust-anchors {}: ", path.display())),
            "{err}"
        );
    }
    assert_eq!(
        load_anchors(&good).unwrap(),
        oxlink_tls::fixtures::anchors()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn require_client_identity_is_off_by_default_and_needs_tls() {
    let parse =
        |extra: &[&str]| Args::try_parse_from(["oxlink-destination"].iter().chain(extra)).unwrap();
    assert!(!parse(&[]).require_client_identity);
    assert!(parse(&["--require-client-identity"]).require_client_identity);
    assert!(parse(&["--require-client-identity=true"]).require_client_identity);
    assert!(!parse(&["--require-client-identity=false"]).require_client_identity);
    assert!(
        Args::try_parse_from(["oxlink-destination", "--require-client-identity=maybe"]).is_err()
    );
    let error = parse(&["--plaintext", "--require-client-identity"])
        .run()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "--require-client-identity needs mesh TLS: it cannot be combined with --plaintext, \
         where a sidecar terminates TLS"
    );
}
