//! `get`: sequential requests, one JSON line each.

use crate::{args, client, stats::round};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Serialize;
use std::{io::Write, time::Duration};
use tokio::time::Instant;

/// `get`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct GetArgs {
    /// The http:// URL.
    #[arg(value_parser = args::http_url)]
    pub url: Uri,
    /// Requests to send, one after the other, over a kept-alive connection.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u64,
    /// The request method.
    #[arg(long, value_name = "M", default_value = "GET", value_parser = args::method)]
    pub method: Method,
    /// A request header (repeatable), e.g. `--header l5d-dst-override:web.ns.svc.cluster.local:80`.
    #[arg(long = "header", value_name = "K:V", value_parser = args::header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The request body.
    #[arg(long, value_name = "TEXT")]
    pub data: Option<String>,
    /// Use h2c with prior knowledge instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// A request with no response within this is reported as an error.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = args::duration)]
    pub timeout: Duration,
}

/// One line of output.
#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Line {
    /// A response.
    Response {
        /// Its status.
        status: u16,
        /// Its `x-served-by`.
        served_by: Option<String>,
        /// Milliseconds from sending to the end of the body.
        ms: f64,
    },
    /// No response.
    Error {
        /// Why.
        error: String,
    },
}

impl GetArgs {
    /// Sends the requests, writing a line to `out` for each.
    pub async fn run(self, out: &mut impl Write) -> anyhow::Result<()> {
        let Self {
            url,
            count,
            method,
            headers,
            data,
            http2,
            timeout,
        } = self;
        eprintln!(
            "oxlink-testapp get: {count} {method} request(s) to {url} over {}",
            if http2 { "h2c" } else { "HTTP/1.1" }
        );
        let client = client::new(http2);
        for _ in 0..count {
            let mut req = Request::new(Full::from(data.clone().unwrap_or_default()));
            *req.method_mut() = method.clone();
            *req.uri_mut() = url.clone();
            req.headers_mut()
                .extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            let started = Instant::now();
            let line = match client::send(&client, req, timeout).await {
                Ok(rsp) => Line::Response {
                    status: rsp.status.as_u16(),
                    served_by: rsp.served_by,
                    ms: round(started.elapsed().as_secs_f64() * 1e3, 1),
                },
                Err(e) => Line::Error {
                    error: e.to_string(),
                },
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            out.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
