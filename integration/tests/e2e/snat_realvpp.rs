//! SNAT for `natOutgoing` pools on a real VPP with real packets (issue 13: SNAT). One node:
//! pod A in the masquerading pool 10.74.0.0/16, pod B in the plain pool 10.75.0.0/16, and
//! an external host on the node's uplink (VPP 192.168.80.1, the host .2). Servers answer
//! each connection with the address they saw it come from.
//!
//! Shown: A reaches the external host with the node's address; B keeps its own; A → B
//! (pool to pool) keeps A's; a driver restart with the same snapshot makes no write; a
//! masquerade flip on A's pool is followed both ways.

use crate::common;

use std::time::Duration;

use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope};
use common::driver::{wait_until, Driver};
use common::realvpp::{ipam_pool, node1, serialise, unique, Pod, VppInstance};

const CONVERGE: Duration = Duration::from_secs(20);
const NODE_IP: &str = "192.168.80.1";

/// Answers each TCP connection on argv[1] with the peer's address, then closes it.
const PEER_SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    c, a = s.accept()
    c.sendall(a[0].encode())
    c.close()
"#;

/// Connects to argv[1]:argv[2] and prints what the server says.
const PEER_CLIENT: &str = r#"
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
c.settimeout(1.5)
print(c.recv(100).decode())
"#;

/// The address `dst`'s server saw `from`'s connection come from (empty: no connection).
fn seen_by(from: &Pod, dst: &str) -> String {
    let (_, out) = from.python(PEER_CLIENT, &[dst, "9000"]);
    out.trim().to_string()
}

fn pool(cidr: &str, masquerade: bool) -> proto::ToDataplane {
    ipam_pool(cidr, masquerade, "Never")
}

fn snapshot(a: &Pod, b: &Pod) -> Vec<proto::ToDataplane> {
    let allow = || proto::Rule {
        action: "allow".into(),
        ..Default::default()
    };
    let mut s = node1(NODE_IP);
    s.extend([
        envelope(Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
            id: Some(proto::ProfileId {
                name: "kns.snat".into(),
            }),
            profile: Some(proto::Profile {
                inbound_rules: vec![allow()],
                outbound_rules: vec![allow()],
            }),
        })),
        pool("10.74.0.0/16", true),
        pool("10.75.0.0/16", false),
        a.endpoint("snat/a", "kns.snat", false),
        b.endpoint("snat/b", "kns.snat", false),
        script::in_sync(),
    ]);
    s
}

fn driver(vpp: &VppInstance, uplink: &str) -> Driver {
    Driver::on_vpp(vpp, &[("CALICO_VPP_UPLINK_INTERFACE", uplink)])
}

#[test]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX (see README)"]
fn a_masquerading_pool_reaches_the_outside_with_the_node_address() {
    let _one = serialise();
    let vpp = VppInstance::start();
    // The external host: VPP's side of its link is the node's uplink, 192.168.80.1.
    let ext = Pod::attach_as(&vpp, &unique("x"), [192, 168, 80], "fd80:80");
    let uplink = format!("host-{}", ext.host_if);
    let a = Pod::attach_as(&vpp, &unique("s"), [10, 74, 1], "fd74:1");
    let b = Pod::attach_as(&vpp, &unique("s"), [10, 75, 1], "fd75:1");
    let _ext_server = ext.spawn_python(PEER_SERVER, &["9000"]);
    let _b_server = b.spawn_python(PEER_SERVER, &["9000"]);
    let ext_ip = ext.v4.to_string();
    let b_ip = b.v4.to_string();
    std::thread::sleep(Duration::from_millis(300));

    // Before the driver: VPP routes, nothing is translated.
    assert_eq!(seen_by(&a, &ext_ip), a.v4.to_string());

    let mut d = driver(&vpp, &uplink);
    d.send(&snapshot(&a, &b));
    d.wait_status("snat/a", Some("up"), CONVERGE);
    d.wait_status("snat/b", Some("up"), CONVERGE);

    let mut last = String::new();
    assert!(
        wait_until(CONVERGE, || {
            last = seen_by(&a, &ext_ip);
            last == NODE_IP
        }),
        "A (masquerading pool) to the outside leaves with the node address; seen {last:?}\n{}\n{}",
        vpp.cli("show cnat snat-policy"),
        d.log()
    );
    assert_eq!(
        seen_by(&b, &ext_ip),
        b_ip,
        "B (plain pool) keeps its address"
    );
    assert_eq!(
        seen_by(&a, &b_ip),
        a.v4.to_string(),
        "pool to pool keeps its source"
    );

    // A driver restart with the same snapshot: adopted, no write, still translated.
    d.stop();
    let mut d = driver(&vpp, &uplink);
    d.send(&snapshot(&a, &b));
    d.wait_status("snat/a", Some("up"), CONVERGE);
    std::thread::sleep(Duration::from_secs(1));
    let writes = d.writes();
    assert_eq!(writes, 0, "restart made writes:\n{}", d.log());
    assert_eq!(seen_by(&a, &ext_ip), NODE_IP);

    // The pool stops masquerading, then starts again.
    d.send(&[pool("10.74.0.0/16", false)]);
    assert!(
        wait_until(CONVERGE, || {
            last = seen_by(&a, &ext_ip);
            last == a.v4.to_string()
        }),
        "masquerade off: A keeps its address; seen {last:?}\n{}\n{}\n{}",
        vpp.cli("show cnat snat-policy"),
        vpp.cli("show cnat session"),
        d.log()
    );
    d.send(&[pool("10.74.0.0/16", true)]);
    assert!(
        wait_until(CONVERGE, || seen_by(&a, &ext_ip) == NODE_IP),
        "masquerade on again\n{}",
        d.log()
    );
    d.stop();
}
