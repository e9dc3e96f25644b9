//! The reference: Calico policy semantics (Felix's Linux dataplane, DESIGN section 3) written
//! as plainly as possible, straight from the model. It never looks at compiled objects; the
//! property tests hold the compiler to it.
//!
//! Fail-closed choices are the compiler's, stated here as semantics: a policy or profile
//! that is invalid, unknown, or refers to a missing IP set (or one of the wrong kind) denies.

use std::net::IpAddr;

use calico_model::{
    Action, IcmpMatch, IpSet, IpSetId, IpSetKind, IpSetMember, IpVersion, Model, PolicyId,
    PortRange, ProfileId, RouteTypes, Rule, TierDefaultAction, WorkloadEndpointId,
};
use ipnet::IpNet;
use npol::{Packet, Verdict};

use crate::config::{EndpointToHostAction, PolicyConfig};
use crate::report::CalicoDirection;

/// What decided a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    EndpointUnknown,
    EndpointDown,
    /// Egress from a source that is neither one of the workload's addresses nor in its
    /// `allow_spoofed_source_prefixes` (Felix's RPF check, before any policy).
    SpoofedSource,
    /// An ICMP echo reply (v4 type 0, v6 type 129) that answers no request: conntrack finds
    /// no connection for it and marks it INVALID, and Felix drops INVALID packets before any
    /// policy. (A reply to a request rides the request's connection and is never judged.)
    UnsolicitedEchoReply,
    /// VXLAN or IPIP from a workload.
    EncapDrop,
    Rule {
        tier: String,
        policy: PolicyId,
        index: usize,
        action: Action,
    },
    /// A tier names a policy the model lacks, or the policy is invalid or refers to a bad
    /// IP set.
    BrokenPolicy {
        tier: String,
        policy: PolicyId,
    },
    EndOfTier {
        tier: String,
    },
    ProfileRule {
        profile: ProfileId,
        index: usize,
        action: Action,
    },
    BrokenProfile {
        profile: ProfileId,
    },
    NoProfileMatched,
    /// Workload→host traffic after the egress policy allowed it.
    EndpointToHost(EndpointToHostAction),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub decided_by: Decision,
}

fn outcome(verdict: Verdict, decided_by: Decision) -> Outcome {
    Outcome {
        verdict,
        decided_by,
    }
}

/// Calico's verdict for `pkt` crossing workload `ep` in direction `dir`.
pub fn evaluate(
    model: &Model,
    ep: &WorkloadEndpointId,
    dir: CalicoDirection,
    pkt: &Packet,
) -> Outcome {
    let Some(ep) = model.workload_endpoints.get(ep) else {
        return outcome(Verdict::Deny, Decision::EndpointUnknown);
    };
    if !ep.active || ep.invalid.is_some() {
        return outcome(Verdict::Deny, Decision::EndpointDown);
    }
    if dir == CalicoDirection::Egress && !source_permitted(ep, pkt) {
        return outcome(Verdict::Deny, Decision::SpoofedSource);
    }
    if is_echo_reply(pkt) {
        return outcome(Verdict::Deny, Decision::UnsolicitedEchoReply);
    }
    let cfg = PolicyConfig::from_felix(&model.felix_config);
    if dir == CalicoDirection::Egress {
        let vxlan = pkt.proto == 17 && pkt.dport == cfg.vxlan_port;
        if (vxlan && !cfg.allow_vxlan_from_workloads)
            || (pkt.proto == 4 && !cfg.allow_ipip_from_workloads)
        {
            return outcome(Verdict::Deny, Decision::EncapDrop);
        }
    }
    let by_policy = policies_and_profiles(model, ep, dir, pkt);
    if dir == CalicoDirection::Egress
        && by_policy.verdict == Verdict::Allow
        && is_local_host(model, pkt.dst)
        && cfg.endpoint_to_host == EndpointToHostAction::Drop
    {
        return outcome(
            Verdict::Deny,
            Decision::EndpointToHost(cfg.endpoint_to_host),
        );
    }
    by_policy
}

