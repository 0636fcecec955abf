//! The server on real listeners: bad input, Host checks, pages and the limits. Kubernetes and
//! Prometheus are addresses nothing answers on (or a listener that counts who calls it), so a
//! test shows what the server does before and without them.

use super::*;
use crate::{prometheus::Prometheus, serve};
use oxlink_admin::Tasks;
use std::net::SocketAddr;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A port that refuses connections (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    running: serve::Running,
    /// Connections made to the address given as Prometheus.
    prometheus_calls: Arc<std::sync::atomic::AtomicUsize>,
}

async fn start(limits: oxlink_admin::serve::Limits) -> Server {
    // "Prometheus": a listener that counts connections and closes them.
    let prom = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prom_addr = prom.local_addr().unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = prom.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    let kube = kube::Config::new(
        format!("http://127.0.0.1:{}", closed_port())
            .parse()
            .unwrap(),
    );
    let metrics = Metrics {
        client: kube::Client::try_from(kube).unwrap(),
        prometheus: Prometheus::new(&format!("http://{prom_addr}")).unwrap(),
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listeners = serve::Listeners {
        web: TcpListener::bind(any).await.unwrap(),
        metrics_api: TcpListener::bind(any).await.unwrap(),
        admin: None,
    };
    let running = serve::spawn(
        metrics,
        Regex::new(DEFAULT_ENFORCED_HOST).unwrap(),
        limits,
        listeners,
        Tasks::default(),
    )
    .unwrap();
    Server {
        running,
        prometheus_calls: calls,
    }
}

/// One HTTP/1.1 request; the status, the headers and the body.
async fn get(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn req(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

fn message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    v["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_is_asked() {
    let s = start(oxlink_admin::serve::Limits::WEB).await;
    let api = s.running.metrics_api_addr;
    for (path, expected) in [
        (
            "/api/stat?resource=widgets",
            "cannot find Kubernetes canonical name from friendly name [widgets]",
        ),
        (
            "/api/stat?namespace=todo",
            "parameter \"resource\" is required: TYPE, TYPE/NAME",
        ),
        (
            "/api/stat?resource=deploy&namespace=Bad_NS",
            "invalid namespace \"Bad_NS\": a Kubernetes name is lower-case letters, digits, '-' and '.'",
        ),
        (
            "/api/routes?resource=deploy",
            "please specify one resource, as TYPE/NAME or TYPE NAME",
        ),
        (
            "/api/edges?resource=deploy/web",
            "edges are shown for a resource type, not one resource: try `deployment`",
        ),
        (
            "/api/stat?resource=deploy&window=forever",
            "invalid time window \"forever\": expected a duration like 30s, 1m or 1h",
        ),
    ] {
        let (code, _, body) = get(api, &req(path, "x")).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert_eq!(message(&body), expected, "{path}");
    }
    let long = format!("/api/stat?resource=deploy/{}", "a".repeat(5000));
    let (code, _, body) = get(api, &req(&long, "x")).await;
    assert_eq!(code, 400);
    assert!(
        message(&body).contains("at most 4096 are accepted"),
        "{body}"
    );
    // A body is refused too, before it is read.
    let (code, _, body) = get(
        api,
        "GET /api/edges?resource=deploy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "a GET request carries no body")
    );
    let (code, head, _) = get(
        api,
        "POST /api/stat HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    assert_eq!(
        s.prometheus_calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "bad input reached Prometheus"
    );
}

#[tokio::test]
async fn failing_backends_are_named_and_release_what_they_held() {
    let s = start(oxlink_admin::serve::Limits::WEB).await;
    let api = s.running.metrics_api_addr;
    // Prometheus closes every connection: a 502 that says so.
    let (code, _, body) = get(api, &req("/api/edges?resource=deploy&namespace=todo", "x")).await;
    assert_eq!(code, 502, "{body}");
    let m = message(&body);
    assert!(m.starts_with("Prometheus at http://127.0.0.1:"), "{m}");
    assert!(s.prometheus_calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // The API server is not there: a 502 that says Kubernetes.
    let (code, _, body) = get(api, &req("/api/stat?resource=deploy&namespace=todo", "x")).await;
    assert_eq!(code, 502, "{body}");
    assert!(message(&body).starts_with("Kubernetes: "), "{body}");
    // The self-check names the Prometheus it tried.
    let (code, _, body) = get(api, &req("/api/self-check", "x")).await;
    assert_eq!(code, 502, "{body}");
    // Every answered request gave its place back: MAX_IN_FLIGHT more fit at once.
    let request = req("/api/edges?resource=po", "x");
    let mut all = Vec::new();
    for _ in 0..MAX_IN_FLIGHT {
        all.push(get(api, &request));
    }
    for (code, _, body) in futures::future::join_all(all).await {
        assert_eq!(code, 502, "{body}");
    }
}

#[tokio::test]
async fn the_dashboard_checks_host_and_the_metrics_api_does_not() {
    let s = start(oxlink_admin::serve::Limits::WEB).await;
    let (web, api) = (s.running.web_addr, s.running.metrics_api_addr);
    for host in [
        "localhost:50750",
        "127.0.0.1:8084",
        "[::1]:8084",
        "web.linkerd-viz.svc.cluster.local:8084",
        "localhost",
    ] {
        let (code, head, body) = get(web, &req("/", host)).await;
        assert_eq!(code, 200, "{host}: {body}");
        assert!(head.contains("text/html"), "{head}");
        assert!(body.contains("<script src=\"app.js\"></script>"));
    }
    let (code, _, body) = get(web, &req("/namespaces", "evil.example:8084")).await;
    assert_eq!(code, 403);
    assert!(
        message(&body).starts_with(
            "It appears that you are trying to reach this service with a host of 'evil.example:8084'."
        ),
        "{body}"
    );
    let (code, _, _) = get(web, &req("/", "localhost.evil.example")).await;
    assert_eq!(code, 403);
    // The API server's Service proxy sends its own host: the metrics-API listener serves it.
    let (code, _, _) = get(api, &req("/namespaces/todo", "10.0.0.1:6443")).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn pages_and_assets_are_served_and_other_paths_are_not() {
    let s = start(oxlink_admin::serve::Limits::WEB).await;
    let web = s.running.web_addr;
    for page in [
        "/",
        "/overview",
        "/namespaces",
        "/namespaces/todo",
        "/namespaces/todo/",
        "/namespaces/todo/deployments/web",
    ] {
        let (code, _, body) = get(web, &req(page, "localhost")).await;
        assert_eq!(code, 200, "{page}");
        assert!(body.starts_with("<!doctype html>"), "{page}");
    }
    let (code, head, body) = get(web, &req("/app.js", "localhost")).await;
    assert_eq!(code, 200);
    assert!(head.contains("text/javascript"));
    assert!(body.contains("api(\"stat\""));
    let (code, head, _) = get(web, &req("/app.css", "localhost")).await;
    assert!(code == 200 && head.contains("text/css"));
    // Relative links from every view find them.
    for beside in [
        "/namespaces/app.js",
        "/namespaces/todo/app.js",
        "/namespaces/todo/deployments/app.css",
    ] {
        let (code, head, _) = get(web, &req(beside, "localhost")).await;
        assert_eq!(code, 200, "{beside}");
        assert!(!head.contains("text/html"), "{beside}: {head}");
    }
    for missing in [
        "/namespaces/todo/pods/x",
        "/namespaces//deployments/x",
        "/api/tap",
        "/etc/passwd",
        "/etc/app.js",
        "/namespaces/todo/pods/x/app.js",
    ] {
        let (code, _, body) = get(web, &req(missing, "localhost")).await;
        assert_eq!(code, 404, "{missing}: {body}");
    }
}

#[tokio::test]
async fn connections_past_the_limit_are_closed() {
    let limits = oxlink_admin::serve::Limits {
        max_connections: 1,
        ..oxlink_admin::serve::Limits::WEB
    };
    let s = start(limits).await;
    let web = s.running.web_addr;
    // The first connection is held open without a request.
    let _held = TcpStream::connect(web).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = TcpStream::connect(web).await.unwrap();
    let _ = second.write_all(req("/", "localhost").as_bytes()).await;
    let mut buf = Vec::new();
    let n = second.read_to_end(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf));
    assert_eq!(s.running.connections.refused_total("limit"), 1);
}

#[tokio::test]
async fn api_requests_past_the_in_flight_bound_are_refused_not_queued() {
    let s = start(oxlink_admin::serve::Limits::WEB).await;
    drop(s.running);
    let metrics = Metrics {
        client: kube::Client::try_from(kube::Config::new(
            format!("http://127.0.0.1:{}", closed_port())
                .parse()
                .unwrap(),
        ))
        .unwrap(),
        prometheus: Prometheus::new(&format!("http://127.0.0.1:{}", closed_port())).unwrap(),
    };
    // Every permit is taken by requests in flight.
    let web = Web::new(metrics, None, Arc::new(Semaphore::new(0)));
    let response = web.api(EDGES_PATH, "resource=deploy").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Bad input is still refused as such.
    let response = web.api(EDGES_PATH, "resource=nope").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
