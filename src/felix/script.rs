//! A scripted Felix: realistic `ToDataplane` streams (snapshot, `InSync`, deltas) built the way
//! Felix orders them. Used by tests, benchmarks and the demo; it never talks to anything.

use std::collections::BTreeMap;

use super::proto;
use super::proto::to_dataplane::Payload;

/// Wraps a payload in an envelope (the writer assigns sequence numbers).
pub fn envelope(payload: Payload) -> proto::ToDataplane {
    proto::ToDataplane {
        sequence_number: 0,
        payload: Some(payload),
    }
}

/// Sizes of a scripted cluster as seen from one node.
#[derive(Debug, Clone)]
pub struct ClusterShape {
    pub namespaces: usize,
    pub pods: usize,
    /// Split evenly over the tiers, each tier's last policy staged when there are ≥ 3.
    pub policies: usize,
    pub tiers: usize,
    pub pools: usize,
    pub services: usize,
    pub remote_nodes: usize,
}

impl Default for ClusterShape {
    fn default() -> Self {
        ClusterShape {
            namespaces: 3,
            pods: 50,
            policies: 20,
            tiers: 2,
            pools: 2,
            services: 5,
            remote_nodes: 4,
        }
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn ns_name(i: usize) -> String {
    format!("ns{i}")
}

/// Pod `i`'s IPv4 address (10.65.x.y inside the first pool).
pub fn pod_ip(i: usize) -> String {
    format!("10.65.{}.{}", i / 250, i % 250 + 2)
}

pub fn pod_iface(i: usize) -> String {
    format!("cali{:011x}", i)
}

pub fn workload_id(i: usize, namespaces: usize) -> proto::WorkloadEndpointId {
    proto::WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: format!("{}/pod-{i}", ns_name(i % namespaces.max(1))),
        endpoint_id: "eth0".into(),
    }
}

pub fn policy_id(tier: usize, i: usize, staged: bool) -> proto::PolicyId {
    proto::PolicyId {
        name: format!("tier{tier}.pol-{i}"),
        namespace: if tier == 0 {
            ns_name(i % 3)
        } else {
            String::new()
        },
        kind: match (tier == 0, staged) {
            (true, false) => "NetworkPolicy",
            (true, true) => "StagedNetworkPolicy",
            (false, false) => "GlobalNetworkPolicy",
            (false, true) => "StagedGlobalNetworkPolicy",
        }
        .into(),
    }
}

fn tier_name(t: usize) -> String {
    if t == 0 {
        "default".into()
    } else {
        format!("tier{t}")
    }
}

fn port(p: i32) -> proto::PortRange {
    proto::PortRange { first: p, last: p }
}

fn tcp() -> Option<proto::Protocol> {
    Some(proto::Protocol {
        number_or_name: Some(proto::protocol::NumberOrName::Name("TCP".into())),
    })
}

/// The IP set of pods in namespace `n` (selector `projectcalico.org/namespace == nsN`).
pub fn ns_set_id(n: usize) -> String {
    format!("s:ns{n}-pods")
}

/// The named-port set for port "http" of namespace `n`'s pods.
pub fn named_port_set_id(n: usize) -> String {
    format!("n:ns{n}-http")
}

/// The profile of namespace `n` (`kns.nsN`, allow in and out), as Felix sends it.
pub fn namespace_profile(n: usize) -> proto::ToDataplane {
    envelope(Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
        id: Some(proto::ProfileId {
            name: format!("kns.{}", ns_name(n)),
        }),
        profile: Some(proto::Profile {
            inbound_rules: vec![proto::Rule {
                action: "allow".into(),
                rule_id: format!("kns{n}-in"),
                ..Default::default()
            }],
            outbound_rules: vec![proto::Rule {
                action: "allow".into(),
                rule_id: format!("kns{n}-out"),
                ..Default::default()
            }],
        }),
    }))
}

/// Egress to the pool CIDR on unprivileged ports (the scripted policies' outbound rule).
pub fn egress_to_pool(rule_id: String) -> proto::Rule {
    proto::Rule {
        action: "allow".into(),
        dst_net: vec!["10.65.0.0/16".into()],
        not_dst_ports: vec![proto::PortRange {
            first: 1,
            last: 1023,
        }],
        rule_id,
        ..Default::default()
    }
}

