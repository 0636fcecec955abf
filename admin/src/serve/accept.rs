//! The accept loop every server shares.

use super::{Limits, ServerMetrics};
use futures::Stream;
use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig, server::TlsStream};

/// The first back-off after a failed `accept`, doubled up to [`MAX_BACKOFF`] while it keeps
/// failing (out of file descriptors, out of memory).
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// An accepted connection, TLS already handshaken if the server speaks TLS. It holds one of
/// the server's connection permits until dropped.
pub struct Conn {
    io: Io,
    peer: SocketAddr,
    read: Arc<AtomicU64>,
    _open: Open,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A permit and the open-connections gauge, released together.
struct Open {
    _permit: OwnedSemaphorePermit,
    metrics: ServerMetrics,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.closed();
    }
}

/// The connections a server accepts, in the order their handshakes complete. Ends when the
/// listener task ends (never, unless the stream is dropped).
pub struct Incoming {
    rx: mpsc::Receiver<Conn>,
}

/// Accepts connections on `listener` for the server `metrics` names: at most
/// `limits.max_connections` at once (each further one is closed at once, logged when the
/// limit is first reached and counted), with `TCP_NODELAY`, and over TLS with `tls` (each
/// handshake runs on its own, bounded by `limits.handshake_timeout`, so a slow client never
/// holds up others). A failing `accept` is retried after a back-off, never in a busy loop.
/// Must be called within a Tokio runtime; the loop stops when the returned stream is dropped.
pub fn accept(
    listener: TcpListener,
    limits: &Limits,
    tls: Option<Arc<ServerConfig>>,
    metrics: ServerMetrics,
) -> Incoming {
    let (tx, rx) = mpsc::channel(128);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (max, handshake_timeout) = (limits.max_connections, limits.handshake_timeout);
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        let mut at_limit = false;
        loop {
            let (stream, peer) = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        backoff = MIN_BACKOFF;
                        accepted
                    }
                    Err(error) => {
                        metrics.accept_error();
                        tracing::warn!(server = metrics.server(), %error, retry_in = ?backoff, "accept failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                metrics.refused("limit");
                if !at_limit {
                    at_limit = true;
                    tracing::warn!(
                        server = metrics.server(),
                        limit = max,
                        %peer,
                        "connection limit reached: new connections are closed until one ends \
                         (counted in server_connections_refused_total{{reason=\"limit\"}})"
                    );
                }
                drop(stream);
                continue;
            };
            if at_limit {
                at_limit = false;
                tracing::info!(
                    server = metrics.server(),
                    limit = max,
                    "below the connection limit again"
                );
            }
            let _ = stream.set_nodelay(true);
            metrics.opened();
            let open = Open {
                _permit: permit,
                metrics: metrics.clone(),
            };
            let conn = move |io| Conn {
                io,
                peer,
                read: Arc::default(),
                _open: open,
            };
            match &acceptor {
                None => {
                    if tx.send(conn(Io::Plain(stream))).await.is_err() {
                        return;
                    }
                }
                Some(acceptor) => {
                    let (acceptor, tx, metrics) = (acceptor.clone(), tx.clone(), metrics.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => {
                                let _ = tx.send(conn(Io::Tls(Box::new(tls)))).await;
                            }
                            Ok(Err(error)) => {
                                metrics.refused("handshake");
                                tracing::debug!(server = metrics.server(), %peer, %error, "TLS handshake failed");
                            }
                            Err(_) => {
                                metrics.refused("handshake_timeout");
                                tracing::debug!(server = metrics.server(), %peer, "TLS handshake timed out");
                            }
                        }
                    });
                }
            }
        }
    });
    Incoming { rx }
}

// === impl Incoming ===

impl Incoming {
    pub async fn next(&mut self) -> Option<Conn> {
        self.rx.recv().await
    }
}

impl Stream for Incoming {
    type Item = Conn;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Conn>> {
        self.rx.poll_recv(cx)
    }
}

// === impl Conn ===

impl Conn {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// A counter of the bytes read from the client so far, which outlives the connection.
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        self.read.clone()
    }

    /// Whether the client presented a certificate in the TLS handshake (which the server's
    /// verifier has checked). Never on a plaintext connection.
    pub fn presented_certificate(&self) -> bool {
        match &self.io {
            Io::Plain(_) => false,
            Io::Tls(tls) => tls.get_ref().1.peer_certificates().is_some(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        };
        let read = buf.filled().len() - before;
        if read > 0 {
            this.read.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_flush(cx),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
