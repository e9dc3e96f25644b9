//! Between nodes, on two real VPPs with real packets (issue 13: IPIP and no encapsulation). Two VPP
//! instances are two nodes joined by a veth "fabric" (each VPP's uplink is its af_packet
//! end, 192.168.70.1 and .2); each node has a pod in the IPIP-Always pool 10.72.0.0/16
//! and runs its own driver, fed by its own Felix script: its own host metadata, the other
//! node's, and a `REMOTE_WORKLOAD` route for the other node's block.
//!
//! Shown: pods reach each other only through the tunnels the drivers build; what crosses
//! the fabric is plain IP-in-IP (protocol 4, the nodes' addresses outside, no options),
//! which is what Felix's Linux `tunl0` sends and accepts; policy is still enforced on the
//! traffic that came through a tunnel; a driver restart with the same snapshot makes no
//! write; and a withdrawn route takes its tunnel with it.

use crate::common;

use std::time::Duration;

use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope};
use common::driver::{wait_until, Driver};
use common::realvpp::{
    attach_af_packet, ipam_pool, profile_allowing, serialise, sniff, uplink_wire, LinuxNode, Pod,
    VppInstance, Wire, TCP_SERVER,
};

const CONVERGE: Duration = Duration::from_secs(20);
const NODE_IPS: [&str; 2] = ["192.168.70.1", "192.168.70.2"];
/// The nodes' IPv6 addresses on the fabric (VXLAN over IPv6 uses them).
const NODE_IPS6: [&str; 2] = ["fd00:70::1", "fd00:70::2"];

fn host(n: usize) -> proto::ToDataplane {
    envelope(Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
        hostname: format!("node{}", n + 1),
        ipv4_addr: format!("{}/24", NODE_IPS[n]),
        ipv6_addr: format!("{}/64", NODE_IPS6[n]),
        ..Default::default()
    }))
}

/// How the pool's blocks cross between nodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encap {
    Ipip,
    Vxlan,
    None,
}

fn remote_block(encap: Encap, dst: &str, node: &str, node_ip: &str) -> proto::ToDataplane {
    let pool_type = match encap {
        Encap::Ipip => proto::IpPoolType::Ipip,
        Encap::Vxlan => proto::IpPoolType::Vxlan,
        Encap::None => proto::IpPoolType::NoEncap,
    };
    envelope(Payload::RouteUpdate(proto::RouteUpdate {
        types: proto::RouteType::RemoteWorkload as i32,
        ip_pool_type: pool_type as i32,
        dst: dst.into(),
        dst_node_name: node.into(),
        dst_node_ip: node_ip.into(),
        ..Default::default()
    }))
}

fn profile(only_8080: bool) -> proto::ToDataplane {
    profile_allowing("kns.tunnels", only_8080)
}

/// Node `me` (0 or 1): its Felix snapshot, with pod `pod` and a route to the other node's
/// block.
fn snapshot(encap: Encap, me: usize, pod: &Pod) -> Vec<proto::ToDataplane> {
    let other = 1 - me;
    vec![
        envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
            config: script::labels(&[("FelixHostname", &format!("node{}", me + 1))]),
            ..Default::default()
        })),
        host(0),
        host(1),
        // Both nodes' VTEPs (only VXLAN uses them): MAC, tunnel address, node address.
        vtep(1),
        vtep(2),
        profile(false),
        pool("10.72.0.0/16", encap),
        // VXLAN is dual-stack here: IPv6 blocks cross in IPv6 VXLAN between the nodes'
        // IPv6 addresses.
        pool("fd72::/16", encap),
        pod.endpoint(
            &format!("tunnels/pod{}", me + 1),
            "kns.tunnels",
            encap == Encap::Vxlan,
        ),
        remote_block(
            encap,
            &format!("10.72.{}.0/26", other + 1),
            &format!("node{}", other + 1),
            NODE_IPS[other],
        ),
        remote_block(
            encap,
            &format!("fd72:{}::/122", other + 1),
            &format!("node{}", other + 1),
            NODE_IPS6[other],
        ),
        script::in_sync(),
    ]
}

