//! Routes to other nodes' workloads, from Felix's route table (`RouteUpdate`).
//!
//! Felix sends a `REMOTE_WORKLOAD` route per block (or borrowed address) another node
//! hosts, with that node's address and the encapsulation of the block's pool in
//! `ip_pool_type` (Felix puts `tunnel_type` only on tunnel-address routes). A block is
//! routed directly via the node's address when its pool uses no encapsulation, or when
//! its pool encapsulates only across subnets (`CrossSubnet`) and the node is on this
//! node's subnet (`same_subnet`). A block that needs IPIP goes into a point-to-point
//! IP-in-IP tunnel to that node (one per remote node, its source this node's IPv4 address
//! from its host metadata), which is what Felix's Linux dataplane's `tunl0` sends and
//! accepts. A block that needs VXLAN (IPv4) goes into an L2 VXLAN tunnel to that node's
//! VTEP, as Felix's Linux `vxlan.calico` is: inner Ethernet, the VNI and port of Felix's
//! config, this node's VTEP MAC on the tunnel, the remote VTEP's MAC as a static
//! neighbour for its tunnel address, and the block routed via that address on the tunnel.
//! A block whose tunnel cannot be built is left out, never routed unencapsulated.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use calico_model::{EncapMode, IpPoolType, MacAddr, Model, Route, RouteTypes};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A route in VPP's default table, keyed by its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteKey(pub IpNet);

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a destination is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NextHop {
    /// Unencapsulated, to this address (resolved by VPP's FIB: the remote node's address on
    /// a connected subnet, typically the uplink's).
    Via(IpAddr),
    /// Into this tunnel (a point-to-point interface: no next-hop address).
    Tunnel(TunnelKey),
    /// Via this address on this tunnel (an L2 tunnel: VXLAN, the remote VTEP's address).
    TunnelVia(TunnelKey, IpAddr),
}

impl NextHop {
    /// The tunnel the route goes through, if any.
    pub fn tunnel(&self) -> Option<TunnelKey> {
        match *self {
            NextHop::Via(_) => None,
            NextHop::Tunnel(t) | NextHop::TunnelVia(t, _) => Some(t),
        }
    }
}

/// An encapsulation the driver builds tunnels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Encap {
    /// IP-in-IP (protocol 4), as Linux's `tunl0`.
    Ipip,
    /// L2 VXLAN with this VNI and UDP port, as Linux's `vxlan.calico`.
    Vxlan { vni: u32, port: u16 },
}

/// A tunnel the driver creates and owns, keyed by what makes it unique in VPP: its
/// encapsulation and both endpoints (this node's address changing makes a new tunnel).
/// Written as its display form ("ipip 192.168.1.1->192.168.1.2"): it keys the state file's
/// tunnel table, and JSON keys are strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TunnelKey {
    pub encap: Encap,
    pub src: IpAddr,
    pub dst: IpAddr,
}

impl fmt::Display for TunnelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encap {
            Encap::Ipip => write!(f, "ipip {}->{}", self.src, self.dst),
            Encap::Vxlan { vni, port } => {
                write!(f, "vxlan/{vni}/{port} {}->{}", self.src, self.dst)
            }
        }
    }
}

impl From<TunnelKey> for String {
    fn from(key: TunnelKey) -> String {
        key.to_string()
    }
}

impl TryFrom<String> for TunnelKey {
    type Error = crate::desired::BadKey;

    fn try_from(s: String) -> Result<TunnelKey, crate::desired::BadKey> {
        let parsed = s.split_once(' ').and_then(|(encap, ends)| {
            let encap = match encap.split('/').collect::<Vec<_>>()[..] {
                ["ipip"] => Encap::Ipip,
                ["vxlan", vni, port] => Encap::Vxlan {
                    vni: vni.parse().ok()?,
                    port: port.parse().ok()?,
                },
                _ => return None,
            };
            let (src, dst) = ends.split_once("->")?;
            Some(TunnelKey {
                encap,
                src: src.parse().ok()?,
                dst: dst.parse().ok()?,
            })
        });
        parsed.ok_or(crate::desired::BadKey(s))
    }
}

