//! Chart values as Helm builds them: YAML documents merged key by key (`null` deletes), and
//! `--set` expressions parsed like Helm's `strvals`.

use serde_json::{Map, Number, Value};

/// Values that do not parse, or a `--set` Helm would reject or oxlink does not support.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValuesError {
    #[error("{source_name}: the values do not parse as YAML: {message}")]
    Yaml {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: the values must be a YAML mapping at the top")]
    NotAMapping { source_name: String },
    #[error("--set {expr:?}: {message}")]
    Set { expr: String, message: String },
}

/// Parses a values document; numbers become floats, as Helm reads them.
pub(crate) fn from_yaml(source_name: &str, text: &str) -> Result<Value, ValuesError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_saphyr::from_str(text).map_err(|e| ValuesError::Yaml {
        source_name: source_name.into(),
        message: e.to_string(),
    })?;
    match value {
        Value::Object(_) => Ok(floats(value)),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(ValuesError::NotAMapping {
            source_name: source_name.into(),
        }),
    }
}

fn floats(value: Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map_or(Value::Number(n), Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, floats(v))).collect()),
        other => other,
    }
}

/// Merges `overlay` into `base`: dicts key by key, `null` removes a key, anything else replaces.
pub(crate) fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match value {
                    Value::Null => {
                        base.remove(&key);
                    }
                    Value::Object(_) if base.get(&key).is_some_and(Value::is_object) => {
                        merge(base.get_mut(&key).expect("checked above"), value);
                    }
                    value => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// One `--set` argument (`a.b=c,d={x,y}`) as a values overlay.
pub(crate) fn parse_set(expr: &str) -> Result<Value, ValuesError> {
    let error = |message: &str| ValuesError::Set {
        expr: expr.into(),
        message: message.into(),
    };
    let mut overlay = Value::Object(Map::new());
    for pair in split_unescaped(expr, ',', true) {
        let Some((key, value)) = split_once_unescaped(&pair, '=') else {
            return Err(error(&format!("{pair:?} has no `=` (expected key=value)")));
        };
        if key.contains('[') {
            return Err(error(
                "list indices (`key[0]`) are not supported; use key={a,b}",
            ));
        }
        let path = split_unescaped(&key, '.', false);
        if path.iter().any(String::is_empty) {
            return Err(error(&format!("{key:?} has an empty key segment")));
        }
        let value = if let Some(list) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            Value::Array(
                split_unescaped(list, ',', false)
                    .iter()
                    .map(|item| typed(&unescape(item)))
                    .collect(),
            )
        } else {
            typed(&unescape(&value))
        };
        let mut leaf = value;
        for segment in path.iter().rev() {
            let mut map = Map::new();
            map.insert(unescape(segment), leaf);
            leaf = Value::Object(map);
        }
        layer(&mut overlay, leaf);
    }
    Ok(overlay)
}

/// Layers `overlay` over another overlay: like [`merge`], but keeps `null`s, so that the
/// result can still delete chart defaults when it is merged into them.
pub(crate) fn layer(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        layer(existing, value);
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Helm's `strvals` typing: true/false, null, integers without a leading zero; else a string.
fn typed(value: &str) -> Value {
    if value.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if value.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if value.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if value == "0" {
        return Value::from(0i64);
    }
    if !value.is_empty()
        && !value.starts_with('0')
        && let Ok(n) = value.parse::<i64>()
    {
        return Value::from(n);
    }
    Value::String(value.into())
}

/// Splits on `sep` unless escaped with `\` (escapes are kept for [`unescape`]); with
/// `braces`, separators inside `{…}` do not split.
fn split_unescaped(s: &str, sep: char, braces: bool) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("never empty");
        match c {
            '\\' => {
                part.push(c);
                part.extend(chars.next());
            }
            '{' if braces => {
                depth += 1;
                part.push(c);
            }
            '}' if braces => {
                depth = depth.saturating_sub(1);
                part.push(c);
            }
            c if c == sep && depth == 0 => parts.push(String::new()),
            c => part.push(c),
        }
    }
    parts
}

fn split_once_unescaped(s: &str, sep: char) -> Option<(String, String)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == sep && !escaped => return Some((s[..i].into(), s[i + 1..].into())),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}
