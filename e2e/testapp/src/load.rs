//! `load`: a steady, paced load over keep-alive connections, counted by [`Recorder`].

use crate::{
    args, client,
    httpd::{self, Handler},
    listen::Server,
    stats::Recorder,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Bytes;
use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};
use tokio::{
    task::JoinSet,
    time::{Instant, MissedTickBehavior},
};

/// `load`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// A URL to send GET requests to (repeatable: they take turns).
    #[arg(long = "url", value_name = "URL", required = true, value_parser = args::http_url)]
    pub urls: Vec<Uri>,
    /// Requests per second, evenly paced.
    #[arg(long, value_name = "N", default_value = "10", value_parser = args::rate)]
    pub rps: f64,
    /// How long to run, then print the stats as JSON and exit (default: until stopped).
    #[arg(long, value_name = "D", value_parser = args::duration)]
    pub duration: Option<Duration>,
    /// Serve `GET /stats` (the JSON) and `POST /reset` on this port.
    #[arg(long, value_name = "PORT")]
    pub stats_port: Option<u16>,
    /// A request with no response within this counts as an error.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = args::duration)]
    pub timeout: Duration,
    /// Use h2c with prior knowledge instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
}

/// A load to generate.
#[derive(Clone, Debug)]
pub struct Load {
    /// The URLs, in turn.
    pub urls: Vec<Uri>,
    /// Requests per second.
    pub rps: f64,
    /// How long, or forever.
    pub duration: Option<Duration>,
    /// Per request.
    pub timeout: Duration,
    /// h2c instead of HTTP/1.1.
    pub http2: bool,
}

// === impl LoadArgs ===

impl LoadArgs {
    /// Runs the load; prints the stats on stdout at the end or when stopped.
    pub async fn run(
        self,
        ip: IpAddr,
        pod: String,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Self {
            urls,
            rps,
            duration,
            stats_port,
            timeout,
            http2,
        } = self;
        let recorder = Arc::new(Recorder::default());
        // Held until the end: dropping it would stop the stats server.
        let stats_server = match stats_port {
            Some(port) => {
                Some(serve_stats(SocketAddr::new(ip, port), &pod, recorder.clone()).await?)
            }
            None => None,
        };
        let load = Load {
            urls,
            rps,
            duration,
            timeout,
            http2,
        };
        eprintln!(
            "oxlink-testapp load: {rps} requests/s over {} for {} to {}{}",
            if http2 { "h2c" } else { "HTTP/1.1" },
            duration.map_or("ever".into(), |d| format!("{d:?}")),
            load.urls
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            stats_server.as_ref().map_or(String::new(), |s| format!(
                "; GET /stats and POST /reset on {}",
                s.addr()
            )),
        );
        // Stopped, it sends nothing more but waits for the requests in flight (each ends
        // within its timeout), as a client that shuts down cleanly does.
        load.generate_until(&recorder, shutdown).await;
        println!("{}", serde_json::to_string(&recorder.snapshot())?);
        Ok(())
    }
}

// === impl Load ===

impl Load {
    /// Sends requests until the duration is over, then waits for the ones in flight.
    pub async fn generate(&self, recorder: &Arc<Recorder>) {
        self.generate_until(recorder, std::future::pending()).await;
    }

    /// Sends requests until the duration is over or `stop` completes, then waits for the ones
    /// in flight.
    pub async fn generate_until(&self, recorder: &Arc<Recorder>, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let client = client::new(self.http2);
        let period = Duration::from_secs_f64(1.0 / self.rps);
        let mut ticks = tokio::time::interval(period);
        // Steady, not bursty: a late tick is dropped rather than caught up on.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let end = self.duration.map(|d| Instant::now() + d);
        let mut in_flight = JoinSet::new();
        for url in self.urls.iter().cycle() {
            tokio::select! {
                biased;
                () = sleep_until(end) => break,
                () = &mut stop => break,
                _ = ticks.tick() => {}
            }
            while in_flight.try_join_next().is_some() {}
            let ticket = recorder.sent(&url.to_string());
            let (client, recorder, url) = (client.clone(), recorder.clone(), url.clone());
            let timeout = self.timeout;
            in_flight.spawn(async move {
                let started = Instant::now();
                match client::send(&client, get(url), timeout).await {
                    Ok(rsp) => recorder.response(
                        ticket,
                        rsp.status.as_u16(),
                        rsp.served_by.as_deref(),
                        started.elapsed(),
                    ),
                    Err(e) => recorder.error(ticket, e.kind()),
                }
            });
        }
        while in_flight.join_next().await.is_some() {}
    }
}

async fn sleep_until(end: Option<Instant>) {
    match end {
        Some(end) => tokio::time::sleep_until(end).await,
        None => std::future::pending().await,
    }
}

fn get(url: Uri) -> Request<httpd::Body> {
    let mut req = Request::new(Full::default());
    *req.uri_mut() = url;
    req
}

// === the stats server ===

#[derive(Debug)]
struct StatsServer(Arc<Recorder>);

/// Serves `GET /stats` and `POST /reset` on `addr`.
pub async fn serve_stats(
    addr: SocketAddr,
    pod: &str,
    recorder: Arc<Recorder>,
) -> io::Result<Server> {
    httpd::serve(addr, pod, Arc::new(StatsServer(recorder))).await
}

impl Handler for StatsServer {
    async fn handle(&self, req: Request<Bytes>) -> Response<httpd::Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/stats") => httpd::json(StatusCode::OK, &self.0.snapshot()),
            (&Method::POST, "/reset") => {
                self.0.reset();
                httpd::json(StatusCode::OK, &self.0.snapshot())
            }
            (_, "/healthz") => httpd::text(StatusCode::OK, "ok"),
            (m, p) => httpd::text(StatusCode::NOT_FOUND, format!("no route {m} {p}\n")),
        }
    }
}

#[cfg(test)]
mod tests;
