//! proptest generators: small random models whose addresses, ports and sets overlap enough
//! that rules hit, and packets drawn from the same pools.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use calico_model::*;
use ipnet::IpNet;
use npol::Packet;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;

pub const V4: [&str; 6] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.5",
    "10.0.1.1",
    "10.0.1.3",
    "192.168.0.1",
];
pub const V6: [&str; 4] = ["fd00::1", "fd00::2", "fd00:1::1", "fd00:1::3"];
const NETS: [&str; 14] = [
    "10.0.0.1/32",
    "10.0.0.2/32",
    "10.0.0.0/30",
    "10.0.0.4/30",
    "10.0.0.0/16",
    "10.0.1.0/24",
    "0.0.0.0/0",
    "192.168.0.1/32",
    "fd00::1/128",
    "fd00::/126",
    "fd00::/64",
    "fd00:1::/64",
    "::/0",
    "fd00:1::3/128",
];
/// `allow_spoofed_source_prefixes` drawn for workloads (both families, overlapping the
/// packet pools).
const SPOOF_PREFIXES: [&str; 6] = [
    "10.0.1.0/24",
    "192.168.0.1/32",
    "10.0.0.4/30",
    "fd00:1::/64",
    "fd00::2/128",
    "0.0.0.0/0",
];
const PORTS: [u16; 7] = [22, 80, 443, 1500, 4789, 8080, 40000];
const RANGES: [(u16, u16); 6] = [
    (80, 80),
    (443, 443),
    (80, 443),
    (1000, 2000),
    (8080, 8080),
    (1, 65535),
];
pub const NET_SETS: [&str; 4] = ["s0", "s1", "s2", "s3"];
pub const PORT_SETS: [&str; 2] = ["n0", "n1"];
pub const POLICIES: usize = 6;
pub const PROFILES: [&str; 3] = ["pr0", "pr1", "pr-missing"];

pub fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => select(&V4[..]).prop_map(|s| s.parse().unwrap()),
        1 => select(&V6[..]).prop_map(|s| s.parse().unwrap()),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    select(&NETS[..]).prop_map(|s| s.parse().unwrap())
}

fn nets() -> impl Strategy<Value = Vec<IpNet>> {
    prop_oneof![6 => Just(vec![]), 1 => vec(net(), 1..3)]
}

fn ranges() -> impl Strategy<Value = Vec<PortRange>> {
    prop_oneof![
        6 => Just(vec![]),
        1 => vec(select(&RANGES[..]).prop_map(|(a, b)| PortRange { first: a, last: b }), 1..3),
    ]
}

fn set_ids(pool: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<IpSetId>> {
    prop_oneof![
        12 => Just(vec![]),
        1 => vec(select(pool).prop_map(|s| IpSetId(s.to_string())), 1..=max),
    ]
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
    w: u32,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![w => Just(None), 1 => s.prop_map(Some)]
}

fn icmp_match() -> impl Strategy<Value = IcmpMatch> {
    (
        select(&[0u8, 8, 128, 129][..]),
        proptest::option::of(Just(0u8)),
    )
        .prop_map(|(t, c)| IcmpMatch {
            icmp_type: t,
            code: c,
        })
}

fn action() -> impl Strategy<Value = Option<Action>> {
    prop_oneof![
        3 => Just(Some(Action::Allow)),
        2 => Just(Some(Action::Deny)),
        2 => Just(Some(Action::Pass)),
        1 => Just(Some(Action::Log)),
        1 => Just(None),
    ]
}

/// `with_icmp`: whether ICMP type/code matches may appear (they compile fail-closed, not
/// exactly).
pub fn rule(with_icmp: bool) -> impl Strategy<Value = Rule> {
    let icmp_w = if with_icmp { 6 } else { u32::MAX / 2 };
    (
        (
            action(),
            opt(select(&[IpVersion::V4, IpVersion::V6][..]), 6),
            opt(select(&[6u8, 17, 1, 58, 132, 47, 4][..]), 2),
            opt(select(&[6u8, 17, 1, 58, 47][..]), 6),
            nets(),
            nets(),
            nets(),
            nets(),
        ),
        (
            ranges(),
            ranges(),
            ranges(),
            ranges(),
            set_ids(&NET_SETS, 2),
            set_ids(&NET_SETS, 2),
            set_ids(&NET_SETS, 2),
            set_ids(&NET_SETS, 2),
        ),
        (
            set_ids(&PORT_SETS, 2),
            set_ids(&PORT_SETS, 2),
            set_ids(&PORT_SETS, 1),
            set_ids(&PORT_SETS, 1),
            set_ids(&PORT_SETS, 2),
            opt(icmp_match(), icmp_w),
            opt(icmp_match(), icmp_w),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (
                    action,
                    ip_version,
                    protocol,
                    not_protocol,
                    src_net,
                    dst_net,
                    not_src_net,
                    not_dst_net,
                ),
                (
                    src_ports,
                    dst_ports,
                    not_src_ports,
                    not_dst_ports,
                    src_ip_set_ids,
                    dst_ip_set_ids,
                    not_src_ip_set_ids,
                    not_dst_ip_set_ids,
                ),
                (
                    src_named,
                    dst_named,
                    not_src_named,
                    not_dst_named,
                    dst_ip_port,
                    icmp,
                    not_icmp,
                    http,
                ),
            )| Rule {
                action,
                ip_version,
                protocol,
                not_protocol,
                src_net,
                src_ports,
                src_named_port_ip_set_ids: src_named,
                src_ip_set_ids,
                dst_net,
                dst_ports,
                dst_named_port_ip_set_ids: dst_named,
                dst_ip_set_ids,
                dst_ip_port_set_ids: dst_ip_port,
                icmp,
                not_src_net,
                not_src_ports,
                not_src_named_port_ip_set_ids: not_src_named,
                not_src_ip_set_ids,
                not_dst_net,
                not_dst_ports,
                not_dst_named_port_ip_set_ids: not_dst_named,
                not_dst_ip_set_ids,
                not_icmp,
                rule_id: String::new(),
                has_http_match: http,
            },
        )
}

/// Which rules a model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// No ICMP type/code matches: everything compiles exactly.
    NoIcmp,
    /// ICMP type/code matches now and then (`rule(true)`).
    Icmp,
    /// Half the rules are ICMP-shaped ([`icmp_rule`]): `icmp` and `not_icmp`, protocol 1, 58
    /// or none, `not_protocol` of either family's ICMP, pass and deny rules often. The rare
    /// shapes the fail-closed compile must get right per IP family (issue 11).
    IcmpHeavy,
}

