//! The client stack: kube's own layers (base URI, retries on 429/503/504, auth, extra headers)
//! over a hyper client that offers HTTP/2 by ALPN, bounds requests in flight and idle
//! connections, and counts its requests and connections.

use crate::{connect::Counting, metrics::METRICS};
use http::{Request, Response};
use hyper_util::{
    client::legacy::connect::HttpConnector,
    rt::{TokioExecutor, TokioTimer},
};
use kube::client::{Body, ClientBuilder, ConfigExt, RustlsTlsError, retry::RetryPolicy};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tower::{BoxError, Service, ServiceBuilder, limit::ConcurrencyLimitLayer, retry::RetryLayer};

/// How a client uses its connections to the API server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Requests waiting for their response headers at once; more wait for a slot. (A watch holds
    /// a slot only until its headers arrive.)
    pub max_in_flight: usize,
    /// Idle connections kept for reuse. Over HTTP/2 there is one connection; this bounds what an
    /// HTTP/1-only server (or proxy) would leave open after a burst.
    pub max_idle_connections: usize,
    /// An idle connection is closed after this long.
    pub idle_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            max_idle_connections: 4,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// The client for `config` with the default [`Options`].
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    client_with(config, &Options::default())
}

/// The client for the cluster `KUBECONFIG` (or the in-cluster ServiceAccount) names.
pub async fn infer() -> Result<kube::Client, kube::Error> {
    client(
        kube::Config::infer()
            .await
            .map_err(kube::Error::InferConfig)?,
    )
}

/// The client for `config`, with `options`.
///
/// What kube's default stack does and this one does not: read/write timeouts on the socket,
/// and the expiry of exec-plugin client certificates. A config with a `proxy_url` gets kube's
/// default stack (whose proxy support our kube features leave out, so it says why it fails).
pub fn client_with(config: kube::Config, options: &Options) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    http.set_keepalive(Some(Duration::from_secs(30)));

    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    let tls = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| kube::Error::RustlsTls(RustlsTlsError::InvalidServerName(e)))?;
            tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => tls,
    };
    // ALPN offers h2 first: one multiplexed connection, as client-go keeps.
    let connector = tls
        .enable_http1()
        .enable_http2()
        .wrap_connector(Counting(http));

    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(options.idle_timeout)
        .pool_max_idle_per_host(options.max_idle_connections)
        // client-go's HTTP/2 health check: ping after 30s of silence, give up after 15s more.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(15))
        .build(connector);

    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(ConcurrencyLimitLayer::new(options.max_in_flight))
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(Instrumented(hyper));
    Ok(ClientBuilder::new(service, config.default_namespace).build())
}

/// Counts each request (each attempt, when retried) and its latency to the response headers.
#[derive(Clone, Debug)]
struct Instrumented<S>(S);

impl<S, B> Service<Request<Body>> for Instrumented<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = req.method().clone();
        let start = Instant::now();
        METRICS.request_started();
        let response = self.0.call(req);
        Box::pin(async move {
            let result = response.await;
            let code = result.as_ref().ok().map(|r| r.status().as_u16());
            METRICS.request_ended(&method, code, start.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests;
