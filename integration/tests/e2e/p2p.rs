//! Pods on point-to-point interfaces (TUN taps, what Calico/VPP's CNI makes by default): the
//! real driver binary, programming the simulator, sends no static neighbour for them, since
//! VPP resolves none there, while Ethernet taps keep theirs. A new TUN pod costs exactly
//! five VPP writes (guard ACLs, npol configuration, cnat, and its anti-spoofing rule and
//! policy) plus one per IP set it joins.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use calico_compile::{compile, reference, CalicoDirection};
use calico_vpp_driver::felix::script::{self, ClusterShape};
use common::driver::{wait_until, Driver};
use common::rig::{by_tag, ids_of, pod_id, sample_packets, sim_matches, Rig};
use npol::Verdict;
use vpp_sim::enforce::Enforcement;

/// Long enough for a debug build on two busy cores; only a failure waits this long.
const CONVERGE: Duration = Duration::from_secs(30);
/// Longer than the driver's pass spacing: after it, a quiet driver has written everything.
const SETTLE: Duration = Duration::from_millis(400);

fn shape() -> ClusterShape {
    ClusterShape {
        namespaces: 3,
        pods: 8,
        policies: 6,
        tiers: 2,
        ..ClusterShape::default()
    }
}

/// Even pods are on TUN interfaces, odd pods on Ethernet taps.
fn is_tun(i: usize) -> bool {
    i.is_multiple_of(2)
}

fn add_pods(rig: &Rig, pods: impl IntoIterator<Item = usize>) {
    for i in pods {
        if is_tun(i) {
            rig.add_pod_tun(i);
        } else {
            rig.add_pod_tap(i);
        }
    }
}

fn workload_id(i: usize) -> String {
    script::workload_id(i, shape().namespaces).workload_id
}

fn converge(rig: &Rig, d: &Driver) {
    let desired = compile(&d.model).desired;
    let mut last = String::new();
    let ok = wait_until(CONVERGE, || {
        rig.sim
            .with_state(|s| sim_matches(s, &desired))
            .map_err(|e| last = e)
            .is_ok()
    });
    assert!(
        ok,
        "VPP never matched the desired state: {last}\nlog:\n{}",
        d.log()
    );
}

/// A driver that has programmed the snapshot, every pod up.
fn converged(rig: &Rig) -> Driver {
    let mut d = rig.driver();
    let mut stream = script::snapshot(&shape());
    stream.push(script::in_sync());
    d.send(&stream);
    converge(rig, &d);
    for i in 0..shape().pods {
        d.wait_status(&workload_id(i), Some("up"), CONVERGE);
    }
    d
}

/// Felix's messages for a new pod `i` (see `script::new_pod`).
fn new_pod(d: &mut Driver, i: usize) {
    d.send(&script::new_pod(&shape(), i));
}

/// The write messages the simulator received while `f` ran, by name.
fn writes_during(rig: &Rig, f: impl FnOnce()) -> (u64, BTreeMap<String, u64>) {
    let before = rig.sim.call_counts();
    let w0 = rig.sim.write_calls();
    f();
    let writes = rig.sim.write_calls() - w0;
    let by_name = rig
        .sim
        .call_counts()
        .into_iter()
        .filter_map(|(name, n)| {
            let n = n - before.get(&name).copied().unwrap_or(0);
            (n > 0 && !name.contains("dump") && !name.contains("ping")).then_some((name, n))
        })
        .collect();
    (writes, by_name)
}

#[test]
fn tun_pods_get_no_static_neighbour_and_ethernet_taps_keep_theirs() {
    let rig = Rig::new();
    let pods = shape().pods;
    add_pods(&rig, 0..pods);
    let d = converged(&rig);
    std::thread::sleep(SETTLE);

    let taps = (0..pods).filter(|i| !is_tun(*i)).count() as u64;
    // One IPv4 and one IPv6 address per pod.
    assert_eq!(
        rig.sim.calls("ip_neighbor_add_del"),
        2 * taps,
        "log:\n{}",
        d.log()
    );
    rig.sim.with_state(|s| {
        for i in 0..pods {
            let idx = by_tag(s, &script::pod_iface(i)).unwrap();
            let static_neighbours = s
                .neighbors
                .iter()
                .filter(|((at, _), n)| *at == idx && n.flags != 0)
                .count();
            let want = if is_tun(i) { 0 } else { 2 };
            assert_eq!(static_neighbours, want, "pod {i} (tun: {})", is_tun(i));
        }
    });
}