/// ICMP type/code matches for [`icmp_rule`]: echo types of both families, an error type no
/// generated packet carries (so `not_icmp` matches every echo), codes that match and do not.
fn icmp_match_wide() -> impl Strategy<Value = IcmpMatch> {
    (
        select(&[0u8, 8, 128, 129, 3][..]),
        prop_oneof![3 => Just(None), 2 => Just(Some(0u8)), 1 => Just(Some(1u8))],
    )
        .prop_map(|(t, c)| IcmpMatch {
            icmp_type: t,
            code: c,
        })
}

/// A rule built around an ICMP type/code match: the rest of a [`rule`] (nets, sets, IP
/// version) with the protocol fields, the ICMP fields and the action drawn for ICMP, and
/// usually no port match (a port match makes an ICMP rule match nothing).
pub fn icmp_rule() -> impl Strategy<Value = Rule> {
    (
        rule(false),
        prop_oneof![
            2 => Just(Some(Action::Allow)),
            3 => Just(Some(Action::Deny)),
            3 => Just(Some(Action::Pass)),
            1 => Just(Some(Action::Log)),
            1 => Just(None),
        ],
        prop_oneof![
            3 => Just(None),
            3 => Just(Some(1u8)),
            3 => Just(Some(58u8)),
            1 => Just(Some(6u8)),
        ],
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(1u8)),
            1 => Just(Some(58u8)),
            1 => Just(Some(6u8)),
        ],
        // 0: `icmp` only, 1: `not_icmp` only, 2: both.
        0u8..3,
        icmp_match_wide(),
        icmp_match_wide(),
        prop::bool::weighted(0.85),
    )
        .prop_map(
            |(mut r, action, protocol, not_protocol, which, m, n, no_ports)| {
                r.action = action;
                r.protocol = protocol;
                r.not_protocol = not_protocol;
                r.icmp = (which != 1).then_some(m);
                r.not_icmp = (which != 0).then_some(n);
                if no_ports {
                    r.src_ports.clear();
                    r.dst_ports.clear();
                    r.not_src_ports.clear();
                    r.not_dst_ports.clear();
                    r.src_named_port_ip_set_ids.clear();
                    r.dst_named_port_ip_set_ids.clear();
                    r.not_src_named_port_ip_set_ids.clear();
                    r.not_dst_named_port_ip_set_ids.clear();
                    r.dst_ip_port_set_ids.clear();
                }
                r
            },
        )
}

