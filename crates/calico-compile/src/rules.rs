//! One Calico rule → zero, one or two npol rules (one per IP family when the families need
//! different rules), plus the derived sets they use.
//!
//! Every match field of `calico_model::Rule` is handled here or explicitly rejected; the
//! exhaustive destructuring makes a new field a compile error. Never emits a rule that
//! matches more or less than Calico's rule would on the packets npol judges.

use std::collections::BTreeMap;

use calico_model::{Action, IcmpMatch, IpSet, IpSetId, IpSetKind, IpVersion, PortRange, Rule};
use ipnet::IpNet;
use npol::{Entry, EntryData, Filter, FilterType, RuleAction};

use crate::desired::{IpSetKey, RuleKey};
use crate::hash::StableHasher;
use crate::ipsets::{base_key, DerivedDef};

pub(crate) const ICMP4: u8 = 1;
pub(crate) const ICMP6: u8 = 58;
pub(crate) const PORT_PROTOCOLS: [u8; 3] = [6, 17, 132];

/// A rule refers to an IP set that the model does not have, or that has the wrong kind for
/// the field. The owning policy or profile fails closed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("rule refers to unknown IP set {0}")]
    UnknownIpSet(IpSetId),
    #[error("rule uses IP set {id} as {wanted} but it is of kind {found:?}")]
    WrongIpSetKind {
        id: IpSetId,
        wanted: &'static str,
        found: IpSetKind,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuleOut {
    pub rules: Vec<npol::Rule<IpSetKey>>,
    pub derived: Vec<(IpSetKey, DerivedDef)>,
    /// The rule carried an HTTP match, which this dataplane ignores (as Felix's does).
    pub http_ignored: bool,
}

pub(crate) fn rule_key(r: &npol::Rule<IpSetKey>) -> RuleKey {
    let mut h = StableHasher::default();
    h.u8(match r.action {
        RuleAction::Allow => 0,
        RuleAction::Deny => 1,
        RuleAction::Log => 2,
        RuleAction::Pass => 3,
    });
    for f in &r.filters {
        h.u8(match f.kind {
            FilterType::None => 0,
            FilterType::IcmpType => 1,
            FilterType::IcmpCode => 2,
            FilterType::L4Proto => 3,
        })
        .u32(f.value)
        .u8(u8::from(f.should_match));
    }
    h.u32(r.entries.len() as u32);
    for e in &r.entries {
        h.u8(u8::from(e.is_src)).u8(u8::from(e.is_not));
        match &e.data {
            EntryData::Cidr(n) => h.u8(0).net(n),
            EntryData::PortRange { start, end } => h.u8(1).u16(*start).u16(*end),
            EntryData::PortIpSet(s) => h.u8(2).str(&s.0),
            EntryData::IpSet(s) => h.u8(3).str(&s.0),
        };
    }
    RuleKey(format!("r:{}", h.finish_hex()))
}

/// A rule that matches everything with `action`.
pub(crate) fn match_all(action: RuleAction) -> npol::Rule<IpSetKey> {
    npol::Rule {
        action,
        filters: [Filter::NONE; 3],
        entries: Vec::new(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(n: &IpNet) -> Family {
        match n {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
    fn icmp(self) -> u8 {
        match self {
            Family::V4 => ICMP4,
            Family::V6 => ICMP6,
        }
    }
    /// Does Calico ICMP match `m` hold for the one ICMP packet of this family npol judges,
    /// the echo request with the code the guard passes?
    fn echo_request_matches(self, m: &IcmpMatch) -> bool {
        let (t, c) = crate::guard::echo_request(match self {
            Family::V4 => crate::guard::AclFamily::V4,
            Family::V6 => crate::guard::AclFamily::V6,
        });
        m.icmp_type == t && m.code.is_none_or(|code| code == c)
    }
    fn any(self) -> IpNet {
        match self {
            Family::V4 => "0.0.0.0/0".parse().unwrap_or_else(|_| unreachable!()),
            Family::V6 => "::/0".parse().unwrap_or_else(|_| unreachable!()),
        }
    }
}

fn is_catch_all(n: &IpNet) -> bool {
    n.prefix_len() == 0 && n.addr().is_unspecified()
}

/// Felix's `FilterRuleToIPVersion`: does the rule exist in this family at all?
fn exists_in(rule: &Rule, f: Family) -> bool {
    let version_ok = match rule.ip_version {
        None => true,
        Some(IpVersion::V4) => f == Family::V4,
        Some(IpVersion::V6) => f == Family::V6,
    };
    let positive_ok = |l: &[IpNet]| l.is_empty() || l.iter().any(|n| Family::of(n) == f);
    // A negated list with no entry of this family, or with this family's catch-all, removes
    // the rule from the family (Felix refuses to render `! 0.0.0.0/0`).
    let negated_ok = |l: &[IpNet]| {
        l.is_empty()
            || (l.iter().any(|n| Family::of(n) == f)
                && !l.iter().any(|n| Family::of(n) == f && is_catch_all(n)))
    };
    version_ok
        && positive_ok(&rule.src_net)
        && positive_ok(&rule.dst_net)
        && negated_ok(&rule.not_src_net)
        && negated_ok(&rule.not_dst_net)
}

fn check_sets(
    ids: &[IpSetId],
    sets: &BTreeMap<IpSetId, IpSet>,
    want_port_set: bool,
) -> Result<(), RuleError> {
    for id in ids {
        let set = sets
            .get(id)
            .ok_or_else(|| RuleError::UnknownIpSet(id.clone()))?;
        let is_port_set = set.kind == IpSetKind::IpAndPort;
        if is_port_set != want_port_set {
            return Err(RuleError::WrongIpSetKind {
                id: id.clone(),
                wanted: if want_port_set {
                    "a named-port (IP_AND_PORT) set"
                } else {
                    "an address (IP or NET) set"
                },
                found: set.kind,
            });
        }
    }
    Ok(())
}

fn sorted_unique(ids: &[IpSetId]) -> Vec<IpSetId> {
    let mut v = ids.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Compiles one Calico rule (of a policy or a profile).
pub(crate) fn compile_rule(
    rule: &Rule,
    sets: &BTreeMap<IpSetId, IpSet>,
) -> Result<RuleOut, RuleError> {
    let Rule {
        action,
        ip_version: _,
        protocol,
        not_protocol,
        src_net,
        src_ports,
        src_named_port_ip_set_ids,
        src_ip_set_ids,
        dst_net,
        dst_ports,
        dst_named_port_ip_set_ids,
        dst_ip_set_ids,
        dst_ip_port_set_ids,
        icmp,
        not_src_net,
        not_src_ports,
        not_src_named_port_ip_set_ids,
        not_src_ip_set_ids,
        not_dst_net,
        not_dst_ports,
        not_dst_named_port_ip_set_ids,
        not_dst_ip_set_ids,
        not_icmp,
        rule_id: _,
        has_http_match,
    } = rule;
    let mut out = RuleOut {
        http_ignored: *has_http_match,
        ..RuleOut::default()
    };

    // Checked for every rule, log rules included: a broken reference makes the whole
    // policy suspect.
    check_sets(src_ip_set_ids, sets, false)?;
    check_sets(dst_ip_set_ids, sets, false)?;
    check_sets(not_src_ip_set_ids, sets, false)?;
    check_sets(not_dst_ip_set_ids, sets, false)?;
    check_sets(src_named_port_ip_set_ids, sets, true)?;
    check_sets(dst_named_port_ip_set_ids, sets, true)?;
    check_sets(not_src_named_port_ip_set_ids, sets, true)?;
    check_sets(not_dst_named_port_ip_set_ids, sets, true)?;
    check_sets(dst_ip_port_set_ids, sets, true)?;

    let npol_action = match action.unwrap_or(Action::Allow) {
        Action::Allow => RuleAction::Allow,
        Action::Deny => RuleAction::Deny,
        // npol's LOG ends the current npol policy, i.e. leaves the tier (or the profile).
        Action::Pass => RuleAction::Log,
        // Carries no verdict; nothing to emit.
        Action::Log => return Ok(out),
    };

    let families: Vec<Family> = [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| exists_in(rule, *f))
        .collect();
    if families.is_empty() {
        return Ok(out);
    }

    let wants_icmp = icmp.is_some() || not_icmp.is_some();
    let has_ports = !(src_ports.is_empty()
        && dst_ports.is_empty()
        && src_named_port_ip_set_ids.is_empty()
        && dst_named_port_ip_set_ids.is_empty()
        && not_src_ports.is_empty()
        && not_dst_ports.is_empty()
        && not_src_named_port_ip_set_ids.is_empty()
        && not_dst_named_port_ip_set_ids.is_empty()
        && dst_ip_port_set_ids.is_empty());
    // An ICMP type/code match (`icmp` or `not_icmp`) makes the rule match, in each family,
    // only that family's ICMP (1 for IPv4, 58 for IPv6), as Felix renders it per family.
    // npol's flow tuple has no ICMP type or code (its ICMP filters compare the echo
    // identifier), but every ICMP flow npol judges is an echo request with code 0: replies
    // ride their request's session, and the guard passes no other query type and no other
    // code (see `guard.rs`). So the match is decided here, per family, against that packet.
    // The families where the rule can match: it exists there, its `protocol` (if any) is
    // that family's ICMP, its `not_protocol` does not exclude it, it has no port match
    // (ports need a port-carrying protocol), and its ICMP match holds for the echo request.
    let icmp_families: Vec<Family> = if wants_icmp && !has_ports {
        families
            .iter()
            .copied()
            .filter(|f| protocol.is_none_or(|p| p == f.icmp()))
            .filter(|f| not_protocol.is_none_or(|p| p != f.icmp()))
            .filter(|f| {
                icmp.as_ref().is_none_or(|m| f.echo_request_matches(m))
                    && not_icmp.as_ref().is_none_or(|m| !f.echo_request_matches(m))
            })
            .collect()
    } else {
        Vec::new()
    };
    if wants_icmp && icmp_families.is_empty() {
        // Matches no packet npol judges in any family: nothing to emit.
        return Ok(out);
    }
    if has_ports && protocol.is_some_and(|p| !PORT_PROTOCOLS.contains(&p)) {
        return Ok(out);
    }

    // Entries shared by every family's rule, built once.
    let mut side_entries: Vec<Entry<IpSetKey>> = Vec::new();
    let mut push = |is_src: bool, is_not: bool, data: EntryData<IpSetKey>| {
        side_entries.push(Entry {
            is_src,
            is_not,
            data,
        })
    };
    // Address sets: Calico ANDs them, npol ORs them, so two or more need a derived set.
    for (is_src, ids) in [(true, src_ip_set_ids), (false, dst_ip_set_ids)] {
        let ids = sorted_unique(ids);
        match ids.len() {
            0 => {}
            1 => push(is_src, false, EntryData::IpSet(base_key(&ids[0]))),
            _ => {
                let def = DerivedDef::And(ids);
                let key = def.key();
                push(is_src, false, EntryData::IpSet(key.clone()));
                out.derived.push((key, def));
            }
        }
    }
    // Negated sets: none may match, which is what npol does with several negated entries.
    for (is_src, ids) in [(true, not_src_ip_set_ids), (false, not_dst_ip_set_ids)] {
        for id in sorted_unique(ids) {
            push(is_src, true, EntryData::IpSet(base_key(&id)));
        }
    }
    // Port groups: ranges OR named-port sets (npol's OR group for one side).
    let ranges = |v: &[PortRange]| {
        v.iter()
            .map(|r| EntryData::PortRange {
                start: r.first,
                end: r.last,
            })
            .collect::<Vec<_>>()
    };
    for d in ranges(src_ports) {
        push(true, false, d);
    }
    for id in sorted_unique(src_named_port_ip_set_ids) {
        push(true, false, EntryData::PortIpSet(base_key(&id)));
    }
    let svc = sorted_unique(dst_ip_port_set_ids);
    if svc.is_empty() {
        for d in ranges(dst_ports) {
            push(false, false, d);
        }
        for id in sorted_unique(dst_named_port_ip_set_ids) {
            push(false, false, EntryData::PortIpSet(base_key(&id)));
        }
    } else if svc.len() == 1 && dst_ports.is_empty() && dst_named_port_ip_set_ids.is_empty() {
        push(false, false, EntryData::PortIpSet(base_key(&svc[0])));
    } else {
        // Every service set must hold the tuple AND the port group must match: one derived
        // IP_AND_PORT set holds exactly the tuples that satisfy both.
        let def = DerivedDef::IpPort {
            all_of: svc,
            ports: dst_ports.clone(),
            any_of: sorted_unique(dst_named_port_ip_set_ids),
        };
        let key = def.key();
        push(false, false, EntryData::PortIpSet(key.clone()));
        out.derived.push((key, def));
    }
    for d in ranges(not_src_ports) {
        push(true, true, d);
    }
    for id in sorted_unique(not_src_named_port_ip_set_ids) {
        push(true, true, EntryData::PortIpSet(base_key(&id)));
    }
    for d in ranges(not_dst_ports) {
        push(false, true, d);
    }
    for id in sorted_unique(not_dst_named_port_ip_set_ids) {
        push(false, true, EntryData::PortIpSet(base_key(&id)));
    }

    let mut base_filters: Vec<Filter> = Vec::new();
    if let Some(p) = protocol {
        base_filters.push(Filter {
            kind: FilterType::L4Proto,
            value: u32::from(*p),
            should_match: true,
        });
    }
    if let Some(p) = not_protocol {
        base_filters.push(Filter {
            kind: FilterType::L4Proto,
            value: u32::from(*p),
            should_match: false,
        });
    }

    // The families share one npol rule unless a family-specific protocol filter is needed
    // (an ICMP rule without a protocol: each family matches its own ICMP, where its ICMP
    // match holds) or only one family has the rule. An ICMP rule with a protocol keeps one
    // rule for the families the rule exists in: its protocol filter is one family's ICMP,
    // which npol only ever sees in that family (the other family's entries are inert).
    let groups: Vec<Vec<Family>> = if wants_icmp && protocol.is_none() {
        icmp_families.iter().map(|f| vec![*f]).collect()
    } else if families.len() == 2 {
        vec![families.clone()]
    } else {
        families.iter().map(|f| vec![*f]).collect()
    };

    for fams in groups {
        let mut filters = base_filters.clone();
        if wants_icmp && protocol.is_none() {
            // Only this family's ICMP can match the rule.
            filters.push(Filter {
                kind: FilterType::L4Proto,
                value: u32::from(fams[0].icmp()),
                should_match: true,
            });
        }
        if has_ports && protocol.is_none() {
            // npol sees TCP, UDP, SCTP and ICMP echo (whose identifier it puts in the
            // ports): excluding ICMP leaves the port-carrying protocols.
            for f in &fams {
                filters.push(Filter {
                    kind: FilterType::L4Proto,
                    value: u32::from(f.icmp()),
                    should_match: false,
                });
            }
        }
        if filters.len() > 3 {
            // Cannot happen (protocol, not_protocol and at most two exclusions, with the
            // exclusions only when protocol is unset), but never drop a condition silently.
            tracing::error!(rule = ?rule, "npol rule needs more than three filters; rule left out");
            continue;
        }
        let mut filter_arr = [Filter::NONE; 3];
        filter_arr[..filters.len()].copy_from_slice(&filters);

        let keep = |n: &IpNet| fams.contains(&Family::of(n));
        let mut entries: Vec<Entry<IpSetKey>> = Vec::new();
        let mut cidrs = |is_src: bool, is_not: bool, l: &[IpNet]| {
            let mut l: Vec<IpNet> = l.iter().filter(|n| keep(n)).map(|n| n.trunc()).collect();
            l.sort();
            l.dedup();
            for n in l {
                entries.push(Entry {
                    is_src,
                    is_not,
                    data: EntryData::Cidr(n),
                });
            }
        };
        cidrs(true, false, src_net);
        cidrs(false, false, dst_net);
        cidrs(true, true, not_src_net);
        cidrs(false, true, not_dst_net);
        // A rule for one family only must not match the other: when no positive CIDR list
        // already pins the family (and no ICMP filter does), add the family's catch-all.
        let pinned = !src_net.is_empty() || !dst_net.is_empty() || wants_icmp;
        if fams.len() == 1 && !pinned {
            entries.push(Entry {
                is_src: true,
                is_not: false,
                data: EntryData::Cidr(fams[0].any()),
            });
        }
        entries.extend(side_entries.iter().cloned());
        out.rules.push(npol::Rule {
            action: npol_action,
            filters: filter_arr,
            entries,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> BTreeMap<IpSetId, IpSet> {
        BTreeMap::new()
    }

    fn one(rule: &Rule) -> npol::Rule<IpSetKey> {
        let out = compile_rule(rule, &sets()).unwrap();
        assert_eq!(out.rules.len(), 1, "{out:?}");
        out.rules[0].clone()
    }

    #[test]
    fn rule_keys_are_pinned() {
        // A change here renames every rule the reconciler persisted: only on purpose.
        assert_eq!(
            rule_key(&match_all(RuleAction::Deny)).0,
            "r:dd760f6e694ab611fc8c5efb"
        );
    }

    #[test]
    fn pass_becomes_npol_log_and_log_rules_vanish() {
        assert_eq!(one(&Rule::match_all(Action::Pass)).action, RuleAction::Log);
        let out = compile_rule(&Rule::match_all(Action::Log), &sets()).unwrap();
        assert!(out.rules.is_empty());
    }

    #[test]
    fn ports_without_protocol_exclude_icmp_of_both_families() {
        let mut r = Rule::match_all(Action::Allow);
        r.dst_ports = vec![PortRange {
            first: 80,
            last: 80,
        }];
        let n = one(&r);
        let excluded: Vec<u32> = n
            .filters
            .iter()
            .filter(|f| f.kind == FilterType::L4Proto && !f.should_match)
            .map(|f| f.value)
            .collect();
        assert_eq!(excluded, vec![1, 58]);
    }

    #[test]
    fn a_one_family_rule_is_pinned_to_its_family() {
        let mut r = Rule::match_all(Action::Allow);
        r.ip_version = Some(IpVersion::V6);
        let n = one(&r);
        assert_eq!(
            n.entries,
            vec![Entry {
                is_src: true,
                is_not: false,
                data: EntryData::Cidr("::/0".parse().unwrap()),
            }]
        );
    }

    fn icmp_rule(
        action: Action,
        protocol: Option<u8>,
        not_protocol: Option<u8>,
        icmp: Option<(u8, Option<u8>)>,
        not_icmp: Option<(u8, Option<u8>)>,
    ) -> Rule {
        let m = |(icmp_type, code)| calico_model::IcmpMatch { icmp_type, code };
        let mut r = Rule::match_all(action);
        r.protocol = protocol;
        r.not_protocol = not_protocol;
        r.icmp = icmp.map(m);
        r.not_icmp = not_icmp.map(m);
        r
    }

    fn keys(r: &Rule) -> Vec<String> {
        let out = compile_rule(r, &sets()).unwrap();
        out.rules.iter().map(|r| rule_key(r).0).collect()
    }

    fn l4(value: u8, should_match: bool) -> Filter {
        Filter {
            kind: FilterType::L4Proto,
            value: u32::from(value),
            should_match,
        }
    }

    /// The ICMP protocols the compiled rules of `r` match (each rule's positive L4 filter).
    fn icmp_protocols(r: &Rule) -> Vec<u8> {
        let out = compile_rule(r, &sets()).unwrap();
        out.rules
            .iter()
            .map(|n| {
                assert!(n
                    .filters
                    .iter()
                    .all(|f| f.kind != FilterType::IcmpType && f.kind != FilterType::IcmpCode));
                let p = n
                    .filters
                    .iter()
                    .find(|f| f.kind == FilterType::L4Proto && f.should_match)
                    .expect("an ICMP protocol filter");
                p.value as u8
            })
            .collect()
    }

    #[test]
    fn icmp_rule_keys_are_pinned() {
        // ICMP rules that compiled to these npol rules before keep their keys (values
        // computed with the compiler of the previous release).
        assert_eq!(
            keys(&icmp_rule(
                Action::Deny,
                Some(1),
                None,
                Some((8, Some(0))),
                None
            )),
            ["r:6f87555eeb728548616b1715"]
        );
        assert_eq!(
            keys(&icmp_rule(
                Action::Deny,
                None,
                None,
                Some((8, Some(0))),
                None
            )),
            ["r:6f87555eeb728548616b1715"]
        );
        assert_eq!(
            keys(&icmp_rule(Action::Deny, None, None, None, Some((3, None)))),
            ["r:6f87555eeb728548616b1715", "r:b390f18c077ab7bd2d8f2907"]
        );
    }

    /// Every ICMP flow npol judges is an echo request of code 0: a match is decided
    /// against that packet, per family, and the rule keeps its action.
    #[test]
    fn icmp_matches_are_decided_against_the_echo_request_per_family() {
        type M = Option<(u8, Option<u8>)>;
        let cases: &[(Option<u8>, M, M, &[u8])] = &[
            // (protocol, icmp, not_icmp) -> the ICMP protocols matched
            (None, Some((8, None)), None, &[1]),
            (None, Some((8, Some(0))), None, &[1]),
            (None, Some((8, Some(3))), None, &[]),
            (None, Some((128, None)), None, &[58]),
            (None, Some((0, None)), None, &[]),
            (None, Some((129, None)), None, &[]),
            (None, None, Some((0, None)), &[1, 58]),
            (None, None, Some((8, None)), &[58]),
            (None, None, Some((8, Some(1))), &[1, 58]),
            (None, None, Some((128, Some(0))), &[1]),
            (None, Some((8, None)), Some((8, Some(0))), &[]),
            (None, Some((8, None)), Some((8, Some(5))), &[1]),
            (Some(1), Some((8, None)), None, &[1]),
            (Some(1), Some((128, None)), None, &[]),
            (Some(58), Some((128, None)), None, &[58]),
            (Some(58), None, Some((0, None)), &[58]),
            (Some(58), Some((8, None)), None, &[]),
        ];
        for (protocol, icmp, not_icmp, want) in cases {
            for action in [Action::Allow, Action::Deny, Action::Pass] {
                let r = icmp_rule(action, *protocol, None, *icmp, *not_icmp);
                let got = icmp_protocols(&r);
                assert_eq!(&got, want, "{r:?}");
                let out = compile_rule(&r, &sets()).unwrap();
                let npol_action = match action {
                    Action::Allow => RuleAction::Allow,
                    Action::Deny => RuleAction::Deny,
                    _ => RuleAction::Log,
                };
                assert!(out.rules.iter().all(|n| n.action == npol_action), "{out:?}");
            }
        }
    }

    /// Issue 11: a rule with `protocol: 58` and an ICMP match used to vanish (only the IPv4
    /// family's ICMP was checked), whatever its action.
    #[test]
    fn icmpv6_rule_with_protocol_58_is_compiled_not_dropped() {
        for (action, npol_action) in [
            (Action::Deny, RuleAction::Deny),
            (Action::Pass, RuleAction::Log),
            (Action::Allow, RuleAction::Allow),
        ] {
            for (icmp, not_icmp) in [(Some((128, None)), None), (None, Some((0, None)))] {
                let out = compile_rule(&icmp_rule(action, Some(58), None, icmp, not_icmp), &sets())
                    .unwrap();
                assert_eq!(out.rules.len(), 1, "{out:?}");
                assert_eq!(out.rules[0].action, npol_action);
                assert_eq!(
                    out.rules[0].filters,
                    [l4(58, true), Filter::NONE, Filter::NONE]
                );
                assert!(out.rules[0].entries.is_empty());
            }
        }
    }

    #[test]
    fn not_protocol_removes_an_icmp_rule_per_family() {
        // Without a protocol, each family matches its own ICMP unless `not_protocol`
        // excludes it.
        for (not_protocol, families) in [
            (Some(58), vec![1]),
            (Some(1), vec![58]),
            (None, vec![1, 58]),
            (Some(6), vec![1, 58]),
        ] {
            let r = icmp_rule(Action::Deny, None, not_protocol, None, Some((0, None)));
            assert_eq!(icmp_protocols(&r), families, "{r:?}");
        }
    }

    #[test]
    fn icmp_rules_that_match_nothing_emit_nothing() {
        let echo = Some((8, None));
        let mut with_ports = icmp_rule(Action::Deny, None, None, echo, None);
        with_ports.dst_ports = vec![PortRange {
            first: 80,
            last: 80,
        }];
        let mut v4_only_icmpv6 = icmp_rule(Action::Deny, Some(58), None, Some((128, None)), None);
        v4_only_icmpv6.ip_version = Some(IpVersion::V4);
        let mut v6_only_proto_1 = icmp_rule(Action::Deny, Some(1), None, echo, None);
        // The rule exists only in IPv6 (its CIDRs), where protocol 1 is not ICMP.
        v6_only_proto_1.src_net = vec!["fd00::/64".parse().unwrap()];
        for r in [
            icmp_rule(Action::Deny, Some(6), None, echo, None),
            icmp_rule(Action::Pass, Some(58), Some(58), None, Some((0, None))),
            icmp_rule(Action::Allow, Some(1), Some(1), echo, None),
            v6_only_proto_1,
            v4_only_icmpv6,
            with_ports,
        ] {
            let out = compile_rule(&r, &sets()).unwrap();
            assert!(out.rules.is_empty(), "{r:?} -> {out:?}");
        }
    }

    #[test]
    fn negated_catch_all_removes_the_rule_from_that_family() {
        let mut r = Rule::match_all(Action::Deny);
        r.not_src_net = vec!["0.0.0.0/0".parse().unwrap(), "fd00::/64".parse().unwrap()];
        let n = one(&r);
        // Only the v6 rule is left (its guard and negated entry are both v6).
        assert!(n
            .entries
            .iter()
            .all(|e| matches!(e.data, EntryData::Cidr(IpNet::V6(_)))));
    }

    #[test]
    fn unknown_set_is_an_error() {
        let mut r = Rule::match_all(Action::Allow);
        r.src_ip_set_ids = vec![IpSetId("x".into())];
        assert_eq!(
            compile_rule(&r, &sets()),
            Err(RuleError::UnknownIpSet(IpSetId("x".into())))
        );
    }
}
