//! Table tests pinning npol's matching, one behaviour per test.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::{Entry, Filter, IpSetMember, IpSetType};

#[derive(Default)]
struct World {
    sets: HashMap<u32, IpSet>,
    rules: HashMap<u32, Rule<u32>>,
    policies: HashMap<u32, Policy<u32>>,
    deleted_rules: HashMap<u32, RuleAction>,
}

impl Lookup for World {
    type SetRef = u32;
    type RuleRef = u32;
    type PolicyRef = u32;
    fn ipset(&self, r: &u32) -> Option<&IpSet> {
        self.sets.get(r)
    }
    fn rule(&self, r: &u32) -> Option<&Rule<u32>> {
        self.rules.get(r)
    }
    fn policy(&self, r: &u32) -> Option<&Policy<u32>> {
        self.policies.get(r)
    }
    fn deleted_rule_action(&self, r: &u32) -> Option<RuleAction> {
        self.deleted_rules.get(r).copied()
    }
}

impl World {
    fn add_set(&mut self, id: u32, kind: IpSetType, members: &[IpSetMember]) {
        let members: BTreeSet<_> = members.iter().copied().collect();
        self.sets.insert(id, IpSet { kind, members });
    }
    fn add_rule(&mut self, id: u32, action: RuleAction, entries: Vec<Entry<u32>>) {
        self.add_rule_f(id, action, [Filter::NONE; 3], entries);
    }
    fn add_rule_f(
        &mut self,
        id: u32,
        action: RuleAction,
        filters: [Filter; 3],
        entries: Vec<Entry<u32>>,
    ) {
        self.rules.insert(
            id,
            Rule {
                action,
                filters,
                entries,
            },
        );
    }
    /// A policy with the same rules in both directions.
    fn add_policy(&mut self, id: u32, rules: &[u32]) {
        self.policies.insert(
            id,
            Policy {
                inbound: rules.to_vec(),
                outbound: rules.to_vec(),
            },
        );
    }
    /// Evaluates one rule alone: Allow if it matches.
    fn rule_hits(&self, rule: u32, pkt: &Packet) -> bool {
        let t = pkt.npol_tuple().expect("policed packet");
        rule_matches(self, &self.rules[&rule], &t)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn src(data: EntryData<u32>) -> Entry<u32> {
    Entry {
        is_src: true,
        is_not: false,
        data,
    }
}
fn dst(data: EntryData<u32>) -> Entry<u32> {
    Entry {
        is_src: false,
        is_not: false,
        data,
    }
}
fn not_src(data: EntryData<u32>) -> Entry<u32> {
    Entry {
        is_src: true,
        is_not: true,
        data,
    }
}
fn not_dst(data: EntryData<u32>) -> Entry<u32> {
    Entry {
        is_src: false,
        is_not: true,
        data,
    }
}
fn cidr(s: &str) -> EntryData<u32> {
    EntryData::Cidr(net(s))
}
fn ports(start: u16, end: u16) -> EntryData<u32> {
    EntryData::PortRange { start, end }
}
fn tcp(s: &str, sp: u16, d: &str, dp: u16) -> Packet {
    Packet::tcp(ip(s), sp, ip(d), dp)
}
fn ipport(a: &str, proto: u8, port: u16) -> IpSetMember {
    IpSetMember::IpAndPort {
        addr: ip(a),
        proto,
        port,
    }
}
fn filter(kind: FilterType, value: u32, should_match: bool) -> [Filter; 3] {
    [
        Filter {
            kind,
            value,
            should_match,
        },
        Filter::NONE,
        Filter::NONE,
    ]
}

fn cfg(rx: &[u32], tx: &[u32], profiles: &[u32]) -> InterfaceConfig<u32> {
    InterfaceConfig {
        rx_policies: rx.to_vec(),
        tx_policies: tx.to_vec(),
        profiles: profiles.to_vec(),
        invert_rx_tx: false,
        policy_default_rx: PolicyDefault::Deny,
        policy_default_tx: PolicyDefault::Deny,
        profile_default_rx: PolicyDefault::Deny,
        profile_default_tx: PolicyDefault::Deny,
    }
}

fn any_pkt() -> Packet {
    tcp("10.0.0.1", 1000, "10.0.0.2", 80)
}

// ---- rule entries -------------------------------------------------------------------------

#[test]
fn rule_without_entries_matches_everything_policed() {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![]);
    assert!(w.rule_hits(0, &any_pkt()));
    assert!(w.rule_hits(0, &Packet::udp(ip("fd00::1"), 1, ip("fd00::2"), 2)));
}

#[test]
fn positive_cidrs_of_one_side_are_ored() {
    let mut w = World::default();
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![src(cidr("10.1.0.0/16")), src(cidr("10.0.0.0/24"))],
    );
    assert!(w.rule_hits(0, &tcp("10.0.0.1", 1, "1.1.1.1", 2)));
    assert!(w.rule_hits(0, &tcp("10.1.9.9", 1, "1.1.1.1", 2)));
    assert!(!w.rule_hits(0, &tcp("10.2.0.1", 1, "1.1.1.1", 2)));
}

