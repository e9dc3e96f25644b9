//! The real driver binary, started as Felix starts it, programming the VPP simulator over its
//! API socket: after the snapshot and every delta VPP holds exactly what the compiler wants
//! for Felix's model, its verdicts are Calico's, endpoint status reaches Felix on fd 4, and
//! restarts (driver or VPP), VPP errors and malformed frames leave it correct.
//!
//! Convergence is polled with bounded waits; nothing here asserts how fast it is (see
//! `benches/e2e_latency.rs`).

use crate::common;

use std::time::Duration;

use calico_compile::compile;
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::from_dataplane::Payload as Out;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, ClusterShape};
use common::driver::{malformed_frame, wait_until, Driver};
use common::rig::{by_tag, ids_of, sim_matches, verdicts_match_reference, Rig};

/// Long enough for a debug build on two busy cores; only a failure waits this long.
const CONVERGE: Duration = Duration::from_secs(30);

fn shape() -> ClusterShape {
    ClusterShape {
        namespaces: 3,
        pods: 12,
        policies: 8,
        tiers: 2,
        ..ClusterShape::default()
    }
}

/// Waits until the simulator holds what the compiler makes of Felix's model.
fn converge(rig: &Rig, d: &Driver) {
    let desired = compile(&d.model).desired;
    let mut last = String::new();
    let ok = wait_until(CONVERGE, || {
        match rig.sim.with_state(|s| sim_matches(s, &desired)) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        }
    });
    assert!(
        ok,
        "VPP never matched the desired state: {last}\nlog:\n{}",
        d.log()
    );
}

fn snapshot_and_in_sync(d: &mut Driver, shape: &ClusterShape) {
    let mut stream = script::snapshot(shape);
    stream.push(script::in_sync());
    d.send(&stream);
}

fn workload_id(i: usize) -> String {
    script::workload_id(i, shape().namespaces).workload_id
}

fn all_up(d: &Driver, pods: impl IntoIterator<Item = usize>) {
    for i in pods {
        d.wait_status(&workload_id(i), Some("up"), CONVERGE);
    }
}

/// A started driver that has programmed the whole snapshot for pods with taps.
fn converged(rig: &Rig) -> Driver {
    let mut d = rig.driver();
    snapshot_and_in_sync(&mut d, &shape());
    converge(rig, &d);
    all_up(&d, 0..shape().pods);
    d
}

#[test]
fn snapshot_is_programmed_as_compiled_and_verdicts_are_calicos() {
    let rig = Rig::new();
    let shape = shape();
    // The last pod's interface does not exist yet: it waits, reported down.
    rig.add_pod_taps(shape.pods - 1);
    let mut d = rig.driver();
    snapshot_and_in_sync(&mut d, &shape);
    converge(&rig, &d);
    all_up(&d, 0..shape.pods - 1);
    d.wait_status(&workload_id(shape.pods - 1), Some("down"), CONVERGE);
    let (checked, allowed) = verdicts_match_reference(&rig.sim, &d.model);
    assert!(checked > 1000, "{checked}");
    assert!(allowed > 0 && allowed < checked, "{allowed}/{checked}");

    // The CNI creates the interface: bound, programmed, up.
    let idx = rig.add_pod_tap(shape.pods - 1);
    d.wait_status(&workload_id(shape.pods - 1), Some("up"), CONVERGE);
    converge(&rig, &d);
    assert!(rig.sim.with_state(|s| s.npol.interfaces.contains_key(&idx)));

    // Its link goes down: Felix hears "down".
    rig.sim.with_state_mut(|s| s.set_link(idx, false));
    d.wait_status(&workload_id(shape.pods - 1), Some("down"), CONVERGE);
}

