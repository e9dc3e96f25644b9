//! An in-memory VPP for tests and benchmarks: the simulator's model of VPP
//! ([`vpp_sim::SimState`], the one model of VPP here, kept in agreement with a real VPP by
//! the real-VPP tests) behind the [`Dataplane`] trait, without a socket. It records every
//! operation, fails on command, refuses connections, and restarts empty.
//!
//! One thing it adds to the model, on purpose: it is stricter than npol about references.
//! A rule naming an ipset, or a policy naming a rule, that VPP does not hold fails with
//! `NO_SUCH_ENTRY` (npol would store the dangling id), so an ordering bug in the
//! reconciler shows up as a failed operation. It never sleeps and never does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use calico_model::MacAddr;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vpp_bindings::gen::{cnat as cnat_api, fib_types};
use vpp_sim::state::{self as sim, InterfaceKind, SimState, NONE};

use super::{
    AclIndex, AclRule, Dataplane, DataplaneError, InterfaceEvent, InterfaceInfo, IpSetId, Op,
    OpError, OpReply, OpResult, PolicyId, RoutePath, RuleId, SwIfIndex, VppIdentity,
    RETVAL_NO_SUCH_ENTRY,
};

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

/// An ACL as the fake's VPP holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeAcl {
    pub tag: String,
    pub rules: Vec<AclRule>,
}

/// What the fake's VPP holds, in the dataplane's terms: a read-only view of the
/// simulator's state for tests (computed on each call; changing it changes nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeObjects {
    pub ipsets: BTreeMap<IpSetId, npol::IpSet>,
    pub rules: BTreeMap<RuleId, npol::Rule<IpSetId>>,
    pub policies: BTreeMap<PolicyId, npol::Policy<RuleId>>,
    pub configs: BTreeMap<SwIfIndex, npol::InterfaceConfig<PolicyId>>,
    /// Interfaces with the cnat feature on.
    pub cnat: BTreeSet<SwIfIndex>,
    pub neighbours: BTreeMap<(SwIfIndex, IpAddr), MacAddr>,
    /// Routes in the default tables: destination → path (the first, for multipath).
    pub routes: BTreeMap<ipnet::IpNet, RoutePath>,
    /// IP-in-IP tunnels: interface → (source, destination).
    pub ipip: BTreeMap<SwIfIndex, (IpAddr, IpAddr)>,
    /// L2 VXLAN tunnels: interface → (source, destination, VNI, port).
    pub vxlan: BTreeMap<SwIfIndex, (IpAddr, IpAddr, u32, u16)>,
    /// Interfaces' MAC addresses (those of the Ethernet class).
    pub macs: BTreeMap<SwIfIndex, MacAddr>,
    /// Unnumbered interfaces: interface → the interface whose addresses it uses.
    pub unnumbered: BTreeMap<SwIfIndex, SwIfIndex>,
    pub acls: BTreeMap<AclIndex, FakeAcl>,
    /// Input and output ACL lists per interface.
    pub acl_lists: BTreeMap<SwIfIndex, (Vec<AclIndex>, Vec<AclIndex>)>,
    /// cnat's SNAT source addresses, once set.
    pub snat_addresses: Option<(Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>)>,
    /// cnat's SNAT policy is "interface + prefix" (else none: everything is translated).
    pub snat_if_pfx: bool,
    /// Excluded prefixes.
    pub snat_excludes: BTreeSet<ipnet::IpNet>,
    /// Included interfaces: (interface, IPv6).
    pub snat_interfaces: BTreeSet<(SwIfIndex, bool)>,
    /// cnat translations by id: (VIP, protocol, port, real IP, backends, Maglev).
    #[allow(clippy::type_complexity)]
    pub translations: BTreeMap<u32, (IpAddr, u8, u16, bool, Vec<(IpAddr, u16)>, bool)>,
}

