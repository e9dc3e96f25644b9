//! Pod interfaces the driver creates for Calico's CNI plugin (its gRPC dataplane): what the
//! plugin asked for, checked and completed by the driver. They are not Felix's: they outlive
//! a Felix session (the agent carries them from one model to the next) and a driver restart
//! (the agent keeps them in a file of its own).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::MacAddr;

/// How a pod's interface is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodBackend {
    /// A TUN-mode tap VPP creates inside the pod's namespace (`tap_create_v3`; needs
    /// `/dev/vhost-net`). Point to point: no neighbour resolution on either side.
    Tun,
    /// A veth pair: `eth0` in the pod, the host end attached to VPP as an af_packet
    /// interface (for hosts without `/dev/vhost-net`). Ethernet: both ends hold a
    /// permanent neighbour for the other.
    Veth,
}

impl fmt::Display for PodBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PodBackend::Tun => "tun",
            PodBackend::Veth => "veth",
        })
    }
}

/// Which pod interface a request means: the CNI plugin's `Del` names only the namespace and
/// the interface inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodKey {
    pub netns: PathBuf,
    pub ifname: String,
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.netns.display(), self.ifname)
    }
}

/// One pod interface, as wired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInterface {
    pub key: PodKey,
    /// The host side's name: Felix's `WorkloadEndpoint.name` (`cali…`), which binds the
    /// endpoint to this interface (VPP's tag on it, and the veth's host end).
    pub host_ifname: String,
    pub backend: PodBackend,
    /// The pod's addresses, each a /32 or /128.
    pub addrs: Vec<IpNet>,
    /// Destinations the pod routes through VPP (the plugin's `container_routes`).
    pub routes: Vec<IpNet>,
    pub mtu: u32,
    /// VPP's MAC on the pod's link: the pod's gateway neighbours point at it. Fixed per pod
    /// (not per VPP run) so the pod's permanent neighbours stay right across VPP restarts.
    pub vpp_mac: MacAddr,
    /// The pod's own MAC (`eth0`), when Ethernet: VPP's static neighbours for the pod's
    /// addresses. With the Kubernetes datastore Felix's endpoint carries none.
    pub container_mac: Option<MacAddr>,
    /// `namespace/pod`, for logs.
    pub workload: String,
    pub ip_forwarding: bool,
}

/// The pods of this node, keyed by host interface name (unique on a node).
pub type Pods = BTreeMap<String, PodInterface>;

impl PodInterface {
    /// The MAC the CNI reply names for the pod: its own on Ethernet, a fixed one on TUN
    /// (the plugin parses it, so it must be a MAC; Calico/VPP answers the same).
    pub fn reported_mac(&self) -> MacAddr {
        self.container_mac.unwrap_or(MacAddr([2, 0, 0, 0, 0, 0]))
    }
}

/// A locally administered unicast MAC for VPP's side of a pod link, derived from the host
/// interface name (stable across restarts of either side).
pub fn vpp_mac_for(host_ifname: &str) -> MacAddr {
    // FNV-1a, 32 bits: no dependency, stable forever.
    let mut h: u32 = 0x811c_9dc5;
    for b in host_ifname.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let [a, b, c, d] = h.to_be_bytes();
    MacAddr([0x02, 0xca, a, b, c, d])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpp_macs_are_local_unicast_and_stable() {
        let m = vpp_mac_for("cali1234567890a");
        assert_eq!(m.0[0] & 0x03, 0x02, "locally administered, unicast");
        assert_eq!(m, vpp_mac_for("cali1234567890a"));
        assert_ne!(m, vpp_mac_for("cali1234567890b"));
    }
}