#[test]
fn deltas_converge_pod_add_remove_policy_ipset_profile() {
    let rig = Rig::new();
    let shape = shape();
    rig.add_pod_taps(shape.pods + 1);
    let mut d = converged(&rig);
    let n = shape.namespaces;

    // A new pod: its addresses join its namespace's sets, then its endpoint arrives.
    let new = shape.pods;
    d.send(&script::new_pod(&shape, new));
    d.wait_status(&workload_id(new), Some("up"), CONVERGE);
    converge(&rig, &d);
    verdicts_match_reference(&rig.sim, &d.model);

    // A pod goes: Felix hears the remove; its interface falls back to deny.
    let gone = 3;
    d.send(&[
        script::envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove {
                id: Some(script::workload_id(gone, n)),
            },
        )),
        script::envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id: script::ns_set_id(gone % n),
            added_members: vec![],
            removed_members: vec![format!("{}/32", script::pod_ip(gone))],
        })),
    ]);
    d.wait_status(&workload_id(gone), None, CONVERGE);
    let desired = compile(&d.model).desired;
    // The removed pod's tap keeps a deny configuration, which the desired state does not
    // list: compare the rest once its neighbour is gone.
    let gone_idx = rig
        .sim
        .with_state(|s| by_tag(s, &script::pod_iface(gone)))
        .unwrap();
    let ok = wait_until(CONVERGE, || {
        rig.sim.with_state(|s| {
            let mut s = s.clone();
            let cfg = s.npol.interfaces.remove(&gone_idx);
            cfg.is_some_and(|c| {
                c.rx_policies.is_empty()
                    && c.tx_policies.is_empty()
                    && c.profiles.is_empty()
                    && c.policy_default_tx == npol::PolicyDefault::Deny
                    && c.policy_default_rx == npol::PolicyDefault::Deny
            }) && s.neighbors.keys().all(|(i, _)| *i != gone_idx)
                && sim_matches(&s, &desired).is_ok()
        })
    });
    assert!(ok, "pod removal did not converge; log:\n{}", d.log());

    // An IP set delta on its own.
    d.send(&[script::envelope(Payload::IpsetDeltaUpdate(
        proto::IpSetDeltaUpdate {
            id: script::ns_set_id(0),
            added_members: vec!["10.66.0.1/32".into(), "10.66.0.7/32".into()],
            removed_members: vec![format!("{}/32", script::pod_ip(0))],
        },
    ))]);
    converge_ignoring(&rig, &d, gone_idx);
    verdicts_match_reference(&rig.sim, &d.model);

    // A policy change: tier 0's first policy now admits TCP 80 from anywhere and sends
    // 2000 to the next tier.
    let mut p = script::policy(0, 0, n);
    p.inbound_rules.push(proto::Rule {
        action: "allow".into(),
        protocol: Some(proto::Protocol {
            number_or_name: Some(proto::protocol::NumberOrName::Name("TCP".into())),
        }),
        dst_ports: vec![proto::PortRange {
            first: 80,
            last: 80,
        }],
        rule_id: "new-80".into(),
        ..Default::default()
    });
    p.inbound_rules.insert(
        0,
        proto::Rule {
            action: "next-tier".into(),
            dst_ports: vec![proto::PortRange {
                first: 2000,
                last: 2000,
            }],
            rule_id: "new-pass".into(),
            ..Default::default()
        },
    );
    d.send(&[script::envelope(Payload::ActivePolicyUpdate(
        proto::ActivePolicyUpdate {
            id: Some(script::policy_id(0, 0, false)),
            policy: Some(p),
        },
    ))]);
    converge_ignoring(&rig, &d, gone_idx);
    verdicts_match_reference(&rig.sim, &d.model);

    // A profile change: namespace 0's profile denies inbound.
    d.send(&[script::envelope(Payload::ActiveProfileUpdate(
        proto::ActiveProfileUpdate {
            id: Some(proto::ProfileId {
                name: "kns.ns0".into(),
            }),
            profile: Some(proto::Profile {
                inbound_rules: vec![proto::Rule {
                    action: "deny".into(),
                    rule_id: "kns0-in-deny".into(),
                    ..Default::default()
                }],
                outbound_rules: vec![proto::Rule {
                    action: "allow".into(),
                    rule_id: "kns0-out".into(),
                    ..Default::default()
                }],
            }),
        },
    ))]);
    converge_ignoring(&rig, &d, gone_idx);
    verdicts_match_reference(&rig.sim, &d.model);

    // The scripted steady-state churn on top.
    d.send(&script::deltas(&shape, 40));
    converge_ignoring(&rig, &d, gone_idx);
    verdicts_match_reference(&rig.sim, &d.model);
}

/// `converge`, leaving out an interface that was unbound to deny (the desired state no
/// longer lists it).
fn converge_ignoring(rig: &Rig, d: &Driver, unbound: u32) {
    let desired = compile(&d.model).desired;
    let mut last = String::new();
    let ok = wait_until(CONVERGE, || {
        rig.sim.with_state(|s| {
            let mut s = s.clone();
            s.npol.interfaces.remove(&unbound);
            match sim_matches(&s, &desired) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            }
        })
    });
    assert!(
        ok,
        "VPP never matched the desired state: {last}\nlog:\n{}",
        d.log()
    );
}

