//! Manifests fetched over HTTP(S), as `linkerd inject https://…` reads them.

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode, Uri, body::Bytes};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{error::Error as _, sync::Arc, time::Duration};

/// The largest manifest read from a URL.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// How long a fetch may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `input` names a URL rather than a file.
pub(crate) fn is_url(input: &str) -> bool {
    input.starts_with("http://") || input.starts_with("https://")
}

/// Fetches `url`, verifying HTTPS servers against the system's root certificates.
pub(crate) fn fetch(url: &str) -> Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    fetch_with(url, roots)
}

/// Fetches `url`, verifying HTTPS servers against `roots`.
pub(crate) fn fetch_with(url: &str, roots: rustls::RootCertStore) -> Result<String> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a valid URL"))?;
    if uri.host().is_none() {
        bail!("{url:?} is not a valid URL: it names no host");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS configuration")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(async {
            match tokio::time::timeout(TIMEOUT, get(uri, tls)).await {
                Ok(result) => result,
                Err(_) => bail!("no answer within {}s", TIMEOUT.as_secs()),
            }
        })
        .with_context(|| format!("could not fetch {url}"))
}

async fn get(uri: Uri, tls: rustls::ClientConfig) -> Result<String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    let request = Request::get(uri)
        .header(
            hyper::header::USER_AGENT,
            concat!("oxlink/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())?;
    let response = client.request(request).await.map_err(|e| {
        // The legacy client's own message is only "client error (Connect)"; the cause says
        // what went wrong (refused, unknown host, certificate not trusted…).
        let mut reasons = vec![e.to_string()];
        let mut source = e.source();
        while let Some(cause) = source {
            reasons.push(cause.to_string());
            source = cause.source();
        }
        anyhow::anyhow!(reasons.join(": "))
    })?;
    let status = response.status();
    if status != StatusCode::OK {
        bail!("the server answered {status}");
    }
    let body = Limited::new(response.into_body(), MAX_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).context("the body is not UTF-8 text")
}

#[cfg(test)]
mod tests;
