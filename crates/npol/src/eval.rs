//! The npol evaluator. It must follow VPP's `src/plugins/npol/npol_match.c` exactly,
//! quirks included (each flagged `QUIRK`), because tests use it to predict real VPP.
//! It never looks at anything but its arguments: no I/O, no clock, no global state.
//!
//! What npol sees of a packet is the 5-tuple cnat builds (`cnat_make_buffer_5tuple`), so the
//! evaluator first derives that tuple ([`Packet::npol_tuple`]) and only then walks the policies.

use std::net::IpAddr;

use crate::{
    Direction, EntryData, FilterType, InterfaceConfig, IpSet, IpSetMember, IpSetType, Policy,
    PolicyDefault, Rule, RuleAction, Verdict,
};

/// IP protocol numbers npol and cnat single out.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMP6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Resolves references the way VPP resolves ids. A reference that resolves to nothing is
/// treated as npol treats a dangling id (see [`evaluate`]).
pub trait Lookup {
    type SetRef;
    type RuleRef;
    type PolicyRef;
    fn ipset(&self, r: &Self::SetRef) -> Option<&IpSet>;
    fn rule(&self, r: &Self::RuleRef) -> Option<&Rule<Self::SetRef>>;
    fn policy(&self, r: &Self::PolicyRef) -> Option<&Policy<Self::RuleRef>>;

    /// For a reference to a rule that *was* deleted: the action it had.
    ///
    /// QUIRK: npol frees a deleted rule's filters and entries but leaves the pool slot's
    /// `action` in place, and policies keep the id (nothing checks it). Until the slot is
    /// reused, a policy still naming the rule sees a rule with no conditions: it matches every
    /// packet with its old action. A [`Lookup`] that remembers deleted rules (the simulator)
    /// returns the action here; the default (never existed, or not tracked) makes the
    /// reference match nothing.
    fn deleted_rule_action(&self, r: &Self::RuleRef) -> Option<RuleAction> {
        let _ = r;
        None
    }
}

/// The fields of a packet npol looks at (through cnat's 5-tuple).
///
/// - TCP (6), UDP (17), SCTP (132): `sport`/`dport` are the ports; `icmp_*` are ignored.
/// - ICMP of the packet's family (1 for IPv4, 58 for IPv6): `icmp_type`/`icmp_code` are the
///   header fields; for echo request/reply `sport` is the echo identifier (cnat puts it in
///   *both* tuple ports, so `dport` is ignored).
/// - Anything else: npol never sees it (see [`Packet::npol_tuple`]).
///
/// `src` and `dst` should be of the same family; the family of `src` decides which
/// family npol evaluates (VPP's `is_ip6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// For TCP/UDP/SCTP the source port; for ICMP echo the echo identifier.
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

