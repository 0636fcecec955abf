//! `oxlink viz dashboard`: Linkerd's command — a local port (default `localhost:50750`) to the
//! extension's dashboard, its URL printed and opened in a browser, until Ctrl-C.
//!
//! Linkerd port-forwards to the `web` pod (`pods/portforward`, a SPDY or WebSocket stream through
//! the API server to the kubelet). Ours forwards each HTTP request through the API server's
//! Service proxy to the `metrics-api` port of the same `web` pod, which serves the same pages:
//! it needs only `services/proxy` rights and no kubelet streaming, and the local listener
//! checks `Host` (`localhost`, `127.0.0.1`, `[::1]` or `--address`) as the dashboard's own port
//! does, against DNS rebinding. Requests are GET and HEAD only; answers are read up to
//! [`MAX_ANSWER_BYTES`].

use super::{NAMESPACE, WEB, cluster};
use crate::client::ClusterArgs;
use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode, body::Bytes, header, service::service_fn};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use oxlink_admin::serve::{Limits, Protocol, RequestBody, ServerMetrics, accept, serve_http};
use oxlink_crds::duration::parse_duration;
use std::{io::Write, sync::Arc, time::Duration};

/// Linkerd's default local port and address.
const DEFAULT_PORT: u16 = 50750;
const DEFAULT_ADDRESS: &str = "localhost";

/// The largest answer passed on to the browser.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What `--show` opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Show {
    /// Open the Linkerd dashboard in the default browser.
    Linkerd,
    /// Open the Grafana dashboard (the oxlink viz extension has none).
    Grafana,
    /// Only print the URL.
    Url,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DashboardArgs {
    /// The address at which to serve requests.
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    address: String,
    /// The local port on which to serve requests (when set to 0, a random port will be used).
    #[arg(short = 'p', long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Open a dashboard in a browser or show URLs in the CLI (one of: linkerd, grafana, url).
    #[arg(long, value_enum, default_value_t = Show::Linkerd)]
    show: Show,
    /// Wait for dashboard to become available if it's not available when the command is run.
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    wait: Duration,
}

/// The host names the local port answers to.
fn allowed_host(host: &str, address: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !n.ends_with(':') => n,
        _ => host,
    };
    ["localhost", "127.0.0.1", "[::1]", address].contains(&name)
        || (address.contains(':') && name == format!("[{address}]"))
}

/// Waits until the `web` Deployment has a ready replica; a missing extension is an error at once.
async fn wait_ready(client: &Client, wait: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    let api = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    loop {
        let web = api
            .get_opt(WEB)
            .await
            .context("reading the linkerd-viz extension's web Deployment")?;
        let Some(web) = web else {
            bail!(
                "the linkerd-viz extension is not installed: no Deployment {WEB} in namespace \
                 {NAMESPACE}; install it with `oxlink viz install | kubectl apply -f -`"
            );
        };
        let ready = web
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        if ready > 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the linkerd-viz dashboard is not available: Deployment {WEB} in namespace \
                 {NAMESPACE} has no ready pod after {}s; validate the install with `oxlink viz check`",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn plain(code: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Passes one browser request to the dashboard through the API server.
async fn forward(
    client: Client,
    address: Arc<str>,
    req: Request<RequestBody>,
) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !allowed_host(host, &address) {
        return plain(
            StatusCode::FORBIDDEN,
            format!(
                "It appears that you are trying to reach this service with a host of '{host}'. \
                 This does not match the dashboard's address and has been denied for security \
                 reasons. Please see https://linkerd.io/dns-rebinding for an explanation of what \
                 is happening and how to fix it."
            ),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed; use GET", req.method()),
        );
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let upstream = match http::Request::get(cluster::proxy_path(&path))
        .body(kube::client::Body::from(Vec::new()))
    {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("bad request path: {e}")),
    };
    let response = match client.send(upstream).await {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("the API server: {e}")),
    };
    let (parts, body) = response.into_parts();
    let body = match Limited::new(body, MAX_ANSWER_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("the dashboard's answer: {e}"),
            );
        }
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = parts.status;
    for name in [
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::CONTENT_SECURITY_POLICY,
        header::X_CONTENT_TYPE_OPTIONS,
        header::ALLOW,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

/// Opens `url` in the desktop's browser.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl DashboardArgs {
    pub(crate) fn run(self, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        if self.show == Show::Grafana {
            bail!(
                "the oxlink viz extension has no Grafana; use --show linkerd or --show url \
                 (Grafana can read the extension's Prometheus)"
            );
        }
        cluster::block_on(async {
            let client = cluster::client(cluster_args).await?;
            wait_ready(&client, self.wait).await?;
            let listener = tokio::net::TcpListener::bind((self.address.as_str(), self.port))
                .await
                .with_context(|| {
                    format!(
                        "Error running port-forward: cannot listen on {}:{}\nCheck for `oxlink viz \
                         dashboard` running in other terminal sessions, or use the `--port` flag.",
                        self.address, self.port
                    )
                })?;
            let port = listener.local_addr()?.port();
            let host = if self.address.contains(':') {
                format!("[{}]", self.address)
            } else {
                self.address.clone()
            };
            let url = format!("http://{host}:{port}");
            writeln!(out, "Linkerd dashboard available at:\n{url}")?;
            if self.show == Show::Linkerd {
                writeln!(out, "Opening Linkerd dashboard in the default browser")?;
                if !open_browser(&url) {
                    eprintln!("Failed to open Linkerd dashboard automatically");
                    eprintln!("Visit {url} in your browser to view the dashboard");
                }
            }
            out.flush()?;
            let limits = Limits::WEB;
            let metrics = ServerMetrics::unregistered("dashboard");
            let incoming = accept(listener, &limits, None, metrics.clone());
            let address: Arc<str> = self.address.clone().into();
            let svc = service_fn(move |req: Request<RequestBody>| {
                let (client, address) = (client.clone(), address.clone());
                async move { Ok::<_, std::convert::Infallible>(forward(client, address, req).await) }
            });
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            serve_http(incoming, svc, Protocol::Http1, &limits, metrics, stop).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::allowed_host;

    #[test]
    fn only_local_names_reach_the_local_port() {
        for ok in [
            "localhost:50750",
            "127.0.0.1:50750",
            "[::1]:50750",
            "localhost",
        ] {
            assert!(allowed_host(ok, "localhost"), "{ok}");
        }
        assert!(allowed_host("10.1.2.3:50750", "10.1.2.3"));
        assert!(allowed_host("[fd00::1]:50750", "fd00::1"));
        for bad in [
            "evil.example:50750",
            "localhost.evil.example",
            "",
            "10.1.2.3:50750",
        ] {
            assert!(!allowed_host(bad, "localhost"), "{bad}");
        }
    }
}
