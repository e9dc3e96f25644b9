//! Pod interfaces the driver creates (for Calico's CNI plugin): the VPP side of each pod's
//! link, and when it may carry traffic.
//!
//! Two objects per pod, so that each is one step of the reconciler:
//! - [`DesiredPod`] (before interfaces are bound): the interface itself, tagged with Felix's
//!   interface name (which binds the endpoint to it), IP-enabled by borrowing the uplink's
//!   addresses, **dark** (the [`crate::guard::POD_DARK`] ACL drops everything both ways),
//!   in interrupt mode, and up (so VPP reads and drops what the pod sends: a down af_packet
//!   interface's ring is never read, and a dozen of them starved VPP's API socket);
//! - [`DesiredPodLink`] (after interfaces are bound): recorded once the endpoint's policy
//!   holds on it (its guard ACLs replace the dark one). Until Felix's endpoint for it arrives
//!   the pod gets nothing through, as with Felix's Linux dataplane, which drops traffic of
//!   `cali` interfaces it does not know.

use std::collections::BTreeMap;

use calico_model::{MacAddr, Model, PodBackend, PodInterface};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::desired::InterfaceKey;

/// A pod interface in VPP, keyed by its host interface name ([`InterfaceKey`], Felix's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPod {
    /// The tag that binds the endpoint (Felix's interface name).
    pub tag: String,
    pub kind: PodLink,
}

/// How VPP's side of the pod link is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodLink {
    /// An af_packet interface on the veth's host end, with VPP's MAC for the link.
    AfPacket { host_ifname: String, mac: MacAddr },
    /// A TUN tap VPP creates in the pod's namespace, named `ifname` there, holding the pod's
    /// addresses (VPP puts them back when it re-creates the tap after a restart).
    Tun {
        netns: String,
        ifname: String,
        mtu: u32,
        ip4: Option<Ipv4Net>,
        ip6: Option<Ipv6Net>,
    },
}

/// A pod link to bring up once its endpoint's policy holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPodLink {
    /// The endpoint binding to wait for (Felix's interface name).
    pub interface: InterfaceKey,
}

pub fn desired_pod(pod: &PodInterface) -> DesiredPod {
    let kind = match pod.backend {
        PodBackend::Veth => PodLink::AfPacket {
            host_ifname: pod.host_ifname.clone(),
            mac: pod.vpp_mac,
        },
        PodBackend::Tun => PodLink::Tun {
            netns: pod.key.netns.display().to_string(),
            ifname: pod.key.ifname.clone(),
            mtu: pod.mtu,
            ip4: pod.addrs.iter().find_map(|a| match a {
                IpNet::V4(n) => Some(*n),
                IpNet::V6(_) => None,
            }),
            ip6: pod.addrs.iter().find_map(|a| match a {
                IpNet::V6(n) => Some(*n),
                IpNet::V4(_) => None,
            }),
        },
    };
    DesiredPod {
        tag: pod.host_ifname.clone(),
        kind,
    }
}

/// Every pod's interface and link.
pub fn desired_pods(
    model: &Model,
) -> (
    BTreeMap<InterfaceKey, DesiredPod>,
    BTreeMap<InterfaceKey, DesiredPodLink>,
) {
    let mut pods = BTreeMap::new();
    let mut links = BTreeMap::new();
    for (name, pod) in &model.pods {
        let key = InterfaceKey(name.clone());
        pods.insert(key.clone(), desired_pod(pod));
        links.insert(
            key.clone(),
            DesiredPodLink {
                interface: key.clone(),
            },
        );
    }
    (pods, links)
}

/// The MAC of the workload behind Felix's interface `name`, when the driver made its link
/// (Felix's endpoint carries none with the Kubernetes datastore).
pub fn pod_mac(model: &Model, name: &str) -> Option<MacAddr> {
    model.pods.get(name).and_then(|p| p.container_mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{vpp_mac_for, PodKey};

    fn pod(backend: PodBackend) -> PodInterface {
        PodInterface {
            key: PodKey {
                netns: "/var/run/netns/p1".into(),
                ifname: "eth0".into(),
            },
            host_ifname: "cali0123456789a".into(),
            backend,
            addrs: vec![
                "10.71.0.2/32".parse().unwrap(),
                "fd71::2/128".parse().unwrap(),
            ],
            routes: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            mtu: 1450,
            vpp_mac: vpp_mac_for("cali0123456789a"),
            container_mac: Some(MacAddr([2, 1, 2, 3, 4, 5])),
            workload: "default/p1".into(),
            ip_forwarding: false,
        }
    }

    #[test]
    fn a_veth_pod_is_an_af_packet_interface_on_its_host_end() {
        let d = desired_pod(&pod(PodBackend::Veth));
        assert_eq!(d.tag, "cali0123456789a");
        assert_eq!(
            d.kind,
            PodLink::AfPacket {
                host_ifname: "cali0123456789a".into(),
                mac: vpp_mac_for("cali0123456789a"),
            }
        );
    }

    #[test]
    fn a_tun_pod_carries_its_namespace_and_addresses() {
        let d = desired_pod(&pod(PodBackend::Tun));
        assert_eq!(
            d.kind,
            PodLink::Tun {
                netns: "/var/run/netns/p1".into(),
                ifname: "eth0".into(),
                mtu: 1450,
                ip4: Some("10.71.0.2/32".parse().unwrap()),
                ip6: Some("fd71::2/128".parse().unwrap()),
            }
        );
    }

    #[test]
    fn each_pod_gets_a_link_waiting_for_its_endpoint() {
        let mut m = Model::default();
        let p = pod(PodBackend::Veth);
        m.pods.insert(p.host_ifname.clone(), p);
        let (pods, links) = desired_pods(&m);
        let k = InterfaceKey("cali0123456789a".into());
        assert!(pods.contains_key(&k));
        assert_eq!(links[&k].interface, k);
        assert_eq!(
            pod_mac(&m, "cali0123456789a"),
            Some(MacAddr([2, 1, 2, 3, 4, 5]))
        );
        assert_eq!(pod_mac(&m, "caliother"), None);
    }
}
