//! Table tests: the classic Calico cases, each checked against both the reference and the
//! npol evaluation of the compiled objects.

mod common;

use calico_compile::{compile, reference, reference::Decision, CalicoDirection::*, Note, Subject};
use calico_model::*;
use common::*;
use npol::{Packet, Verdict::*};

const POD: &str = "10.0.0.1";
const PEER: &str = "10.0.0.2";

fn one_pod(tiers: Vec<TierInfo>, profiles: &[&str]) -> (Model, WorkloadEndpointId) {
    let mut m = Model::default();
    let id = wid("a");
    m.workload_endpoints.insert(
        id.clone(),
        workload("a", &[POD, "fd00::1"], tiers, profiles),
    );
    (m, id)
}

#[test]
fn pass_to_next_tier() {
    let (mut m, a) = one_pod(
        vec![tier("t1", &[pid("p1")], &[]), tier("t2", &[pid("p2")], &[])],
        &[],
    );
    m.policies
        .insert(pid("p1"), policy(vec![rule(Action::Pass)], vec![]));
    m.policies
        .insert(pid("p2"), policy(vec![rule(Action::Allow)], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
    let out = reference::evaluate(&m, &a, Ingress, &tcp(PEER, POD, 80));
    assert!(matches!(out.decided_by, Decision::Rule { ref tier, .. } if tier == "t2"));
}

#[test]
fn end_of_tier_deny() {
    let (mut m, a) = one_pod(
        vec![tier("t1", &[pid("p1")], &[]), tier("t2", &[pid("p2")], &[])],
        &["allow"],
    );
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    let mut only_443 = rule(Action::Allow);
    only_443.protocol = Some(6);
    only_443.dst_ports = vec![PortRange {
        first: 443,
        last: 443,
    }];
    m.policies.insert(pid("p1"), policy(vec![only_443], vec![]));
    m.policies
        .insert(pid("p2"), policy(vec![rule(Action::Allow)], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 443)), Allow);
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
    let out = reference::evaluate(&m, &a, Ingress, &tcp(PEER, POD, 80));
    assert_eq!(out.decided_by, Decision::EndOfTier { tier: "t1".into() });
}

#[test]
fn tier_default_pass() {
    let mut t1 = tier("t1", &[pid("p1")], &[]);
    t1.default_action = TierDefaultAction::Pass;
    let (mut m, a) = one_pod(vec![t1, tier("t2", &[pid("p2")], &[])], &[]);
    let mut deny_22 = rule(Action::Deny);
    deny_22.protocol = Some(6);
    deny_22.dst_ports = vec![PortRange {
        first: 22,
        last: 22,
    }];
    m.policies.insert(pid("p1"), policy(vec![deny_22], vec![]));
    m.policies
        .insert(pid("p2"), policy(vec![rule(Action::Allow)], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 22)), Deny);
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
}

#[test]
fn pass_in_last_tier_reaches_profiles() {
    let (mut m, a) = one_pod(vec![tier("t1", &[pid("p1")], &[])], &["allow"]);
    m.policies
        .insert(pid("p1"), policy(vec![rule(Action::Pass)], vec![]));
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
    // Without the profile, nothing allows: default deny.
    m.workload_endpoints
        .get_mut(&a)
        .unwrap()
        .profile_ids
        .clear();
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
}

#[test]
fn profile_pass_moves_to_next_profile() {
    let (mut m, a) = one_pod(vec![], &["first", "second"]);
    m.profiles.insert(
        ProfileId("first".into()),
        Profile {
            inbound_rules: vec![rule(Action::Pass), rule(Action::Deny)],
            outbound_rules: vec![],
            invalid: None,
        },
    );
    m.profiles
        .insert(ProfileId("second".into()), allow_all_profile());
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
}

#[test]
fn tier_with_only_ingress_policies_does_not_affect_egress() {
    let (mut m, a) = one_pod(vec![tier("t1", &[pid("p1")], &[])], &["allow"]);
    m.policies
        .insert(pid("p1"), policy(vec![rule(Action::Deny)], vec![]));
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Allow);
}

#[test]
fn staged_policy_ignored() {
    let (mut m, a) = one_pod(vec![tier("t1", &[staged("s1")], &[])], &["allow"]);
    m.policies
        .insert(staged("s1"), policy(vec![rule(Action::Deny)], vec![]));
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    // Not enforced, and a tier with only staged policies has no end-of-tier drop.
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
    let c = compile(&m);
    assert!(!c.desired.policies.keys().any(|k| k.0.starts_with("t:")));
}

#[test]
fn default_deny_with_no_policies_and_no_profiles() {
    let (m, a) = one_pod(vec![], &[]);
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Deny);
}