#[test]
fn src_and_dst_cidrs_are_anded() {
    let mut w = World::default();
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![src(cidr("10.0.0.0/24")), dst(cidr("10.0.1.0/24"))],
    );
    assert!(w.rule_hits(0, &tcp("10.0.0.1", 1, "10.0.1.1", 2)));
    assert!(!w.rule_hits(0, &tcp("10.0.0.1", 1, "10.0.2.1", 2)));
    assert!(!w.rule_hits(0, &tcp("10.0.3.1", 1, "10.0.1.1", 2)));
}

#[test]
fn negated_cidrs_must_all_fail() {
    let mut w = World::default();
    w.add_rule(
        0,
        RuleAction::Deny,
        vec![not_dst(cidr("10.0.0.0/24")), not_dst(cidr("10.0.5.0/24"))],
    );
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.9.1", 2)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 2)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.5.1", 2)));
}

#[test]
fn positive_cidr_list_without_entries_of_the_packet_family_matches_nothing() {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![src(cidr("fd00::/8"))]);
    assert!(!w.rule_hits(0, &any_pkt()));
    assert!(w.rule_hits(0, &Packet::tcp(ip("fd00::1"), 1, ip("fd00::2"), 2)));
}

#[test]
fn negated_cidrs_of_the_other_family_are_ignored() {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![not_src(cidr("::/0"))]);
    assert!(w.rule_hits(0, &any_pkt()));
    assert!(!w.rule_hits(0, &Packet::tcp(ip("fd00::1"), 1, ip("fd00::2"), 2)));
}

#[test]
fn zero_length_prefix_matches_every_address_of_its_family() {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![dst(cidr("0.0.0.0/0"))]);
    assert!(w.rule_hits(0, &any_pkt()));
}

#[test]
fn ip_and_net_sets_of_one_side_are_ored() {
    let mut w = World::default();
    w.add_set(
        1,
        IpSetType::Ip,
        &[
            IpSetMember::Ip(ip("10.0.0.1")),
            IpSetMember::Ip(ip("fd00::1")),
        ],
    );
    w.add_set(
        2,
        IpSetType::Net,
        &[IpSetMember::Net(net("192.168.0.0/16"))],
    );
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![src(EntryData::IpSet(1)), src(EntryData::IpSet(2))],
    );
    assert!(w.rule_hits(0, &tcp("10.0.0.1", 1, "1.1.1.1", 2)));
    assert!(w.rule_hits(0, &tcp("192.168.3.3", 1, "1.1.1.1", 2)));
    assert!(!w.rule_hits(0, &tcp("10.0.0.2", 1, "1.1.1.1", 2)));
    assert!(w.rule_hits(0, &Packet::tcp(ip("fd00::1"), 1, ip("fd00::9"), 2)));
}

#[test]
fn cidr_and_ipset_on_one_side_are_anded() {
    let mut w = World::default();
    w.add_set(
        1,
        IpSetType::Ip,
        &[
            IpSetMember::Ip(ip("10.0.0.1")),
            IpSetMember::Ip(ip("10.9.0.1")),
        ],
    );
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![src(cidr("10.0.0.0/8")), src(EntryData::IpSet(1))],
    );
    w.add_rule(
        1,
        RuleAction::Allow,
        vec![src(cidr("10.0.0.0/16")), src(EntryData::IpSet(1))],
    );
    assert!(w.rule_hits(0, &tcp("10.9.0.1", 1, "1.1.1.1", 2)));
    assert!(!w.rule_hits(1, &tcp("10.9.0.1", 1, "1.1.1.1", 2)));
    assert!(!w.rule_hits(1, &tcp("10.0.0.2", 1, "1.1.1.1", 2)));
}