crate::desired::unit_key!(
    /// The node's uplink, as what enters by it needs it: one per node, named by the
    /// driver's setting, not by Felix.
    UplinkKey,
    "uplink"
);

/// What the uplink needs: npol must see the flows that enter VPP by it (cnat's feature on
/// it), or a pod's ingress policy meets wrong verdicts on traffic from other nodes and
/// from outside (DESIGN.md section 9, seen again on a real VPP with tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredUplink;

/// The uplink is always wanted: traffic from outside the node enters by it whether or not
/// Felix routes anything (the reconciler leaves it alone when no uplink is configured).
pub fn desired_uplinks() -> BTreeMap<UplinkKey, DesiredUplink> {
    BTreeMap::from([(UplinkKey, DesiredUplink)])
}

/// A tunnel the driver wants: what makes it unique is in its key; an L2 (VXLAN) tunnel
/// also needs the MACs at its two ends. It is unnumbered to the uplink and up once built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredTunnel {
    pub l2: Option<L2Ends>,
}

impl DesiredTunnel {
    /// A point-to-point (IPIP) tunnel: nothing beyond its key.
    pub const P2P: DesiredTunnel = DesiredTunnel { l2: None };
}

/// The Ethernet ends of an L2 tunnel: this node's VTEP MAC (the tunnel interface's, so
/// frames for it are accepted), and the remote VTEP's address and MAC (a static neighbour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct L2Ends {
    pub own_mac: MacAddr,
    pub peer: IpAddr,
    pub peer_mac: MacAddr,
}

/// A route the driver wants in VPP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredRoute {
    pub next_hop: NextHop,
}

/// Why a route from Felix is not programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Not a route to another node's workloads.
    NotRemoteWorkload,
    /// Felix gave no node address of the destination's family.
    NoNodeAddress,
    /// The block's pool needs an encapsulation the driver does not build (VXLAN, or IPIP
    /// for an IPv6 block: Calico's IPIP carries IPv4 only).
    NeedsTunnel(IpPoolType),
    /// The block needs a tunnel, and this node's own address of its family is unknown
    /// (no host metadata for this node yet, or no `FelixHostname`).
    NoLocalAddress,
    /// The block needs VXLAN and the remote node's VTEP is unknown or incomplete (no
    /// tunnel address or no MAC).
    NoRemoteVtep,
    /// The block needs VXLAN and this node's own VTEP is unknown or has no MAC.
    NoLocalVtep,
    /// The block, or the pool it is in, overlaps this node's own subnet: routing it would
    /// take addresses of the node's own link away from it.
    OverlapsNodeSubnet,
    /// The destination is in no Calico pool Felix told us about.
    NoPool,
}

/// This node's own IPv4 address: its host metadata, found by its name
/// ([`Model::hostname`]).
pub fn own_ipv4(model: &Model) -> Option<IpAddr> {
    let host = model.host_metadata.get(model.hostname()?)?;
    host.ipv4_addr.map(|n| IpAddr::V4(n.addr()))
}

