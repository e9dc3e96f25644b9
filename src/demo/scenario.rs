//! The demo's cluster, as Felix would describe it to the driver on one node: three
//! namespaces, five pods (a sixth arrives later), a `security` tier in front of the
//! Kubernetes `default` tier, a named port, a default-deny namespace, and an IP set delta.
//! Plus the sample flows whose verdicts the demo shows. Pure data.

use std::net::IpAddr;

use crate::felix::proto;
use crate::felix::proto::to_dataplane::Payload;
use crate::felix::script::{envelope, labels};

/// Every interface the demo uses starts with this, so that the demo's VPP interfaces are
/// recognisable as its own (and Felix's `InterfaceName` prefix `cali` still matches).
pub const IFACE_PREFIX: &str = "calidemo";

/// One pod of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pod {
    pub namespace: &'static str,
    pub name: &'static str,
    pub ip: &'static str,
    /// Last octet of the MAC and suffix of the interface name.
    pub n: u8,
}

impl Pod {
    pub fn iface(&self) -> String {
        format!("{IFACE_PREFIX}{}", self.n)
    }
    pub fn mac(&self) -> [u8; 6] {
        [0x02, 0xca, 0x1d, 0xe0, 0x00, self.n]
    }
    pub fn addr(&self) -> IpAddr {
        // The table below holds literals.
        self.ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }
    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
    pub fn workload_id(&self) -> proto::WorkloadEndpointId {
        proto::WorkloadEndpointId {
            orchestrator_id: "k8s".into(),
            workload_id: self.label(),
            endpoint_id: "eth0".into(),
        }
    }
}

pub const FRONTEND: Pod = Pod {
    namespace: "shop",
    name: "frontend",
    ip: "10.70.0.10",
    n: 1,
};
pub const CART: Pod = Pod {
    namespace: "shop",
    name: "cart",
    ip: "10.70.0.11",
    n: 2,
};
pub const API: Pod = Pod {
    namespace: "payments",
    name: "api",
    ip: "10.70.1.10",
    n: 3,
};
pub const DB: Pod = Pod {
    namespace: "payments",
    name: "db",
    ip: "10.70.1.11",
    n: 4,
};
pub const SUSPECT: Pod = Pod {
    namespace: "quarantine",
    name: "suspect",
    ip: "10.70.2.10",
    n: 5,
};
/// Arrives after `InSync`, with the IP set delta that lets it reach the cart.
pub const FRONTEND2: Pod = Pod {
    namespace: "shop",
    name: "frontend-2",
    ip: "10.70.0.12",
    n: 6,
};

pub const PODS: [Pod; 6] = [FRONTEND, CART, API, DB, SUSPECT, FRONTEND2];
pub const NAMESPACES: [&str; 3] = ["shop", "payments", "quarantine"];

const SET_FRONTEND: &str = "s:shop-frontend";
const SET_SHOP: &str = "s:shop-all";
const SET_API: &str = "s:payments-api";
const SET_QUARANTINE: &str = "s:quarantine-all";
const SET_CART_HTTP: &str = "n:cart-http";

fn tcp() -> Option<proto::Protocol> {
    Some(proto::Protocol {
        number_or_name: Some(proto::protocol::NumberOrName::Name("TCP".into())),
    })
}

fn port(p: i32) -> proto::PortRange {
    proto::PortRange { first: p, last: p }
}

fn member(p: &Pod) -> String {
    format!("{}/32", p.ip)
}

fn ipset(
    id: &str,
    members: Vec<String>,
    kind: proto::ip_set_update::IpSetType,
) -> proto::ToDataplane {
    envelope(Payload::IpsetUpdate(proto::IpSetUpdate {
        id: id.into(),
        members,
        r#type: kind as i32,
    }))
}

fn policy_id(namespace: &str, name: &str) -> proto::PolicyId {
    proto::PolicyId {
        name: name.into(),
        namespace: namespace.into(),
        kind: if namespace.is_empty() {
            "GlobalNetworkPolicy"
        } else {
            "NetworkPolicy"
        }
        .into(),
    }
}

