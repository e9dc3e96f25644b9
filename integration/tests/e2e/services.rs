//! Kubernetes services through the real driver binary into the VPP simulator, from the fake
//! API server through the real kube-rs client: translations follow the API server; when it
//! goes away the driver keeps what it programmed (nothing is deleted, nothing crashes); when
//! it comes back (history gone: a relist) the driver catches up with what changed meanwhile,
//! including a deletion; a ClusterIP with no backend is routed to an ICMP unreachable.

use std::net::IpAddr;
use std::time::Duration;

use crate::common;

use calico_vpp_driver::felix::script;
use common::driver::wait_until;
use common::realvpp::node1;
use common::rig::Rig;
use kube_watch::fake::FakeApiServer;
use kube_watch::k8s_openapi::api::core::v1::Service;
use kube_watch::k8s_openapi::api::discovery::v1::EndpointSlice;
use vpp_sim::forward::NotForwarded;
use vpp_sim::SimState;

const CONVERGE: Duration = Duration::from_secs(30);

fn service(name: &str, vip: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"clusterIP": vip, "clusterIPs": [vip],
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn slice(service: &str, backends: &[&str]) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = backends
        .iter()
        .map(|a| serde_json::json!({"addresses": [a], "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{service}-x"), "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": endpoints
    }))
    .unwrap()
}

/// The backends of the translation of `vip`:80/TCP in the simulator.
fn backends(s: &SimState, vip: &str) -> Option<Vec<IpAddr>> {
    let vip: IpAddr = vip.parse().unwrap();
    s.cnat
        .translations
        .iter()
        .map(|(_, t)| t)
        .find(|t| t.vip.addr == vip && t.vip.port == 80 && t.proto == 6)
        .map(|t| t.paths.iter().map(|p| p.dst.addr).collect())
}

/// A packet to `vip` is answered with an ICMP unreachable.
fn rejected(s: &SimState, vip: &str) -> bool {
    let vip: IpAddr = vip.parse().unwrap();
    let any = s.interfaces.iter().map(|(i, _)| i).next().unwrap_or(0);
    matches!(
        s.forward(any, "10.70.0.9".parse().unwrap(), vip),
        Err(NotForwarded::Unreachable(_))
    )
}

#[test]
fn services_follow_the_api_server_and_survive_its_outage() {
    let rig = Rig::new();
    let mut api = rig.rt.block_on(FakeApiServer::start()).unwrap();
    let kubeconfig = rig.dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).unwrap();
    // One interface for the simulator to route from.
    rig.add_pod_taps(1);
    api.apply_service(service("web", "10.96.0.10"));
    api.apply_slice(slice("web", &["10.70.0.2", "10.70.0.3"]));
    api.apply_service(service("idle", "10.96.0.11"));
    let mut d = rig.driver_with(&[
        ("CALICO_VPP_SERVICES", "on"),
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
    ]);
    let mut snapshot = node1("192.168.0.1");
    snapshot.push(script::in_sync());
    d.send(&snapshot);
    let web = |s: &SimState| backends(s, "10.96.0.10");
    assert!(
        wait_until(CONVERGE, || rig.sim.with_state(|s| web(s)
            .is_some_and(|b| b.len() == 2)
            && rejected(s, "10.96.0.11"))),
        "web not translated or idle not rejected\n{}",
        d.log()
    );

    // The API server goes away: the driver keeps everything and keeps running.
    rig.rt.block_on(api.stop());
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.try_exit().is_none(), "driver exited\n{}", d.log());
    rig.sim.with_state(|s| {
        assert_eq!(web(s).map(|b| b.len()), Some(2), "translation kept");
        assert!(rejected(s, "10.96.0.11"), "reject kept");
    });

    // Meanwhile: web loses a backend, idle is deleted, api arrives. The API server comes back
    // with its history gone: the driver relists and catches up, deletion included.
    api.apply_slice(slice("web", &["10.70.0.3"]));
    api.delete_service("shop", "idle");
    api.apply_service(service("api", "10.96.0.12"));
    api.apply_slice(slice("api", &["10.70.0.4"]));
    rig.rt.block_on(api.restart()).unwrap();
    assert!(
        wait_until(CONVERGE, || rig.sim.with_state(|s| {
            web(s) == Some(vec!["10.70.0.3".parse().unwrap()])
                && !rejected(s, "10.96.0.11")
                && backends(s, "10.96.0.12").is_some()
        })),
        "not caught up after the API server came back\n{}",
        d.log()
    );
    assert!(d.try_exit().is_none(), "driver exited\n{}", d.log());
    d.stop();
}
