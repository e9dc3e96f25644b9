//! The simulator over its socket: handshake, VPP's silences, ids, retvals, dumps, events,
//! npol enforcement and faults.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use ipnet::IpNet;
use vpp_bindings::gen::af_packet::{AfPacketCreateV3, AfPacketDelete};
use vpp_bindings::gen::cnat::FeatureCnatEnableDisable;
use vpp_bindings::gen::fib_types::FibPath;
use vpp_bindings::gen::interface::{
    SwInterfaceAddDelAddress, SwInterfaceDump, SwInterfaceEvent, SwInterfaceSetFlags,
    SwInterfaceTagAddDel, WantInterfaceEvents,
};
use vpp_bindings::gen::interface_types::IfStatusFlags;
use vpp_bindings::gen::ip::{IpRoute, IpRouteAddDel, IpRouteDump, IpTable, IpTableAddDel};
use vpp_bindings::gen::ip_neighbor::{
    IpNeighbor, IpNeighborAddDel, IpNeighborDump, IpNeighborFlags,
};
use vpp_bindings::gen::ip_types::{Address, AddressFamily, Prefix};
use vpp_bindings::gen::memclnt::{ControlPing, ControlPingReply, SockclntCreate};
use vpp_bindings::gen::npol::*;
use vpp_bindings::gen::vpe::ShowVersion;
use vpp_bindings::Message;
use vpp_sim::{rv, Direction, FaultAction, Packet, Verdict};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn pfx(s: &str) -> Prefix {
    Prefix::from(s.parse::<IpNet>().unwrap())
}

fn cidr_entry(is_src: bool, is_not: bool, p: &str) -> NpolRuleEntry {
    NpolRuleEntry {
        is_src,
        is_not,
        type_: NpolEntryType::NpolCidr,
        data: NpolEntryData::from_cidr(&pfx(p)).unwrap(),
    }
}
fn set_entry(is_src: bool, set_id: u32) -> NpolRuleEntry {
    NpolRuleEntry {
        is_src,
        is_not: false,
        type_: NpolEntryType::NpolIpSet,
        data: NpolEntryData::from_set_id(&NpolEntrySetId { set_id }).unwrap(),
    }
}
fn port_entry(start: u16, end: u16) -> NpolRuleEntry {
    NpolRuleEntry {
        is_src: false,
        is_not: false,
        type_: NpolEntryType::NpolPortRange,
        data: NpolEntryData::from_port_range(&NpolPortRange { start, end }).unwrap(),
    }
}
fn rule(action: NpolRuleAction, matches: Vec<NpolRuleEntry>) -> NpolRuleCreate {
    NpolRuleCreate {
        rule: NpolRule {
            action,
            matches,
            ..Default::default()
        },
    }
}
fn items(inbound: &[u32], outbound: &[u32]) -> Vec<NpolPolicyItem> {
    inbound
        .iter()
        .map(|&rule_id| NpolPolicyItem {
            is_inbound: true,
            rule_id,
        })
        .chain(outbound.iter().map(|&rule_id| NpolPolicyItem {
            is_inbound: false,
            rule_id,
        }))
        .collect()
}
fn configure(sw_if_index: u32, rx: &[u32], tx: &[u32], profiles: &[u32]) -> NpolConfigurePolicies {
    NpolConfigurePolicies {
        sw_if_index,
        num_rx_policies: rx.len() as u32,
        num_tx_policies: tx.len() as u32,
        invert_rx_tx: 0,
        policy_default_rx: NpolPolicyDefault::NpolDefaultDeny,
        policy_default_tx: NpolPolicyDefault::NpolDefaultDeny,
        profile_default_rx: NpolPolicyDefault::NpolDefaultDeny,
        profile_default_tx: NpolPolicyDefault::NpolDefaultDeny,
        policy_ids: rx.iter().chain(tx).chain(profiles).copied().collect(),
    }
}
fn af_packet(name: &str) -> AfPacketCreateV3 {
    AfPacketCreateV3 {
        host_if_name: name.into(),
        use_random_hw_addr: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn handshake_gives_a_client_index_and_vpp_message_ids() {
    let f = start().await;
    let c = Raw::connect(&f.path).await;
    assert_eq!(c.client_index, 0x8000_0001, "listener holds registration 0");
    assert_eq!(c.table.id(SockclntCreate::NAME_CRC), Some(15));
    assert_eq!(
        c.table.id_of::<NpolRuleCreate>(),
        f.sim.message_table().id_of::<NpolRuleCreate>()
    );
    assert!(c.table.id_of::<NpolConfigurePolicies>().is_some());
    let c2 = Raw::connect(&f.path).await;
    assert_eq!(c2.client_index, 0x8000_0002);
}

#[tokio::test]
async fn show_version_says_it_is_a_simulator() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let v = c.call(&ShowVersion {}).await;
    assert_eq!(v.retval, 0);
    assert_eq!(v.program, "vpp-sim");
    assert!(v.version.contains("simulator"), "{}", v.version);
    let p = c.call(&ControlPing {}).await;
    assert_eq!(p.client_index, c.client_index);
}

#[tokio::test]
async fn unknown_id_short_message_and_wrong_client_index_get_no_reply() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    // Unknown message id.
    let mut b = c.table.encode(&ControlPing {}, c.client_index, 1).unwrap();
    b[0..2].copy_from_slice(&60000u16.to_be_bytes());
    frame(&mut c.s, &b).await;
    assert!(c.silent().await);
    // Too short for its fields.
    let b = c
        .table
        .encode(&NpolIpsetDelete { set_id: 1 }, c.client_index, 2)
        .unwrap();
    frame(&mut c.s, &b[..b.len() - 2]).await;
    assert!(c.silent().await);
    // A client index nobody has.
    let b = c.table.encode(&ControlPing {}, 0x8000_0077, 3).unwrap();
    frame(&mut c.s, &b).await;
    assert!(c.silent().await);
    assert_eq!(f.sim.unknown_messages(), 1);
    // The connection still works.
    assert_eq!(c.call(&ControlPing {}).await.retval, 0);
}

