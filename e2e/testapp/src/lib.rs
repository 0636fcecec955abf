//! The application the pod runtime runs for test images and the workshop's todo app: a
//! configurable HTTP server, the todo app's three roles, a load generator and a one-shot
//! client. Every server answers with `x-served-by: <pod name>`.

pub mod args;
pub mod client;
pub mod get;
pub mod httpd;
pub mod listen;
pub mod load;
pub mod serve;
pub mod stats;
pub mod todo;

use clap::{Parser, Subcommand};
use std::net::IpAddr;

/// Test servers and clients for oxlink's local cluster.
#[derive(Parser, Debug)]
#[command(name = "oxlink-testapp", version)]
pub struct Cli {
    /// The address servers listen on.
    #[arg(long, global = true, value_name = "IP", default_value = "0.0.0.0")]
    pub bind_ip: IpAddr,
    /// The name in `x-served-by` (else $HOSTNAME, else the system's hostname).
    #[arg(long, global = true, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// $HOSTNAME, the pod name's fallback.
    #[arg(long, global = true, env = "HOSTNAME", hide = true)]
    pub hostname: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// A test server: HTTP/1.1 and h2c on each port, with configurable latency and failures;
    /// a gRPC call (`content-type: application/grpc`) is answered with its gRPC status.
    Serve(serve::ServeArgs),
    /// The todo app's backend: `/todos` in memory, checked against `postgres` on each call.
    Todobackend(todo::backend::BackendArgs),
    /// The todo app's UI: an HTML page of the backend's todos.
    Todoui(todo::ui::UiArgs),
    /// The todo app's database, as opaque TCP: a line echo server.
    Postgres(todo::postgres::PostgresArgs),
    /// A steady load generator (GETs or unary gRPC calls) that counts statuses, `x-served-by`
    /// values and latencies.
    Load(load::LoadArgs),
    /// Sequential requests, printing one JSON line each.
    Get(get::GetArgs),
}

impl Cli {
    /// Runs the command until it ends or SIGINT/SIGTERM arrives.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            bind_ip,
            pod_name,
            hostname,
            command,
        } = self;
        let pod = pod_name_from(pod_name, hostname);
        match command {
            Command::Serve(args) => {
                let delay = args.shutdown_delay;
                until_shutdown_after(delay, args.run(bind_ip, pod)).await
            }
            // The workshop's servers drain as apps behind a preStop sleep do: they keep answering for
            // a moment after SIGTERM, while their endpoint leaves the clients.
            Command::Todobackend(args) => {
                until_shutdown_after(Some(WORKSHOP_DRAIN), args.run(bind_ip, pod)).await
            }
            Command::Todoui(args) => {
                until_shutdown_after(Some(WORKSHOP_DRAIN), args.run(bind_ip, pod)).await
            }
            Command::Postgres(args) => {
                until_shutdown_after(Some(WORKSHOP_DRAIN), args.run(bind_ip)).await
            }
            Command::Get(args) => until_shutdown(args.run(&mut std::io::stdout().lock())).await,
            // Prints its stats when stopped, so it watches for the signal itself.
            Command::Load(args) => args.run(bind_ip, pod, shutdown()).await,
        }
    }
}

/// How long the workshop's servers keep serving after SIGTERM.
const WORKSHOP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `command` until it ends or SIGINT/SIGTERM arrives.
async fn until_shutdown(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::select! {
        result = command => result,
        () = shutdown() => Ok(()),
    }
}

/// Runs `command` until it ends, or until `delay` after SIGINT/SIGTERM.
async fn until_shutdown_after(
    delay: Option<std::time::Duration>,
    command: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::pin!(command);
    tokio::select! {
        result = &mut command => return result,
        () = shutdown() => {}
    }
    if let Some(delay) = delay {
        tokio::select! {
            result = &mut command => return result,
            () = tokio::time::sleep(delay) => {}
        }
    }
    Ok(())
}

/// `POD_NAME`, else `HOSTNAME`, else the kernel's hostname (of this UTS namespace).
fn pod_name_from(pod_name: Option<String>, hostname: Option<String>) -> String {
    [pod_name, hostname]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Completes on SIGINT or SIGTERM (a process that is PID 1 gets no default handling).
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
