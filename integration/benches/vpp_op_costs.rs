//! What each kind of write the reconciler sends costs a real VPP, per message, when 500 of
//! them go in one pipelined batch (one per interface, as a full pass sends them): the
//! breakdown behind the cluster-scale pass.
//!
//! Run (root not needed): `CALICO_VPP_TEST_VPP_PREFIX=<unpacked VPP> cargo bench -p
//! integration --bench vpp_op_costs`.

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use calico_model::MacAddr;
use calico_vpp_driver::dataplane::vpp::{VppConfig, VppDataplane};
use calico_vpp_driver::dataplane::{
    AclIndex, AclRule, Dataplane, IpSetId, Op, OpReply, PolicyId, RoutePath, RuleId, SwIfIndex,
};
use common::realvpp::{block_on, VppInstance, PREFIX_ENV};

const N: u32 = 500;

fn created(r: &calico_vpp_driver::dataplane::OpResult) -> u32 {
    match r {
        Ok(OpReply::Created(id)) => *id,
        other => panic!("expected a created id, got {other:?}"),
    }
}

fn report(what: &str, n: usize, el: Duration) {
    println!(
        "  {what:<46} {n:>5} msgs {:>8.1} ms {:>7.1} µs/msg",
        el.as_secs_f64() * 1e3,
        el.as_secs_f64() * 1e6 / n as f64
    );
}

async fn timed(dp: &mut VppDataplane, what: &str, ops: Vec<Op>) -> Vec<u32> {
    let n = ops.len();
    let t = Instant::now();
    let res = dp.execute(ops).await.expect("batch");
    let el = t.elapsed();
    let failed = res.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "{what}: {:?}", res.iter().find(|r| r.is_err()));
    report(what, n, el);
    res.iter()
        .map(|r| match r {
            Ok(OpReply::Created(id)) => *id,
            _ => 0,
        })
        .collect()
}

