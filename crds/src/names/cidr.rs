//! IP networks as Linkerd's resources, values and flags spell them: `10.0.0.0/8`, `fd00::/8`,
//! or a bare address, which means that one host (`/32` or `/128`).

use std::{fmt, net::IpAddr, str::FromStr};

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Why a string is not a network.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseCidrError {
    #[error("{0:?} is not a CIDR or an IP address")]
    Addr(String),
    #[error("{0:?} has an invalid prefix length")]
    Prefix(String),
}

// === impl Cidr ===

impl Cidr {
    /// A comma-separated list (spaces allowed); empty items are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, ParseCidrError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    /// Every IPv4 and every IPv6 address.
    pub fn all() -> [Self; 2] {
        [
            Self {
                addr: IpAddr::from([0, 0, 0, 0]),
                prefix: 0,
            },
            Self {
                addr: IpAddr::from([0u16; 8]),
                prefix: 0,
            },
        ]
    }

    /// The address as the top bits of a `u128`, and the family's width.
    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    fn mask(prefix: u8) -> u128 {
        match prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        }
    }

    /// Whether `ip` is in this network (never across address families).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let ((net, width), (ip, other)) = (Self::bits(self.addr), Self::bits(ip));
        width == other && net & Self::mask(self.prefix) == ip & Self::mask(self.prefix)
    }

    /// Whether every address of `other` is in this network.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains_ip(other.addr)
    }
}

impl FromStr for Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| ParseCidrError::Addr(addr.to_string()))?;
        let width = Self::bits(addr).1;
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| ParseCidrError::Prefix(s.to_string()))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
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
        assert!(cidr("10.0.0.0/8").contains_ip("10.255.0.1".parse().unwrap()));
        assert!(!cidr("10.0.0.0/8").contains_ip("::a00:1".parse().unwrap()));
    }

    #[test]
    fn a_bare_address_is_one_host() {
        assert_eq!(cidr("10.1.2.3"), cidr("10.1.2.3/32"));
        assert_eq!(cidr("::1").prefix, 128);
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_cidrs_say_why() {
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(ParseCidrError::Prefix("10.0.0.0/33".into()))
        );
        assert_eq!(
            "::/129".parse::<Cidr>().unwrap_err().to_string(),
            "\"::/129\" has an invalid prefix length"
        );
        assert_eq!(
            "ten/8".parse::<Cidr>(),
            Err(ParseCidrError::Addr("ten".into()))
        );
        assert_eq!(
            "nope".parse::<Cidr>().unwrap_err().to_string(),
            "\"nope\" is not a CIDR or an IP address"
        );
        assert_eq!(
            Cidr::parse_list("10.0.0.0/8, ,fd00::/8").unwrap(),
            [cidr("10.0.0.0/8"), cidr("fd00::/8")]
        );
    }
}
