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