#[test]
fn k8s_networkpolicy_default_deny_namespace() {
    // A Kubernetes default-deny: a policy selecting every pod with no rules.
    let knp = PolicyId {
        name: "knp.default.default-deny".into(),
        namespace: "ns".into(),
        kind: "KubernetesNetworkPolicy".into(),
    };
    let (mut m, a) = one_pod(
        vec![tier("default", std::slice::from_ref(&knp), &[])],
        &["kns.ns"],
    );
    m.policies.insert(knp, policy(vec![], vec![]));
    m.profiles
        .insert(ProfileId("kns.ns".into()), allow_all_profile());
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Allow);
}

#[test]
fn allow_from_namespace_by_label() {
    let (mut m, a) = one_pod(vec![tier("default", &[pid("from-frontend")], &[])], &[]);
    m.ipsets.insert(
        IpSetId("s:frontend".into()),
        net_set(&["10.0.1.1/32", "10.0.1.2/32"]),
    );
    let mut r = rule(Action::Allow);
    r.src_ip_set_ids = vec![IpSetId("s:frontend".into())];
    m.policies
        .insert(pid("from-frontend"), policy(vec![r], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp("10.0.1.2", POD, 80)), Allow);
    assert_eq!(verdict(&m, &a, Ingress, &tcp("10.0.9.9", POD, 80)), Deny);
}

#[test]
fn named_port_across_pods() {
    let (mut m, a) = one_pod(vec![tier("default", &[], &[pid("to-http")])], &[]);
    m.ipsets.insert(
        IpSetId("n:http".into()),
        IpSet {
            kind: IpSetKind::IpAndPort,
            members: [
                IpSetMember::IpPort {
                    addr: ip("10.0.2.1"),
                    proto: 6,
                    port: 8080,
                },
                IpSetMember::IpPort {
                    addr: ip("10.0.2.2"),
                    proto: 6,
                    port: 9090,
                },
            ]
            .into_iter()
            .collect(),
        },
    );
    let mut r = rule(Action::Allow);
    r.protocol = Some(6);
    r.dst_named_port_ip_set_ids = vec![IpSetId("n:http".into())];
    m.policies.insert(pid("to-http"), policy(vec![], vec![r]));
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, "10.0.2.1", 8080)), Allow);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, "10.0.2.2", 9090)), Allow);
    // Each pod's own port only.
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, "10.0.2.1", 9090)), Deny);
    assert_eq!(
        verdict(
            &m,
            &a,
            Egress,
            &Packet::udp(ip(POD), 1, ip("10.0.2.1"), 8080)
        ),
        Deny
    );
}

#[test]
fn ipv6() {
    let (mut m, a) = one_pod(vec![tier("default", &[pid("p")], &[])], &[]);
    let mut v6_only = rule(Action::Allow);
    v6_only.src_net = vec!["fd00:1::/64".parse().unwrap()];
    let mut v4_only = rule(Action::Allow);
    v4_only.ip_version = Some(IpVersion::V4);
    v4_only.protocol = Some(17);
    m.policies
        .insert(pid("p"), policy(vec![v6_only, v4_only], vec![]));
    assert_eq!(
        verdict(
            &m,
            &a,
            Ingress,
            &Packet::tcp(ip("fd00:1::5"), 1, ip("fd00::1"), 80)
        ),
        Allow
    );
    assert_eq!(
        verdict(
            &m,
            &a,
            Ingress,
            &Packet::tcp(ip("fd00:2::5"), 1, ip("fd00::1"), 80)
        ),
        Deny
    );
    assert_eq!(
        verdict(
            &m,
            &a,
            Ingress,
            &Packet::udp(ip("fd00:2::5"), 1, ip("fd00::1"), 80)
        ),
        Deny
    );
    assert_eq!(
        verdict(&m, &a, Ingress, &Packet::udp(ip(PEER), 1, ip(POD), 80)),
        Allow
    );
}

#[test]
fn several_ip_sets_are_anded_through_a_derived_set() {
    let (mut m, a) = one_pod(vec![tier("default", &[pid("p")], &[])], &[]);
    m.ipsets
        .insert(IpSetId("a".into()), net_set(&["10.0.1.0/24"]));
    m.ipsets.insert(
        IpSetId("b".into()),
        net_set(&["10.0.1.7/32", "10.0.2.7/32"]),
    );
    let mut r = rule(Action::Allow);
    r.src_ip_set_ids = vec![IpSetId("a".into()), IpSetId("b".into())];
    m.policies.insert(pid("p"), policy(vec![r], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp("10.0.1.7", POD, 1)), Allow);
    assert_eq!(verdict(&m, &a, Ingress, &tcp("10.0.1.8", POD, 1)), Deny);
    assert_eq!(verdict(&m, &a, Ingress, &tcp("10.0.2.7", POD, 1)), Deny);
}

