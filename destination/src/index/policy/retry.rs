//! Retries from the `retry.linkerd.io/*` annotations of a Service, or of a route, whose own
//! annotations replace the Service's.
//!
//! Each annotation is read on its own: a malformed one is logged and skipped, and the others
//! still apply. Any retry annotation makes a retry policy, with a limit of 1 unless
//! `retry.linkerd.io/limit` says otherwise.

use super::routes;
use linkerd2_proxy_api::outbound as pb;
use oxlink_crds::{duration::parse_duration, names::annotations};
use std::{collections::BTreeMap, time::Duration};

/// The limit when only conditions or a timeout are annotated.
const DEFAULT_LIMIT: u32 = 1;
/// Requests with larger bodies are not retried (the proxy would have to buffer them).
const MAX_REQUEST_BYTES: u32 = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);
const BACKOFF_JITTER: f32 = 1.0;

/// Why an annotation's value was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RetryError {
    #[error("{0:?} is not a retry limit (a whole number from 0 to 65535)")]
    Limit(String),
    #[error("{0:?} is not a timeout (a duration with units, such as 300ms or 5s)")]
    Timeout(String),
    #[error(
        "{0:?} is not an HTTP retry condition (a status such as 504, a range such as 500-504, \
         5xx or gateway-error)"
    )]
    Status(String),
    #[error(
        "{0:?} is not a gRPC retry condition (cancelled, deadline-exceeded, internal, \
         resource-exhausted or unavailable)"
    )]
    GrpcCode(String),
}

/// An inclusive range of HTTP statuses to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatusRange {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// A gRPC status to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrpcCode {
    Cancelled,
    DeadlineExceeded,
    Internal,
    ResourceExhausted,
    Unavailable,
}

/// One protocol's retry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Retry<C> {
    limit: u32,
    timeout: Option<Duration>,
    conditions: Vec<C>,
}

/// The HTTP and gRPC retry policies a set of annotations describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Retries {
    pub(crate) http: Option<Retry<StatusRange>>,
    pub(crate) grpc: Option<Retry<GrpcCode>>,
}

// === impl Retries ===

impl Retries {
    /// Reads the annotations of `object` (named in the warnings for malformed values).
    pub(crate) fn from_annotations(a: &BTreeMap<String, String>, object: &str) -> Self {
        fn read<T>(
            a: &BTreeMap<String, String>,
            object: &str,
            key: &str,
            parse: impl Fn(&str) -> Result<T, RetryError>,
        ) -> Option<T> {
            let value = a.get(key)?;
            parse(value)
                .inspect_err(|error| {
                    tracing::warn!(%object, annotation = key, %error, "ignoring a retry annotation");
                })
                .ok()
        }
        let limit = read(a, object, annotations::RETRY_LIMIT, parse_limit).flatten();
        let timeout = read(a, object, annotations::RETRY_TIMEOUT, parse_timeout).flatten();
        let statuses = read(a, object, annotations::RETRY_HTTP, parse_statuses);
        let codes = read(a, object, annotations::RETRY_GRPC, parse_grpc_codes);
        Self {
            http: Retry::new(limit, timeout, statuses),
            grpc: Retry::new(limit, timeout, codes),
        }
    }
}

// === impl Retry ===

impl<C> Retry<C> {
    /// A policy if anything was annotated.
    fn new(
        limit: Option<u32>,
        timeout: Option<Duration>,
        conditions: Option<Vec<C>>,
    ) -> Option<Self> {
        if limit.is_none() && timeout.is_none() && conditions.is_none() {
            return None;
        }
        Some(Self {
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            timeout,
            conditions: conditions.unwrap_or_default(),
        })
    }

    fn backoff() -> pb::ExponentialBackoff {
        pb::ExponentialBackoff {
            min_backoff: Some(routes::duration(BACKOFF_MIN)),
            max_backoff: Some(routes::duration(BACKOFF_MAX)),
            jitter_ratio: BACKOFF_JITTER,
            respect_retry_after_hint: false,
        }
    }
}

