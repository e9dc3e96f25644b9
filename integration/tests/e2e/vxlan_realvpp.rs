//! VXLAN between a VPP node and a node running Felix's Linux dataplane, on a real VPP with
//! real packets (issue 13: VXLAN). Node 1 is a VPP with the driver (uplink 192.168.71.1 on
//! a veth fabric) and a pod 10.73.1.2. Node 2 is a Linux network namespace configured as
//! Felix's Linux dataplane configures a VXLAN node: `vxlan.calico` (VNI 4096, port 4789,
//! its VTEP MAC, the VTEP address 10.73.2.0 on it), node 1's block routed `onlink` via node
//! 1's VTEP address, a permanent neighbour and an FDB entry for node 1's VTEP MAC; a
//! "pod" address 10.73.2.5 stands on the Linux node's loopback.
//!
//! Shown: TCP both ways between the VPP pod and the Linux node's pod over VXLAN the driver
//! builds from Felix's messages alone; on the fabric, UDP 4789 between the node addresses;
//! the VPP pod's policy enforced on what came through the tunnel; a driver restart with the
//! same snapshot makes no write.

use crate::common;

use std::time::Duration;

use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope};
use common::driver::{wait_until, Driver};
use common::realvpp::{
    ipam_pool, profile_allowing, serialise, unique, uplink_wire, LinuxNode, Pod, VppInstance,
    TCP_SERVER,
};

const CONVERGE: Duration = Duration::from_secs(20);
const NODE1: &str = "192.168.71.1";
const NODE2: &str = "192.168.71.2";
const VTEP1: &str = "10.73.1.64";
const VTEP2: &str = "10.73.2.0";
const MAC1: &str = "66:00:00:73:00:01";
const MAC2: &str = "66:00:00:73:00:02";
const LINUX_POD: &str = "10.73.2.5";

/// Node 2 as Felix's Linux dataplane sets up a VXLAN node: `vxlan.calico` with its MAC
/// and VTEP address, node 1's block `onlink` via node 1's VTEP address, whose MAC is a
/// permanent neighbour, whose node address is an FDB entry; a pod address on loopback.
fn linux_vxlan_node(fabric_end: &str) -> LinuxNode {
    let node = LinuxNode::new(fabric_end, &format!("{NODE2}/24"), LINUX_POD);
    for args in [
        vec![
            "link",
            "add",
            "vxlan.calico",
            "type",
            "vxlan",
            "id",
            "4096",
            "dstport",
            "4789",
            "local",
            NODE2,
            "dev",
            fabric_end,
            "nolearning",
        ],
        vec!["link", "set", "vxlan.calico", "address", MAC2],
        vec!["link", "set", "vxlan.calico", "up"],
        vec!["addr", "add", &format!("{VTEP2}/32"), "dev", "vxlan.calico"],
        vec![
            "route",
            "add",
            "10.73.1.0/26",
            "via",
            VTEP1,
            "dev",
            "vxlan.calico",
            "onlink",
        ],
        vec![
            "neigh",
            "add",
            VTEP1,
            "lladdr",
            MAC1,
            "dev",
            "vxlan.calico",
            "nud",
            "permanent",
        ],
    ] {
        node.ip(&args);
    }
    node.exec(&[
        "bridge",
        "fdb",
        "add",
        MAC1,
        "dst",
        NODE1,
        "dev",
        "vxlan.calico",
    ]);
    // veths compute no checksums: let the kernel fill them in before the wire.
    for dev in [fabric_end, "vxlan.calico"] {
        node.exec(&["ethtool", "-K", dev, "tx", "off"]);
    }
    node
}

fn vtep(node: &str, mac: &str, addr: &str, parent: &str) -> proto::ToDataplane {
    envelope(Payload::VtepUpdate(proto::VxlanTunnelEndpointUpdate {
        node: node.into(),
        mac: mac.into(),
        ipv4_addr: addr.into(),
        parent_device_ip: parent.into(),
        ..Default::default()
    }))
}

fn host(name: &str, ip: &str) -> proto::ToDataplane {
    envelope(Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
        hostname: name.into(),
        ipv4_addr: format!("{ip}/24"),
        ..Default::default()
    }))
}

