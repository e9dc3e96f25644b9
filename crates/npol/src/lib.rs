//! VPP's npol plugin as data: ipsets, rules, policies and per-interface configuration, plus
//! an evaluator that gives the verdict npol's matching code would give for a packet.
//!
//! Pure: no I/O, no VPP wire types. Objects refer to each other through a reference type chosen
//! by the user (`u32` VPP ids in the simulator, stable keys in the compiler's desired state), so
//! one evaluator serves both. Where npol's behaviour differs from what its API suggests (see
//! DESIGN section 3), the evaluator reproduces npol, and says so in a comment flagged `QUIRK`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub mod eval;

pub use eval::{evaluate, Evaluation, Lookup, Packet, Step};

/// `npol_ipset_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpSetType {
    /// Each member is one address.
    Ip,
    /// Each member is `(address, l4 protocol, port)`.
    IpAndPort,
    /// Each member is a prefix.
    Net,
}

/// One member of an npol ipset. Its variant must agree with the set's [`IpSetType`].
///
/// Serialized as serde's derive would (externally tagged, addresses as text in readable
/// formats), but IPv4 text is written without `core::fmt`: the driver's state file holds
/// every member of every set, a million of them in a large cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum IpSetMember {
    Ip(IpAddr),
    Net(IpNet),
    IpAndPort { addr: IpAddr, proto: u8, port: u16 },
}

impl Serialize for IpSetMember {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStructVariant;
        match self {
            IpSetMember::Ip(a) => {
                s.serialize_newtype_variant("IpSetMember", 0, "Ip", &Text::Addr(*a))
            }
            IpSetMember::Net(n) => {
                s.serialize_newtype_variant("IpSetMember", 1, "Net", &Text::Net(*n))
            }
            IpSetMember::IpAndPort { addr, proto, port } => {
                let mut v = s.serialize_struct_variant("IpSetMember", 2, "IpAndPort", 3)?;
                v.serialize_field("addr", &Text::Addr(*addr))?;
                v.serialize_field("proto", proto)?;
                v.serialize_field("port", port)?;
                v.end()
            }
        }
    }
}