/// What the fake's VPP tells its subscriber, each stamped with the boot number of the VPP
/// run that said it: a connection to a later run never hears an earlier run's events.
enum Signal {
    Event(u64, InterfaceEvent),
    /// VPP reported a change of this interface (`sw_interface_event`): the dataplane reads
    /// its state when it takes the event, as the VPP implementation does.
    Vpp(u64, SwIfIndex),
    /// The VPP run with this boot number died.
    Disconnect(u64),
}

struct FakeVpp {
    boot: u64,
    state: SimState,
    log: Vec<Recorded>,
    faults: Vec<Fault>,
    /// Set by a VPP restart: every call fails until the client connects again.
    broken: bool,
    connects: usize,
    /// Connection attempts still to refuse (VPP not up yet), and when each was made.
    refuse_connects: usize,
    connect_attempts: Vec<Instant>,
    /// Member deletes on IP_AND_PORT sets (npol's bug loses other members).
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
    let handle = FakeHandle(Arc::new(Mutex::new(FakeVpp {
        boot: 1,
        state: SimState::new(),
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

fn mac_of(bytes: [u8; 6]) -> MacAddr {
    MacAddr(bytes)
}

/// An interface as `sw_interface_dump` describes it, and as the VPP implementation reads it:
/// no L2 address means no neighbour resolution (`local0` included).
fn info(idx: u32, i: &sim::Interface) -> InterfaceInfo {
    InterfaceInfo {
        sw_if_index: SwIfIndex(idx),
        name: i.name.clone(),
        tag: i.tag.clone(),
        admin_up: i.admin_up,
        link_up: i.link_up,
        point_to_point: i.mac_bytes == [0; 6],
    }
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

    /// What VPP holds now.
    pub fn objects(&self) -> FakeObjects {
        objects(&self.lock().state)
    }

    /// Reads the simulator's state itself.
    pub fn with_state<T>(&self, f: impl FnOnce(&SimState) -> T) -> T {
        f(&self.lock().state)
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

    /// Adds an Ethernet-class interface (an Ethernet tap: neighbours resolved by ARP/ND),
    /// admin and link up, as a CNI plugin would, and announces it; returns its index.
    pub fn add_interface(&self, name: &str, tag: &str) -> SwIfIndex {
        self.add(name, tag, false)
    }

    /// Adds a point-to-point interface (a TUN tap: no neighbour resolution), admin and link
    /// up, and announces it; returns its index.
    pub fn add_p2p_interface(&self, name: &str, tag: &str) -> SwIfIndex {
        self.add(name, tag, true)
    }

    fn add(&self, name: &str, tag: &str, tun: bool) -> SwIfIndex {
        let mut vpp = self.lock();
        let idx = vpp.state.attach_interface(name, tag, tun, None);
        vpp.state.events.clear();
        vpp.signal_event(InterfaceEvent::Rescan);
        SwIfIndex(idx)
    }

    /// Sets an interface's tag the way VPP does: without any event.
    pub fn set_tag_silently(&self, sw_if_index: SwIfIndex, tag: &str) {
        self.lock().state.set_tag(sw_if_index.0, true, tag);
    }

    /// The host side takes the link (and the admin state) to these values.
    pub fn set_link(&self, sw_if_index: SwIfIndex, admin_up: bool, link_up: bool) {
        let mut vpp = self.lock();
        if let Some(i) = vpp.state.interfaces.get_mut(sw_if_index.0) {
            i.admin_up = admin_up;
            i.link_up = link_up;
        }
        vpp.signal_event(InterfaceEvent::Changed {
            sw_if_index,
            admin_up,
            link_up,
        });
    }

    /// Deletes an interface and everything VPP keeps per interface (as its owner, say the
    /// CNI plugin, would).
    pub fn delete_interface(&self, sw_if_index: SwIfIndex) {
        let mut vpp = self.lock();
        vpp.state.detach_interface(sw_if_index.0);
        vpp.state.events.clear();
        vpp.signal_event(InterfaceEvent::Deleted { sw_if_index });
    }

    /// Creates an ipset behind the driver's back (another user of VPP).
    pub fn create_foreign_ipset(&self, kind: npol::IpSetType) -> IpSetId {
        IpSetId(self.lock().state.npol_ipset_create(kind))
    }

    /// VPP dies and comes back empty: the connection breaks, interfaces other than `local0`
    /// are gone until re-added, and the boot identity changes.
    pub fn restart_vpp(&self) {
        let mut vpp = self.lock();
        let died = vpp.boot;
        vpp.boot += 1;
        vpp.state = SimState::new();
        vpp.broken = true;
        vpp.signal(Signal::Disconnect(died));
    }

    /// Recreates an interface (after a VPP restart, or a delete) with its index, name, tag
    /// and state.
    pub fn readd_interface(&self, info: InterfaceInfo) {
        let mut vpp = self.lock();
        let idx = vpp.state.attach_interface(
            &info.name,
            &info.tag,
            info.point_to_point,
            Some(info.sw_if_index.0),
        );
        if let Some(i) = vpp.state.interfaces.get_mut(idx) {
            i.admin_up = info.admin_up;
            i.link_up = info.link_up;
        }
        vpp.state.events.clear();
        vpp.signal_event(InterfaceEvent::Rescan);
    }

    pub fn interfaces(&self) -> Vec<InterfaceInfo> {
        let vpp = self.lock();
        vpp.state
            .interfaces
            .iter()
            .map(|(idx, i)| info(idx, i))
            .collect()
    }
}

/// The dataplane's view of what `s` holds.
fn objects(s: &SimState) -> FakeObjects {
    let mut o = FakeObjects::default();
    for (id, set) in s.npol.ipsets.iter() {
        o.ipsets.insert(IpSetId(id), set.clone());
    }
    for (id, rule) in s.npol.rules.iter() {
        o.rules.insert(RuleId(id), rule.clone().map_sets(IpSetId));
    }
    for (id, policy) in s.npol.policies.iter() {
        o.policies
            .insert(PolicyId(id), policy.clone().map_rules(RuleId));
    }
    for (idx, cfg) in &s.npol.interfaces {
        o.configs
            .insert(SwIfIndex(*idx), cfg.clone().map_policies(PolicyId));
    }
    for (idx, i) in s.interfaces.iter() {
        let sw = SwIfIndex(idx);
        if i.cnat {
            o.cnat.insert(sw);
        }
        if i.mac_bytes != [0; 6] {
            o.macs.insert(sw, mac_of(i.mac_bytes));
        }
        if let Some(to) = i.unnumbered {
            o.unnumbered.insert(sw, SwIfIndex(to));
        }
        match &i.kind {
            InterfaceKind::Ipip { src, dst, .. } => {
                o.ipip.insert(sw, (*src, *dst));
            }
            InterfaceKind::Vxlan {
                src,
                dst,
                vni,
                dst_port,
                ..
            } => {
                o.vxlan.insert(sw, (*src, *dst, *vni, *dst_port));
            }
            _ => {}
        }
    }
    for ((idx, ip), n) in &s.neighbors {
        o.neighbours
            .insert((SwIfIndex(*idx), *ip), mac_of(n.mac_bytes));
    }
    for (key, table) in &s.tables {
        if key.table_id != 0 {
            continue;
        }
        for (dst, paths) in &table.routes {
            if let Some(p) = paths.first() {
                o.routes.insert(*dst, route_path(p));
            }
        }
    }
    for (id, acl) in s.acl.acls.iter() {
        let rules = acl.rules.iter().map(acl_rule_from_sim).collect();
        o.acls.insert(
            AclIndex(id),
            FakeAcl {
                tag: acl.tag.clone(),
                rules,
            },
        );
    }
    let lists: BTreeSet<u32> = s
        .acl
        .input
        .keys()
        .chain(s.acl.output.keys())
        .copied()
        .collect();
    for idx in lists {
        let ids = |m: &BTreeMap<u32, Vec<u32>>| {
            m.get(&idx)
                .map(|l| l.iter().copied().map(AclIndex).collect())
                .unwrap_or_default()
        };
        o.acl_lists
            .insert(SwIfIndex(idx), (ids(&s.acl.input), ids(&s.acl.output)));
    }
    if let Some(snat) = &s.cnat.snat {
        let v4 = match snat.ip4 {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        let v6 = match snat.ip6 {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        };
        o.snat_addresses = Some((v4, v6));
        o.snat_if_pfx = snat.policy == cnat_api::CnatSnatPolicies::CnatPolicyIfPfx.to_raw();
        o.snat_excludes = snat.exclude.clone();
        o.snat_interfaces = snat
            .interfaces
            .iter()
            .map(|(i, t)| {
                let v6 = *t == cnat_api::CnatSnatPolicyTable::CnatPolicyIncludeV6.to_raw();
                (SwIfIndex(*i), v6)
            })
            .collect();
    }
    for (id, t) in s.cnat.translations.iter() {
        let backends = t.paths.iter().map(|p| (p.dst.addr, p.dst.port)).collect();
        let maglev = t.lb_type == cnat_api::CnatLbType::CnatLbTypeMaglev.to_raw();
        o.translations.insert(
            id,
            (
                t.vip.addr,
                t.proto,
                t.vip.port,
                t.is_real_ip != 0,
                backends,
                maglev,
            ),
        );
    }
    o
}

fn nh_addr(p: &sim::Path) -> IpAddr {
    let mut b = [0u8; 16];
    let n = p.nh.len().min(16);
    b[..n].copy_from_slice(&p.nh[..n]);
    if p.proto == 1 {
        IpAddr::from(b)
    } else {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    }
}

/// The route path `p` is, as the dataplane sends them (see `vpp.rs`).
fn route_path(p: &sim::Path) -> RoutePath {
    if p.path_type == fib_types::FibPathType::FibApiPathTypeIcmpUnreach.to_raw() {
        return RoutePath::Unreachable;
    }
    let has_nh = p.nh.iter().any(|b| *b != 0);
    match (p.sw_if_index, has_nh) {
        (NONE, _) => RoutePath::Via(nh_addr(p)),
        (i, false) => RoutePath::Interface(SwIfIndex(i)),
        (i, true) => RoutePath::ViaOn(nh_addr(p), SwIfIndex(i)),
    }
}

fn sim_path(dst: &ipnet::IpNet, via: &RoutePath) -> sim::Path {
    match via {
        RoutePath::Via(ip) => sim::Path::new(NONE, Some(*ip)),
        RoutePath::Interface(i) => {
            let mut p = sim::Path::new(i.0, None);
            p.proto = u32::from(dst.addr().is_ipv6());
            p
        }
        RoutePath::ViaOn(ip, i) => sim::Path::new(i.0, Some(*ip)),
        RoutePath::Unreachable => {
            let mut p = sim::Path::new(NONE, None);
            p.proto = u32::from(dst.addr().is_ipv6());
            p.path_type = fib_types::FibPathType::FibApiPathTypeIcmpUnreach.to_raw();
            p
        }
    }
}

fn acl_rule_to_sim(r: &AclRule) -> vpp_sim::acl::AclRule {
    vpp_sim::acl::AclRule {
        action: u8::from(r.permit),
        src: r.src,
        dst: r.dst,
        proto: r.proto,
        sport_or_type: r.sport_or_icmp_type,
        dport_or_code: r.dport_or_icmp_code,
    }
}

fn acl_rule_from_sim(r: &vpp_sim::acl::AclRule) -> AclRule {
    AclRule {
        permit: r.action != 0,
        src: r.src,
        dst: r.dst,
        proto: r.proto,
        sport_or_icmp_type: r.sport_or_type,
        dport_or_icmp_code: r.dport_or_code,
    }
}

impl FakeVpp {
    fn signal(&mut self, s: Signal) {
        if let Some(tx) = &self.events {
            // A closed receiver means no dataplane listens; nothing to tell.
            let _ = tx.send(s);
        }
    }

    /// An event of the current VPP run.
    fn signal_event(&mut self, e: InterfaceEvent) {
        self.signal(Signal::Event(self.boot, e));
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
        if let Some((retval, permanent)) = self.injected_fault(op) {
            return Err(OpError {
                permanent,
                ..OpError::new(name, retval)
            });
        }
        let result = self.apply_to_state(op);
        // What VPP announces to `want_interface_events` subscribers.
        for e in std::mem::take(&mut self.state.events) {
            let sw_if_index = SwIfIndex(e.sw_if_index);
            let signal = if e.deleted {
                Signal::Event(self.boot, InterfaceEvent::Deleted { sw_if_index })
            } else {
                Signal::Vpp(self.boot, sw_if_index)
            };
            self.signal(signal);
        }
        match result {
            Ok(reply) => Ok(reply),
            Err(retval) => Err(OpError {
                op: name,
                retval,
                name: vpp_bindings::errno::error_name(retval),
                permanent: false,
            }),
        }
    }

    /// `op` on the simulator's state: the reply, or VPP's `retval`.
    fn apply_to_state(&mut self, op: &Op) -> Result<OpReply, i32> {
        let s = &mut self.state;
        let done = |rv: i32| if rv == 0 { Ok(OpReply::Done) } else { Err(rv) };
        let created = |r: Result<u32, i32>| r.map(OpReply::Created);
        match op {
            Op::IpSetCreate { kind } => Ok(OpReply::Created(s.npol_ipset_create(*kind))),
            Op::IpSetAddMembers { set, members } | Op::IpSetDelMembers { set, members } => {
                let is_add = matches!(op, Op::IpSetAddMembers { .. });
                let kind = s.npol.ipsets.get(set.0).map(|k| k.kind);
                if !is_add && kind == Some(npol::IpSetType::IpAndPort) {
                    self.ip_and_port_deletes += 1;
                }
                let members = members.iter().map(|m| Ok(*m)).collect();
                done(s.npol_ipset_add_del(set.0, is_add, members))
            }
            Op::IpSetDelete { set } => done(s.npol_ipset_delete(set.0)),
            Op::RuleCreate { rule } | Op::RuleUpdate { rule, .. } => {
                let missing = rule.entries.iter().any(|e| match &e.data {
                    npol::EntryData::IpSet(set) | npol::EntryData::PortIpSet(set) => {
                        !s.npol.ipsets.contains(set.0)
                    }
                    _ => false,
                });
                if missing {
                    return Err(RETVAL_NO_SUCH_ENTRY);
                }
                let rule = rule.clone().map_sets(|i| i.0);
                match op {
                    Op::RuleUpdate { id, .. } => {
                        if !s.npol.rules.contains(id.0) {
                            return Err(RETVAL_NO_SUCH_ENTRY);
                        }
                        s.npol_rule_put(Some(id.0), rule);
                        Ok(OpReply::Done)
                    }
                    _ => Ok(OpReply::Created(s.npol_rule_put(None, rule))),
                }
            }
            Op::RuleDelete { id } => done(s.npol_rule_delete(id.0)),
            Op::PolicyCreate { policy } | Op::PolicyUpdate { policy, .. } => {
                let missing = policy
                    .inbound
                    .iter()
                    .chain(&policy.outbound)
                    .any(|r| !s.npol.rules.contains(r.0));
                if missing {
                    return Err(RETVAL_NO_SUCH_ENTRY);
                }
                let policy = policy.clone().map_rules(|r| r.0);
                match op {
                    Op::PolicyUpdate { id, .. } => {
                        if !s.npol.policies.contains(id.0) {
                            return Err(RETVAL_NO_SUCH_ENTRY);
                        }
                        s.npol_policy_put(Some(id.0), policy);
                        Ok(OpReply::Done)
                    }
                    _ => Ok(OpReply::Created(s.npol_policy_put(None, policy))),
                }
            }
            Op::PolicyDelete { id } => done(s.npol_policy_delete(id.0)),
            Op::ConfigurePolicies {
                sw_if_index,
                config,
            } => done(s.npol_configure(sw_if_index.0, config.clone().map_policies(|p| p.0))),
            Op::CnatFeature {
                sw_if_index,
                enable,
            } => done(s.cnat_enable(sw_if_index.0, *enable)),
            Op::AclAddReplace { index, tag, rules } => {
                let rules = rules.iter().map(acl_rule_to_sim).collect();
                let index = index.map_or(NONE, |i| i.0);
                match s.acl_add_replace(index, tag.clone(), rules) {
                    (0, id) => Ok(OpReply::Created(id)),
                    (rv, _) => Err(rv),
                }
            }
            Op::AclDelete { index } => done(s.acl_del(index.0)),
            Op::AclInterfaceSet {
                sw_if_index,
                input,
                output,
            } => {
                let n_input = u8::try_from(input.len()).map_err(|_| sim::rv::INVALID_VALUE)?;
                let acls: Vec<u32> = input.iter().chain(output).map(|a| a.0).collect();
                done(s.acl_set_interface_list(sw_if_index.0, n_input, &acls))
            }
            Op::Route { dst, via, is_add } => {
                let paths = if *is_add {
                    vec![sim_path(dst, via)]
                } else {
                    Vec::new()
                };
                done(s.route_add_del(*is_add, false, 0, *dst, paths))
            }
            Op::IpipTunnelCreate { src, dst } => created(s.add_ipip(NONE, *src, *dst, 0)),
            Op::IpipTunnelDelete { sw_if_index } => done(s.del_ipip(sw_if_index.0)),
            Op::VxlanTunnelCreate {
                src,
                dst,
                vni,
                port,
            } => created(s.add_del_vxlan(true, NONE, *src, *dst, *port, *port, *vni, 0, false)),
            Op::VxlanTunnelDelete {
                src,
                dst,
                vni,
                port,
            } => s
                .add_del_vxlan(false, NONE, *src, *dst, *port, *port, *vni, 0, false)
                .map(|_| OpReply::Done),
            Op::SetMac { sw_if_index, mac } => done(s.set_mac(sw_if_index.0, mac.0)),
            Op::SetUnnumbered {
                sw_if_index,
                to,
                is_add,
            } => done(s.set_unnumbered(to.0, sw_if_index.0, *is_add)),
            Op::SetAdminUp { sw_if_index, up } => done(s.set_flags(sw_if_index.0, *up)),
            Op::SnatSet { v4, v6 } => {
                let rv = s.cnat_set_snat(v4.map(IpAddr::V4), v6.map(IpAddr::V6), NONE);
                if rv != 0 || (v4.is_none() && v6.is_none()) {
                    return done(rv);
                }
                done(s.cnat_set_snat_policy(cnat_api::CnatSnatPolicies::CnatPolicyIfPfx.to_raw()))
            }
            Op::SnatExclude { prefix, is_add } => done(s.cnat_snat_exclude(*is_add, *prefix)),
            Op::SnatInterface {
                sw_if_index,
                v6,
                is_add,
            } => {
                let table = if *v6 {
                    cnat_api::CnatSnatPolicyTable::CnatPolicyIncludeV6
                } else {
                    cnat_api::CnatSnatPolicyTable::CnatPolicyIncludeV4
                };
                done(s.cnat_snat_if(sw_if_index.0, *is_add, table.to_raw()))
            }
            Op::Neighbour {
                sw_if_index,
                ip,
                mac,
                is_add,
            } => done(s.neighbor_add_del(*is_add, sw_if_index.0, *ip, mac.0, 1)),
            Op::AfPacketCreate { host_if_name, mac } => {
                created(s.create_af_packet(host_if_name, Some(mac.0)))
            }
            Op::AfPacketDelete { host_if_name } => done(s.delete_af_packet(host_if_name)),
            Op::TunCreate {
                tag, host_if_name, ..
            } => created(s.create_tun(NONE, Some(host_if_name), tag)),
            Op::TapDelete { sw_if_index } => done(s.delete_tap(sw_if_index.0)),
            Op::SetTag { sw_if_index, tag } => done(s.set_tag(sw_if_index.0, true, tag)),
            Op::SetRxInterrupt { sw_if_index } => done(s.set_rx_mode(sw_if_index.0)),
            Op::CnatTranslation {
                vip,
                proto,
                port,
                real_ip,
                backends,
                maglev,
            } => {
                let endpoint = |addr: IpAddr, port: u16| sim::Endpoint {
                    addr,
                    sw_if_index: NONE,
                    if_af: 0,
                    port,
                };
                let unspecified = match vip {
                    IpAddr::V4(_) => IpAddr::from([0u8; 4]),
                    IpAddr::V6(_) => IpAddr::from([0u16; 8]),
                };
                let lb_type = if *maglev {
                    cnat_api::CnatLbType::CnatLbTypeMaglev
                } else {
                    cnat_api::CnatLbType::CnatLbTypeDefault
                };
                let t = sim::Translation {
                    vip: endpoint(*vip, *port),
                    proto: *proto,
                    is_real_ip: u8::from(*real_ip),
                    flags: 0,
                    lb_type: lb_type.to_raw(),
                    flow_hash_config: 0,
                    paths: backends
                        .iter()
                        .map(|(a, p)| sim::TranslationPath {
                            src: endpoint(unspecified, 0),
                            dst: endpoint(*a, *p),
                            flags: 0,
                        })
                        .collect(),
                };
                Ok(OpReply::Created(s.cnat_translation_update(t)))
            }
            Op::CnatTranslationDel { id } => done(s.cnat_translation_del(*id)),
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
        // As the VPP implementation does: the identity is a tag on `local0`, so it goes
        // with the VPP run it vouches for.
        let prefix = super::vpp::BOOT_TAG_PREFIX;
        let tag = vpp.state.interface(0).map(|i| i.tag.clone());
        let token = match tag.filter(|t| t.starts_with(prefix)) {
            Some(t) => t,
            None => {
                let t = format!("{prefix}fake-{}", vpp.boot);
                vpp.state.set_tag(0, true, &t);
                t
            }
        };
        Ok(VppIdentity(token))
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
                Some(Signal::Event(boot, e)) => {
                    if self.connected && boot == self.connected_boot {
                        return Ok(e);
                    }
                }
                Some(Signal::Vpp(boot, sw_if_index)) => {
                    if self.connected && boot == self.connected_boot {
                        let vpp = self.vpp.lock();
                        return Ok(match vpp.state.interfaces.get(sw_if_index.0) {
                            Some(i) => InterfaceEvent::Changed {
                                sw_if_index,
                                admin_up: i.admin_up,
                                link_up: i.link_up,
                            },
                            None => InterfaceEvent::Deleted { sw_if_index },
                        });
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
        // local0 has no L2 address either (a real VPP lists it so too).
        assert_eq!(p2p, [SwIfIndex(0), tun]);
        assert_ne!(tap, tun);
    }

    /// Events of a VPP run that died never reach a connection to the next run.
    #[tokio::test]
    async fn a_dead_runs_events_are_not_heard_after_a_restart() {
        let (mut dp, h) = new();
        dp.connect().await.unwrap();
        let tap = h.add_interface("tap1", "cali-a");
        h.set_link(tap, false, false);
        h.restart_vpp();
        dp.connect().await.unwrap();
        let next = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            dp.next_interface_event(),
        )
        .await;
        assert!(next.is_err(), "heard {next:?}");
        h.add_interface("tap2", "cali-b");
        assert_eq!(dp.next_interface_event().await, Ok(InterfaceEvent::Rescan));
    }

    /// The identity lives in VPP (a tag on local0): a reconnect to the same run finds it, a
    /// restarted VPP has none and gets a new one.
    #[tokio::test]
    async fn the_identity_is_kept_in_vpp_and_dies_with_it() {
        let (mut dp, h) = new();
        let first = dp.connect().await.unwrap();
        assert_eq!(dp.connect().await.unwrap(), first);
        assert_eq!(h.reconnect_dataplane().connect().await.unwrap(), first);
        h.restart_vpp();
        assert_ne!(dp.connect().await.unwrap(), first);
    }
}