// `NoIcmp` and `Icmp` draw exactly what they always drew, so the seeds persisted in
// `equivalence.proptest-regressions` keep reproducing their models.
fn rules(mix: Mix) -> BoxedStrategy<Vec<Rule>> {
    match mix {
        Mix::NoIcmp => vec(rule(false), 0..4).boxed(),
        Mix::Icmp => vec(rule(true), 0..4).boxed(),
        Mix::IcmpHeavy => vec(prop_oneof![1 => rule(true), 1 => icmp_rule()], 0..4).boxed(),
    }
}

pub fn policy_id(i: usize) -> PolicyId {
    // The last one is staged.
    PolicyId {
        name: format!("p{i}"),
        namespace: String::new(),
        kind: if i == POLICIES - 1 {
            "StagedGlobalNetworkPolicy".into()
        } else {
            "GlobalNetworkPolicy".into()
        },
    }
}

fn policy(mix: Mix) -> impl Strategy<Value = Policy> {
    (rules(mix), rules(mix), prop::bool::weighted(0.05)).prop_map(|(i, o, invalid)| Policy {
        tier: String::new(),
        inbound_rules: i,
        outbound_rules: o,
        invalid: invalid.then(|| Invalid {
            reason: "test".into(),
        }),
        ..Policy::default()
    })
}

fn profile(mix: Mix) -> impl Strategy<Value = Profile> {
    (rules(mix), rules(mix)).prop_map(|(i, o)| Profile {
        inbound_rules: i,
        outbound_rules: o,
        invalid: None,
    })
}

fn net_set() -> impl Strategy<Value = IpSet> {
    btree_set(net(), 0..5).prop_map(|m| IpSet {
        kind: if m.iter().all(|n| n.prefix_len() == n.max_prefix_len()) {
            IpSetKind::Ip
        } else {
            IpSetKind::Net
        },
        members: m.into_iter().map(IpSetMember::Net).collect(),
    })
}

fn port_set() -> impl Strategy<Value = IpSet> {
    btree_set(
        (addr(), select(&[6u8, 17][..]), select(&PORTS[..]))
            .prop_map(|(addr, proto, port)| IpSetMember::IpPort { addr, proto, port }),
        0..6,
    )
    .prop_map(|members| IpSet {
        kind: IpSetKind::IpAndPort,
        members,
    })
}

fn policy_list() -> impl Strategy<Value = Vec<PolicyId>> {
    vec(
        (0..POLICIES * 8 + 1).prop_map(|i| {
            if i == POLICIES * 8 {
                // A policy the model does not have.
                PolicyId {
                    name: "missing".into(),
                    namespace: String::new(),
                    kind: "NetworkPolicy".into(),
                }
            } else {
                policy_id(i % POLICIES)
            }
        }),
        0..3,
    )
}

fn tier(i: usize) -> impl Strategy<Value = TierInfo> {
    (policy_list(), policy_list(), any::<bool>()).prop_map(move |(ing, eg, pass)| TierInfo {
        name: format!("t{i}"),
        ingress_policies: ing,
        egress_policies: eg,
        default_action: if pass {
            TierDefaultAction::Pass
        } else {
            TierDefaultAction::Deny
        },
    })
}

fn tiers() -> impl Strategy<Value = Vec<TierInfo>> {
    (0usize..4).prop_flat_map(|n| (0..n).map(tier).collect::<Vec<_>>())
}

fn workload(i: usize) -> impl Strategy<Value = WorkloadEndpoint> {
    (
        tiers(),
        vec(
            prop_oneof![8 => select(&PROFILES[..2]), 1 => Just(PROFILES[2])],
            0..3,
        ),
        prop::bool::weighted(0.9),
        (
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.8),
            prop_oneof![
                3 => Just(Vec::new()),
                1 => vec(select(&SPOOF_PREFIXES[..]), 1..3),
            ],
        ),
    )
        .prop_map(
            move |(tiers, profiles, active, (v4, v6, spoof))| WorkloadEndpoint {
                active,
                name: format!("cali{i}"),
                mac: None,
                profile_ids: profiles.into_iter().map(|p| ProfileId(p.into())).collect(),
                ipv4_nets: if v4 {
                    vec![format!("{}/32", V4[i]).parse().unwrap()]
                } else {
                    vec![]
                },
                ipv6_nets: if v6 {
                    vec![format!("{}/128", V6[i]).parse().unwrap()]
                } else {
                    vec![]
                },
                tiers,
                ipv4_nat: vec![],
                ipv6_nat: vec![],
                allow_spoofed_source_prefixes: spoof
                    .into_iter()
                    .map(|n| n.parse().unwrap())
                    .collect(),
                annotations: BTreeMap::new(),
                invalid: None,
            },
        )
}

