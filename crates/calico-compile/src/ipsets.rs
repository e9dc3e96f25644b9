//! Calico IP sets as npol ipsets, and the derived sets the compiler needs where a Calico rule
//! ANDs several sets (npol ORs the sets of one rule side).
//!
//! Pure functions of the model's IP sets; they never look at rules or endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use calico_model::{IpSet, IpSetId, IpSetKind, IpSetMember, PortRange};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::desired::IpSetKey;
use crate::hash::StableHasher;

/// The npol set that mirrors a Calico set: keyed by the Calico id alone (its type follows
/// from the Calico set's kind, which Felix never changes for an id).
pub fn base_key(id: &IpSetId) -> IpSetKey {
    IpSetKey(format!("s:{}", id.0))
}

/// Calico `Ip` and `Net` sets both become npol NET sets (a host address is a /32 or /128,
/// and npol scans both types linearly, so nothing is lost); `IpAndPort` becomes IP_AND_PORT.
pub fn npol_type(kind: IpSetKind) -> npol::IpSetType {
    match kind {
        IpSetKind::Ip | IpSetKind::Net => npol::IpSetType::Net,
        IpSetKind::IpAndPort => npol::IpSetType::IpAndPort,
    }
}

/// Converts one Calico set. Members that do not fit the set's kind are left out and
/// counted (second value): a bad member can only make a set smaller.
pub fn convert(set: &IpSet) -> (npol::IpSet, usize) {
    let kind = npol_type(set.kind);
    let mut bad = 0;
    // Collected first, then built in bulk: `BTreeSet::from_iter` sorts once and fills its
    // nodes, where a million inserts would leave them half full.
    let members: Vec<npol::IpSetMember> = set
        .members
        .iter()
        .filter_map(|m| match (kind, m) {
            (npol::IpSetType::Net, IpSetMember::Net(n)) => Some(npol::IpSetMember::Net(*n)),
            (npol::IpSetType::IpAndPort, IpSetMember::IpPort { addr, proto, port }) => {
                Some(npol::IpSetMember::IpAndPort {
                    addr: *addr,
                    proto: *proto,
                    port: *port,
                })
            }
            _ => {
                bad += 1;
                None
            }
        })
        .collect();
    let mut out = npol::IpSet::new(kind);
    out.members = members.into_iter().collect();
    (out, bad)
}

/// A set computed from other sets, kept up to date as their members change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DerivedDef {
    /// Addresses in every one of these (IP or NET) sets. At least two ids, sorted, no repeats.
    And(Vec<IpSetId>),
    /// `(addr, proto, port)` members of every `all_of` IP_AND_PORT set whose port is in one
    /// of `ports` or which are in one of the `any_of` sets (no restriction when both are
    /// empty). This is a rule side's `dst_ip_port_set_ids` ANDed with its port group.
    IpPort {
        all_of: Vec<IpSetId>,
        ports: Vec<PortRange>,
        any_of: Vec<IpSetId>,
    },
}

impl DerivedDef {
    pub fn key(&self) -> IpSetKey {
        let mut h = StableHasher::default();
        match self {
            DerivedDef::And(ids) => {
                h.u8(1).u32(ids.len() as u32);
                for id in ids {
                    h.str(&id.0);
                }
            }
            DerivedDef::IpPort {
                all_of,
                ports,
                any_of,
            } => {
                h.u8(2).u32(all_of.len() as u32);
                for id in all_of {
                    h.str(&id.0);
                }
                h.u32(ports.len() as u32);
                for p in ports {
                    h.u16(p.first).u16(p.last);
                }
                h.u32(any_of.len() as u32);
                for id in any_of {
                    h.str(&id.0);
                }
            }
        }
        IpSetKey(format!("d:{}", h.finish_hex()))
    }

    /// The Calico sets this one is computed from.
    pub fn sources(&self) -> impl Iterator<Item = &IpSetId> {
        let (a, b): (&[IpSetId], &[IpSetId]) = match self {
            DerivedDef::And(ids) => (ids, &[]),
            DerivedDef::IpPort { all_of, any_of, .. } => (all_of, any_of),
        };
        a.iter().chain(b.iter())
    }

    /// The members, from the model's sets. A missing source set counts as empty.
    pub fn compute(&self, sets: &BTreeMap<IpSetId, IpSet>) -> npol::IpSet {
        match self {
            DerivedDef::And(ids) => {
                let mut acc: Option<BTreeSet<IpNet>> = None;
                for id in ids {
                    let nets = sets.get(id).map(nets_of).unwrap_or_default();
                    acc = Some(match acc {
                        None => nets,
                        Some(a) => intersect_nets(&a, &nets),
                    });
                }
                let mut out = npol::IpSet::new(npol::IpSetType::Net);
                out.members = acc
                    .unwrap_or_default()
                    .into_iter()
                    .map(npol::IpSetMember::Net)
                    .collect();
                out
            }
            DerivedDef::IpPort {
                all_of,
                ports,
                any_of,
            } => {
                let mut acc: Option<BTreeSet<(IpAddr, u8, u16)>> = None;
                for id in all_of {
                    let t = sets.get(id).map(tuples_of).unwrap_or_default();
                    acc = Some(match acc {
                        None => t,
                        Some(a) => a.intersection(&t).copied().collect(),
                    });
                }
                let any: BTreeSet<(IpAddr, u8, u16)> = any_of
                    .iter()
                    .filter_map(|id| sets.get(id))
                    .flat_map(tuples_of)
                    .collect();
                let unrestricted = ports.is_empty() && any_of.is_empty();
                let mut out = npol::IpSet::new(npol::IpSetType::IpAndPort);
                out.members = acc
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| {
                        unrestricted || ports.iter().any(|r| r.contains(t.2)) || any.contains(t)
                    })
                    .map(|(addr, proto, port)| npol::IpSetMember::IpAndPort { addr, proto, port })
                    .collect();
                out
            }
        }
    }
}

