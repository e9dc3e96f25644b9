//! Table tests for the simulated objects: ids, retvals and VPP's quirks.

use std::net::IpAddr;

use npol::{Direction, Packet, PolicyDefault, Verdict};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn path(sw_if_index: u32) -> Path {
    Path::new(sw_if_index, None)
}
fn cfg(rx: &[u32]) -> InterfaceConfig<u32> {
    InterfaceConfig {
        rx_policies: rx.to_vec(),
        tx_policies: vec![],
        profiles: vec![],
        invert_rx_tx: false,
        policy_default_rx: PolicyDefault::Allow,
        policy_default_tx: PolicyDefault::Allow,
        profile_default_rx: PolicyDefault::Deny,
        profile_default_tx: PolicyDefault::Deny,
    }
}

#[test]
fn fresh_state_has_local0_and_default_tables() {
    let s = SimState::new();
    assert_eq!(s.interface(0).map(|i| i.name.as_str()), Some("local0"));
    assert_eq!(s.tables.len(), 2);
}

#[test]
fn interface_names_follow_vpp() {
    let mut s = SimState::new();
    let a = s.create_af_packet("eth0", None).unwrap();
    let t = s.create_tap(NONE, None, None, "").unwrap();
    let t5 = s.create_tap(5, None, None, "").unwrap();
    let l = s.create_loopback([0; 6], None).unwrap();
    let names: Vec<_> = [a, t, t5, l]
        .iter()
        .map(|i| s.interface(*i).unwrap().name.clone())
        .collect();
    assert_eq!(names, ["host-eth0", "tap0", "tap5", "loop0"]);
    assert_eq!(s.create_tap(5, None, None, ""), Err(rv::INVALID_INTERFACE));
    assert_eq!(
        s.create_loopback([0; 6], Some(0)),
        Err(rv::INVALID_REGISTRATION)
    );
}

#[test]
fn tun_taps_are_named_tun_share_the_tap_ids_and_have_no_mac() {
    let mut s = SimState::new();
    let tap = s
        .create_tap(NONE, Some([2, 0, 0, 0, 0, 7]), None, "")
        .unwrap();
    let tun = s.create_tun(NONE, Some("pod-eth0"), "cali-a").unwrap();
    let tun = s.interface(tun).unwrap();
    assert_eq!((tun.name.as_str(), tun.tag.as_str()), ("tun1", "cali-a"));
    assert_eq!(tun.mac_bytes, [0; 6]);
    assert!(tun.kind.is_p2p());
    let tap = s.interface(tap).unwrap();
    assert_eq!(tap.mac_bytes, [2, 0, 0, 0, 0, 7]);
    assert!(!tap.kind.is_p2p());
    assert_eq!(s.create_tun(0, None, ""), Err(rv::INVALID_INTERFACE));
    assert_eq!(s.create_tap(1, None, None, ""), Err(rv::INVALID_INTERFACE));
}

#[test]
fn tunnels_need_their_table_and_are_unique() {
    let mut s = SimState::new();
    let t = s
        .add_ipip(NONE, ip("192.168.0.1"), ip("192.168.0.2"), 0)
        .unwrap();
    assert_eq!(s.interface(t).unwrap().name, "ipip0");
    assert_eq!(
        s.add_ipip(NONE, ip("192.168.0.1"), ip("192.168.0.2"), 0),
        Err(rv::IF_ALREADY_EXISTS)
    );
    assert_eq!(
        s.add_ipip(NONE, ip("192.168.0.1"), ip("192.168.0.3"), 9),
        Err(rv::NO_SUCH_FIB)
    );
    assert_eq!(s.del_ipip(t), rv::OK);
    assert_eq!(s.del_ipip(t), rv::NO_SUCH_ENTRY);
    let (src, dst) = (ip("192.168.0.1"), ip("192.168.0.9"));
    let v = s
        .add_del_vxlan(true, NONE, src, dst, 4789, 4789, 10, 0, false)
        .unwrap();
    assert_eq!(s.interface(v).unwrap().name, "vxlan_tunnel0");
    assert_eq!(
        s.add_del_vxlan(true, NONE, src, dst, 4789, 4789, 10, 0, false),
        Err(rv::TUNNEL_EXIST)
    );
    assert_eq!(
        s.add_del_vxlan(false, NONE, src, dst, 4789, 4789, 10, 0, false),
        Ok(v)
    );
    assert_eq!(
        s.add_del_vxlan(false, NONE, src, dst, 4789, 4789, 10, 0, false),
        Err(rv::NO_SUCH_ENTRY)
    );
}