impl Retry<StatusRange> {
    pub(crate) fn to_http(&self) -> pb::http_route::Retry {
        use pb::http_route::retry::{Conditions, conditions};
        pb::http_route::Retry {
            max_retries: self.limit,
            max_request_bytes: MAX_REQUEST_BYTES,
            conditions: Some(Conditions {
                status_ranges: self
                    .conditions
                    .iter()
                    .map(|r| conditions::StatusRange {
                        start: r.start,
                        end: r.end,
                    })
                    .collect(),
            }),
            timeout: self.timeout.map(routes::duration),
            backoff: Some(Self::backoff()),
        }
    }
}

impl Retry<GrpcCode> {
    pub(crate) fn to_grpc(&self) -> pb::grpc_route::Retry {
        let mut conditions = pb::grpc_route::retry::Conditions::default();
        for code in &self.conditions {
            match code {
                GrpcCode::Cancelled => conditions.cancelled = true,
                GrpcCode::DeadlineExceeded => conditions.deadine_exceeded = true,
                GrpcCode::Internal => conditions.internal = true,
                GrpcCode::ResourceExhausted => conditions.resource_exhausted = true,
                GrpcCode::Unavailable => conditions.unavailable = true,
            }
        }
        pb::grpc_route::Retry {
            max_retries: self.limit,
            max_request_bytes: MAX_REQUEST_BYTES,
            conditions: Some(conditions),
            timeout: self.timeout.map(routes::duration),
            backoff: Some(Self::backoff()),
        }
    }
}

// === parsing ===

/// A limit; `0` means unset, as in Linkerd.
fn parse_limit(s: &str) -> Result<Option<u32>, RetryError> {
    let limit: u16 = s
        .trim()
        .parse()
        .map_err(|_| RetryError::Limit(s.to_string()))?;
    Ok((limit != 0).then_some(u32::from(limit)))
}

/// A timeout with units; zero means unset.
fn parse_timeout(s: &str) -> Result<Option<Duration>, RetryError> {
    let s = s.trim();
    // A bare number has no unit (Go accepts only a bare `0`).
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(RetryError::Timeout(s.to_string()));
    }
    let timeout = parse_duration(s).map_err(|_| RetryError::Timeout(s.to_string()))?;
    Ok((!timeout.is_zero()).then_some(timeout))
}

/// `5xx`, `gateway-error`, `504` or `500-504`, comma-separated; every item must parse.
pub(crate) fn parse_statuses(s: &str) -> Result<Vec<StatusRange>, RetryError> {
    fn code(s: &str) -> Option<u32> {
        s.parse().ok().filter(|c| (100..600).contains(c))
    }
    s.split(',')
        .map(|item| {
            let item = item.trim();
            let range = if item.eq_ignore_ascii_case("5xx") {
                Some((500, 599))
            } else if item.eq_ignore_ascii_case("gateway-error") {
                Some((502, 504))
            } else if let Some(c) = code(item) {
                Some((c, c))
            } else {
                item.split_once('-')
                    .and_then(|(a, b)| Some((code(a.trim())?, code(b.trim())?)))
                    .filter(|(a, b)| a <= b)
            };
            range
                .map(|(start, end)| StatusRange { start, end })
                .ok_or_else(|| RetryError::Status(item.to_string()))
        })
        .collect()
}