fn vtep(n: usize) -> proto::ToDataplane {
    envelope(Payload::VtepUpdate(proto::VxlanTunnelEndpointUpdate {
        node: format!("node{n}"),
        mac: format!("66:00:00:72:00:{n:02x}"),
        ipv4_addr: format!("10.72.{n}.64"),
        parent_device_ip: NODE_IPS[n - 1].into(),
        mac_v6: format!("66:00:00:72:06:{n:02x}"),
        ipv6_addr: format!("fd72:{n}::40"),
        parent_device_ipv6: NODE_IPS6[n - 1].into(),
    }))
}

fn pool(cidr: &str, encap: Encap) -> proto::ToDataplane {
    let mut pool = ipam_pool(
        cidr,
        false,
        if encap == Encap::Ipip {
            "Always"
        } else {
            "Never"
        },
    );
    if let Some(Payload::IpamPoolUpdate(u)) = pool.payload.as_mut() {
        if let Some(p) = u.pool.as_mut() {
            p.vxlan_mode = if encap == Encap::Vxlan {
                "Always"
            } else {
                "Never"
            }
            .into();
        }
    }
    pool
}

fn driver(vpp: &VppInstance, uplink: &str) -> Driver {
    Driver::on_vpp(vpp, &[("CALICO_VPP_UPLINK_INTERFACE", uplink)])
}

#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn pods_on_two_vpp_nodes_talk_through_ipip_tunnels_the_drivers_build() {
    two_nodes(Encap::Ipip);
}

/// The same over VXLAN: L2 VXLAN tunnels between the VTEPs Felix advertises.
#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn pods_on_two_vpp_nodes_talk_through_vxlan_tunnels_the_drivers_build() {
    two_nodes(Encap::Vxlan);
}

/// The same without encapsulation: the block goes via the other node's address on the
/// fabric, pod addresses cross it bare, and policy still holds for what enters by the
/// uplink (npol needs cnat there too).
#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn pods_on_two_vpp_nodes_talk_without_encapsulation() {
    two_nodes(Encap::None);
}

