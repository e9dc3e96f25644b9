//! Routes to other nodes' workloads from Felix's route table, on a real VPP with real
//! packets (issue 13, first part: no encapsulation). A second namespace stands in for a
//! remote node: its address is on one of VPP's links (the node's uplink subnet) and it
//! holds addresses of a remote block. A pod reaches that block exactly while Felix routes
//! it, the route is replaced in place when the block moves, and a block whose pool needs a
//! tunnel is never routed unencapsulated.

use crate::common;

use std::time::Duration;

use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope};
use common::driver::{wait_until, Driver};
use common::realvpp::{ipam_pool, run, serialise, Pod, VppInstance};

const CONVERGE: Duration = Duration::from_secs(20);

fn snapshot(pod: &Pod) -> Vec<proto::ToDataplane> {
    vec![
        envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
            config: script::labels(&[("FelixHostname", "node1")]),
            ..Default::default()
        })),
        envelope(Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
            id: Some(proto::ProfileId {
                name: "kns.routes".into(),
            }),
            profile: Some(proto::Profile {
                inbound_rules: vec![proto::Rule {
                    action: "allow".into(),
                    ..Default::default()
                }],
                outbound_rules: vec![proto::Rule {
                    action: "allow".into(),
                    ..Default::default()
                }],
            }),
        })),
        ipam_pool("10.70.0.0/16", false, "Never"),
        ipam_pool("10.71.0.0/16", false, "Always"),
        pod.endpoint("routes/a", "kns.routes", true),
        script::in_sync(),
    ]
}

fn route(dst: &str, pool: proto::IpPoolType, node_ip: &str) -> proto::ToDataplane {
    envelope(Payload::RouteUpdate(proto::RouteUpdate {
        types: proto::RouteType::RemoteWorkload as i32,
        ip_pool_type: pool as i32,
        dst: dst.into(),
        dst_node_name: "node2".into(),
        dst_node_ip: node_ip.into(),
        ..Default::default()
    }))
}

fn route_remove(dst: &str) -> proto::ToDataplane {
    envelope(Payload::RouteRemove(proto::RouteRemove { dst: dst.into() }))
}

