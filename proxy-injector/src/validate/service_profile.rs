//! ServiceProfile checks: Linkerd's `profiles.Validate` (strict decoding, a DNS-1123 name, named
//! routes with a condition and a valid timeout, response classes with a condition and an
//! ordered status range, a retry budget with a non-negative ratio and a TTL), plus what the
//! proxy would otherwise reject or silently drop: a path regex it cannot compile, an HTTP
//! method that is not a token, status codes outside 100–599, a retry ratio above 1000 and a
//! TTL outside 1s–60s, and malformed opaque ports and traffic-split weights.
//!
//! The object is walked as JSON so that every error names its field
//! (`spec.routes[1].condition.pathRegex`).

use oxlink_crds::{duration::parse_duration, ports::port_spec};
use serde_json::{Map, Value};
use std::time::Duration;

/// The proxy discards a retry budget whose ratio is outside this range.
const MAX_RETRY_RATIO: f64 = 1000.0;
/// … or whose TTL is outside this range.
const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// Regexes are compiled with the proxy's engine and at most this much memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

type Checked = Result<(), String>;

/// Checks one ServiceProfile object (the `object` of an admission request).
pub(super) fn validate(name: &str, object: &Value) -> Checked {
    let errors = validation_name(name);
    if !errors.is_empty() {
        return Err(format!(
            "metadata.name: {} (a ServiceProfile is named after the authority it describes, e.g. web.ns.svc.cluster.local)",
            errors
        ));
    }
    let Some(spec) = object.get("spec") else {
        return Ok(());
    };
    let spec = fields(
        spec,
        "spec",
        &["routes", "retryBudget", "dstOverrides", "opaquePorts"],
    )?;
    for (i, route) in list(spec, "routes", "spec")?.iter().enumerate() {
        self::route(route, &format!("spec.routes[{i}]"))?;
    }
    if let Some(budget) = spec.get("retryBudget") {
        retry_budget(budget, "spec.retryBudget")?;
    }
    for (i, dst) in list(spec, "dstOverrides", "spec")?.iter().enumerate() {
        dst_override(dst, &format!("spec.dstOverrides[{i}]"))?;
    }
    for (i, port) in list(spec, "opaquePorts", "spec")?.iter().enumerate() {
        let at = format!("spec.opaquePorts[{i}]");
        let text = match port {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(format!("{at}: expected a port or range, got {other}")),
        };
        port_spec(&text).map_err(|e| format!("{at}: {e}"))?;
    }
    Ok(())
}

fn route(route: &Value, at: &str) -> Checked {
    let route = fields(
        route,
        at,
        &[
            "name",
            "condition",
            "responseClasses",
            "isRetryable",
            "timeout",
        ],
    )?;
    match string(route, "name", at)? {
        Some(name) if !name.is_empty() => {}
        _ => return Err(format!("{at}.name: a route must have a name")),
    }
    if let Some(timeout) = string(route, "timeout", at)? {
        parse_duration(timeout)
            .map_err(|e| format!("{at}.timeout: invalid Go duration {timeout:?}: {e}"))?;
    }
    boolean(route, "isRetryable", at)?;
    let condition = route
        .get("condition")
        .ok_or_else(|| format!("{at}.condition: a route must have a condition"))?;
    request_match(condition, &format!("{at}.condition"))?;
    for (i, class) in list(route, "responseClasses", at)?.iter().enumerate() {
        let at = format!("{at}.responseClasses[{i}]");
        let class = fields(class, &at, &["condition", "isFailure"])?;
        boolean(class, "isFailure", &at)?;
        let condition = class
            .get("condition")
            .ok_or_else(|| format!("{at}.condition: a response class must have a condition"))?;
        response_match(condition, &format!("{at}.condition"))?;
    }
    Ok(())
}

fn request_match(m: &Value, at: &str) -> Checked {
    let m = fields(m, at, &["all", "any", "not", "pathRegex", "method"])?;
    for key in ["all", "any"] {
        for (i, child) in list(m, key, at)?.iter().enumerate() {
            request_match(child, &format!("{at}.{key}[{i}]"))?;
        }
    }
    if let Some(not) = m.get("not") {
        request_match(not, &format!("{at}.not"))?;
    }
    if let Some(regex) = string(m, "pathRegex", at)? {
        path_regex(regex).map_err(|e| format!("{at}.pathRegex: {e}"))?;
    }
    if let Some(method) = string(m, "method", at)?
        && !is_token(method)
    {
        return Err(format!("{at}.method: {method:?} is not an HTTP method"));
    }
    let set = ["all", "any", "not", "pathRegex", "method"]
        .iter()
        .any(|k| m.contains_key(*k));
    if !set {
        return Err(format!(
            "{at}: a request match must set one of all, any, not, pathRegex, method"
        ));
    }
    Ok(())
}

