//! Wiring: the HTTPS admission server and the admin server, started and stopped together, as
//! identity's and destination's `serve::spawn` do.

use crate::server::{Admission, serve_https};
use oxlink_admin::{Admin, Tasks, serve::Limits, serve_admin};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;

/// A started injector. Dropping it stops every task.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub admission: Arc<Admission>,
    tasks: Tasks,
}

/// Serves `admission` over TLS with `tls` on `https` within `limits`, and the admin endpoints
/// on `admin`. `tasks` holds what already runs beside them (certificate renewal, cache
/// syncs); `/live` fails if one of them ends.
pub fn spawn(
    admission: Arc<Admission>,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    https: TcpListener,
    admin: Option<TcpListener>,
    mut tasks: Tasks,
) -> std::io::Result<Running> {
    let addr = https.local_addr()?;
    let (a, signal) = (admission.clone(), tasks.signal());
    tasks.server("the HTTPS admission server", async move {
        serve_https(https, tls, a, &limits, signal).await
    });
    let admin_addr = match admin {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let admin = Admin {
                registry: admission.registry.clone(),
                ready: admission.readiness(),
                live: tasks.liveness(),
                on_scrape: None,
                connections: admission.connections.for_server("admin"),
            };
            tasks.server(
                "the admin server",
                serve_admin(listener, admin, tasks.signal()),
            );
            Some(addr)
        }
        None => None,
    };
    tracing::info!(%addr, ?admin_addr, "serving");
    Ok(Running {
        addr,
        admin_addr,
        admission,
        tasks,
    })
}

impl Running {
    /// Stops accepting, gives requests in flight `grace` to finish, and stops every task.
    pub async fn shutdown(self, grace: Duration) {
        self.tasks.shutdown(grace).await;
    }
}
