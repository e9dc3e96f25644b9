//! Routes to other nodes' workloads, from Felix's route table (`RouteUpdate`).
//!
//! Felix sends a `REMOTE_WORKLOAD` route per block (or borrowed address) another node
//! hosts, with that node's address and the encapsulation of the block's pool in
//! `ip_pool_type` (Felix puts `tunnel_type` only on tunnel-address routes). A block is
//! routed directly via the node's address when its pool uses no encapsulation, or when
//! its pool encapsulates only across subnets (`CrossSubnet`) and the node is on this
//! node's subnet (`same_subnet`). Blocks that need a tunnel (IPIP or VXLAN) are not
//! routed here yet: they are left out, never routed unencapsulated.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use calico_model::{EncapMode, IpPoolType, Model, Route, RouteTypes};
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
    /// The block's pool needs IPIP or VXLAN to reach that node.
    NeedsTunnel(IpPoolType),
    /// The destination is in no Calico pool Felix told us about.
    NoPool,
}

/// The route for one of Felix's routes, or why there is none.
pub fn desired_route(model: &Model, route: &Route) -> Result<DesiredRoute, Skipped> {
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
    if !direct {
        return Err(Skipped::NeedsTunnel(route.ip_pool_type));
    }
    Ok(DesiredRoute {
        next_hop: NextHop::Via(node),
    })
}

/// Every route the driver wants for the model's route table.
pub fn desired_routes(model: &Model) -> BTreeMap<RouteKey, DesiredRoute> {
    let mut out = BTreeMap::new();
    for (dst, route) in &model.routes {
        match desired_route(model, route) {
            Ok(r) => {
                out.insert(RouteKey(*dst), r);
            }
            Err(Skipped::NotRemoteWorkload) => {}
            Err(why) => tracing::debug!(dst = %dst, ?why, "route not programmed"),
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
            Err(Skipped::NeedsTunnel(IpPoolType::Ipip))
        );
        assert_eq!(
            r("10.80.1.0/26", IpPoolType::Ipip, true),
            Err(Skipped::NeedsTunnel(IpPoolType::Ipip))
        );
        assert_eq!(
            r("10.90.1.0/26", IpPoolType::Vxlan, true),
            via("192.168.1.2")
        );
        assert_eq!(
            r("10.90.1.0/26", IpPoolType::Vxlan, false),
            Err(Skipped::NeedsTunnel(IpPoolType::Vxlan))
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
}
