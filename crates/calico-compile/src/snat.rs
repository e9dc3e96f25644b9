//! Source NAT for pools with `natOutgoing` (Felix's `IPAMPoolUpdate.masquerade`), on VPP's
//! cnat: traffic from a pod of a masquerading pool to a destination outside every Calico
//! pool, node address and service CIDR leaves with this node's address; traffic to pods,
//! pools, nodes and services keeps its source (as Felix's Linux dataplane's
//! `cali-nat-outgoing` chain decides).
//!
//! Three kinds of object, all absent while no pool masquerades:
//! - the node's SNAT settings (one, [`SnatKey`]): its own addresses as the SNAT source,
//!   from its host metadata, and cnat's "interface + prefix" policy;
//! - one exclusion per destination prefix that keeps its source ([`SnatExcludeKey`]): every
//!   pool CIDR, every node's address, and the service CIDRs (Felix's BGP configuration, and
//!   the driver's own setting for clusters that set none there);
//! - one inclusion per (pod interface, IP family) whose pod has an address in a masquerading
//!   pool of that family ([`SnatIfKey`]): cnat translates only what enters by an included
//!   interface.
//!
//! A family whose own node address is unknown gets no inclusion (nothing would be
//! translated to a sensible source); the settings carry what is known.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use calico_model::Model;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::desired::InterfaceKey;

crate::desired::unit_key!(
    /// The node's SNAT settings (one per node).
    SnatKey,
    "snat"
);

/// The addresses translated sources take: this node's own, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredSnat {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// A destination prefix whose traffic keeps its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnatExcludeKey(pub IpNet);

impl fmt::Display for SnatExcludeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An exclusion: everything is in its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredSnatExclude;

/// A pod interface whose traffic of one family is translated, written "<interface>/v4" or
/// "<interface>/v6" (interface names hold no '/').
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SnatIfKey {
    pub interface: InterfaceKey,
    pub v6: bool,
}

impl fmt::Display for SnatIfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = if self.v6 { "v6" } else { "v4" };
        write!(f, "{}/{family}", self.interface)
    }
}

impl From<SnatIfKey> for String {
    fn from(key: SnatIfKey) -> String {
        key.to_string()
    }
}

impl TryFrom<String> for SnatIfKey {
    type Error = crate::desired::BadKey;

    fn try_from(s: String) -> Result<SnatIfKey, crate::desired::BadKey> {
        let v6 = match s.rsplit_once('/') {
            Some((name, "v4")) if !name.is_empty() => false,
            Some((name, "v6")) if !name.is_empty() => true,
            _ => return Err(crate::desired::BadKey(s)),
        };
        let name = s[..s.len() - 3].to_string();
        Ok(SnatIfKey {
            interface: InterfaceKey(name),
            v6,
        })
    }
}

/// An inclusion: everything is in its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredSnatIf;

/// The three SNAT tables of the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredSnatTables {
    pub snat: BTreeMap<SnatKey, DesiredSnat>,
    pub excludes: BTreeMap<SnatExcludeKey, DesiredSnatExclude>,
    pub interfaces: BTreeMap<SnatIfKey, DesiredSnatIf>,
}

