//! An in-memory VPP for tests and benchmarks: keeps npol objects, interfaces, cnat and
//! neighbours the way VPP would, records every operation, and fails on command.
//!
//! It checks references the way npol does (an unknown id is an error), so an ordering bug in
//! the reconciler shows up as a failed operation. It never sleeps and never does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use calico_model::MacAddr;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    AclIndex, Dataplane, DataplaneError, InterfaceEvent, InterfaceInfo, IpSetId, Op, OpError,
    OpReply, OpResult, PolicyId, RoutePath, RuleId, SwIfIndex, VppIdentity,
    RETVAL_FEATURE_DISABLED, RETVAL_INVALID_SW_IF_INDEX, RETVAL_NO_SUCH_ENTRY,
};

/// `retval` npol gives `npol_configure_policies` naming an unknown policy.
const RETVAL_CONFIGURE_UNKNOWN_POLICY: i32 = 1;
const RETVAL_INVALID_VALUE: i32 = -7;
/// VPP's `VNET_API_ERROR_IF_ALREADY_EXISTS` (a second tunnel with the same endpoints).
const RETVAL_IF_ALREADY_EXISTS: i32 = -79;

type OpMatcher = Box<dyn Fn(&Op) -> bool + Send>;

struct Fault {
    matches: OpMatcher,
    /// Matching operations still to let through before failing.
    skip: usize,
    /// Failures still to inject; `usize::MAX` for "always".
    remaining: usize,
    retval: i32,
    /// Fail as an operation that cannot be encoded (permanent), not as a VPP refusal.
    permanent: bool,
}

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub op: Op,
    pub result: OpResult,
}

/// The objects a fake VPP holds, readable by tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeObjects {
    pub ipsets: BTreeMap<IpSetId, npol::IpSet>,
    pub rules: BTreeMap<RuleId, npol::Rule<IpSetId>>,
    pub policies: BTreeMap<PolicyId, npol::Policy<RuleId>>,
    pub configs: BTreeMap<SwIfIndex, npol::InterfaceConfig<PolicyId>>,
    pub cnat: BTreeSet<SwIfIndex>,
    pub neighbours: BTreeMap<(SwIfIndex, IpAddr), MacAddr>,
    /// Routes in the default table: destination → path.
    pub routes: BTreeMap<ipnet::IpNet, RoutePath>,
    /// IP-in-IP tunnels: interface → (source, destination).
    pub ipip: BTreeMap<SwIfIndex, (IpAddr, IpAddr)>,
    /// L2 VXLAN tunnels: interface → (source, destination, VNI, port).
    pub vxlan: BTreeMap<SwIfIndex, (IpAddr, IpAddr, u32, u16)>,
    /// MAC addresses set on interfaces.
    pub macs: BTreeMap<SwIfIndex, MacAddr>,
    /// Unnumbered interfaces: interface → the interface whose addresses it uses.
    pub unnumbered: BTreeMap<SwIfIndex, SwIfIndex>,
    pub acls: BTreeMap<AclIndex, calico_compile::Acl>,
    /// Input and output ACL lists per interface.
    pub acl_lists: BTreeMap<SwIfIndex, (Vec<AclIndex>, Vec<AclIndex>)>,
    /// cnat's SNAT source addresses, once set.
    pub snat_addresses: Option<(Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>)>,
    /// cnat's SNAT policy is "interface + prefix" (else none: everything is translated).
    pub snat_if_pfx: bool,
    /// Excluded prefixes with VPP's add count (an add of a present prefix counts up).
    pub snat_excludes: BTreeMap<ipnet::IpNet, u32>,
    /// Included interfaces: (interface, IPv6).
    pub snat_interfaces: BTreeSet<(SwIfIndex, bool)>,
    /// cnat translations by id: (VIP, protocol, port, real IP, backends, Maglev).
    #[allow(clippy::type_complexity)]
    pub translations: BTreeMap<u32, (IpAddr, u8, u16, bool, Vec<(IpAddr, u16)>, bool)>,
}

