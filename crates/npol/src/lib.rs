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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpSetMember {
    Ip(IpAddr),
    Net(IpNet),
    IpAndPort { addr: IpAddr, proto: u8, port: u16 },
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

/// An npol policy: ordered rule references for each direction.
/// `inbound` are the items sent with `is_inbound = true`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Policy<R> {
    pub inbound: Vec<R>,
    pub outbound: Vec<R>,
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
