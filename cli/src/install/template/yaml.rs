//! `toYaml`: block-style YAML with sorted keys, lists at their key's indentation and multi-line
//! strings as literal blocks, as Helm's `toYaml` writes it (without the trailing newline).
//! Strings that could read back as anything but the same string are double-quoted.

use serde_json::{Map, Value};

pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(value, 0, &mut out),
        Value::Array(items) if !items.is_empty() => sequence(value, 0, &mut out),
        scalar => out.push_str(&inline(scalar, 0)),
    }
    out.trim_end_matches('\n').to_string()
}

fn mapping(value: &Value, indent: usize, out: &mut String) {
    let Value::Object(map) = value else { return };
    let pad = " ".repeat(indent);
    for (key, value) in sorted(map) {
        out.push_str(&pad);
        out.push_str(&string(key, indent));
        out.push(':');
        nested(value, indent, indent + 2, out);
    }
}

fn sequence(value: &Value, indent: usize, out: &mut String) {
    let Value::Array(items) = value else { return };
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key shares the dash's line.
                let mut inner = String::new();
                mapping(item, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            _ => nested(item, indent, indent + 2, out),
        }
    }
}

/// The value after `key:` or `-`: inline scalars, or a nested block on the next lines.
fn nested(value: &Value, indent: usize, child: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(value, child, out);
        }
        // Lists under a key sit at the key's indentation.
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(value, indent, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar, child));
            out.push('\n');
        }
    }
}

fn inline(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or_default();
            if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else if n.is_f64() {
                go_number(n)
            } else {
                n.to_string()
            }
        }
        Value::String(s) => string(s, indent),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a plain scalar when that reads back unchanged, a literal block when it spans
/// lines, and double-quoted otherwise.
fn string(s: &str, indent: usize) -> String {
    if plain(s) {
        return s.to_string();
    }
    if s.contains('\n') && block_safe(s) {
        let (body, chomp) = match s.strip_suffix('\n') {
            Some(body) => (body, ""),
            None => (s, "-"),
        };
        let pad = " ".repeat(indent);
        let lines: Vec<String> = body
            .split('\n')
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{pad}{l}")
                }
            })
            .collect();
        return format!("|{chomp}\n{}", lines.join("\n"));
    }
    serde_json::to_string(s).unwrap_or_default()
}

fn plain(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/')
        && chars.all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// Whether a literal block keeps `s` exactly: no leading blanks on the first line, no trailing
/// blanks, no control characters, and at most one trailing newline.
fn block_safe(s: &str) -> bool {
    !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n")
        && s.lines().all(|l| !l.ends_with([' ', '\t']))
        && !s.chars().any(|c| c.is_control() && c != '\n')
}

/// A map's entries by key, the order Go's templates and `toYaml` print them in.
pub(super) fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Go's `%v` of a number, as Helm prints numbers read from YAML values (floats): integers as
/// such; floats in `%g`'s shortest form, which switches to exponent notation (`1e+06`,
/// `1.234567e+06`) when the decimal exponent is below -4 or at least 6.
pub(super) fn go_number(n: &serde_json::Number) -> String {
    if !n.is_f64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    if f == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits and decimal exponent, e.g. 2103 -> "2.103e3".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or_default();
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = 6;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let sign = if negative { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    format!("{f}")
}