fn response_match(m: &Value, at: &str) -> Checked {
    let m = fields(m, at, &["all", "any", "not", "status"])?;
    for key in ["all", "any"] {
        for (i, child) in list(m, key, at)?.iter().enumerate() {
            response_match(child, &format!("{at}.{key}[{i}]"))?;
        }
    }
    if let Some(not) = m.get("not") {
        response_match(not, &format!("{at}.not"))?;
    }
    if let Some(status) = m.get("status") {
        let at = format!("{at}.status");
        let status = fields(status, &at, &["min", "max"])?;
        let min = integer(status, "min", &at)?;
        let max = integer(status, "max", &at)?;
        for (key, code) in [("min", min), ("max", max)] {
            if let Some(code) = code.filter(|c| !(100..=599).contains(c)) {
                return Err(format!(
                    "{at}.{key}: {code} is not an HTTP status code (100-599)"
                ));
            }
        }
        if let (Some(min), Some(max)) = (min, max)
            && max < min
        {
            return Err(format!(
                "{at}: range maximum {max} is smaller than minimum {min}"
            ));
        }
    }
    if !["all", "any", "not", "status"]
        .iter()
        .any(|k| m.contains_key(*k))
    {
        return Err(format!(
            "{at}: a response match must set one of all, any, not, status"
        ));
    }
    Ok(())
}

fn retry_budget(budget: &Value, at: &str) -> Checked {
    let budget = fields(budget, at, &["retryRatio", "minRetriesPerSecond", "ttl"])?;
    let ratio = match budget.get("retryRatio") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("{at}.retryRatio: expected a number, got {v}"))?,
    };
    if !(0.0..=MAX_RETRY_RATIO).contains(&ratio) {
        return Err(format!(
            "{at}.retryRatio: {ratio} is out of range (0 to {MAX_RETRY_RATIO})"
        ));
    }
    if let Some(min) = integer(budget, "minRetriesPerSecond", at)?
        && !(0..=i64::from(i32::MAX)).contains(&min)
    {
        return Err(format!(
            "{at}.minRetriesPerSecond: {min} is out of range (0 to {})",
            i32::MAX
        ));
    }
    let ttl = string(budget, "ttl", at)?
        .ok_or_else(|| format!("{at}.ttl: a retry budget must have a TTL"))?;
    let parsed =
        parse_duration(ttl).map_err(|e| format!("{at}.ttl: invalid Go duration {ttl:?}: {e}"))?;
    if parsed < TTL_RANGE.0 || parsed > TTL_RANGE.1 {
        return Err(format!(
            "{at}.ttl: {ttl} is out of range (1s to 60s); the proxy would ignore the budget"
        ));
    }
    Ok(())
}

fn dst_override(dst: &Value, at: &str) -> Checked {
    let dst = fields(dst, at, &["authority", "weight"])?;
    match string(dst, "authority", at)? {
        Some(a) if !a.is_empty() => {}
        _ => {
            return Err(format!(
                "{at}.authority: an override must name an authority"
            ));
        }
    }
    match dst.get("weight") {
        None => Err(format!("{at}.weight: an override must have a weight")),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(()),
        Some(Value::String(s)) if is_quantity(s) => Ok(()),
        Some(other) => Err(format!(
            "{at}.weight: {other} is not a non-negative quantity (e.g. 500m, 1, 10k)"
        )),
    }
}

/// Compiles a path regex as the proxy does (anchored, Rust's `regex` engine).
fn path_regex(regex: &str) -> Checked {
    regex::RegexBuilder::new(&format!("^(?:{regex})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(drop)
        .map_err(|e| {
            let reason = match &e {
                regex::Error::Syntax(text) => text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_string(),
                other => other.to_string(),
            };
            format!("invalid regular expression {regex:?}: {reason}")
        })
}

/// An HTTP token (RFC 9110 §5.6.2), as a method must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A Kubernetes quantity without a sign: digits, an optional fraction and an optional suffix.
fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    );
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    suffix_ok
        && !digits.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
        && !(whole.is_empty() && fraction.is_none())
}

/// The reasons `name` is not a DNS-1123 subdomain, joined.
fn validation_name(name: &str) -> String {
    if name.is_empty() {
        return "must not be empty".into();
    }
    if name.len() > 253 {
        return format!("{name:?} is longer than 253 characters");
    }
    let ok = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if ok {
        String::new()
    } else {
        format!("{name:?} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')")
    }
}

// === JSON walking ===

/// `value` as an object whose keys are all `known`.
fn fields<'a>(
    value: &'a Value,
    at: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let map = value
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {value}"))?;
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "{at}.{unknown}: unknown field (expected one of {})",
            known.join(", ")
        ));
    }
    Ok(map)
}

fn list<'a>(map: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a [Value], String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!("{at}.{key}: expected a list, got {other}")),
    }
}

fn string<'a>(map: &'a Map<String, Value>, key: &str, at: &str) -> Result<Option<&'a str>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{at}.{key}: expected a string, got {other}")),
    }
}

fn integer(map: &Map<String, Value>, key: &str, at: &str) -> Result<Option<i64>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{at}.{key}: expected an integer, got {v}")),
    }
}

fn boolean(map: &Map<String, Value>, key: &str, at: &str) -> Checked {
    match map.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(_)) => Ok(()),
        Some(other) => Err(format!("{at}.{key}: expected true or false, got {other}")),
    }
}