#[test]
fn negated_ipsets_must_all_fail() {
    let mut w = World::default();
    w.add_set(1, IpSetType::Ip, &[IpSetMember::Ip(ip("10.0.0.1"))]);
    w.add_set(2, IpSetType::Net, &[IpSetMember::Net(net("10.1.0.0/16"))]);
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![not_dst(EntryData::IpSet(1)), not_dst(EntryData::IpSet(2))],
    );
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.2", 2)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 2)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.1.2.3", 2)));
}

#[test]
fn ip_and_port_set_used_as_ip_set_contains_nothing() {
    let mut w = World::default();
    w.add_set(1, IpSetType::IpAndPort, &[ipport("10.0.0.1", 6, 80)]);
    w.add_rule(0, RuleAction::Allow, vec![src(EntryData::IpSet(1))]);
    w.add_rule(1, RuleAction::Allow, vec![not_src(EntryData::IpSet(1))]);
    assert!(!w.rule_hits(0, &tcp("10.0.0.1", 80, "1.1.1.1", 2)));
    assert!(w.rule_hits(1, &tcp("10.0.0.1", 80, "1.1.1.1", 2)));
}

#[test]
fn port_ranges_are_inclusive_and_ored() {
    let mut w = World::default();
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![dst(ports(80, 80)), dst(ports(8000, 8080))],
    );
    for (p, hit) in [
        (80, true),
        (81, false),
        (7999, false),
        (8000, true),
        (8080, true),
        (8081, false),
    ] {
        assert_eq!(
            w.rule_hits(0, &tcp("1.1.1.1", 1, "2.2.2.2", p)),
            hit,
            "port {p}"
        );
    }
}

#[test]
fn src_port_range_checks_the_source_port() {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![src(ports(1000, 2000))]);
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1500, "2.2.2.2", 80)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 80, "2.2.2.2", 1500)));
}

#[test]
fn negated_port_ranges_must_all_fail() {
    let mut w = World::default();
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![not_dst(ports(22, 22)), not_dst(ports(100, 200))],
    );
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1, "2.2.2.2", 80)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "2.2.2.2", 22)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "2.2.2.2", 150)));
}

#[test]
fn port_ip_set_matches_address_protocol_and_port() {
    let mut w = World::default();
    w.add_set(
        1,
        IpSetType::IpAndPort,
        &[ipport("10.0.0.1", 6, 80), ipport("10.0.0.2", 17, 53)],
    );
    w.add_rule(0, RuleAction::Allow, vec![dst(EntryData::PortIpSet(1))]);
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 80)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 81)));
    assert!(
        !w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.2", 53)),
        "wrong protocol"
    );
    assert!(w.rule_hits(0, &Packet::udp(ip("1.1.1.1"), 1, ip("10.0.0.2"), 53)));
}

#[test]
fn port_range_and_port_ip_set_on_one_side_form_one_or_group() {
    let mut w = World::default();
    w.add_set(1, IpSetType::IpAndPort, &[ipport("10.0.0.1", 6, 443)]);
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![dst(ports(80, 80)), dst(EntryData::PortIpSet(1))],
    );
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.9", 80)));
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 443)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.9", 443)));
}

#[test]
fn src_and_dst_port_groups_are_anded() {
    let mut w = World::default();
    w.add_rule(
        0,
        RuleAction::Allow,
        vec![src(ports(1000, 1000)), dst(ports(80, 80))],
    );
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1000, "2.2.2.2", 80)));
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1001, "2.2.2.2", 80)));
}

#[test]
fn negated_port_ip_set_excludes_its_members() {
    let mut w = World::default();
    w.add_set(1, IpSetType::IpAndPort, &[ipport("10.0.0.1", 6, 80)]);
    w.add_rule(0, RuleAction::Allow, vec![not_dst(EntryData::PortIpSet(1))]);
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 80)));
    assert!(w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 81)));
}

#[test]
fn ip_set_used_as_port_ip_set_contains_nothing() {
    let mut w = World::default();
    w.add_set(1, IpSetType::Ip, &[IpSetMember::Ip(ip("10.0.0.1"))]);
    w.add_rule(0, RuleAction::Allow, vec![dst(EntryData::PortIpSet(1))]);
    assert!(!w.rule_hits(0, &tcp("1.1.1.1", 1, "10.0.0.1", 80)));
}

