//! What every oxlink server process shares, written once.
//!
//! This crate owns the plumbing around the controllers: the `--log-level` / `--log-format`
//! flags and the `tracing` subscriber they configure, the [`Readiness`] latch each subsystem
//! holds until it has synced, the [`Liveness`] that fails once a task the process needs has
//! ended, the admin HTTP server (`/live`, `/ready`, `/metrics` from one `prometheus-client`
//! registry), the SIGTERM/Ctrl-C shutdown signal, [`Tasks`], which stops a server's tasks in
//! order (servers drain, background loops are aborted) and notices the ones that end early, and
//! [`serve`]: the one accept loop and HTTP serving skeleton of every listener, with its limits. Identity,
//! destination and the proxy-injector use it unchanged, so their operational surface is the same.

mod live;
mod logs;
mod ready;
pub mod serve;
mod server;
mod tasks;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use self::{
    live::Liveness,
    logs::{LogArgs, LogFormat},
    ready::{Latch, Readiness},
    server::{Admin, ScrapeHook, serve_admin},
    tasks::Tasks,
};

/// The multi-threaded runtime every server runs on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// A listener on `addr` could not be opened.
#[derive(Debug)]
pub struct BindError {
    pub addr: std::net::SocketAddr,
    pub source: std::io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "binding {}: {}", self.addr, self.source)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Opens a server's two listeners: its own port and its admin port.
pub async fn bind_pair(
    server: std::net::SocketAddr,
    admin: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, tokio::net::TcpListener), BindError> {
    let bind = |addr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })
    };
    Ok((bind(server).await?, bind(admin).await?))
}

/// A server's exit code for the result of its run: on failure, the error (with its causes, as
/// `{:#}` shows them) is logged and printed as `program: error`.
pub fn exit_code<E: std::fmt::Display>(
    program: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("{program}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_taken_port_is_named_in_the_error() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let free = "127.0.0.1:0".parse().unwrap();
        let err = super::bind_pair(free, addr).await.unwrap_err();
        assert_eq!(err.addr, addr);
        assert!(
            err.to_string().starts_with(&format!("binding {addr}: ")),
            "{err}"
        );
        let (server, admin) = super::bind_pair(free, free).await.unwrap();
        assert_ne!(server.local_addr().unwrap(), admin.local_addr().unwrap());
    }
}
