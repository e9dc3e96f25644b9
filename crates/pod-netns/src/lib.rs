//! Wires a Kubernetes pod's network namespace for the VPP dataplane, in
//! process, over rtnetlink (no `ip` command).
//!
//! Pods are wired the way Calico's CNI plugin wires them: **pure L3**. The
//! pod gets its addresses as /32 and /128 and no subnet, so it never expects
//! to reach a neighbour directly; every route points at a gateway that does
//! not exist on any interface: 169.254.1.1 for IPv4 and fe80::1 for IPv6.
//! The pod's kernel reaches those gateways through **permanent neighbour
//! entries** pinned to the MAC of VPP's side of the link (`gateway_mac`), so
//! it never sends ARP or neighbour solicitations for them and VPP needs to
//! answer for no address. Whatever the pod sends lands in VPP, which routes
//! and applies policy.
//!
//! For veth-mode pods, the host end of the veth stays in the driver's own
//! namespace, where VPP attaches to it as an af_packet interface. Two things
//! keep the host kernel out of the way there: IPv6 is disabled on the host
//! end, so the host never autoconfigures an address or answers neighbour
//! discovery for pod addresses; and **TX checksum offload is turned off on
//! both ends**, because a veth otherwise passes packets with partial
//! checksums that VPP's af_packet input forwards unfixed, and the pods'
//! TCP/UDP packets would arrive with bad checksums.
//!
//! All functions are synchronous and may block; run them on a blocking
//! thread. They never change the calling thread's namespace: work inside the
//! pod's namespace runs on a dedicated thread that exits afterwards. Every
//! operation is idempotent, and [`create_veth`] leaves nothing half-created
//! behind when it fails.

mod error;
mod ethtool;
mod netns;
mod pod;
mod rtnl;
mod sysctl;

use std::path::{Path, PathBuf};

pub use error::NetnsError;
use netns::Netns;
use pod::{nl, Uplink};
use rtnl::{Link, Rtnl};

/// How one pod interface is to be wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLink {
    /// The pod's network namespace file (`/var/run/netns/<name>` or
    /// `/proc/<pid>/ns/net`).
    pub netns: PathBuf,
    /// The interface's name inside the pod, usually `eth0`.
    pub ifname: String,
    /// The host end's name (at most 15 bytes), in the caller's namespace.
    pub host_ifname: String,
    /// Applied to both ends; 0 leaves the kernel's default.
    pub mtu: u32,
    /// The pod's addresses, already /32 or /128.
    pub addrs: Vec<ipnet::IpNet>,
    /// The MAC of VPP's side: the permanent neighbour entries for
    /// 169.254.1.1 and fe80::1 point at it.
    pub gateway_mac: [u8; 6],
    /// Destinations routed via the gateway of their family (e.g. 0.0.0.0/0,
    /// ::/0); a family with no pod address gets no routes.
    pub routes: Vec<ipnet::IpNet>,
    /// Sets net.ipv4.ip_forward and net.ipv6.conf.all.forwarding to 1 inside
    /// the pod, for each family the pod has an address of.
    pub ip_forwarding: bool,
}

/// Whether `path` is an existing network namespace.
pub fn netns_exists(path: &Path) -> bool {
    Netns::open(path).is_ok()
}

/// Creates the veth pair, its host end `host_ifname` in the caller's
/// namespace and its peer, named `ifname`, in `netns`, and configures both
/// ends (see the crate documentation). Returns the pod end's MAC.
///
/// If `host_ifname` already exists as this very pod's veth, the
/// configuration is re-applied (adding what is missing, correcting what
/// differs) and the MAC is returned. If it exists as anything else, the
/// result is [`NetnsError::NameTaken`] and nothing is touched. If a step
/// fails after this call created the pair, the pair is deleted again.
pub fn create_veth(link: &PodLink) -> Result<[u8; 6], NetnsError> {
    validate_ifname(&link.host_ifname)?;
    validate_ifname(&link.ifname)?;
    let netns = Netns::open(&link.netns)?;
    let mut host = open_host_rtnl()?;

    let existing = host
        .link_by_name(&link.host_ifname)
        .map_err(nl("look up the host end", &link.host_ifname))?;
    let created = match existing {
        Some(existing) => {
            check_is_this_pods_veth(&mut host, &existing, &netns, link)?;
            false
        }
        None => {
            check_free_in_pod(&netns, &link.ifname)?;
            create_pair(&mut host, &netns, link)?;
            true
        }
    };

    let result = wire_veth(&mut host, &netns, link);
    if result.is_err() && created {
        if let Err(e) = delete_by_name(&mut host, &link.host_ifname) {
            tracing::warn!(
                host_ifname = %link.host_ifname,
                error = %e,
                "could not remove a half-configured veth"
            );
        }
    }
    result
}