#[test]
fn overlapping_subnets_on_two_interfaces_of_one_table_are_refused() {
    let mut s = SimState::new();
    let a = s.create_af_packet("a", None).unwrap();
    let b = s.create_af_packet("b", None).unwrap();
    assert_eq!(
        s.add_del_address(a, true, false, net("10.0.0.1/24")),
        rv::OK
    );
    assert_eq!(
        s.add_del_address(a, true, false, net("10.0.0.2/24")),
        rv::OK,
        "same prefix, same interface"
    );
    assert_eq!(
        s.add_del_address(b, true, false, net("10.0.0.3/24")),
        rv::ADDRESS_IN_USE
    );
    assert_eq!(
        s.table_add_del(
            true,
            TableKey {
                table_id: 5,
                is_ip6: false
            },
            ""
        ),
        rv::OK
    );
    assert_eq!(s.set_table(b, false, 5), rv::OK);
    assert_eq!(
        s.add_del_address(b, true, false, net("10.0.0.3/24")),
        rv::OK,
        "other table"
    );
    assert_eq!(s.set_table(b, false, 0), rv::ADDRESS_FOUND_FOR_INTERFACE);
    assert_eq!(s.set_table(b, false, 77), rv::NO_SUCH_FIB);
    assert_eq!(
        s.add_del_address(b, false, true, net("0.0.0.0/0")),
        rv::OK,
        "del_all"
    );
    assert!(s.interface(b).unwrap().addresses.is_empty());
}

#[test]
fn route_paths_must_name_an_existing_interface_or_table() {
    let mut s = SimState::new();
    let p = net("10.9.0.0/16");
    assert_eq!(
        s.route_add_del(true, false, 0, p, vec![path(7)]),
        rv::NO_MATCHING_INTERFACE
    );
    let via_table = Path {
        sw_if_index: NONE,
        table_id: 3,
        ..path(0)
    };
    assert_eq!(
        s.route_add_del(true, false, 0, p, vec![via_table.clone()]),
        rv::NO_SUCH_FIB
    );
    s.table_add_del(
        true,
        TableKey {
            table_id: 3,
            is_ip6: false,
        },
        "",
    );
    assert_eq!(s.route_add_del(true, false, 0, p, vec![via_table]), rv::OK);
}

#[test]
fn routes_replace_add_and_remove_paths() {
    let mut s = SimState::new();
    for name in ["a", "b", "c"] {
        s.create_af_packet(name, None).unwrap();
    }
    let p = net("10.9.0.0/16");
    assert_eq!(s.route_add_del(true, false, 0, p, vec![path(1)]), rv::OK);
    assert_eq!(s.route_add_del(true, true, 0, p, vec![path(2)]), rv::OK);
    assert_eq!(
        s.tables[&TableKey {
            table_id: 0,
            is_ip6: false
        }]
            .routes[&p]
            .len(),
        2
    );
    assert_eq!(s.route_add_del(true, false, 0, p, vec![path(3)]), rv::OK);
    assert_eq!(
        s.tables[&TableKey {
            table_id: 0,
            is_ip6: false
        }]
            .routes[&p],
        vec![path(3)]
    );
    assert_eq!(s.route_add_del(false, true, 0, p, vec![path(3)]), rv::OK);
    assert!(s.tables[&TableKey {
        table_id: 0,
        is_ip6: false
    }]
        .routes
        .is_empty());
    assert_eq!(
        s.route_add_del(false, false, 0, p, vec![]),
        rv::OK,
        "absent entry"
    );
    assert_eq!(
        s.route_add_del(true, false, 0, p, vec![]),
        rv::NO_PATHS_IN_ROUTE
    );
}

