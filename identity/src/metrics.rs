//! Identity's Prometheus metrics, registered under the `identity` prefix.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use std::sync::{Arc, atomic::AtomicU64};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Counters and histograms of the CA; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    certify: Family<ResultLabels, Counter>,
    certify_seconds: Histogram,
    token_review_seconds: Histogram,
    token_review_errors: Counter,
    /// TokenReviews made (not registered: the duration histogram's `_count` says the same).
    token_reviews: Counter,
    token_verification: Family<ResultLabels, Counter>,
    issuer_expiry: Gauge<f64, AtomicU64>,
}

fn latency_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            certify: Family::default(),
            certify_seconds: latency_buckets(),
            token_review_seconds: latency_buckets(),
            token_review_errors: Counter::default(),
            token_reviews: Counter::default(),
            token_verification: Family::default(),
            issuer_expiry: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `identity_`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        let reg = registry.sub_registry_with_prefix("identity");
        reg.register(
            "certify",
            "Certify calls by result (`issued`, or the reason for refusing)",
            m.certify.clone(),
        );
        reg.register_with_unit(
            "certify_duration",
            "Time to answer a Certify call, TokenReview included",
            Unit::Seconds,
            m.certify_seconds.clone(),
        );
        reg.register_with_unit(
            "token_review_duration",
            "Time of TokenReview calls to the API server",
            Unit::Seconds,
            m.token_review_seconds.clone(),
        );
        reg.register(
            "token_review_errors",
            "TokenReview calls that failed at the API server",
            m.token_review_errors.clone(),
        );
        reg.register(
            "token_verification",
            "Tokens checked in process, by result: `verified`, `rejected`, or why the token went \
             to a TokenReview instead (`issuer`, `unknown_kid`, `audience`, `pod_unknown`, …)",
            m.token_verification.clone(),
        );
        reg.register_with_unit(
            "issuer_expiry",
            "Seconds until the loaded issuer chain expires (absent issuer: 0)",
            Unit::Seconds,
            m.issuer_expiry.clone(),
        );
        Arc::new(m)
    }

    pub(crate) fn certified(&self, result: &'static str, seconds: f64) {
        self.certify.get_or_create(&ResultLabels { result }).inc();
        self.certify_seconds.observe(seconds);
    }

    pub(crate) fn token_review(&self, seconds: f64, failed: bool) {
        self.token_review_seconds.observe(seconds);
        self.token_reviews.inc();
        if failed {
            self.token_review_errors.inc();
        }
    }

    pub(crate) fn token_verified(&self, result: &'static str) {
        self.token_verification
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// TokenReviews made so far.
    pub fn token_review_count(&self) -> u64 {
        self.token_reviews.get()
    }

    /// The count of tokens checked in process with `result`.
    pub fn token_verification_count(&self, result: &'static str) -> u64 {
        self.token_verification
            .get_or_create(&ResultLabels { result })
            .get()
    }

    /// The count of Certify calls that ended with `result`.
    pub fn certify_count(&self, result: &'static str) -> u64 {
        self.certify.get_or_create(&ResultLabels { result }).get()
    }

    /// Sets the issuer-expiry gauge from the expiry of the issuer loaded now (0 when none is),
    /// at scrape time.
    pub(crate) fn refresh_issuer_expiry(&self, not_after: Option<std::time::SystemTime>) {
        let seconds = not_after
            .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        self.issuer_expiry.set(seconds);
    }
}