fn main() {
    if std::env::var_os(PREFIX_ENV).is_none() {
        println!("vpp_op_costs: skipped, {PREFIX_ENV} is not set");
        return;
    }
    let vpp = VppInstance::start();
    let mut dp = VppDataplane::new(VppConfig {
        socket: vpp.socket(),
        request_timeout: Duration::from_secs(30),
        ..VppConfig::default()
    });
    block_on(async {
        dp.connect().await.expect("connect");
        let ifs: Vec<u32> = {
            let client = vpp.client().await.expect("client");
            let mut b = client.batch();
            let hs: Vec<_> = (0..N)
                .map(|i| {
                    let x = i.to_be_bytes();
                    b.push(&vpp_bindings::gen::interface::CreateLoopback {
                        mac_address: vpp_bindings::gen::ethernet_types::MacAddress([
                            0x02, 0xfe, 0x10, x[1], x[2], x[3],
                        ]),
                    })
                    .expect("push")
                })
                .collect();
            let r = b.send().await.expect("loopbacks");
            hs.iter()
                .map(|h| r.get(h).expect("reply").sw_if_index)
                .collect()
        };
        println!("vpp_op_costs: {N} loopbacks; one pipelined batch per line");
        let sw = |i: usize| SwIfIndex(ifs[i]);
        timed(
            &mut dp,
            "sw_interface_set_flags (up)",
            (0..ifs.len())
                .map(|i| Op::SetAdminUp {
                    sw_if_index: sw(i),
                    up: true,
                })
                .collect(),
        )
        .await;
        // A neighbour entry makes the interface's first adjacency: VPP then adds the
        // interface's output node as a next node of ip4-rewrite and its siblings
        // (`vlib_node_add_next_with_slot`, half of VPP's time here), which costs ~30x a
        // re-add on an interface that had one before, or an entry without a FIB entry.
        let mac = |i: usize| MacAddr([0x02, 0xfe, 0, 0, (i >> 8) as u8, i as u8]);
        let addr = |i: usize| std::net::Ipv4Addr::new(10, 65, (i / 250) as u8, (i % 250) as u8 + 1);
        let neigh = |is_add| -> Vec<Op> {
            (0..ifs.len())
                .map(|i| Op::Neighbour {
                    sw_if_index: sw(i),
                    ip: IpAddr::V4(addr(i)),
                    mac: mac(i),
                    is_add,
                })
                .collect()
        };
        timed(
            &mut dp,
            "ip_neighbor_add_del (first on its interface)",
            neigh(true),
        )
        .await;
        timed(&mut dp, "ip_neighbor_add_del (delete)", neigh(false)).await;
        timed(&mut dp, "ip_neighbor_add_del (again)", neigh(true)).await;
        timed(&mut dp, "ip_neighbor_add_del (delete)", neigh(false)).await;
        {
            use vpp_bindings::gen::ip_neighbor::{IpNeighbor, IpNeighborAddDel, IpNeighborFlags};
            let client = vpp.client().await.expect("client");
            let mut b = client.batch();
            for (i, sw_if_index) in ifs.iter().enumerate() {
                b.push(&IpNeighborAddDel {
                    is_add: true,
                    neighbor: IpNeighbor {
                        sw_if_index: *sw_if_index,
                        // STATIC | NO_FIB_ENTRY
                        flags: IpNeighborFlags(3),
                        mac_address: vpp_bindings::gen::ethernet_types::MacAddress(mac(i).0),
                        ip_address: IpAddr::V4(addr(i)).into(),
                    },
                })
                .expect("push");
            }
            let t = Instant::now();
            b.send().await.expect("send");
            report("ip_neighbor_add_del (no FIB entry)", ifs.len(), t.elapsed());
        }
        timed(&mut dp, "ip_neighbor_add_del (delete)", neigh(false)).await;
        timed(&mut dp, "ip_neighbor_add_del (again)", neigh(true)).await;
        let rule = |permit| AclRule {
            permit,
            src: "0.0.0.0/0".parse().unwrap(),
            dst: "0.0.0.0/0".parse().unwrap(),
            proto: 6,
            sport_or_icmp_type: (0, 65535),
            dport_or_icmp_code: (80, 80),
        };
        let acls = timed(
            &mut dp,
            "acl_add_replace",
            vec![
                Op::AclAddReplace {
                    index: None,
                    tag: "in".into(),
                    rules: vec![rule(true)],
                },
                Op::AclAddReplace {
                    index: None,
                    tag: "out".into(),
                    rules: vec![rule(false)],
                },
            ],
        )
        .await;
        timed(
            &mut dp,
            "acl_interface_set_acl_list (1 in, 1 out)",
            (0..ifs.len())
                .map(|i| Op::AclInterfaceSet {
                    sw_if_index: sw(i),
                    input: vec![AclIndex(acls[0])],
                    output: vec![AclIndex(acls[1])],
                })
                .collect(),
        )
        .await;
        let set = created(
            &dp.execute(vec![Op::IpSetCreate {
                kind: npol::IpSetType::Ip,
            }])
            .await
            .expect("set")[0],
        );
        let r = dp
            .execute(vec![Op::RuleCreate {
                rule: npol::Rule {
                    action: npol::RuleAction::Allow,
                    filters: [npol::Filter::NONE; 3],
                    entries: vec![npol::Entry {
                        is_src: true,
                        is_not: false,
                        data: npol::EntryData::IpSet(IpSetId(set)),
                    }],
                },
            }])
            .await
            .expect("rule");
        let rule_id = RuleId(created(&r[0]));
        let policies: Vec<PolicyId> = timed(
            &mut dp,
            "npol_policy_create (1 rule)",
            (0..100)
                .map(|_| Op::PolicyCreate {
                    policy: npol::Policy {
                        inbound: vec![rule_id],
                        outbound: vec![rule_id],
                    },
                })
                .collect(),
        )
        .await
        .into_iter()
        .map(PolicyId)
        .collect();
        let config = |n: usize| npol::InterfaceConfig {
            rx_policies: policies[..n].to_vec(),
            tx_policies: policies[..n].to_vec(),
            profiles: Vec::new(),
            invert_rx_tx: false,
            policy_default_rx: npol::PolicyDefault::Deny,
            policy_default_tx: npol::PolicyDefault::Deny,
            profile_default_rx: npol::PolicyDefault::Deny,
            profile_default_tx: npol::PolicyDefault::Deny,
        };
        for n in [100, 1] {
            timed(
                &mut dp,
                &format!("npol_configure_policies ({n}+{n} policies)"),
                (0..ifs.len())
                    .map(|i| Op::ConfigurePolicies {
                        sw_if_index: sw(i),
                        config: config(n),
                    })
                    .collect(),
            )
            .await;
        }
        timed(
            &mut dp,
            "feature_cnat_enable_disable",
            (0..ifs.len())
                .map(|i| Op::CnatFeature {
                    sw_if_index: sw(i),
                    enable: true,
                })
                .collect(),
        )
        .await;
        timed(
            &mut dp,
            "ip_route_add_del (/32 via interface)",
            (0..ifs.len())
                .map(|i| Op::Route {
                    dst: format!("10.65.{}.{}/32", i / 250, i % 250 + 1)
                        .parse()
                        .unwrap(),
                    via: RoutePath::Interface(sw(i)),
                    is_add: true,
                })
                .collect(),
        )
        .await;
    });
}
