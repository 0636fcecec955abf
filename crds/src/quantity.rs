//! Kubernetes resource quantities (`100m`, `1.5`, `64Mi`, `1e3`), as numbers.

/// A Kubernetes resource quantity (`100m`, `1.5`, `64Mi`, `1e3`) as a number; negative and
/// malformed quantities are refused.
pub fn parse(text: &str) -> Result<f64, String> {
    let bad = || format!("invalid quantity {text:?}");
    let s = text.trim();
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let number: f64 = s[..num_len].parse().map_err(|_| bad())?;
    let suffix = &s[num_len..];
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| bad())?;
            10f64.powi(exp)
        }
        _ => return Err(bad()),
    };
    if number < 0.0 {
        return Err(bad());
    }
    Ok(number * scale)
}
