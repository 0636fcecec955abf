//! `cargo xtask bench identity`: how fast and how lean the CA is.
//!
//! Three measurements, each printed as one line of numbers:
//! - `ca`: the [`Certifier`] alone — CSR parse with proof of possession, name checks, signing —
//!   with an in-process token validator, so nothing but the CA's own work is timed;
//! - `grpc`: the Certify service on loopback (h2c), driven by concurrent simulated proxies with
//!   real tonic clients, as fast as they go, and then paced at a fixed rate for the latency at
//!   that rate;
//! - `token-review` (with `--token-review`, needs `KUBECONFIG`): the same over loopback, but every
//!   token is a real ServiceAccount token checked with a TokenReview by the API server, through
//!   the client every controller builds (`oxlink_kube::infer`; `--kube-default-client` uses
//!   kube's default stack instead, for comparison). It also reports the connections this process
//!   holds to the API server (most at once, and at the end) and the API server's CPU per
//!   certificate, read from `/proc` of the process that listens on the API server's port
//!   (localkube's `apiserver`).
//!
//! - `storm` (with `--storm N`, needs `KUBECONFIG`): N pods with real bound tokens certify at
//!   once, with TokenReview only and with in-process verification (see `certify/storm.rs`).
//!
//! CPU is the process's user+system time over the run (`/proc/self/stat`), so "per core" numbers
//! do not depend on how many cores the scheduler lent us. RSS is read from `/proc/self/status`.
//! Numbers from a shared machine are noisy: compare within one run.

use linkerd2_proxy_api::identity::{self as api, identity_client::IdentityClient};
use oxlink_identity::{
    Certifier, CertifyRequest, Events, IdentityDomain, IdentityGrpc, IssuerState, Metrics,
    TokenError, TokenReviewer, ValidateToken, serve_grpc,
};
use prometheus_client::registry::Registry;
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

const DOMAIN: &str = "serviceaccount.identity.linkerd.cluster.local";

struct Opts {
    proxies: usize,
    certs: usize,
    rate: u64,
    paced_secs: u64,
    token_review: bool,
    kube_default_client: bool,
    storm: Option<usize>,
    storm_connections: usize,
}

#[path = "certify/storm.rs"]
mod storm;

fn main() -> anyhow::Result<()> {
    let opts = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(opts))
}

fn parse_args() -> anyhow::Result<Opts> {
    let mut opts = Opts {
        proxies: 64,
        certs: 20_000,
        rate: 1_000,
        paced_secs: 5,
        token_review: false,
        kube_default_client: false,
        storm: None,
        storm_connections: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--proxies" => opts.proxies = value()?.parse()?,
            "--certs" => opts.certs = value()?.parse()?,
            "--rate" => opts.rate = value()?.parse()?,
            "--paced-secs" => opts.paced_secs = value()?.parse()?,
            "--token-review" => opts.token_review = true,
            "--kube-default-client" => opts.kube_default_client = true,
            "--storm" => opts.storm = Some(value()?.parse()?),
            "--storm-connections" => opts.storm_connections = value()?.parse()?,
            // cargo bench passes `--bench`; nothing else is ours.
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument {other}; use --proxies N --certs N --rate N --paced-secs N --token-review [--kube-default-client] | --storm N [--storm-connections N]"
            ),
        }
    }
    Ok(opts)
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    if let Some(n) = opts.storm {
        return storm::run(n, opts.storm_connections).await;
    }
    let rss_start = rss_kib("VmRSS");
    println!(
        "identity bench: {} simulated proxies, {} certificates per run, paced rate {}/s",
        opts.proxies, opts.certs, opts.rate
    );

    // Every proxy makes its key and CSR once, as a real proxy does, and reuses them on renewal.
    let proxies: Vec<Proxy> = (0..opts.proxies).map(Proxy::new).collect();

    let certifier = Arc::new(new_certifier(BenchTokens));
    let idle_rss = rss_kib("VmRSS");
    let r = ca_only(&certifier, &proxies, opts.certs).await?;
    r.print("ca (Certifier only, in-process tokens)");

    let addr = serve(certifier.clone()).await?;
    let r = grpc_flat_out(addr, &proxies, opts.certs).await?;
    r.print("grpc (loopback h2c, in-process tokens)");
    let r = grpc_paced(addr, &proxies, opts.rate, opts.paced_secs).await?;
    r.print(&format!("grpc paced at {}/s", opts.rate));

    if opts.token_review {
        let client = if opts.kube_default_client {
            kube::Client::try_default().await?
        } else {
            oxlink_kube::infer().await?
        };
        let api = ApiServer::find().await?;
        let (client_proxies, reviewer) = kube_proxies(client, opts.proxies).await?;
        let certifier = Arc::new(new_certifier(reviewer));
        let addr = serve(certifier).await?;
        let (r, api) = api
            .during(grpc_flat_out(addr, &client_proxies, opts.certs.min(5_000)))
            .await?;
        let certs = r.certs;
        let which = if opts.kube_default_client {
            "kube's default client"
        } else {
            "oxlink-kube client"
        };
        r.print(&format!(
            "token-review (loopback h2c, TokenReview per request, {which})"
        ));
        api.print(certs);
    }

    println!(
        "rss: start {} KiB, certifier loaded (idle) {} KiB, peak {} KiB",
        rss_start,
        idle_rss,
        rss_kib("VmHWM")
    );
    Ok(())
}

