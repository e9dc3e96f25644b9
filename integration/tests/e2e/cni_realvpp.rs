//! Pods wired by the driver for Calico's CNI plugin, on a real VPP with real packets (issue
//! 14), with the veth + af_packet back-end (these machines have no `/dev/vhost-net`).
//!
//! Two pods are added through the gRPC `Add` exactly as the plugin sends it (prefix-length
//! addresses, gateway "<nil>", both default routes, MTU 0), then Felix's endpoints (no MAC,
//! as with the Kubernetes datastore) with a profile allowing only TCP 8080 in. Shown: a pod
//! whose endpoint has not arrived gets nothing through; the very first connection after the
//! endpoints arrive is allowed on 8080 (no warm ARP) and denied on 9090; after a VPP restart
//! the same pods (same namespace, same MAC, same addresses) reach each other again without
//! being re-added; a driver restart adopts them with no write; `Del` leaves VPP's interface
//! table and the host's links as they were.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use calico_vpp_driver::cni::{client, proto as cni};
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::script;
use common::driver::{wait_until, Driver};
use common::realvpp::{
    attach_af_packet, block_on, cni_endpoint, interface_count, ipam_pool, node1, profile_allowing,
    run, serialise, unique, Background, VppInstance, Wire, PYTHON, TCP_SERVER,
};

const CONVERGE: Duration = Duration::from_secs(20);
const NODE_IP: &str = "192.168.81.1";

