//! The pod side of the wiring, run inside the pod's namespace: what Calico's
//! CNI plugin sets up for a pure-L3 pod. Every step adds or corrects and
//! never fails on what is already right, so running it again is harmless;
//! it never removes anything it finds.

use std::{
    fmt::Display,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use ipnet::IpNet;
use netlink_packet_route::route::RouteScope;

use crate::{
    ethtool,
    rtnl::{NlError, Route, Rtnl},
    sysctl, NetnsError, PodLink,
};

/// The IPv4 next hop every pod route points at. It lives on no interface:
/// the permanent neighbour entry is what makes it reachable.
pub(crate) const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The IPv6 next hop, link-local on the pod's interface.
pub(crate) const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// How packets leave the pod.
#[derive(Clone, Copy)]
pub(crate) enum Uplink {
    /// An Ethernet veth: routes go through the gateways, whose MAC is pinned.
    Veth { gateway_mac: [u8; 6] },
    /// A point-to-point TUN: routes go straight out of the device.
    Tun,
}

/// Configures `link.ifname` and `lo` in the current thread's namespace
/// (`netns` only names it in errors). Returns the interface's MAC, if it
/// has one.
pub(crate) fn configure(
    link: &PodLink,
    netns: &Path,
    uplink: Uplink,
) -> Result<Option<[u8; 6]>, NetnsError> {
    let ifname = link.ifname.as_str();
    let place = format!("network namespace {}", netns.display());
    let where_ = format!("{ifname} in {place}");
    let mut rtnl = Rtnl::open().map_err(|e| {
        NetnsError::io(
            format!(
                "open a netlink socket in network namespace {}",
                netns.display()
            ),
            e,
        )
    })?;

    let lo = rtnl
        .link_by_name("lo")
        .map_err(nl("look up the loopback interface", netns.display()))?
        .ok_or_else(|| no_link(netns, "lo"))?;
    rtnl.set_up(lo.index, 0)
        .map_err(nl("bring the loopback interface up", netns.display()))?;

    let dev = rtnl
        .link_by_name(ifname)
        .map_err(nl("look up the pod interface", &where_))?
        .ok_or_else(|| no_link(netns, ifname))?;
    if let Uplink::Veth { .. } = uplink {
        ethtool::disable_tx_checksum(ifname)
            .map_err(|e| NetnsError::io(format!("turn TX checksum offload off on {where_}"), e))?;
    }
    let has_v4 = link.addrs.iter().any(|a| a.addr().is_ipv4());
    let has_v6 = link.addrs.iter().any(|a| a.addr().is_ipv6());
    // A quiet link: without an IPv6 address the pod has no IPv6 at all (no router
    // solicitations, MLD reports or link-local traffic towards VPP), and with one it asks no
    // router (routes are static). Set before the link goes up, when the kernel would send
    // them. VPP reads a pod's frames only as it polls: unsolicited ones from many pods at
    // once are what it can least afford.
    if sysctl::has_ipv6() {
        if has_v6 {
            sysctl::write(&format!("net/ipv6/conf/{ifname}/accept_ra"), "0", &place)?;
            sysctl::write(
                &format!("net/ipv6/conf/{ifname}/router_solicitations"),
                "0",
                &place,
            )?;
        } else {
            sysctl::write(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1", &place)?;
        }
    }
    rtnl.set_up(dev.index, link.mtu)
        .map_err(nl("set the MTU and bring the pod interface up", &where_))?;

    if link.ip_forwarding {
        if has_v4 {
            sysctl::write("net/ipv4/ip_forward", "1", &place)?;
        }
        if has_v6 {
            sysctl::write("net/ipv6/conf/all/forwarding", "1", &place)?;
        }
    }

    for addr in &link.addrs {
        rtnl.replace_address(dev.index, *addr)
            .map_err(nl("add a pod address", format!("{addr} on {where_}")))?;
    }

    for (is_v4, has_family) in [(true, has_v4), (false, has_v6)] {
        if !has_family {
            continue;
        }
        let gateway = match uplink {
            Uplink::Veth { gateway_mac } => {
                let gateway = if is_v4 {
                    IpAddr::V4(GATEWAY_V4)
                } else {
                    IpAddr::V6(GATEWAY_V6)
                };
                add_gateway(&mut rtnl, dev.index, gateway, gateway_mac, &where_)?;
                Some(gateway)
            }
            Uplink::Tun => None,
        };
        for dst in link.routes.iter().filter(|d| d.addr().is_ipv4() == is_v4) {
            let route = Route {
                dst: *dst,
                gateway,
                oif: dev.index,
                scope: scope_for(dst, gateway),
            };
            rtnl.replace_route(&route)
                .map_err(nl("add a pod route", format!("{dst} on {where_}")))?;
        }
    }
    Ok(dev.mac)
}

/// Makes `gateway` reachable on the pod's interface: pinned to the VPP
/// side's MAC so the pod never has to resolve it (VPP does not answer ARP
/// for 169.254.1.1), plus, for IPv4, an on-link host route to it.
fn add_gateway(
    rtnl: &mut Rtnl,
    index: u32,
    gateway: IpAddr,
    mac: [u8; 6],
    where_: &str,
) -> Result<(), NetnsError> {
    if let IpAddr::V4(v4) = gateway {
        let route = Route {
            dst: IpNet::from(IpAddr::V4(v4)),
            gateway: None,
            oif: index,
            scope: RouteScope::Link,
        };
        rtnl.replace_route(&route).map_err(nl(
            "add the on-link route to the gateway",
            format!("{v4} on {where_}"),
        ))?;
    }
    rtnl.replace_permanent_neighbour(index, gateway, mac)
        .map_err(nl(
            "add the permanent neighbour entry for the gateway",
            format!("{gateway} on {where_}"),
        ))
}

/// IPv4 routes straight out of a device are on-link; IPv6 ignores scope and
/// the kernel expects universe.
fn scope_for(dst: &IpNet, gateway: Option<IpAddr>) -> RouteScope {
    match (dst, gateway) {
        (IpNet::V4(_), None) => RouteScope::Link,
        _ => RouteScope::Universe,
    }
}

fn no_link(netns: &Path, ifname: &str) -> NetnsError {
    NetnsError::NoLink {
        netns: netns.to_path_buf(),
        ifname: ifname.to_string(),
    }
}

/// Turns a netlink failure into an error naming the operation and object.
pub(crate) fn nl(op: &'static str, object: impl Display) -> impl FnOnce(NlError) -> NetnsError {
    move |e| NetnsError::Netlink {
        op,
        detail: format!("{object}: {e}"),
    }
}