// === the CA and its server ===

/// Tokens named after the proxy's ServiceAccount: `token-<n>` proves `sa-<n>` in `bench`.
struct BenchTokens;

impl ValidateToken for BenchTokens {
    async fn validate(&self, token: &str) -> Result<String, TokenError> {
        match token.strip_prefix("token-") {
            Some(n) => Ok(format!("system:serviceaccount:bench:sa-{n}")),
            None => Err(TokenError::Invalid("unknown token".into())),
        }
    }
}

fn new_certifier<V: ValidateToken>(tokens: V) -> Certifier<V> {
    let issuer = IssuerState::default();
    issuer.set(oxlink_tls::fixtures::issuer());
    let metrics = Metrics::register(&mut Registry::default());
    let domain = IdentityDomain::new("linkerd", "cluster.local").expect("valid domain");
    Certifier::new(issuer, tokens, domain, Events::disabled(), metrics)
}

async fn serve<V: ValidateToken>(
    certifier: Arc<Certifier<V>>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let svc = IdentityGrpc::new(certifier).svc();
    let connections = oxlink_admin::serve::ServerMetrics::unregistered("identity");
    tokio::spawn(async move {
        let limits = oxlink_admin::serve::Limits::GRPC;
        serve_grpc(
            listener,
            svc,
            None,
            &limits,
            connections,
            std::future::pending(),
        )
        .await
    });
    Ok(addr)
}

// === simulated proxies ===

#[derive(Clone)]
struct Proxy {
    identity: String,
    token: String,
    csr: Vec<u8>,
}

impl Proxy {
    fn new(n: usize) -> Self {
        let identity = format!("sa-{n}.bench.{DOMAIN}");
        let (_key, csr) = oxlink_tls::fixtures::csr(&identity);
        Self {
            identity,
            token: format!("token-{n}"),
            csr,
        }
    }

    fn request(&self) -> api::CertifyRequest {
        api::CertifyRequest {
            identity: self.identity.clone(),
            token: self.token.as_bytes().to_vec(),
            certificate_signing_request: self.csr.clone(),
        }
    }
}

