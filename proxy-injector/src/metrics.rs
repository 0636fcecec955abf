//! The injector's Prometheus metrics, registered under the `proxy_inject` prefix.

use crate::{
    admission::Decision,
    validate::{Verdict, Webhook},
};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    /// `serviceprofile` or `policy`.
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    webhook: &'static str,
    /// The reviewed object's kind; empty for a body that is not a review.
    kind: String,
    /// `allowed`, `denied`, `ignored` or `bad_request`.
    result: &'static str,
}

/// Latency buckets shared by every admission histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Admission counters and latency; cheap to share.
#[derive(Debug)]
pub struct Metrics {
    requests: Counter,
    responses: Family<ResponseLabels, Counter>,
    duration: Histogram,
    validation_requests: Family<WebhookLabels, Counter>,
    validation_responses: Family<VerdictLabels, Counter>,
    validation_duration: Family<WebhookLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Counter::default(),
            responses: Family::default(),
            duration: histogram(),
            validation_requests: Family::default(),
            validation_responses: Family::default(),
            validation_duration: Family::new_with_constructor(histogram),
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
        let reg = registry.sub_registry_with_prefix("validator");
        reg.register(
            "admission_requests",
            "Admission requests received on /validate/serviceprofile and /validate/policy",
            m.validation_requests.clone(),
        );
        reg.register(
            "admission_responses",
            "Validation responses by webhook, kind and result",
            m.validation_responses.clone(),
        );
        reg.register_with_unit(
            "admission_duration",
            "Time to answer a validation request",
            Unit::Seconds,
            m.validation_duration.clone(),
        );
        m
    }

    pub(crate) fn validation_request(&self, webhook: Webhook) {
        self.validation_requests
            .get_or_create(&WebhookLabels {
                webhook: webhook.as_str(),
            })
            .inc();
    }

    /// Records the answer to a validation review; `None` for a body that was not a review.
    pub(crate) fn validation_response(
        &self,
        webhook: Webhook,
        answer: Option<(&str, &Verdict)>,
        seconds: f64,
    ) {
        let (kind, result) = match answer {
            None => ("", "bad_request"),
            Some((kind, Verdict::Allowed)) => (kind, "allowed"),
            Some((kind, Verdict::Ignored)) => (kind, "ignored"),
            Some((kind, Verdict::Denied(_))) => (kind, "denied"),
        };
        self.validation_responses
            .get_or_create(&VerdictLabels {
                webhook: webhook.as_str(),
                kind: kind.to_string(),
                result,
            })
            .inc();
        self.validation_duration
            .get_or_create(&WebhookLabels {
                webhook: webhook.as_str(),
            })
            .observe(seconds);
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