/// An ICMP echo reply of the packet's own family.
pub fn is_echo_reply(pkt: &Packet) -> bool {
    matches!(
        (pkt.src.is_ipv4(), pkt.proto, pkt.icmp_type),
        (true, 1, 0) | (false, 58, 129)
    )
}

/// Felix's anti-spoofing (strict RPF): a workload may send from its own nets and its
/// allowed spoofed prefixes, of either family, and from IPv6 link-local (fe80::/10) when it
/// has an IPv6 net (the route back is the interface's own fe80::/64).
fn source_permitted(ep: &calico_model::WorkloadEndpoint, pkt: &Packet) -> bool {
    let src = pkt.src;
    if let IpAddr::V6(a) = src {
        if !ep.ipv6_nets.is_empty() && (a.segments()[0] & 0xffc0) == 0xfe80 {
            return true;
        }
    }
    ep.ipv4_nets.iter().any(|n| IpNet::V4(*n).contains(&src))
        || ep.ipv6_nets.iter().any(|n| IpNet::V6(*n).contains(&src))
        || ep
            .allow_spoofed_source_prefixes
            .iter()
            .any(|n| n.contains(&src))
}

fn is_local_host(model: &Model, addr: IpAddr) -> bool {
    model
        .routes
        .values()
        .any(|r| r.types.contains(RouteTypes::LOCAL_HOST) && r.dst.contains(&addr))
}

enum RulesResult {
    Decided(usize, Action),
    NoMatch,
    Broken,
}

fn run_rules(model: &Model, rules: &[Rule], pkt: &Packet) -> RulesResult {
    if !rules.iter().all(|r| references_ok(model, r)) {
        return RulesResult::Broken;
    }
    for (i, r) in rules.iter().enumerate() {
        let action = r.action.unwrap_or(Action::Allow);
        if action == Action::Log {
            continue;
        }
        if rule_matches(model, r, pkt) {
            return RulesResult::Decided(i, action);
        }
    }
    RulesResult::NoMatch
}

fn policies_and_profiles(
    model: &Model,
    ep: &calico_model::WorkloadEndpoint,
    dir: CalicoDirection,
    pkt: &Packet,
) -> Outcome {
    'tiers: for tier in &ep.tiers {
        let list = match dir {
            CalicoDirection::Ingress => &tier.ingress_policies,
            CalicoDirection::Egress => &tier.egress_policies,
        };
        let mut has_enforced = false;
        for id in list {
            if id.is_staged() {
                continue;
            }
            has_enforced = true;
            let broken = || Decision::BrokenPolicy {
                tier: tier.name.clone(),
                policy: id.clone(),
            };
            let Some(policy) = model.policies.get(id) else {
                return outcome(Verdict::Deny, broken());
            };
            if policy.invalid.is_some() {
                return outcome(Verdict::Deny, broken());
            }
            let rules = match dir {
                CalicoDirection::Ingress => &policy.inbound_rules,
                CalicoDirection::Egress => &policy.outbound_rules,
            };
            // A policy is checked as a whole, both directions, like an invalid one.
            if !policy
                .inbound_rules
                .iter()
                .chain(&policy.outbound_rules)
                .all(|r| references_ok(model, r))
            {
                return outcome(Verdict::Deny, broken());
            }
            match run_rules(model, rules, pkt) {
                RulesResult::Decided(index, action) => {
                    let d = Decision::Rule {
                        tier: tier.name.clone(),
                        policy: id.clone(),
                        index,
                        action,
                    };
                    match action {
                        Action::Allow => return outcome(Verdict::Allow, d),
                        Action::Deny => return outcome(Verdict::Deny, d),
                        Action::Pass => continue 'tiers,
                        Action::Log => unreachable!("log rules never decide"),
                    }
                }
                RulesResult::NoMatch => {}
                RulesResult::Broken => return outcome(Verdict::Deny, broken()),
            }
        }
        if has_enforced && tier.default_action == TierDefaultAction::Deny {
            return outcome(
                Verdict::Deny,
                Decision::EndOfTier {
                    tier: tier.name.clone(),
                },
            );
        }
    }
    for id in &ep.profile_ids {
        let broken = Decision::BrokenProfile {
            profile: id.clone(),
        };
        let Some(p) = model.profiles.get(id) else {
            return outcome(Verdict::Deny, broken);
        };
        if p.invalid.is_some()
            || !p
                .inbound_rules
                .iter()
                .chain(&p.outbound_rules)
                .all(|r| references_ok(model, r))
        {
            return outcome(Verdict::Deny, broken);
        }
        let rules = match dir {
            CalicoDirection::Ingress => &p.inbound_rules,
            CalicoDirection::Egress => &p.outbound_rules,
        };
        match run_rules(model, rules, pkt) {
            RulesResult::Decided(index, action) => {
                let d = Decision::ProfileRule {
                    profile: id.clone(),
                    index,
                    action,
                };
                match action {
                    Action::Allow => return outcome(Verdict::Allow, d),
                    Action::Deny => return outcome(Verdict::Deny, d),
                    Action::Pass | Action::Log => {}
                }
            }
            RulesResult::NoMatch => {}
            RulesResult::Broken => return outcome(Verdict::Deny, broken),
        }
    }
    outcome(Verdict::Deny, Decision::NoProfileMatched)
}

