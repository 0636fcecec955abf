//! Typed values for the command line: durations, `PATH=VALUE` rules, headers and URLs.

use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use std::time::Duration;

/// Parses `300ms`, `2s`, `1.5s`, `1m` or `1h` (`us` for microseconds too).
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?} has no unit (use e.g. 300ms, 2s, 1m)"))?;
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{s:?} has unknown unit {unit:?} (use us, ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// A rule for one request path: `/stress=300ms`, `/missing=404`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRule<T> {
    /// The exact request path (without the query).
    pub path: String,
    /// What that path does.
    pub value: T,
}

fn path_rule<T>(
    s: &str,
    value: impl FnOnce(&str) -> Result<T, String>,
) -> Result<PathRule<T>, String> {
    let (path, v) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?} is not PATH=VALUE"))?;
    if !path.starts_with('/') {
        return Err(format!("path {path:?} does not start with '/'"));
    }
    Ok(PathRule {
        path: path.to_string(),
        value: value(v)?,
    })
}

/// `PATH=DURATION`.
pub fn latency_rule(s: &str) -> Result<PathRule<Duration>, String> {
    path_rule(s, duration)
}

/// `PATH=CODE`, a final status (200..=599).
pub fn status_rule(s: &str) -> Result<PathRule<StatusCode>, String> {
    path_rule(s, |v| {
        let code: u16 = v
            .parse()
            .map_err(|_| format!("status {v:?} is not a number"))?;
        match StatusCode::from_u16(code) {
            Ok(status) if (200..=599).contains(&code) => Ok(status),
            _ => Err(format!(
                "status {code} is not a final HTTP status (200..=599)"
            )),
        }
    })
}

/// A fraction between 0 and 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

/// A positive rate.
pub fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(f),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// `K:V`, a request header.
pub fn header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not NAME:VALUE"))?;
    let name = HeaderName::from_bytes(k.trim().as_bytes())
        .map_err(|_| format!("{k:?} is not a header name"))?;
    let value =
        HeaderValue::from_str(v.trim()).map_err(|_| format!("{v:?} is not a header value"))?;
    Ok((name, value))
}

/// An HTTP method, upper-cased (`get` is `GET`).
pub fn method(s: &str) -> Result<Method, String> {
    Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{s:?} is not an HTTP method"))
}

/// An absolute `http://` URL.
pub fn http_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{s:?} is not an http:// URL"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;