#[tokio::test]
async fn longer_message_than_needed_is_accepted() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let mut b = c.table.encode(&ControlPing {}, c.client_index, 9).unwrap();
    b.extend_from_slice(&[0; 8]);
    frame(&mut c.s, &b).await;
    let _: ControlPingReply = c.recv().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let mut ctxs = Vec::new();
    for _ in 0..200 {
        ctxs.push(
            c.send(&NpolIpsetCreate {
                type_: NpolIpsetType::NpolIp,
            })
            .await,
        );
    }
    for (i, ctx) in ctxs.iter().enumerate() {
        let b = read_frame(&mut c.s, WAIT).await.unwrap();
        let (h, r) = c.table.decode::<NpolIpsetCreateReply>(&b).unwrap();
        assert_eq!(h.context, *ctx);
        assert_eq!(r.set_id, i as u32);
    }
}

#[tokio::test]
async fn npol_ids_reuse_the_most_recently_freed_slot() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    for want in 0..4 {
        let r = c.call(&rule(NpolRuleAction::NpolAllow, vec![])).await;
        assert_eq!((r.retval, r.rule_id), (0, want));
    }
    assert_eq!(c.call(&NpolRuleDelete { rule_id: 1 }).await.retval, 0);
    assert_eq!(c.call(&NpolRuleDelete { rule_id: 2 }).await.retval, 0);
    assert_eq!(
        c.call(&NpolRuleDelete { rule_id: 2 }).await.retval,
        rv::NO_SUCH_ENTRY
    );
    assert_eq!(
        c.call(&rule(NpolRuleAction::NpolAllow, vec![]))
            .await
            .rule_id,
        2
    );
    assert_eq!(
        c.call(&rule(NpolRuleAction::NpolAllow, vec![]))
            .await
            .rule_id,
        1
    );
    assert_eq!(
        c.call(&rule(NpolRuleAction::NpolAllow, vec![]))
            .await
            .rule_id,
        4
    );
}