/// Deny IPv4 echo requests (ICMP type 8 code 0).
pub fn deny_echo_v4(rule_id: String) -> proto::Rule {
    proto::Rule {
        action: "deny".into(),
        ip_version: proto::IpVersion::Ipv4 as i32,
        protocol: Some(proto::Protocol {
            number_or_name: Some(proto::protocol::NumberOrName::Number(1)),
        }),
        icmp: Some(proto::rule::Icmp::IcmpTypeCode(proto::IcmpTypeAndCode {
            r#type: 8,
            code: 0,
        })),
        rule_id,
        ..Default::default()
    }
}

/// A policy of the scripted cluster: ingress from its namespace's pods on the named port
/// "http" and TCP 8443, egress to the pool CIDR; every fourth one passes to the next tier.
pub fn policy(tier: usize, i: usize, namespaces: usize) -> proto::Policy {
    let n = i % namespaces.max(1);
    let ingress = proto::Rule {
        action: if i % 4 == 3 { "next-tier" } else { "allow" }.into(),
        protocol: tcp(),
        src_ip_set_ids: vec![ns_set_id(n)],
        dst_ports: vec![port(8443)],
        dst_named_port_ip_set_ids: vec![named_port_set_id(n)],
        rule_id: format!("r{tier}-{i}-in"),
        ..Default::default()
    };
    let egress = egress_to_pool(format!("r{tier}-{i}-out"));
    let deny_icmp = deny_echo_v4(format!("r{tier}-{i}-icmp"));
    proto::Policy {
        namespace: if tier == 0 { ns_name(n) } else { String::new() },
        inbound_rules: vec![deny_icmp, ingress],
        outbound_rules: vec![egress],
        original_selector: format!("app == 'app{i}'"),
        tier: tier_name(tier),
        ..Default::default()
    }
}

/// Tier list of pod `pod`: every policy of every tier applies to every pod here.
pub fn tier_infos(shape: &ClusterShape) -> Vec<proto::TierInfo> {
    let per_tier = shape.policies / shape.tiers.max(1);
    (0..shape.tiers)
        .map(|t| {
            let ids: Vec<proto::PolicyId> = (0..per_tier)
                .map(|i| policy_id(t, i, per_tier >= 3 && i == per_tier - 1))
                .collect();
            proto::TierInfo {
                name: tier_name(t),
                ingress_policies: ids.clone(),
                egress_policies: ids,
                default_action: if t + 1 == shape.tiers { "Deny" } else { "Pass" }.into(),
            }
        })
        .collect()
}

pub fn workload(i: usize, shape: &ClusterShape) -> proto::WorkloadEndpoint {
    proto::WorkloadEndpoint {
        state: "active".into(),
        name: pod_iface(i),
        mac: format!("ee:ee:ee:ee:{:02x}:{:02x}", i / 256 % 256, i % 256),
        profile_ids: vec![
            format!("kns.{}", ns_name(i % shape.namespaces.max(1))),
            "ksa.default".into(),
        ],
        ipv4_nets: vec![format!("{}/32", pod_ip(i))],
        ipv6_nets: vec![format!("fd00:65::{:x}/128", i + 2)],
        tiers: tier_infos(shape),
        annotations: labels(&[("app", &format!("app{}", i % 7))]),
        ..Default::default()
    }
}

