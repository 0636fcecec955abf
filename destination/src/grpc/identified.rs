//! `--require-client-identity`: only clients that present a mesh certificate read endpoints
//! and policy. The TLS listener already verifies a presented certificate against the trust
//! anchors (a bad one fails the handshake); this splits the accepted connections by whether
//! one was presented, serves the identified ones as usual, and answers every request on the
//! others with UNAUTHENTICATED, so a client learns why rather than seeing its connection
//! dropped.

use super::server::{GrpcService, Reply};
use futures::{Stream, StreamExt, stream::BoxStream};
use tokio::sync::{mpsc, watch};
use tonic::Status;

/// What a client without a certificate is told.
pub(crate) const REFUSED: &str = "this server requires a client identity \
    (--require-client-identity): connect over mesh TLS with a certificate from identity, \
    as meshed proxies do";

/// Answers every request with UNAUTHENTICATED.
#[derive(Debug)]
pub(crate) struct Unidentified {
    shutdown: watch::Receiver<bool>,
}

impl Unidentified {
    /// Its connections drain when `shutdown` turns, as the service's own do.
    pub(crate) fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self { shutdown }
    }
}

impl GrpcService for Unidentified {
    fn call(&self, path: &str, _body: &[u8]) -> Option<Reply> {
        tracing::debug!(path, "refused a request without a client identity");
        Some(Reply::Status(Status::unauthenticated(REFUSED)))
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

type Incoming<IO> = BoxStream<'static, IO>;

/// Splits accepted connections into those `identified` holds for and the others, in the order
/// they come. Both streams end when `incoming` does, or once either is dropped.
pub(crate) fn split_by_identity<IO: Send + 'static>(
    incoming: impl Stream<Item = IO> + Send + 'static,
    identified: impl Fn(&IO) -> bool + Send + 'static,
) -> (Incoming<IO>, Incoming<IO>) {
    let (yes, yes_rx) = mpsc::channel(128);
    let (no, no_rx) = mpsc::channel(128);
    tokio::spawn(async move {
        tokio::pin!(incoming);
        while let Some(accepted) = incoming.next().await {
            let to = if identified(&accepted) { &yes } else { &no };
            if to.send(accepted).await.is_err() {
                return;
            }
        }
    });
    (receiver_stream(yes_rx), receiver_stream(no_rx))
}

fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) }).boxed()
}