/// A network namespace the test made, as the container runtime would.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = unique("c");
        let _ = run("ip", &["netns", "del", &name]);
        run("ip", &["netns", "add", &name]).unwrap();
        Netns(name)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.0))
    }

    fn python(&self, code: &str, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.0, PYTHON, "-c", code])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn connects(&self, dst: &str, port: u16) -> bool {
        let code = format!(
            "import socket\nsocket.create_connection(('{dst}',{port}),timeout=1.2).close()"
        );
        self.python(&code, &[])
    }

    fn spawn(&self, code: &str, args: &[&str]) -> Background {
        Background::spawn(
            Command::new("ip")
                .args(["netns", "exec", &self.0, PYTHON, "-c", code])
                .args(args),
        )
    }

    fn link(&self) -> String {
        run("ip", &["-n", &self.0, "-o", "link", "show", "eth0"]).unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

/// A pod as the plugin names it: host interface `cali` + 11 hex digits.
fn host_name(n: u8) -> String {
    format!(
        "cali{:011x}",
        0xc0ffee00 + u64::from(n) + u64::from(std::process::id()) * 256
    )
}

fn add_request(ns: &Netns, name: &str, ip: &str) -> cni::AddRequest {
    cni::AddRequest {
        interface_name: "eth0".into(),
        netns: ns.path().display().to_string(),
        desired_host_interface_name: name.into(),
        settings: Some(cni::ContainerSettings {
            allow_ip_forwarding: false,
            mtu: 0,
        }),
        container_ips: vec![cni::IpConfig {
            address: format!("{ip}/26"),
            gateway: "<nil>".into(),
        }],
        container_routes: vec!["0.0.0.0/0".into(), "::/0".into()],
        workload: Some(cni::WorkloadIDs {
            name: name.into(),
            namespace: "cni".into(),
            orchestrator: "k8s".into(),
            ..Default::default()
        }),
        dataplane_options: [
            ("type".to_string(), "grpc".to_string()),
            (
                "socket".to_string(),
                "unix:///var/run/calico/cni-server.sock".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    }
}

fn add(socket: &Path, req: cni::AddRequest) -> cni::AddReply {
    block_on(async {
        let mut c = client::connect(socket).await.unwrap();
        c.add(req).await.unwrap().into_inner()
    })
}

fn del(socket: &Path, ns: &Netns) -> cni::DelReply {
    block_on(async {
        let mut c = client::connect(socket).await.unwrap();
        c.del(cni::DelRequest {
            interface_name: "eth0".into(),
            netns: ns.path().display().to_string(),
            dataplane_options: Default::default(),
        })
        .await
        .unwrap()
        .into_inner()
    })
}

/// Felix's endpoint for one of the test's pods (no MAC, profile `kns.cni`).
fn endpoint(workload: &str, name: &str, ip: &str) -> proto::ToDataplane {
    cni_endpoint(workload, name, ip, "kns.cni")
}

fn snapshot() -> Vec<proto::ToDataplane> {
    let mut s = node1(NODE_IP);
    s.extend([
        profile_allowing("kns.cni", true),
        ipam_pool("10.76.0.0/16", false, "Never"),
        script::in_sync(),
    ]);
    s
}

fn vpp_has(vpp: &VppInstance, name: &str) -> bool {
    vpp.cli("show interface").contains(&format!("host-{name}"))
}

const UPLINK_MAC: [u8; 6] = [0x02, 0, 0, 0x51, 0, 1];

/// The node's uplink: VPP's side of `wire` (what VPP's own startup configuration makes).
fn attach_uplink(vpp: &VppInstance, wire: &Wire) -> String {
    attach_af_packet(vpp, &wire.a, UPLINK_MAC, &[(NODE_IP.parse().unwrap(), 24)]);
    format!("host-{}", wire.a)
}

#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn pods_added_through_the_cni_server_are_policed_and_survive_a_vpp_restart() {
    let _one = serialise();
    let mut vpp = VppInstance::start();
    let wire = Wire::new();
    let uplink = attach_uplink(&vpp, &wire);
    let baseline = interface_count(&vpp);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cni.sock");
    let env = [
        ("CALICO_VPP_UPLINK_INTERFACE", uplink.as_str()),
        ("CALICO_VPP_CNI_SOCKET", socket.to_str().unwrap()),
        ("CALICO_VPP_POD_INTERFACE", "veth"),
    ];
    let mut d = Driver::on_vpp(&vpp, &env);
    d.send(&snapshot());
    assert!(
        wait_until(CONVERGE, || socket.exists()),
        "no CNI socket\n{}",
        d.log()
    );
    // The driver refuses Adds (the plugin retries) until it has Felix's pools: its first
    // reconcile pass follows Felix's snapshot.
    assert!(
        wait_until(CONVERGE, || d.log().contains("reconcile pass")),
        "Felix's snapshot never applied\n{}",
        d.log()
    );
    let (a, b) = (Netns::new(), Netns::new());
    let (name_a, name_b) = (host_name(1), host_name(2));
    let (ip_a, ip_b) = ("10.76.0.2", "10.76.0.3");

    // Adds, exactly as the plugin sends them; a repeated Add answers the same.
    let reply_a = add(&socket, add_request(&a, &name_a, ip_a));
    assert!(reply_a.successful, "{reply_a:?}\n{}", d.log());
    assert_eq!(reply_a.host_interface_name, name_a);
    assert_eq!(add(&socket, add_request(&a, &name_a, ip_a)), reply_a);
    let reply_b = add(&socket, add_request(&b, &name_b, ip_b));
    assert!(reply_b.successful, "{reply_b:?}\n{}", d.log());
    assert!(
        a.link().contains(&reply_a.container_mac),
        "the reply names eth0's MAC: {reply_a:?} {}",
        a.link()
    );
    assert!(vpp_has(&vpp, &name_a) && vpp_has(&vpp, &name_b));
    // Bad input: an address outside every pool; the name of another pod.
    let bad = add(
        &socket,
        add_request(&Netns::new(), &host_name(3), "10.99.0.2"),
    );
    assert!(
        !bad.successful && bad.error_message.contains("no IP pool"),
        "{bad:?}"
    );
    let taken = add(&socket, add_request(&Netns::new(), &name_a, "10.76.0.9"));
    assert!(!taken.successful, "{taken:?}");

    let _server = b.spawn(TCP_SERVER, &["8080", "9090"]);
    std::thread::sleep(Duration::from_millis(300));
    // No endpoint from Felix yet: nothing gets through (fail closed).
    assert!(
        !a.connects(ip_b, 8080),
        "a pod without its endpoint must be dark"
    );

    // Felix's endpoints; the very first connection after them is allowed on 8080.
    d.send(&[
        endpoint("cni/a", &name_a, ip_a),
        endpoint("cni/b", &name_b, ip_b),
    ]);
    d.wait_status("cni/a", Some("up"), CONVERGE);
    d.wait_status("cni/b", Some("up"), CONVERGE);
    assert!(
        a.connects(ip_b, 8080),
        "first connection to an allowed port\n{}\n{}",
        vpp.cli("show ip neighbors"),
        d.log()
    );
    assert!(!a.connects(ip_b, 9090), "9090 is not allowed into b");

    // A driver restart adopts the pods: no write.
    d.stop();
    let mut d = Driver::on_vpp(&vpp, &env);
    d.send(&snapshot());
    d.send(&[
        endpoint("cni/a", &name_a, ip_a),
        endpoint("cni/b", &name_b, ip_b),
    ]);
    d.wait_status("cni/a", Some("up"), CONVERGE);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.writes(), 0, "restart made writes:\n{}", d.log());

    // VPP restarts under the running driver: the same pods, untouched (same namespace,
    // same eth0), reach each other again once the driver has rebuilt VPP's side.
    let link_a = a.link();
    vpp.restart();
    attach_uplink(&vpp, &wire);
    assert!(
        wait_until(CONVERGE, || a.connects(ip_b, 8080)),
        "pods reach each other after the VPP restart\n{}\n{}\n{}\n{}\n{}",
        vpp.cli("show interface"),
        vpp.cli("show ip fib 10.76.0.3/32"),
        vpp.cli("show ip neighbors"),
        vpp.cli("show acl-plugin interface"),
        d.log()
    );
    assert!(!a.connects(ip_b, 9090));
    assert_eq!(a.link(), link_a, "the pod's interface was not re-created");
    d.wait_status("cni/a", Some("up"), CONVERGE);

    // Del removes everything the Adds made; a second Del succeeds.
    for ns in [&a, &b] {
        let r = del(&socket, ns);
        assert!(r.successful, "{r:?}");
    }
    assert!(del(&socket, &a).successful);
    assert!(!vpp_has(&vpp, &name_a) && !vpp_has(&vpp, &name_b));
    assert!(
        run("ip", &["link", "show", &name_a]).is_err(),
        "the veth is gone"
    );
    assert_eq!(
        interface_count(&vpp),
        baseline,
        "{}",
        vpp.cli("show interface")
    );
    d.stop();
}
