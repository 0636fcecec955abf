//! The injector's Prometheus metrics, registered under the `proxy_inject` prefix.

use crate::admission::Decision;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    /// `injected`, `skipped`, `service`, `ignored`, `denied` or `bad_request`.
    result: &'static str,
    skip_reason: &'static str,
}

/// Admission counters and latency; cheap to share.
#[derive(Debug)]
pub struct Metrics {
    requests: Counter,
    responses: Family<ResponseLabels, Counter>,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Counter::default(),
            responses: Family::default(),
            duration: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `proxy_inject_`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Arc::new(Self::default());
        let reg = registry.sub_registry_with_prefix("proxy_inject");
        reg.register(
            "admission_requests",
            "Admission requests received on /inject",
            m.requests.clone(),
        );
        reg.register(
            "admission_responses",
            "Admission responses by result and skip reason",
            m.responses.clone(),
        );
        reg.register_with_unit(
            "admission_duration",
            "Time to answer an admission request, cluster lookups included",
            Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    pub(crate) fn request(&self) {
        self.requests.inc();
    }

    pub(crate) fn response(&self, decision: Option<&Decision>, seconds: f64) {
        let (result, skip_reason) = match decision {
            None => ("bad_request", ""),
            Some(Decision::Ignored) => ("ignored", ""),
            Some(Decision::Injected) => ("injected", ""),
            Some(Decision::Skipped(reason)) => ("skipped", reason.code()),
            Some(Decision::Service) => ("service", ""),
            Some(Decision::Denied(_)) => ("denied", ""),
        };
        self.responses
            .get_or_create(&ResponseLabels {
                result,
                skip_reason,
            })
            .inc();
        self.duration.observe(seconds);
    }
}
