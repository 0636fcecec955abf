use super::*;
use crate::{
    serve::{BehaviourArgs, Serving},
    stats::Stats,
    test_util::{any_port, closed_port, fetch, get},
};

async fn serving(pod: &str, behaviour: BehaviourArgs) -> (Serving, Uri) {
    let serving = Serving::start(&[any_port()], pod.into(), behaviour)
        .await
        .unwrap();
    let url = format!("http://{}/load", serving.addrs()[0])
        .parse()
        .unwrap();
    (serving, url)
}

fn load(urls: Vec<Uri>, rps: f64, duration: Duration, timeout: Duration) -> Load {
    Load {
        urls,
        rps,
        duration: Some(duration),
        timeout,
        http2: false,
        grpc: false,
    }
}

#[tokio::test]
async fn counts_match_what_the_servers_counted() {
    let (a, url_a) = serving(
        "pod-a",
        BehaviourArgs {
            fail_every: Some(4),
            ..Default::default()
        },
    )
    .await;
    let (b, url_b) = serving("pod-b", BehaviourArgs::default()).await;
    let recorder = Arc::new(Recorder::default());
    let load = load(
        vec![url_a.clone(), url_b.clone()],
        100.0,
        Duration::from_millis(500),
        Duration::from_secs(5),
    );
    load.generate(&recorder).await;
    let stats = recorder.snapshot();
    let (a, b) = (a.counts(), b.counts());

    // Every tick sent one request, and none was left unanswered.
    assert!((10..=51).contains(&stats.sent), "{stats:?}");
    assert_eq!(stats.responses, stats.sent, "{stats:?}");
    assert_eq!((stats.errors, stats.in_flight), (0, 0), "{stats:?}");
    // The URLs took turns.
    let (to_a, to_b) = (
        stats.by_url[&url_a.to_string()],
        stats.by_url[&url_b.to_string()],
    );
    assert!(to_a.abs_diff(to_b) <= 1, "{stats:?}");
    // What the servers saw, pod by pod and status by status.
    assert_eq!(stats.by_served_by["pod-a"], a.requests, "{stats:?} {a:?}");
    assert_eq!(stats.by_served_by["pod-b"], b.requests, "{stats:?} {b:?}");
    assert_eq!(
        stats.by_status.get("503").copied().unwrap_or(0),
        a.by_status.get("503").copied().unwrap_or(0),
        "{stats:?} {a:?}"
    );
    assert_eq!(
        stats.by_status["200"],
        a.by_status["200"] + b.by_status["200"],
        "{stats:?} {a:?} {b:?}"
    );
    assert_eq!(stats.latency_ms.count, stats.responses);
    assert!(stats.latency_ms.p50 <= stats.latency_ms.p99);
}

#[tokio::test]
async fn hung_requests_time_out_and_refused_ones_are_connect_errors() {
    let (_slow, _) = serving(
        "slow",
        BehaviourArgs {
            latency: vec![args::latency_rule("/load=5s").unwrap()],
            ..Default::default()
        },
    )
    .await;
    let hung = format!("http://{}/load", _slow.addrs()[0]).parse().unwrap();
    let refused = format!("http://127.0.0.1:{}/", closed_port())
        .parse()
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    load(
        vec![hung, refused],
        40.0,
        Duration::from_millis(200),
        Duration::from_millis(100),
    )
    .generate(&recorder)
    .await;
    let stats = recorder.snapshot();
    assert_eq!(stats.responses, 0, "{stats:?}");
    assert_eq!(stats.errors, stats.sent, "{stats:?}");
    assert!(stats.errors_by_kind["timeout"] >= 1, "{stats:?}");
    assert!(stats.errors_by_kind["connect"] >= 1, "{stats:?}");
}

#[tokio::test]
async fn a_stopped_load_waits_for_the_requests_in_flight() {
    let (_slow, url) = serving(
        "slow",
        BehaviourArgs {
            latency: vec![args::latency_rule("/load=300ms").unwrap()],
            ..Default::default()
        },
    )
    .await;
    let recorder = Arc::new(Recorder::default());
    let forever = Load {
        duration: None,
        ..load(vec![url], 40.0, Duration::ZERO, Duration::from_secs(5))
    };
    forever
        .generate_until(&recorder, tokio::time::sleep(Duration::from_millis(200)))
        .await;
    let stats = recorder.snapshot();
    assert!(stats.sent >= 1, "{stats:?}");
    assert_eq!(stats.responses, stats.sent, "{stats:?}");
    assert_eq!(stats.by_status["200"], stats.sent, "{stats:?}");
}

