use super::*;
use crate::tap::{RequestInit, ResponseEnd, ResponseInit};
use std::collections::BTreeMap;

fn peer(ip: &str, pod: Option<&str>) -> Peer {
    Peer {
        ip: ip.into(),
        port: 80,
        metadata: pod
            .map(|p| BTreeMap::from([("pod".to_string(), p.to_string())]))
            .unwrap_or_default(),
    }
}

fn event(stream: u64, http: HttpEvent) -> TapEvent {
    let _ = stream;
    TapEvent {
        source: peer("10.244.0.1", None),
        destination: peer("10.244.0.9", Some("web-1")),
        route_meta: BTreeMap::new(),
        proxy_direction: Direction::Inbound,
        http,
    }
}

fn request(top: &mut Top, stream: u64, path: &str, status: u32, latency_us: u64) {
    let id = StreamId { base: 1, stream };
    top.observe(&event(
        stream,
        HttpEvent::RequestInitEvent(RequestInit {
            id,
            method: "GET".into(),
            path: path.into(),
            ..Default::default()
        }),
    ));
    top.observe(&event(
        stream,
        HttpEvent::ResponseInitEvent(ResponseInit {
            id,
            since_request_init_us: latency_us / 2,
            http_status: status,
        }),
    ));
    top.observe(&event(
        stream,
        HttpEvent::ResponseEndEvent(ResponseEnd {
            id,
            since_request_init_us: latency_us,
            ..Default::default()
        }),
    ));
}

#[test]
fn rows_count_latencies_and_successes() {
    let mut top = Top::default();
    request(&mut top, 1, "/a", 200, 947);
    request(&mut top, 2, "/a", 500, 6_000);
    request(&mut top, 3, "/a", 200, 1_200);
    request(&mut top, 4, "/b", 200, 3_000);
    let rows = top.rows();
    assert_eq!(rows.len(), 2);
    let (key, row) = rows[0];
    assert_eq!(
        (
            key.source.as_str(),
            key.destination.as_str(),
            key.path.as_str()
        ),
        ("10.244.0.1", "web-1", "/a")
    );
    assert_eq!(
        row,
        &Row {
            count: 3,
            successes: 2,
            best_us: 947,
            worst_us: 6_000,
            last_us: 1_200,
        }
    );
    assert_eq!(top.pending(), 0);
    let table = top.render();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("Source       Destination   Method   Path"),
        "{table}"
    );
    assert!(lines[0].ends_with("Success Rate"), "{table}");
    assert!(
        lines[1].starts_with("10.244.0.1   web-1         GET      /a"),
        "{table}"
    );
    assert!(
        lines[1].ends_with("3   947µs     6ms    1ms         66.67%"),
        "{table}"
    );
    assert!(lines[2].ends_with("100.00%"), "{table}");
}

#[test]
fn an_end_without_its_request_is_not_counted() {
    let mut top = Top::default();
    top.observe(&event(
        9,
        HttpEvent::ResponseEndEvent(ResponseEnd {
            id: StreamId { base: 1, stream: 9 },
            ..Default::default()
        }),
    ));
    assert!(top.rows().is_empty());
    assert_eq!(top.render().lines().count(), 1);
}

#[test]
fn grpc_errors_are_failures() {
    let mut top = Top::default();
    let id = StreamId { base: 1, stream: 1 };
    top.observe(&event(
        1,
        HttpEvent::RequestInitEvent(RequestInit {
            id,
            method: "POST".into(),
            path: "/svc/M".into(),
            ..Default::default()
        }),
    ));
    top.observe(&event(
        1,
        HttpEvent::ResponseEndEvent(ResponseEnd {
            id,
            grpc_status_code: Some(14),
            ..Default::default()
        }),
    ));
    assert_eq!(top.rows()[0].1.successes, 0);
}

#[test]
fn memory_is_bounded() {
    let mut top = Top::default();
    for stream in 0..(MAX_PENDING as u64 + 5) {
        top.observe(&event(
            stream,
            HttpEvent::RequestInitEvent(RequestInit {
                id: StreamId { base: 1, stream },
                ..Default::default()
            }),
        ));
    }
    assert_eq!(top.pending(), MAX_PENDING);
    for n in 0..(MAX_ROWS as u64 + 3) {
        request(&mut top, 1_000_000 + n, &format!("/{n}"), 200, 1);
    }
    assert_eq!(top.rows().len(), MAX_ROWS);
}

#[test]
fn latencies_read_like_linkerds() {
    assert_eq!(latency(947), "947µs");
    assert_eq!(latency(1_400), "1ms");
    assert_eq!(latency(5_600), "6ms");
    assert_eq!(latency(1_250_000), "1.25s");
    assert_eq!(latency(2_000_000), "2s");
}
