//! The Linux side of pod wiring behind one trait: the real one goes through netlink
//! (`pod-netns`), the fake records what it was asked (for the simulator's TUN pods, whose
//! tap exists in no kernel, and for unit tests). Calls block: the server runs them on
//! tokio's blocking pool.

use std::path::Path;
use std::sync::Mutex;

use calico_model::{MacAddr, PodBackend, PodInterface};

/// What the pod's namespace needs, for either back-end.
pub trait PodNetwork: Send + Sync + 'static {
    fn netns_exists(&self, netns: &Path) -> bool;
    /// The veth pair with `eth0` configured in the pod; the pod's MAC.
    fn create_veth(&self, pod: &PodInterface) -> Result<MacAddr, String>;
    /// The pod's addresses and routes on the TUN interface VPP created in its namespace.
    fn configure_tun(&self, pod: &PodInterface) -> Result<(), String>;
    /// Removes the veth (both ends); fine when it is gone already.
    fn delete_veth(&self, host_ifname: &str) -> Result<(), String>;
}

fn link(pod: &PodInterface) -> pod_netns::PodLink {
    pod_netns::PodLink {
        netns: pod.key.netns.clone(),
        ifname: pod.key.ifname.clone(),
        host_ifname: pod.host_ifname.clone(),
        mtu: pod.mtu,
        addrs: pod.addrs.clone(),
        gateway_mac: pod.vpp_mac.0,
        routes: pod.routes.clone(),
        ip_forwarding: pod.ip_forwarding,
    }
}

/// The kernel's network namespaces, through netlink.
#[derive(Debug, Default)]
pub struct LinuxNetwork;

impl PodNetwork for LinuxNetwork {
    fn netns_exists(&self, netns: &Path) -> bool {
        pod_netns::netns_exists(netns)
    }

    fn create_veth(&self, pod: &PodInterface) -> Result<MacAddr, String> {
        pod_netns::create_veth(&link(pod))
            .map(MacAddr)
            .map_err(|e| e.to_string())
    }

    fn configure_tun(&self, pod: &PodInterface) -> Result<(), String> {
        pod_netns::configure_tun(&link(pod)).map_err(|e| e.to_string())
    }

    fn delete_veth(&self, host_ifname: &str) -> Result<(), String> {
        pod_netns::delete_veth(host_ifname).map_err(|e| e.to_string())
    }
}

/// For the simulator's pods: namespaces are real and checked, but a TUN pod's tap exists in
/// no kernel (the simulator made it), so there is nothing to configure in it. Veth pods are
/// built for real ([`LinuxNetwork`]).
#[derive(Debug, Default)]
pub struct SimNetwork;

impl PodNetwork for SimNetwork {
    fn netns_exists(&self, netns: &Path) -> bool {
        pod_netns::netns_exists(netns)
    }

    fn create_veth(&self, pod: &PodInterface) -> Result<MacAddr, String> {
        LinuxNetwork.create_veth(pod)
    }

    fn configure_tun(&self, _pod: &PodInterface) -> Result<(), String> {
        Ok(())
    }

    fn delete_veth(&self, host_ifname: &str) -> Result<(), String> {
        LinuxNetwork.delete_veth(host_ifname)
    }
}

/// Records calls; every namespace exists unless its path says `missing`; veths get MACs
/// from a counter.
#[derive(Debug, Default)]
pub struct FakeNetwork {
    pub calls: Mutex<Vec<String>>,
}

impl FakeNetwork {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: String) -> usize {
        match self.calls.lock() {
            Ok(mut c) => {
                c.push(call);
                c.len()
            }
            Err(_) => 0,
        }
    }
}

impl PodNetwork for FakeNetwork {
    fn netns_exists(&self, netns: &Path) -> bool {
        !netns.to_string_lossy().contains("missing")
    }

    fn create_veth(&self, pod: &PodInterface) -> Result<MacAddr, String> {
        debug_assert_eq!(pod.backend, PodBackend::Veth);
        let n = self.record(format!("create_veth {}", pod.host_ifname));
        Ok(MacAddr([0x02, 0xfe, 0, 0, (n >> 8) as u8, n as u8]))
    }

    fn configure_tun(&self, pod: &PodInterface) -> Result<(), String> {
        self.record(format!("configure_tun {}", pod.host_ifname));
        Ok(())
    }

    fn delete_veth(&self, host_ifname: &str) -> Result<(), String> {
        self.record(format!("delete_veth {host_ifname}"));
        Ok(())
    }
}