enum Signal {
    Event(InterfaceEvent),
    /// The VPP run with this boot number died.
    Disconnect(u64),
}

/// A tunnel interface VPP creates (down, as VPP makes them).
fn new_tunnel(
    interfaces: &mut BTreeMap<SwIfIndex, InterfaceInfo>,
    next: &mut u32,
    name: String,
    point_to_point: bool,
) -> SwIfIndex {
    let idx = SwIfIndex(*next);
    *next += 1;
    interfaces.insert(
        idx,
        InterfaceInfo {
            sw_if_index: idx,
            name,
            tag: String::new(),
            admin_up: false,
            link_up: false,
            point_to_point,
        },
    );
    idx
}

/// A deleted tunnel takes its interface state and the routes through it.
fn drop_tunnel(
    interfaces: &mut BTreeMap<SwIfIndex, InterfaceInfo>,
    o: &mut FakeObjects,
    idx: SwIfIndex,
) {
    interfaces.remove(&idx);
    o.unnumbered.remove(&idx);
    o.macs.remove(&idx);
    o.cnat.remove(&idx);
    o.neighbours.retain(|(i, _), _| *i != idx);
    o.routes.retain(|_, p| match p {
        RoutePath::Interface(i) | RoutePath::ViaOn(_, i) => *i != idx,
        RoutePath::Via(_) | RoutePath::Unreachable => true,
    });
}

struct FakeVpp {
    boot: u64,
    objects: FakeObjects,
    interfaces: BTreeMap<SwIfIndex, InterfaceInfo>,
    next_sw_if_index: u32,
    log: Vec<Recorded>,
    faults: Vec<Fault>,
    /// Set by a VPP restart: every call fails until the client connects again.
    broken: bool,
    connects: usize,
    /// Connection attempts still to refuse (VPP not up yet), and when each was made.
    refuse_connects: usize,
    connect_attempts: Vec<Instant>,
    /// Member deletes on IP_AND_PORT sets (npol's bug empties the set).
    ip_and_port_deletes: usize,
    events: Option<mpsc::UnboundedSender<Signal>>,
}

/// Test-side handle on the fake VPP; clones share it.
#[derive(Clone)]
pub struct FakeHandle(Arc<Mutex<FakeVpp>>);

/// The [`Dataplane`] the reconciler talks to.
pub struct FakeDataplane {
    vpp: FakeHandle,
    connected: bool,
    connected_boot: u64,
    events: mpsc::UnboundedReceiver<Signal>,
}

/// A fresh fake VPP (only `local0`) and the dataplane connected to it.
pub fn new() -> (FakeDataplane, FakeHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut interfaces = BTreeMap::new();
    interfaces.insert(
        SwIfIndex(0),
        InterfaceInfo {
            sw_if_index: SwIfIndex(0),
            name: "local0".into(),
            tag: String::new(),
            admin_up: false,
            link_up: false,
            point_to_point: false,
        },
    );
    let handle = FakeHandle(Arc::new(Mutex::new(FakeVpp {
        boot: 1,
        objects: FakeObjects::default(),
        interfaces,
        next_sw_if_index: 1,
        log: Vec::new(),
        faults: Vec::new(),
        broken: false,
        connects: 0,
        refuse_connects: 0,
        connect_attempts: Vec::new(),
        ip_and_port_deletes: 0,
        events: Some(tx),
    })));
    (
        FakeDataplane {
            vpp: handle.clone(),
            connected: false,
            connected_boot: 0,
            events: rx,
        },
        handle,
    )
}

impl FakeHandle {
    fn lock(&self) -> MutexGuard<'_, FakeVpp> {
        // A panic in another test thread poisons the lock; the data is still what it was.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A second dataplane on the same VPP, as a restarted driver would open.
    pub fn reconnect_dataplane(&self) -> FakeDataplane {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().events = Some(tx);
        FakeDataplane {
            vpp: self.clone(),
            connected: false,
            connected_boot: 0,
            events: rx,
        }
    }

