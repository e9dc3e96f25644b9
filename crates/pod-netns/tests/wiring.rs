//! Real-kernel tests: they need root and network namespaces, and `ip` and
//! `ethtool` to look at the result. Each test builds its own namespaces (see
//! `support`), so they run in parallel and leave nothing behind.

mod support;

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use ipnet::IpNet;
use pod_netns::{
    configure_tun, create_veth, delete_veth, host_link_exists, link_mac, netns_exists, NetnsError,
    PodLink,
};
use support::{in_netns, mac_string, Namespaces};

const GATEWAY_MAC: [u8; 6] = [0x02, 0xfe, 0x00, 0x00, 0x00, 0x01];

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn dual_stack(ns: &Namespaces) -> PodLink {
    PodLink {
        netns: ns.pod_path(),
        ifname: "eth0".to_string(),
        host_ifname: ns.host_ifname(),
        mtu: 1400,
        addrs: vec![net("192.0.2.10/32"), net("2001:db8::10/128")],
        gateway_mac: GATEWAY_MAC,
        routes: vec![net("0.0.0.0/0"), net("::/0")],
        ip_forwarding: true,
    }
}

#[test]
fn create_veth_wires_a_pure_l3_pod() {
    let ns = Namespaces::new("wire");
    let link = dual_stack(&ns);
    let host = link.host_ifname.clone();
    let mac = ns.in_host(|| create_veth(&link)).expect("create_veth");

    let eth0 = ns.ip(&ns.pod, "-o link show dev eth0");
    assert!(eth0.contains("mtu 1400"), "{eth0}");
    assert!(eth0.contains(",UP"), "{eth0}");
    assert!(
        eth0.contains(&format!("link/ether {}", mac_string(mac))),
        "{eth0}"
    );
    let lo = ns.ip(&ns.pod, "-o link show dev lo");
    assert!(lo.contains(",UP"), "{lo}");

    let host_end = ns.ip(&ns.host, &format!("-o link show dev {host}"));
    assert!(host_end.contains("mtu 1400"), "{host_end}");
    assert!(host_end.contains(",UP"), "{host_end}");
    assert_eq!(
        ns.sysctl(&ns.host, &format!("net/ipv6/conf/{host}/disable_ipv6")),
        "1"
    );
    let host_addrs = ns.ip(&ns.host, &format!("-o addr show dev {host}"));
    assert!(!host_addrs.contains("inet6"), "{host_addrs}");

    let addrs = ns.ip(&ns.pod, "-o addr show dev eth0");
    assert!(addrs.contains("inet 192.0.2.10/32"), "{addrs}");
    let v6 = addrs
        .lines()
        .find(|l| l.contains("inet6 2001:db8::10/128"))
        .unwrap_or_else(|| panic!("no IPv6 pod address in {addrs}"));
    assert!(v6.contains("nodad"), "{v6}");
    assert!(!v6.contains("tentative"), "{v6}");

    let routes4 = ns.ip(&ns.pod, "-4 route show");
    assert!(
        routes4.contains("default via 169.254.1.1 dev eth0"),
        "{routes4}"
    );
    assert!(
        routes4.contains("169.254.1.1 dev eth0 scope link"),
        "{routes4}"
    );
    let routes6 = ns.ip(&ns.pod, "-6 route show");
    assert!(
        routes6.contains("default via fe80::1 dev eth0"),
        "{routes6}"
    );

    let neigh = ns.ip(&ns.pod, "neigh show dev eth0");
    let gw = mac_string(GATEWAY_MAC);
    assert!(
        neigh.contains(&format!("169.254.1.1 lladdr {gw} PERMANENT")),
        "{neigh}"
    );
    assert!(
        neigh.contains(&format!("fe80::1 lladdr {gw} PERMANENT")),
        "{neigh}"
    );

    for (netns, ifname) in [(&ns.pod, "eth0"), (&ns.host, host.as_str())] {
        let features = ns.exec(netns, &["ethtool", "-k", ifname]);
        assert!(
            features.contains("tx-checksumming: off"),
            "{ifname}: {features}"
        );
    }

    assert_eq!(ns.sysctl(&ns.pod, "net/ipv4/ip_forward"), "1");
    assert_eq!(ns.sysctl(&ns.pod, "net/ipv6/conf/all/forwarding"), "1");

    assert_eq!(
        link_mac(&ns.pod_path(), "eth0").expect("link_mac"),
        Some(mac)
    );
    assert_eq!(link_mac(&ns.pod_path(), "eth9").expect("link_mac"), None);
    assert!(
        ns.in_host(|| host_link_exists(&host))
            .expect("host_link_exists"),
        "host end is missing"
    );
}