/// Every IP set a rule names exists and has the kind its field needs. Log rules included:
/// a broken reference makes the whole policy suspect.
fn references_ok(model: &Model, r: &Rule) -> bool {
    let ok = |ids: &[IpSetId], port_set: bool| {
        ids.iter().all(|id| {
            model
                .ipsets
                .get(id)
                .is_some_and(|s| (s.kind == IpSetKind::IpAndPort) == port_set)
        })
    };
    ok(&r.src_ip_set_ids, false)
        && ok(&r.dst_ip_set_ids, false)
        && ok(&r.not_src_ip_set_ids, false)
        && ok(&r.not_dst_ip_set_ids, false)
        && ok(&r.src_named_port_ip_set_ids, true)
        && ok(&r.dst_named_port_ip_set_ids, true)
        && ok(&r.not_src_named_port_ip_set_ids, true)
        && ok(&r.not_dst_named_port_ip_set_ids, true)
        && ok(&r.dst_ip_port_set_ids, true)
}

fn set_has_addr(model: &Model, id: &IpSetId, addr: IpAddr) -> bool {
    model.ipsets.get(id).is_some_and(|s: &IpSet| {
        s.members
            .iter()
            .any(|m| matches!(m, IpSetMember::Net(n) if n.contains(&addr)))
    })
}

fn set_has_tuple(model: &Model, id: &IpSetId, addr: IpAddr, proto: u8, port: u16) -> bool {
    model.ipsets.get(id).is_some_and(|s| {
        s.members
            .contains(&IpSetMember::IpPort { addr, proto, port })
    })
}

fn icmp_matches(m: &IcmpMatch, pkt: &Packet) -> bool {
    pkt.icmp_type == m.icmp_type && m.code.is_none_or(|c| c == pkt.icmp_code)
}