#[test]
fn icmp_echo_identifier_is_checked_against_port_ranges() {
    // QUIRK: cnat puts the echo identifier in both ports.
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![dst(ports(100, 200))]);
    assert!(w.rule_hits(0, &Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 8, 0, 150)));
    assert!(!w.rule_hits(0, &Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 8, 0, 300)));
}

// ---- filters ------------------------------------------------------------------------------

#[test]
fn l4_proto_filter_positive_and_negated() {
    let mut w = World::default();
    w.add_rule_f(
        0,
        RuleAction::Allow,
        filter(FilterType::L4Proto, 6, true),
        vec![],
    );
    w.add_rule_f(
        1,
        RuleAction::Allow,
        filter(FilterType::L4Proto, 6, false),
        vec![],
    );
    let udp = Packet::udp(ip("1.1.1.1"), 1, ip("2.2.2.2"), 2);
    assert!(w.rule_hits(0, &any_pkt()));
    assert!(!w.rule_hits(0, &udp));
    assert!(!w.rule_hits(1, &any_pkt()));
    assert!(w.rule_hits(1, &udp));
}

#[test]
fn all_three_filters_are_anded() {
    let mut w = World::default();
    let f = [
        Filter {
            kind: FilterType::L4Proto,
            value: 17,
            should_match: false,
        },
        Filter {
            kind: FilterType::L4Proto,
            value: 132,
            should_match: false,
        },
        Filter::NONE,
    ];
    w.add_rule_f(0, RuleAction::Allow, f, vec![]);
    assert!(w.rule_hits(0, &any_pkt()));
    assert!(!w.rule_hits(0, &Packet::udp(ip("1.1.1.1"), 1, ip("2.2.2.2"), 2)));
    assert!(!w.rule_hits(0, &Packet::l4(132, ip("1.1.1.1"), 1, ip("2.2.2.2"), 2)));
}

#[test]
fn icmp_type_filter_compares_the_echo_identifier_not_the_type() {
    // QUIRK (confirmed on a real VPP): the "type" is read from the tuple's source port.
    let mut w = World::default();
    w.add_rule_f(
        0,
        RuleAction::Allow,
        filter(FilterType::IcmpType, 8, true),
        vec![],
    );
    let echo_type8_ident1 = Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 8, 0, 1);
    let echo_type0_ident8 = Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 0, 0, 8);
    assert!(!w.rule_hits(0, &echo_type8_ident1));
    assert!(w.rule_hits(0, &echo_type0_ident8));
}

#[test]
fn icmp_code_filter_compares_the_echo_identifier_not_the_code() {
    let mut w = World::default();
    w.add_rule_f(
        0,
        RuleAction::Allow,
        filter(FilterType::IcmpCode, 0, true),
        vec![],
    );
    w.add_rule_f(
        1,
        RuleAction::Allow,
        filter(FilterType::IcmpCode, 77, true),
        vec![],
    );
    let echo = Packet::icmp(ip("fd00::1"), ip("fd00::2"), 128, 0, 77);
    assert!(!w.rule_hits(0, &echo));
    assert!(w.rule_hits(1, &echo));
}

#[test]
fn negated_icmp_filter_compares_the_identifier_too() {
    let mut w = World::default();
    w.add_rule_f(
        0,
        RuleAction::Allow,
        filter(FilterType::IcmpType, 5, false),
        vec![],
    );
    assert!(w.rule_hits(0, &Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 5 + 3, 0, 1)));
    assert!(!w.rule_hits(0, &Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 8, 0, 5)));
}

#[test]
fn icmp_filters_never_match_non_icmp_packets_even_negated() {
    let mut w = World::default();
    w.add_rule_f(
        0,
        RuleAction::Allow,
        filter(FilterType::IcmpType, 8, true),
        vec![],
    );
    w.add_rule_f(
        1,
        RuleAction::Allow,
        filter(FilterType::IcmpCode, 8, false),
        vec![],
    );
    assert!(!w.rule_hits(0, &any_pkt()));
    assert!(!w.rule_hits(1, &any_pkt()));
}

// ---- what npol sees -----------------------------------------------------------------------

