//! The CNI plugin's requests, converted once at the edge: an `AddRequest` becomes a
//! [`PodInterface`] (every field looked at, so a new upstream field breaks the build), or a
//! clear reason it cannot.

use std::path::PathBuf;

use calico_model::{vpp_mac_for, PodBackend, PodInterface, PodKey};
use ipnet::IpNet;

use super::proto;

/// How this node wires pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSettings {
    pub backend: PodBackend,
    /// For requests whose MTU is 0 (the conflist sets none).
    pub default_mtu: u32,
}

/// Linux's limit on interface names (IFNAMSIZ less the terminating NUL).
const MAX_IFNAME: usize = 15;

/// The interface name inside the pod: `eth0` when the plugin sends none.
fn or_eth0(name: String) -> String {
    if name.is_empty() {
        "eth0".to_string()
    } else {
        name
    }
}

fn check_ifname(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("no {what}"));
    }
    if name.len() > MAX_IFNAME
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("{what} {name:?} is not a valid interface name"));
    }
    Ok(())
}

/// The pod an `Add` asks for.
pub fn pod_from_add(
    req: proto::AddRequest,
    settings: &PodSettings,
) -> Result<PodInterface, String> {
    let proto::AddRequest {
        interface_name,
        netns,
        desired_host_interface_name,
        settings: container,
        container_ips,
        container_routes,
        workload,
        dataplane_options: _,
    } = req;
    let ifname = or_eth0(interface_name);
    check_ifname("interface name", &ifname)?;
    check_ifname("host interface name", &desired_host_interface_name)?;
    if netns.is_empty() {
        return Err("no network namespace".into());
    }
    let (mtu, ip_forwarding) = match container {
        Some(proto::ContainerSettings {
            allow_ip_forwarding,
            mtu,
        }) => {
            let mtu = match u32::try_from(mtu) {
                Ok(0) => settings.default_mtu,
                Ok(m) if (68..=65535).contains(&m) => m,
                _ => return Err(format!("MTU {mtu} is out of range")),
            };
            (mtu, allow_ip_forwarding)
        }
        None => (settings.default_mtu, false),
    };
    let mut addrs = Vec::new();
    for proto::IpConfig {
        address,
        gateway: _,
    } in container_ips
    {
        // Addresses come with the IPAM block's prefix length: the pod holds the address
        // alone.
        let net: IpNet = address
            .parse()
            .or_else(|_| address.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| format!("container address {address:?} is not an IP address"))?;
        let host = IpNet::from(net.addr());
        if !addrs.contains(&host) {
            addrs.push(host);
        }
    }
    if addrs.is_empty() {
        return Err("no container address".into());
    }
    if addrs.iter().filter(|a| a.addr().is_ipv4()).count() > 1
        || addrs.iter().filter(|a| a.addr().is_ipv6()).count() > 1
    {
        return Err("more than one address of a family".into());
    }
    let mut routes = Vec::new();
    for r in container_routes {
        let net: IpNet = r
            .parse()
            .map_err(|_| format!("container route {r:?} is not a CIDR"))?;
        routes.push(net.trunc());
    }
    let workload = match workload {
        Some(proto::WorkloadIDs {
            name,
            namespace,
            labels: _,
            annotations: _,
            endpoint: _,
            node: _,
            orchestrator: _,
            pod,
            ports: _,
        }) => {
            let pod = if pod.is_empty() { name } else { pod };
            if namespace.is_empty() {
                pod
            } else {
                format!("{namespace}/{pod}")
            }
        }
        None => String::new(),
    };
    Ok(PodInterface {
        key: PodKey {
            netns: PathBuf::from(netns),
            ifname,
        },
        vpp_mac: vpp_mac_for(&desired_host_interface_name),
        host_ifname: desired_host_interface_name,
        backend: settings.backend,
        addrs,
        routes,
        mtu,
        container_mac: None,
        workload,
        ip_forwarding,
    })
}

