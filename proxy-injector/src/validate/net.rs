//! CIDRs as the policy resources spell them: `10.0.0.0/8`, `fd00::/8`, or a bare address.

use std::{fmt, net::IpAddr, str::FromStr};

/// A network: an address and a prefix length, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cidr {
    addr: IpAddr,
    len: u8,
}

// === impl Cidr ===

impl Cidr {
    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    fn mask(len: u8, width: u8) -> u128 {
        if len == 0 {
            0
        } else {
            (u128::MAX << (128 - u32::from(len))) >> (128 - u32::from(width))
        }
    }

    /// Whether every address of `other` is in `self`.
    pub(super) fn contains(&self, other: &Cidr) -> bool {
        let (a, width) = Self::bits(self.addr);
        let (b, other_width) = Self::bits(other.addr);
        width == other_width
            && other.len >= self.len
            && (a & Self::mask(self.len, width)) == (b & Self::mask(self.len, width))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not a CIDR or an IP address"))?;
        let width = Self::bits(addr).1;
        let len = match len {
            None => width,
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= width)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
        };
        Ok(Self { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn containment_follows_prefixes_and_families() {
        assert!(cidr("10.0.0.0/8").contains(&cidr("10.1.0.0/16")));
        assert!(cidr("10.0.0.0/8").contains(&cidr("10.1.2.3")));
        assert!(cidr("10.0.0.0/8").contains(&cidr("10.0.0.0/8")));
        assert!(!cidr("10.1.0.0/16").contains(&cidr("10.0.0.0/8")));
        assert!(!cidr("10.0.0.0/8").contains(&cidr("11.0.0.0/16")));
        assert!(cidr("0.0.0.0/0").contains(&cidr("192.168.1.1")));
        assert!(!cidr("0.0.0.0/0").contains(&cidr("::1")));
        assert!(cidr("fd00::/8").contains(&cidr("fd12::1/64")));
        assert!(!cidr("fd00::/8").contains(&cidr("fe80::/10")));
    }

    #[test]
    fn bad_cidrs_say_why() {
        assert!(
            "10.0.0.0/33"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("prefix length")
        );
        assert!(
            "::/129"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("prefix length")
        );
        assert!(
            "10.0.0/8"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("not a CIDR")
        );
        assert!("nope".parse::<Cidr>().unwrap_err().contains("not a CIDR"));
    }
}