#[test]
fn non_port_protocols_are_not_policed_and_pass() {
    // QUIRK: cnat builds no tuple for them; npol's hook never runs.
    let w = World::default();
    let c = cfg(&[], &[], &[]);
    for proto in [4u8, 47, 50] {
        let pkt = Packet::l4(proto, ip("10.0.0.1"), 0, ip("10.0.0.2"), 0);
        let e = evaluate(&w, &c, Direction::Rx, &pkt);
        assert_eq!(e.verdict, Verdict::Allow, "proto {proto}");
        assert_eq!(e.trace, vec![Step::NotPoliced]);
    }
}

#[test]
fn icmp_types_other_than_echo_are_not_policed() {
    let w = World::default();
    let c = cfg(&[], &[], &[]);
    for (s, d, ty) in [
        ("1.1.1.1", "2.2.2.2", 13u8),
        ("1.1.1.1", "2.2.2.2", 3),
        ("fd00::1", "fd00::2", 135),
    ] {
        let e = evaluate(&w, &c, Direction::Rx, &Packet::icmp(ip(s), ip(d), ty, 0, 1));
        assert_eq!(e.verdict, Verdict::Allow, "type {ty}");
    }
    let echo = Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 8, 0, 1);
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &echo).verdict,
        Verdict::Deny
    );
}

#[test]
fn icmp_protocol_of_the_other_family_is_not_policed() {
    let w = World::default();
    let c = cfg(&[], &[], &[]);
    let mut pkt = Packet::icmp(ip("1.1.1.1"), ip("2.2.2.2"), 128, 0, 1);
    pkt.proto = proto::ICMP6;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &pkt).verdict,
        Verdict::Allow
    );
}

#[test]
fn sctp_is_policed_with_ports() {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![dst(ports(9, 9))]);
    w.add_policy(0, &[0]);
    let c = cfg(&[0], &[0], &[]);
    let hit = Packet::l4(proto::SCTP, ip("1.1.1.1"), 1, ip("2.2.2.2"), 9);
    let miss = Packet::l4(proto::SCTP, ip("1.1.1.1"), 1, ip("2.2.2.2"), 10);
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &hit).verdict,
        Verdict::Allow
    );
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &miss).verdict,
        Verdict::Deny
    );
}

// ---- policies, profiles, defaults ---------------------------------------------------------

fn world_with_actions() -> World {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![]);
    w.add_rule(1, RuleAction::Deny, vec![]);
    w.add_rule(2, RuleAction::Log, vec![]);
    w.add_rule(3, RuleAction::Pass, vec![]);
    w.add_rule(4, RuleAction::Allow, vec![dst(ports(9999, 9999))]); // matches nothing below
    w
}

#[test]
fn first_matching_rule_of_a_policy_decides() {
    let mut w = world_with_actions();
    w.add_policy(10, &[4, 1, 0]);
    let e = evaluate(&w, &cfg(&[10], &[], &[]), Direction::Rx, &any_pkt());
    assert_eq!(e.verdict, Verdict::Deny);
    assert_eq!(
        e.trace,
        vec![Step::RuleMatched {
            is_profile: false,
            policy: 0,
            rule: 1,
            action: RuleAction::Deny
        }]
    );
}

#[test]
fn policy_without_match_moves_to_next_policy() {
    let mut w = world_with_actions();
    w.add_policy(10, &[4]);
    w.add_policy(11, &[0]);
    let e = evaluate(&w, &cfg(&[10, 11], &[], &[]), Direction::Rx, &any_pkt());
    assert_eq!(e.verdict, Verdict::Allow);
}

#[test]
fn log_ends_its_policy_and_evaluation_continues_with_the_next_policy() {
    let mut w = world_with_actions();
    w.add_policy(10, &[2, 1]); // the deny after LOG is never evaluated
    w.add_policy(11, &[0]);
    let e = evaluate(&w, &cfg(&[10, 11], &[], &[]), Direction::Rx, &any_pkt());
    assert_eq!(e.verdict, Verdict::Allow);
    assert_eq!(e.trace.len(), 2);
}

#[test]
fn log_in_the_last_policy_falls_to_the_policy_default() {
    let mut w = world_with_actions();
    w.add_policy(10, &[2, 0]);
    let mut c = cfg(&[10], &[], &[]);
    let e = evaluate(&w, &c, Direction::Rx, &any_pkt());
    assert_eq!(e.verdict, Verdict::Deny);
    assert_eq!(
        e.trace.last(),
        Some(&Step::PolicyDefault(PolicyDefault::Deny))
    );
    c.policy_default_rx = PolicyDefault::Allow;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
}