/// (id, tier, inbound rules, outbound rules) of every policy.
fn policies() -> Vec<(
    proto::PolicyId,
    &'static str,
    Vec<proto::Rule>,
    Vec<proto::Rule>,
)> {
    let rule = |action: &str, id: &str| proto::Rule {
        action: action.into(),
        rule_id: id.into(),
        ..Default::default()
    };
    vec![
        (
            policy_id("", "security.block-quarantine"),
            "security",
            vec![
                proto::Rule {
                    src_ip_set_ids: vec![SET_QUARANTINE.into()],
                    ..rule("deny", "sec-in-quarantine")
                },
                rule("next-tier", "sec-in-pass"),
            ],
            vec![rule("next-tier", "sec-out-pass")],
        ),
        (
            policy_id("shop", "default.cart-from-frontend"),
            "default",
            vec![proto::Rule {
                protocol: tcp(),
                src_ip_set_ids: vec![SET_FRONTEND.into()],
                dst_named_port_ip_set_ids: vec![SET_CART_HTTP.into()],
                ..rule("allow", "cart-http")
            }],
            vec![],
        ),
        (
            policy_id("payments", "default.api-from-shop"),
            "default",
            vec![proto::Rule {
                protocol: tcp(),
                src_ip_set_ids: vec![SET_SHOP.into()],
                dst_ports: vec![port(9443)],
                ..rule("allow", "api-9443")
            }],
            vec![],
        ),
        (
            policy_id("payments", "default.db-from-api"),
            "default",
            vec![proto::Rule {
                protocol: tcp(),
                src_ip_set_ids: vec![SET_API.into()],
                dst_ports: vec![port(5432)],
                ..rule("allow", "db-5432")
            }],
            vec![],
        ),
        // No rules: everything selected is denied at the end of the tier, both ways.
        (
            policy_id("quarantine", "default.default-deny"),
            "default",
            vec![],
            vec![],
        ),
    ]
}

fn tier(
    name: &str,
    ingress: Vec<proto::PolicyId>,
    egress: Vec<proto::PolicyId>,
) -> proto::TierInfo {
    proto::TierInfo {
        name: name.into(),
        ingress_policies: ingress,
        egress_policies: egress,
        default_action: "Deny".into(),
    }
}

/// The tiers that apply to `pod`, as Felix computes them from the selectors.
fn tiers_of(pod: &Pod) -> Vec<proto::TierInfo> {
    let security = policy_id("", "security.block-quarantine");
    let mut out = vec![tier("security", vec![security.clone()], vec![security])];
    let (ingress, egress) = match pod.name {
        "cart" => (
            vec![policy_id("shop", "default.cart-from-frontend")],
            vec![],
        ),
        "api" => (vec![policy_id("payments", "default.api-from-shop")], vec![]),
        "db" => (vec![policy_id("payments", "default.db-from-api")], vec![]),
        "suspect" => {
            let d = policy_id("quarantine", "default.default-deny");
            (vec![d.clone()], vec![d])
        }
        _ => (vec![], vec![]),
    };
    if !ingress.is_empty() || !egress.is_empty() {
        out.push(tier("default", ingress, egress));
    }
    out
}

pub fn workload_update(pod: &Pod) -> proto::ToDataplane {
    let mac = pod.mac();
    envelope(Payload::WorkloadEndpointUpdate(
        proto::WorkloadEndpointUpdate {
            id: Some(pod.workload_id()),
            endpoint: Some(proto::WorkloadEndpoint {
                state: "active".into(),
                name: pod.iface(),
                mac: mac
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
                profile_ids: vec![
                    format!("kns.{}", pod.namespace),
                    format!("ksa.{}.default", pod.namespace),
                ],
                ipv4_nets: vec![member(pod)],
                tiers: tiers_of(pod),
                annotations: labels(&[("app", pod.name)]),
                ..Default::default()
            }),
        },
    ))
}