#[test]
fn driver_restart_makes_zero_vpp_writes_and_keeps_every_id() {
    let rig = Rig::new();
    rig.add_pod_taps(shape().pods);
    let d = converged(&rig);
    // Let the state file catch up with the last pass.
    let mut ids = Default::default();
    assert!(wait_until(CONVERGE, || {
        ids = rig.persisted().map(|p| ids_of(&p)).unwrap_or_default();
        ids.len() > 10 && ids.iter().any(|k| k.starts_with("interface "))
    }));
    let before = rig.sim.snapshot();
    assert_eq!(d.stop().code(), Some(0));
    let writes = rig.sim.write_calls();

    // Felix restarts: a new driver, the same snapshot.
    let mut d = rig.driver();
    snapshot_and_in_sync(&mut d, &shape());
    all_up(&d, 0..shape().pods);
    converge(&rig, &d);
    // The reports come after the pass; anything it wrote would already be counted.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rig.sim.write_calls(),
        writes,
        "the restarted driver wrote to VPP: {:?}\nlog:\n{}",
        rig.sim.call_counts(),
        d.log()
    );
    let after = rig.persisted().unwrap();
    assert_eq!(ids_of(&after), ids);
    let now = rig.sim.snapshot();
    assert_eq!(
        serde_json::to_value(&now.npol).unwrap(),
        serde_json::to_value(&before.npol).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&now.acl).unwrap(),
        serde_json::to_value(&before.acl).unwrap()
    );
}

#[test]
fn vpp_restart_is_reprogrammed_in_full() {
    let rig = Rig::new();
    rig.add_pod_taps(shape().pods);
    let d = converged(&rig);
    rig.sim.restart_empty();
    // The CNI side recreates the pods' interfaces in the new VPP.
    rig.add_pod_taps(shape().pods);
    converge(&rig, &d);
    let (checked, _) = verdicts_match_reference(&rig.sim, &d.model);
    assert!(checked > 0);
    assert!(
        d.log().contains("VPP restarted: its objects are gone"),
        "{}",
        d.log()
    );
}

#[test]
fn a_vpp_error_on_one_object_is_retried_and_everything_converges() {
    let rig = Rig::new();
    rig.add_pod_taps(shape().pods);
    rig.sim.fail_nth("npol_rule_create", 3, -2);
    rig.sim.fail_nth("npol_configure_policies", 2, -2);
    let mut d = rig.driver();
    snapshot_and_in_sync(&mut d, &shape());
    converge(&rig, &d);
    all_up(&d, 0..shape().pods);
    let desired = compile(&d.model).desired;
    // The failed calls were sent again, and nothing else was sent twice for it.
    assert_eq!(
        rig.sim.calls("npol_rule_create"),
        desired.rules.len() as u64 + 1
    );
    verdicts_match_reference(&rig.sim, &d.model);
}

/// The snapshot's configuration (a `ConfigUpdate` replaces all of it) with a 1 s heartbeat.
fn faster_heartbeat() -> proto::ToDataplane {
    let mut cfg = script::snapshot(&shape()).remove(0);
    let Some(Payload::ConfigUpdate(c)) = &mut cfg.payload else {
        panic!("the snapshot starts with its configuration")
    };
    c.config.insert("ReportingIntervalSecs".into(), "1".into());
    cfg
}

#[test]
fn a_malformed_felix_frame_changes_nothing_in_vpp() {
    let rig = Rig::new();
    rig.add_pod_taps(shape().pods);
    let mut d = converged(&rig);
    std::thread::sleep(Duration::from_millis(300));
    let writes = rig.sim.write_calls();
    let before = rig.sim.dump_json();

    d.send_raw(&malformed_frame());
    // A frame that decodes but names no endpoint (unconvertible), then one that proves the
    // driver read past both: a shorter heartbeat interval.
    d.send(&[
        script::envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: None,
                endpoint: Some(script::workload(0, &shape())),
            },
        )),
        faster_heartbeat(),
    ]);
    let hb = |m: &proto::FromDataplane| matches!(m.payload, Some(Out::ProcessStatusUpdate(_)));
    d.wait_frame(Duration::from_secs(10), hb);
    d.wait_frame(Duration::from_secs(10), hb);
    assert!(d.try_exit().is_none(), "driver exited; log:\n{}", d.log());
    assert_eq!(rig.sim.write_calls(), writes, "log:\n{}", d.log());
    assert_eq!(rig.sim.dump_json(), before);
    converge(&rig, &d);
}
