//! Port lists as annotations and chart values spell them: `25,587,8000-8100,http`.

/// One item of a port list: a port or an inclusive range, or a container port's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpec {
    Range(u16, u16),
    Named(String),
}

/// Parses one item: `25`, `8000-8100` or `http` (an IANA service name, as container ports
/// are named).
pub fn port_spec(item: &str) -> Result<PortSpec, String> {
    let item = item.trim();
    if item.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        let (lo, hi) = match item.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (item, item),
        };
        let lo: u16 = lo.parse().map_err(|_| format!("invalid port {item:?}"))?;
        let hi: u16 = hi.parse().map_err(|_| format!("invalid port {item:?}"))?;
        if lo == 0 || lo > hi {
            return Err(format!("invalid port range {item:?}"));
        }
        Ok(PortSpec::Range(lo, hi))
    } else if is_port_name(item) {
        Ok(PortSpec::Named(item.to_string()))
    } else {
        Err(format!("invalid port {item:?}"))
    }
}

/// Parses a whole list; empty items are ignored, the first malformed one is the error.
pub fn port_specs(text: &str) -> Result<Vec<PortSpec>, String> {
    items(text).map(port_spec).collect()
}

/// The non-empty items of a comma-separated list, trimmed.
pub fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|i| !i.is_empty())
}

fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        assert_eq!(
            port_specs(" 25, 8000-8002 ,http,,").unwrap(),
            vec![
                PortSpec::Range(25, 25),
                PortSpec::Range(8000, 8002),
                PortSpec::Named("http".into())
            ]
        );
        for bad in ["0", "9-3", "70000", "HTTP", "a b", "1-x"] {
            assert!(port_specs(bad).is_err(), "{bad}");
        }
    }
}