/// End to end through the veth: a TCP connection from the pod to a stand-in
/// for VPP on the host end (which takes the gateway's address and MAC).
#[test]
fn pod_traffic_reaches_the_gateway_and_back() {
    let ns = Namespaces::new("tcp");
    let link = PodLink {
        addrs: vec![net("192.0.2.20/32")],
        ip_forwarding: false,
        ..dual_stack(&ns)
    };
    let host = link.host_ifname.clone();
    ns.in_host(|| create_veth(&link)).expect("create_veth");

    // A family without addresses gets neither routes nor a gateway.
    assert!(!ns.ip(&ns.pod, "-6 route show").contains("default"));
    assert!(!ns.ip(&ns.pod, "neigh show").contains("fe80::1"));

    ns.ip(
        &ns.host,
        &format!("link set dev {host} address {}", mac_string(GATEWAY_MAC)),
    );
    ns.ip(&ns.host, &format!("addr add 169.254.1.1/32 dev {host}"));
    ns.ip(&ns.host, &format!("route add 192.0.2.20/32 dev {host}"));

    let listener = ns.in_host(|| {
        TcpListener::bind((Ipv4Addr::new(169, 254, 1, 1), 0)).expect("listen on the gateway")
    });
    let port = listener.local_addr().expect("listener address").port();
    let greeting = in_netns(&ns.pod, || {
        let gateway = SocketAddr::from((Ipv4Addr::new(169, 254, 1, 1), port));
        let mut stream =
            TcpStream::connect_timeout(&gateway, Duration::from_secs(5)).expect("pod connects");
        stream.write_all(b"hello from the pod").expect("send");
        stream.local_addr().expect("pod side address")
    });
    assert_eq!(greeting.ip().to_string(), "192.0.2.20");
    let (mut accepted, peer) = listener.accept().expect("accept");
    assert_eq!(peer.ip().to_string(), "192.0.2.20");
    let mut buf = String::new();
    accepted.read_to_string(&mut buf).expect("read");
    assert_eq!(buf, "hello from the pod");
}

#[test]
fn create_veth_again_changes_nothing_and_restores_what_is_missing() {
    let ns = Namespaces::new("again");
    let link = dual_stack(&ns);
    let first = ns
        .in_host(|| create_veth(&link))
        .expect("first create_veth");
    let before = ns.pod_snapshot("eth0");
    let host = link.host_ifname.as_str();
    let host_before = ns.link_summary(&ns.host, host);

    let second = ns
        .in_host(|| create_veth(&link))
        .expect("second create_veth");
    assert_eq!(first, second);
    assert_eq!(ns.pod_snapshot("eth0"), before);
    assert_eq!(ns.link_summary(&ns.host, host), host_before);
    assert!(host_before.contains("mtu 1400"), "{host_before}");

    ns.ip(&ns.pod, "-4 route del default");
    ns.ip(&ns.pod, "-6 route del default");
    ns.ip(&ns.pod, "neigh del 169.254.1.1 dev eth0");
    ns.ip(&ns.pod, "addr del 2001:db8::10/128 dev eth0");
    let third = ns
        .in_host(|| create_veth(&link))
        .expect("third create_veth");
    assert_eq!(first, third);
    assert_eq!(ns.pod_snapshot("eth0"), before);
}