fn profile(only_8080: bool) -> proto::ToDataplane {
    profile_allowing("kns.vxlan", only_8080)
}

fn snapshot(pod: &Pod, only_8080: bool) -> Vec<proto::ToDataplane> {
    let mut pool = ipam_pool("10.73.0.0/16", false, "Never");
    if let Some(Payload::IpamPoolUpdate(u)) = pool.payload.as_mut() {
        if let Some(p) = u.pool.as_mut() {
            p.vxlan_mode = "Always".into();
        }
    }
    vec![
        envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
            config: script::labels(&[("FelixHostname", "node1")]),
            ..Default::default()
        })),
        host("node1", NODE1),
        host("node2", NODE2),
        vtep("node1", MAC1, VTEP1, NODE1),
        vtep("node2", MAC2, VTEP2, NODE2),
        profile(only_8080),
        pool,
        pod.endpoint("vxlan/pod1", "kns.vxlan", false),
        envelope(Payload::RouteUpdate(proto::RouteUpdate {
            types: proto::RouteType::RemoteWorkload as i32,
            ip_pool_type: proto::IpPoolType::Vxlan as i32,
            dst: "10.73.2.0/26".into(),
            dst_node_name: "node2".into(),
            dst_node_ip: NODE2.into(),
            ..Default::default()
        })),
        script::in_sync(),
    ]
}

#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn a_vpp_pod_and_a_linux_node_pod_talk_over_vxlan() {
    let _one = serialise();
    let vpp = VppInstance::start();
    let (wire, uplink) = uplink_wire(&vpp, [0x02, 0xfe, 0, 0, 0x71, 1], NODE1);
    let linux = linux_vxlan_node(&wire.b);
    let _linux_server = linux.spawn_python(TCP_SERVER, &["8080"]);
    let pod = Pod::attach_as(&vpp, &unique("v"), [10, 73, 1], "fd73:1");
    let _pod_server = pod.spawn_python(TCP_SERVER, &["8080", "8081"]);

    // No tunnel yet: no way between them.
    assert!(!pod.connects(LINUX_POD, 8080));

    let mut d = Driver::on_vpp(&vpp, &[("CALICO_VPP_UPLINK_INTERFACE", uplink.as_str())]);
    d.send(&snapshot(&pod, false));
    d.wait_status("vxlan/pod1", Some("up"), CONVERGE);
    assert!(
        wait_until(CONVERGE, || pod.connects(LINUX_POD, 8080)),
        "VPP pod -> Linux pod over VXLAN\n{}\n{}\n{}\n{}",
        vpp.cli("show vxlan tunnel"),
        vpp.cli("show ip fib 10.73.2.0/26"),
        vpp.cli("show ip neighbors"),
        d.log()
    );
    assert!(
        linux.connects(&pod.v4.to_string(), 8080),
        "Linux pod -> VPP pod over VXLAN\n{}",
        vpp.cli("show errors")
    );
    // On the fabric, as node 2 receives it: UDP between the node addresses.
    let seen = linux.sniff(&wire.b, 17, || {
        assert!(pod.connects(LINUX_POD, 8080));
    });
    let want = format!("{NODE1} {NODE2} 20");
    assert!(
        seen.iter().any(|l| l.starts_with(&want)),
        "VXLAN from node1 to node2 on the fabric: {seen:?}"
    );

    // The VPP pod's policy holds for what came through the tunnel: only TCP 8080.
    d.send(&[profile(true)]);
    let dst = pod.v4.to_string();
    assert!(
        wait_until(CONVERGE, || !linux.connects(&dst, 8081)),
        "TCP 8081 from the Linux node denied"
    );
    assert!(linux.connects(&dst, 8080), "TCP 8080 still allowed");

    // A driver restart with the same snapshot: no write, still connected.
    d.stop();
    let mut d = Driver::on_vpp(&vpp, &[("CALICO_VPP_UPLINK_INTERFACE", uplink.as_str())]);
    d.send(&snapshot(&pod, true));
    d.wait_status("vxlan/pod1", Some("up"), CONVERGE);
    std::thread::sleep(Duration::from_secs(1));
    let writes = d.writes();
    assert_eq!(writes, 0, "restart made writes:\n{}", d.log());
    assert!(pod.connects(LINUX_POD, 8080));
    d.stop();
}
