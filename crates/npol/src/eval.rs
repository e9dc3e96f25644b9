//! The npol evaluator. It must follow VPP's `src/plugins/npol/npol_match.c` exactly,
//! quirks included (each flagged `QUIRK`), because tests use it to predict real VPP.

use std::net::IpAddr;

use crate::{Direction, InterfaceConfig, IpSet, Policy, Rule, Verdict};

/// Resolves references the way VPP resolves ids. A reference that resolves to nothing is
/// treated as npol treats a dangling id.
pub trait Lookup {
    type SetRef;
    type RuleRef;
    type PolicyRef;
    fn ipset(&self, r: &Self::SetRef) -> Option<&IpSet>;
    fn rule(&self, r: &Self::RuleRef) -> Option<&Rule<Self::SetRef>>;
    fn policy(&self, r: &Self::PolicyRef) -> Option<&Policy<Self::RuleRef>>;
}

/// The fields of a packet npol looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// For TCP/UDP/SCTP the ports; for ICMP `sport` carries the echo identifier, as npol
    /// reads it (QUIRK: the ICMP type/code filters look at it), and `dport` is 0.
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

/// One step of an evaluation, for explaining verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `policy` is the index in the interface's list (profiles: `is_profile`), `rule` the
    /// index inside that policy's rule list for the direction.
    RuleMatched {
        is_profile: bool,
        policy: usize,
        rule: usize,
        action: crate::RuleAction,
    },
    PolicyDefault(crate::PolicyDefault),
    ProfileDefault(crate::PolicyDefault),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub trace: Vec<Step>,
}

/// The verdict npol gives `pkt` crossing an interface configured with `cfg` in direction `dir`.
pub fn evaluate<L: Lookup>(
    lookup: &L,
    cfg: &InterfaceConfig<L::PolicyRef>,
    dir: Direction,
    pkt: &Packet,
) -> Evaluation {
    let _ = (lookup, cfg, dir, pkt);
    unimplemented!("filled in by the npol evaluator work")
}