/// The complete start-of-day stream up to (not including) `InSync`, in Felix's order:
/// config, IP sets, profiles, policies, endpoints, then the cluster context.
pub fn snapshot(shape: &ClusterShape) -> Vec<proto::ToDataplane> {
    let mut out = Vec::new();
    let config = labels(&[
        ("ReportingIntervalSecs", "30"),
        ("LogSeverityScreen", "Info"),
        ("DefaultEndpointToHostAction", "ACCEPT"),
        ("FailsafeInboundHostPorts", "tcp:22,udp:68,tcp:179"),
        ("InterfacePrefix", "cali"),
        ("FelixHostname", "node1"),
    ]);
    out.push(envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
        config,
        ..Default::default()
    })));
    for n in 0..shape.namespaces {
        out.push(envelope(Payload::NamespaceUpdate(proto::NamespaceUpdate {
            id: Some(proto::NamespaceId { name: ns_name(n) }),
            labels: labels(&[("kubernetes.io/metadata.name", &ns_name(n))]),
        })));
        out.push(envelope(Payload::ServiceAccountUpdate(
            proto::ServiceAccountUpdate {
                id: Some(proto::ServiceAccountId {
                    namespace: ns_name(n),
                    name: "default".into(),
                }),
                labels: BTreeMap::new(),
            },
        )));
        let pods: Vec<usize> = (0..shape.pods)
            .filter(|i| i % shape.namespaces == n)
            .collect();
        out.push(envelope(Payload::IpsetUpdate(proto::IpSetUpdate {
            id: ns_set_id(n),
            members: pods.iter().map(|&i| format!("{}/32", pod_ip(i))).collect(),
            r#type: proto::ip_set_update::IpSetType::Ip as i32,
        })));
        out.push(envelope(Payload::IpsetUpdate(proto::IpSetUpdate {
            id: named_port_set_id(n),
            members: pods
                .iter()
                .map(|&i| format!("{},tcp:8080", pod_ip(i)))
                .collect(),
            r#type: proto::ip_set_update::IpSetType::IpAndPort as i32,
        })));
        out.push(namespace_profile(n));
    }
    out.push(envelope(Payload::ActiveProfileUpdate(
        proto::ActiveProfileUpdate {
            id: Some(proto::ProfileId {
                name: "ksa.default".into(),
            }),
            profile: Some(proto::Profile::default()),
        },
    )));
    let per_tier = shape.policies / shape.tiers.max(1);
    for t in 0..shape.tiers {
        for i in 0..per_tier {
            out.push(envelope(Payload::ActivePolicyUpdate(
                proto::ActivePolicyUpdate {
                    id: Some(policy_id(t, i, per_tier >= 3 && i == per_tier - 1)),
                    policy: Some(policy(t, i, shape.namespaces)),
                },
            )));
        }
    }
    for i in 0..shape.pods {
        out.push(envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(workload_id(i, shape.namespaces)),
                endpoint: Some(workload(i, shape)),
            },
        )));
    }
    out.push(envelope(Payload::HostEndpointUpdate(
        proto::HostEndpointUpdate {
            id: Some(proto::HostEndpointId {
                endpoint_id: "node1-eth0".into(),
            }),
            endpoint: Some(proto::HostEndpoint {
                name: "eth0".into(),
                expected_ipv4_addrs: vec!["192.168.0.1".into()],
                forward_tiers: tier_infos(shape),
                ..Default::default()
            }),
        },
    )));
    for p in 0..shape.pools {
        out.push(envelope(Payload::IpamPoolUpdate(proto::IpamPoolUpdate {
            id: format!("pool{p}"),
            pool: Some(proto::IpamPool {
                cidr: if p == 0 {
                    "10.65.0.0/16".into()
                } else {
                    format!("fd00:{:x}::/64", 0x65 + p)
                },
                masquerade: true,
                ipip_mode: "Never".into(),
                vxlan_mode: if p == 0 { "CrossSubnet" } else { "Never" }.into(),
                allowed_uses: vec!["Workload".into(), "Tunnel".into()],
            }),
        })));
    }
    for n in 0..=shape.remote_nodes {
        let node = format!("node{}", n + 1);
        let node_ip = format!("192.168.0.{}", n + 1);
        out.push(envelope(Payload::HostMetadataUpdate(
            proto::HostMetadataUpdate {
                hostname: node.clone(),
                ipv4_addr: node_ip.clone(),
                ipv6_addr: format!("fd00:192::{}", n + 1),
                asnumber: "64512".into(),
                labels: labels(&[("kubernetes.io/hostname", &node)]),
            },
        )));
        out.push(envelope(Payload::VtepUpdate(
            proto::VxlanTunnelEndpointUpdate {
                node: node.clone(),
                mac: format!("66:00:00:00:00:{:02x}", n + 1),
                ipv4_addr: format!("10.65.{}.0", 200 + n),
                parent_device_ip: node_ip.clone(),
                ..Default::default()
            },
        )));
        let local = n == 0;
        out.push(envelope(Payload::RouteUpdate(proto::RouteUpdate {
            types: if local {
                proto::RouteType::LocalWorkload as i32
            } else {
                proto::RouteType::RemoteWorkload as i32 | proto::RouteType::RemoteTunnel as i32
            },
            ip_pool_type: proto::IpPoolType::Vxlan as i32,
            dst: format!("10.65.{}.0/26", 100 + n),
            dst_node_name: node.clone(),
            dst_node_ip: node_ip.clone(),
            // Every node is on 192.168.0.0/24: Felix says so, and CrossSubnet VXLAN then
            // routes directly.
            same_subnet: !local,
            nat_outgoing: true,
            local_workload: local,
            tunnel_type: Some(proto::TunnelType {
                vxlan: !local,
                ..Default::default()
            }),
            ..Default::default()
        })));
        out.push(envelope(Payload::RouteUpdate(proto::RouteUpdate {
            types: if local {
                proto::RouteType::LocalHost as i32
            } else {
                proto::RouteType::RemoteHost as i32
            },
            dst: format!("{node_ip}/32"),
            dst_node_name: node,
            dst_node_ip: node_ip,
            same_subnet: true,
            ..Default::default()
        })));
    }
    for s in 0..shape.services {
        out.push(envelope(Payload::ServiceUpdate(proto::ServiceUpdate {
            name: format!("svc{s}"),
            namespace: ns_name(s % shape.namespaces.max(1)),
            r#type: if s % 2 == 0 { "ClusterIP" } else { "NodePort" }.into(),
            cluster_ips: vec![format!("10.96.0.{}", s + 10)],
            ports: vec![proto::ServicePort {
                protocol: "TCP".into(),
                port: 80,
                node_port: if s % 2 == 0 { 0 } else { 30000 + s as i32 },
            }],
            ..Default::default()
        })));
    }
    out.push(envelope(Payload::GlobalBgpConfigUpdate(
        proto::GlobalBgpConfigUpdate {
            service_cluster_cidrs: vec!["10.96.0.0/12".into()],
            ..Default::default()
        },
    )));
    out.push(envelope(Payload::Encapsulation(proto::Encapsulation {
        vxlan_enabled: true,
        ..Default::default()
    })));
    out
}