/// This node's own subnets (its host metadata's addresses with their prefix lengths).
fn own_subnets(model: &Model) -> Vec<IpNet> {
    let Some(me) = model.hostname().and_then(|h| model.host_metadata.get(h)) else {
        return Vec::new();
    };
    let v4 = me.ipv4_addr.map(|n| IpNet::V4(n.trunc()));
    let v6 = me.ipv6_addr.map(|n| IpNet::V6(n.trunc()));
    v4.into_iter().chain(v6).collect()
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Felix's VXLAN settings (`VXLANVNI`, `VXLANPort`), with Felix's defaults for absent or
/// invalid values.
pub fn vxlan_encap(model: &Model) -> Encap {
    let get = |k: &str| model.felix_config.get(k).map(|v| v.trim());
    Encap::Vxlan {
        vni: get("VXLANVNI")
            .and_then(|v| v.parse().ok())
            .filter(|v| *v < (1 << 24))
            .unwrap_or(4096),
        port: get("VXLANPort")
            .and_then(|v| v.parse().ok())
            .filter(|p| *p != 0)
            .unwrap_or(4789),
    }
}

/// This node's own IPv6 address: its host metadata.
pub fn own_ipv6(model: &Model) -> Option<IpAddr> {
    let host = model.host_metadata.get(model.hostname()?)?;
    host.ipv6_addr.map(|n| IpAddr::V6(n.addr()))
}

/// The route for one of Felix's routes, or why there is none.
pub fn desired_route(model: &Model, route: &Route) -> Result<DesiredRoute, Skipped> {
    desired_route_from(own_ipv4(model), model, route).map(|(r, _)| r)
}

fn desired_route_from(
    me: Option<IpAddr>,
    model: &Model,
    route: &Route,
) -> Result<(DesiredRoute, Option<DesiredTunnel>), Skipped> {
    let t = route.types;
    if !t.contains(RouteTypes::REMOTE_WORKLOAD)
        || t.contains(RouteTypes::LOCAL_WORKLOAD)
        || route.local_workload
    {
        return Err(Skipped::NotRemoteWorkload);
    }
    let node = match route.dst_node_ip {
        Some(ip) if ip.is_ipv4() == matches!(route.dst, IpNet::V4(_)) => ip,
        _ => return Err(Skipped::NoNodeAddress),
    };
    let pool = model
        .ipam_pools
        .values()
        .find(|p| p.cidr.contains(&route.dst))
        .map(|p| p.cidr);
    if own_subnets(model)
        .iter()
        .any(|s| overlaps(*s, route.dst) || pool.is_some_and(|p| overlaps(*s, p)))
    {
        return Err(Skipped::OverlapsNodeSubnet);
    }
    let direct = match route.ip_pool_type {
        IpPoolType::NoEncap => true,
        IpPoolType::Ipip | IpPoolType::Vxlan => {
            let mode = model
                .ipam_pools
                .values()
                .find(|p| p.cidr.contains(&route.dst))
                .map(|p| match route.ip_pool_type {
                    IpPoolType::Ipip => p.ipip_mode,
                    _ => p.vxlan_mode,
                });
            match mode {
                Some(EncapMode::Never) => true,
                Some(EncapMode::CrossSubnet) => route.same_subnet,
                Some(EncapMode::Always) => false,
                None => return Err(Skipped::NoPool),
            }
        }
        IpPoolType::None => return Err(Skipped::NoPool),
    };
    if direct {
        let r = DesiredRoute {
            next_hop: NextHop::Via(node),
        };
        return Ok((r, None));
    }
    match (route.ip_pool_type, route.dst, node) {
        (IpPoolType::Ipip, IpNet::V4(_), IpAddr::V4(_)) => {
            let src = me.ok_or(Skipped::NoLocalAddress)?;
            let key = TunnelKey {
                encap: Encap::Ipip,
                src,
                dst: node,
            };
            let r = DesiredRoute {
                next_hop: NextHop::Tunnel(key),
            };
            Ok((r, Some(DesiredTunnel::P2P)))
        }
        (IpPoolType::Vxlan, IpNet::V4(_), IpAddr::V4(_))
        | (IpPoolType::Vxlan, IpNet::V6(_), IpAddr::V6(_)) => {
            let v6 = node.is_ipv6();
            let own = model
                .hostname()
                .and_then(|h| model.vteps.get(h))
                .ok_or(Skipped::NoLocalVtep)?;
            let remote = model
                .vteps
                .get(&route.dst_node_name)
                .ok_or(Skipped::NoRemoteVtep)?;
            // Felix's VTEPs carry one MAC, tunnel address and parent device per family.
            let ends = |v: &calico_model::Vtep| {
                if v6 {
                    (
                        v.mac_v6,
                        v.ipv6_addr.map(IpAddr::V6),
                        v.parent_device_ipv6.map(IpAddr::V6),
                    )
                } else {
                    (
                        v.mac,
                        v.ipv4_addr.map(IpAddr::V4),
                        v.parent_device_ip.map(IpAddr::V4),
                    )
                }
            };
            let (own_mac, _, own_parent) = ends(own);
            let own_mac = own_mac.ok_or(Skipped::NoLocalVtep)?;
            // Outer source: the parent device address Felix advertises for this node's
            // VTEP, else the node's address of that family.
            let own_addr = if v6 { own_ipv6(model) } else { me };
            let src = own_parent.or(own_addr).ok_or(Skipped::NoLocalAddress)?;
            let (Some(peer_mac), Some(peer), remote_parent) = ends(remote) else {
                return Err(Skipped::NoRemoteVtep);
            };
            let key = TunnelKey {
                encap: vxlan_encap(model),
                src,
                dst: remote_parent.unwrap_or(node),
            };
            let r = DesiredRoute {
                next_hop: NextHop::TunnelVia(key, peer),
            };
            let l2 = L2Ends {
                own_mac,
                peer,
                peer_mac,
            };
            Ok((r, Some(DesiredTunnel { l2: Some(l2) })))
        }
        (other, _, _) => Err(Skipped::NeedsTunnel(other)),
    }
}

/// Every route the driver wants for the model's route table, and the tunnels they go
/// through (a tunnel exists exactly while a route uses it).
pub fn desired_routes(
    model: &Model,
) -> (
    BTreeMap<RouteKey, DesiredRoute>,
    BTreeMap<TunnelKey, DesiredTunnel>,
) {
    let me = own_ipv4(model);
    let mut routes = BTreeMap::new();
    let mut tunnels = BTreeMap::new();
    for (dst, route) in &model.routes {
        match desired_route_from(me, model, route) {
            Ok((r, tunnel)) => {
                if let (Some(key), Some(want)) = (r.next_hop.tunnel(), tunnel) {
                    tunnels.insert(key, want);
                }
                routes.insert(RouteKey(*dst), r);
            }
            Err(Skipped::NotRemoteWorkload) => {}
            // Felix's input is inconsistent: say so.
            Err(
                why
                @ (Skipped::NoNodeAddress | Skipped::NoRemoteVtep | Skipped::OverlapsNodeSubnet),
            ) => tracing::warn!(dst = %dst, node = %route.dst_node_name, ?why,
                "route not programmed"),
            Err(why) => tracing::debug!(dst = %dst, ?why, "route not programmed"),
        }
    }
    (routes, tunnels)
}

/// A route to one of this node's workloads: its address (a host prefix, or whatever
/// prefix Felix gives) out of its interface. VPP learns nothing from a pod interface that
/// borrows its address (unnumbered, as the CNI makes them): without this route the pod is
/// unreachable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredLocalRoute {
    pub interface: crate::desired::InterfaceKey,
}