#[test]
fn create_veth_refuses_a_host_name_whose_peer_is_in_another_netns() {
    let mut ns = Namespaces::new("taken");
    let other = ns.add_extra("other");
    let link = dual_stack(&ns);
    let host = link.host_ifname.clone();
    ns.ip(
        &ns.host,
        &format!("link add {host} type veth peer name eth0 netns {other}"),
    );

    let err = ns
        .in_host(|| create_veth(&link))
        .expect_err("name is taken");
    match &err {
        NetnsError::NameTaken { name, .. } => assert_eq!(name, &host),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert!(
        err.to_string().contains("another network namespace"),
        "{err}"
    );
    // Nothing changed: the pod is untouched and the other pod keeps its veth.
    assert_eq!(ns.links(&ns.pod), ["lo"]);
    assert!(ns.links(&ns.host).contains(&host));
    let others = ns.ip(&other, "-o addr show dev eth0");
    assert!(!others.contains("192.0.2.10"), "{others}");
}

#[test]
fn create_veth_refuses_host_names_that_are_not_this_pods_veth() {
    let ns = Namespaces::new("notpod");
    let host = ns.host_ifname();
    // A veth with both ends in the host namespace.
    ns.ip(
        &ns.host,
        &format!("link add {host} type veth peer name {host}p"),
    );
    let link = dual_stack(&ns);
    let err = ns
        .in_host(|| create_veth(&link))
        .expect_err("name is taken");
    assert!(
        matches!(&err, NetnsError::NameTaken { name, .. } if name == &host),
        "{err:?}"
    );

    // Not a veth at all.
    let on_lo = PodLink {
        host_ifname: "lo".to_string(),
        ..dual_stack(&ns)
    };
    let err = ns.in_host(|| create_veth(&on_lo)).expect_err("lo is taken");
    assert!(
        matches!(&err, NetnsError::NameTaken { name, reason } if name == "lo" && reason.contains("not a veth")),
        "{err:?}"
    );
    assert_eq!(ns.links(&ns.pod), ["lo"]);
}

#[test]
fn create_veth_refuses_a_pod_that_already_has_the_interface() {
    let ns = Namespaces::new("haseth");
    ns.ip(&ns.pod, "link add eth0 type veth peer name other0");
    let link = dual_stack(&ns);
    let host = link.host_ifname.clone();
    let err = ns
        .in_host(|| create_veth(&link))
        .expect_err("eth0 is taken");
    assert!(
        matches!(&err, NetnsError::NameTaken { name, .. } if name == "eth0"),
        "{err:?}"
    );
    assert!(!ns.links(&ns.host).contains(&host));
}

#[test]
fn missing_netns_is_reported_as_such() {
    let ns = Namespaces::new("nons");
    let missing = PathBuf::from(format!(
        "/var/run/netns/pnt-{}-does-not-exist",
        std::process::id()
    ));
    assert!(!netns_exists(&missing));
    assert!(netns_exists(&ns.pod_path()));

    let link = PodLink {
        netns: missing.clone(),
        ..dual_stack(&ns)
    };
    let err = ns.in_host(|| create_veth(&link)).expect_err("no netns");
    assert!(
        matches!(&err, NetnsError::NoNetns { path } if path == &missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!ns.links(&ns.host).contains(&link.host_ifname));

    assert!(matches!(
        configure_tun(&link),
        Err(NetnsError::NoNetns { .. })
    ));
    assert!(matches!(
        link_mac(&missing, "eth0"),
        Err(NetnsError::NoNetns { .. })
    ));
}

#[test]
fn proc_pid_netns_paths_work() {
    let ns = Namespaces::new("procns");
    // `ip netns exec` execs the command, so the child's pid is inside the pod.
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.pod, "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn a process in the pod");
    let proc_path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
    // Wait until the exec has happened and the process sits in the pod.
    let inode = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.ino()).ok();
    let pod_inode = inode(&ns.pod_path());
    for _ in 0..250 {
        if inode(&proc_path) == pod_inode {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        inode(&proc_path),
        pod_inode,
        "the child never entered the pod"
    );

    let link = PodLink {
        netns: proc_path.clone(),
        ..dual_stack(&ns)
    };
    let result = ns.in_host(|| create_veth(&link));
    let _ = child.kill();
    let _ = child.wait();
    let mac = result.expect("create_veth through /proc/<pid>/ns/net");
    assert_eq!(
        link_mac(&ns.pod_path(), "eth0").expect("link_mac"),
        Some(mac)
    );
}

#[test]
fn failure_part_way_removes_the_pair() {
    let ns = Namespaces::new("fail");
    // IPv6 off inside the pod: the pair gets created, then adding the IPv6
    // address fails.
    for key in ["all", "default"] {
        let path = format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6");
        ns.exec(&ns.pod, &["sh", "-c", &format!("echo 1 > {path}")]);
    }
    let link = PodLink {
        ip_forwarding: false,
        ..dual_stack(&ns)
    };
    let err = ns.in_host(|| create_veth(&link)).expect_err("IPv6 is off");
    assert!(matches!(&err, NetnsError::Netlink { .. }), "{err:?}");
    assert!(err.to_string().contains("2001:db8::10/128"), "{err}");
    assert!(!ns.links(&ns.host).contains(&link.host_ifname));
    assert_eq!(ns.links(&ns.pod), ["lo"]);
}

#[test]
fn delete_veth_removes_both_ends_and_tolerates_absence() {
    let ns = Namespaces::new("del");
    let link = dual_stack(&ns);
    let host = link.host_ifname.clone();
    ns.in_host(|| create_veth(&link)).expect("create_veth");
    assert!(ns.links(&ns.pod).contains(&"eth0".to_string()));

    ns.in_host(|| delete_veth(&host)).expect("first delete");
    assert!(!ns
        .in_host(|| host_link_exists(&host))
        .expect("host_link_exists"));
    assert_eq!(ns.links(&ns.pod), ["lo"]);
    ns.in_host(|| delete_veth(&host)).expect("second delete");

    // Something that is not a veth is never deleted.
    let err = ns
        .in_host(|| delete_veth("lo"))
        .expect_err("lo is not a veth");
    assert!(matches!(err, NetnsError::NameTaken { .. }), "{err:?}");
    assert!(ns
        .in_host(|| host_link_exists("lo"))
        .expect("host_link_exists"));
}

#[test]
fn delete_veth_succeeds_once_the_pod_netns_is_gone() {
    let ns = Namespaces::new("gone");
    let link = dual_stack(&ns);
    let host = link.host_ifname.clone();
    ns.in_host(|| create_veth(&link)).expect("create_veth");
    Command::new("ip")
        .args(["netns", "del", &ns.pod])
        .output()
        .expect("delete the pod netns");
    ns.in_host(|| delete_veth(&host))
        .expect("delete after netns removal");
    assert!(!ns
        .in_host(|| host_link_exists(&host))
        .expect("host_link_exists"));
}

#[test]
fn configure_tun_routes_straight_out_of_the_device() {
    let ns = Namespaces::new("tun");
    // No TUN device without VPP: a veth end named like one stands in.
    ns.ip(&ns.pod, "link add tun0 type veth peer name tun0peer");
    let link = PodLink {
        ifname: "tun0".to_string(),
        mtu: 1300,
        ..dual_stack(&ns)
    };
    configure_tun(&link).expect("configure_tun");

    let dev = ns.ip(&ns.pod, "-o link show dev tun0");
    assert!(dev.contains("mtu 1300") && dev.contains(",UP"), "{dev}");
    let addrs = ns.ip(&ns.pod, "-o addr show dev tun0");
    assert!(addrs.contains("inet 192.0.2.10/32"), "{addrs}");
    assert!(addrs.contains("inet6 2001:db8::10/128"), "{addrs}");
    assert!(!addrs.contains("tentative"), "{addrs}");
    let routes4 = ns.ip(&ns.pod, "-4 route show");
    assert!(routes4.contains("default dev tun0 scope link"), "{routes4}");
    assert!(!routes4.contains("via"), "{routes4}");
    let routes6 = ns.ip(&ns.pod, "-6 route show");
    assert!(routes6.contains("default dev tun0"), "{routes6}");
    assert!(!routes6.contains("via"), "{routes6}");
    assert!(ns.ip(&ns.pod, "neigh show nud permanent").is_empty());

    let before = ns.pod_snapshot("tun0");
    configure_tun(&link).expect("configure_tun again");
    assert_eq!(ns.pod_snapshot("tun0"), before);

    let missing = PodLink {
        ifname: "tun9".to_string(),
        ..link
    };
    assert!(matches!(
        configure_tun(&missing),
        Err(NetnsError::NoLink { ifname, .. }) if ifname == "tun9"
    ));
}

#[test]
fn host_link_exists_reports_presence() {
    let ns = Namespaces::new("exist");
    assert!(ns.in_host(|| host_link_exists("lo")).expect("lo"));
    let absent = ns.host_ifname();
    assert!(!ns.in_host(|| host_link_exists(&absent)).expect("absent"));
    assert!(matches!(
        host_link_exists("much-too-long-name"),
        Err(NetnsError::InvalidName { .. })
    ));
}