#[test]
fn negated_cidr_of_other_family_only_removes_the_rule_from_this_family() {
    // Felix drops a rule from a family when a (negated) CIDR list has no entry of it.
    let (mut m, a) = one_pod(vec![tier("default", &[pid("p")], &[])], &[]);
    let mut r = rule(Action::Allow);
    r.not_src_net = vec!["fd00:9::/64".parse().unwrap()];
    m.policies.insert(pid("p"), policy(vec![r], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
    assert_eq!(
        verdict(
            &m,
            &a,
            Ingress,
            &Packet::tcp(ip("fd00:8::1"), 1, ip("fd00::1"), 80)
        ),
        Allow
    );
}

#[test]
fn inactive_endpoint_drops_everything() {
    let (mut m, a) = one_pod(vec![], &["allow"]);
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    m.workload_endpoints.get_mut(&a).unwrap().active = false;
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Deny);
}

#[test]
fn vxlan_from_workload_is_dropped_before_policy() {
    let (mut m, a) = one_pod(vec![], &["allow"]);
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    let vxlan = Packet::udp(ip(POD), 1234, ip(PEER), 4789);
    assert_eq!(verdict(&m, &a, Egress, &vxlan), Deny);
    m.felix_config
        .insert("AllowVXLANPacketsFromWorkloads".into(), "true".into());
    assert_eq!(verdict(&m, &a, Egress, &vxlan), Allow);
}

#[test]
fn workload_to_host_is_dropped_by_default_endpoint_to_host_action() {
    let (mut m, a) = one_pod(vec![], &["allow"]);
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    let host: ipnet::IpNet = "192.168.0.10/32".parse().unwrap();
    m.routes.insert(
        host,
        Route {
            dst: host,
            types: RouteTypes(RouteTypes::LOCAL_HOST),
            ip_pool_type: IpPoolType::None,
            dst_node_name: "me".into(),
            dst_node_ip: None,
            same_subnet: false,
            nat_outgoing: false,
            local_workload: false,
            tunnel_type: TunnelType::default(),
            borrowed: false,
        },
    );
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, "192.168.0.10", 22)), Deny);
    assert_eq!(
        verdict(&m, &a, Egress, &tcp(POD, "192.168.0.11", 22)),
        Allow
    );
    m.felix_config
        .insert("DefaultEndpointToHostAction".into(), "ACCEPT".into());
    assert_eq!(
        verdict(&m, &a, Egress, &tcp(POD, "192.168.0.10", 22)),
        Allow
    );
}