/// Configures a TUN-mode pod interface that VPP created inside `netns` as
/// `ifname`: up, MTU, addresses, and each route of a family the pod has an
/// address of, straight out of the device. Idempotent.
/// `host_ifname` and `gateway_mac` are not used.
pub fn configure_tun(link: &PodLink) -> Result<(), NetnsError> {
    validate_ifname(&link.ifname)?;
    let netns = Netns::open(&link.netns)?;
    netns
        .run(|| pod::configure(link, netns.path(), Uplink::Tun))
        .map(drop)
}

/// The MAC of `ifname` inside `netns`; None if there is no such link (or it
/// has no Ethernet address, as a TUN device).
pub fn link_mac(netns: &Path, ifname: &str) -> Result<Option<[u8; 6]>, NetnsError> {
    validate_ifname(ifname)?;
    let ns = Netns::open(netns)?;
    ns.run(|| {
        let mut rtnl = open_rtnl_in(netns)?;
        let link = rtnl.link_by_name(ifname).map_err(nl(
            "look up an interface",
            format!("{ifname} in network namespace {}", netns.display()),
        ))?;
        Ok(link.and_then(|l| l.mac))
    })
}

/// Deletes the veth whose host end is `host_ifname`, which removes both
/// ends. Succeeds when it is already gone (as it is once the pod's namespace
/// is destroyed). Refuses, with [`NetnsError::NameTaken`], to delete a link
/// of that name that is not a veth.
pub fn delete_veth(host_ifname: &str) -> Result<(), NetnsError> {
    validate_ifname(host_ifname)?;
    let mut host = open_host_rtnl()?;
    delete_by_name(&mut host, host_ifname)
}

/// Whether a link named `name` exists in the caller's namespace.
pub fn host_link_exists(name: &str) -> Result<bool, NetnsError> {
    validate_ifname(name)?;
    let mut host = open_host_rtnl()?;
    host.link_by_name(name)
        .map(|link| link.is_some())
        .map_err(nl("look up an interface", name))
}

fn create_pair(host: &mut Rtnl, netns: &Netns, link: &PodLink) -> Result<(), NetnsError> {
    let result = host.create_veth(&link.host_ifname, &link.ifname, netns.fd(), link.mtu);
    match result {
        Ok(()) => {
            tracing::debug!(
                host_ifname = %link.host_ifname,
                ifname = %link.ifname,
                netns = %link.netns.display(),
                "created veth pair"
            );
            Ok(())
        }
        // Both names were free a moment ago: someone raced us to one.
        Err(e) if e.is(libc::EEXIST) => Err(NetnsError::NameTaken {
            name: link.host_ifname.clone(),
            reason: format!(
                "{} or {} in network namespace {} was created by someone else at the same time",
                link.host_ifname,
                link.ifname,
                link.netns.display()
            ),
        }),
        Err(e) => Err(nl(
            "create the veth pair",
            format!(
                "{} with peer {} in network namespace {}",
                link.host_ifname,
                link.ifname,
                link.netns.display()
            ),
        )(e)),
    }
}

/// Everything after the pair exists; safe to run on a pair configured before.
fn wire_veth(host: &mut Rtnl, netns: &Netns, link: &PodLink) -> Result<[u8; 6], NetnsError> {
    let host_ifname = link.host_ifname.as_str();
    let host_end = host
        .link_by_name(host_ifname)
        .map_err(nl("look up the host end", host_ifname))?
        .ok_or_else(|| NetnsError::Netlink {
            op: "configure the host end",
            detail: format!("{host_ifname} disappeared while it was being configured"),
        })?;

    // Before the host end is up, so it never gets an IPv6 address at all.
    if sysctl::has_ipv6() {
        sysctl::write(
            &format!("net/ipv6/conf/{host_ifname}/disable_ipv6"),
            "1",
            "the host's network namespace",
        )?;
    }
    ethtool::disable_tx_checksum(host_ifname).map_err(|e| {
        NetnsError::io(
            format!("turn TX checksum offload off on host end {host_ifname}"),
            e,
        )
    })?;

    let gateway_mac = link.gateway_mac;
    let mac = netns
        .run(|| pod::configure(link, netns.path(), Uplink::Veth { gateway_mac }))?
        .ok_or_else(|| NetnsError::Netlink {
            op: "read the pod interface's MAC",
            detail: format!(
                "{} in network namespace {} has no Ethernet address",
                link.ifname,
                link.netns.display()
            ),
        })?;

    host.set_up(host_end.index, link.mtu)
        .map_err(nl("set the MTU and bring the host end up", host_ifname))?;
    Ok(mac)
}