/// Proxies whose tokens are real: a namespace `oxlink-bench` with one ServiceAccount per proxy
/// and a token for audience `identity.l5d.io` each, reviewed by the API server.
async fn kube_proxies(
    client: kube::Client,
    n: usize,
) -> anyhow::Result<(Vec<Proxy>, TokenReviewer)> {
    use k8s_openapi::api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::{Namespace, ServiceAccount},
    };
    use kube::api::{Api, ObjectMeta, PostParams};
    let ns = "oxlink-bench";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut proxies = Vec::with_capacity(n);
    for i in 0..n {
        let sa = format!("sa-{i}");
        let _ = accounts
            .create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(sa.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await;
        let token = accounts
            .create_token_request(
                &sa,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec!["identity.l5d.io".into()],
                        expiration_seconds: Some(3600),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?
            .status
            .ok_or_else(|| anyhow::anyhow!("TokenRequest without status"))?
            .token;
        let identity = format!("{sa}.{ns}.{DOMAIN}");
        let (_key, csr) = oxlink_tls::fixtures::csr(&identity);
        proxies.push(Proxy {
            identity,
            token,
            csr,
        });
    }
    let metrics = Metrics::register(&mut Registry::default());
    Ok((proxies, TokenReviewer::new(client, metrics)))
}

// === the runs ===

struct Report {
    certs: usize,
    wall: Duration,
    cpu: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    /// The `p` quantile of the latencies, in milliseconds.
    fn pct(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    fn print(mut self, what: &str) {
        let (p50, p99, max) = (self.pct(0.50), self.pct(0.99), self.pct(1.0));
        println!(
            "{what}: {} certs in {:.2}s = {:.0} certs/s; {:.0} certs per CPU-second; \
             latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.certs,
            self.wall.as_secs_f64(),
            self.certs as f64 / self.wall.as_secs_f64(),
            self.certs as f64 / self.cpu.as_secs_f64().max(1e-9),
            p50,
            p99,
            max,
        );
    }
}

/// Calls the Certifier directly from as many tasks as there are proxies.
async fn ca_only<V: ValidateToken>(
    certifier: &Arc<Certifier<V>>,
    proxies: &[Proxy],
    total: usize,
) -> anyhow::Result<Report> {
    let per_proxy = total.div_ceil(proxies.len());
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut tasks = Vec::new();
    for p in proxies {
        let (certifier, p) = (certifier.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_proxy);
            for _ in 0..per_proxy {
                let req = CertifyRequest {
                    identity: p.identity.clone(),
                    token: p.token.as_bytes().to_vec(),
                    csr: p.csr.clone(),
                };
                let t = Instant::now();
                certifier.certify(req).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    collect(tasks, t0, cpu0).await
}

/// Each proxy has its own connection and certifies back to back.
async fn grpc_flat_out(
    addr: std::net::SocketAddr,
    proxies: &[Proxy],
    total: usize,
) -> anyhow::Result<Report> {
    let per_proxy = total.div_ceil(proxies.len());
    let clients = connect_all(addr, proxies.len()).await?;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut tasks = Vec::new();
    for (p, mut client) in proxies.iter().cloned().zip(clients) {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_proxy);
            for _ in 0..per_proxy {
                let t = Instant::now();
                client.certify(p.request()).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    collect(tasks, t0, cpu0).await
}

/// The proxies together send `rate` requests a second for `secs` seconds.
async fn grpc_paced(
    addr: std::net::SocketAddr,
    proxies: &[Proxy],
    rate: u64,
    secs: u64,
) -> anyhow::Result<Report> {
    let clients = connect_all(addr, proxies.len()).await?;
    let per_proxy = (rate * secs) as usize / proxies.len();
    let interval = Duration::from_secs_f64(proxies.len() as f64 / rate as f64);
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut tasks = Vec::new();
    let n = proxies.len();
    for (i, (p, mut client)) in proxies.iter().cloned().zip(clients).enumerate() {
        tasks.push(tokio::spawn(async move {
            // Spread the proxies' first requests over one interval.
            tokio::time::sleep(interval.mul_f64(i as f64 / n as f64)).await;
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut lat = Vec::with_capacity(per_proxy);
            for _ in 0..per_proxy {
                ticks.tick().await;
                let t = Instant::now();
                client.certify(p.request()).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    collect(tasks, t0, cpu0).await
}

async fn connect_all(
    addr: std::net::SocketAddr,
    n: usize,
) -> anyhow::Result<Vec<IdentityClient<tonic::transport::Channel>>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(IdentityClient::connect(format!("http://{addr}")).await?);
    }
    Ok(clients)
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>>,
    t0: Instant,
    cpu0: Duration,
) -> anyhow::Result<Report> {
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Report {
        certs: latencies.len(),
        wall: t0.elapsed(),
        cpu: cpu_time().saturating_sub(cpu0),
        latencies,
    })
}

// === the API server's side ===

/// The API server of the cluster in `KUBECONFIG`: its port, and the process listening on it.
struct ApiServer {
    port: u16,
    pid: Option<u32>,
}

/// What a run cost the API server, and the connections this process held to it.
struct ApiReport {
    pid: Option<u32>,
    cpu: Duration,
    max_connections: usize,
    end_connections: usize,
}

impl ApiServer {
    async fn find() -> anyhow::Result<Self> {
        let url = kube::Config::infer().await?.cluster_url;
        let port = url
            .port_u16()
            .ok_or_else(|| anyhow::anyhow!("{url} names no port"))?;
        Ok(Self {
            port,
            pid: oxlink_kube::proc::listener_pid(port),
        })
    }

    /// Runs `run` while counting this process's connections to the API server every 20ms.
    async fn during<T>(
        &self,
        run: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, ApiReport)> {
        use oxlink_kube::proc::{cpu_time, established_to};
        let (me, port) = (std::process::id(), self.port);
        let cpu0 = self.pid.map(cpu_time).unwrap_or_default();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let sampler = tokio::spawn(async move {
            let mut max = 0;
            loop {
                max = max.max(established_to(me, port));
                tokio::select! {
                    _ = &mut stopped => return max,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        });
        let out = run.await?;
        let cpu = self
            .pid
            .map(|p| cpu_time(p).saturating_sub(cpu0))
            .unwrap_or_default();
        let _ = stop.send(());
        let max_connections = sampler.await?;
        Ok((
            out,
            ApiReport {
                pid: self.pid,
                cpu,
                max_connections,
                end_connections: established_to(me, port),
            },
        ))
    }
}

impl ApiReport {
    fn print(&self, certs: usize) {
        let cpu = match self.pid {
            Some(pid) => format!(
                "API-server CPU {:.2} ms per cert (pid {pid})",
                self.cpu.as_secs_f64() * 1e3 / certs.max(1) as f64
            ),
            None => "API-server CPU unknown (its process is not visible)".into(),
        };
        println!(
            "  api-server connections: at most {} at once, {} at the end; {cpu}",
            self.max_connections, self.end_connections,
        );
    }
}

// === /proc readings ===

/// This process's user + system CPU time.
fn cpu_time() -> Duration {
    oxlink_kube::proc::cpu_time(std::process::id())
}

/// A `Vm*` line of `/proc/self/status`, in KiB.
fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}
