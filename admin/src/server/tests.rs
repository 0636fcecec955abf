//! The admin server over a real socket, with a plain HTTP/1 client.

use super::*;
use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap();
    (status, body)
}

#[tokio::test]
async fn live_ready_and_metrics() {
    let mut registry = Registry::default();
    let requests = Counter::<u64>::default();
    registry.register("requests", "Requests seen", requests.clone());
    requests.inc();
    let scrapes = Arc::new(AtomicU64::new(0));
    let hook: ScrapeHook = {
        let scrapes = scrapes.clone();
        Arc::new(move || {
            scrapes.fetch_add(1, Ordering::Relaxed);
        })
    };
    let ready = Readiness::default();
    let latch = ready.latch("the watches have not synced");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut tasks = crate::Tasks::default();
    let admin = Admin {
        registry: Arc::new(registry),
        ready: ready.clone(),
        live: tasks.liveness(),
        on_scrape: Some(hook),
        connections: ServerMetrics::unregistered("admin"),
    };
    let server = tokio::spawn(serve_admin(listener, admin, async move {
        let _ = stopped.await;
    }));

    assert_eq!(get(addr, "GET", "/live").await, (200, "live\n".into()));
    assert_eq!(
        get(addr, "GET", "/ready").await,
        (503, "the watches have not synced\n".into())
    );
    latch.release();
    assert_eq!(get(addr, "GET", "/ready").await, (200, "ready\n".into()));

    let (status, body) = get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("requests_total 1"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(
        scrapes.load(Ordering::Relaxed),
        1,
        "the hook ran before encoding"
    );

    assert_eq!(get(addr, "POST", "/ready").await.0, 405);
    assert_eq!(get(addr, "GET", "/nope").await.0, 404);

    // A task the process needs ends: /live fails, with the reason, and stays failed.
    tasks.background("the Secret watch", async {});
    let mut live = (0, String::new());
    for _ in 0..500 {
        live = get(addr, "GET", "/live").await;
        if live.0 != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(live, (500, "the Secret watch ended\n".into()));
    assert_eq!(
        get(addr, "GET", "/ready").await.0,
        200,
        "readiness is not liveness"
    );

    stop.send(()).unwrap();
    server.await.unwrap();
}
