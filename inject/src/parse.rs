//! Parsers for annotation values: port lists and ranges, Go durations, resource quantities.

use std::collections::BTreeSet;

pub(crate) use oxlink_crds::ports::{PortSpec, port_specs};

/// A list of ports only (no ranges or names), as proxy-init and most env vars take them.
pub(crate) fn ports(text: &str) -> Result<BTreeSet<u16>, String> {
    let mut out = BTreeSet::new();
    for spec in port_specs(text)? {
        match spec {
            PortSpec::Range(lo, hi) => out.extend(lo..=hi),
            PortSpec::Named(name) => {
                return Err(format!("a port number is required, not {name:?}"));
            }
        }
    }
    Ok(out)
}

/// Renders ports as `a,b,c-d` (consecutive runs become ranges).
pub(crate) fn render_ports(ports: &BTreeSet<u16>) -> String {
    let mut parts = Vec::new();
    let mut iter = ports.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end.wrapping_add(1))) && end < u16::MAX {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// Joins ports with commas, one by one, in ascending order.
pub(crate) fn join_ports(ports: impl IntoIterator<Item = u16>) -> String {
    ports
        .into_iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) use oxlink_crds::quantity::parse as quantity;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        assert_eq!(join_ports(ports("3306,25,4-5").unwrap()), "4,5,25,3306");
        assert_eq!(
            render_ports(&ports("1,2,3,5,7-8,65535").unwrap()),
            "1-3,5,7-8,65535"
        );
        assert!(ports("http").is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("100m").unwrap(), 0.1);
        assert_eq!(quantity("2").unwrap(), 2.0);
        assert_eq!(quantity("64Mi").unwrap(), 64.0 * 1024.0 * 1024.0);
        assert_eq!(quantity("1e3").unwrap(), 1000.0);
        for bad in ["", "m", "1x", "-1", "1.2.3"] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }
}
