use super::*;

fn parse(argv: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once(&"oxlink-testapp").chain(argv)).unwrap()
}

#[test]
fn the_pod_name_falls_back_to_hostname_then_the_kernel() {
    let name =
        |p: Option<&str>, h: Option<&str>| pod_name_from(p.map(Into::into), h.map(Into::into));
    assert_eq!(name(Some("web-1"), Some("host")), "web-1");
    assert_eq!(name(Some(" "), Some("host")), "host");
    assert!(!name(None, None).is_empty());
}

#[test]
fn serve_takes_ports_repeated_or_comma_separated_and_globals_after_the_command() {
    let cli = parse(&[
        "serve",
        "--http",
        "8080,8081",
        "--http",
        "9090",
        "--latency",
        "/stress=300ms",
        "--bind-ip",
        "127.0.0.1",
        "--pod-name",
        "p",
    ]);
    assert_eq!(cli.bind_ip.to_string(), "127.0.0.1");
    assert_eq!(cli.pod_name.as_deref(), Some("p"));
    match cli.command {
        Command::Serve(args) => {
            assert_eq!(args.http, [8080, 8081, 9090]);
            assert_eq!(args.behaviour.latency[0].path, "/stress");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn roles_default_to_the_workshop_ports_and_hosts() {
    // The defaults apply when the runtime's environment names no hosts.
    match parse(&["todoui"]).command {
        Command::Todoui(ui) => assert_eq!(ui.port, 8090),
        other => panic!("{other:?}"),
    }
    match parse(&["todobackend", "--postgres-host", "db"]).command {
        Command::Todobackend(b) => {
            assert_eq!(
                (b.port, b.postgres_host.as_str(), b.postgres_port),
                (8080, "db", 5432)
            )
        }
        other => panic!("{other:?}"),
    }
    match parse(&["postgres"]).command {
        Command::Postgres(p) => assert_eq!(p.port, 5432),
        other => panic!("{other:?}"),
    }
    match parse(&["load", "--url", "http://a:1/", "--url", "http://b:2/"]).command {
        Command::Load(l) => {
            assert_eq!((l.urls.len(), l.rps, l.duration), (2, 10.0, None));
            assert_eq!(l.timeout, std::time::Duration::from_secs(10));
        }
        other => panic!("{other:?}"),
    }
}