/// An address or prefix serialized as its own `Serialize` does, IPv4 text written by hand.
enum Text {
    Addr(IpAddr),
    Net(IpNet),
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 18];
        let n = match (s.is_human_readable(), self) {
            (true, Text::Addr(IpAddr::V4(a))) => v4_text(a.octets(), None, &mut buf),
            (true, Text::Net(IpNet::V4(n))) => {
                v4_text(n.addr().octets(), Some(n.prefix_len()), &mut buf)
            }
            (_, Text::Addr(a)) => return a.serialize(s),
            (_, Text::Net(n)) => return n.serialize(s),
        };
        match std::str::from_utf8(&buf[..n]) {
            Ok(text) => s.serialize_str(text),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

/// Writes `a.b.c.d` (and `/len`) into `buf`; returns the length.
fn v4_text(octets: [u8; 4], len: Option<u8>, buf: &mut [u8; 18]) -> usize {
    fn decimal(v: u8, buf: &mut [u8; 18], mut i: usize) -> usize {
        if v >= 100 {
            buf[i] = b'0' + v / 100;
            i += 1;
        }
        if v >= 10 {
            buf[i] = b'0' + v / 10 % 10;
            i += 1;
        }
        buf[i] = b'0' + v % 10;
        i + 1
    }
    let mut i = 0;
    for (k, o) in octets.into_iter().enumerate() {
        if k > 0 {
            buf[i] = b'.';
            i += 1;
        }
        i = decimal(o, buf, i);
    }
    if let Some(len) = len {
        buf[i] = b'/';
        i = decimal(len, buf, i + 1);
    }
    i
}

impl IpSetMember {
    pub fn kind(&self) -> IpSetType {
        match self {
            IpSetMember::Ip(_) => IpSetType::Ip,
            IpSetMember::Net(_) => IpSetType::Net,
            IpSetMember::IpAndPort { .. } => IpSetType::IpAndPort,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSet {
    pub kind: IpSetType,
    pub members: BTreeSet<IpSetMember>,
}

impl IpSet {
    pub fn new(kind: IpSetType) -> Self {
        IpSet {
            kind,
            members: BTreeSet::new(),
        }
    }

    /// Removes `member` the way `npol_ipset_del_member` does.
    ///
    /// QUIRK (confirmed on a real VPP): for IP_AND_PORT sets npol's member comparison is
    /// inverted. It removes every member that does *not* have the same protocol and port
    /// with a different address: the member itself, and every member whose protocol or port
    /// differs. Only same-protocol, same-port members at other addresses survive. IP and NET
    /// sets remove exactly the equal member.
    pub fn npol_delete_member(&mut self, member: &IpSetMember) {
        match (self.kind, member) {
            (IpSetType::IpAndPort, IpSetMember::IpAndPort { addr, proto, port }) => {
                self.members.retain(|m| {
                    matches!(m, IpSetMember::IpAndPort { addr: a, proto: p, port: q }
                        if p == proto && q == port && a != addr)
                });
            }
            _ => {
                self.members.remove(member);
            }
        }
    }
}

/// `npol_rule_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RuleAction {
    Allow,
    Deny,
    /// QUIRK: ends the current policy (later rules of that policy are skipped), evaluation
    /// continues with the next policy. The compiler uses it for Calico's `next-tier`.
    Log,
    /// Jumps straight to the profiles (there are no tiers in npol).
    Pass,
}

/// `npol_rule_filter_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FilterType {
    None,
    /// QUIRK: compared against the ICMP echo identifier on real VPP, not the type.
    IcmpType,
    /// QUIRK: compared against the ICMP echo identifier on real VPP, not the code.
    IcmpCode,
    L4Proto,
}

/// `npol_rule_filter`: a rule carries exactly three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Filter {
    pub kind: FilterType,
    pub value: u32,
    pub should_match: bool,
}

impl Filter {
    pub const NONE: Filter = Filter {
        kind: FilterType::None,
        value: 0,
        should_match: false,
    };
}

/// `npol_entry_data`, with set references of type `S`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntryData<S> {
    Cidr(IpNet),
    /// Inclusive on both ends.
    PortRange {
        start: u16,
        end: u16,
    },
    /// An `IpAndPort` set.
    PortIpSet(S),
    /// An `Ip` or `Net` set.
    IpSet(S),
}

/// `npol_rule_entry`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry<S> {
    pub is_src: bool,
    pub is_not: bool,
    pub data: EntryData<S>,
}

/// `npol_rule`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rule<S> {
    pub action: RuleAction,
    pub filters: [Filter; 3],
    pub entries: Vec<Entry<S>>,
}

impl<S> Rule<S> {
    /// The same rule with its ipset references mapped by `f` (stable keys to VPP ids, or
    /// back).
    pub fn map_sets<T>(self, mut f: impl FnMut(S) -> T) -> Rule<T> {
        Rule {
            action: self.action,
            filters: self.filters,
            entries: self
                .entries
                .into_iter()
                .map(|e| Entry {
                    is_src: e.is_src,
                    is_not: e.is_not,
                    data: match e.data {
                        EntryData::Cidr(c) => EntryData::Cidr(c),
                        EntryData::PortRange { start, end } => EntryData::PortRange { start, end },
                        EntryData::PortIpSet(s) => EntryData::PortIpSet(f(s)),
                        EntryData::IpSet(s) => EntryData::IpSet(f(s)),
                    },
                })
                .collect(),
        }
    }
}

/// An npol policy: ordered rule references for each direction.
/// `inbound` are the items sent with `is_inbound = true`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Policy<R> {
    pub inbound: Vec<R>,
    pub outbound: Vec<R>,
}