    /// Every operation so far, in order.
    pub fn log(&self) -> Vec<Recorded> {
        self.lock().log.clone()
    }

    /// Number of write operations sent so far (failed ones included).
    pub fn writes(&self) -> usize {
        self.lock().log.len()
    }

    /// Operations sent so far with this message name.
    pub fn count(&self, op_name: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|r| r.op.name() == op_name)
            .count()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    pub fn objects(&self) -> FakeObjects {
        self.lock().objects.clone()
    }

    pub fn connects(&self) -> usize {
        self.lock().connects
    }

    /// The next `n` connection attempts fail, as while VPP is still starting.
    pub fn refuse_connects(&self, n: usize) {
        self.lock().refuse_connects = n;
    }

    /// When every connection attempt (refused or not) was made.
    pub fn connect_attempts(&self) -> Vec<Instant> {
        self.lock().connect_attempts.clone()
    }

    pub fn ip_and_port_member_deletes(&self) -> usize {
        self.lock().ip_and_port_deletes
    }

    /// The `n`th (1-based) operation named `op_name` from now on fails with `retval`.
    pub fn fail_nth(&self, op_name: &'static str, n: usize, retval: i32) {
        self.fail_matching(
            move |op| op.name() == op_name,
            n.saturating_sub(1),
            1,
            retval,
        );
    }

    /// Operations for which `matches` holds fail with `retval`, `times` times after letting
    /// `skip` of them through.
    pub fn fail_matching(
        &self,
        matches: impl Fn(&Op) -> bool + Send + 'static,
        skip: usize,
        times: usize,
        retval: i32,
    ) {
        self.lock().faults.push(Fault {
            matches: Box::new(matches),
            skip,
            remaining: times,
            retval,
            permanent: false,
        });
    }