#[tokio::test]
async fn the_stats_port_serves_and_resets_the_counts() {
    let (_server, url) = serving("pod-a", BehaviourArgs::default()).await;
    let recorder = Arc::new(Recorder::default());
    let stats_server = serve_stats(any_port(), "loader", recorder.clone())
        .await
        .unwrap();
    let forever = Load {
        duration: None,
        ..load(vec![url], 50.0, Duration::ZERO, Duration::from_secs(5))
    };
    let task = {
        let recorder = recorder.clone();
        tokio::spawn(async move { forever.generate(&recorder).await })
    };
    let stats = loop {
        let stats: Stats =
            serde_json::from_slice(&get(stats_server.addr(), "/stats").await.body).unwrap();
        if stats.responses >= 3 {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats.by_served_by["pod-a"], stats.responses);
    let (reset, _) = fetch(stats_server.addr(), Method::POST, "/reset", "", false).await;
    let reset: Stats = serde_json::from_slice(&reset.body).unwrap();
    assert!(reset.sent <= 1 && reset.responses <= 1, "{reset:?}");
    assert!(reset.elapsed_s < stats.elapsed_s, "{reset:?}");
    // A window hands over the counts so far and starts anew.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (window, _) = fetch(stats_server.addr(), Method::POST, "/window", "", false).await;
    let window: Stats = serde_json::from_slice(&window.body).unwrap();
    assert!(window.sent >= 2, "{window:?}");
    assert!(!window.latency_buckets_us.is_empty(), "{window:?}");
    let after: Stats =
        serde_json::from_slice(&get(stats_server.addr(), "/stats").await.body).unwrap();
    assert!(after.elapsed_s < window.elapsed_s, "{after:?}");
    task.abort();
}

#[tokio::test]
async fn the_command_serves_its_stats_until_stopped() {
    let (_server, url) = serving("pod-a", BehaviourArgs::default()).await;
    let port = closed_port();
    let args = LoadArgs {
        urls: vec![url],
        rps: 50.0,
        duration: None,
        stats_port: Some(port),
        timeout: Duration::from_secs(5),
        http2: false,
        grpc: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = args.run(
        std::net::Ipv4Addr::LOCALHOST.into(),
        "loader".into(),
        async {
            let _ = stopped.await;
        },
    );
    let watch = async {
        let client = client::new(false);
        let stats_url: Uri = format!("http://127.0.0.1:{port}/stats").parse().unwrap();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Ok(rsp) = client::send(
                &client,
                super::get(stats_url.clone()),
                Duration::from_secs(1),
            )
            .await
            else {
                continue;
            };
            let stats: Stats = serde_json::from_slice(&rsp.body).unwrap();
            if stats.responses >= 2 {
                let _ = stop.send(());
                return stats;
            }
        }
    };
    let (result, stats) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(run, watch) })
            .await
            .expect("the stats port answers while the load runs");
    result.unwrap();
    assert_eq!(stats.by_served_by["pod-a"], stats.responses);
}

#[tokio::test]
async fn grpc_calls_count_their_grpc_status() {
    let (server, _) = serving(
        "pod-g",
        BehaviourArgs {
            fail_every: Some(4),
            ..Default::default()
        },
    )
    .await;
    let url: Uri = format!("http://{}/soak.Echo/Call", server.addrs()[0])
        .parse()
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    Load {
        http2: true,
        grpc: true,
        ..load(
            vec![url],
            100.0,
            Duration::from_millis(300),
            Duration::from_secs(5),
        )
    }
    .generate(&recorder)
    .await;
    let stats = recorder.snapshot();
    let counts = server.counts();
    assert_eq!(counts.requests, stats.sent, "{stats:?}");
    // The server's 503s are UNAVAILABLE (14) to a gRPC client, and count as errors.
    assert_eq!(
        stats.errors_by_kind.get("grpc-14").copied().unwrap_or(0),
        counts.by_status["503"],
        "{stats:?} {counts:?}"
    );
    assert_eq!(stats.by_status["200"], counts.by_status["200"], "{stats:?}");
    assert_eq!(stats.by_served_by["pod-g"], stats.responses);
}

#[tokio::test]
async fn a_stopped_load_waits_for_its_requests_in_flight() {
    let (_slow, url) = serving(
        "slow",
        BehaviourArgs {
            latency: vec![args::latency_rule("/load=200ms").unwrap()],
            ..Default::default()
        },
    )
    .await;
    let recorder = Arc::new(Recorder::default());
    let forever = Load {
        duration: None,
        ..load(vec![url], 50.0, Duration::ZERO, Duration::from_secs(5))
    };
    forever
        .generate_until(&recorder, tokio::time::sleep(Duration::from_millis(100)))
        .await;
    let stats = recorder.snapshot();
    assert!(stats.sent >= 1, "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    assert_eq!(stats.responses, stats.sent, "{stats:?}");
}