#[tokio::test]
async fn npol_retvals_match_vpp() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let itf = c.call(&af_packet("pod1")).await.sw_if_index;
    let p = c.call(&NpolPolicyCreate { rules: vec![] }).await.policy_id;
    assert_eq!(c.call(&configure(itf, &[p + 1], &[], &[])).await.retval, 1);
    assert_eq!(
        c.call(&configure(99, &[p], &[], &[])).await.retval,
        rv::INVALID_SW_IF_INDEX
    );
    assert_eq!(c.call(&configure(itf, &[p], &[], &[])).await.retval, 0);
    // Host bits in a CIDR: IP_PREFIX_INVALID and no rule.
    let bad = c
        .call(&rule(
            NpolRuleAction::NpolAllow,
            vec![cidr_entry(true, false, "10.0.0.1/24")],
        ))
        .await;
    assert_eq!((bad.retval, bad.rule_id), (rv::IP_PREFIX_INVALID, u32::MAX));
    // Members of a set that does not exist.
    let r = c
        .call(&NpolIpsetAddDelMembers {
            set_id: 42,
            is_add: true,
            members: vec![],
        })
        .await;
    assert_eq!(r.retval, rv::NO_SUCH_ENTRY);
    // Deleting a policy still in use succeeds (the reference dangles).
    assert_eq!(c.call(&NpolPolicyDelete { policy_id: p }).await.retval, 0);
    assert_eq!(
        c.call(&NpolPolicyDelete { policy_id: p }).await.retval,
        rv::NO_SUCH_ENTRY
    );
}

#[tokio::test]
async fn updating_an_unknown_rule_creates_one() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let r = c
        .call(&NpolRuleUpdate {
            rule_id: 7,
            rule: NpolRule::default(),
        })
        .await;
    assert_eq!(r.retval, 0);
    assert!(f.sim.with_state(|s| s.npol.rules.contains(0)));
}

#[tokio::test]
async fn programmed_policy_is_enforced_only_with_cnat() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let itf = c.call(&af_packet("pod1")).await.sw_if_index;
    let set = c
        .call(&NpolIpsetCreate {
            type_: NpolIpsetType::NpolIp,
        })
        .await
        .set_id;
    let member = NpolIpsetMember {
        val: NpolIpsetMemberVal::from_address(&Address::from(ip("10.1.0.5"))).unwrap(),
    };
    let r = c
        .call(&NpolIpsetAddDelMembers {
            set_id: set,
            is_add: true,
            members: vec![member],
        })
        .await;
    assert_eq!(r.retval, 0);
    let allow = c
        .call(&rule(
            NpolRuleAction::NpolAllow,
            vec![set_entry(true, set), port_entry(80, 80)],
        ))
        .await
        .rule_id;
    let pol = c
        .call(&NpolPolicyCreate {
            rules: items(&[allow], &[]),
        })
        .await
        .policy_id;
    assert_eq!(c.call(&configure(itf, &[pol], &[], &[])).await.retval, 0);

    let ok = Packet::tcp(ip("10.1.0.5"), 4000, ip("10.2.0.1"), 80);
    let bad = Packet::tcp(ip("10.1.0.6"), 4000, ip("10.2.0.1"), 80);
    assert_eq!(
        f.sim.evaluate(itf, Direction::Rx, &bad),
        Verdict::Allow,
        "no cnat: not enforced"
    );
    let r = c
        .call(&FeatureCnatEnableDisable {
            sw_if_index: itf,
            enable_disable: true,
        })
        .await;
    assert_eq!(r.retval, 0);
    assert_eq!(f.sim.evaluate(itf, Direction::Rx, &ok), Verdict::Allow);
    assert_eq!(f.sim.evaluate(itf, Direction::Rx, &bad), Verdict::Deny);
    assert!(f.sim.dump_text().contains("npol:"));
    assert!(f.sim.dump_json()["npol"]["rules"].is_object());
}

