//! Where the simulated VPP sends an IP packet and with which source: the FIB's longest
//! prefix (routes and the interfaces' own prefixes, recursing through next-hop addresses),
//! the tunnel it enters (IP-in-IP or VXLAN, with the outer addresses), and cnat's SNAT
//! ("interface + prefix" policy: what enters by an included interface towards no excluded
//! prefix leaves with the SNAT address; the "none" policy translates everything, as VPP's
//! does). Policy (npol) is [`crate::enforce`]'s; this answers only the path.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::state::{InterfaceKind, SimState, TableKey};

/// cnat's SNAT policies and interface tables, as the API numbers them.
const SNAT_POLICY_NONE: u8 = 0;
const SNAT_POLICY_IF_PFX: u8 = 1;
const SNAT_INCLUDE_V4: u8 = 0;
const SNAT_INCLUDE_V6: u8 = 1;
/// FIB path types that answer with an ICMP destination unreachable.
const PATH_TYPE_ICMP_UNREACH: u32 = 5;
const PATH_TYPE_ICMP_PROHIBIT: u32 = 6;

/// How a packet leaves VPP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// The interface it leaves by, and its name.
    pub egress: u32,
    pub egress_name: String,
    /// The neighbour it is sent to (none: the destination itself, or a point-to-point link).
    pub next_hop: Option<IpAddr>,
    /// The tunnel it is carried in: kind ("ipip", "vxlan") and outer addresses.
    pub encap: Option<(&'static str, IpAddr, IpAddr)>,
    /// Its source after cnat's SNAT.
    pub source: IpAddr,
    pub translated: bool,
}

/// The interface and neighbour a destination resolves to.
type Hop = Result<(u32, Option<IpAddr>), NotForwarded>;

/// A packet's path, or why it has none.
pub type PathResult = Result<Forwarding, NotForwarded>;

/// Why a packet is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotForwarded {
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    #[error("{0} is one of VPP's own addresses")]
    Local(IpAddr),
    #[error("dropped by the route to {0}")]
    Dropped(IpAddr),
    /// The route answers with an ICMP destination unreachable (a rejected service address).
    #[error("{0} is unreachable (ICMP destination unreachable sent back)")]
    Unreachable(IpAddr),
    #[error("no interface {0}")]
    NoInterface(u32),
}

