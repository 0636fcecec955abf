//! The metrics API itself: a validated request in, Kubernetes' resources and Prometheus'
//! answers joined into `oxlink-viz`'s rows, out.

use crate::{cluster, prometheus::Prometheus};
use kube::Client;
use oxlink_viz::{
    Kind,
    api::{
        EdgesRequest, EdgesResponse, RequestError, RoutesRequest, RoutesResponse,
        SelfCheckResponse, StatRequest, StatResponse,
    },
    edges, routes, stat,
};

/// Why a request could not be answered, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or names something that cannot be (HTTP 400).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A resource it names does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Prometheus failed or gave an answer we cannot use (HTTP 502; 504 on a timeout).
    #[error(transparent)]
    Prometheus(#[from] crate::prometheus::QueryError),
    /// The API server failed (HTTP 502).
    #[error("Kubernetes: {0}")]
    Kubernetes(String),
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<cluster::NotFound>() {
            Ok(nf) => ApiError::NotFound(nf.0),
            Err(e) => ApiError::Kubernetes(format!("{e:#}")),
        }
    }
}

/// The metrics API's backends: the API server and Prometheus.
#[derive(Clone)]
pub struct Metrics {
    pub client: Client,
    pub prometheus: Prometheus,
}

impl Metrics {
    pub async fn stat(&self, req: &StatRequest) -> Result<StatResponse, ApiError> {
        let queries = req.queries()?;
        let namespace = req.scope();
        let mut rows = Vec::new();
        for (target, q) in &queries {
            let listed =
                cluster::list(&self.client, target.kind, target.name.as_deref(), namespace).await?;
            let mut a = self
                .prometheus
                .queries(&[
                    &q.requests,
                    &q.latency[0],
                    &q.latency[1],
                    &q.latency[2],
                    &q.tcp_connections,
                    &q.tcp_read_bytes,
                    &q.tcp_write_bytes,
                ])
                .await?
                .into_iter();
            let mut next = || a.next().unwrap_or_default();
            let answers = stat::Answers {
                requests: next(),
                latency: [next(), next(), next()],
                tcp_connections: next(),
                tcp_read_bytes: next(),
                tcp_write_bytes: next(),
            };
            rows.extend(stat::rows(
                target.kind,
                listed,
                &q.row,
                &answers,
                &req.window,
            ));
        }
        Ok(StatResponse { rows })
    }

    pub async fn routes(&self, req: &RoutesRequest) -> Result<RoutesResponse, ApiError> {
        let (target, to) = req.resources()?;
        let name = target.name.clone().unwrap_or_default();
        // The Services whose profiles name the routes: those in front of the target
        // (inbound), or the `--to` Service (or those in front of the `--to` workload).
        let (profile_ns, services) = match &to {
            Some(t) => {
                let ns = t.namespace.clone().unwrap_or_else(|| req.namespace.clone());
                let n = t.name.clone().unwrap_or_default();
                let services = match t.kind {
                    Kind::Service => vec![n],
                    kind => cluster::services_of(&self.client, kind, &n, &ns).await?,
                };
                (ns, services)
            }
            None => (
                req.namespace.clone(),
                cluster::services_of(&self.client, target.kind, &name, &req.namespace).await?,
            ),
        };
        let q = req.queries(
            &target,
            to.is_some()
                .then_some((services.as_slice(), profile_ns.as_str())),
        )?;
        let profile: Vec<routes::ProfileRoute> =
            cluster::profile_routes(&self.client, &profile_ns, &services)
                .await?
                .into_iter()
                .map(|(service, route)| routes::ProfileRoute { service, route })
                .collect();
        let mut a = self
            .prometheus
            .queries(&[&q.requests, &q.latency[0], &q.latency[1], &q.latency[2]])
            .await?
            .into_iter();
        let mut next = || a.next().unwrap_or_default();
        let answers = routes::Answers {
            requests: next(),
            latency: [next(), next(), next()],
        };
        let mut rows = routes::rows(&profile, &answers, &req.window);
        // Without a profile, a Service still gets its `[DEFAULT]` row.
        for svc in &services {
            if !rows.iter().any(|r| &r.service == svc) {
                rows.push(routes::Row {
                    route: routes::DEFAULT_ROUTE.into(),
                    service: svc.clone(),
                    stats: None,
                });
            }
        }
        Ok(RoutesResponse { rows })
    }

    pub async fn edges(&self, req: &EdgesRequest) -> Result<EdgesResponse, ApiError> {
        let (kind, q) = req.queries()?;
        let mut a = self
            .prometheus
            .queries(&[&q.outbound, &q.inbound])
            .await?
            .into_iter();
        let outbound = a.next().unwrap_or_default();
        let inbound = a.next().unwrap_or_default();
        Ok(EdgesResponse {
            edges: edges::edges(kind, &outbound, &inbound),
        })
    }

    /// Linkerd's "viz extension self-check": Prometheus answers, and scrapes proxies.
    pub async fn self_check(&self) -> Result<SelfCheckResponse, ApiError> {
        let up = self
            .prometheus
            .query("sum(up{job=\"linkerd-proxy\"})")
            .await?;
        Ok(SelfCheckResponse {
            prometheus_url: self.prometheus.url().to_string(),
            proxies: up.first().map_or(0.0, |s| s.value),
        })
    }
}