pub fn wid(i: usize) -> WorkloadEndpointId {
    WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: format!("ns/w{i}"),
        endpoint_id: "eth0".into(),
    }
}

fn local_host_route() -> Route {
    let dst: IpNet = "10.0.1.3/32".parse().unwrap();
    Route {
        dst,
        types: RouteTypes(RouteTypes::LOCAL_HOST),
        ip_pool_type: IpPoolType::None,
        dst_node_name: "me".into(),
        dst_node_ip: None,
        same_subnet: false,
        nat_outgoing: false,
        local_workload: false,
        tunnel_type: TunnelType::default(),
        borrowed: false,
    }
}

/// A block on another node, reached without encapsulation (a route the driver programs).
fn remote_block_route() -> Route {
    Route {
        dst: "10.70.1.0/26".parse().unwrap(),
        types: RouteTypes(RouteTypes::REMOTE_WORKLOAD),
        ip_pool_type: IpPoolType::NoEncap,
        dst_node_name: "n2".into(),
        dst_node_ip: Some("192.168.1.2".parse().unwrap()),
        ..local_host_route()
    }
}

/// `with_icmp`: whether ICMP type/code matches may appear ([`Mix::Icmp`]) or not
/// ([`Mix::NoIcmp`]).
pub fn model(with_icmp: bool) -> impl Strategy<Value = Model> {
    model_of(if with_icmp { Mix::Icmp } else { Mix::NoIcmp })
}

pub fn model_of(mix: Mix) -> impl Strategy<Value = Model> {
    (
        vec(proptest::option::weighted(0.98, net_set()), NET_SETS.len()),
        vec(
            proptest::option::weighted(0.98, port_set()),
            PORT_SETS.len(),
        ),
        vec(proptest::option::weighted(0.95, policy(mix)), POLICIES),
        vec(profile(mix), 2),
        vec(workload(0).boxed(), 1).prop_flat_map(|_| (workload(0), workload(1))),
        (
            select(&["DROP", "ACCEPT", "RETURN"][..]),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(nsets, psets, policies, profiles, (w0, w1), (eth, vx, ipip, route))| {
                let mut m = Model::default();
                for (i, s) in nsets.into_iter().enumerate() {
                    if let Some(s) = s {
                        m.ipsets.insert(IpSetId(NET_SETS[i].into()), s);
                    }
                }
                for (i, s) in psets.into_iter().enumerate() {
                    if let Some(s) = s {
                        m.ipsets.insert(IpSetId(PORT_SETS[i].into()), s);
                    }
                }
                for (i, p) in policies.into_iter().enumerate() {
                    if let Some(p) = p {
                        m.policies.insert(policy_id(i), p);
                    }
                }
                for (i, p) in profiles.into_iter().enumerate() {
                    m.profiles.insert(ProfileId(PROFILES[i].into()), p);
                }
                m.workload_endpoints.insert(wid(0), w0);
                m.workload_endpoints.insert(wid(1), w1);
                m.felix_config
                    .insert("DefaultEndpointToHostAction".into(), eth.into());
                m.felix_config
                    .insert("AllowVXLANPacketsFromWorkloads".into(), vx.to_string());
                m.felix_config
                    .insert("AllowIPIPPacketsFromWorkloads".into(), ipip.to_string());
                if route {
                    let r = local_host_route();
                    m.routes.insert(r.dst, r);
                    let r = remote_block_route();
                    m.routes.insert(r.dst, r);
                }
                m
            },
        )
}

/// Packets npol polices: TCP, UDP, SCTP and ICMP echo, of one family.
pub fn policed_packet() -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        0usize..6,
        0usize..6,
        select(&PORTS[..]),
        select(&PORTS[..]),
        0u8..5,
    )
        .prop_map(|(v6, s, d, sp, dp, kind)| {
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                (
                    V6[s % V6.len()].parse().unwrap(),
                    V6[d % V6.len()].parse().unwrap(),
                )
            } else {
                (V4[s].parse().unwrap(), V4[d].parse().unwrap())
            };
            match kind {
                0 | 1 => Packet::tcp(src, sp, dst, dp),
                2 => Packet::udp(src, sp, dst, dp),
                3 => Packet::l4(132, src, sp, dst, dp),
                _ => {
                    let t = if v6 {
                        128 + (sp % 2) as u8
                    } else {
                        8 * (sp % 2) as u8
                    };
                    Packet::icmp(src, dst, t, 0, dp)
                }
            }
        })
}

