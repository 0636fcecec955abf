//! Port sets as annotations spell them: `25,587,4000-4100,http`.

use oxlink_crds::ports::{self, PortSpec};
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
        for item in ports::items(list) {
            let range = match ports::port_spec(item) {
                Ok(PortSpec::Range(lo, hi)) => Some(lo..=hi),
                Ok(PortSpec::Named(name)) => named(&name).map(|port| port..=port),
                Err(_) => None,
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