/// gRPC status names, comma-separated; every item must parse.
pub(crate) fn parse_grpc_codes(s: &str) -> Result<Vec<GrpcCode>, RetryError> {
    s.split(',')
        .map(|item| {
            let item = item.trim();
            Ok(match item.to_ascii_lowercase().as_str() {
                "cancelled" => GrpcCode::Cancelled,
                "deadline-exceeded" => GrpcCode::DeadlineExceeded,
                "internal" => GrpcCode::Internal,
                "resource-exhausted" => GrpcCode::ResourceExhausted,
                "unavailable" => GrpcCode::Unavailable,
                _ => return Err(RetryError::GrpcCode(item.to_string())),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn range(start: u32, end: u32) -> StatusRange {
        StatusRange { start, end }
    }

    #[test]
    fn statuses_parse_as_linkerd_spells_them() {
        assert_eq!(
            parse_statuses("5xx, gateway-error,504,500-503").unwrap(),
            [
                range(500, 599),
                range(502, 504),
                range(504, 504),
                range(500, 503)
            ]
        );
        assert_eq!(parse_statuses("5XX").unwrap(), [range(500, 599)]);
        for bad in [
            "", "4xx", "600", "99", "504-500", "500-", "-500", "5OO", "500-600",
        ] {
            let item = bad.to_string();
            assert_eq!(parse_statuses(bad), Err(RetryError::Status(item)), "{bad}");
        }
        assert_eq!(
            parse_statuses("500,nope"),
            Err(RetryError::Status("nope".into())),
            "one bad item rejects the list"
        );
    }

    #[test]
    fn grpc_codes_parse_by_name() {
        assert_eq!(
            parse_grpc_codes("cancelled,Deadline-Exceeded,internal,resource-exhausted,unavailable")
                .unwrap(),
            [
                GrpcCode::Cancelled,
                GrpcCode::DeadlineExceeded,
                GrpcCode::Internal,
                GrpcCode::ResourceExhausted,
                GrpcCode::Unavailable,
            ]
        );
        assert_eq!(
            parse_grpc_codes("unavailable,not-found"),
            Err(RetryError::GrpcCode("not-found".into()))
        );
        assert_eq!(
            parse_grpc_codes("14"),
            Err(RetryError::GrpcCode("14".into()))
        );
    }

    #[test]
    fn limits_and_timeouts_parse_precisely() {
        assert_eq!(parse_limit("3"), Ok(Some(3)));
        assert_eq!(parse_limit("0"), Ok(None));
        for bad in ["-1", "65536", "two", ""] {
            assert_eq!(
                parse_limit(bad),
                Err(RetryError::Limit(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(parse_timeout("300ms"), Ok(Some(Duration::from_millis(300))));
        assert_eq!(parse_timeout("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("0s"), Ok(None));
        for bad in ["5", "0", "soon", "-1s", ""] {
            assert_eq!(
                parse_timeout(bad),
                Err(RetryError::Timeout(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn annotations_make_http_and_grpc_policies() {
        assert_eq!(
            Retries::from_annotations(&BTreeMap::new(), "x"),
            Retries::default()
        );
        let r = Retries::from_annotations(
            &annotations(&[
                (annotations::RETRY_HTTP, "gateway-error"),
                (annotations::RETRY_LIMIT, "3"),
                (annotations::RETRY_TIMEOUT, "400ms"),
            ]),
            "x",
        );
        let http = r.http.unwrap().to_http();
        assert_eq!(http.max_retries, 3);
        assert_eq!(http.max_request_bytes, 64 * 1024);
        assert_eq!(
            http.conditions.unwrap().status_ranges,
            [pb::http_route::retry::conditions::StatusRange {
                start: 502,
                end: 504
            }]
        );
        assert_eq!(http.timeout.unwrap().nanos, 400_000_000);
        let backoff = http.backoff.unwrap();
        assert_eq!(backoff.min_backoff.unwrap().nanos, 25_000_000);
        assert_eq!(backoff.max_backoff.unwrap().nanos, 250_000_000);
        // Limit and timeout apply to gRPC too, with no conditions of its own.
        let grpc = r.grpc.unwrap().to_grpc();
        assert_eq!(grpc.max_retries, 3);
        assert_eq!(grpc.conditions, Some(Default::default()));

        let r =
            Retries::from_annotations(&annotations(&[(annotations::RETRY_GRPC, "internal")]), "x");
        assert!(r.http.is_none());
        let grpc = r.grpc.unwrap().to_grpc();
        assert_eq!(grpc.max_retries, 1, "the default limit");
        assert!(grpc.conditions.unwrap().internal);
    }

    #[test]
    fn a_malformed_annotation_is_skipped_alone() {
        let r = Retries::from_annotations(
            &annotations(&[
                (annotations::RETRY_HTTP, "5xx"),
                (annotations::RETRY_LIMIT, "many"),
                (annotations::RETRY_TIMEOUT, "5"),
            ]),
            "x",
        );
        let http = r.http.unwrap().to_http();
        assert_eq!(http.max_retries, 1);
        assert_eq!(http.timeout, None);
        assert_eq!(http.conditions.unwrap().status_ranges.len(), 1);
        // Nothing valid: no policy at all.
        let r = Retries::from_annotations(
            &annotations(&[
                (annotations::RETRY_HTTP, "5xx,oops"),
                (annotations::RETRY_LIMIT, "x"),
            ]),
            "x",
        );
        assert_eq!(r, Retries::default());
    }
}
