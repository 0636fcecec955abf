//! The metrics API's Prometheus client: instant queries (`GET /api/v1/query`) over plain HTTP,
//! each bounded in time and in the size of its answer.

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use oxlink_viz::prom::{self, Sample};
use std::time::Duration;

/// The bundled Prometheus of the viz chart, as the metrics API reaches it without
/// `--prometheus-url`.
pub const DEFAULT_URL: &str = "http://prometheus.linkerd-viz.svc.cluster.local:9090";

/// How long one query may take, its answer included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read from Prometheus: a vector of a few thousand labelled series is far
/// below it; a bigger one is refused rather than held.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A query failed: Prometheus could not be reached, or answered something else than a vector.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("Prometheus at {url} is not reachable: {error}")]
    Unreachable { url: String, error: String },
    #[error("Prometheus at {url} did not answer within {}s", QUERY_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("Prometheus at {url} answered with more than {MAX_ANSWER_BYTES} bytes")]
    TooLarge { url: String },
    /// An answer that is not Prometheus' JSON (a proxy's or a load balancer's error page).
    #[error("Prometheus at {url} answered {status}: {body:?}")]
    Status {
        url: String,
        status: http::StatusCode,
        body: String,
    },
    #[error(transparent)]
    Answer(#[from] prom::PromError),
}

/// `--prometheus-url` is not an `http://host[:port][/path]` URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid Prometheus URL {url:?}: {why}")]
pub struct UrlError {
    url: String,
    why: &'static str,
}

/// A Prometheus server's query API.
#[derive(Clone, Debug)]
pub struct Prometheus {
    /// The base URL without a trailing `/`.
    url: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Prometheus {
    /// A client of the Prometheus at `url` (`http://host:port`, optionally with a path prefix).
    pub fn new(url: &str) -> Result<Self, UrlError> {
        let bad = |why| UrlError {
            url: url.to_string(),
            why,
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("only http:// is supported")),
            _ => return Err(bad("expected http://host:port")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a query string has no place in it"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(8)
            .build(connector);
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// The base URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The vector answering `query`.
    pub async fn query(&self, query: &str) -> Result<Vec<Sample>, QueryError> {
        let q = oxlink_viz::api::query_string(&[("query", query)]);
        let uri = format!("{}/api/v1/query?{q}", self.url);
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| QueryError::Unreachable {
                url: self.url.clone(),
                error: e.to_string(),
            })?;
        let answer = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| QueryError::Unreachable {
                        url: self.url.clone(),
                        error: error_chain(&e),
                    })?;
            // Prometheus answers errors (a bad query: 400, 422, 503) with its JSON body too.
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        QueryError::TooLarge {
                            url: self.url.clone(),
                        }
                    } else {
                        QueryError::Unreachable {
                            url: self.url.clone(),
                            error: e.to_string(),
                        }
                    }
                })?
                .to_bytes();
            let text = String::from_utf8_lossy(&body);
            match prom::parse_vector(&text) {
                Err(prom::PromError::Malformed(_)) if !status.is_success() => {
                    Err(QueryError::Status {
                        url: self.url.clone(),
                        status,
                        body: text.chars().take(200).collect(),
                    })
                }
                answer => Ok(answer?),
            }
        };
        tokio::time::timeout(QUERY_TIMEOUT, answer)
            .await
            .map_err(|_| QueryError::Timeout {
                url: self.url.clone(),
            })?
    }

    /// Several queries at once, answered in order.
    pub async fn queries(&self, queries: &[&str]) -> Result<Vec<Vec<Sample>>, QueryError> {
        futures::future::try_join_all(queries.iter().map(|q| self.query(q))).await
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_use() {
        let err = |u: &str| Prometheus::new(u).unwrap_err().to_string();
        assert!(err("https://prom:9090").contains("only http://"));
        assert!(err("prom:9090").contains("expected http://host:port"));
        assert!(err("http://prom:9090/?x=1").contains("query string"));
        let p = Prometheus::new("http://prom.monitoring:9090/prometheus/").unwrap();
        assert_eq!(p.url(), "http://prom.monitoring:9090/prometheus");
    }

    #[tokio::test]
    async fn an_unreachable_prometheus_is_named() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = Prometheus::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = p.query("up").await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "Prometheus at http://127.0.0.1:{port} is not reachable"
            )),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_answer_that_is_not_prometheus_json_is_named_with_its_status() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Something in front of Prometheus (a proxy without a backend) answers 503, empty.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let p = Prometheus::new(&format!("http://{addr}")).unwrap();
        let err = p.query("up").await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("Prometheus at http://{addr} answered 503 Service Unavailable: \"\"")
        );
    }
}