/// Felix's start-of-day stream up to and including `InSync` (without `frontend-2`).
pub fn snapshot() -> Vec<proto::ToDataplane> {
    use proto::ip_set_update::IpSetType;
    let mut out = vec![envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
        config: labels(&[
            ("ReportingIntervalSecs", "30"),
            ("DefaultEndpointToHostAction", "ACCEPT"),
            ("InterfacePrefix", "cali"),
            ("FelixHostname", "demo-node"),
        ]),
        ..Default::default()
    }))];
    for ns in NAMESPACES {
        out.push(envelope(Payload::NamespaceUpdate(proto::NamespaceUpdate {
            id: Some(proto::NamespaceId { name: ns.into() }),
            labels: labels(&[("kubernetes.io/metadata.name", ns)]),
        })));
    }
    out.push(ipset(SET_FRONTEND, vec![member(&FRONTEND)], IpSetType::Ip));
    out.push(ipset(
        SET_SHOP,
        vec![member(&FRONTEND), member(&CART)],
        IpSetType::Ip,
    ));
    out.push(ipset(SET_API, vec![member(&API)], IpSetType::Ip));
    out.push(ipset(SET_QUARANTINE, vec![member(&SUSPECT)], IpSetType::Ip));
    out.push(ipset(
        SET_CART_HTTP,
        vec![format!("{},tcp:8080", CART.ip)],
        IpSetType::IpAndPort,
    ));
    for ns in NAMESPACES {
        let allow = |id: String| proto::Rule {
            action: "allow".into(),
            rule_id: id,
            ..Default::default()
        };
        out.push(envelope(Payload::ActiveProfileUpdate(
            proto::ActiveProfileUpdate {
                id: Some(proto::ProfileId {
                    name: format!("kns.{ns}"),
                }),
                profile: Some(proto::Profile {
                    inbound_rules: vec![allow(format!("kns-{ns}-in"))],
                    outbound_rules: vec![allow(format!("kns-{ns}-out"))],
                }),
            },
        )));
        out.push(envelope(Payload::ActiveProfileUpdate(
            proto::ActiveProfileUpdate {
                id: Some(proto::ProfileId {
                    name: format!("ksa.{ns}.default"),
                }),
                profile: Some(proto::Profile::default()),
            },
        )));
    }
    for (id, tier, inbound, outbound) in policies() {
        out.push(envelope(Payload::ActivePolicyUpdate(
            proto::ActivePolicyUpdate {
                policy: Some(proto::Policy {
                    namespace: id.namespace.clone(),
                    inbound_rules: inbound,
                    outbound_rules: outbound,
                    tier: tier.into(),
                    ..Default::default()
                }),
                id: Some(id),
            },
        )));
    }
    for pod in PODS.iter().filter(|p| **p != FRONTEND2) {
        out.push(workload_update(pod));
    }
    out.push(envelope(Payload::InSync(proto::InSync {})));
    out
}

/// After `InSync`: a new frontend pod, and the IP set deltas that admit it.
/// The demo node's own address, on the simulator's uplink.
pub const NODE_IP: &str = "192.168.0.1";
/// Another node's address and a pod of its block, reached over VXLAN.
pub const NODE2_IP: &str = "192.168.0.2";
pub const REMOTE_POD: &str = "10.70.9.5";
/// Somewhere outside the cluster, reached with SNAT through the uplink's gateway.
pub const OUTSIDE: &str = "8.8.8.8";
pub const GATEWAY: &str = "192.168.0.254";

/// Connectivity (simulator only): this node and another one, both VXLAN tunnel endpoints,
/// the pods' pool with VXLAN and natOutgoing, and the other node's block.
pub fn connectivity() -> Vec<proto::ToDataplane> {
    let host = |name: &str, ip: &str| {
        envelope(Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
            hostname: name.into(),
            ipv4_addr: format!("{ip}/24"),
            ..Default::default()
        }))
    };
    let vtep = |name: &str, mac: &str, addr: &str, parent: &str| {
        envelope(Payload::VtepUpdate(proto::VxlanTunnelEndpointUpdate {
            node: name.into(),
            mac: mac.into(),
            ipv4_addr: addr.into(),
            parent_device_ip: parent.into(),
            ..Default::default()
        }))
    };
    vec![
        host("demo-node", NODE_IP),
        host("node2", NODE2_IP),
        vtep("demo-node", "66:00:00:00:00:01", "10.70.8.0", NODE_IP),
        vtep("node2", "66:00:00:00:00:02", "10.70.9.0", NODE2_IP),
        envelope(Payload::IpamPoolUpdate(proto::IpamPoolUpdate {
            id: "10.70.0.0-16".into(),
            pool: Some(proto::IpamPool {
                cidr: "10.70.0.0/16".into(),
                masquerade: true,
                ipip_mode: "Never".into(),
                vxlan_mode: "Always".into(),
                ..Default::default()
            }),
        })),
        envelope(Payload::RouteUpdate(proto::RouteUpdate {
            types: proto::RouteType::RemoteWorkload as i32,
            ip_pool_type: proto::IpPoolType::Vxlan as i32,
            dst: "10.70.9.0/26".into(),
            dst_node_name: "node2".into(),
            dst_node_ip: NODE2_IP.into(),
            ..Default::default()
        })),
    ]
}

pub fn deltas() -> Vec<proto::ToDataplane> {
    let add = |id: &str| {
        envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id: id.into(),
            added_members: vec![member(&FRONTEND2)],
            removed_members: vec![],
        }))
    };
    vec![
        add(SET_FRONTEND),
        add(SET_SHOP),
        workload_update(&FRONTEND2),
    ]
}