/// Felix's messages for a new pod `i` (beyond the snapshot's): its address joins its
/// namespace's two IP sets (the plain one and the named-port one), then its endpoint arrives.
pub fn new_pod(shape: &ClusterShape, i: usize) -> Vec<proto::ToDataplane> {
    let ns = i % shape.namespaces;
    vec![
        envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id: ns_set_id(ns),
            added_members: vec![format!("{}/32", pod_ip(i))],
            removed_members: vec![],
        })),
        envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id: named_port_set_id(ns),
            added_members: vec![format!("{},tcp:8080", pod_ip(i))],
            removed_members: vec![],
        })),
        envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(workload_id(i, shape.namespaces)),
                endpoint: Some(workload(i, shape)),
            },
        )),
    ]
}

pub fn in_sync() -> proto::ToDataplane {
    envelope(Payload::InSync(proto::InSync {}))
}

/// `count` steady-state changes cycling through what a busy cluster sends: pods moving in and
/// out of IP sets, endpoint updates, policy edits.
pub fn deltas(shape: &ClusterShape, count: usize) -> Vec<proto::ToDataplane> {
    (0..count)
        .map(|k| {
            let n = k % shape.namespaces.max(1);
            let extra = format!("10.66.{}.{}/32", k / 250 % 250, k % 250 + 1);
            match k % 4 {
                0 => envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
                    id: ns_set_id(n),
                    added_members: vec![extra],
                    removed_members: vec![],
                })),
                1 => envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
                    id: ns_set_id(n),
                    added_members: vec![],
                    removed_members: vec![format!(
                        "10.66.{}.{}/32",
                        (k - 1) / 250 % 250,
                        (k - 1) % 250 + 1
                    )],
                })),
                2 => {
                    let i = k % shape.pods.max(1);
                    let mut ep = workload(i, shape);
                    ep.annotations
                        .insert("revision".into(), (k / 4).to_string());
                    envelope(Payload::WorkloadEndpointUpdate(
                        proto::WorkloadEndpointUpdate {
                            id: Some(workload_id(i, shape.namespaces)),
                            endpoint: Some(ep),
                        },
                    ))
                }
                _ => {
                    let i = k % (shape.policies / shape.tiers.max(1)).max(1);
                    let mut p = policy(0, i, shape.namespaces);
                    p.inbound_rules[1].dst_ports = vec![port(8000 + (k % 1000) as i32)];
                    envelope(Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
                        id: Some(policy_id(0, i, false)),
                        policy: Some(p),
                    }))
                }
            }
        })
        .collect()
}