#[tokio::test]
async fn interfaces_are_created_tagged_addressed_dumped_and_announced() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let mut watcher = Raw::connect(&f.path).await;
    let r = watcher
        .call(&WantInterfaceEvents {
            enable_disable: 1,
            pid: 77,
        })
        .await;
    assert_eq!(r.retval, 0);
    let sub = WantInterfaceEvents {
        enable_disable: 1,
        pid: 77,
    };
    assert_eq!(watcher.call(&sub).await.retval, rv::INVALID_REGISTRATION);

    let a = c.call(&af_packet("eth1")).await;
    assert_eq!((a.retval, a.sw_if_index), (0, 1));
    let dup = c.call(&af_packet("eth1")).await;
    assert_eq!(dup.retval, rv::IF_ALREADY_EXISTS);
    let ev: SwInterfaceEvent = watcher.recv().await;
    assert_eq!(
        (ev.sw_if_index, ev.flags, ev.deleted, ev.pid),
        (1, IfStatusFlags(0), false, 77)
    );

    let up = IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP;
    assert_eq!(
        c.call(&SwInterfaceSetFlags {
            sw_if_index: 1,
            flags: up
        })
        .await
        .retval,
        0
    );
    assert_eq!(
        c.call(&SwInterfaceSetFlags {
            sw_if_index: 9,
            flags: up
        })
        .await
        .retval,
        rv::INVALID_SW_IF_INDEX
    );
    let ev: SwInterfaceEvent = watcher.recv().await;
    assert_eq!((ev.sw_if_index, ev.flags.0), (1, 3));

    let tag = SwInterfaceTagAddDel {
        is_add: true,
        sw_if_index: 1,
        tag: "cali123".into(),
    };
    assert_eq!(c.call(&tag).await.retval, 0);
    let addr = SwInterfaceAddDelAddress {
        sw_if_index: 1,
        is_add: true,
        del_all: false,
        prefix: pfx("10.0.0.1/24"),
    };
    assert_eq!(c.call(&addr).await.retval, 0);
    assert_eq!(c.call(&addr).await.retval, rv::ADDRESS_IN_USE);
    let del = SwInterfaceAddDelAddress {
        is_add: false,
        prefix: pfx("10.0.0.2/24"),
        ..addr
    };
    assert_eq!(
        c.call(&del).await.retval,
        rv::ADDRESS_NOT_FOUND_FOR_INTERFACE
    );

    let all = c
        .dump(&SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..Default::default()
        })
        .await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].interface_name, "local0");
    let d = &all[1];
    assert_eq!(
        (d.interface_name.as_str(), d.tag.as_str(), d.flags.0),
        ("host-eth1", "cali123", 3)
    );

    assert_eq!(
        c.call(&AfPacketDelete {
            host_if_name: "eth1".into()
        })
        .await
        .retval,
        0
    );
    let ev: SwInterfaceEvent = watcher.recv().await;
    assert!(ev.deleted);
    let again = c.call(&af_packet("eth2")).await;
    assert_eq!(again.sw_if_index, 1, "sw_if_index reused");
}

#[tokio::test]
async fn routes_tables_and_neighbors() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let itf = c.call(&af_packet("eth1")).await.sw_if_index;
    let path = FibPath {
        sw_if_index: itf,
        ..Default::default()
    };
    let route = |table_id, p: &str| IpRoute {
        table_id,
        prefix: pfx(p),
        paths: vec![path],
        ..Default::default()
    };
    let add = IpRouteAddDel {
        is_add: true,
        is_multipath: false,
        route: route(0, "10.9.0.0/16"),
    };
    assert_eq!(c.call(&add).await.retval, 0);
    let other = IpRouteAddDel {
        is_add: true,
        is_multipath: false,
        route: route(7, "10.9.0.0/16"),
    };
    assert_eq!(c.call(&other).await.retval, rv::NO_SUCH_FIB);
    let t = IpTableAddDel {
        is_add: true,
        table: IpTable {
            table_id: 7,
            is_ip6: false,
            name: String::new(),
        },
    };
    assert_eq!(c.call(&t).await.retval, 0);
    assert_eq!(c.call(&other).await.retval, 0);
    let routes = c
        .dump(&IpRouteDump {
            table: IpTable {
                table_id: 0,
                ..Default::default()
            },
        })
        .await;
    assert_eq!(routes.len(), 1);
    assert_eq!(
        IpNet::try_from(routes[0].route.prefix).unwrap(),
        "10.9.0.0/16".parse::<IpNet>().unwrap()
    );
    assert_eq!(routes[0].route.paths[0].sw_if_index, itf);

    let n = IpNeighbor {
        sw_if_index: itf,
        flags: IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC,
        mac_address: [2, 0, 0, 0, 0, 1].into(),
        ip_address: Address::from(ip("10.9.0.5")),
    };
    assert_eq!(
        c.call(&IpNeighborAddDel {
            is_add: true,
            neighbor: n
        })
        .await
        .retval,
        0
    );
    let bad = IpNeighbor {
        sw_if_index: 50,
        ..n
    };
    assert_eq!(
        c.call(&IpNeighborAddDel {
            is_add: true,
            neighbor: bad
        })
        .await
        .retval,
        rv::INVALID_SW_IF_INDEX
    );
    let ns = c
        .dump(&IpNeighborDump {
            sw_if_index: u32::MAX,
            af: AddressFamily::AddressIp4,
        })
        .await;
    assert_eq!(ns.len(), 1);
    assert_eq!(ns[0].neighbor.mac_address.0, [2, 0, 0, 0, 0, 1]);
}

