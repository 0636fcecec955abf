//! What every oxlink server process shares, written once.
//!
//! This crate owns the plumbing around the controllers: the `--log-level` / `--log-format`
//! flags and the `tracing` subscriber they configure, the [`Readiness`] latch each subsystem
//! holds until it has synced, the admin HTTP server (`/live`, `/ready`, `/metrics` from one
//! `prometheus-client` registry), the SIGTERM/Ctrl-C shutdown signal, and [`Tasks`], which
//! stops a server's tasks in order: servers drain, background loops are aborted. Identity,
//! destination and the proxy-injector use it unchanged, so their operational surface is the same.

mod logs;
mod ready;
mod server;
mod tasks;

pub use self::{
    logs::{LogArgs, LogFormat},
    ready::{Latch, Readiness},
    server::{ScrapeHook, serve_admin},
    tasks::Tasks,
};

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