#[test]
fn cnat_translation_update_keeps_the_id_of_the_same_vip() {
    let mut s = SimState::new();
    let ep = |a: &str, port| Endpoint {
        addr: ip(a),
        sw_if_index: NONE,
        if_af: 0,
        port,
    };
    let t = |backend: &str| Translation {
        vip: ep("10.96.0.1", 443),
        proto: 6,
        is_real_ip: 0,
        flags: 0,
        lb_type: 0,
        flow_hash_config: 0,
        paths: vec![TranslationPath {
            src: ep("0.0.0.0", 0),
            dst: ep(backend, 6443),
            flags: 0,
        }],
    };
    let id = s.cnat_translation_update(t("10.0.0.1"));
    assert_eq!(s.cnat_translation_update(t("10.0.0.2")), id);
    assert_eq!(
        s.cnat.translations.get(id).unwrap().paths[0].dst.addr,
        ip("10.0.0.2")
    );
    assert_eq!(
        s.cnat.translations.get(id).unwrap().flags & 0x10,
        0x10,
        "exclusive"
    );
    assert_eq!(s.cnat_session_purge(), rv::OK);
    assert!(
        s.cnat.translations.is_empty(),
        "QUIRK: purge deletes translations"
    );
    assert_eq!(s.cnat_translation_del(id), rv::NO_SUCH_ENTRY);
}

#[test]
fn snat_policy_needs_snat_addresses_first() {
    let mut s = SimState::new();
    assert_eq!(s.cnat_set_snat_policy(2), rv::FEATURE_DISABLED);
    assert_eq!(
        s.cnat_snat_exclude(true, net("10.0.0.0/8")),
        rv::FEATURE_DISABLED
    );
    assert_eq!(s.cnat_set_snat(Some(ip("192.168.1.1")), None, NONE), rv::OK);
    assert_eq!(s.cnat_set_snat_policy(2), rv::OK);
    // An exclusion is a set member: a second add changes nothing, one delete removes it,
    // and deleting what is not there succeeds.
    assert_eq!(s.cnat_snat_exclude(true, net("10.0.0.0/8")), rv::OK);
    assert_eq!(s.cnat_snat_exclude(true, net("10.0.0.0/8")), rv::OK);
    let excluded = |s: &SimState| s.cnat.snat.as_ref().unwrap().exclude.clone();
    assert!(excluded(&s).contains(&net("10.0.0.0/8")));
    assert_eq!(s.cnat_snat_exclude(false, net("10.0.0.0/8")), rv::OK);
    assert!(excluded(&s).is_empty());
    assert_eq!(s.cnat_snat_exclude(false, net("10.0.0.0/8")), rv::OK);
}

#[test]
fn ip_and_port_member_delete_keeps_only_same_port_other_addresses() {
    let mut s = SimState::new();
    let set = s.npol_ipset_create(IpSetType::IpAndPort);
    let m = |a: &str, port| npol::IpSetMember::IpAndPort {
        addr: ip(a),
        proto: 6,
        port,
    };
    assert_eq!(
        s.npol_ipset_add_del(
            set,
            true,
            vec![Ok(m("10.0.0.1", 80)), Ok(m("10.0.0.2", 443))]
        ),
        0
    );
    assert_eq!(
        s.npol_ipset_add_del(set, false, vec![Ok(m("10.0.0.1", 80))]),
        0
    );
    assert!(
        s.npol.ipsets.get(set).unwrap().members.is_empty(),
        "QUIRK: both members gone"
    );
}

#[test]
fn member_errors_stop_the_batch_but_keep_earlier_members() {
    let mut s = SimState::new();
    let set = s.npol_ipset_create(IpSetType::Ip);
    let m = |a: &str| Ok(npol::IpSetMember::Ip(ip(a)));
    let r = s.npol_ipset_add_del(
        set,
        true,
        vec![m("10.0.0.1"), Err(rv::IP_PREFIX_INVALID), m("10.0.0.2")],
    );
    assert_eq!(r, rv::IP_PREFIX_INVALID);
    assert_eq!(s.npol.ipsets.get(set).unwrap().members.len(), 1);
}

