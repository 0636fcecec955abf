use super::*;

fn peer(ip: &str, port: u32, labels: &[(&str, &str)]) -> Peer {
    Peer {
        ip: ip.into(),
        port,
        metadata: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn id(stream: u64) -> StreamId {
    StreamId { base: 6, stream }
}

fn inbound(http: HttpEvent) -> TapEvent {
    TapEvent {
        source: peer("10.244.0.23", 46302, &[("tls", "true")]),
        destination: peer(
            "10.244.0.30",
            8090,
            &[
                ("pod", "todoui-1"),
                ("deployment", "todoui"),
                ("namespace", "todo"),
            ],
        ),
        route_meta: BTreeMap::new(),
        proxy_direction: Direction::Inbound,
        http,
    }
}

#[test]
fn lines_are_linkerds() {
    let req = inbound(HttpEvent::RequestInitEvent(RequestInit {
        id: id(0),
        method: "POST".into(),
        scheme: "http".into(),
        authority: "todo.example".into(),
        path: "/".into(),
    }));
    assert_eq!(
        render_line(&req, None),
        "req id=6:0 proxy=in  src=10.244.0.23:46302 dst=10.244.0.30:8090 tls=true \
         :method=POST :authority=todo.example :path=/"
    );
    let rsp = inbound(HttpEvent::ResponseInitEvent(ResponseInit {
        id: id(0),
        since_request_init_us: 10038,
        http_status: 302,
    }));
    assert_eq!(
        render_line(&rsp, None),
        "rsp id=6:0 proxy=in  src=10.244.0.23:46302 dst=10.244.0.30:8090 tls=true \
         :status=302 latency=10038µs"
    );
    let end = inbound(HttpEvent::ResponseEndEvent(ResponseEnd {
        id: id(0),
        since_request_init_us: 10050,
        since_response_init_us: 12,
        response_bytes: 0,
        ..Default::default()
    }));
    assert_eq!(
        render_line(&end, None),
        "end id=6:0 proxy=in  src=10.244.0.23:46302 dst=10.244.0.30:8090 tls=true \
         duration=12µs response-length=0B"
    );
    assert_eq!(
        render_line(&end, Some(Kind::Deployment)),
        "end id=6:0 proxy=in  src=10.244.0.23:46302 dst=10.244.0.30:8090 tls=true \
         duration=12µs response-length=0B dst_res=deployment/todoui dst_ns=todo"
    );
    let grpc = inbound(HttpEvent::ResponseEndEvent(ResponseEnd {
        id: id(1),
        grpc_status_code: Some(14),
        ..Default::default()
    }));
    assert!(render_line(&grpc, None).contains(" grpc-status=Unavailable duration=0µs"));
}

#[test]
fn outbound_lines_take_tls_from_the_destination() {
    let mut ev = inbound(HttpEvent::RequestInitEvent(RequestInit {
        id: id(1),
        method: "GET".into(),
        authority: "todobackend:8080".into(),
        path: "/todos/".into(),
        ..Default::default()
    }));
    ev.proxy_direction = Direction::Outbound;
    ev.source.metadata.clear();
    ev.destination.metadata.insert("tls".into(), "true".into());
    ev.destination.ip = "fd00::1".into();
    assert_eq!(
        render_line(&ev, None),
        "req id=6:1 proxy=out src=10.244.0.23:46302 dst=[fd00::1]:8090 tls=true \
         :method=GET :authority=todobackend:8080 :path=/todos/"
    );
}

#[test]
fn events_travel_as_json_lines() {
    let ev = inbound(HttpEvent::ResponseInitEvent(ResponseInit {
        id: id(3),
        since_request_init_us: 7,
        http_status: 200,
    }));
    let line = serde_json::to_string(&StreamLine::Event(Box::new(ev.clone()))).unwrap();
    assert!(line.contains(r#""proxyDirection":"INBOUND""#), "{line}");
    assert!(
        line.contains(r#""responseInitEvent":{"id":{"base":6,"stream":3}"#),
        "{line}"
    );
    assert_eq!(
        serde_json::from_str::<StreamLine>(&line).unwrap(),
        StreamLine::Event(Box::new(ev))
    );
    let status = StreamLine::Status(StreamStatus {
        dropped: 4,
        error: None,
    });
    let line = serde_json::to_string(&status).unwrap();
    assert_eq!(line, r#"{"dropped":4}"#);
    assert_eq!(serde_json::from_str::<StreamLine>(&line).unwrap(), status);
}

#[test]
fn requests_round_trip_through_the_query_string() {
    let mut req = TapRequest::new(Resource::parse("deploy/web").unwrap(), "todo");
    req.resource.namespace = Some("todo".into());
    req.to = Some(Resource {
        namespace: Some("other".into()),
        ..Resource::parse("svc/backend").unwrap()
    });
    req.to_namespace = "other".into();
    req.path = Some("/a b&c".into());
    req.method = Some("GET".into());
    req.max_rps = 2.5;
    let query = req.to_query();
    assert!(query.contains("path=%2Fa+b%26c"), "{query}");
    let back = TapRequest::from_query(&query).unwrap();
    assert_eq!(back, req);
    assert_eq!(back.validate(1000.0), Ok(()));
}

#[test]
fn bad_requests_get_precise_errors() {
    let q = |s: &str| TapRequest::from_query(s).unwrap_err().to_string();
    assert_eq!(q("namespace=x"), "missing parameter \"resource\"");
    assert_eq!(
        q("resource=deploy&namespace=x&bogus=1"),
        "unknown parameter \"bogus\""
    );
    assert_eq!(
        q("resource=deploy&namespace=x&namespace=y"),
        "parameter \"namespace\" is given more than once"
    );
    assert_eq!(
        q("resource=widgets/a&namespace=x"),
        "cannot find Kubernetes canonical name from friendly name [widgets]"
    );
    assert_eq!(
        q("resource=deploy&namespace=x&maxRps=fast"),
        "invalid maxRps: \"fast\" is not a number"
    );
    let v = |f: &dyn Fn(&mut TapRequest)| {
        let mut r = TapRequest::new(Resource::parse("deploy/web").unwrap(), "todo");
        f(&mut r);
        r.validate(1000.0).unwrap_err().to_string()
    };
    assert_eq!(
        v(&|r| r.path = Some("x".into())),
        "invalid path: \"x\" does not start with /"
    );
    assert_eq!(
        v(&|r| r.method = Some("GE T".into())),
        "invalid method: \"GE T\" is not an HTTP method"
    );
    assert_eq!(
        v(&|r| r.scheme = Some("ftp".into())),
        "invalid scheme: \"ftp\": expected http or https"
    );
    assert_eq!(
        v(&|r| r.max_rps = 0.0),
        "invalid maxRps: 0 must be a number above zero"
    );
    assert_eq!(
        v(&|r| r.max_rps = 5000.0),
        "invalid maxRps: 5000 is above the tap server's limit of 1000"
    );
    assert_eq!(
        v(&|r| r.namespace = "Todo".into()),
        "invalid namespace: \"Todo\" is not a namespace name"
    );
    assert_eq!(
        v(&|r| r.resource = Resource::parse("au/x").unwrap()),
        "a resource name is required to tap an authority"
    );
}