/// One realistic message of every `ToDataplane` payload kind, updates before removes.
pub fn every_payload() -> Vec<Payload> {
    let shape = ClusterShape::default();
    let mut v = vec![
        Payload::ConfigUpdate(proto::ConfigUpdate {
            config: labels(&[("ReportingIntervalSecs", "10")]),
            source_to_raw_config: [(
                1,
                proto::RawConfig {
                    source: "environment variable".into(),
                    config: labels(&[("FELIX_REPORTINGINTERVALSECS", "10")]),
                },
            )]
            .into(),
            message: "start of day".into(),
        }),
        Payload::IpsetUpdate(proto::IpSetUpdate {
            id: "s:net".into(),
            members: vec!["10.0.0.0/8".into(), "fd00::/8".into()],
            r#type: proto::ip_set_update::IpSetType::Net as i32,
        }),
        Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id: "s:net".into(),
            added_members: vec!["192.168.0.0/16".into()],
            removed_members: vec!["fd00::/8".into()],
        }),
        Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
            id: Some(proto::ProfileId {
                name: "kns.ns0".into(),
            }),
            profile: Some(proto::Profile {
                inbound_rules: vec![proto::Rule {
                    action: "pass".into(),
                    ..Default::default()
                }],
                outbound_rules: vec![],
            }),
        }),
        Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
            id: Some(policy_id(1, 0, false)),
            policy: Some(policy(1, 0, 3)),
        }),
        Payload::WorkloadEndpointUpdate(proto::WorkloadEndpointUpdate {
            id: Some(workload_id(0, 3)),
            endpoint: Some(workload(0, &shape)),
        }),
        Payload::HostEndpointUpdate(proto::HostEndpointUpdate {
            id: Some(proto::HostEndpointId {
                endpoint_id: "hep1".into(),
            }),
            endpoint: Some(proto::HostEndpoint {
                name: "eth0".into(),
                profile_ids: vec!["projectcalico-default-allow".into()],
                tiers: tier_infos(&shape),
                untracked_tiers: tier_infos(&shape),
                pre_dnat_tiers: tier_infos(&shape),
                forward_tiers: tier_infos(&shape),
                expected_ipv4_addrs: vec!["192.168.0.1".into()],
                expected_ipv6_addrs: vec!["fd00:192::1".into()],
                qos_policies: vec![],
            }),
        }),
        Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
            hostname: "node2".into(),
            ipv4_addr: "192.168.0.2/24".into(),
            ipv6_addr: "fd00:192::2".into(),
            asnumber: "64512".into(),
            labels: labels(&[("zone", "a")]),
        }),
        // Calico v3.32's per-family and whole-record host messages.
        Payload::HostMetadataV6Update(proto::HostMetadataV6Update {
            hostname: "node3".into(),
            ipv6_addr: "fd00:192::3".into(),
        }),
        Payload::HostMetadataV4v6Update(proto::HostMetadataV4v6Update {
            hostname: "node4".into(),
            ipv4_addr: "192.168.0.4".into(),
            ipv6_addr: "fd00:192::4".into(),
            asnumber: "64512".into(),
            labels: labels(&[("zone", "b")]),
        }),
        Payload::IpamPoolUpdate(proto::IpamPoolUpdate {
            id: "pool0".into(),
            pool: Some(proto::IpamPool {
                cidr: "10.65.0.0/16".into(),
                masquerade: true,
                ipip_mode: "Always".into(),
                vxlan_mode: "Never".into(),
                allowed_uses: vec!["Workload".into()],
            }),
        }),
        Payload::ServiceAccountUpdate(proto::ServiceAccountUpdate {
            id: Some(proto::ServiceAccountId {
                namespace: "ns0".into(),
                name: "sa".into(),
            }),
            labels: labels(&[("role", "db")]),
        }),
        Payload::NamespaceUpdate(proto::NamespaceUpdate {
            id: Some(proto::NamespaceId { name: "ns0".into() }),
            labels: labels(&[("team", "a")]),
        }),
        Payload::RouteUpdate(proto::RouteUpdate {
            types: proto::RouteType::RemoteWorkload as i32 | proto::RouteType::RemoteTunnel as i32,
            ip_pool_type: proto::IpPoolType::Ipip as i32,
            dst: "10.65.3.0/26".into(),
            dst_node_name: "node2".into(),
            dst_node_ip: "192.168.0.2".into(),
            same_subnet: true,
            nat_outgoing: true,
            local_workload: false,
            tunnel_type: Some(proto::TunnelType {
                ipip: true,
                vxlan: false,
                wireguard: true,
            }),
            borrowed: true,
        }),
        Payload::VtepUpdate(proto::VxlanTunnelEndpointUpdate {
            node: "node2".into(),
            mac: "66:00:00:00:00:02".into(),
            ipv4_addr: "10.65.201.0".into(),
            parent_device_ip: "192.168.0.2".into(),
            mac_v6: "66:00:00:00:01:02".into(),
            ipv6_addr: "fd00:65:c9::".into(),
            parent_device_ipv6: "fd00:192::2".into(),
        }),
        Payload::WireguardEndpointUpdate(proto::WireguardEndpointUpdate {
            hostname: "node2".into(),
            public_key: "k4=".into(),
            interface_ipv4_addr: "10.65.3.1".into(),
        }),
        Payload::WireguardEndpointV6Update(proto::WireguardEndpointV6Update {
            hostname: "node2".into(),
            public_key_v6: "k6=".into(),
            interface_ipv6_addr: "fd00:65::1".into(),
        }),
        Payload::GlobalBgpConfigUpdate(proto::GlobalBgpConfigUpdate {
            service_cluster_cidrs: vec!["10.96.0.0/12".into()],
            service_external_cidrs: vec!["192.0.2.0/24".into()],
            service_loadbalancer_cidrs: vec!["198.51.100.0/24".into()],
            local_workload_peering_ip_v4: "169.254.0.179".into(),
            local_workload_peering_ip_v6: "fe80::179".into(),
        }),
        Payload::Encapsulation(proto::Encapsulation {
            ipip_enabled: true,
            vxlan_enabled: true,
            vxlan_enabled_v6: false,
            no_encap_enabled: true,
        }),
        Payload::ServiceUpdate(proto::ServiceUpdate {
            name: "web".into(),
            namespace: "ns0".into(),
            r#type: "LoadBalancer".into(),
            cluster_ips: vec!["10.96.0.10".into(), "fd00:96::10".into()],
            loadbalancer_ip: "198.51.100.7".into(),
            external_ips: vec!["192.0.2.7".into()],
            ports: vec![proto::ServicePort {
                protocol: "UDP".into(),
                port: 53,
                node_port: 30053,
            }],
            loadbalancer_ingress_ips: vec!["198.51.100.8".into()],
        }),
        Payload::InSync(proto::InSync {}),
    ];
    v.extend([
        Payload::ServiceRemove(proto::ServiceRemove {
            name: "web".into(),
            namespace: "ns0".into(),
        }),
        Payload::WireguardEndpointV6Remove(proto::WireguardEndpointV6Remove {
            hostname: "node2".into(),
        }),
        Payload::WireguardEndpointRemove(proto::WireguardEndpointRemove {
            hostname: "node2".into(),
        }),
        Payload::VtepRemove(proto::VxlanTunnelEndpointRemove {
            node: "node2".into(),
        }),
        Payload::RouteRemove(proto::RouteRemove {
            dst: "10.65.3.0/26".into(),
        }),
        Payload::NamespaceRemove(proto::NamespaceRemove {
            id: Some(proto::NamespaceId { name: "ns0".into() }),
        }),
        Payload::ServiceAccountRemove(proto::ServiceAccountRemove {
            id: Some(proto::ServiceAccountId {
                namespace: "ns0".into(),
                name: "sa".into(),
            }),
        }),
        Payload::IpamPoolRemove(proto::IpamPoolRemove { id: "pool0".into() }),
        Payload::HostMetadataRemove(proto::HostMetadataRemove {
            hostname: "node2".into(),
            ipv4_addr: "192.168.0.2".into(),
        }),
        Payload::HostMetadataV6Remove(proto::HostMetadataV6Remove {
            hostname: "node3".into(),
            ipv6_addr: "fd00:192::3".into(),
        }),
        Payload::HostMetadataV4v6Remove(proto::HostMetadataV4v6Remove {
            hostname: "node4".into(),
            ipv4_addr: "192.168.0.4".into(),
        }),
        Payload::HostEndpointRemove(proto::HostEndpointRemove {
            id: Some(proto::HostEndpointId {
                endpoint_id: "hep1".into(),
            }),
        }),
        Payload::WorkloadEndpointRemove(proto::WorkloadEndpointRemove {
            id: Some(workload_id(0, 3)),
        }),
        Payload::ActivePolicyRemove(proto::ActivePolicyRemove {
            id: Some(policy_id(1, 0, false)),
        }),
        Payload::ActiveProfileRemove(proto::ActiveProfileRemove {
            id: Some(proto::ProfileId {
                name: "kns.ns0".into(),
            }),
        }),
        Payload::IpsetRemove(proto::IpSetRemove { id: "s:net".into() }),
    ]);
    v
}
