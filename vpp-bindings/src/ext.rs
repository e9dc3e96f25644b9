//! Hand-written conversions between generated VPP address types and `std::net` / `ipnet`.
//! Only conversions live here; nothing about what the addresses mean to a caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

use crate::gen::ethernet_types::MacAddress;
use crate::gen::ip_types::{
    Address, AddressFamily, AddressUnion, Ip4Address, Ip4Prefix, Ip6Address, Ip6Prefix, Prefix,
};

/// A prefix whose length does not fit its family.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("prefix length {len} is too long for {family}")]
pub struct BadPrefixLen {
    pub family: &'static str,
    pub len: u8,
}

impl From<Ipv4Addr> for Ip4Address {
    fn from(a: Ipv4Addr) -> Self {
        Ip4Address(a.octets())
    }
}
impl From<Ip4Address> for Ipv4Addr {
    fn from(a: Ip4Address) -> Self {
        Ipv4Addr::from(a.0)
    }
}
impl From<Ipv6Addr> for Ip6Address {
    fn from(a: Ipv6Addr) -> Self {
        Ip6Address(a.octets())
    }
}
impl From<Ip6Address> for Ipv6Addr {
    fn from(a: Ip6Address) -> Self {
        Ipv6Addr::from(a.0)
    }
}

impl From<IpAddr> for Address {
    fn from(a: IpAddr) -> Self {
        let mut un = [0u8; 16];
        let af = match a {
            IpAddr::V4(v4) => {
                un[..4].copy_from_slice(&v4.octets());
                AddressFamily::AddressIp4
            }
            IpAddr::V6(v6) => {
                un.copy_from_slice(&v6.octets());
                AddressFamily::AddressIp6
            }
        };
        Address {
            af,
            un: AddressUnion(un),
        }
    }
}
impl From<Ipv4Addr> for Address {
    fn from(a: Ipv4Addr) -> Self {
        IpAddr::V4(a).into()
    }
}
impl From<Ipv6Addr> for Address {
    fn from(a: Ipv6Addr) -> Self {
        IpAddr::V6(a).into()
    }
}

impl From<Address> for IpAddr {
    /// The family field says which member of the union is meant.
    fn from(a: Address) -> Self {
        let b = a.un.0;
        match a.af {
            AddressFamily::AddressIp4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            AddressFamily::AddressIp6 => IpAddr::V6(Ipv6Addr::from(b)),
        }
    }
}

impl From<IpNet> for Prefix {
    fn from(n: IpNet) -> Self {
        Prefix {
            address: n.addr().into(),
            len: n.prefix_len(),
        }
    }
}
impl From<Ipv4Net> for Prefix {
    fn from(n: Ipv4Net) -> Self {
        IpNet::V4(n).into()
    }
}
impl From<Ipv6Net> for Prefix {
    fn from(n: Ipv6Net) -> Self {
        IpNet::V6(n).into()
    }
}

impl TryFrom<Prefix> for IpNet {
    type Error = BadPrefixLen;
    fn try_from(p: Prefix) -> Result<Self, BadPrefixLen> {
        match IpAddr::from(p.address) {
            IpAddr::V4(a) => Ipv4Net::new(a, p.len)
                .map(IpNet::V4)
                .map_err(|_| BadPrefixLen {
                    family: "IPv4",
                    len: p.len,
                }),
            IpAddr::V6(a) => Ipv6Net::new(a, p.len)
                .map(IpNet::V6)
                .map_err(|_| BadPrefixLen {
                    family: "IPv6",
                    len: p.len,
                }),
        }
    }
}

impl From<Ipv4Net> for Ip4Prefix {
    fn from(n: Ipv4Net) -> Self {
        Ip4Prefix {
            address: n.addr().into(),
            len: n.prefix_len(),
        }
    }
}
impl TryFrom<Ip4Prefix> for Ipv4Net {
    type Error = BadPrefixLen;
    fn try_from(p: Ip4Prefix) -> Result<Self, BadPrefixLen> {
        Ipv4Net::new(p.address.into(), p.len).map_err(|_| BadPrefixLen {
            family: "IPv4",
            len: p.len,
        })
    }
}
impl From<Ipv6Net> for Ip6Prefix {
    fn from(n: Ipv6Net) -> Self {
        Ip6Prefix {
            address: n.addr().into(),
            len: n.prefix_len(),
        }
    }
}
impl TryFrom<Ip6Prefix> for Ipv6Net {
    type Error = BadPrefixLen;
    fn try_from(p: Ip6Prefix) -> Result<Self, BadPrefixLen> {
        Ipv6Net::new(p.address.into(), p.len).map_err(|_| BadPrefixLen {
            family: "IPv6",
            len: p.len,
        })
    }
}

impl From<[u8; 6]> for MacAddress {
    fn from(b: [u8; 6]) -> Self {
        MacAddress(b)
    }
}

impl std::fmt::Display for MacAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{from_bytes, to_bytes};

    #[test]
    fn v4_address_encodes_family_then_padded_union() {
        let a = Address::from(Ipv4Addr::new(10, 0, 0, 1));
        let b = to_bytes(&a).unwrap();
        assert_eq!(b.len(), 17);
        assert_eq!(&b[..5], &[0, 10, 0, 0, 1]);
        assert!(b[5..].iter().all(|&x| x == 0));
        assert_eq!(
            IpAddr::from(from_bytes::<Address>(&b).unwrap()),
            a.into_ip()
        );
    }

    #[test]
    fn prefix_round_trips_through_ipnet() {
        for s in ["10.1.0.0/16", "fd00::/64", "0.0.0.0/0"] {
            let n: IpNet = s.parse().unwrap();
            let p = Prefix::from(n);
            assert_eq!(IpNet::try_from(p).unwrap(), n);
        }
    }

    #[test]
    fn prefix_with_impossible_length_is_refused() {
        let mut p = Prefix::from("10.0.0.0/8".parse::<IpNet>().unwrap());
        p.len = 40;
        assert!(IpNet::try_from(p).is_err());
    }

    trait IntoIp {
        fn into_ip(self) -> IpAddr;
    }
    impl IntoIp for Address {
        fn into_ip(self) -> IpAddr {
            self.into()
        }
    }
}