#[tokio::test]
async fn nth_call_fails_with_the_injected_retval_and_is_not_applied() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    f.sim.fail_nth("npol_rule_create", 2, -2);
    assert_eq!(
        c.call(&rule(NpolRuleAction::NpolAllow, vec![]))
            .await
            .retval,
        0
    );
    let failed = c.call(&rule(NpolRuleAction::NpolAllow, vec![])).await;
    assert_eq!(failed.retval, -2);
    let next = c.call(&rule(NpolRuleAction::NpolAllow, vec![])).await;
    assert_eq!((next.retval, next.rule_id), (0, 1));
    assert_eq!(f.sim.calls("npol_rule_create"), 3);
}

#[tokio::test]
async fn silence_fault_drops_one_reply() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    f.sim.inject("control_ping", 1, FaultAction::Silence);
    c.send(&ControlPing {}).await;
    assert!(c.silent().await);
    assert_eq!(c.call(&ControlPing {}).await.retval, 0);
}

#[tokio::test]
async fn drop_connections_closes_sockets_and_keeps_state() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    c.call(&NpolIpsetCreate {
        type_: NpolIpsetType::NpolNet,
    })
    .await;
    f.sim.drop_connections();
    assert!(read_frame(&mut c.s, WAIT).await.is_none(), "EOF");
    let mut c = Raw::connect(&f.path).await;
    let r = c
        .call(&NpolIpsetCreate {
            type_: NpolIpsetType::NpolNet,
        })
        .await;
    assert_eq!(r.set_id, 1);
}

#[tokio::test]
async fn restart_empty_closes_sockets_and_forgets_everything() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    c.call(&af_packet("eth1")).await;
    c.call(&NpolIpsetCreate {
        type_: NpolIpsetType::NpolNet,
    })
    .await;
    f.sim.restart_empty();
    assert!(read_frame(&mut c.s, WAIT).await.is_none(), "EOF");
    let mut c = Raw::connect(&f.path).await;
    assert_eq!(c.client_index, 0x8000_0001);
    assert_eq!(
        c.call(&NpolIpsetCreate {
            type_: NpolIpsetType::NpolNet
        })
        .await
        .set_id,
        0
    );
    let all = c
        .dump(&SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..Default::default()
        })
        .await;
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn disconnect_fault_closes_the_connection() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    f.sim
        .inject("npol_ipset_create", 1, FaultAction::Disconnect);
    c.send(&NpolIpsetCreate {
        type_: NpolIpsetType::NpolIp,
    })
    .await;
    assert!(read_frame(&mut c.s, WAIT).await.is_none());
    assert!(f.sim.with_state(|s| s.npol.ipsets.is_empty()));
}

#[tokio::test]
async fn reply_delay_is_applied() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    f.sim.set_reply_delay(Some(Duration::from_millis(300)));
    let t = Instant::now();
    c.call(&ControlPing {}).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn write_calls_count_only_state_changes() {
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    c.call(&ShowVersion {}).await;
    c.call(&ControlPing {}).await;
    c.call(&WantInterfaceEvents {
        enable_disable: 1,
        pid: 1,
    })
    .await;
    c.dump(&SwInterfaceDump {
        sw_if_index: u32::MAX,
        ..Default::default()
    })
    .await;
    assert_eq!(f.sim.write_calls(), 0);
    c.call(&NpolIpsetCreate {
        type_: NpolIpsetType::NpolIp,
    })
    .await;
    c.call(&NpolIpsetDelete { set_id: 5 }).await;
    assert_eq!(f.sim.write_calls(), 2);
    assert_eq!(f.sim.calls("control_ping"), 2);
    f.sim.reset_counters();
    assert_eq!(f.sim.write_calls(), 0);
}

#[tokio::test]
async fn sockclnt_delete_answers_and_closes() {
    use vpp_bindings::gen::memclnt::{SockclntDelete, SockclntDeleteReply};
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let r: SockclntDeleteReply = c
        .call(&SockclntDelete {
            index: c.client_index,
        })
        .await;
    assert_eq!(r.response, 1);
    assert!(read_frame(&mut c.s, WAIT).await.is_none());
}