#[test]
fn policy_naming_a_deleted_rule_matches_everything_with_its_old_action() {
    let mut s = SimState::new();
    let itf = s.create_af_packet("pod", None).unwrap();
    s.cnat_enable(itf, true);
    let deny_ssh = npol::Rule {
        action: npol::RuleAction::Deny,
        filters: [npol::Filter::NONE; 3],
        entries: vec![npol::Entry {
            is_src: false,
            is_not: false,
            data: npol::EntryData::PortRange { start: 22, end: 22 },
        }],
    };
    let r = s.npol_rule_put(None, deny_ssh);
    let p = s.npol_policy_put(
        None,
        npol::Policy {
            inbound: vec![r],
            outbound: vec![],
        },
    );
    assert_eq!(s.npol_configure(itf, cfg(&[p])), rv::OK);
    let web = Packet::tcp(ip("10.0.0.1"), 999, ip("10.0.0.2"), 80);
    assert_eq!(s.evaluate(itf, Direction::Rx, &web), Verdict::Allow);
    assert_eq!(s.npol_rule_delete(r), rv::OK);
    assert_eq!(
        s.evaluate(itf, Direction::Rx, &web),
        Verdict::Deny,
        "QUIRK: dangling rule"
    );
    // Reusing the slot replaces what the policy sees.
    let allow = npol::Rule {
        action: npol::RuleAction::Allow,
        filters: [npol::Filter::NONE; 3],
        entries: vec![],
    };
    assert_eq!(s.npol_rule_put(None, allow), r);
    assert_eq!(s.evaluate(itf, Direction::Rx, &web), Verdict::Allow);
}

#[test]
fn configure_with_a_deleted_policy_is_refused_and_keeps_the_old_config() {
    let mut s = SimState::new();
    let itf = s.create_af_packet("pod", None).unwrap();
    let p = s.npol_policy_put(
        None,
        npol::Policy {
            inbound: vec![],
            outbound: vec![],
        },
    );
    assert_eq!(s.npol_configure(itf, cfg(&[p])), rv::OK);
    assert_eq!(s.npol_policy_delete(p), rv::OK);
    assert_eq!(s.npol_configure(itf, cfg(&[p])), 1);
    assert_eq!(
        s.npol.interfaces[&itf].rx_policies,
        vec![p],
        "dangling reference kept"
    );
}

#[test]
fn state_serializes_to_json() {
    let mut s = SimState::new();
    s.neighbor_add_del(true, 0, ip("10.0.0.1"), [2, 0, 0, 0, 0, 1], 1);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["interfaces"]["0"]["name"], "local0");
    assert!(v["neighbors"].is_array());
    assert!(s.render_text().contains("local0"));
}

#[test]
fn a_service_frontend_sends_each_flow_to_one_of_its_backends() {
    let mut s = SimState::new();
    let ep = |a: &str, port| Endpoint {
        addr: a.parse().unwrap(),
        sw_if_index: u32::MAX,
        if_af: 0,
        port,
    };
    let backends = ["10.70.0.2", "10.70.0.3", "10.70.0.4"];
    s.cnat_translation_update(Translation {
        vip: ep("10.96.0.10", 80),
        proto: 6,
        is_real_ip: 0,
        flags: 0,
        lb_type: 0,
        flow_hash_config: 0,
        paths: backends
            .iter()
            .map(|b| TranslationPath {
                src: ep("0.0.0.0", 0),
                dst: ep(b, 8080),
                flags: 0,
            })
            .collect(),
    });
    let client: IpAddr = "10.70.1.2".parse().unwrap();
    let vip: IpAddr = "10.96.0.10".parse().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for sport in 1000..1300 {
        let (b, p) = s.service_backend(6, client, sport, vip, 80).unwrap();
        assert_eq!(p, 8080);
        seen.insert(b);
        // The same flow always goes to the same backend.
        assert_eq!(s.service_backend(6, client, sport, vip, 80), Some((b, p)));
    }
    assert_eq!(seen.len(), 3, "flows spread over every backend");
    assert_eq!(
        s.service_backend(17, client, 1000, vip, 80),
        None,
        "UDP is another frontend"
    );
    assert_eq!(s.service_backend(6, client, 1000, vip, 81), None);
}
