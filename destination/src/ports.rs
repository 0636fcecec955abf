//! Port sets as annotations spell them: `25,587,4000-4100,http`.

use std::ops::RangeInclusive;

/// A set of TCP ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<RangeInclusive<u16>>);

impl PortSet {
    /// Parses a comma-separated list of ports and ranges. Names are looked up with `named`
    /// (a pod's container ports, a Service's ports); unknown names and malformed items are
    /// skipped, as Linkerd does, so one typo does not discard the rest of the list.
    pub fn parse(list: &str, named: impl Fn(&str) -> Option<u16>) -> Self {
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let range = match item.split_once('-') {
                Some((lo, hi)) => match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                    (Ok(lo), Ok(hi)) if lo <= hi => Some(lo..=hi),
                    _ => None,
                },
                None => match item.parse::<u16>() {
                    Ok(port) => Some(port..=port),
                    Err(_) => named(item).map(|port| port..=port),
                },
            };
            match range {
                Some(range) => ranges.push(range),
                None => tracing::debug!(%item, "ignoring an unparsable port"),
            }
        }
        Self(ranges)
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(&port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_ranges_and_names() {
        let named = |n: &str| (n == "mysql").then_some(3306);
        let set = PortSet::parse("25, 4000-4100,mysql,bogus,9-1,", named);
        for port in [25, 4000, 4050, 4100, 3306] {
            assert!(set.contains(port), "{port}");
        }
        for port in [24, 26, 3999, 4101, 9, 1] {
            assert!(!set.contains(port), "{port}");
        }
    }
}