impl SimState {
    /// The path of a packet from `src` to `dst` that entered VPP by `ingress`.
    pub fn forward(
        &self,
        ingress: u32,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<Forwarding, NotForwarded> {
        let input = self
            .interfaces
            .get(ingress)
            .ok_or(NotForwarded::NoInterface(ingress))?;
        let table = input.table(dst.is_ipv6());
        let (egress, next_hop) = self.resolve(table, dst, 0)?;
        let out = self
            .interfaces
            .get(egress)
            .ok_or(NotForwarded::NoInterface(egress))?;
        let encap = match &out.kind {
            InterfaceKind::Ipip { src, dst, .. } => Some(("ipip", *src, *dst)),
            InterfaceKind::Vxlan { src, dst, .. } => Some(("vxlan", *src, *dst)),
            _ => None,
        };
        let snat_to = self.snat_source(ingress, egress, dst);
        Ok(Forwarding {
            egress,
            egress_name: out.name.clone(),
            next_hop,
            encap,
            source: snat_to.unwrap_or(src),
            translated: snat_to.is_some(),
        })
    }

    /// cnat's destination translation of a new flow: the backend (address, port) a
    /// translation of `proto` `dst`:`dport` sends it to, chosen by a hash of the flow's
    /// source as cnat's default load balancing does (any backend is as right); `None` when
    /// no translation matches (the flow goes to `dst` itself).
    pub fn service_backend(
        &self,
        proto: u8,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> Option<(IpAddr, u16)> {
        let t = self
            .cnat
            .translations
            .iter()
            .map(|(_, t)| t)
            .find(|t| t.proto == proto && t.vip.addr == dst && t.vip.port == dport)?;
        if t.paths.is_empty() {
            return None;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let src_bytes = match src {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        for b in src_bytes.into_iter().chain(sport.to_be_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let p = &t.paths[(h % t.paths.len() as u64) as usize];
        Some((p.dst.addr, p.dst.port))
    }

    /// The interface and neighbour for `dst` in `table` (recursing through next hops).
    fn resolve(&self, table: u32, dst: IpAddr, depth: u8) -> Hop {
        if depth > 4 {
            return Err(NotForwarded::NoRoute(dst));
        }
        let host = IpNet::from(dst);
        // The interfaces' own prefixes: a local address, or attached.
        let mut best: Option<(u8, Hop)> = None;
        for (idx, i) in self.interfaces.iter() {
            if i.table(dst.is_ipv6()) != table {
                continue;
            }
            for a in &i.addresses {
                if a.addr() == dst {
                    return Err(NotForwarded::Local(dst));
                }
                if a.trunc().contains(&host)
                    && best.as_ref().is_none_or(|(l, _)| a.prefix_len() > *l)
                {
                    best = Some((a.prefix_len(), Ok((idx, None))));
                }
            }
        }
        let key = TableKey {
            table_id: table,
            is_ip6: dst.is_ipv6(),
        };
        let route = self.tables.get(&key).and_then(|t| {
            t.routes
                .iter()
                .filter(|(p, _)| p.contains(&host))
                .max_by_key(|(p, _)| p.prefix_len())
        });
        if let Some((prefix, paths)) = route {
            if best.as_ref().is_none_or(|(l, _)| prefix.prefix_len() > *l) {
                let Some(p) = paths.first() else {
                    return Err(NotForwarded::Dropped(dst));
                };
                match p.path_type {
                    0 => {}
                    PATH_TYPE_ICMP_UNREACH | PATH_TYPE_ICMP_PROHIBIT => {
                        return Err(NotForwarded::Unreachable(dst))
                    }
                    _ => return Err(NotForwarded::Dropped(dst)),
                }
                let nh = next_hop(&p.nh, dst.is_ipv6());
                let r = match (p.sw_if_index, nh) {
                    (u32::MAX, Some(nh)) => self
                        .resolve(table, nh, depth + 1)
                        .map(|(i, _)| (i, Some(nh))),
                    (u32::MAX, None) => Err(NotForwarded::Dropped(dst)),
                    (i, nh) => Ok((i, nh)),
                };
                best = Some((prefix.prefix_len(), r));
            }
        }
        best.map(|(_, r)| r)
            .unwrap_or(Err(NotForwarded::NoRoute(dst)))
    }

    /// The SNAT source cnat gives a new flow from `ingress` towards `dst`, if any.
    fn snat_source(&self, ingress: u32, egress: u32, dst: IpAddr) -> Option<IpAddr> {
        let snat = self.cnat.snat.as_ref()?;
        let cnat_on = |i: u32| self.interfaces.get(i).is_some_and(|i| i.cnat);
        if !cnat_on(ingress) || !cnat_on(egress) {
            return None;
        }
        let to = if dst.is_ipv6() { snat.ip6 } else { snat.ip4 }?;
        let table = if dst.is_ipv6() {
            SNAT_INCLUDE_V6
        } else {
            SNAT_INCLUDE_V4
        };
        let translate = match snat.policy {
            SNAT_POLICY_NONE => true,
            SNAT_POLICY_IF_PFX => {
                snat.interfaces.contains(&(ingress, table))
                    && !snat.exclude.iter().any(|p| p.contains(&IpNet::from(dst)))
            }
            _ => false,
        };
        translate.then_some(to)
    }
}

impl SimState {
    /// Adds `prefix` via `via` in the default table (as an operator's `ip route add`).
    pub fn add_route_via(&mut self, prefix: IpNet, via: IpAddr) -> i32 {
        let path = crate::state::Path::new(u32::MAX, Some(via));
        self.route_add_del(true, false, 0, prefix, vec![path])
    }
}

fn next_hop(nh: &[u8], v6: bool) -> Option<IpAddr> {
    let ip = if v6 {
        let b: [u8; 16] = nh.get(..16)?.try_into().ok()?;
        IpAddr::from(b)
    } else {
        let b: [u8; 4] = nh.get(..4)?.try_into().ok()?;
        IpAddr::from(b)
    };
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Path;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn path(sw_if_index: u32, nh: Option<&str>) -> Path {
        Path::new(sw_if_index, nh.map(ip))
    }

    /// A node: a pod interface, an uplink 192.168.0.1/24, a route via another node's
    /// address, an IP-in-IP tunnel with a block routed into it, and SNAT for the pod.
    #[test]
    fn packets_follow_routes_into_tunnels_and_leave_with_the_snat_address() {
        let mut s = SimState::new();
        let pod = s.create_tap(u32::MAX, None, None, "pod").unwrap();
        let uplink = s.create_tap(u32::MAX, None, None, "uplink").unwrap();
        assert_eq!(
            s.add_del_address(uplink, true, false, "192.168.0.1/24".parse().unwrap()),
            0
        );
        for i in [pod, uplink] {
            s.cnat_enable(i, true);
        }
        let pfx = |p: &str| p.parse::<IpNet>().unwrap();
        assert_eq!(
            s.route_add_del(
                true,
                false,
                0,
                pfx("10.70.1.0/26"),
                vec![path(u32::MAX, Some("192.168.0.2"))]
            ),
            0
        );
        let (rv, tunnel) = match s.add_ipip(u32::MAX, ip("192.168.0.1"), ip("192.168.0.3"), 0) {
            Ok(t) => (0, t),
            Err(e) => (e, 0),
        };
        assert_eq!(rv, 0);
        assert_eq!(
            s.route_add_del(
                true,
                false,
                0,
                pfx("10.70.2.0/26"),
                vec![path(tunnel, None)]
            ),
            0
        );
        let src = ip("10.70.0.5");
        let direct = s.forward(pod, src, ip("10.70.1.9")).unwrap();
        assert_eq!(
            (direct.egress, direct.next_hop),
            (uplink, Some(ip("192.168.0.2")))
        );
        assert!(direct.encap.is_none() && !direct.translated);
        let tunnelled = s.forward(pod, src, ip("10.70.2.9")).unwrap();
        assert_eq!(tunnelled.egress, tunnel);
        assert_eq!(
            tunnelled.encap,
            Some(("ipip", ip("192.168.0.1"), ip("192.168.0.3")))
        );
        assert_eq!(
            s.forward(pod, src, ip("8.8.8.8")),
            Err(NotForwarded::NoRoute(ip("8.8.8.8")))
        );
        assert_eq!(
            s.forward(pod, src, ip("192.168.0.1")),
            Err(NotForwarded::Local(ip("192.168.0.1")))
        );

        // SNAT: the pod's interface included, the pool excluded.
        assert_eq!(s.add_route_via(pfx("0.0.0.0/0"), ip("192.168.0.254")), 0);
        s.cnat_set_snat(Some(ip("192.168.0.1")), None, u32::MAX);
        s.cnat_set_snat_policy(SNAT_POLICY_IF_PFX);
        s.cnat_snat_exclude(true, pfx("10.70.0.0/16"));
        s.cnat_snat_if(pod, true, SNAT_INCLUDE_V4);
        let out = s.forward(pod, src, ip("8.8.8.8")).unwrap();
        assert_eq!(
            (out.egress, out.next_hop),
            (uplink, Some(ip("192.168.0.254")))
        );
        assert_eq!((out.source, out.translated), (ip("192.168.0.1"), true));
        assert!(!s.forward(pod, src, ip("10.70.1.9")).unwrap().translated);
        assert!(
            !s.forward(uplink, ip("1.1.1.1"), ip("8.8.4.4"))
                .unwrap()
                .translated
        );
        // VPP's "none" policy translates everything.
        s.cnat_set_snat_policy(SNAT_POLICY_NONE);
        assert!(s.forward(pod, src, ip("10.70.1.9")).unwrap().translated);
    }
}
