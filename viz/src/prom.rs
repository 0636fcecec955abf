//! Prometheus' answers to instant queries (`/api/v1/query`): instant vectors of labelled values.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// A label's value, empty when the series has none (as PromQL treats it).
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// Prometheus said no, or said something else than a vector.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PromError {
    #[error("Prometheus answered {error_type}: {error}")]
    Query { error_type: String, error: String },
    #[error("Prometheus answered a {0}, not a vector")]
    NotAVector(String),
    #[error("Prometheus' answer is not understood: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct Body {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Element>,
}

#[derive(Deserialize)]
struct Element {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// The vector of an instant query's JSON answer; `NaN` elements (a quantile without samples)
/// are left out.
pub fn parse_vector(body: &str) -> Result<Vec<Sample>, PromError> {
    let body: Body = serde_json::from_str(body).map_err(|e| PromError::Malformed(e.to_string()))?;
    if body.status != "success" {
        return Err(PromError::Query {
            error_type: body.error_type.unwrap_or_else(|| body.status.clone()),
            error: body.error.unwrap_or_default(),
        });
    }
    let data = body
        .data
        .ok_or_else(|| PromError::Malformed("no data".into()))?;
    if data.result_type != "vector" {
        return Err(PromError::NotAVector(data.result_type));
    }
    let mut samples = Vec::with_capacity(data.result.len());
    for e in data.result {
        let value: f64 =
            e.value.1.parse().map_err(|_| {
                PromError::Malformed(format!("value {:?} is not a number", e.value.1))
            })?;
        if value.is_nan() {
            continue;
        }
        samples.push(Sample {
            labels: e.metric,
            value,
        });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_parse_and_nan_is_dropped() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"deployment":"web","classification":"success"},"value":[1700000000.1,"12.5"]},
            {"metric":{"deployment":"db"},"value":[1700000000.1,"NaN"]}]}}"#;
        let v = parse_vector(body).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].label("deployment"), "web");
        assert_eq!(v[0].label("missing"), "");
        assert_eq!(v[0].value, 12.5);
    }

    #[test]
    fn errors_say_what_prometheus_said() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(
            parse_vector(body).unwrap_err().to_string(),
            "Prometheus answered bad_data: parse error at char 4"
        );
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            parse_vector(matrix).unwrap_err(),
            PromError::NotAVector("matrix".into())
        );
        assert!(matches!(
            parse_vector("<html>").unwrap_err(),
            PromError::Malformed(_)
        ));
    }
}
