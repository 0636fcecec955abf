//! `viz stat`, `viz routes` and `viz edges`: Linkerd's flags, the PromQL of `oxlink-viz`, the
//! answers of the extension's Prometheus and the pods Kubernetes lists, printed as Linkerd does.

use super::cluster::{self, Prometheus};
use crate::client::ClusterArgs;
use anyhow::{Result, bail};
use oxlink_viz::{
    Kind, Output, Resource, Window, edges, promql, routes,
    stat::{self, Answers},
    table,
};
use std::io::Write;

/// The namespace the commands use without `-n`.
const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, clap::Args)]
pub(crate) struct StatArgs {
    /// TYPE [NAME…] or TYPE/NAME…: deployments, pods, namespaces, statefulsets, daemonsets,
    /// replicasets, jobs (Linkerd's short names too: deploy, po, ns, sts, ds, rs).
    #[arg(required = true, value_name = "RESOURCE")]
    resources: Vec<String>,
    /// Namespace of the specified resource.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// If present, returns stats across all namespaces, ignoring the "--namespace" flag.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// If present, restricts outbound stats to the specified resource name.
    #[arg(long, conflicts_with = "from")]
    to: Option<String>,
    /// Sets the namespace used to lookup the "--to" resource; by default the current "--namespace" is used.
    #[arg(long)]
    to_namespace: Option<String>,
    /// If present, restricts outbound stats from the specified resource name.
    #[arg(long)]
    from: Option<String>,
    /// Sets the namespace used from lookup the "--from" resource; by default the current "--namespace" is used.
    #[arg(long)]
    from_namespace: Option<String>,
    /// Stat window (for example: "15s", "1m", "10m", "1h"). Needs to be at least 15s.
    #[arg(short = 't', long, default_value = "1m")]
    time_window: Window,
    /// Output format; one of: "table", "wide", or "json".
    #[arg(short = 'o', long, default_value = "table")]
    output: Output,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RoutesArgs {
    /// The resource whose routes to show: TYPE/NAME (deploy/web) or TYPE NAME.
    #[arg(required = true, num_args = 1..=2, value_name = "RESOURCE")]
    resource: Vec<String>,
    /// Namespace of the specified resource.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// If present, shows outbound stats to the specified resource.
    #[arg(long)]
    to: Option<String>,
    /// Sets the namespace used to lookup the "--to" resource; by default the current "--namespace" is used.
    #[arg(long)]
    to_namespace: Option<String>,
    /// Stat window (for example: "10s", "1m", "10m", "1h").
    #[arg(short = 't', long, default_value = "1m")]
    time_window: Window,
    /// Output format; one of: "table", "wide", or "json".
    #[arg(short = 'o', long, default_value = "table")]
    output: Output,
}

#[derive(Debug, clap::Args)]
pub(crate) struct EdgesArgs {
    /// The type of resource: deployments, pods, namespaces, statefulsets, daemonsets, …
    #[arg(value_name = "RESOURCE_TYPE")]
    kind: String,
    /// Namespace of the specified resource.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// If present, returns edges across all namespaces, ignoring the "--namespace" flag.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format; one of: "table", "wide", or "json".
    #[arg(short = 'o', long, default_value = "table")]
    output: Output,
}

fn with_namespace(word: &str, namespace: Option<&str>) -> Result<Resource> {
    let mut r = Resource::parse(word)?;
    r.namespace = namespace.map(str::to_string);
    Ok(r)
}

impl StatArgs {
    /// The queries for each target of the command line (validated before any cluster access).
    pub(crate) fn queries(&self) -> Result<Vec<(Resource, promql::StatQueries)>> {
        let targets = Resource::parse_args(&self.resources)?;
        if targets.iter().any(|t| t.kind != targets[0].kind) {
            bail!(
                "stats for multiple resource types are not supported: name them one type at a time"
            );
        }
        let to = self
            .to
            .as_deref()
            .map(|t| with_namespace(t, self.to_namespace.as_deref()))
            .transpose()?;
        let from = self
            .from
            .as_deref()
            .map(|f| with_namespace(f, self.from_namespace.as_deref()))
            .transpose()?;
        if self.all_namespaces && targets.iter().any(|t| t.name.is_some()) {
            bail!("stats for a resource cannot be retrieved by name across all namespaces");
        }
        let namespace = (!self.all_namespaces).then_some(self.namespace.as_str());
        targets
            .into_iter()
            .map(|target| {
                let q = promql::stat(&promql::StatQuery {
                    target: &target,
                    namespace,
                    to: to.as_ref(),
                    from: from.as_ref(),
                    window: &self.time_window,
                })?;
                Ok((target, q))
            })
            .collect()
    }