impl<R> Policy<R> {
    /// The same policy with its rule references mapped by `f`.
    pub fn map_rules<T>(self, mut f: impl FnMut(R) -> T) -> Policy<T> {
        Policy {
            inbound: self.inbound.into_iter().map(&mut f).collect(),
            outbound: self.outbound.into_iter().map(&mut f).collect(),
        }
    }
}

/// `npol_policy_default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyDefault {
    Allow,
    Deny,
    /// To the profiles. QUIRK: as a profile default it denies.
    Pass,
}

/// `npol_configure_policies` for one interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InterfaceConfig<P> {
    pub rx_policies: Vec<P>,
    pub tx_policies: Vec<P>,
    pub profiles: Vec<P>,
    pub invert_rx_tx: bool,
    pub policy_default_rx: PolicyDefault,
    pub policy_default_tx: PolicyDefault,
    pub profile_default_rx: PolicyDefault,
    pub profile_default_tx: PolicyDefault,
}

impl<P> InterfaceConfig<P> {
    /// The same configuration with its policy references mapped by `f`.
    pub fn map_policies<T>(self, mut f: impl FnMut(P) -> T) -> InterfaceConfig<T> {
        InterfaceConfig {
            rx_policies: self.rx_policies.into_iter().map(&mut f).collect(),
            tx_policies: self.tx_policies.into_iter().map(&mut f).collect(),
            profiles: self.profiles.into_iter().map(&mut f).collect(),
            invert_rx_tx: self.invert_rx_tx,
            policy_default_rx: self.policy_default_rx,
            policy_default_tx: self.policy_default_tx,
            profile_default_rx: self.profile_default_rx,
            profile_default_tx: self.profile_default_tx,
        }
    }
}

/// Which way a packet crosses the interface, as npol sees it: RX enters VPP from the
/// interface (a pod's egress), TX leaves VPP into it (a pod's ingress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    Rx,
    Tx,
}

/// The final word of npol for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Verdict {
    Allow,
    Deny,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `#[derive(Serialize)]` writes: the hand-written impl must write the same.
    #[derive(Serialize)]
    enum Derived {
        Ip(IpAddr),
        Net(IpNet),
        IpAndPort { addr: IpAddr, proto: u8, port: u16 },
    }

    fn derived(m: &IpSetMember) -> Derived {
        match *m {
            IpSetMember::Ip(a) => Derived::Ip(a),
            IpSetMember::Net(n) => Derived::Net(n),
            IpSetMember::IpAndPort { addr, proto, port } => {
                Derived::IpAndPort { addr, proto, port }
            }
        }
    }

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    fn member() -> impl Strategy<Value = IpSetMember> {
        prop_oneof![
            addr().prop_map(IpSetMember::Ip),
            (addr(), 0u8..=128).prop_map(|(a, l)| {
                let max = if a.is_ipv4() { 32 } else { 128 };
                IpSetMember::Net(IpNet::new(a, l.min(max)).unwrap())
            }),
            (addr(), any::<u8>(), any::<u16>())
                .prop_map(|(addr, proto, port)| IpSetMember::IpAndPort { addr, proto, port }),
        ]
    }

    proptest! {
        #[test]
        fn members_serialize_as_derived_and_round_trip(m in member()) {
            let json = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&derived(&m)).unwrap());
            prop_assert_eq!(serde_json::from_str::<IpSetMember>(&json).unwrap(), m);
        }
    }

    #[test]
    fn ipv4_text_edges() {
        for (m, text) in [
            (IpSetMember::Ip([0, 0, 0, 0].into()), r#"{"Ip":"0.0.0.0"}"#),
            (
                IpSetMember::Net("255.255.255.255/32".parse().unwrap()),
                r#"{"Net":"255.255.255.255/32"}"#,
            ),
            (
                IpSetMember::Net("10.100.9.0/24".parse().unwrap()),
                r#"{"Net":"10.100.9.0/24"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&m).unwrap(), text);
        }
    }
}