/// The pod a `Del` names.
pub fn key_from_del(req: proto::DelRequest) -> Result<PodKey, String> {
    let proto::DelRequest {
        interface_name,
        netns,
        dataplane_options: _,
    } = req;
    let ifname = or_eth0(interface_name);
    Ok(PodKey {
        netns: PathBuf::from(netns),
        ifname,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PodSettings {
        PodSettings {
            backend: PodBackend::Veth,
            default_mtu: 1450,
        }
    }

    /// What Calico's plugin sends with calico-ipam (DESIGN.md section 9).
    fn add() -> proto::AddRequest {
        proto::AddRequest {
            interface_name: "eth0".into(),
            netns: "/var/run/netns/cni-1234".into(),
            desired_host_interface_name: "cali0123456789a".into(),
            settings: Some(proto::ContainerSettings {
                allow_ip_forwarding: false,
                mtu: 0,
            }),
            container_ips: vec![
                proto::IpConfig {
                    address: "10.71.0.2/26".into(),
                    gateway: "<nil>".into(),
                },
                proto::IpConfig {
                    address: "fd71::2/122".into(),
                    gateway: "<nil>".into(),
                },
            ],
            container_routes: vec!["0.0.0.0/0".into(), "::/0".into()],
            workload: Some(proto::WorkloadIDs {
                name: "p1".into(),
                namespace: "default".into(),
                pod: "p1".into(),
                orchestrator: "k8s".into(),
                ..Default::default()
            }),
            dataplane_options: [("type".to_string(), "grpc".to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_plugin_add_becomes_an_l3_pod() {
        let p = pod_from_add(add(), &settings()).unwrap();
        assert_eq!(p.key.netns, PathBuf::from("/var/run/netns/cni-1234"));
        assert_eq!(p.key.ifname, "eth0");
        assert_eq!(p.host_ifname, "cali0123456789a");
        assert_eq!(
            p.addrs,
            vec![
                "10.71.0.2/32".parse::<IpNet>().unwrap(),
                "fd71::2/128".parse().unwrap()
            ]
        );
        assert_eq!(p.routes.len(), 2);
        assert_eq!(p.mtu, 1450, "MTU 0 takes the node's default");
        assert_eq!(p.workload, "default/p1");
        assert_eq!(p.vpp_mac, vpp_mac_for("cali0123456789a"));
        assert_eq!(p.backend, PodBackend::Veth);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        type Breaker = fn(&mut proto::AddRequest);
        let cases: Vec<(Breaker, &str)> = vec![
            (|r| r.netns.clear(), "no network namespace"),
            (
                |r| r.desired_host_interface_name.clear(),
                "no host interface name",
            ),
            (
                |r| r.desired_host_interface_name = "cali0123456789abcdef".into(),
                "not a valid interface name",
            ),
            (|r| r.container_ips.clear(), "no container address"),
            (
                |r| r.container_ips[0].address = "10.71.0.300/26".into(),
                "is not an IP address",
            ),
            (
                |r| r.container_routes.push("default".into()),
                "is not a CIDR",
            ),
            (|r| r.settings.as_mut().unwrap().mtu = -1, "out of range"),
            (
                |r| {
                    r.container_ips.push(proto::IpConfig {
                        address: "10.71.0.3/26".into(),
                        gateway: String::new(),
                    })
                },
                "more than one address",
            ),
        ];
        for (break_it, why) in cases {
            let mut r = add();
            break_it(&mut r);
            let e = pod_from_add(r, &settings()).unwrap_err();
            assert!(e.contains(why), "{e:?} should say {why:?}");
        }
    }

    #[test]
    fn del_keys_by_namespace_and_interface() {
        let k = key_from_del(proto::DelRequest {
            interface_name: String::new(),
            netns: "/proc/42/ns/net".into(),
            dataplane_options: Default::default(),
        })
        .unwrap();
        assert_eq!(k.ifname, "eth0");
        assert_eq!(k.netns, PathBuf::from("/proc/42/ns/net"));
    }
}
