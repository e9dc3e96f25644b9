//! VPP restarts under the driver (issue 12, item 7): the pods' interfaces come back one after
//! another (created, addressed, set up — as a CNI or an operator re-creates them), the driver
//! reconnects, rebinds and reprograms them, and every endpoint is reported `up` to Felix again
//! within seconds, the last one too; policy holds on real packets afterwards.

use crate::common;

use std::time::{Duration, Instant};

use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope};
use common::driver::{wait_until, Driver};
use common::realvpp::{serialise, Pod, VppInstance, TCP_SERVER};

const CONVERGE: Duration = Duration::from_secs(20);

fn wep_id(pod: &str) -> proto::WorkloadEndpointId {
    proto::WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: format!("restart/{pod}"),
        endpoint_id: "eth0".into(),
    }
}

/// Every pod admits TCP 80 only (tier `default`), egress open (profile).
fn snapshot(pods: &[(&str, &Pod)]) -> Vec<proto::ToDataplane> {
    let pid = proto::PolicyId {
        name: "default.web".into(),
        namespace: "restart".into(),
        kind: "NetworkPolicy".into(),
    };
    let mut out = vec![
        envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
            config: script::labels(&[("FelixHostname", "restart")]),
            ..Default::default()
        })),
        envelope(Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
            id: Some(proto::ProfileId {
                name: "kns.restart".into(),
            }),
            profile: Some(proto::Profile {
                inbound_rules: vec![],
                outbound_rules: vec![proto::Rule {
                    action: "allow".into(),
                    ..Default::default()
                }],
            }),
        })),
        envelope(Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
            id: Some(pid.clone()),
            policy: Some(proto::Policy {
                namespace: "restart".into(),
                tier: "default".into(),
                inbound_rules: vec![proto::Rule {
                    action: "allow".into(),
                    protocol: Some(proto::Protocol {
                        number_or_name: Some(proto::protocol::NumberOrName::Number(6)),
                    }),
                    dst_ports: vec![proto::PortRange {
                        first: 80,
                        last: 80,
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })),
    ];
    for (name, pod) in pods {
        out.push(envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(wep_id(name)),
                endpoint: Some(proto::WorkloadEndpoint {
                    state: "active".into(),
                    name: pod.host_if.clone(),
                    mac: pod.mac.clone(),
                    profile_ids: vec!["kns.restart".into()],
                    ipv4_nets: vec![format!("{}/32", pod.v4)],
                    tiers: vec![proto::TierInfo {
                        name: "default".into(),
                        ingress_policies: vec![pid.clone()],
                        egress_policies: vec![],
                        default_action: "Deny".into(),
                    }],
                    ..Default::default()
                }),
            },
        )));
    }
    out.push(script::in_sync());
    out
}

#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn real_vpp_restart_with_interfaces_back_one_by_one_reports_every_endpoint_up() {
    let _one = serialise();
    let mut vpp = VppInstance::start();
    let a = Pod::attach(&vpp, 1);
    let b = Pod::attach(&vpp, 2);
    let c = Pod::attach(&vpp, 3);
    let pods = [("a", &a), ("b", &b), ("c", &c)];
    let _servers: Vec<_> = pods
        .iter()
        .map(|(_, p)| p.spawn_python(TCP_SERVER, &["80", "443"]))
        .collect();

    let mut driver = Driver::on_vpp(&vpp, &[]);
    driver.send(&snapshot(&pods));
    for (name, _) in &pods {
        driver.wait_status(&format!("restart/{name}"), Some("up"), CONVERGE);
    }
    let policed = |from: &Pod, to: &Pod| {
        wait_until(CONVERGE, || from.connects(&to.v4.to_string(), 80))
            && wait_until(CONVERGE, || !from.connects(&to.v4.to_string(), 443))
    };
    assert!(policed(&a, &c), "policy before the restart");

    for round in 1..=3 {
        vpp.restart();
        // The driver sees the socket go and every endpoint lose its interface.
        for (name, _) in &pods {
            driver.wait_status(&format!("restart/{name}"), Some("down"), CONVERGE);
        }
        let back = Instant::now();
        for (_, pod) in &pods {
            std::thread::sleep(Duration::from_millis(300));
            pod.plug_into(&vpp);
        }
        for (name, _) in &pods {
            let id = format!("restart/{name}");
            let up = wait_until(Duration::from_secs(10), || {
                driver.status.lock().unwrap().get(&id) == Some(&Some("up".to_string()))
            });
            assert!(
                up,
                "round {round}: {id} not up 10 s after its interface came back (status {:?}); \
                 log:\n{}",
                driver.status.lock().unwrap().get(&id),
                driver.log()
            );
        }
        eprintln!(
            "real VPP: round {round}: every endpoint up {:?} after the first interface came back",
            back.elapsed()
        );
        assert!(policed(&a, &c), "round {round}: policy after the restart");
        assert!(policed(&c, &b), "round {round}: policy after the restart");
    }
    let _ = driver.stop();
}
