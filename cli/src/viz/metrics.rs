//! `viz stat`, `viz routes` and `viz edges`: Linkerd's flags, turned into the metrics API's
//! requests (`oxlink_viz::api`, validated before the cluster is asked), sent to the extension's
//! metrics API through the API server's Service proxy, and its rows printed as Linkerd does.

use super::cluster::{self, MetricsApi};
use crate::client::ClusterArgs;
use anyhow::Result;
use oxlink_viz::{
    Output, Window,
    api::{
        DEFAULT_NAMESPACE, EDGES_PATH, EdgesRequest, EdgesResponse, ROUTES_PATH, RoutesRequest,
        RoutesResponse, STAT_PATH, StatRequest, StatResponse,
    },
    table,
};
use std::io::Write;

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

impl StatArgs {
    fn request(&self) -> StatRequest {
        StatRequest {
            resources: self.resources.clone(),
            namespace: self.namespace.clone(),
            all_namespaces: self.all_namespaces,
            to: self.to.clone(),
            to_namespace: self.to_namespace.clone(),
            from: self.from.clone(),
            from_namespace: self.from_namespace.clone(),
            window: self.time_window.clone(),
        }
    }

    /// The queries for each target of the command line (validated before any cluster access).
    #[cfg(test)]
    pub(crate) fn queries(
        &self,
    ) -> Result<Vec<(oxlink_viz::Resource, oxlink_viz::promql::StatQueries)>> {
        Ok(self.request().queries()?)
    }

    pub(crate) fn run(self, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let request = self.request();
        request.queries()?;
        let answer: StatResponse = cluster::block_on(async {
            MetricsApi::new(cluster::client(cluster_args).await?)
                .get(STAT_PATH, &request.to_query())
                .await
        })?;
        out.write_all(table::stat(&answer.rows, self.all_namespaces, self.output).as_bytes())?;
        Ok(())
    }
}

impl RoutesArgs {
    fn request(&self) -> RoutesRequest {
        RoutesRequest {
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            to: self.to.clone(),
            to_namespace: self.to_namespace.clone(),
            window: self.time_window.clone(),
        }
    }

    /// The target and the `--to` resource, validated before any cluster access.
    #[cfg(test)]
    pub(crate) fn resources(&self) -> Result<(oxlink_viz::Resource, Option<oxlink_viz::Resource>)> {
        Ok(self.request().resources()?)
    }

    /// The queries, given the Services the `--to` resource stands for (in `to_namespace`).
    #[cfg(test)]
    pub(crate) fn queries(
        &self,
        target: &oxlink_viz::Resource,
        to_services: Option<(&[String], &str)>,
    ) -> Result<oxlink_viz::promql::RouteQueries> {
        Ok(self.request().queries(target, to_services)?)
    }

    pub(crate) fn run(self, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let request = self.request();
        request.resources()?;
        let answer: RoutesResponse = cluster::block_on(async {
            MetricsApi::new(cluster::client(cluster_args).await?)
                .get(ROUTES_PATH, &request.to_query())
                .await
        })?;
        out.write_all(table::routes(&answer.rows, self.output).as_bytes())?;
        Ok(())
    }
}

impl EdgesArgs {
    fn request(&self) -> EdgesRequest {
        EdgesRequest {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            all_namespaces: self.all_namespaces,
        }
    }

    #[cfg(test)]
    pub(crate) fn queries(&self) -> Result<(oxlink_viz::Kind, oxlink_viz::promql::EdgeQueries)> {
        Ok(self.request().queries()?)
    }

    pub(crate) fn run(self, cluster_args: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let request = self.request();
        request.queries()?;
        let answer: EdgesResponse = cluster::block_on(async {
            MetricsApi::new(cluster::client(cluster_args).await?)
                .get(EDGES_PATH, &request.to_query())
                .await
        })?;
        out.write_all(table::edges(&answer.edges, self.output).as_bytes())?;
        Ok(())
    }
}