/// The routes to this node's workloads, from their endpoints (as Felix's Linux dataplane
/// routes each workload's addresses to its interface). An address two endpoints claim goes
/// to the first (by endpoint id), with a warning.
pub fn desired_local_routes(model: &Model) -> BTreeMap<RouteKey, DesiredLocalRoute> {
    let mut out: BTreeMap<RouteKey, DesiredLocalRoute> = BTreeMap::new();
    for (id, ep) in &model.workload_endpoints {
        if ep.invalid.is_some() {
            continue;
        }
        let nets = ep
            .ipv4_nets
            .iter()
            .map(|n| IpNet::V4(n.trunc()))
            .chain(ep.ipv6_nets.iter().map(|n| IpNet::V6(n.trunc())));
        for net in nets {
            let want = DesiredLocalRoute {
                interface: crate::desired::InterfaceKey(ep.name.clone()),
            };
            match out.get(&RouteKey(net)) {
                Some(have) if *have != want => tracing::warn!(
                    endpoint = %id, address = %net, interface = %have.interface,
                    "address claimed by two endpoints: routed to the first"),
                _ => {
                    out.insert(RouteKey(net), want);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{IpamPool, TunnelType};

    fn route(dst: &str, pool: IpPoolType, node: &str, same_subnet: bool) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            types: RouteTypes(RouteTypes::REMOTE_WORKLOAD),
            ip_pool_type: pool,
            dst_node_name: "n2".into(),
            dst_node_ip: Some(node.parse().unwrap()),
            same_subnet,
            nat_outgoing: false,
            local_workload: false,
            tunnel_type: TunnelType::default(),
            borrowed: false,
        }
    }

    fn pool(cidr: &str, ipip: EncapMode, vxlan: EncapMode) -> IpamPool {
        IpamPool {
            cidr: cidr.parse().unwrap(),
            masquerade: false,
            ipip_mode: ipip,
            vxlan_mode: vxlan,
            allowed_uses: Vec::new(),
        }
    }

    fn via(ip: &str) -> Result<DesiredRoute, Skipped> {
        Ok(DesiredRoute {
            next_hop: NextHop::Via(ip.parse().unwrap()),
        })
    }

    #[test]
    fn a_block_is_routed_directly_only_where_its_pool_needs_no_tunnel() {
        let mut m = Model::default();
        m.ipam_pools.insert(
            "10.70.0.0-16".into(),
            pool("10.70.0.0/16", EncapMode::CrossSubnet, EncapMode::Never),
        );
        m.ipam_pools.insert(
            "10.80.0.0-16".into(),
            pool("10.80.0.0/16", EncapMode::Always, EncapMode::Never),
        );
        m.ipam_pools.insert(
            "10.90.0.0-16".into(),
            pool("10.90.0.0/16", EncapMode::Never, EncapMode::CrossSubnet),
        );
        let r = |dst, t, same| desired_route(&m, &route(dst, t, "192.168.1.2", same));
        assert_eq!(
            r("10.60.1.0/26", IpPoolType::NoEncap, false),
            via("192.168.1.2")
        );
        assert_eq!(
            r("10.70.1.0/26", IpPoolType::Ipip, true),
            via("192.168.1.2")
        );
        assert_eq!(
            r("10.70.1.0/26", IpPoolType::Ipip, false),
            Err(Skipped::NoLocalAddress)
        );
        assert_eq!(
            r("10.80.1.0/26", IpPoolType::Ipip, true),
            Err(Skipped::NoLocalAddress)
        );
        assert_eq!(
            r("10.90.1.0/26", IpPoolType::Vxlan, true),
            via("192.168.1.2")
        );
        assert_eq!(
            r("10.90.1.0/26", IpPoolType::Vxlan, false),
            Err(Skipped::NoLocalVtep)
        );
        assert_eq!(
            r("10.99.1.0/26", IpPoolType::Ipip, true),
            Err(Skipped::NoPool)
        );
        assert_eq!(
            r("10.60.1.0/26", IpPoolType::None, true),
            Err(Skipped::NoPool)
        );
    }

    #[test]
    fn an_ipip_block_goes_into_one_tunnel_per_remote_node_from_this_nodes_address() {
        let mut m = Model::default();
        m.ipam_pools.insert(
            "10.70.0.0-16".into(),
            pool("10.70.0.0/16", EncapMode::Always, EncapMode::Never),
        );
        m.ipam_pools.insert(
            "fd00:70::-48".into(),
            pool("fd00:70::/48", EncapMode::Always, EncapMode::Never),
        );
        let add = |m: &mut Model, dst: &str, node: &str| {
            let r = route(dst, IpPoolType::Ipip, node, false);
            m.routes.insert(r.dst, r);
        };
        add(&mut m, "10.70.1.0/26", "192.168.1.2");
        add(&mut m, "10.70.1.64/26", "192.168.1.2");
        add(&mut m, "10.70.2.0/26", "192.168.1.3");
        add(&mut m, "fd00:70::/122", "fd00:1::2");
        // No host metadata for this node yet: nothing to build the tunnels from.
        let (routes, tunnels) = desired_routes(&m);
        assert!(routes.is_empty() && tunnels.is_empty());

        m.felix_config
            .insert("FelixHostname".into(), "node1".into());
        m.host_metadata.insert(
            "node1".into(),
            calico_model::HostMetadata {
                ipv4_addr: Some("192.168.1.1/24".parse().unwrap()),
                ..Default::default()
            },
        );
        let (routes, tunnels) = desired_routes(&m);
        let t = |dst: &str| TunnelKey {
            encap: Encap::Ipip,
            src: "192.168.1.1".parse().unwrap(),
            dst: dst.parse().unwrap(),
        };
        assert_eq!(
            tunnels.keys().copied().collect::<Vec<_>>(),
            vec![t("192.168.1.2"), t("192.168.1.3")]
        );
        let hop = |dst: &str| routes[&RouteKey(dst.parse().unwrap())].next_hop;
        assert_eq!(hop("10.70.1.0/26"), NextHop::Tunnel(t("192.168.1.2")));
        assert_eq!(hop("10.70.1.64/26"), NextHop::Tunnel(t("192.168.1.2")));
        assert_eq!(hop("10.70.2.0/26"), NextHop::Tunnel(t("192.168.1.3")));
        // Calico's IPIP carries IPv4 only: an IPv6 block is not routed at all.
        assert_eq!(routes.len(), 3);
        assert_eq!(
            desired_route(&m, &m.routes[&"fd00:70::/122".parse().unwrap()]),
            Err(Skipped::NeedsTunnel(IpPoolType::Ipip))
        );
    }

    #[test]
    fn only_remote_workload_routes_with_a_node_address_of_their_family() {
        let m = Model::default();
        let mut local = route("10.60.1.0/26", IpPoolType::NoEncap, "192.168.1.2", true);
        local.types = RouteTypes(RouteTypes::LOCAL_WORKLOAD | RouteTypes::REMOTE_WORKLOAD);
        assert_eq!(desired_route(&m, &local), Err(Skipped::NotRemoteWorkload));
        let mut host = route("192.168.1.2/32", IpPoolType::NoEncap, "192.168.1.2", true);
        host.types = RouteTypes(RouteTypes::REMOTE_HOST);
        assert_eq!(desired_route(&m, &host), Err(Skipped::NotRemoteWorkload));
        let v6 = route("fd00:60::/122", IpPoolType::NoEncap, "192.168.1.2", true);
        assert_eq!(desired_route(&m, &v6), Err(Skipped::NoNodeAddress));
        let v6 = route("fd00:60::/122", IpPoolType::NoEncap, "fd00:1::2", true);
        assert_eq!(desired_route(&m, &v6), via("fd00:1::2"));
        let mut none = v6.clone();
        none.dst_node_ip = None;
        assert_eq!(desired_route(&m, &none), Err(Skipped::NoNodeAddress));
    }

    /// Tunnel keys key a JSON table in the state file: they round-trip as strings, and a
    /// mangled one is an error, not a tunnel.
    #[test]
    fn tunnel_keys_are_strings_in_json() {
        let key = TunnelKey {
            encap: Encap::Ipip,
            src: "192.168.1.1".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
        };
        let table = BTreeMap::from([(key, 1)]);
        let json = serde_json::to_string(&table).unwrap();
        assert_eq!(json, r#"{"ipip 192.168.1.1->fd00::2":1}"#);
        let back: BTreeMap<TunnelKey, i32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, table);
        for bad in [
            "gre 1.1.1.1->2.2.2.2",
            "ipip 1.1.1.1",
            "ipip x->2.2.2.2",
            "",
        ] {
            assert!(TunnelKey::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    /// A VXLAN block goes into one L2 tunnel per remote VTEP: outer addresses the VTEPs'
    /// parent devices, VNI and port from Felix's config, this node's VTEP MAC on the
    /// tunnel, the block via the remote VTEP's tunnel address with its MAC. A VTEP without
    /// a MAC (either end) builds nothing.
    #[test]
    fn a_vxlan_block_goes_into_an_l2_tunnel_to_the_remote_vtep() {
        use calico_model::Vtep;
        let mut m = Model {
            default_hostname: Some("n1".into()),
            ..Model::default()
        };
        m.ipam_pools.insert(
            "10.70.0.0-16".into(),
            pool("10.70.0.0/16", EncapMode::Never, EncapMode::Always),
        );
        let mac = |b: u8| MacAddr([0x66, 0, 0, 0, 0, b]);
        let vtep = |tunnel: &str, parent: &str, mac: Option<MacAddr>| Vtep {
            mac,
            ipv4_addr: Some(tunnel.parse().unwrap()),
            parent_device_ip: Some(parent.parse().unwrap()),
            ..Vtep::default()
        };
        m.vteps
            .insert("n1".into(), vtep("10.70.0.1", "192.168.1.1", Some(mac(1))));
        m.vteps
            .insert("n2".into(), vtep("10.70.1.1", "192.168.1.2", Some(mac(2))));
        m.felix_config.insert("VXLANVNI".into(), "4097".into());
        let r = route("10.70.1.0/26", IpPoolType::Vxlan, "192.168.1.2", false);
        m.routes.insert(r.dst, r.clone());
        let key = TunnelKey {
            encap: Encap::Vxlan {
                vni: 4097,
                port: 4789,
            },
            src: "192.168.1.1".parse().unwrap(),
            dst: "192.168.1.2".parse().unwrap(),
        };
        let (routes, tunnels) = desired_routes(&m);
        assert_eq!(
            routes[&RouteKey(r.dst)].next_hop,
            NextHop::TunnelVia(key, "10.70.1.1".parse().unwrap())
        );
        assert_eq!(
            tunnels[&key],
            DesiredTunnel {
                l2: Some(L2Ends {
                    own_mac: mac(1),
                    peer: "10.70.1.1".parse().unwrap(),
                    peer_mac: mac(2),
                })
            }
        );
        assert_eq!(key.to_string(), "vxlan/4097/4789 192.168.1.1->192.168.1.2");
        assert_eq!(TunnelKey::try_from(key.to_string()).unwrap(), key);

        let mut no_mac = m.clone();
        no_mac.vteps.get_mut("n2").unwrap().mac = None;
        assert_eq!(desired_route(&no_mac, &r), Err(Skipped::NoRemoteVtep));
        let mut no_own = m.clone();
        no_own.vteps.remove("n1");
        assert_eq!(desired_route(&no_own, &r), Err(Skipped::NoLocalVtep));
        assert!(desired_routes(&no_own).1.is_empty());
        // IPv6: the VTEPs' IPv6 fields, a tunnel of its own between the IPv6 parents.
        let mut m6 = m.clone();
        for (n, b) in [("n1", 1u8), ("n2", 2u8)] {
            let v = m6.vteps.get_mut(n).unwrap();
            v.mac_v6 = Some(mac(0x60 + b));
            v.ipv6_addr = Some(format!("fd70:{b}::1").parse().unwrap());
            v.parent_device_ipv6 = Some(format!("fd00::{b}").parse().unwrap());
        }
        m6.ipam_pools.insert(
            "fd70::-16".into(),
            pool("fd70::/16", EncapMode::Never, EncapMode::Always),
        );
        let r6 = route("fd70:2::/122", IpPoolType::Vxlan, "fd00::2", false);
        m6.routes.insert(r6.dst, r6.clone());
        assert!(
            desired_route(&m6, &r6).is_ok(),
            "{:?}",
            desired_route(&m6, &r6)
        );
        let (routes6, tunnels6) = desired_routes(&m6);
        let key6 = TunnelKey {
            encap: Encap::Vxlan {
                vni: 4097,
                port: 4789,
            },
            src: "fd00::1".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
        };
        assert_eq!(
            routes6[&RouteKey(r6.dst)].next_hop,
            NextHop::TunnelVia(key6, "fd70:2::1".parse().unwrap())
        );
        assert_eq!(tunnels6[&key6].l2.unwrap().own_mac, mac(0x61));
        assert_eq!(tunnels6.len(), 2, "one tunnel per family");
        // A bad VNI in Felix's config falls back to Felix's default.
        m.felix_config.insert("VXLANVNI".into(), "nope".into());
        assert_eq!(
            vxlan_encap(&m),
            Encap::Vxlan {
                vni: 4096,
                port: 4789
            }
        );
    }

    /// A block (or its pool) overlapping this node's own subnet is never routed: it would
    /// take the node's own link addresses away; other routes are unaffected.
    #[test]
    fn a_block_overlapping_the_node_subnet_is_not_routed() {
        let mut m = Model {
            default_hostname: Some("n1".into()),
            ..Model::default()
        };
        m.host_metadata.insert(
            "n1".into(),
            calico_model::HostMetadata {
                ipv4_addr: Some("192.168.0.1/16".parse().unwrap()),
                ..Default::default()
            },
        );
        m.ipam_pools.insert(
            "bad".into(),
            pool("192.168.128.0/17", EncapMode::Never, EncapMode::Never),
        );
        m.ipam_pools.insert(
            "good".into(),
            pool("10.70.0.0/16", EncapMode::Never, EncapMode::Never),
        );
        let bad = route("192.168.130.0/26", IpPoolType::NoEncap, "192.168.0.2", true);
        let good = route("10.70.1.0/26", IpPoolType::NoEncap, "192.168.0.2", true);
        assert_eq!(desired_route(&m, &bad), Err(Skipped::OverlapsNodeSubnet));
        assert_eq!(desired_route(&m, &good), via("192.168.0.2"));
        m.routes.insert(bad.dst, bad);
        m.routes.insert(good.dst, good.clone());
        let (routes, _) = desired_routes(&m);
        assert_eq!(routes.keys().collect::<Vec<_>>(), [&RouteKey(good.dst)]);
    }

    /// Each workload address is routed to its endpoint's interface; an address claimed
    /// twice goes to the first endpoint; invalid endpoints get none.
    #[test]
    fn local_workloads_are_routed_to_their_interfaces() {
        use calico_model::{WorkloadEndpoint, WorkloadEndpointId};
        let ep = |name: &str, v4: &str, v6: Option<&str>| WorkloadEndpoint {
            active: true,
            name: name.into(),
            mac: None,
            profile_ids: Vec::new(),
            ipv4_nets: vec![v4.parse().unwrap()],
            ipv6_nets: v6.map(|n| n.parse().unwrap()).into_iter().collect(),
            tiers: Vec::new(),
            ipv4_nat: Vec::new(),
            ipv6_nat: Vec::new(),
            allow_spoofed_source_prefixes: Vec::new(),
            annotations: BTreeMap::new(),
            invalid: None,
        };
        let id = |w: &str| WorkloadEndpointId {
            orchestrator_id: "k8s".into(),
            workload_id: w.into(),
            endpoint_id: "eth0".into(),
        };
        let mut m = Model::default();
        m.workload_endpoints
            .insert(id("a"), ep("cali-a", "10.70.0.2/32", Some("fd70::2/128")));
        m.workload_endpoints
            .insert(id("b"), ep("cali-b", "10.70.0.2/32", None));
        let mut bad = ep("cali-c", "10.70.0.3/32", None);
        bad.invalid = Some(calico_model::Invalid { reason: "x".into() });
        m.workload_endpoints.insert(id("c"), bad);
        let r = desired_local_routes(&m);
        let to = |n: &str| {
            r.get(&RouteKey(n.parse().unwrap()))
                .map(|d| d.interface.0.as_str())
        };
        assert_eq!(to("10.70.0.2/32"), Some("cali-a"));
        assert_eq!(to("fd70::2/128"), Some("cali-a"));
        assert_eq!(to("10.70.0.3/32"), None);
        assert_eq!(r.len(), 2);
    }
}