#[test]
fn invalid_policy_and_unknown_references_deny() {
    let (mut m, a) = one_pod(
        vec![tier("t1", &[pid("missing")], &[pid("bad-set")])],
        &["allow"],
    );
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    let mut r = rule(Action::Allow);
    r.dst_ip_set_ids = vec![IpSetId("nope".into())];
    m.policies.insert(pid("bad-set"), policy(vec![], vec![r]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Deny);
    let c = compile(&m);
    assert!(c
        .report
        .all()
        .any(|n| matches!(n, calico_compile::Note::UnknownPolicy { .. })));
    assert!(c
        .report
        .all()
        .any(|n| matches!(n, calico_compile::Note::BadIpSetReference { .. })));
}

#[test]
fn log_rules_do_not_decide() {
    let (mut m, a) = one_pod(vec![tier("t1", &[pid("p")], &[])], &[]);
    m.policies.insert(
        pid("p"),
        policy(vec![rule(Action::Log), rule(Action::Allow)], vec![]),
    );
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
}

/// npol's ICMP filters compare the echo identifier, never the type or code; but every ICMP
/// flow npol judges is an echo request with code 0 (replies ride their request's session,
/// the guard drops other codes), so ICMP type rules compile exactly.
#[test]
fn icmp_type_rules_compile_exactly_for_echo_requests() {
    let (mut m, a) = one_pod(vec![tier("t1", &[pid("p")], &[])], &["allow"]);
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    let mut allow_echo = rule(Action::Allow);
    allow_echo.protocol = Some(1);
    allow_echo.icmp = Some(IcmpMatch {
        icmp_type: 8,
        code: None,
    });
    let mut deny_v6_but_reply = rule(Action::Deny);
    deny_v6_but_reply.protocol = Some(58);
    deny_v6_but_reply.not_icmp = Some(IcmpMatch {
        icmp_type: 129,
        code: None,
    });
    m.policies.insert(
        pid("p"),
        policy(
            vec![allow_echo, deny_v6_but_reply, rule(Action::Pass)],
            vec![],
        ),
    );
    // An echo request: allowed by rule 0, exactly as Felix.
    let echo = Packet::icmp(ip(PEER), ip(POD), 8, 0, 7);
    assert_eq!(verdict(&m, &a, Ingress, &echo), Allow);
    let echo6 = Packet::icmp(ip("fd00::2"), ip("fd00::1"), 128, 0, 7);
    assert_eq!(verdict(&m, &a, Ingress, &echo6), Deny);

    let c = compile(&m);
    let iface = calico_compile::InterfaceKey("calia".into());
    let eval = |pkt: &Packet| {
        calico_compile::evaluate_compiled(&c.desired, &iface, Ingress, pkt)
            .unwrap()
            .verdict
    };
    // An echo request of another code: Felix's rule 0 allows it (no code named); the guard
    // drops it, and says so on rule 0.
    let odd = Packet::icmp(ip(PEER), ip(POD), 8, 3, 7);
    assert_eq!(reference::evaluate(&m, &a, Ingress, &odd).verdict, Allow);
    assert_eq!(eval(&odd), Deny);
    assert!(c
        .report
        .of(&Subject::Policy(pid("p")))
        .iter()
        .any(|n| matches!(
            n,
            Note::GuardStricter {
                direction: Ingress,
                index: 0,
                ..
            }
        )));
    // The residual: an echo reply that answers no request is dropped by Felix as INVALID;
    // npol cannot tell it from a request and judges it as one.
    let reply = Packet::icmp(ip(PEER), ip(POD), 0, 0, 7);
    assert_eq!(
        reference::evaluate(&m, &a, Ingress, &reply).decided_by,
        Decision::UnsolicitedEchoReply
    );
    assert_eq!(eval(&reply), eval(&echo));
}

/// Issue 11 (found by the property test; its seed is in equivalence.proptest-regressions):
/// an egress deny rule `protocol: 58, not_icmp: {type: 0}` followed by an allow. Felix denies
/// an ICMPv6 echo request (rule 0 matches); the compiler dropped every `protocol: 58` rule
/// with an ICMP match (it checked only the IPv4 family's ICMP), so the allow let it through.
#[test]
fn deny_with_negated_icmpv6_match_still_denies_echo() {
    let mut t0 = tier("t0", &[], &[pid("p3")]);
    t0.default_action = TierDefaultAction::Pass;
    let mut m = Model::default();
    let ep = wid("0");
    m.workload_endpoints.insert(
        ep.clone(),
        workload("0", &["10.0.0.1", "fd00::1"], vec![t0], &["pr1"]),
    );
    m.profiles.insert(
        ProfileId("pr1".into()),
        Profile {
            inbound_rules: vec![],
            outbound_rules: vec![],
            invalid: None,
        },
    );
    let mut deny = rule(Action::Deny);
    deny.protocol = Some(58);
    deny.not_icmp = Some(IcmpMatch {
        icmp_type: 0,
        code: None,
    });
    m.policies
        .insert(pid("p3"), policy(vec![], vec![deny, rule(Action::Allow)]));

    let echo6 = Packet::icmp(ip("fd00::1"), ip("fd00:1::3"), 128, 0, 8080);
    let want = reference::evaluate(&m, &ep, Egress, &echo6);
    assert_eq!(
        want.decided_by,
        Decision::Rule {
            tier: "t0".into(),
            policy: pid("p3"),
            index: 0,
            action: Action::Deny,
        }
    );
    // The compiled verdict equals the reference's.
    assert_eq!(verdict(&m, &ep, Egress, &echo6), Deny);
    assert_eq!(
        verdict(
            &m,
            &ep,
            Egress,
            &Packet::icmp(ip("fd00::1"), ip("fd00:1::3"), 129, 0, 7)
        ),
        Deny
    );
    // The rule does not exist for IPv4 (protocol 58 is not its ICMP) nor for TCP: the
    // allow after it decides, exactly as in Felix.
    let echo4 = Packet::icmp(ip("10.0.0.1"), ip("10.0.1.3"), 8, 0, 8080);
    assert_eq!(verdict(&m, &ep, Egress, &echo4), Allow);
    assert_eq!(
        verdict(&m, &ep, Egress, &tcp("fd00::1", "fd00:1::3", 80)),
        Allow
    );
}

/// Where an ICMP-type rule sits in the table test below.
#[derive(Debug, Clone, Copy)]
enum IcmpRuleHome {
    TierPolicy,
    Profile,
}

/// Every action × ICMP field × protocol shape, in a policy and in a profile, both
/// directions: the compiled verdict is exactly the reference's on TCP and on ICMP echo
/// requests of both families (unsolicited echo replies are the law's residual, pinned in
/// `equivalence.rs`). The rule is followed by the opposite verdict, so a lost or over-wide
/// rule shows, and rule 0 must itself decide some echo request.
#[test]
fn icmp_type_rules_compile_exactly_per_family_for_every_action() {
    type Field = (&'static str, fn(&mut Rule, bool));
    // Each field is set so that it holds for the echo request of the rule's family
    // (`v6`: the ICMPv6 one).
    let fields: [Field; 4] = [
        ("icmp type", |r, v6| {
            r.icmp = Some(IcmpMatch {
                icmp_type: if v6 { 128 } else { 8 },
                code: None,
            })
        }),
        ("icmp type+code", |r, v6| {
            r.icmp = Some(IcmpMatch {
                icmp_type: if v6 { 128 } else { 8 },
                code: Some(0),
            })
        }),
        ("not_icmp", |r, v6| {
            r.not_icmp = Some(IcmpMatch {
                icmp_type: if v6 { 129 } else { 0 },
                code: None,
            })
        }),
        ("not_icmp type+code", |r, v6| {
            r.not_icmp = Some(IcmpMatch {
                icmp_type: if v6 { 128 } else { 8 },
                code: Some(1),
            })
        }),
    ];
    // (protocol, not_protocol, the ICMP protocols of the families the rule can match in).
    let shapes: [(Option<u8>, Option<u8>, &[u8]); 6] = [
        (Some(1), None, &[1]),
        (Some(58), None, &[58]),
        (None, None, &[1, 58]),
        (None, Some(58), &[1]),
        (None, Some(1), &[58]),
        (None, Some(6), &[1, 58]),
    ];
    const POD6: &str = "fd00::1";
    const PEER6: &str = "fd00::2";
    let mut cases = 0;
    for action in [Action::Allow, Action::Deny, Action::Pass] {
        for (field, set_field) in fields {
            for (protocol, not_protocol, live) in shapes {
                for home in [IcmpRuleHome::TierPolicy, IcmpRuleHome::Profile] {
                    let mut r = rule(action);
                    r.protocol = protocol;
                    r.not_protocol = not_protocol;
                    set_field(&mut r, live == [58]);
                    // After the rule: the opposite verdict (a pass leaves the tier or
                    // profile; nothing after it allows, so it denies).
                    let after = rule(if action == Action::Allow {
                        Action::Deny
                    } else {
                        Action::Allow
                    });
                    let rules = vec![r.clone(), after];
                    let (mut m, ep) = match home {
                        IcmpRuleHome::TierPolicy => {
                            one_pod(vec![tier("t1", &[pid("p")], &[pid("p")])], &[])
                        }
                        IcmpRuleHome::Profile => one_pod(vec![], &["pr"]),
                    };
                    match home {
                        IcmpRuleHome::TierPolicy => {
                            m.policies.insert(pid("p"), policy(rules.clone(), rules));
                        }
                        IcmpRuleHome::Profile => {
                            m.profiles.insert(
                                ProfileId("pr".into()),
                                Profile {
                                    inbound_rules: rules.clone(),
                                    outbound_rules: rules,
                                    invalid: None,
                                },
                            );
                        }
                    }
                    let c = compile(&m);
                    let ctx = format!("{action:?} {field} protocol {protocol:?} not_protocol {not_protocol:?} in {home:?}");
                    let iface = calico_compile::InterfaceKey("calia".into());
                    let mut rule_decided_in_scope = false;
                    for dir in [Ingress, Egress] {
                        let (src4, dst4, src6, dst6) = match dir {
                            Ingress => (PEER, POD, PEER6, POD6),
                            Egress => (POD, PEER, POD6, PEER6),
                        };
                        let packets = [
                            (tcp(src4, dst4, 80), None),
                            (tcp(src6, dst6, 80), None),
                            (Packet::icmp(ip(src4), ip(dst4), 8, 0, 7), Some(1)),
                            (Packet::icmp(ip(src6), ip(dst6), 128, 0, 7), Some(58)),
                        ];
                        for (pkt, icmp_proto) in packets {
                            let want = reference::evaluate(&m, &ep, dir, &pkt);
                            let got =
                                calico_compile::evaluate_compiled(&c.desired, &iface, dir, &pkt)
                                    .unwrap();
                            let ctx = format!(
                                "{ctx}, {dir:?} {pkt:?}: reference {:?}, npol {:?}",
                                want.decided_by, got.trace
                            );
                            assert_eq!(got.verdict, want.verdict, "{ctx}: not exact");
                            if icmp_proto.is_some_and(|p| live.contains(&p)) {
                                rule_decided_in_scope |= matches!(
                                    want.decided_by,
                                    Decision::Rule { index: 0, .. }
                                        | Decision::ProfileRule { index: 0, .. }
                                ) || (action == Action::Pass
                                    && !matches!(
                                        want.decided_by,
                                        Decision::Rule { index: 1, .. }
                                            | Decision::ProfileRule { index: 1, .. }
                                    ));
                            }
                        }
                    }
                    // The table is meaningful: the reference's rule 0 itself decided (or,
                    // for a pass, skipped past rule 1 for) some echo request it can match.
                    assert!(rule_decided_in_scope, "{ctx}: rule 0 never matched");
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 3 * 4 * 6 * 2);
}

/// Regression (found by the property test): a log rule naming an unknown IP set must break
/// its policy like any other rule, in the compiler as in the reference.
#[test]
fn log_rule_with_unknown_ip_set_breaks_the_policy() {
    let (mut m, a) = one_pod(vec![tier("t1", &[pid("p")], &[])], &[]);
    let mut log = rule(Action::Log);
    log.dst_ip_set_ids = vec![IpSetId("nope".into())];
    m.policies
        .insert(pid("p"), policy(vec![rule(Action::Allow), log], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
}

/// A set the driver withdrew (Felix sent a member it could not read) must not turn a deny
/// rule into a no-op: the policy denies at its position instead of falling through to allow.
#[test]
fn deny_rule_naming_a_withdrawn_ip_set_fails_closed() {
    let (mut m, a) = one_pod(vec![tier("t1", &[pid("p")], &[])], &[]);
    let mut deny = rule(Action::Deny);
    deny.src_ip_set_ids = vec![IpSetId("withdrawn".into())];
    m.policies
        .insert(pid("p"), policy(vec![deny, rule(Action::Allow)], vec![]));
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Deny);
}

/// npol never sees packets cnat builds no 5-tuple for (anything but TCP, UDP, SCTP and ICMP
/// echo): the protocol guard ACL drops them before npol, so the workload IPIP drop holds.
#[test]
fn ipip_from_workload_is_dropped_by_the_protocol_guard() {
    let (m, a) = one_pod(vec![], &[]);
    let ipip = Packet::l4(4, ip(POD), 0, ip(PEER), 0);
    assert_eq!(reference::evaluate(&m, &a, Egress, &ipip).verdict, Deny);
    let c = compile(&m);
    let iface = calico_compile::InterfaceKey("calia".into());
    let got = calico_compile::evaluate_compiled(&c.desired, &iface, Egress, &ipip).unwrap();
    assert_eq!(got.verdict, Deny);
    let (v, steps) = calico_compile::explain_compiled(&c.desired, &iface, Egress, &ipip).unwrap();
    assert_eq!(v, Deny);
    assert_eq!(
        steps,
        vec![calico_compile::ExplainedStep::GuardDenied(
            calico_compile::AclKey(calico_compile::guard::GUARD_RX.into())
        )]
    );
}

/// A profile allowing everything (Kubernetes' namespace profiles do) lets GRE through on
/// Felix; the guard drops it: stricter, and reported on the allow rule.
#[test]
fn allow_all_profile_is_reported_stricter_for_gre() {
    let (mut m, a) = one_pod(vec![], &["kns.default"]);
    let allow = Rule {
        action: Some(Action::Allow),
        ..Rule::default()
    };
    m.profiles.insert(
        ProfileId("kns.default".into()),
        Profile {
            inbound_rules: vec![allow.clone()],
            outbound_rules: vec![allow],
            ..Profile::default()
        },
    );
    let gre = Packet::l4(47, ip(PEER), 0, ip(POD), 0);
    assert_eq!(reference::evaluate(&m, &a, Ingress, &gre).verdict, Allow);
    let c = compile(&m);
    let iface = calico_compile::InterfaceKey("calia".into());
    let got = calico_compile::evaluate_compiled(&c.desired, &iface, Ingress, &gre).unwrap();
    assert_eq!(got.verdict, Deny);
    let tcp = Packet::tcp(ip(PEER), 1234, ip(POD), 80);
    let got = calico_compile::evaluate_compiled(&c.desired, &iface, Ingress, &tcp).unwrap();
    assert_eq!(got.verdict, Allow);
    let notes = c.report.of(&calico_compile::Subject::Profile(ProfileId(
        "kns.default".into(),
    )));
    assert!(notes.contains(&calico_compile::Note::GuardStricter {
        direction: Ingress,
        index: 0,
        rule_id: String::new()
    }));
}

/// An allow rule that names TCP cannot match anything the guard drops: no note.
#[test]
fn tcp_allow_rule_is_not_reported_stricter() {
    let (mut m, _a) = one_pod(vec![], &["kns.default"]);
    let allow = Rule {
        action: Some(Action::Allow),
        protocol: Some(6),
        ..Rule::default()
    };
    m.profiles.insert(
        ProfileId("kns.default".into()),
        Profile {
            inbound_rules: vec![allow.clone()],
            outbound_rules: vec![allow],
            ..Profile::default()
        },
    );
    let c = compile(&m);
    assert!(c
        .report
        .of(&calico_compile::Subject::Profile(ProfileId(
            "kns.default".into()
        )))
        .is_empty());
}

#[test]
fn service_ip_port_sets_are_anded_with_the_port_group() {
    let (mut m, a) = one_pod(vec![tier("default", &[], &[pid("svc")])], &[]);
    let tuple = |addr: &str, port| IpSetMember::IpPort {
        addr: ip(addr),
        proto: 6,
        port,
    };
    m.ipsets.insert(
        IpSetId("svc".into()),
        IpSet {
            kind: IpSetKind::IpAndPort,
            members: [tuple("10.0.3.1", 80), tuple("10.0.3.1", 443)]
                .into_iter()
                .collect(),
        },
    );
    let mut r = rule(Action::Allow);
    r.protocol = Some(6);
    r.dst_ip_port_set_ids = vec![IpSetId("svc".into())];
    r.dst_ports = vec![PortRange {
        first: 443,
        last: 443,
    }];
    m.policies.insert(pid("svc"), policy(vec![], vec![r]));
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, "10.0.3.1", 443)), Allow);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, "10.0.3.1", 80)), Deny);
}