    /// Every matching operation fails as one that cannot be encoded (never sent to VPP).
    pub fn fail_unencodable(&self, matches: impl Fn(&Op) -> bool + Send + 'static) {
        self.lock().faults.push(Fault {
            matches: Box::new(matches),
            skip: 0,
            remaining: usize::MAX,
            retval: crate::dataplane::vpp::RETVAL_ENCODE,
            permanent: true,
        });
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Adds an Ethernet-class interface (admin and link up, neighbours resolved by ARP/ND)
    /// and announces it; returns its index.
    pub fn add_interface(&self, name: &str, tag: &str) -> SwIfIndex {
        self.add(name, tag, false)
    }

    /// Adds a point-to-point interface (a TUN tap: no neighbour resolution), admin and link
    /// up, and announces it; returns its index.
    pub fn add_p2p_interface(&self, name: &str, tag: &str) -> SwIfIndex {
        self.add(name, tag, true)
    }

    fn add(&self, name: &str, tag: &str, point_to_point: bool) -> SwIfIndex {
        let mut vpp = self.lock();
        let idx = SwIfIndex(vpp.next_sw_if_index);
        vpp.next_sw_if_index += 1;
        vpp.interfaces.insert(
            idx,
            InterfaceInfo {
                sw_if_index: idx,
                name: name.into(),
                tag: tag.into(),
                admin_up: true,
                link_up: true,
                point_to_point,
            },
        );
        vpp.signal(Signal::Event(InterfaceEvent::Rescan));
        idx
    }

    /// Sets an interface's tag the way VPP does: without any event.
    pub fn set_tag_silently(&self, sw_if_index: SwIfIndex, tag: &str) {
        if let Some(i) = self.lock().interfaces.get_mut(&sw_if_index) {
            i.tag = tag.into();
        }
    }

    pub fn set_link(&self, sw_if_index: SwIfIndex, admin_up: bool, link_up: bool) {
        let mut vpp = self.lock();
        if let Some(i) = vpp.interfaces.get_mut(&sw_if_index) {
            i.admin_up = admin_up;
            i.link_up = link_up;
        }
        vpp.signal(Signal::Event(InterfaceEvent::Changed {
            sw_if_index,
            admin_up,
            link_up,
        }));
    }

    /// Deletes an interface and everything VPP keeps per interface.
    pub fn delete_interface(&self, sw_if_index: SwIfIndex) {
        let mut vpp = self.lock();
        vpp.interfaces.remove(&sw_if_index);
        vpp.objects.configs.remove(&sw_if_index);
        vpp.objects.cnat.remove(&sw_if_index);
        vpp.objects.neighbours.retain(|(i, _), _| *i != sw_if_index);
        vpp.objects.acl_lists.remove(&sw_if_index);
        vpp.objects.ipip.remove(&sw_if_index);
        vpp.objects.vxlan.remove(&sw_if_index);
        vpp.objects.macs.remove(&sw_if_index);
        vpp.objects.unnumbered.remove(&sw_if_index);
        vpp.objects
            .snat_interfaces
            .retain(|(i, _)| *i != sw_if_index);
        vpp.signal(Signal::Event(InterfaceEvent::Deleted { sw_if_index }));
    }

    /// Creates an ipset behind the driver's back (another user of VPP).
    pub fn create_foreign_ipset(&self, kind: npol::IpSetType) -> IpSetId {
        let mut vpp = self.lock();
        let id = IpSetId(free_index(&vpp.objects.ipsets, |k| k.0));
        vpp.objects.ipsets.insert(id, npol::IpSet::new(kind));
        id
    }

    /// VPP dies and comes back empty: the connection breaks, interfaces other than `local0`
    /// are gone until re-added, and the boot identity changes.
    pub fn restart_vpp(&self) {
        let mut vpp = self.lock();
        let died = vpp.boot;
        vpp.boot += 1;
        vpp.objects = FakeObjects::default();
        vpp.interfaces.retain(|i, _| i.0 == 0);
        vpp.broken = true;
        vpp.signal(Signal::Disconnect(died));
    }

    /// Recreates an interface after a VPP restart, keeping its name and tag.
    pub fn readd_interface(&self, info: InterfaceInfo) {
        let mut vpp = self.lock();
        vpp.interfaces.insert(info.sw_if_index, info);
        vpp.signal(Signal::Event(InterfaceEvent::Rescan));
    }

    pub fn interfaces(&self) -> Vec<InterfaceInfo> {
        self.lock().interfaces.values().cloned().collect()
    }
}

fn free_index<K: Ord, V>(map: &BTreeMap<K, V>, id: impl Fn(&K) -> u32) -> u32 {
    // npol keeps objects in pools: the lowest free index is reused.
    let mut next = 0u32;
    for k in map.keys() {
        if id(k) != next {
            break;
        }
        next += 1;
    }
    next
}

impl FakeVpp {
    fn signal(&mut self, s: Signal) {
        if let Some(tx) = &self.events {
            // A closed receiver means no dataplane listens; nothing to tell.
            let _ = tx.send(s);
        }
    }