    pub(crate) fn run(self, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let queries = self.queries()?;
        let namespace = (!self.all_namespaces).then_some(self.namespace.as_str());
        let rows = cluster::block_on(async {
            let client = cluster::client(cluster_args).await?;
            let prom = Prometheus::new(client.clone());
            let mut rows = Vec::new();
            for (target, q) in &queries {
                let listed =
                    cluster::list(&client, target.kind, target.name.as_deref(), namespace).await?;
                let a = prom
                    .queries(&[
                        &q.requests,
                        &q.latency[0],
                        &q.latency[1],
                        &q.latency[2],
                        &q.tcp_connections,
                        &q.tcp_read_bytes,
                        &q.tcp_write_bytes,
                    ])
                    .await?;
                let mut a = a.into_iter();
                let mut next = || a.next().unwrap_or_default();
                let answers = Answers {
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
                    &self.time_window,
                ));
            }
            Ok(rows)
        })?;
        out.write_all(table::stat(&rows, self.all_namespaces, self.output).as_bytes())?;
        Ok(())
    }
}

impl RoutesArgs {
    fn target(&self) -> Result<Resource> {
        let targets = Resource::parse_args(&self.resource)?;
        match targets.as_slice() {
            [t] if t.name.is_some() => Ok(t.clone()),
            _ => bail!("please specify one resource, as TYPE/NAME or TYPE NAME"),
        }
    }

    /// The target and the `--to` resource, validated before any cluster access.
    pub(crate) fn resources(&self) -> Result<(Resource, Option<Resource>)> {
        let target = self.target()?;
        if !matches!(
            target.kind,
            Kind::Deployment
                | Kind::StatefulSet
                | Kind::DaemonSet
                | Kind::ReplicaSet
                | Kind::Job
                | Kind::Pod
        ) {
            bail!(
                "routes are shown for a workload or a pod, not a {}",
                target.kind.name()
            );
        }
        let to = self
            .to
            .as_deref()
            .map(|t| with_namespace(t, self.to_namespace.as_deref()))
            .transpose()?;
        if let Some(t) = &to
            && t.name.is_none()
        {
            bail!("--to needs a named resource, as TYPE/NAME");
        }
        Ok((target, to))
    }

    /// The queries, given the Services the `--to` resource stands for (in `to_namespace`).
    pub(crate) fn queries(
        &self,
        target: &Resource,
        to_services: Option<(&[String], &str)>,
    ) -> Result<promql::RouteQueries> {
        let to = to_services.map(|(services, namespace)| promql::RoutesTo {
            services,
            namespace,
        });
        Ok(promql::routes(
            target,
            &self.namespace,
            to,
            &self.time_window,
        )?)
    }

    pub(crate) fn run(self, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let (target, to) = self.resources()?;
        let name = target.name.clone().unwrap_or_default();
        let rows = cluster::block_on(async {
            let client = cluster::client(cluster_args).await?;
            // The Services whose profiles name the routes: those in front of the target
            // (inbound), or the `--to` Service (or those in front of the `--to` workload).
            let (profile_ns, services) = match &to {
                Some(t) => {
                    let ns = t
                        .namespace
                        .clone()
                        .unwrap_or_else(|| self.namespace.clone());
                    let n = t.name.clone().unwrap_or_default();
                    let services = match t.kind {
                        Kind::Service => vec![n],
                        kind => cluster::services_of(&client, kind, &n, &ns).await?,
                    };
                    (ns, services)
                }
                None => (
                    self.namespace.clone(),
                    cluster::services_of(&client, target.kind, &name, &self.namespace).await?,
                ),
            };
            let q = self.queries(
                &target,
                to.is_some()
                    .then_some((services.as_slice(), profile_ns.as_str())),
            )?;
            let profile: Vec<routes::ProfileRoute> =
                cluster::profile_routes(&client, &profile_ns, &services)
                    .await?
                    .into_iter()
                    .map(|(service, route)| routes::ProfileRoute { service, route })
                    .collect();
            let prom = Prometheus::new(client);
            let mut a = prom
                .queries(&[&q.requests, &q.latency[0], &q.latency[1], &q.latency[2]])
                .await?
                .into_iter();
            let mut next = || a.next().unwrap_or_default();
            let answers = routes::Answers {
                requests: next(),
                latency: [next(), next(), next()],
            };
            let mut rows = routes::rows(&profile, &answers, &self.time_window);
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
            Ok(rows)
        })?;
        out.write_all(table::routes(&rows, self.output).as_bytes())?;
        Ok(())
    }
}

impl EdgesArgs {
    pub(crate) fn queries(&self) -> Result<(Kind, promql::EdgeQueries)> {
        let r = Resource::parse(&self.kind)?;
        if r.name.is_some() {
            bail!(
                "edges are shown for a resource type, not one resource: try `{}`",
                r.kind.name()
            );
        }
        let namespace = (!self.all_namespaces).then_some(self.namespace.as_str());
        Ok((r.kind, promql::edges(r.kind, namespace)?))
    }

    pub(crate) fn run(self, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let (kind, q) = self.queries()?;
        let edges = cluster::block_on(async {
            let prom = Prometheus::new(cluster::client(cluster_args).await?);
            let mut a = prom.queries(&[&q.outbound, &q.inbound]).await?.into_iter();
            let outbound = a.next().unwrap_or_default();
            let inbound = a.next().unwrap_or_default();
            Ok(edges::edges(kind, &outbound, &inbound))
        })?;
        out.write_all(table::edges(&edges, self.output).as_bytes())?;
        Ok(())
    }
}