/// An existing host end may only be re-used if it is the veth whose peer is
/// `ifname` in this very namespace; anything else belongs to someone else.
fn check_is_this_pods_veth(
    host: &mut Rtnl,
    existing: &Link,
    netns: &Netns,
    link: &PodLink,
) -> Result<(), NetnsError> {
    let taken = |reason: String| NetnsError::NameTaken {
        name: link.host_ifname.clone(),
        reason,
    };
    let ns = link.netns.display();
    if !existing.is_veth() {
        return Err(taken(format!("it is {}, not a veth", existing.kind_name())));
    }
    let Some(peer_nsid) = existing.peer_netnsid else {
        return Err(taken(
            "it is a veth whose peer is in the same network namespace, not in a pod".to_string(),
        ));
    };
    let pod_nsid = host
        .nsid_of(netns.fd())
        .map_err(nl("look up the id of a network namespace", &ns))?;
    if pod_nsid != Some(peer_nsid) {
        return Err(taken(format!(
            "it is a veth whose peer is in another network namespace than {ns}"
        )));
    }
    let peer_index = existing.peer_index;
    let ifname = link.ifname.as_str();
    let peer_is_ifname = netns.run(|| {
        let mut rtnl = open_rtnl_in(&link.netns)?;
        let found = rtnl.link_by_name(ifname).map_err(nl(
            "look up the pod interface",
            format!("{ifname} in network namespace {ns}"),
        ))?;
        Ok(found.is_some_and(|l| Some(l.index) == peer_index))
    })?;
    if !peer_is_ifname {
        return Err(taken(format!(
            "it is a veth whose peer in network namespace {ns} is not named {ifname}"
        )));
    }
    Ok(())
}

fn check_free_in_pod(netns: &Netns, ifname: &str) -> Result<(), NetnsError> {
    let ns = netns.path().display();
    let exists = netns.run(|| {
        let mut rtnl = open_rtnl_in(netns.path())?;
        rtnl.link_by_name(ifname).map(|l| l.is_some()).map_err(nl(
            "look up the pod interface",
            format!("{ifname} in network namespace {ns}"),
        ))
    })?;
    if exists {
        return Err(NetnsError::NameTaken {
            name: ifname.to_string(),
            reason: format!("network namespace {ns} already has an interface of that name"),
        });
    }
    Ok(())
}

fn delete_by_name(host: &mut Rtnl, host_ifname: &str) -> Result<(), NetnsError> {
    let Some(existing) = host
        .link_by_name(host_ifname)
        .map_err(nl("look up the host end", host_ifname))?
    else {
        return Ok(());
    };
    if !existing.is_veth() {
        return Err(NetnsError::NameTaken {
            name: host_ifname.to_string(),
            reason: format!("it is {}, not a veth", existing.kind_name()),
        });
    }
    host.delete_link(existing.index)
        .map_err(nl("delete the veth pair", host_ifname))
}

fn open_host_rtnl() -> Result<Rtnl, NetnsError> {
    Rtnl::open()
        .map_err(|e| NetnsError::io("open a netlink socket in the host's network namespace", e))
}

fn open_rtnl_in(netns: &Path) -> Result<Rtnl, NetnsError> {
    Rtnl::open().map_err(|e| {
        NetnsError::io(
            format!(
                "open a netlink socket in network namespace {}",
                netns.display()
            ),
            e,
        )
    })
}

/// The kernel's own rules for interface names (`dev_valid_name`), checked
/// up front so a bad name is reported as such rather than as an odd errno,
/// and so it can be used safely in a /proc/sys path.
fn validate_ifname(name: &str) -> Result<(), NetnsError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() >= libc::IFNAMSIZ {
        Some("it is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("it is a path component")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        Some("it contains '/', ':', a NUL or whitespace")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(NetnsError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernels_rules() {
        for ok in ["eth0", "cali1234567890a", "tun0", "a"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "cali1234567890ab",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\0",
        ] {
            assert!(
                matches!(validate_ifname(bad), Err(NetnsError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_read_as_sentences_naming_the_object() {
        let err = NetnsError::NameTaken {
            name: "cali0".into(),
            reason: "it is a bridge device, not a veth".into(),
        };
        assert_eq!(
            err.to_string(),
            "interface name cali0 is already taken: it is a bridge device, not a veth; \
             nothing was changed"
        );
        let err = NetnsError::NoNetns {
            path: "/var/run/netns/gone".into(),
        };
        assert!(err
            .to_string()
            .starts_with("network namespace /var/run/netns/gone does not exist"));
    }

    #[test]
    fn a_regular_file_is_not_a_network_namespace() {
        let path = std::env::temp_dir().join(format!("pod-netns-not-a-ns-{}", std::process::id()));
        std::fs::write(&path, b"").expect("write temp file");
        let result = Netns::open(&path);
        std::fs::remove_file(&path).expect("remove temp file");
        assert!(matches!(result, Err(NetnsError::NoNetns { .. })));
    }
}