/// Everything the demo created, removed in Felix's order (endpoints first, IP sets last).
pub fn teardown() -> Vec<proto::ToDataplane> {
    let mut out: Vec<proto::ToDataplane> = PODS
        .iter()
        .map(|p| {
            envelope(Payload::WorkloadEndpointRemove(
                proto::WorkloadEndpointRemove {
                    id: Some(p.workload_id()),
                },
            ))
        })
        .collect();
    for (id, ..) in policies() {
        out.push(envelope(Payload::ActivePolicyRemove(
            proto::ActivePolicyRemove { id: Some(id) },
        )));
    }
    for ns in NAMESPACES {
        for name in [format!("kns.{ns}"), format!("ksa.{ns}.default")] {
            out.push(envelope(Payload::ActiveProfileRemove(
                proto::ActiveProfileRemove {
                    id: Some(proto::ProfileId { name }),
                },
            )));
        }
    }
    for id in [
        SET_FRONTEND,
        SET_SHOP,
        SET_API,
        SET_QUARANTINE,
        SET_CART_HTTP,
    ] {
        out.push(envelope(Payload::IpsetRemove(proto::IpSetRemove {
            id: id.into(),
        })));
    }
    out
}

/// A sample flow: a new connection from one pod to another.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub from: Pod,
    pub to: Pod,
    /// IP protocol: 6 TCP, 17 UDP, 1 ICMP (echo request).
    pub proto: u8,
    pub port: u16,
    /// The source address the sender forges, if it does (anti-spoofing's case).
    pub spoofing: Option<Pod>,
}

impl Flow {
    pub fn packet(&self) -> npol::Packet {
        let src = self.spoofing.as_ref().unwrap_or(&self.from).addr();
        let dst = self.to.addr();
        match self.proto {
            1 => npol::Packet::icmp(src, dst, 8, 0, 0x4242),
            p => npol::Packet::l4(p, src, 40000 + self.to.n as u16, dst, self.port),
        }
    }

    pub fn describe(&self) -> String {
        let what = match self.proto {
            1 => "icmp echo".to_string(),
            6 => format!("{}/tcp", self.port),
            17 => format!("{}/udp", self.port),
            p => format!("{}/proto {p}", self.port),
        };
        match &self.spoofing {
            Some(p) => format!(
                "{} as {} -> {} {}",
                self.from.label(),
                p.label(),
                self.to.label(),
                what
            ),
            None => format!("{} -> {} {}", self.from.label(), self.to.label(), what),
        }
    }
}

pub fn flows() -> Vec<Flow> {
    let f = |from, to, proto, port| Flow {
        from,
        to,
        proto,
        port,
        spoofing: None,
    };
    vec![
        f(FRONTEND, CART, 6, 8080),
        f(FRONTEND, CART, 6, 9090),
        f(FRONTEND, CART, 17, 8080),
        f(FRONTEND2, CART, 6, 8080),
        f(CART, API, 6, 9443),
        f(FRONTEND, DB, 6, 5432),
        f(API, DB, 6, 5432),
        f(SUSPECT, CART, 6, 8080),
        f(CART, SUSPECT, 6, 80),
        f(API, FRONTEND, 6, 80),
        f(API, FRONTEND, 1, 0),
        f(DB, API, 6, 9443),
        // frontend forging api's address, which db admits: Felix's RPF check (anti-spoofing)
        // drops it at frontend's egress.
        Flow {
            spoofing: Some(API),
            ..f(FRONTEND, DB, 6, 5432)
        },
    ]
}

/// The ClusterIP of the demo's service `shop/cart` (port 80 → the cart pod's 8080).
pub const CART_VIP: &str = "10.96.0.20";

/// Kubernetes' view of the demo's service (what the driver's own watch would list): a
/// ClusterIP service `shop/cart` whose EndpointSlice holds the cart pod, ready.
pub fn services() -> calico_model::kube::KubeState {
    use calico_model::kube::*;
    let mut st = KubeState::default();
    let key = ServiceKey {
        namespace: "shop".into(),
        name: "cart".into(),
    };
    st.services.insert(
        key,
        KubeService {
            kind: ServiceType::ClusterIp,
            cluster_ips: vec![CART_VIP.parse().expect("an address")],
            external_ips: Vec::new(),
            lb_ips: Vec::new(),
            ports: vec![KubeServicePort {
                name: "http".into(),
                protocol: L4Proto::Tcp,
                port: 80,
                target_port: TargetPort::Name("http".into()),
                node_port: None,
            }],
            external_local: false,
            internal_local: false,
            headless: false,
            annotations: Default::default(),
        },
    );
    st.slices.insert(
        SliceKey {
            namespace: "shop".into(),
            name: "cart-x1".into(),
        },
        KubeEndpointSlice {
            service: "cart".into(),
            ports: vec![SlicePort {
                name: "http".into(),
                protocol: L4Proto::Tcp,
                port: 8080,
            }],
            endpoints: vec![SliceEndpoint {
                addresses: vec![CART.ip.parse().expect("an address")],
                ready: true,
                serving: true,
                terminating: false,
                node_name: Some("node1".into()),
            }],
        },
    );
    st
}
