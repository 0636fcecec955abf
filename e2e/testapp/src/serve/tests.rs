use super::*;
use crate::test_util::{any_port, fetch, get, text};
use http::Version;

async fn start(behaviour: BehaviourArgs) -> (Serving, SocketAddr) {
    let serving = Serving::start(&[any_port()], "pod-a".into(), behaviour)
        .await
        .unwrap();
    let addr = serving.addrs()[0];
    (serving, addr)
}

async fn statuses(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(addr, path).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn a_latency_path_is_delayed_and_others_are_not() {
    let delay = Duration::from_millis(200);
    let (_serving, addr) = start(BehaviourArgs {
        latency: vec![args::latency_rule("/slow=200ms").unwrap()],
        ..Default::default()
    })
    .await;
    // Warm up, so connection setup is not measured.
    get(addr, "/fast").await;
    let (fast, fast_took) = fetch(addr, Method::GET, "/fast", "", false).await;
    let (slow, slow_took) = fetch(addr, Method::GET, "/slow", "", false).await;
    assert_eq!((fast.status, slow.status), (StatusCode::OK, StatusCode::OK));
    assert!(slow_took >= delay, "/slow took {slow_took:?}");
    assert!(
        slow_took > fast_took,
        "/slow {slow_took:?}, /fast {fast_took:?}"
    );
}

#[tokio::test]
async fn statuses_map_by_path_and_responses_name_the_pod() {
    let (_serving, addr) = start(BehaviourArgs {
        status: vec![
            args::status_rule("/missing=404").unwrap(),
            args::status_rule("/teapot=418").unwrap(),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(get(addr, "/missing").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(addr, "/teapot").await.status.as_u16(), 418);
    let (ok, _) = fetch(addr, Method::POST, "/other?q=1", "body", false).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.served_by.as_deref(), Some("pod-a"));
    let echo: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(
        echo,
        serde_json::json!({"pod": "pod-a", "path": "/other", "method": "POST"})
    );
}

#[tokio::test]
async fn fail_first_fails_the_first_n_and_healthz_is_neither_failed_nor_counted() {
    let (serving, addr) = start(BehaviourArgs {
        fail_first: Some(2),
        ..Default::default()
    })
    .await;
    let healthz = get(addr, HEALTHZ).await;
    assert_eq!(
        (healthz.status, text(&healthz).as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(healthz.served_by.as_deref(), Some("pod-a"));
    assert_eq!(statuses(addr, "/x", 1).await, [503]);
    assert_eq!(get(addr, HEALTHZ).await.status, StatusCode::OK);
    assert_eq!(statuses(addr, "/y", 3).await, [503, 200, 200]);
    let counts = serving.counts();
    assert_eq!(counts.requests, 4);
    assert_eq!(
        counts.by_status,
        BTreeMap::from([("200".into(), 2), ("503".into(), 2)])
    );
    // The same counts over HTTP.
    let over_http: Counts = serde_json::from_slice(&get(addr, COUNTS).await.body).unwrap();
    assert_eq!(over_http, counts);
}

#[tokio::test]
async fn fail_every_fails_each_nth_request() {
    let (_serving, addr) = start(BehaviourArgs {
        fail_every: Some(3),
        ..Default::default()
    })
    .await;
    assert_eq!(
        statuses(addr, "/x", 7).await,
        [200, 200, 503, 200, 200, 503, 200]
    );
}

#[tokio::test]
async fn fail_rate_spreads_failures_evenly_except_on_status_paths() {
    let (_serving, addr) = start(BehaviourArgs {
        fail_rate: Some(0.25),
        status: vec![args::status_rule("/fixed=202").unwrap()],
        ..Default::default()
    })
    .await;
    assert_eq!(
        statuses(addr, "/x", 8).await,
        [200, 200, 200, 500, 200, 200, 200, 500]
    );
    // The 12th request is a failing one, but its path has a fixed status.
    assert_eq!(statuses(addr, "/x", 3).await, [200, 200, 200]);
    assert_eq!(statuses(addr, "/fixed", 1).await, [202]);
}

#[tokio::test]
async fn http1_and_h2c_are_served_on_one_port() {
    let (serving, addr) = start(BehaviourArgs::default()).await;
    let (h1, _) = fetch(addr, Method::GET, "/a", "", false).await;
    let (h2, _) = fetch(addr, Method::GET, "/b", "", true).await;
    assert_eq!((h1.status, h1.version), (StatusCode::OK, Version::HTTP_11));
    assert_eq!((h2.status, h2.version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(h2.served_by.as_deref(), Some("pod-a"));
    assert_eq!(serving.counts().requests, 2);
}

#[tokio::test]
async fn several_ports_share_one_behaviour() {
    let serving = Serving::start(
        &[any_port(), any_port()],
        "pod-a".into(),
        BehaviourArgs {
            fail_every: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let [a, b] = serving.addrs()[..] else {
        panic!("two ports")
    };
    assert_ne!(a, b);
    assert_eq!(get(a, "/").await.status, StatusCode::OK);
    assert_eq!(get(b, "/").await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn the_behaviour_reads_back_for_the_start_line() {
    let state = State {
        pod: "p".into(),
        latency: HashMap::from([("/stress".into(), Duration::from_millis(300))]),
        status: HashMap::from([("/x".into(), StatusCode::NOT_FOUND)]),
        fail_ppm: 250_000,
        fail_first: 2,
        fail_every: Some(5),
        counts: Mutex::default(),
    };
    assert_eq!(
        state.to_string(),
        "latency /stress=300ms; status /x=404; fail-rate 0.25; fail-first 2; fail-every 5"
    );
}
