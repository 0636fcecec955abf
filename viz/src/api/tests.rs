use super::*;

fn stat(resources: &[&str]) -> StatRequest {
    StatRequest {
        resources: resources.iter().map(|s| s.to_string()).collect(),
        namespace: "todo".into(),
        all_namespaces: false,
        to: None,
        to_namespace: None,
        from: None,
        from_namespace: None,
        window: Window::default(),
    }
}

#[test]
fn requests_travel_as_query_strings_and_back() {
    let mut s = stat(&["deploy", "web", "db"]);
    s.to = Some("svc/back end".into());
    s.window = "30s".parse().unwrap();
    let q = s.to_query();
    assert_eq!(
        q,
        "resource=deploy&resource=web&resource=db&namespace=todo&to=svc%2Fback+end&window=30s"
    );
    // The name with a space is refused when validated, but travels intact.
    assert!(StatRequest::from_query(&q).is_err());
    s.to = Some("svc/backend".into());
    assert_eq!(StatRequest::from_query(&s.to_query()).unwrap(), s);

    let r = RoutesRequest {
        resource: vec!["deploy/todoui".into()],
        namespace: "todo".into(),
        to: Some("svc/todobackend".into()),
        to_namespace: None,
        window: Window::default(),
    };
    assert_eq!(RoutesRequest::from_query(&r.to_query()).unwrap(), r);
    let e = EdgesRequest {
        kind: "deploy".into(),
        namespace: "default".into(),
        all_namespaces: true,
    };
    assert_eq!(EdgesRequest::from_query(&e.to_query()).unwrap(), e);
    assert_eq!(
        EdgesRequest::from_query("resource=po").unwrap().namespace,
        DEFAULT_NAMESPACE
    );
}

#[test]
fn bad_requests_are_refused_with_their_reason() {
    let err = |q: &str| StatRequest::from_query(q).unwrap_err().to_string();
    assert_eq!(
        err("namespace=todo"),
        "parameter \"resource\" is required: TYPE, TYPE/NAME"
    );
    assert_eq!(
        err("resource=widgets"),
        "cannot find Kubernetes canonical name from friendly name [widgets]"
    );
    assert!(err("resource=deploy&colour=red").starts_with("unknown parameter \"colour\""));
    assert_eq!(
        err("resource=deploy&namespace=a&namespace=b"),
        "parameter \"namespace\" is given more than once"
    );
    assert!(err("resource=deploy&window=1x").contains("invalid time window"));
    assert!(err("resource=deploy&namespace=Todo").contains("invalid namespace \"Todo\""));
    assert!(err("resource=deploy/a%22b").contains("invalid deployment"));
    assert!(err("resource=deploy&all_namespaces=yes").contains("true or false"));
    assert_eq!(
        err("resource=deploy&to=deploy/a&from=deploy/b"),
        "--to and --from cannot be given together"
    );
    assert!(err("resource=svc/web").contains("only supported as a --to resource"));
    let long = format!("resource=deploy&to=deploy/{}", "a".repeat(MAX_QUERY_BYTES));
    assert!(err(&long).contains("at most 4096 are accepted"));

    let routes = |q: &str| RoutesRequest::from_query(q).unwrap_err().to_string();
    assert!(routes("resource=deploy").contains("please specify one resource"));
    assert!(routes("resource=ns/todo").contains("not a namespace"));
    assert!(routes("resource=deploy/a&to=svc").contains("--to needs a named resource"));
    let edges = |q: &str| EdgesRequest::from_query(q).unwrap_err().to_string();
    assert!(edges("").contains("\"resource\" is required"));
    assert!(edges("resource=deploy/web").contains("resource type"));
    assert!(edges("resource=deploy&resource=po").contains("more than once"));
}

#[test]
fn answers_keep_every_number_through_json() {
    let row = stat::Row {
        kind: Kind::Deployment,
        listed: stat::Listed {
            namespace: "todo".into(),
            name: "web".into(),
            meshed: 1,
            pods: 2,
            status: None,
        },
        stats: Some(stat::Stats {
            success: Some(0.9),
            rps: 12.25,
            latency_ms: [Some(1.5), None, Some(99.0)],
            tcp_connections: Some(3.0),
            read_bytes_rate: None,
            write_bytes_rate: Some(10.0),
        }),
    };
    let answer = StatResponse { rows: vec![row] };
    let json = serde_json::to_string(&answer).unwrap();
    assert!(json.contains("\"kind\":\"deployment\""), "{json}");
    assert_eq!(serde_json::from_str::<StatResponse>(&json).unwrap(), answer);
}

#[test]
fn queries_are_form_encoded() {
    assert_eq!(
        query_string(&[("query", r#"sum(up{job="x"}) by (a)"#)]),
        "query=sum%28up%7Bjob%3D%22x%22%7D%29+by+%28a%29"
    );
}