#[tokio::test]
async fn acl_messages_store_apply_dump_and_enforce_like_the_acl_plugin() {
    use vpp_bindings::gen::acl::*;
    use vpp_bindings::gen::acl_types::{AclAction, AclRule};
    use vpp_bindings::gen::ip_types::IpProto;
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let itf = c.call(&af_packet("pod1")).await.sw_if_index;
    let tcp_only = AclRule {
        is_permit: AclAction::AclActionApiPermit,
        src_prefix: pfx("0.0.0.0/0"),
        dst_prefix: pfx("0.0.0.0/0"),
        proto: IpProto::IpApiProtoTcp,
        srcport_or_icmptype_first: 0,
        srcport_or_icmptype_last: 65535,
        dstport_or_icmpcode_first: 0,
        dstport_or_icmpcode_last: 65535,
        ..AclRule::default()
    };
    let add = |index: u32, r: Vec<AclRule>| AclAddReplace {
        acl_index: index,
        tag: "guard".into(),
        r,
    };
    let r = c.call(&add(u32::MAX, vec![tcp_only])).await;
    assert_eq!((r.retval, r.acl_index), (0, 0));
    assert_eq!(c.call(&add(7, vec![])).await.retval, rv::NO_SUCH_ENTRY);
    let mut backwards = tcp_only;
    backwards.srcport_or_icmptype_first = 9;
    backwards.srcport_or_icmptype_last = 1;
    assert_eq!(c.call(&add(u32::MAX, vec![backwards])).await.retval, -8);
    let set = |acls: Vec<u32>, n_input| AclInterfaceSetAclList {
        sw_if_index: itf,
        n_input,
        acls,
    };
    assert_eq!(c.call(&set(vec![0, 5], 1)).await.retval, rv::NO_SUCH_ENTRY);
    assert_eq!(c.call(&set(vec![0, 0], 1)).await.retval, 0);
    assert_eq!(c.call(&AclDel { acl_index: 0 }).await.retval, -142);
    let dumped = c
        .dump(&AclDump {
            acl_index: u32::MAX,
        })
        .await;
    assert_eq!(dumped.len(), 1);
    assert_eq!((dumped[0].tag.as_str(), dumped[0].r.len()), ("guard", 1));
    let lists = c
        .dump(&AclInterfaceListDump {
            sw_if_index: u32::MAX,
        })
        .await;
    assert_eq!((lists[0].n_input, lists[0].acls.clone()), (1, vec![0, 0]));
    let gre = Packet::l4(47, ip("10.0.0.1"), 0, ip("10.0.0.2"), 0);
    let tcp = Packet::tcp(ip("10.0.0.1"), 1, ip("10.0.0.2"), 80);
    assert_eq!(f.sim.evaluate(itf, Direction::Rx, &gre), Verdict::Deny);
    assert_eq!(f.sim.evaluate(itf, Direction::Tx, &gre), Verdict::Deny);
    assert_eq!(f.sim.evaluate(itf, Direction::Rx, &tcp), Verdict::Allow);
    assert_eq!(c.call(&set(vec![], 0)).await.retval, 0);
    assert_eq!(f.sim.evaluate(itf, Direction::Rx, &gre), Verdict::Allow);
    assert_eq!(c.call(&AclDel { acl_index: 0 }).await.retval, 0);
}

#[tokio::test]
async fn tun_flag_makes_a_tun_with_a_zero_l2_address_and_a_tap_keeps_its_mac() {
    use vpp_bindings::gen::ethernet_types::MacAddress;
    use vpp_bindings::gen::interface_types::IfType;
    use vpp_bindings::gen::tapv2::{TapCreateV3, TapFlags};
    let f = start().await;
    let mut c = Raw::connect(&f.path).await;
    let mac = [2, 0xfe, 0, 0, 0, 9];
    let tap = c
        .call(&TapCreateV3 {
            use_random_mac: false,
            mac_address: MacAddress(mac),
            tag: "cali-tap".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(tap.retval, 0);
    let tun = c
        .call(&TapCreateV3 {
            use_random_mac: false,
            mac_address: MacAddress(mac),
            tap_flags: TapFlags::TAP_API_FLAG_TUN,
            tag: "cali-tun".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(tun.retval, 0);
    let all = c
        .dump(&SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..Default::default()
        })
        .await;
    let seen: Vec<_> = all
        .iter()
        .skip(1)
        .map(|d| {
            (
                d.interface_name.as_str(),
                d.interface_dev_type.as_str(),
                d.l2_address.0,
                d.type_,
                d.sup_sw_if_index == d.sw_if_index,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("tap0", "tap", mac, IfType::IfApiTypeHardware, true),
            ("tun1", "tap", [0; 6], IfType::IfApiTypeHardware, true),
        ]
    );
}