fn two_nodes(encap: Encap) {
    let _one = serialise();
    let vpp1 = VppInstance::start();
    let vpp2 = VppInstance::start();
    let wire = Wire::new();
    for (n, (vpp, end)) in [(&vpp1, &wire.a), (&vpp2, &wire.b)].into_iter().enumerate() {
        attach_af_packet(
            vpp,
            end,
            [0x02, 0xfe, 0, 0, 0x70, n as u8 + 1],
            &[
                (NODE_IPS[n].parse().unwrap(), 24),
                (NODE_IPS6[n].parse().unwrap(), 64),
            ],
        );
    }
    let uplink1 = format!("host-{}", wire.a);
    let uplink2 = format!("host-{}", wire.b);
    let pod1 = Pod::attach_as(&vpp1, &common::realvpp::unique("t"), [10, 72, 1], "fd72:1");
    let pod2 = Pod::attach_as(&vpp2, &common::realvpp::unique("t"), [10, 72, 2], "fd72:2");
    let _server = pod2.spawn_python(TCP_SERVER, &["8080", "8081"]);

    // Before any driver: no way between the pods.
    assert_eq!(pod1.ping(&pod2.v4.to_string(), 201, 1), 0);

    let mut d1 = driver(&vpp1, &uplink1);
    let mut d2 = driver(&vpp2, &uplink2);
    d1.send(&snapshot(encap, 0, &pod1));
    d2.send(&snapshot(encap, 1, &pod2));
    d1.wait_status("tunnels/pod1", Some("up"), CONVERGE);
    d2.wait_status("tunnels/pod2", Some("up"), CONVERGE);

    let show = match encap {
        Encap::Vxlan => "show vxlan tunnel",
        Encap::Ipip | Encap::None => "show ipip tunnel",
    };
    let dst = pod2.v4.to_string();
    assert!(
        wait_until(CONVERGE, || pod1.ping(&dst, 202, 1) == 1),
        "pod1 -> pod2 through the tunnels\nnode1: {}\n{}\nnode2: {}\n{}\nlog1:\n{}",
        vpp1.cli(show),
        vpp1.cli("show ip fib 10.72.2.0/26"),
        vpp2.cli(show),
        vpp2.cli("show ip fib 10.72.1.0/26"),
        d1.log()
    );
    assert!(pod1.connects(&dst, 8080), "TCP pod1 -> pod2 across nodes");
    if encap == Encap::Vxlan {
        let dst6 = pod2.v6.to_string();
        assert!(
            wait_until(CONVERGE, || pod1.connects(&dst6, 8080)),
            "TCP over IPv6 VXLAN\nnode1: {}\n{}\nlog1:\n{}",
            vpp1.cli(show),
            vpp1.cli("show ip6 fib fd72:2::/122"),
            d1.log()
        );
    }

    // On the wire: plain IP-in-IP between the node addresses, no options, inner TCP (6);
    // or, without encapsulation, TCP between the pod addresses.
    let (proto, there, back) = match encap {
        Encap::Ipip => (
            4,
            format!("{} {} 20 6", NODE_IPS[0], NODE_IPS[1]),
            format!("{} {} 20 6", NODE_IPS[1], NODE_IPS[0]),
        ),
        Encap::Vxlan => (
            17,
            format!("{} {} 20", NODE_IPS[0], NODE_IPS[1]),
            format!("{} {} 20", NODE_IPS[1], NODE_IPS[0]),
        ),
        Encap::None => (
            6,
            format!("{} {} 20", pod1.v4, pod2.v4),
            format!("{} {} 20", pod2.v4, pod1.v4),
        ),
    };
    let seen = sniff(None, &wire.b, proto, || {
        assert!(pod1.connects(&dst, 8081));
    });
    assert!(
        seen.iter().any(|l| l.starts_with(&there)),
        "{encap:?} from node1 to node2 on the fabric, want {there}: {seen:?}"
    );
    let seen = sniff(None, &wire.a, proto, || {
        assert!(pod1.connects(&dst, 8081));
    });
    assert!(
        seen.iter().any(|l| l.starts_with(&back)),
        "{encap:?} replies from node2, want {back}: {seen:?}"
    );

    // Policy still applies to what came through the tunnel: only TCP 8080 into pod2.
    d2.send(&[profile(true)]);
    assert!(
        wait_until(CONVERGE, || !pod1.connects(&dst, 8081)),
        "TCP 8081 denied by pod2's policy"
    );
    assert!(
        wait_until(CONVERGE, || pod1.connects(&dst, 8080)),
        "TCP 8080 still allowed\n{}\n{}\n{}",
        vpp2.cli("show npol interfaces"),
        vpp2.cli("show npol policies"),
        d2.log()
    );
    assert_eq!(pod1.ping(&dst, 203, 2), 0, "ICMP denied by pod2's policy");

    // A driver restart with the same snapshot adopts tunnels and routes: no write.
    let mut snap = snapshot(encap, 1, &pod2);
    let in_sync = snap.len() - 1;
    snap.insert(in_sync, profile(true));
    d2.stop();
    let mut d2 = driver(&vpp2, &uplink2);
    d2.send(&snap);
    d2.wait_status("tunnels/pod2", Some("up"), CONVERGE);
    std::thread::sleep(Duration::from_secs(1));
    let writes = d2.writes();
    assert_eq!(writes, 0, "restart made writes:\n{}", d2.log());
    assert!(
        pod1.connects(&dst, 8080),
        "still connected after the restart"
    );

    // Felix withdraws node1's route to node2's block: the route (and the tunnel) go.
    d1.send(&[envelope(Payload::RouteRemove(proto::RouteRemove {
        dst: "10.72.2.0/26".into(),
    }))]);
    assert!(
        wait_until(CONVERGE, || !vpp1
            .cli("show ip fib 10.72.2.0/26")
            .contains("10.72.2.0/26")),
        "route deleted: {}",
        vpp1.cli("show ip fib 10.72.2.0/26")
    );
    assert!(
        wait_until(CONVERGE, || !vpp1.cli(show).contains(NODE_IPS[1])),
        "tunnel deleted: {}",
        vpp1.cli(show)
    );
    assert!(!pod1.connects(&dst, 8080), "no route, no connection");
    d1.stop();
    d2.stop();
}

