use super::*;
use linkerd2_proxy_api::{
    net::TcpAddress,
    tap::tap_event::{EndpointMeta, Http, http as ev},
};
use oxlink_viz::Resource;

fn request() -> TapRequest {
    TapRequest::new(Resource::parse("deploy/web").unwrap(), "todo")
}

#[test]
fn no_filter_matches_everything() {
    let o = observe_request(&request(), 7);
    assert_eq!(o.limit, 7);
    let Some(r#match::Match::All(Seq { matches })) = o.r#match.and_then(|m| m.r#match) else {
        panic!("an All match: the proxy requires one");
    };
    assert!(matches.is_empty());
}

#[test]
fn every_filter_must_hold() {
    let mut req = request();
    req.to = Some(Resource::parse("svc/backend").unwrap());
    req.to_namespace = "other".into();
    req.path = Some("/stress".into());
    req.method = Some("GET".into());
    req.authority = Some("web:8080".into());
    req.scheme = Some("https".into());
    let o = observe_request(&req, 1);
    let Some(r#match::Match::All(Seq { matches })) = o.r#match.and_then(|m| m.r#match) else {
        panic!("an All match");
    };
    let m: Vec<_> = matches.into_iter().filter_map(|m| m.r#match).collect();
    assert_eq!(
        m[0],
        r#match::Match::DestinationLabel(Label {
            key: "service".into(),
            value: "backend".into()
        })
    );
    assert_eq!(
        m[1],
        r#match::Match::DestinationLabel(Label {
            key: "namespace".into(),
            value: "other".into()
        })
    );
    assert_eq!(
        m[2],
        r#match::Match::Http(r#match::Http {
            r#match: Some(r#match::http::Match::Path(StringMatch {
                r#match: Some(string_match::Match::Prefix("/stress".into()))
            }))
        })
    );
    assert_eq!(
        m[3],
        r#match::Match::Http(r#match::Http {
            r#match: Some(r#match::http::Match::Method(HttpMethod::from(
                ::http::Method::GET
            )))
        })
    );
    assert_eq!(m.len(), 6);
}

#[test]
fn proxy_events_become_linkerds_shape() {
    let ev = ProtoEvent {
        source: Some(TcpAddress {
            ip: Some(IpAddr::from([10, 244, 0, 23]).into()),
            port: 46302,
        }),
        source_meta: Some(EndpointMeta {
            labels: [("tls".to_string(), "true".to_string())].into(),
        }),
        route_meta: None,
        destination: Some(TcpAddress {
            ip: Some(IpAddr::from([10, 244, 0, 30]).into()),
            port: 8090,
        }),
        destination_meta: None,
        proxy_direction: ProxyDirection::Inbound as i32,
        event: Some(tap_event::Event::Http(Http {
            event: Some(ev::Event::RequestInit(ev::RequestInit {
                id: Some(ev::StreamId { base: 6, stream: 0 }),
                method: Some(HttpMethod::from(::http::Method::POST)),
                scheme: Some(Scheme::from("http")),
                authority: "todo.example".into(),
                path: "/".into(),
                headers: None,
            })),
        })),
    };
    let ev = event(ev).unwrap();
    assert_eq!(
        oxlink_viz::tap::render_line(&ev, None),
        "req id=6:0 proxy=in  src=10.244.0.23:46302 dst=10.244.0.30:8090 tls=true \
         :method=POST :authority=todo.example :path=/"
    );
    let end = ProtoEvent {
        proxy_direction: ProxyDirection::Outbound as i32,
        event: Some(tap_event::Event::Http(Http {
            event: Some(ev::Event::ResponseEnd(ev::ResponseEnd {
                id: Some(ev::StreamId { base: 6, stream: 1 }),
                since_request_init: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 2_000,
                }),
                since_response_init: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 51_000,
                }),
                response_bytes: 20,
                eos: Some(linkerd2_proxy_api::tap::Eos {
                    end: Some(End::GrpcStatusCode(0)),
                }),
                trailers: None,
            })),
        })),
        ..Default::default()
    };
    let HttpEvent::ResponseEndEvent(e) = event(end).unwrap().http else {
        panic!("an end");
    };
    assert_eq!(
        (
            e.since_request_init_us,
            e.since_response_init_us,
            e.response_bytes,
            e.grpc_status_code
        ),
        (1_000_002, 51, 20, Some(0))
    );
    assert!(event(ProtoEvent::default()).is_none());
}