/// Any packet: policed ones, and ones npol never sees (other protocols, ICMP query types
/// other than echo, ICMP of the other family). ICMP errors and ICMPv6 ND/MLD types are left
/// out: they cross the guard and their fate depends on cnat sessions (see the law's docs).
pub fn any_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        3 => policed_packet(),
        1 => (
            any::<bool>(),
            0usize..6,
            0usize..6,
            select(&[4u8, 41, 47, 50, 51, 1, 58][..]),
            select(&[13u8, 14, 17, 9, 10, 200, 140, 8, 128][..]),
        )
            .prop_map(|(v6, s, d, proto, t)| {
                let (src, dst): (IpAddr, IpAddr) = if v6 {
                    (
                        V6[s % V6.len()].parse().unwrap(),
                        V6[d % V6.len()].parse().unwrap(),
                    )
                } else {
                    (V4[s].parse().unwrap(), V4[d].parse().unwrap())
                };
                let mut p = Packet::l4(proto, src, 0, dst, 0);
                p.icmp_type = t;
                // Keep only packets npol does not police (echo of the right family is).
                if p.npol_tuple().is_some() {
                    p.icmp_type = 13;
                }
                p
            }),
    ]
}

/// ICMP echo request or reply of either family, from the address pools; mostly code 0,
/// sometimes another (the guard passes echo requests of code 0 only).
pub fn echo_packet() -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        0usize..6,
        0usize..6,
        any::<bool>(),
        select(&PORTS[..]),
        select(&[0u8, 0, 0, 0, 1, 9][..]),
    )
        .prop_map(|(v6, s, d, request, ident, code)| {
            let (src, dst, t): (IpAddr, IpAddr, u8) = if v6 {
                (
                    V6[s % V6.len()].parse().unwrap(),
                    V6[d % V6.len()].parse().unwrap(),
                    if request { 128 } else { 129 },
                )
            } else {
                (
                    V4[s].parse().unwrap(),
                    V4[d].parse().unwrap(),
                    if request { 8 } else { 0 },
                )
            };
            Packet::icmp(src, dst, t, code, ident)
        })
}

/// [`any_packet`] with ICMP echo of both families much more often (for [`Mix::IcmpHeavy`]).
pub fn icmp_heavy_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![3 => any_packet(), 2 => echo_packet()]
}

/// The packet a workload sends, for the law on egress: mostly from its own address of the
/// packet's family (so egress policy gets exercised), sometimes from an IPv6 link-local
/// source, sometimes as drawn (usually someone else's address: spoofed).
pub fn as_sent_by(ep: &WorkloadEndpoint, pkt: &Packet, i: usize) -> Packet {
    let mut p = *pkt;
    let own = if p.src.is_ipv4() {
        ep.ipv4_nets.first().map(|n| IpAddr::V4(n.addr()))
    } else {
        ep.ipv6_nets.first().map(|n| IpAddr::V6(n.addr()))
    };
    match i % 4 {
        0 => {}
        1 if p.src.is_ipv6() => p.src = "fe80::1".parse().unwrap(),
        _ => {
            if let Some(a) = own {
                p.src = a;
            }
        }
    }
    p
}

/// What changed between two models, as the incremental compiler wants it.
pub fn changes(a: &Model, b: &Model) -> calico_compile::ChangeSet {
    fn diff<K: Ord + Clone, V: PartialEq>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> BTreeSet<K> {
        a.keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect()
    }
    // Member deltas for sets that kept their kind, as Felix's IPSetDeltaUpdate gives them.
    let mut ipset_members = BTreeMap::new();
    for (id, new) in &b.ipsets {
        if let Some(old) = a.ipsets.get(id) {
            if old.kind == new.kind && old != new {
                ipset_members.insert(
                    id.clone(),
                    (
                        new.members.difference(&old.members).copied().collect(),
                        old.members.difference(&new.members).copied().collect(),
                    ),
                );
            }
        }
    }
    calico_compile::ChangeSet {
        ipset_members,
        ipsets: diff(&a.ipsets, &b.ipsets),
        policies: diff(&a.policies, &b.policies),
        profiles: diff(&a.profiles, &b.profiles),
        workload_endpoints: diff(&a.workload_endpoints, &b.workload_endpoints),
        host_endpoints: diff(&a.host_endpoints, &b.host_endpoints),
        routes: a.routes != b.routes,
        pools: a.ipam_pools != b.ipam_pools,
        hosts: a.host_metadata != b.host_metadata,
        bgp: a.global_bgp != b.global_bgp,
        vteps: a.vteps != b.vteps,
        pods: diff(&a.pods, &b.pods),
        kube_services: Default::default(),
        kube_resync: a.kube != b.kube || a.kube_synced != b.kube_synced,
        node: a.felix_config != b.felix_config,
    }
}