#[test]
fn two_endpoints_on_one_interface_deny_everything() {
    let (mut m, a) = one_pod(vec![], &["allow"]);
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    let mut twin = m.workload_endpoints[&a].clone();
    twin.ipv4_nets.clear();
    m.workload_endpoints.insert(wid("twin"), twin);
    let c = compile(&m);
    let got = calico_compile::evaluate_compiled(
        &c.desired,
        &calico_compile::InterfaceKey("calia".into()),
        Ingress,
        &tcp(PEER, POD, 80),
    )
    .unwrap();
    assert_eq!(got.verdict, Deny);
    assert!(c
        .report
        .all()
        .any(|n| matches!(n, calico_compile::Note::InterfaceConflict { .. })));
}

#[test]
fn explain_names_the_tier_policy_and_rule() {
    let (mut m, _a) = one_pod(vec![tier("t1", &[pid("p1")], &[])], &[]);
    m.policies
        .insert(pid("p1"), policy(vec![rule(Action::Allow)], vec![]));
    let c = compile(&m);
    let (v, steps) = calico_compile::explain_compiled(
        &c.desired,
        &calico_compile::InterfaceKey("calia".into()),
        Ingress,
        &tcp(PEER, POD, 80),
    )
    .unwrap();
    assert_eq!(v, Allow);
    match &steps[..] {
        [calico_compile::ExplainedStep::RuleMatched { policy, action, .. }] => {
            assert!(policy.0.starts_with("t:t1:in:"));
            assert_eq!(*action, npol::RuleAction::Allow);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn host_endpoints_are_reported_not_programmed() {
    let mut m = Model::default();
    m.host_endpoints.insert(
        HostEndpointId("node1-eth0".into()),
        HostEndpoint {
            name: "eth0".into(),
            profile_ids: vec![],
            tiers: vec![tier("t1", &[pid("p1")], &[])],
            untracked_tiers: vec![],
            pre_dnat_tiers: vec![tier("t1", &[pid("p2")], &[])],
            forward_tiers: vec![],
            expected_ipv4_addrs: vec![],
            expected_ipv6_addrs: vec![],
            invalid: None,
        },
    );
    let c = compile(&m);
    assert!(c.desired.interfaces.is_empty());
    assert!(c.report.all().any(|n| matches!(
        n,
        calico_compile::Note::HostEndpointNotEnforced {
            tiers: 1,
            pre_dnat_tiers: 1,
            ..
        }
    )));
}

/// `VPPGuardAllowICMPErrors=false` is refused: an error the guard dropped would already have
/// given cnat a session for the flow it quotes that skips the TX policy (a bypass reproduced on
/// a real VPP). ICMP errors, type 6 included, keep crossing the guard to npol.
#[test]
fn guard_keeps_passing_icmp_errors_even_when_asked_not_to() {
    let (m, a) = one_pod(vec![], &[]);
    let iface = calico_compile::InterfaceKey("calia".into());
    let c = compile(&m);
    for t in [3, 4, 5, 6, 11, 12] {
        let error = Packet::icmp(ip(PEER), ip(POD), t, 0, 0);
        let got = calico_compile::evaluate_compiled(&c.desired, &iface, Ingress, &error).unwrap();
        assert_eq!(
            got.verdict, Allow,
            "type {t}: errors cross the guard (cnat/npol decide)"
        );
    }
    let mut strict = m.clone();
    strict
        .felix_config
        .insert("VPPGuardAllowICMPErrors".into(), "false".into());
    let mut inc = calico_compile::Compiler::new(&m);
    let diff = inc.update(
        &strict,
        &calico_compile::ChangeSet {
            node: true,
            ..Default::default()
        },
    );
    assert!(
        diff.kinds.acls.upserted.is_empty(),
        "the guard does not change"
    );
    let unreachable = Packet::icmp(ip(PEER), ip(POD), 3, 4, 0);
    let got =
        calico_compile::evaluate_compiled(inc.desired(), &iface, Ingress, &unreachable).unwrap();
    assert_eq!(got.verdict, Allow);
    let _ = a;
}

fn allow_all_pod(addrs: &[&str], spoof: &[&str]) -> (Model, WorkloadEndpointId) {
    let mut m = Model::default();
    m.profiles
        .insert(ProfileId("allow".into()), allow_all_profile());
    let id = wid("a");
    let mut ep = workload("a", addrs, vec![], &["allow"]);
    ep.allow_spoofed_source_prefixes = spoof.iter().map(|p| p.parse().unwrap()).collect();
    m.workload_endpoints.insert(id.clone(), ep);
    (m, id)
}

#[test]
fn spoofed_source_is_dropped_on_egress_before_policy() {
    let (m, a) = allow_all_pod(&[POD, "fd00::1"], &[]);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Allow);
    assert_eq!(verdict(&m, &a, Egress, &tcp(PEER, "10.0.0.9", 80)), Deny);
    assert_eq!(
        verdict(&m, &a, Egress, &tcp("fd00::2", "fd00::9", 80)),
        Deny
    );
    let echo = Packet::icmp(ip("10.9.9.9"), ip(PEER), 8, 0, 7);
    assert_eq!(verdict(&m, &a, Egress, &echo), Deny);
    let out = reference::evaluate(&m, &a, Egress, &tcp(PEER, "10.0.0.9", 80));
    assert_eq!(out.decided_by, Decision::SpoofedSource);
    // The check comes first in the pod's RX list.
    let c = compile(&m);
    let rx = &c.desired.interfaces[&calico_compile::InterfaceKey("calia".into())]
        .config
        .rx_policies;
    assert!(rx[0]
        .0
        .starts_with(calico_compile::compiler::ANTI_SPOOF_PREFIX));
}

#[test]
fn allowed_spoofed_prefix_passes_egress() {
    let (m, a) = allow_all_pod(&[POD], &["192.168.0.0/16", "fd00:9::/64"]);
    assert_eq!(
        verdict(&m, &a, Egress, &tcp("192.168.7.7", PEER, 80)),
        Allow
    );
    assert_eq!(
        verdict(&m, &a, Egress, &tcp("fd00:9::5", "fd00::2", 80)),
        Allow
    );
    assert_eq!(verdict(&m, &a, Egress, &tcp("172.16.0.1", PEER, 80)), Deny);
    assert_eq!(
        verdict(&m, &a, Egress, &tcp("fd00:8::5", "fd00::2", 80)),
        Deny
    );
}

#[test]
fn ingress_is_not_checked_for_spoofing() {
    let (m, a) = allow_all_pod(&[POD], &[]);
    assert_eq!(verdict(&m, &a, Ingress, &tcp("172.16.0.1", POD, 80)), Allow);
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
    assert_eq!(
        verdict(&m, &a, Ingress, &tcp("fd00::2", "fd00::1", 80)),
        Allow
    );
}

#[test]
fn ipv6_from_a_pod_with_only_ipv4_nets_is_dropped() {
    let (m, a) = allow_all_pod(&[POD], &["10.1.0.0/16"]);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Allow);
    assert_eq!(
        verdict(&m, &a, Egress, &tcp("fd00::1", "fd00::2", 80)),
        Deny
    );
    assert_eq!(verdict(&m, &a, Egress, &tcp("::", "fd00::2", 80)), Deny);
    let echo6 = Packet::icmp(ip("2001:db8::1"), ip("fd00::2"), 128, 0, 7);
    assert_eq!(verdict(&m, &a, Egress, &echo6), Deny);
}

#[test]
fn ipv4_from_a_pod_with_only_ipv6_nets_is_dropped() {
    let (m, a) = allow_all_pod(&["fd00::1"], &[]);
    assert_eq!(
        verdict(&m, &a, Egress, &tcp("fd00::1", "fd00::2", 80)),
        Allow
    );
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Deny);
    assert_eq!(verdict(&m, &a, Egress, &tcp("0.0.0.0", PEER, 67)), Deny);
}