#[test]
fn pass_jumps_to_profiles_skipping_later_policies() {
    let mut w = world_with_actions();
    w.add_policy(10, &[3]);
    w.add_policy(11, &[1]); // skipped
    w.add_policy(20, &[0]); // profile
    let mut c = cfg(&[10, 11], &[], &[20]);
    c.policy_default_rx = PolicyDefault::Deny; // not consulted after PASS
    let e = evaluate(&w, &c, Direction::Rx, &any_pkt());
    assert_eq!(e.verdict, Verdict::Allow);
    assert!(!e.trace.iter().any(|s| matches!(s, Step::PolicyDefault(_))));
}

#[test]
fn policy_default_allow_and_deny_apply_without_policies_and_skip_profiles() {
    let mut w = world_with_actions();
    w.add_policy(20, &[1]);
    let mut c = cfg(&[], &[], &[20]);
    c.policy_default_rx = PolicyDefault::Allow;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
    c.policy_default_rx = PolicyDefault::Deny;
    c.profile_default_rx = PolicyDefault::Allow;
    w.add_policy(20, &[0]);
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Deny
    );
}

#[test]
fn policy_default_pass_goes_to_profiles() {
    let mut w = world_with_actions();
    w.add_policy(20, &[0]);
    let mut c = cfg(&[], &[], &[20]);
    c.policy_default_rx = PolicyDefault::Pass;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
}

#[test]
fn profile_log_moves_to_the_next_profile() {
    let mut w = world_with_actions();
    w.add_policy(20, &[2, 1]);
    w.add_policy(21, &[0]);
    let mut c = cfg(&[], &[], &[20, 21]);
    c.policy_default_rx = PolicyDefault::Pass;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
}

#[test]
fn pass_inside_a_profile_denies() {
    let mut w = world_with_actions();
    w.add_policy(20, &[3]);
    w.add_policy(21, &[0]); // never reached
    let mut c = cfg(&[], &[], &[20, 21]);
    c.policy_default_rx = PolicyDefault::Pass;
    c.profile_default_rx = PolicyDefault::Allow;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Deny
    );
}

#[test]
fn profile_default_applies_when_no_profile_matches() {
    let mut w = world_with_actions();
    w.add_policy(20, &[4]);
    let mut c = cfg(&[], &[], &[20]);
    c.policy_default_rx = PolicyDefault::Pass;
    c.profile_default_rx = PolicyDefault::Allow;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
    c.profile_default_rx = PolicyDefault::Deny;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Deny
    );
}

#[test]
fn profile_default_pass_denies() {
    let w = world_with_actions();
    let mut c = cfg(&[], &[], &[]);
    c.policy_default_rx = PolicyDefault::Pass;
    c.profile_default_rx = PolicyDefault::Pass;
    let e = evaluate(&w, &c, Direction::Rx, &any_pkt());
    assert_eq!(e.verdict, Verdict::Deny);
    assert_eq!(
        e.trace.last(),
        Some(&Step::ProfileDefault(PolicyDefault::Pass))
    );
}

// ---- directions ---------------------------------------------------------------------------

fn directional_world() -> World {
    let mut w = world_with_actions();
    // Policy 10 allows inbound, denies outbound; the lists per direction differ.
    w.policies.insert(
        10,
        Policy {
            inbound: vec![0],
            outbound: vec![1],
        },
    );
    w.policies.insert(
        11,
        Policy {
            inbound: vec![1],
            outbound: vec![0],
        },
    );
    w
}

#[test]
fn rx_uses_rx_policies_and_their_inbound_rules() {
    let w = directional_world();
    let c = cfg(&[10], &[11], &[]);
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
}

#[test]
fn tx_uses_tx_policies_and_their_outbound_rules() {
    let w = directional_world();
    let c = cfg(&[10], &[11], &[]);
    assert_eq!(
        evaluate(&w, &c, Direction::Tx, &any_pkt()).verdict,
        Verdict::Allow
    );
    let c = cfg(&[11], &[10], &[]);
    assert_eq!(
        evaluate(&w, &c, Direction::Tx, &any_pkt()).verdict,
        Verdict::Deny
    );
}

