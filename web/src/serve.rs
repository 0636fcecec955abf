//! Wiring: the dashboard, metrics-API and admin listeners, started and stopped together, as
//! the controllers' `serve::spawn` do.

use crate::{metrics::Metrics, server::Web};
use hyper::{Request, service::service_fn};
use oxlink_admin::{
    Admin, BindError, Readiness, Tasks,
    serve::{Limits, Protocol, RequestBody, ServerMetrics, accept, serve_http},
    serve_admin,
};
use prometheus_client::registry::Registry;
use regex::Regex;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::Semaphore};

/// Linkerd's ports: the dashboard (`web`), the metrics API (`metrics-api`), the admin server.
pub const WEB_PORT: u16 = 8084;
pub const METRICS_API_PORT: u16 = 8085;
pub const ADMIN_PORT: u16 = 9994;

/// The three listeners.
pub struct Listeners {
    pub web: TcpListener,
    pub metrics_api: TcpListener,
    pub admin: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(
        web: SocketAddr,
        metrics_api: SocketAddr,
        admin: SocketAddr,
    ) -> Result<Self, BindError> {
        let (web, admin) = oxlink_admin::bind_pair(web, admin).await?;
        let metrics_api = TcpListener::bind(metrics_api)
            .await
            .map_err(|source| BindError {
                addr: metrics_api,
                source,
            })?;
        Ok(Self {
            web,
            metrics_api,
            admin: Some(admin),
        })
    }
}

/// A started server. Dropping it stops every task.
pub struct Running {
    pub web_addr: SocketAddr,
    pub metrics_api_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub connections: ServerMetrics,
    tasks: Tasks,
}

fn listen(
    tasks: &mut Tasks,
    name: &'static str,
    listener: TcpListener,
    web: Web,
    limits: &Limits,
    metrics: ServerMetrics,
) {
    let incoming = accept(listener, limits, None, metrics.clone());
    let web = Arc::new(web);
    let svc = service_fn(move |req: Request<RequestBody>| {
        let web = web.clone();
        async move { Ok::<_, std::convert::Infallible>(web.handle(req).await) }
    });
    let limits = limits.clone();
    let signal = tasks.signal();
    tasks.server(name, async move {
        serve_http(incoming, svc, Protocol::Auto, &limits, metrics, signal).await
    });
}

/// Serves the dashboard (with `enforced_host`) and the metrics API within `limits`, both
/// answering from `metrics`, and the admin endpoints.
pub fn spawn(
    metrics: Metrics,
    enforced_host: Regex,
    limits: Limits,
    listeners: Listeners,
    mut tasks: Tasks,
) -> std::io::Result<Running> {
    let mut registry = Registry::default();
    let connections = ServerMetrics::register(&mut registry, "web");
    let web_addr = listeners.web.local_addr()?;
    let metrics_api_addr = listeners.metrics_api.local_addr()?;
    // One bound on API requests in flight for both listeners.
    let in_flight = Arc::new(Semaphore::new(crate::server::MAX_IN_FLIGHT));
    listen(
        &mut tasks,
        "the dashboard server",
        listeners.web,
        Web::new(metrics.clone(), Some(enforced_host), in_flight.clone()),
        &limits,
        connections.clone(),
    );
    listen(
        &mut tasks,
        "the metrics API server",
        listeners.metrics_api,
        Web::new(metrics, None, in_flight),
        &limits,
        connections.for_server("metrics-api"),
    );
    let admin_addr = match listeners.admin {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let admin = Admin {
                registry: Arc::new(registry),
                ready: Readiness::default(),
                live: tasks.liveness(),
                on_scrape: None,
                connections: connections.for_server("admin"),
            };
            tasks.server(
                "the admin server",
                serve_admin(listener, admin, tasks.signal()),
            );
            Some(addr)
        }
        None => None,
    };
    tracing::info!(%web_addr, %metrics_api_addr, ?admin_addr, "serving");
    Ok(Running {
        web_addr,
        metrics_api_addr,
        admin_addr,
        connections,
        tasks,
    })
}

impl Running {
    /// Stops accepting, gives requests in flight `grace` to finish, and stops every task.
    pub async fn shutdown(self, grace: Duration) {
        self.tasks.shutdown(grace).await;
    }
}