impl Packet {
    /// A TCP packet (or any port-carrying protocol with `proto`).
    pub fn l4(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Packet {
        Packet {
            src,
            dst,
            proto,
            sport,
            dport,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Packet {
        Packet::l4(proto::TCP, src, sport, dst, dport)
    }

    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Packet {
        Packet::l4(proto::UDP, src, sport, dst, dport)
    }

    /// An ICMP (IPv4) or ICMPv6 (IPv6) packet; `ident` is the echo identifier (ignored by
    /// cnat for other types).
    pub fn icmp(src: IpAddr, dst: IpAddr, icmp_type: u8, icmp_code: u8, ident: u16) -> Packet {
        let proto = if src.is_ipv6() {
            proto::ICMP6
        } else {
            proto::ICMP
        };
        Packet {
            src,
            dst,
            proto,
            sport: ident,
            dport: ident,
            icmp_type,
            icmp_code,
        }
    }

    /// The 5-tuple cnat builds for this packet and hands to npol, or `None` when npol never
    /// evaluates the packet.
    ///
    /// QUIRK: cnat builds a tuple only for TCP, UDP, SCTP and ICMP echo request/reply (of the
    /// packet's own family). For any other protocol (IPIP, GRE, ESP, ...) and any other ICMP
    /// type the tuple stays all zero, cnat's session lookup rejects protocol 0 as garbage and
    /// its slow path — where npol runs — is never reached: npol does not police such
    /// packets at all, they pass. ICMP error messages (v4 types 3, 4, 5, 6, 11, 12; v6 types
    /// 1, 3, 4) are looked up by the packet they quote, i.e. as traffic related to that
    /// flow; this evaluator does not model them and reports them as not policed too.
    pub fn npol_tuple(&self) -> Option<Tuple> {
        let v6 = self.src.is_ipv6();
        let ports = match self.proto {
            proto::TCP | proto::UDP | proto::SCTP => (self.sport, self.dport),
            // QUIRK: the echo identifier lands in both ports.
            proto::ICMP if !v6 && matches!(self.icmp_type, 0 | 8) => (self.sport, self.sport),
            proto::ICMP6 if v6 && matches!(self.icmp_type, 128 | 129) => (self.sport, self.sport),
            _ => return None,
        };
        Some(Tuple {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            sport: ports.0,
            dport: ports.1,
        })
    }
}

/// cnat's 5-tuple, as npol reads it (ports in host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// `port[SRC]`; QUIRK: also what the ICMP_TYPE filter compares against.
    pub sport: u16,
    /// `port[DST]`; QUIRK: also what the ICMP_CODE filter compares against.
    pub dport: u16,
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
    /// npol never saw the packet ([`Packet::npol_tuple`] is `None`); it passes.
    NotPoliced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub trace: Vec<Step>,
}

/// The verdict npol gives `pkt` crossing an interface configured with `cfg` in direction `dir`.
///
/// Mirrors `npol_match_func`: with `invert_rx_tx` unset, RX uses `rx_policies`,
/// `policy_default_rx`, `profile_default_rx` and every policy's (and profile's) `inbound`
/// rules; TX the `tx_*` ones and the `outbound` rules. `invert_rx_tx` swaps all of them.
/// Policies in order, in each the first matching rule decides: ALLOW/DENY end the
/// evaluation, PASS jumps to the profiles, and (QUIRK) LOG ends only the current policy.
/// No verdict after the policies (or none configured): the policy default (PASS = go to the
/// profiles). Profiles the same way, except that (QUIRK) PASS inside a profile and PASS as
/// the profile default are a deny (VPP leaves its verdict at its zero value, DENY).
///
/// Dangling references, as npol's pools behave: a deleted policy or ipset reads as empty
/// (matches nothing / contains nothing); a deleted rule see [`Lookup::deleted_rule_action`].
pub fn evaluate<L: Lookup>(
    lookup: &L,
    cfg: &InterfaceConfig<L::PolicyRef>,
    dir: Direction,
    pkt: &Packet,
) -> Evaluation {
    let mut trace = Vec::new();
    let Some(tuple) = pkt.npol_tuple() else {
        trace.push(Step::NotPoliced);
        return Evaluation {
            verdict: Verdict::Allow,
            trace,
        };
    };
    let rx_side = (dir == Direction::Rx) != cfg.invert_rx_tx;
    let (policies, policy_default, profile_default) = if rx_side {
        (
            &cfg.rx_policies,
            cfg.policy_default_rx,
            cfg.profile_default_rx,
        )
    } else {
        (
            &cfg.tx_policies,
            cfg.policy_default_tx,
            cfg.profile_default_tx,
        )
    };

    let done = |verdict, trace| Evaluation { verdict, trace };

    let mut to_profiles = false;
    for (i, p) in policies.iter().enumerate() {
        let Some((rule, action)) = match_policy(lookup, p, rx_side, &tuple) else {
            continue;
        };
        trace.push(Step::RuleMatched {
            is_profile: false,
            policy: i,
            rule,
            action,
        });
        match action {
            RuleAction::Allow => return done(Verdict::Allow, trace),
            RuleAction::Deny => return done(Verdict::Deny, trace),
            RuleAction::Pass => {
                to_profiles = true;
                break;
            }
            // QUIRK: the first matching rule ends the policy even when it is LOG; npol
            // then moves on to the next policy.
            RuleAction::Log => {}
        }
    }
    if !to_profiles {
        trace.push(Step::PolicyDefault(policy_default));
        match policy_default {
            PolicyDefault::Allow => return done(Verdict::Allow, trace),
            PolicyDefault::Deny => return done(Verdict::Deny, trace),
            PolicyDefault::Pass => {}
        }
    }

    for (i, p) in cfg.profiles.iter().enumerate() {
        let Some((rule, action)) = match_policy(lookup, p, rx_side, &tuple) else {
            continue;
        };
        trace.push(Step::RuleMatched {
            is_profile: true,
            policy: i,
            rule,
            action,
        });
        match action {
            RuleAction::Allow => return done(Verdict::Allow, trace),
            // QUIRK: "pass in profile" is logged by VPP and the verdict stays DENY.
            RuleAction::Deny | RuleAction::Pass => return done(Verdict::Deny, trace),
            RuleAction::Log => {}
        }
    }
    trace.push(Step::ProfileDefault(profile_default));
    let verdict = match profile_default {
        PolicyDefault::Allow => Verdict::Allow,
        // QUIRK: PASS as the profile default denies.
        PolicyDefault::Deny | PolicyDefault::Pass => Verdict::Deny,
    };
    done(verdict, trace)
}

/// `npol_match_policy`: the index and action of the first matching rule of the policy's
/// list for this side, if any.
fn match_policy<L: Lookup>(
    lookup: &L,
    policy: &L::PolicyRef,
    rx_side: bool,
    t: &Tuple,
) -> Option<(usize, RuleAction)> {
    // A deleted policy's rule lists were freed: it has no rules.
    let policy = lookup.policy(policy)?;
    let rules = if rx_side {
        &policy.inbound
    } else {
        &policy.outbound
    };
    rules.iter().enumerate().find_map(|(i, r)| {
        let action = match lookup.rule(r) {
            Some(rule) => rule_matches(lookup, rule, t).then_some(rule.action)?,
            None => lookup.deleted_rule_action(r)?,
        };
        Some((i, action))
    })
}

/// Which side of the packet an entry looks at, and whether it is negated: npol keeps one
/// list per (kind, side, negation).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    is_src: bool,
    is_not: bool,
}

const SLOTS: [Slot; 4] = [
    Slot {
        is_src: true,
        is_not: false,
    },
    Slot {
        is_src: true,
        is_not: true,
    },
    Slot {
        is_src: false,
        is_not: false,
    },
    Slot {
        is_src: false,
        is_not: true,
    },
];

/// `npol_match_rule`: every condition ANDed.
pub fn rule_matches<L: Lookup>(lookup: &L, rule: &Rule<L::SetRef>, t: &Tuple) -> bool {
    filters_match(rule, t)
        && SLOTS
            .iter()
            .all(|&slot| cidrs_match(rule, slot, t) && ipsets_match(lookup, rule, slot, t))
        && ports_match(lookup, rule, true, t)
        && ports_match(lookup, rule, false, t)
}

fn filters_match<S>(rule: &Rule<S>, t: &Tuple) -> bool {
    let is_icmp = t.proto == proto::ICMP || t.proto == proto::ICMP6;
    rule.filters.iter().all(|f| {
        let observed = match f.kind {
            FilterType::None => return true,
            FilterType::L4Proto => u32::from(t.proto),
            // A rule with an ICMP type/code filter never matches a non-ICMP packet, whether
            // the filter is positive or negated.
            FilterType::IcmpType | FilterType::IcmpCode if !is_icmp => return false,
            // QUIRK: npol reads the "type" from the tuple's source port and the "code" from
            // its destination port; for ICMP echo cnat put the echo identifier in both.
            FilterType::IcmpType => u32::from(t.sport),
            FilterType::IcmpCode => u32::from(t.dport),
        };
        (f.value == observed) == f.should_match
    })
}

fn side_addr(slot: Slot, t: &Tuple) -> IpAddr {
    if slot.is_src {
        t.src
    } else {
        t.dst
    }
}

fn entries_in<S>(rule: &Rule<S>, slot: Slot) -> impl Iterator<Item = &EntryData<S>> {
    rule.entries
        .iter()
        .filter(move |e| e.is_src == slot.is_src && e.is_not == slot.is_not)
        .map(|e| &e.data)
}

/// Positive list: at least one entry (of the packet's family) contains the address; an
/// empty list is no condition. Negated list: no entry may contain it.
fn one_category(slot: Slot, present: bool, any_hit: bool) -> bool {
    match (present, slot.is_not) {
        (false, _) => true,
        (true, false) => any_hit,
        (true, true) => !any_hit,
    }
}

fn cidrs_match<S>(rule: &Rule<S>, slot: Slot, t: &Tuple) -> bool {
    let addr = side_addr(slot, t);
    let mut present = false;
    let mut hit = false;
    for d in entries_in(rule, slot) {
        if let EntryData::Cidr(net) = d {
            present = true;
            // `IpNet::contains` is false across families, as npol skips other-family
            // prefixes: a positive list with none of this family matches nothing.
            hit |= net.contains(&addr);
        }
    }
    one_category(slot, present, hit)
}

fn ipsets_match<L: Lookup>(lookup: &L, rule: &Rule<L::SetRef>, slot: Slot, t: &Tuple) -> bool {
    let addr = side_addr(slot, t);
    let mut present = false;
    let mut hit = false;
    for d in entries_in(rule, slot) {
        if let EntryData::IpSet(s) = d {
            present = true;
            hit |= lookup
                .ipset(s)
                .is_some_and(|set| set_contains_ip(set, addr));
        }
    }
    one_category(slot, present, hit)
}

/// `ipset_contains_ip4/6`: IP and NET sets only; an IP_AND_PORT set used as an IP set
/// contains nothing (VPP warns "Wrong ipset type").
fn set_contains_ip(set: &IpSet, addr: IpAddr) -> bool {
    set.members.iter().any(|m| match (set.kind, m) {
        (IpSetType::Ip, IpSetMember::Ip(a)) => *a == addr,
        (IpSetType::Net, IpSetMember::Net(n)) => n.contains(&addr),
        _ => false,
    })
}

/// `ipport_ipset_contains_ip4/6`. An IP or NET set used as a port-IP set is undefined
/// behaviour in VPP (it reads the union's port/protocol bytes); here it contains nothing.
fn set_contains_ipport(set: &IpSet, addr: IpAddr, l4: u8, port: u16) -> bool {
    set.kind == IpSetType::IpAndPort
        && set.members.iter().any(|m| {
            matches!(m, IpSetMember::IpAndPort { addr: a, proto: p, port: q }
                if *p == l4 && *q == port && *a == addr)
        })
}

/// Ports of one side: the port must be in one of the positive ranges OR the (address,
/// protocol, port) in one of the positive port-IP sets — one OR group, required only when
/// either list is non-empty — and in none of the negated ranges or sets.
///
/// QUIRK: this applies to whatever cnat put in the tuple's ports, so for ICMP echo the
/// identifier is checked against port ranges.
fn ports_match<L: Lookup>(lookup: &L, rule: &Rule<L::SetRef>, is_src: bool, t: &Tuple) -> bool {
    let (addr, port) = if is_src {
        (t.src, t.sport)
    } else {
        (t.dst, t.dport)
    };
    let mut required = false;
    let mut found = false;
    for e in rule.entries.iter().filter(|e| e.is_src == is_src) {
        let hit = match &e.data {
            EntryData::PortRange { start, end } => *start <= port && port <= *end,
            EntryData::PortIpSet(s) => lookup
                .ipset(s)
                .is_some_and(|set| set_contains_ipport(set, addr, t.proto, port)),
            EntryData::Cidr(_) | EntryData::IpSet(_) => continue,
        };
        if e.is_not {
            if hit {
                return false;
            }
        } else {
            required = true;
            found |= hit;
        }
    }
    !required || found
}

#[cfg(test)]
mod tests;