    fn injected_fault(&mut self, op: &Op) -> Option<(i32, bool)> {
        for f in &mut self.faults {
            if f.remaining == 0 || !(f.matches)(op) {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            if f.remaining != usize::MAX {
                f.remaining -= 1;
            }
            return Some((f.retval, f.permanent));
        }
        None
    }

    fn apply(&mut self, op: &Op) -> OpResult {
        let name = op.name();
        let err = |retval| {
            Err(OpError {
                op: name,
                retval,
                name: vpp_bindings::errno::error_name(retval),
                permanent: false,
            })
        };
        if let Some((retval, permanent)) = self.injected_fault(op) {
            return Err(OpError {
                permanent,
                ..OpError::new(name, retval)
            });
        }
        let o = &mut self.objects;
        match op {
            Op::IpSetCreate { kind } => {
                let id = free_index(&o.ipsets, |k| k.0);
                o.ipsets.insert(IpSetId(id), npol::IpSet::new(*kind));
                Ok(OpReply::Created(id))
            }
            Op::IpSetAddMembers { set, members } | Op::IpSetDelMembers { set, members } => {
                let is_add = matches!(op, Op::IpSetAddMembers { .. });
                let Some(s) = o.ipsets.get_mut(set) else {
                    return err(RETVAL_NO_SUCH_ENTRY);
                };
                if members.iter().any(|m| m.kind() != s.kind) {
                    return err(RETVAL_INVALID_VALUE);
                }
                if is_add {
                    s.members.extend(members.iter().copied());
                } else if s.kind == npol::IpSetType::IpAndPort {
                    // npol's bug: deleting from an IP_AND_PORT set loses other members.
                    self.ip_and_port_deletes += 1;
                    s.members.clear();
                } else {
                    for m in members {
                        s.members.remove(m);
                    }
                }
                Ok(OpReply::Done)
            }
            Op::IpSetDelete { set } => match o.ipsets.remove(set) {
                Some(_) => Ok(OpReply::Done),
                None => err(RETVAL_NO_SUCH_ENTRY),
            },
            Op::RuleCreate { rule } | Op::RuleUpdate { rule, .. } => {
                let missing = rule.entries.iter().any(|e| match &e.data {
                    npol::EntryData::IpSet(s) | npol::EntryData::PortIpSet(s) => {
                        !o.ipsets.contains_key(s)
                    }
                    _ => false,
                });
                if missing {
                    return err(RETVAL_NO_SUCH_ENTRY);
                }
                match op {
                    Op::RuleUpdate { id, .. } => match o.rules.get_mut(id) {
                        Some(r) => {
                            *r = rule.clone();
                            Ok(OpReply::Done)
                        }
                        None => err(RETVAL_NO_SUCH_ENTRY),
                    },
                    _ => {
                        let id = free_index(&o.rules, |k| k.0);
                        o.rules.insert(RuleId(id), rule.clone());
                        Ok(OpReply::Created(id))
                    }
                }
            }
            Op::RuleDelete { id } => match o.rules.remove(id) {
                Some(_) => Ok(OpReply::Done),
                None => err(RETVAL_NO_SUCH_ENTRY),
            },
            Op::PolicyCreate { policy } | Op::PolicyUpdate { policy, .. } => {
                let missing = policy
                    .inbound
                    .iter()
                    .chain(&policy.outbound)
                    .any(|r| !o.rules.contains_key(r));
                if missing {
                    return err(RETVAL_NO_SUCH_ENTRY);
                }
                match op {
                    Op::PolicyUpdate { id, .. } => match o.policies.get_mut(id) {
                        Some(p) => {
                            *p = policy.clone();
                            Ok(OpReply::Done)
                        }
                        None => err(RETVAL_NO_SUCH_ENTRY),
                    },
                    _ => {
                        let id = free_index(&o.policies, |k| k.0);
                        o.policies.insert(PolicyId(id), policy.clone());
                        Ok(OpReply::Created(id))
                    }
                }
            }
            Op::PolicyDelete { id } => match o.policies.remove(id) {
                Some(_) => Ok(OpReply::Done),
                None => err(RETVAL_NO_SUCH_ENTRY),
            },
            Op::ConfigurePolicies {
                sw_if_index,
                config,
            } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                let missing = config
                    .rx_policies
                    .iter()
                    .chain(&config.tx_policies)
                    .chain(&config.profiles)
                    .any(|p| !o.policies.contains_key(p));
                if missing {
                    return err(RETVAL_CONFIGURE_UNKNOWN_POLICY);
                }
                o.configs.insert(*sw_if_index, config.clone());
                Ok(OpReply::Done)
            }
            Op::CnatFeature {
                sw_if_index,
                enable,
            } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                if *enable {
                    o.cnat.insert(*sw_if_index);
                } else {
                    o.cnat.remove(sw_if_index);
                }
                Ok(OpReply::Done)
            }
            Op::AclAddReplace { index, acl } => match index {
                None => {
                    let id = free_index(&o.acls, |k| k.0);
                    o.acls.insert(AclIndex(id), acl.clone());
                    Ok(OpReply::Created(id))
                }
                Some(i) => match o.acls.get_mut(i) {
                    Some(a) => {
                        *a = acl.clone();
                        Ok(OpReply::Created(i.0))
                    }
                    None => err(RETVAL_NO_SUCH_ENTRY),
                },
            },
            Op::AclDelete { index } => {
                if !o.acls.contains_key(index) {
                    return err(RETVAL_NO_SUCH_ENTRY);
                }
                if o.acl_lists.values().any(|(i, _)| i.contains(index)) {
                    return err(super::RETVAL_ACL_IN_USE_INBOUND);
                }
                if o.acl_lists.values().any(|(_, out)| out.contains(index)) {
                    return err(super::RETVAL_ACL_IN_USE_OUTBOUND);
                }
                o.acls.remove(index);
                Ok(OpReply::Done)
            }
            Op::AclInterfaceSet {
                sw_if_index,
                input,
                output,
            } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                if input.iter().chain(output).any(|a| !o.acls.contains_key(a)) {
                    return err(RETVAL_NO_SUCH_ENTRY);
                }
                if input.is_empty() && output.is_empty() {
                    o.acl_lists.remove(sw_if_index);
                } else {
                    o.acl_lists
                        .insert(*sw_if_index, (input.clone(), output.clone()));
                }
                Ok(OpReply::Done)
            }
            Op::Route { dst, via, is_add } => {
                if let RoutePath::Interface(i) = via {
                    if !self.interfaces.contains_key(i) {
                        return err(RETVAL_INVALID_SW_IF_INDEX);
                    }
                }
                if *is_add {
                    o.routes.insert(*dst, *via);
                    Ok(OpReply::Done)
                } else {
                    match o.routes.remove(dst) {
                        Some(_) => Ok(OpReply::Done),
                        None => err(RETVAL_NO_SUCH_ENTRY),
                    }
                }
            }
            Op::IpipTunnelCreate { src, dst } => {
                if o.ipip.values().any(|t| *t == (*src, *dst)) {
                    return err(RETVAL_IF_ALREADY_EXISTS);
                }
                let name = format!("ipip{}", o.ipip.len());
                let idx = new_tunnel(&mut self.interfaces, &mut self.next_sw_if_index, name, true);
                o.ipip.insert(idx, (*src, *dst));
                Ok(OpReply::Created(idx.0))
            }
            Op::VxlanTunnelCreate {
                src,
                dst,
                vni,
                port,
            } => {
                let t = (*src, *dst, *vni, *port);
                if o.vxlan.values().any(|v| *v == t) {
                    return err(RETVAL_IF_ALREADY_EXISTS);
                }
                let name = format!("vxlan_tunnel{}", o.vxlan.len());
                let idx = new_tunnel(
                    &mut self.interfaces,
                    &mut self.next_sw_if_index,
                    name,
                    false,
                );
                o.vxlan.insert(idx, t);
                Ok(OpReply::Created(idx.0))
            }
            Op::VxlanTunnelDelete {
                src,
                dst,
                vni,
                port,
            } => {
                let t = (*src, *dst, *vni, *port);
                match o.vxlan.iter().find(|(_, v)| **v == t).map(|(i, _)| *i) {
                    Some(idx) => {
                        o.vxlan.remove(&idx);
                        drop_tunnel(&mut self.interfaces, o, idx);
                        Ok(OpReply::Done)
                    }
                    None => err(RETVAL_NO_SUCH_ENTRY),
                }
            }
            Op::SetMac { sw_if_index, mac } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                o.macs.insert(*sw_if_index, *mac);
                Ok(OpReply::Done)
            }
            Op::IpipTunnelDelete { sw_if_index } => match o.ipip.remove(sw_if_index) {
                Some(_) => {
                    drop_tunnel(&mut self.interfaces, o, *sw_if_index);
                    Ok(OpReply::Done)
                }
                None => err(RETVAL_NO_SUCH_ENTRY),
            },
            Op::SetUnnumbered {
                sw_if_index,
                to,
                is_add,
            } => {
                if !self.interfaces.contains_key(sw_if_index) || !self.interfaces.contains_key(to) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                if *is_add {
                    o.unnumbered.insert(*sw_if_index, *to);
                } else {
                    o.unnumbered.remove(sw_if_index);
                }
                Ok(OpReply::Done)
            }
            Op::SnatSet { v4, v6 } => {
                if v4.is_none() && v6.is_none() {
                    // The entry goes, with everything it holds.
                    if o.snat_addresses.take().is_none() {
                        return err(RETVAL_FEATURE_DISABLED);
                    }
                    o.snat_if_pfx = false;
                    o.snat_excludes.clear();
                    o.snat_interfaces.clear();
                } else {
                    o.snat_addresses = Some((*v4, *v6));
                    o.snat_if_pfx = true;
                }
                Ok(OpReply::Done)
            }
            Op::SnatExclude { prefix, is_add } => {
                if o.snat_addresses.is_none() {
                    return err(RETVAL_FEATURE_DISABLED);
                }
                if *is_add {
                    *o.snat_excludes.entry(*prefix).or_default() += 1;
                    return Ok(OpReply::Done);
                }
                match o.snat_excludes.get_mut(prefix) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        o.snat_excludes.remove(prefix);
                    }
                    None => return err(RETVAL_NO_SUCH_ENTRY),
                }
                Ok(OpReply::Done)
            }
            Op::SnatInterface {
                sw_if_index,
                v6,
                is_add,
            } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                if o.snat_addresses.is_none() {
                    return err(RETVAL_FEATURE_DISABLED);
                }
                if *is_add {
                    o.snat_interfaces.insert((*sw_if_index, *v6));
                } else {
                    o.snat_interfaces.remove(&(*sw_if_index, *v6));
                }
                Ok(OpReply::Done)
            }
            Op::SetAdminUp { sw_if_index, up } => match self.interfaces.get_mut(sw_if_index) {
                Some(i) => {
                    i.admin_up = *up;
                    i.link_up = *up;
                    Ok(OpReply::Done)
                }
                None => err(RETVAL_INVALID_SW_IF_INDEX),
            },
            Op::AfPacketCreate { host_if_name, mac } => {
                let name = format!("host-{host_if_name}");
                if self.interfaces.values().any(|i| i.name == name) {
                    return err(RETVAL_IF_ALREADY_EXISTS);
                }
                let idx = new_tunnel(
                    &mut self.interfaces,
                    &mut self.next_sw_if_index,
                    name,
                    false,
                );
                o.macs.insert(idx, *mac);
                Ok(OpReply::Created(idx.0))
            }
            Op::AfPacketDelete { host_if_name } => {
                let name = format!("host-{host_if_name}");
                match self.interfaces.values().find(|i| i.name == name) {
                    Some(i) => {
                        let idx = i.sw_if_index;
                        drop_tunnel(&mut self.interfaces, o, idx);
                        Ok(OpReply::Done)
                    }
                    None => err(RETVAL_NO_SUCH_ENTRY),
                }
            }
            Op::TunCreate { tag, .. } => {
                let name = format!("tap{}", self.next_sw_if_index);
                let idx = new_tunnel(&mut self.interfaces, &mut self.next_sw_if_index, name, true);
                if let Some(i) = self.interfaces.get_mut(&idx) {
                    i.tag = tag.clone();
                }
                Ok(OpReply::Created(idx.0))
            }
            Op::TapDelete { sw_if_index } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                drop_tunnel(&mut self.interfaces, o, *sw_if_index);
                Ok(OpReply::Done)
            }
            Op::SetTag { sw_if_index, tag } => match self.interfaces.get_mut(sw_if_index) {
                Some(i) => {
                    i.tag = tag.clone();
                    Ok(OpReply::Done)
                }
                None => err(RETVAL_INVALID_SW_IF_INDEX),
            },
            Op::CnatTranslation {
                vip,
                proto,
                port,
                real_ip,
                backends,
                maglev,
            } => {
                // Same frontend: replaced in place, same id.
                let same = o
                    .translations
                    .iter()
                    .find(|(_, t)| t.0 == *vip && t.1 == *proto && t.2 == *port)
                    .map(|(id, _)| *id);
                let id = same.unwrap_or_else(|| free_index(&o.translations, |i| *i));
                o.translations.insert(
                    id,
                    (*vip, *proto, *port, *real_ip, backends.clone(), *maglev),
                );
                Ok(OpReply::Created(id))
            }
            Op::CnatTranslationDel { id } => match o.translations.remove(id) {
                Some(_) => Ok(OpReply::Done),
                None => err(RETVAL_NO_SUCH_ENTRY),
            },
            Op::SetRxInterrupt { sw_if_index } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                Ok(OpReply::Done)
            }
            Op::Neighbour {
                sw_if_index,
                ip,
                mac,
                is_add,
            } => {
                if !self.interfaces.contains_key(sw_if_index) {
                    return err(RETVAL_INVALID_SW_IF_INDEX);
                }
                if *is_add {
                    o.neighbours.insert((*sw_if_index, *ip), *mac);
                    Ok(OpReply::Done)
                } else {
                    match o.neighbours.remove(&(*sw_if_index, *ip)) {
                        Some(_) => Ok(OpReply::Done),
                        None => err(RETVAL_NO_SUCH_ENTRY),
                    }
                }
            }
        }
    }
}