/// What the model asks of cnat's SNAT.
pub fn desired_snat(model: &Model) -> DesiredSnatTables {
    let masquerading: Vec<IpNet> = model
        .ipam_pools
        .values()
        .filter(|p| p.masquerade)
        .map(|p| p.cidr)
        .collect();
    if masquerading.is_empty() {
        return DesiredSnatTables::default();
    }
    let me = model.hostname().and_then(|h| model.host_metadata.get(h));
    let own = DesiredSnat {
        v4: me
            .and_then(|h| h.ipv4_addr)
            .map(|n| n.addr())
            .filter(|_| masquerading.iter().any(|p| matches!(p, IpNet::V4(_)))),
        v6: me
            .and_then(|h| h.ipv6_addr)
            .map(|n| n.addr())
            .filter(|_| masquerading.iter().any(|p| matches!(p, IpNet::V6(_)))),
    };

    let mut keep: BTreeSet<IpNet> = model.ipam_pools.values().map(|p| p.cidr).collect();
    for host in model.host_metadata.values() {
        keep.extend(
            host.ipv4_addr
                .map(|n| IpNet::from(std::net::IpAddr::V4(n.addr()))),
        );
        keep.extend(
            host.ipv6_addr
                .map(|n| IpNet::from(std::net::IpAddr::V6(n.addr()))),
        );
    }
    if let Some(bgp) = &model.global_bgp {
        keep.extend(bgp.service_cluster_cidrs.iter().copied());
        keep.extend(bgp.service_external_cidrs.iter().copied());
        keep.extend(bgp.service_loadbalancer_cidrs.iter().copied());
    }
    keep.extend(model.default_service_cidrs.iter().copied());

    let mut interfaces = BTreeMap::new();
    for ep in model.workload_endpoints.values() {
        if ep.invalid.is_some() {
            continue;
        }
        let in_masq = |ip: IpNet| masquerading.iter().any(|p| p.contains(&ip));
        let v4 = own.v4.is_some() && ep.ipv4_nets.iter().any(|n| in_masq(IpNet::V4(*n)));
        let v6 = own.v6.is_some() && ep.ipv6_nets.iter().any(|n| in_masq(IpNet::V6(*n)));
        for (wanted, v6) in [(v4, false), (v6, true)] {
            if wanted {
                let key = SnatIfKey {
                    interface: InterfaceKey(ep.name.clone()),
                    v6,
                };
                interfaces.insert(key, DesiredSnatIf);
            }
        }
    }
    DesiredSnatTables {
        snat: BTreeMap::from([(SnatKey, own)]),
        excludes: keep
            .into_iter()
            .map(|n| (SnatExcludeKey(n.trunc()), DesiredSnatExclude))
            .collect(),
        interfaces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{EncapMode, GlobalBgpConfig, HostMetadata, IpamPool, WorkloadEndpoint};

    fn pool(cidr: &str, masquerade: bool) -> IpamPool {
        IpamPool {
            cidr: cidr.parse().unwrap(),
            masquerade,
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            allowed_uses: Vec::new(),
        }
    }

    fn pod(name: &str, v4: &[&str], v6: &[&str]) -> WorkloadEndpoint {
        WorkloadEndpoint {
            active: true,
            name: name.into(),
            mac: None,
            profile_ids: Vec::new(),
            ipv4_nets: v4.iter().map(|n| n.parse().unwrap()).collect(),
            ipv6_nets: v6.iter().map(|n| n.parse().unwrap()).collect(),
            tiers: Vec::new(),
            ipv4_nat: Vec::new(),
            ipv6_nat: Vec::new(),
            allow_spoofed_source_prefixes: Vec::new(),
            annotations: BTreeMap::new(),
            invalid: None,
        }
    }

    fn model() -> Model {
        let mut m = Model {
            default_hostname: Some("node1".into()),
            ..Model::default()
        };
        m.host_metadata.insert(
            "node1".into(),
            HostMetadata {
                ipv4_addr: Some("192.168.1.1/24".parse().unwrap()),
                ipv6_addr: Some("fd00:1::1/64".parse().unwrap()),
                ..HostMetadata::default()
            },
        );
        m.host_metadata.insert(
            "node2".into(),
            HostMetadata {
                ipv4_addr: Some("192.168.1.2/24".parse().unwrap()),
                ..HostMetadata::default()
            },
        );
        m.ipam_pools
            .insert("masq".into(), pool("10.70.0.0/16", true));
        m.ipam_pools
            .insert("plain".into(), pool("10.80.0.0/16", false));
        m.ipam_pools.insert("masq6".into(), pool("fd70::/48", true));
        let wl = |n: &str| calico_model::WorkloadEndpointId {
            orchestrator_id: "k8s".into(),
            workload_id: n.into(),
            endpoint_id: "eth0".into(),
        };
        m.workload_endpoints
            .insert(wl("a"), pod("cali-a", &["10.70.1.2/32"], &["fd70::2/128"]));
        m.workload_endpoints
            .insert(wl("b"), pod("cali-b", &["10.80.1.2/32"], &[]));
        m
    }

    fn nets(t: &DesiredSnatTables) -> Vec<String> {
        t.excludes.keys().map(|k| k.to_string()).collect()
    }

    fn ifs(t: &DesiredSnatTables) -> Vec<String> {
        t.interfaces.keys().map(|k| k.to_string()).collect()
    }

    /// Pods of masquerading pools are included per family; every pool, node address and
    /// service CIDR keeps its source; the node's own addresses are the SNAT source.
    #[test]
    fn masquerading_pods_leave_with_the_node_address_except_towards_the_cluster() {
        let mut m = model();
        m.global_bgp = Some(GlobalBgpConfig {
            service_cluster_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
            service_external_cidrs: vec!["172.16.5.0/24".parse().unwrap()],
            ..GlobalBgpConfig::default()
        });
        m.default_service_cidrs = vec!["10.100.0.7/16".parse().unwrap()];
        let t = desired_snat(&m);
        assert_eq!(
            t.snat[&SnatKey],
            DesiredSnat {
                v4: Some("192.168.1.1".parse().unwrap()),
                v6: Some("fd00:1::1".parse().unwrap()),
            }
        );
        assert_eq!(
            nets(&t),
            [
                "10.70.0.0/16",
                "10.80.0.0/16",
                "10.96.0.0/12",
                "10.100.0.0/16",
                "172.16.5.0/24",
                "192.168.1.1/32",
                "192.168.1.2/32",
                "fd00:1::1/128",
                "fd70::/48",
            ]
        );
        assert_eq!(ifs(&t), ["cali-a/v4", "cali-a/v6"]);
    }

    /// No masquerading pool: no SNAT object at all. An unknown own address of a family
    /// includes no interface of that family.
    #[test]
    fn nothing_without_masquerading_or_without_an_own_address() {
        let mut m = model();
        for p in m.ipam_pools.values_mut() {
            p.masquerade = false;
        }
        assert_eq!(desired_snat(&m), DesiredSnatTables::default());

        let mut m = model();
        m.host_metadata.get_mut("node1").unwrap().ipv6_addr = None;
        let t = desired_snat(&m);
        assert_eq!(t.snat[&SnatKey].v6, None);
        assert_eq!(ifs(&t), ["cali-a/v4"]);

        let mut m = model();
        m.default_hostname = None;
        let t = desired_snat(&m);
        assert!(t.interfaces.is_empty());
        assert_eq!(t.snat[&SnatKey], DesiredSnat { v4: None, v6: None });
    }

    /// An invalid endpoint (dropping everything) is never included.
    #[test]
    fn an_invalid_endpoint_is_not_included() {
        let mut m = model();
        for ep in m.workload_endpoints.values_mut() {
            ep.invalid = Some(calico_model::Invalid {
                reason: "bad".into(),
            });
        }
        assert!(desired_snat(&m).interfaces.is_empty());
    }

    /// Keys round-trip through JSON as strings (they key state-file tables).
    #[test]
    fn keys_are_strings_in_json() {
        let k = SnatIfKey {
            interface: InterfaceKey("cali-a".into()),
            v6: true,
        };
        let json = serde_json::to_string(&BTreeMap::from([(k.clone(), 1)])).unwrap();
        assert_eq!(json, r#"{"cali-a/v6":1}"#);
        let back: BTreeMap<SnatIfKey, i32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.keys().next(), Some(&k));
        for bad in ["cali-a", "/v4", "cali-a/v5", ""] {
            assert!(SnatIfKey::try_from(bad.to_string()).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&BTreeMap::from([(SnatKey, 1)])).unwrap();
        assert_eq!(json, r#"{"snat":1}"#);
        let json = serde_json::to_string(&BTreeMap::from([(
            SnatExcludeKey("10.0.0.0/8".parse().unwrap()),
            1,
        )]))
        .unwrap();
        assert_eq!(json, r#"{"10.0.0.0/8":1}"#);
    }

    /// The compiler follows masquerade flips, new pods, node addresses and Felix's service
    /// CIDRs incrementally, to the same state a full compile makes.
    #[test]
    fn incremental_changes_equal_a_full_compile() {
        let mut m = model();
        let mut c = crate::Compiler::new(&m);
        type Step = (Box<dyn Fn(&mut Model)>, crate::ChangeSet);
        let steps: Vec<Step> = vec![
            (
                Box::new(|m| m.ipam_pools.get_mut("masq").unwrap().masquerade = false),
                crate::ChangeSet {
                    pools: true,
                    ..Default::default()
                },
            ),
            (
                Box::new(|m| {
                    for p in m.ipam_pools.values_mut() {
                        p.masquerade = true;
                    }
                }),
                crate::ChangeSet {
                    pools: true,
                    ..Default::default()
                },
            ),
            (
                Box::new(|m| {
                    let id = calico_model::WorkloadEndpointId {
                        orchestrator_id: "k8s".into(),
                        workload_id: "c".into(),
                        endpoint_id: "eth0".into(),
                    };
                    m.workload_endpoints
                        .insert(id, pod("cali-c", &["10.70.2.2/32"], &[]));
                }),
                crate::ChangeSet {
                    workload_endpoints: [calico_model::WorkloadEndpointId {
                        orchestrator_id: "k8s".into(),
                        workload_id: "c".into(),
                        endpoint_id: "eth0".into(),
                    }]
                    .into(),
                    ..Default::default()
                },
            ),
            (
                Box::new(|m| {
                    m.host_metadata.get_mut("node1").unwrap().ipv4_addr =
                        Some("192.168.1.7/24".parse().unwrap())
                }),
                crate::ChangeSet {
                    hosts: true,
                    ..Default::default()
                },
            ),
            (
                Box::new(|m| {
                    m.global_bgp = Some(GlobalBgpConfig {
                        service_cluster_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
                        ..GlobalBgpConfig::default()
                    })
                }),
                crate::ChangeSet {
                    bgp: true,
                    ..Default::default()
                },
            ),
        ];
        for (i, (change, set)) in steps.into_iter().enumerate() {
            let before = c.desired().clone();
            change(&mut m);
            let diff = c.update(&m, &set);
            let full = crate::Compiler::new(&m);
            let want = full.desired();
            assert_eq!(c.desired().snat, want.snat, "step {i}");
            assert_eq!(c.desired().snat_excludes, want.snat_excludes, "step {i}");
            assert_eq!(
                c.desired().snat_interfaces,
                want.snat_interfaces,
                "step {i}"
            );
            assert_eq!(
                diff.kinds.snat_interfaces,
                before.diff(want).kinds.snat_interfaces,
                "step {i}"
            );
            assert_eq!(
                diff.kinds.snat_excludes,
                before.diff(want).kinds.snat_excludes,
                "step {i}"
            );
        }
    }
}