/// A userspace stand-in for Linux's `tunl0` (this kernel has no `ipip` module): a TUN
/// device argv[1] whose IPv4 packets leave as plain IP-in-IP (protocol 4, the kernel's
/// own outer header, no options) to argv[2], and IP-in-IP from argv[2] delivered back
/// into it — what `tunl0` does.
const IPIP_STANDIN: &str = r#"
import fcntl, os, select, socket, struct, sys
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", sys.argv[1].encode(), 0x0001 | 0x1000))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
peer = sys.argv[2]
while True:
    r, _, _ = select.select([tun, raw], [], [])
    if tun in r:
        pkt = os.read(tun, 65535)
        if pkt and pkt[0] >> 4 == 4:
            raw.sendto(pkt, (peer, 0))
    if raw in r:
        data, addr = raw.recvfrom(65535)
        if addr[0] == peer:
            os.write(tun, data[(data[0] & 15) * 4:])
"#;

/// IPIP between a VPP node and a node with Felix's Linux dataplane (its `tunl0` played by
/// [`IPIP_STANDIN`]): TCP both ways between the VPP pod and the Linux node's pod, plain
/// IP-in-IP between the node addresses on the fabric.
#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn a_vpp_pod_and_a_linux_node_pod_talk_over_ipip() {
    let _one = serialise();
    let vpp = VppInstance::start();
    let (wire, uplink) = uplink_wire(&vpp, [0x02, 0xfe, 0, 0, 0x70, 1], NODE_IPS[0]);
    // Node 2: Linux, its pod 10.72.2.5, node 1's block into its tunl0.
    let linux = LinuxNode::new(&wire.b, &format!("{}/24", NODE_IPS[1]), "10.72.2.5");
    let _tunl = linux.spawn_python(IPIP_STANDIN, &["tunl0", NODE_IPS[0]]);
    assert!(
        wait_until(Duration::from_secs(5), || linux
            .exec(&["ip", "link"])
            .contains("tunl0")),
        "the IP-in-IP stand-in's device"
    );
    linux.ip(&["link", "set", "tunl0", "mtu", "1480", "up"]);
    linux.ip(&["route", "add", "10.72.1.0/26", "dev", "tunl0"]);
    let _linux_server = linux.spawn_python(TCP_SERVER, &["8080"]);
    let pod = Pod::attach_as(&vpp, &common::realvpp::unique("t"), [10, 72, 1], "fd72:1");
    let _pod_server = pod.spawn_python(TCP_SERVER, &["8080"]);
    assert!(!pod.connects(&linux.pod, 8080), "no tunnel yet");

    let mut d = driver(&vpp, &uplink);
    d.send(&snapshot(Encap::Ipip, 0, &pod));
    d.wait_status("tunnels/pod1", Some("up"), CONVERGE);
    assert!(
        wait_until(CONVERGE, || pod.connects(&linux.pod, 8080)),
        "VPP pod -> Linux pod over IPIP\n{}\n{}",
        vpp.cli("show ipip tunnel"),
        d.log()
    );
    assert!(
        linux.connects(&pod.v4.to_string(), 8080),
        "Linux pod -> VPP pod over IPIP\n{}",
        vpp.cli("show errors")
    );
    let seen = linux.sniff(&wire.b, 4, || {
        assert!(pod.connects(&linux.pod, 8080));
    });
    let want = format!("{} {} 20 6", NODE_IPS[0], NODE_IPS[1]);
    assert!(
        seen.contains(&want),
        "plain IP-in-IP from the VPP node on the fabric: {seen:?}"
    );
    d.stop();
}