/// The remote node's workloads: addresses on its loopback (replies go back through its
/// default route, which is VPP).
fn host_block_addresses(node: &Pod, addrs: &[&str]) {
    for a in addrs {
        let v6 = a.contains(':');
        let mut args = vec!["-n", &node.ns];
        if v6 {
            args.push("-6");
        }
        args.extend(["addr", "add", a, "dev", "lo"]);
        run("ip", &args).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn remote_blocks_are_reachable_exactly_while_felix_routes_them() {
    let _one = serialise();
    let vpp = VppInstance::start();
    let a = Pod::attach(&vpp, 1);
    // Two "remote nodes" on VPP's uplink-like links: 10.80.2.2 / fd80:2::2 and 10.80.3.2.
    let node2 = Pod::attach(&vpp, 2);
    let node3 = Pod::attach(&vpp, 3);
    host_block_addresses(&node2, &["10.70.1.1/32", "fd00:70::1/128", "10.71.1.1/32"]);
    host_block_addresses(&node3, &["10.70.1.1/32"]);

    let mut driver = Driver::on_vpp(&vpp, &[]);
    driver.send(&snapshot(&a));
    driver.wait_status("routes/a", Some("up"), CONVERGE);

    // No route from Felix: VPP has no way to the remote block.
    assert_eq!(a.ping("10.70.1.1", 101, 2), 0, "no route yet");
    assert_eq!(a.ping("fd00:70::1", 102, 2), 0, "no route yet (v6)");

    let v6_node = node2.v6.to_string();
    driver.send(&[
        route(
            "10.70.1.0/26",
            proto::IpPoolType::NoEncap,
            &node2.v4.to_string(),
        ),
        route("fd00:70::/122", proto::IpPoolType::NoEncap, &v6_node),
        // Its pool is IPIP Always: it needs a tunnel, so no unencapsulated route.
        route(
            "10.71.1.0/26",
            proto::IpPoolType::Ipip,
            &node2.v4.to_string(),
        ),
    ]);
    assert!(
        wait_until(CONVERGE, || a.ping("10.70.1.1", 103, 1) == 1),
        "remote block reachable once routed; fib: {}",
        vpp.cli("show ip fib 10.70.1.0/26")
    );
    assert!(
        wait_until(CONVERGE, || a.ping("fd00:70::1", 104, 1) == 1),
        "remote v6 block reachable once routed; fib: {}",
        vpp.cli("show ip6 fib fd00:70::/122")
    );
    assert_eq!(
        a.ping("10.71.1.1", 105, 2),
        0,
        "an IPIP block is not routed bare"
    );
    let fib = vpp.cli("show ip fib 10.71.1.0/26");
    assert!(
        !fib.contains("10.71.1.0/26"),
        "no route for the IPIP block: {fib}"
    );

    // The block moves to node3: replaced in place, traffic follows.
    driver.send(&[route(
        "10.70.1.0/26",
        proto::IpPoolType::NoEncap,
        &node3.v4.to_string(),
    )]);
    assert!(
        wait_until(CONVERGE, || vpp
            .cli("show ip fib 10.70.1.0/26")
            .contains(&node3.v4.to_string())),
        "{}",
        vpp.cli("show ip fib 10.70.1.0/26")
    );
    let fib = vpp.cli("show ip fib 10.70.1.0/26");
    assert!(
        !fib.contains(&node2.v4.to_string()),
        "old path replaced: {fib}"
    );
    assert!(wait_until(CONVERGE, || a.ping("10.70.1.1", 106, 1) == 1));

    // Felix withdraws the routes: gone from VPP, unreachable again.
    driver.send(&[route_remove("10.70.1.0/26"), route_remove("fd00:70::/122")]);
    assert!(
        wait_until(CONVERGE, || a.ping("10.70.1.1", 107, 1) == 0
            && a.ping("fd00:70::1", 108, 1) == 0),
        "withdrawn routes still forward"
    );
    let fib = vpp.cli("show ip fib 10.70.1.0/26");
    assert!(!fib.contains("10.70.1.0/26"), "route deleted: {fib}");
    driver.stop();
}

/// A pod wired as Calico's CNI wires one — its address alone, no subnet in VPP, its
/// interface unnumbered — is reached only through the route the driver programs from its
/// endpoint, from another pod and back; the route goes with the endpoint.
#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn a_pod_without_a_subnet_is_reached_through_its_endpoints_route() {
    let _one = serialise();
    let vpp = VppInstance::start();
    let a = Pod::attach(&vpp, 1);
    let bare: std::net::Ipv4Addr = "10.70.5.2".parse().unwrap();
    let b = Pod::attach_bare(
        &vpp,
        &common::realvpp::unique("b"),
        bare,
        &format!("host-{}", a.host_if),
    );
    let _server = b.spawn_python(common::realvpp::TCP_SERVER, &["8080"]);
    let _a_server = a.spawn_python(common::realvpp::TCP_SERVER, &["8080"]);
    assert!(
        !a.connects("10.70.5.2", 8080),
        "no route to the bare pod yet"
    );

    let mut snap = snapshot(&a);
    let in_sync = snap.len() - 1;
    snap.insert(in_sync, b.endpoint("routes/b", "kns.routes", false));
    let mut driver = Driver::on_vpp(&vpp, &[]);
    driver.send(&snap);
    driver.wait_status("routes/b", Some("up"), CONVERGE);
    assert!(
        wait_until(CONVERGE, || a.connects("10.70.5.2", 8080)),
        "pod a -> the bare pod through its route\n{}",
        vpp.cli("show ip fib 10.70.5.2/32")
    );
    assert!(b.connects(&a.v4.to_string(), 8080), "the bare pod -> pod a");

    // The endpoint goes: so does its route.
    driver.send(&[envelope(Payload::WorkloadEndpointRemove(
        proto::WorkloadEndpointRemove {
            id: Some(proto::WorkloadEndpointId {
                orchestrator_id: "k8s".into(),
                workload_id: "routes/b".into(),
                endpoint_id: "eth0".into(),
            }),
        },
    ))]);
    assert!(
        wait_until(CONVERGE, || !vpp
            .cli("show ip fib 10.70.5.2/32")
            .contains("10.70.5.2/32")),
        "route withdrawn: {}",
        vpp.cli("show ip fib 10.70.5.2/32")
    );
    driver.stop();
}
