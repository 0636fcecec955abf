//! Metrics: gRPC calls (named like grpc-go's), subscriptions and updates by API, and the
//! index's sizes read at scrape time.

use crate::index::SharedIndex;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
    pub grpc_code: String,
}

/// Metrics of the gRPC services.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Calls started (`grpc_server_started_total`).
    pub started: Family<MethodLabels, Counter>,
    /// Calls finished, by status code (`grpc_server_handled_total`); a stream counts when it
    /// ends.
    pub handled: Family<HandledLabels, Counter>,
    /// Open streams by API (`get`, `get_profile`, `inbound`, `outbound`).
    pub subscriptions: Family<ApiLabels, Gauge>,
    /// Messages sent on streams, by API.
    pub updates_sent: Family<ApiLabels, Counter>,
}

impl Metrics {
    /// Registers the gRPC metrics and the index collector under `destination_`.
    pub fn register(registry: &mut Registry, index: SharedIndex) -> std::sync::Arc<Self> {
        let metrics = std::sync::Arc::new(Self::default());
        let grpc = registry.sub_registry_with_prefix("grpc_server");
        grpc.register("started", "RPCs started", metrics.started.clone());
        grpc.register(
            "handled",
            "RPCs completed, by status code",
            metrics.handled.clone(),
        );
        let sub = registry.sub_registry_with_prefix("destination");
        sub.register(
            "subscriptions",
            "Open Get, GetProfile, WatchPort and Watch streams",
            metrics.subscriptions.clone(),
        );
        sub.register(
            "updates_sent",
            "Messages sent on Get, GetProfile, WatchPort and Watch streams",
            metrics.updates_sent.clone(),
        );
        sub.register_collector(Box::new(IndexCollector(index)));
        metrics
    }

    pub(crate) fn api(api: &'static str) -> ApiLabels {
        ApiLabels { api }
    }

    /// Counts a call to `service/method` as started.
    pub(crate) fn record_started(&self, service: &'static str, method: &'static str) {
        let labels = MethodLabels {
            grpc_service: service,
            grpc_method: method,
        };
        self.started.get_or_create(&labels).inc();
    }

    /// Counts a call to `service/method` as finished with `code` (spelled as grpc-go does).
    pub(crate) fn record_handled(
        &self,
        service: &'static str,
        method: &'static str,
        code: tonic::Code,
    ) {
        let labels = HandledLabels {
            grpc_service: service,
            grpc_method: method,
            grpc_code: format!("{code:?}"),
        };
        self.handled.get_or_create(&labels).inc();
    }
}

/// Reads the index's sizes when scraped, so they can never drift from the index.
#[derive(Debug)]
struct IndexCollector(SharedIndex);

impl Collector for IndexCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (sizes, policy) = {
            let index = self.0.read();
            (index.sizes(), index.policy_sizes())
        };
        let mut objects = encoder.encode_descriptor(
            "index_objects",
            "Objects held by the index, by kind",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, n) in [
            ("service", sizes.services),
            ("endpointslice", sizes.endpoint_slices),
            ("pod", sizes.pods),
            ("serviceprofile", sizes.service_profiles),
            ("trafficsplit", sizes.traffic_splits),
            ("server", policy.servers),
            ("authorization", policy.authorizations),
            ("authentication", policy.authentications),
            ("httproute", policy.http_routes),
            ("httplocalratelimitpolicy", policy.rate_limits),
        ] {
            let labels = [("kind", kind)];
            ConstGauge::new(n as i64).encode(objects.encode_family(&labels)?)?;
        }
        let mut invalid = encoder.encode_descriptor(
            "index_invalid_objects",
            "Objects held by the index that cannot be applied as written, by kind",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, n) in [
            ("httplocalratelimitpolicy", policy.invalid_rate_limits),
            ("trafficsplit", sizes.invalid_traffic_splits),
        ] {
            let labels = [("kind", kind)];
            ConstGauge::new(n as i64).encode(invalid.encode_family(&labels)?)?;
        }
        let mut keys = encoder.encode_descriptor(
            "index_subscription_keys",
            "Distinct subscription keys, each shared by all its subscribers",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (api, n) in [
            ("get", sizes.endpoint_keys),
            ("get_profile", sizes.profile_keys),
            ("inbound", policy.inbound_keys),
            ("outbound", policy.outbound_keys),
        ] {
            let labels = [("api", api)];
            ConstGauge::new(n as i64).encode(keys.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