fn nets_of(set: &IpSet) -> BTreeSet<IpNet> {
    if set.kind == IpSetKind::IpAndPort {
        return BTreeSet::new();
    }
    set.members
        .iter()
        .filter_map(|m| match m {
            IpSetMember::Net(n) => Some(n.trunc()),
            IpSetMember::IpPort { .. } => None,
        })
        .collect()
}

fn tuples_of(set: &IpSet) -> BTreeSet<(IpAddr, u8, u16)> {
    if set.kind != IpSetKind::IpAndPort {
        return BTreeSet::new();
    }
    set.members
        .iter()
        .filter_map(|m| match m {
            IpSetMember::IpPort { addr, proto, port } => Some((*addr, *proto, *port)),
            IpSetMember::Net(_) => None,
        })
        .collect()
}

/// The prefixes covering exactly the addresses in both lists (inputs truncated). For each
/// prefix of `a`: kept whole when some prefix of `b` contains it, otherwise the prefixes of
/// `b` inside it are kept. Costs about `|a| * (address bits + log |b|)`.
pub fn intersect_nets(a: &BTreeSet<IpNet>, b: &BTreeSet<IpNet>) -> BTreeSet<IpNet> {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    // Only prefix lengths present in `b` can hold a supernet: usually just /32 and /128
    // (pod addresses), so a membership test costs one lookup.
    let lens: BTreeSet<(bool, u8)> = b
        .iter()
        .map(|n| (n.addr().is_ipv4(), n.prefix_len()))
        .collect();
    let mut out = BTreeSet::new();
    for p in a {
        let v4 = p.addr().is_ipv4();
        if lens
            .iter()
            .filter(|(f, len)| *f == v4 && *len <= p.prefix_len())
            .any(|(_, len)| supernet(p, *len).is_some_and(|s| b.contains(&s)))
        {
            out.insert(*p);
            continue;
        }
        if p.prefix_len() == p.max_prefix_len() {
            // A host prefix holds only itself, already looked for above.
            continue;
        }
        let (lo, hi) = range_bounds(p);
        out.extend(b.range(lo..=hi).filter(|q| p.contains(*q)).copied());
    }
    out
}

fn supernet(p: &IpNet, len: u8) -> Option<IpNet> {
    IpNet::new(p.addr(), len).ok().map(|n| n.trunc())
}

/// The smallest and largest nets (in `IpNet` order) that can lie inside `p`.
fn range_bounds(p: &IpNet) -> (IpNet, IpNet) {
    match p {
        IpNet::V4(n) => (
            IpNet::V4(Ipv4Net::new_assert(n.network(), 0)),
            IpNet::V4(Ipv4Net::new_assert(n.broadcast(), 32)),
        ),
        IpNet::V6(n) => (
            IpNet::V6(Ipv6Net::new_assert(n.network(), 0)),
            IpNet::V6(Ipv6Net::new_assert(n.broadcast(), 128)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> BTreeSet<IpNet> {
        s.iter().map(|x| x.parse().unwrap()).collect()
    }

    #[test]
    fn intersection_of_nested_and_disjoint_prefixes() {
        let a = nets(&["10.0.0.0/8", "192.168.1.5/32", "2001:db8::/32"]);
        let b = nets(&[
            "10.1.0.0/16",
            "10.2.3.4/32",
            "192.168.1.0/24",
            "172.16.0.0/12",
        ]);
        assert_eq!(
            intersect_nets(&a, &b),
            nets(&["10.1.0.0/16", "10.2.3.4/32", "192.168.1.5/32"])
        );
        assert_eq!(intersect_nets(&b, &a), intersect_nets(&a, &b));
    }

    #[test]
    fn derived_and_set_of_pod_addresses() {
        let mut sets = BTreeMap::new();
        let mk = |m: &[&str]| IpSet {
            kind: IpSetKind::Ip,
            members: m
                .iter()
                .map(|x| IpSetMember::Net(x.parse().unwrap()))
                .collect(),
        };
        sets.insert(IpSetId("a".into()), mk(&["10.0.0.1/32", "10.0.0.2/32"]));
        sets.insert(IpSetId("b".into()), mk(&["10.0.0.2/32", "10.0.0.3/32"]));
        let d = DerivedDef::And(vec![IpSetId("a".into()), IpSetId("b".into())]);
        let s = d.compute(&sets);
        assert_eq!(s.kind, npol::IpSetType::Net);
        assert_eq!(
            s.members.into_iter().collect::<Vec<_>>(),
            vec![npol::IpSetMember::Net("10.0.0.2/32".parse().unwrap())]
        );
    }

    #[test]
    fn derived_ip_port_set_keeps_members_in_the_port_group() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut sets = BTreeMap::new();
        sets.insert(
            IpSetId("svc".into()),
            IpSet {
                kind: IpSetKind::IpAndPort,
                members: [80u16, 443, 8080]
                    .iter()
                    .map(|p| IpSetMember::IpPort {
                        addr: a,
                        proto: 6,
                        port: *p,
                    })
                    .collect(),
            },
        );
        let d = DerivedDef::IpPort {
            all_of: vec![IpSetId("svc".into())],
            ports: vec![PortRange {
                first: 400,
                last: 500,
            }],
            any_of: vec![],
        };
        let ports: Vec<u16> = d
            .compute(&sets)
            .members
            .iter()
            .map(|m| match m {
                npol::IpSetMember::IpAndPort { port, .. } => *port,
                _ => 0,
            })
            .collect();
        assert_eq!(ports, vec![443]);
    }
}