/// Does `rule` match `pkt`? Every field set is a condition; all must hold.
pub fn rule_matches(model: &Model, rule: &Rule, pkt: &Packet) -> bool {
    let v4 = pkt.src.is_ipv4();
    let same_family = |n: &&IpNet| n.addr().is_ipv4() == v4;
    let family_icmp = if v4 { 1 } else { 58 };

    // Does the rule exist in this packet's family at all?
    if let Some(v) = rule.ip_version {
        if (v == IpVersion::V4) != v4 {
            return false;
        }
    }
    let src_net: Vec<&IpNet> = rule.src_net.iter().filter(same_family).collect();
    let dst_net: Vec<&IpNet> = rule.dst_net.iter().filter(same_family).collect();
    let not_src_net: Vec<&IpNet> = rule.not_src_net.iter().filter(same_family).collect();
    let not_dst_net: Vec<&IpNet> = rule.not_dst_net.iter().filter(same_family).collect();
    for (all, mine) in [
        (&rule.src_net, &src_net),
        (&rule.dst_net, &dst_net),
        (&rule.not_src_net, &not_src_net),
        (&rule.not_dst_net, &not_dst_net),
    ] {
        if !all.is_empty() && mine.is_empty() {
            return false;
        }
    }
    for negated in [&not_src_net, &not_dst_net] {
        if negated
            .iter()
            .any(|n| n.prefix_len() == 0 && n.addr().is_unspecified())
        {
            return false;
        }
    }

    if rule.protocol.is_some_and(|p| p != pkt.proto) {
        return false;
    }
    if rule.not_protocol.is_some_and(|p| p == pkt.proto) {
        return false;
    }

    if !src_net.is_empty() && !src_net.iter().any(|n| n.contains(&pkt.src)) {
        return false;
    }
    if not_src_net.iter().any(|n| n.contains(&pkt.src)) {
        return false;
    }
    if !dst_net.is_empty() && !dst_net.iter().any(|n| n.contains(&pkt.dst)) {
        return false;
    }
    if not_dst_net.iter().any(|n| n.contains(&pkt.dst)) {
        return false;
    }

    if !rule
        .src_ip_set_ids
        .iter()
        .all(|s| set_has_addr(model, s, pkt.src))
    {
        return false;
    }
    if rule
        .not_src_ip_set_ids
        .iter()
        .any(|s| set_has_addr(model, s, pkt.src))
    {
        return false;
    }
    if !rule
        .dst_ip_set_ids
        .iter()
        .all(|s| set_has_addr(model, s, pkt.dst))
    {
        return false;
    }
    if rule
        .not_dst_ip_set_ids
        .iter()
        .any(|s| set_has_addr(model, s, pkt.dst))
    {
        return false;
    }

    let uses_ports = !(rule.src_ports.is_empty()
        && rule.dst_ports.is_empty()
        && rule.src_named_port_ip_set_ids.is_empty()
        && rule.dst_named_port_ip_set_ids.is_empty()
        && rule.not_src_ports.is_empty()
        && rule.not_dst_ports.is_empty()
        && rule.not_src_named_port_ip_set_ids.is_empty()
        && rule.not_dst_named_port_ip_set_ids.is_empty()
        && rule.dst_ip_port_set_ids.is_empty());
    if uses_ports {
        // Port matches exist only for port-carrying protocols.
        if ![6, 17, 132].contains(&pkt.proto) {
            return false;
        }
        let p = pkt.proto;
        // Ranges OR named ports, per side; a side with neither has no port condition.
        let group = |ranges: &[PortRange], named: &[IpSetId], addr: IpAddr, port: u16| {
            (ranges.is_empty() && named.is_empty())
                || ranges.iter().any(|r| r.contains(port))
                || named.iter().any(|s| set_has_tuple(model, s, addr, p, port))
        };
        if !group(
            &rule.src_ports,
            &rule.src_named_port_ip_set_ids,
            pkt.src,
            pkt.sport,
        ) {
            return false;
        }
        if !group(
            &rule.dst_ports,
            &rule.dst_named_port_ip_set_ids,
            pkt.dst,
            pkt.dport,
        ) {
            return false;
        }
        if !rule
            .dst_ip_port_set_ids
            .iter()
            .all(|s| set_has_tuple(model, s, pkt.dst, p, pkt.dport))
        {
            return false;
        }
        if rule.not_src_ports.iter().any(|r| r.contains(pkt.sport))
            || rule
                .not_src_named_port_ip_set_ids
                .iter()
                .any(|s| set_has_tuple(model, s, pkt.src, p, pkt.sport))
        {
            return false;
        }
        if rule.not_dst_ports.iter().any(|r| r.contains(pkt.dport))
            || rule
                .not_dst_named_port_ip_set_ids
                .iter()
                .any(|s| set_has_tuple(model, s, pkt.dst, p, pkt.dport))
        {
            return false;
        }
    }

    if let Some(m) = &rule.icmp {
        if pkt.proto != family_icmp || !icmp_matches(m, pkt) {
            return false;
        }
    }
    if let Some(m) = &rule.not_icmp {
        if pkt.proto != family_icmp || icmp_matches(m, pkt) {
            return false;
        }
    }
    true
}
