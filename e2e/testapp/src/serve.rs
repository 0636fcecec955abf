//! `serve`: the generic test server, with configurable latency, statuses and failures.

use crate::{
    args::{self, PathRule},
    httpd::{self, Handler},
    listen::Server,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

/// The path that always answers 200 `ok`, uncounted.
pub const HEALTHZ: &str = "/healthz";
/// The path that answers the server's own [`Counts`] as JSON, uncounted.
pub const COUNTS: &str = "/_testapp/counts";

/// `serve`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Port to serve HTTP/1.1 and h2c on (repeatable or comma-separated; default 8080).
    #[arg(long = "http", value_name = "PORT", value_delimiter = ',')]
    pub http: Vec<u16>,
    /// After SIGTERM, go on serving this long before stopping (what a preStop sleep gives an
    /// app: time to leave the Service's endpoints), e.g. `2s`.
    #[arg(long, value_name = "D", value_parser = args::duration)]
    pub shutdown_delay: Option<Duration>,
    #[command(flatten)]
    pub behaviour: BehaviourArgs,
}

/// How the server answers, beside `/healthz`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct BehaviourArgs {
    /// That path sleeps DURATION before answering (repeatable), e.g. `/stress=300ms`.
    #[arg(long, value_name = "PATH=DURATION", value_parser = args::latency_rule)]
    pub latency: Vec<PathRule<Duration>>,
    /// That path answers CODE (repeatable), e.g. `/missing=404`.
    #[arg(long, value_name = "PATH=CODE", value_parser = args::status_rule)]
    pub status: Vec<PathRule<StatusCode>>,
    /// That fraction of requests answers 500, evenly spread (0.25: every 4th).
    #[arg(long, value_name = "F", value_parser = args::fraction)]
    pub fail_rate: Option<f64>,
    /// The first N requests answer 503.
    #[arg(long, value_name = "N")]
    pub fail_first: Option<u64>,
    /// Every Nth request answers 503.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub fail_every: Option<u64>,
}

/// What the server has answered so far (`GET /_testapp/counts`).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Requests received (beside `/healthz` and this path).
    pub requests: u64,
    /// Responses sent, by status code.
    pub by_status: BTreeMap<String, u64>,
}

/// A running `serve`: one server per port, sharing their behaviour and counts.
#[derive(Debug)]
pub struct Serving {
    servers: Vec<Server>,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    pod: String,
    latency: HashMap<String, Duration>,
    status: HashMap<String, StatusCode>,
    /// The failure fraction in millionths, for exact integer spreading.
    fail_ppm: u64,
    fail_first: u64,
    fail_every: Option<u64>,
    counts: Mutex<Counts>,
}

#[derive(Serialize)]
struct Echo<'a> {
    pod: &'a str,
    path: &'a str,
    method: &'a str,
}

// === impl ServeArgs ===

impl ServeArgs {
    /// Serves until the process ends.
    pub async fn run(self, ip: IpAddr, pod: String) -> anyhow::Result<()> {
        let Self {
            http,
            shutdown_delay: _,
            behaviour,
        } = self;
        let ports = if http.is_empty() { vec![8080] } else { http };
        let addrs: Vec<_> = ports.iter().map(|&p| SocketAddr::new(ip, p)).collect();
        let serving = Serving::start(&addrs, pod, behaviour).await?;
        let addrs: Vec<_> = serving.addrs().iter().map(ToString::to_string).collect();
        eprintln!(
            "oxlink-testapp serve: pod {} serving HTTP/1.1 and h2c on {} ({})",
            serving.state.pod,
            addrs.join(", "),
            serving.state,
        );
        std::future::pending().await
    }
}

// === impl Serving ===

impl Serving {
    /// Serves on each of `addrs`.
    pub async fn start(
        addrs: &[SocketAddr],
        pod: String,
        behaviour: BehaviourArgs,
    ) -> std::io::Result<Self> {
        let BehaviourArgs {
            latency,
            status,
            fail_rate,
            fail_first,
            fail_every,
        } = behaviour;
        let state = Arc::new(State {
            latency: latency.into_iter().map(|r| (r.path, r.value)).collect(),
            status: status.into_iter().map(|r| (r.path, r.value)).collect(),
            fail_ppm: (fail_rate.unwrap_or(0.0) * 1e6).round() as u64,
            fail_first: fail_first.unwrap_or(0),
            fail_every,
            counts: Mutex::default(),
            pod,
        });
        let mut servers = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            servers.push(httpd::serve(addr, &state.pod, state.clone()).await?);
        }
        Ok(Self { servers, state })
    }

    /// The bound addresses, in the order given.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(Server::addr).collect()
    }

    /// What has been answered so far.
    pub fn counts(&self) -> Counts {
        self.state.counts.lock().clone()
    }
}

// === impl State ===

impl State {
    /// The status for the `n`th counted request (from 1) to `path`.
    fn status_for(&self, n: u64, path: &str) -> StatusCode {
        if let Some(&status) = self.status.get(path) {
            return status;
        }
        if n <= self.fail_first || self.fail_every.is_some_and(|every| n.is_multiple_of(every)) {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        // The `n`th request fails when it carries the running failure count over an integer.
        let failures = |n: u64| n * self.fail_ppm / 1_000_000;
        if failures(n) > failures(n - 1) {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        StatusCode::OK
    }
}

impl Handler for State {
    async fn handle(&self, req: Request<Bytes>) -> Response<httpd::Body> {
        let path = req.uri().path();
        match path {
            HEALTHZ => return httpd::text(StatusCode::OK, "ok"),
            COUNTS if req.method() == Method::GET => {
                return httpd::json(StatusCode::OK, &*self.counts.lock());
            }
            _ => {}
        }
        let n = {
            let mut counts = self.counts.lock();
            counts.requests += 1;
            counts.requests
        };
        if let Some(&delay) = self.latency.get(path) {
            tokio::time::sleep(delay).await;
        }
        let status = self.status_for(n, path);
        *self
            .counts
            .lock()
            .by_status
            .entry(status.as_u16().to_string())
            .or_default() += 1;
        if httpd::is_grpc(&req) {
            return httpd::grpc(status);
        }
        let echo = Echo {
            pod: &self.pod,
            path,
            method: req.method().as_str(),
        };
        httpd::json(status, &echo)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rules: Vec<String> = Vec::new();
        let mut latency: Vec<_> = self.latency.iter().collect();
        latency.sort();
        rules.extend(latency.iter().map(|(p, d)| format!("latency {p}={d:?}")));
        let mut status: Vec<_> = self.status.iter().collect();
        status.sort();
        rules.extend(
            status
                .iter()
                .map(|(p, s)| format!("status {p}={}", s.as_u16())),
        );
        if self.fail_ppm > 0 {
            rules.push(format!("fail-rate {}", self.fail_ppm as f64 / 1e6));
        }
        if self.fail_first > 0 {
            rules.push(format!("fail-first {}", self.fail_first));
        }
        if let Some(every) = self.fail_every {
            rules.push(format!("fail-every {every}"));
        }
        match rules.is_empty() {
            true => f.write_str("every path answers 200"),
            false => f.write_str(&rules.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests;