#[test]
fn link_local_ipv6_passes_only_from_a_pod_with_ipv6() {
    let echo = Packet::icmp(ip("fe80::1"), ip("fe80::2"), 128, 0, 7);
    let dhcp6 = Packet::udp(ip("fe80::1"), 546, ip("ff02::1:2"), 547);
    let (m, a) = allow_all_pod(&[POD, "fd00::1"], &[]);
    assert_eq!(verdict(&m, &a, Egress, &echo), Allow);
    assert_eq!(verdict(&m, &a, Egress, &dhcp6), Allow);
    let (m, a) = allow_all_pod(&[POD], &[]);
    assert_eq!(verdict(&m, &a, Egress, &echo), Deny);
    assert_eq!(verdict(&m, &a, Egress, &dhcp6), Deny);
}

#[test]
fn a_pod_with_no_address_sends_nothing() {
    let (m, a) = allow_all_pod(&[], &[]);
    assert_eq!(verdict(&m, &a, Egress, &tcp(POD, PEER, 80)), Deny);
    assert_eq!(
        verdict(&m, &a, Egress, &tcp("fd00::1", "fd00::2", 80)),
        Deny
    );
    assert_eq!(verdict(&m, &a, Ingress, &tcp(PEER, POD, 80)), Allow);
}