impl FakeDataplane {
    fn check(&self) -> Result<(), DataplaneError> {
        if !self.connected {
            return Err(DataplaneError::NotConnected);
        }
        if self.vpp.lock().broken {
            return Err(DataplaneError::Disconnected("fake VPP restarted".into()));
        }
        Ok(())
    }
}

impl Dataplane for FakeDataplane {
    async fn connect(&mut self) -> Result<VppIdentity, DataplaneError> {
        let mut vpp = self.vpp.lock();
        vpp.connect_attempts.push(Instant::now());
        if vpp.refuse_connects > 0 {
            vpp.refuse_connects -= 1;
            self.connected = false;
            return Err(DataplaneError::Disconnected("fake VPP not up".into()));
        }
        vpp.broken = false;
        vpp.connects += 1;
        self.connected = true;
        self.connected_boot = vpp.boot;
        Ok(VppIdentity(format!("fake-boot-{}", vpp.boot)))
    }

    async fn execute(&mut self, ops: Vec<Op>) -> Result<Vec<OpResult>, DataplaneError> {
        self.check()?;
        let mut vpp = self.vpp.lock();
        let at = Instant::now();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let result = vpp.apply(&op);
            vpp.log.push(Recorded { at, op, result });
            results.push(result);
        }
        Ok(results)
    }

    async fn interfaces(&mut self) -> Result<Vec<InterfaceInfo>, DataplaneError> {
        self.check()?;
        Ok(self.vpp.interfaces())
    }

    async fn next_interface_event(&mut self) -> Result<InterfaceEvent, DataplaneError> {
        loop {
            match self.events.recv().await {
                Some(Signal::Event(e)) => {
                    if self.connected {
                        return Ok(e);
                    }
                }
                Some(Signal::Disconnect(boot)) => {
                    if self.connected && boot == self.connected_boot {
                        self.connected = false;
                        return Err(DataplaneError::Disconnected("fake VPP restarted".into()));
                    }
                }
                // The handle is gone: nothing will ever happen again.
                None => std::future::pending::<()>().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn p2p_interfaces_are_listed_as_point_to_point() {
        let (mut dp, h) = new();
        let tap = h.add_interface("tap1", "cali-a");
        let tun = h.add_p2p_interface("tun2", "cali-b");
        dp.connect().await.unwrap();
        let p2p: Vec<SwIfIndex> = dp
            .interfaces()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.point_to_point)
            .map(|i| i.sw_if_index)
            .collect();
        assert_eq!(p2p, [tun]);
        assert_ne!(tap, tun);
    }
}