#[test]
fn defaults_follow_the_direction() {
    let w = World::default();
    let mut c = cfg(&[], &[], &[]);
    c.policy_default_rx = PolicyDefault::Allow;
    c.policy_default_tx = PolicyDefault::Deny;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
    assert_eq!(
        evaluate(&w, &c, Direction::Tx, &any_pkt()).verdict,
        Verdict::Deny
    );
}

#[test]
fn invert_rx_tx_swaps_lists_rules_and_defaults() {
    let w = directional_world();
    let mut c = cfg(&[11], &[10], &[]);
    c.invert_rx_tx = true;
    // RX now uses tx_policies (10) with outbound rules (deny).
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Deny
    );
    // TX uses rx_policies (11) with inbound rules (deny) too.
    assert_eq!(
        evaluate(&w, &c, Direction::Tx, &any_pkt()).verdict,
        Verdict::Deny
    );
    let mut c = cfg(&[], &[], &[]);
    c.invert_rx_tx = true;
    c.policy_default_tx = PolicyDefault::Allow;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
}

#[test]
fn invert_rx_tx_also_picks_profile_rule_lists() {
    let w = directional_world();
    let mut c = cfg(&[], &[], &[10]);
    c.policy_default_rx = PolicyDefault::Pass;
    c.policy_default_tx = PolicyDefault::Pass;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
    c.invert_rx_tx = true;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Deny
    );
}

// ---- dangling references ------------------------------------------------------------------

#[test]
fn dangling_policy_is_an_empty_policy() {
    let w = world_with_actions();
    let mut c = cfg(&[77], &[], &[]);
    c.policy_default_rx = PolicyDefault::Allow;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
}

#[test]
fn deleted_rule_matches_everything_with_its_old_action() {
    // QUIRK: the freed slot keeps its action and has no conditions left.
    let mut w = world_with_actions();
    w.deleted_rules.insert(50, RuleAction::Deny);
    w.add_policy(10, &[50, 0]);
    let mut c = cfg(&[10], &[], &[]);
    c.policy_default_rx = PolicyDefault::Allow;
    assert_eq!(
        evaluate(&w, &c, Direction::Rx, &any_pkt()).verdict,
        Verdict::Deny
    );
}

#[test]
fn unknown_rule_reference_matches_nothing() {
    let mut w = world_with_actions();
    w.add_policy(10, &[51, 0]);
    assert_eq!(
        evaluate(&w, &cfg(&[10], &[], &[]), Direction::Rx, &any_pkt()).verdict,
        Verdict::Allow
    );
}

#[test]
fn dangling_ipset_is_empty() {
    let mut w = World::default();
    w.add_rule(0, RuleAction::Allow, vec![src(EntryData::IpSet(9))]);
    w.add_rule(1, RuleAction::Allow, vec![not_src(EntryData::IpSet(9))]);
    w.add_rule(2, RuleAction::Allow, vec![dst(EntryData::PortIpSet(9))]);
    assert!(!w.rule_hits(0, &any_pkt()));
    assert!(w.rule_hits(1, &any_pkt()));
    assert!(!w.rule_hits(2, &any_pkt()));
}

// ---- ipset member delete ------------------------------------------------------------------

#[test]
fn deleting_one_ip_and_port_member_removes_every_member_with_another_port() {
    let mut s = IpSet::new(IpSetType::IpAndPort);
    for m in [
        ipport("10.0.0.1", 6, 80),
        ipport("10.0.0.2", 6, 443),
        ipport("10.0.0.3", 6, 80),
    ] {
        s.members.insert(m);
    }
    s.npol_delete_member(&ipport("10.0.0.1", 6, 80));
    let left: Vec<_> = s.members.iter().copied().collect();
    assert_eq!(left, vec![ipport("10.0.0.3", 6, 80)]);
}

#[test]
fn deleting_an_ip_member_removes_only_that_member() {
    let mut s = IpSet::new(IpSetType::Ip);
    s.members.insert(IpSetMember::Ip(ip("10.0.0.1")));
    s.members.insert(IpSetMember::Ip(ip("10.0.0.2")));
    s.npol_delete_member(&IpSetMember::Ip(ip("10.0.0.1")));
    assert_eq!(s.members.len(), 1);
}