#[test]
fn first_flow_to_a_tun_pod_meets_its_policy_without_a_neighbour() {
    let rig = Rig::new();
    let pods = shape().pods;
    add_pods(&rig, 0..pods);
    let d = converged(&rig);
    // Traffic from outside the node: an uplink with cnat on and no policy of its own.
    let uplink = rig.sim.with_state_mut(|s| {
        let i = s.create_af_packet("uplink9", None).unwrap();
        s.set_flags(i, true);
        s.cnat_enable(i, true);
        i
    });
    let (mut checked, mut denied) = (0, 0);
    for e in (0..pods).filter(|i| is_tun(*i)) {
        let idx = rig
            .sim
            .with_state(|s| by_tag(s, &script::pod_iface(e)))
            .unwrap();
        let id = pod_id(e, shape().namespaces);
        for pkt in sample_packets(&d.model, e, CalicoDirection::Ingress) {
            let want = reference::evaluate(&d.model, &id, CalicoDirection::Ingress, &pkt);
            let first = rig.sim.evaluate_flow(uplink, idx, &pkt);
            assert_ne!(
                first.tx,
                Some(Enforcement::NeighbourUnresolved),
                "pod {e} {pkt:?}"
            );
            assert_eq!(
                first.verdict, want.verdict,
                "pod {e} {pkt:?}: first flow {:?}, Calico {:?}",
                first.tx, want.decided_by
            );
            checked += 1;
            if want.verdict == Verdict::Deny {
                denied += 1;
            }
        }
    }
    assert!(denied > 0 && denied < checked, "{denied}/{checked}");
    let on_tuns = rig.sim.with_state(|s| {
        s.neighbors
            .keys()
            .filter(|(i, _)| s.interface(*i).is_some_and(|itf| itf.kind.is_p2p()))
            .count()
    });
    assert_eq!(
        on_tuns, 0,
        "neighbours (static or learnt) on TUN interfaces"
    );
}

#[test]
fn a_new_tun_pod_costs_five_writes_one_per_ip_set_its_snat_inclusion_and_routes() {
    let rig = Rig::new();
    let pods = shape().pods;
    // The CNI creates the new pods' interfaces before Felix hears of them.
    add_pods(&rig, 0..pods + 2);
    let mut d = converged(&rig);
    std::thread::sleep(SETTLE);

    let mut seen = BTreeMap::new();
    for i in [pods, pods + 1] {
        let (writes, by_name) = writes_during(&rig, || {
            new_pod(&mut d, i);
            d.wait_status(&workload_id(i), Some("up"), CONVERGE);
            converge(&rig, &d);
            std::thread::sleep(SETTLE);
        });
        seen.insert(is_tun(i), (writes, by_name));
    }
    let expect = |neighbours: u64| {
        let mut m: BTreeMap<String, u64> = [
            ("acl_interface_set_acl_list", 1),
            ("feature_cnat_enable_disable", 1),
            ("npol_configure_policies", 1),
            ("npol_ipset_add_del_members", 2),
            // Its anti-spoofing policy (own addresses only): one rule, one policy.
            ("npol_rule_create", 1),
            ("npol_policy_create", 1),
            // The scripted pool masquerades: the pod's interface joins cnat's SNAT.
            ("cnat_snat_policy_add_del_if", 1),
            // A route to each of its addresses (dual-stack) out of its interface.
            ("ip_route_add_del", 2),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if neighbours > 0 {
            m.insert("ip_neighbor_add_del".into(), neighbours);
        }
        (m.values().sum::<u64>(), m)
    };
    assert_eq!(seen[&true], expect(0), "TUN pod; log:\n{}", d.log());
    assert_eq!(seen[&false], expect(2), "tap pod; log:\n{}", d.log());
    assert_eq!(seen[&true].0, 3 + 2 + 2 + 1 + 2);
}

#[test]
fn driver_restart_with_tun_pods_makes_zero_writes() {
    let rig = Rig::new();
    add_pods(&rig, 0..shape().pods);
    let d = converged(&rig);
    let mut ids = Default::default();
    assert!(wait_until(CONVERGE, || {
        ids = rig.persisted().map(|p| ids_of(&p)).unwrap_or_default();
        ids.iter().filter(|k| k.starts_with("interface ")).count() == shape().pods
    }));
    assert_eq!(d.stop().code(), Some(0));
    let writes = rig.sim.write_calls();

    let d = converged(&rig);
    std::thread::sleep(SETTLE);
    assert_eq!(
        rig.sim.write_calls(),
        writes,
        "the restarted driver wrote to VPP: {:?}\nlog:\n{}",
        rig.sim.call_counts(),
        d.log()
    );
    assert_eq!(ids_of(&rig.persisted().unwrap()), ids);
}
