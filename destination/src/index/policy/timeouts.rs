//! Route timeouts from the `timeout.linkerd.io/*` annotations of a Service, or of a route,
//! whose own timeouts (with an HTTPRoute rule's `timeouts.request`) replace the Service's, as
//! in Linkerd.

use super::routes;
use linkerd2_proxy_api::http_route;
use oxlink_crds::{duration::parse_duration, names::annotations};
use std::{collections::BTreeMap, time::Duration};

/// Route timeouts from `timeout.linkerd.io/{request,response,idle}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(super) request: Option<Duration>,
    pub(super) response: Option<Duration>,
    pub(super) idle: Option<Duration>,
}

impl Timeouts {
    /// Reads the annotations of `object`; a malformed value is skipped (and logged), zero
    /// means none.
    pub(crate) fn from_annotations(a: &BTreeMap<String, String>, object: &str) -> Self {
        let timeout = |key: &str| {
            let value = a.get(key)?;
            match parse_duration(value) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => None,
                Err(error) => {
                    tracing::info!(%object, annotation = key, %value, %error, "ignoring a malformed timeout");
                    None
                }
            }
        };
        Self {
            request: timeout(annotations::TIMEOUT_REQUEST),
            response: timeout(annotations::TIMEOUT_RESPONSE),
            idle: timeout(annotations::TIMEOUT_IDLE),
        }
    }

    /// A route rule's timeouts: the route's own (its annotations, the rule's request timeout
    /// filling in the request), or the Service's if the route sets none.
    pub(super) fn for_rule(self, rule_request: Option<Duration>, service: Self) -> Self {
        let own = Self {
            request: self.request.or(rule_request),
            ..self
        };
        if own == Self::default() { service } else { own }
    }

    pub(super) fn to_proto(self) -> Option<http_route::Timeouts> {
        if self == Self::default() {
            return None;
        }
        Some(http_route::Timeouts {
            request: self.request.map(routes::duration),
            response: self.response.map(routes::duration),
            idle: self.idle.map(routes::duration),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routes_timeouts_replace_the_services() {
        let secs = |s| Some(Duration::from_secs(s));
        let service = Timeouts {
            request: secs(10),
            response: secs(2),
            idle: None,
        };
        assert_eq!(Timeouts::default().for_rule(None, service), service);
        assert_eq!(
            Timeouts::default().for_rule(secs(1), service),
            Timeouts {
                request: secs(1),
                ..Default::default()
            }
        );
        let route = Timeouts {
            idle: secs(30),
            ..Default::default()
        };
        assert_eq!(
            route.for_rule(secs(1), service),
            Timeouts {
                request: secs(1),
                idle: secs(30),
                ..Default::default()
            }
        );
        let annotated = Timeouts {
            request: secs(3),
            ..Default::default()
        };
        assert_eq!(
            annotated.for_rule(secs(1), service).request,
            secs(3),
            "the annotation first, as in Linkerd"
        );
        assert_eq!(Timeouts::default().to_proto(), None);
    }

    #[test]
    fn annotations_parse_precisely() {
        let a: BTreeMap<String, String> = [
            (annotations::TIMEOUT_REQUEST, "1m30s"),
            (annotations::TIMEOUT_RESPONSE, "0s"),
            (annotations::TIMEOUT_IDLE, "soon"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            Timeouts::from_annotations(&a, "x"),
            Timeouts {
                request: Some(Duration::from_secs(90)),
                ..Default::default()
            }
        );
    }
}
