//! The simulated VPP: the objects the driver programs, with VPP's id allocation and VPP's
//! answers (`retval`) to the same mistakes. Pure and synchronous; it never touches sockets.
//! Every operation returns the `retval` VPP would put in its reply (0 = success).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use npol::{InterfaceConfig, IpSet, IpSetType, Policy, Rule, RuleAction};
use serde::Serialize;

use crate::pool::Pool;

/// `vnet/error.h` values the simulator answers with.
pub mod rv {
    pub const OK: i32 = 0;
    pub const UNSPECIFIED: i32 = -1;
    pub const INVALID_SW_IF_INDEX: i32 = -2;
    pub const NO_SUCH_FIB: i32 = -3;
    pub const NO_SUCH_ENTRY: i32 = -6;
    pub const INVALID_SW_IF_INDEX_2: i32 = -10;
    pub const SYSCALL_ERROR_1: i32 = -11;
    pub const INVALID_VALUE: i32 = -7;
    pub const UNIMPLEMENTED: i32 = -9;
    pub const FEATURE_DISABLED: i32 = -30;
    pub const INVALID_REGISTRATION: i32 = -31;
    pub const NO_PATHS_IN_ROUTE: i32 = -52;
    pub const NO_MATCHING_INTERFACE: i32 = -54;
    pub const ADDRESS_NOT_FOUND_FOR_INTERFACE: i32 = -60;
    pub const INVALID_INTERFACE: i32 = -71;
    pub const TUNNEL_EXIST: i32 = -75;
    pub const IF_ALREADY_EXISTS: i32 = -79;
    pub const IP_PREFIX_INVALID: i32 = -88;
    pub const ADDRESS_IN_USE: i32 = -105;
    pub const ADDRESS_FOUND_FOR_INTERFACE: i32 = -114;
    pub const INSTANCE_IN_USE: i32 = -147;
    pub const INVALID_PREFIX_LENGTH: i32 = -171;
}

/// cnat's interface maps (`cnat_snat_interface_map_type_t`: include v4, include v6, pods,
/// host).
pub const SNAT_IF_MAPS: u8 = 4;

/// `~0`: "none" for sw_if_index, instance, id fields.
pub const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InterfaceKind {
    Local,
    Loopback {
        instance: u32,
    },
    AfPacket {
        host_if_name: String,
    },
    /// A tap plugin interface; `tun` for TUN mode (`TAP_API_FLAG_TUN`): IP packets, no
    /// Ethernet header, registered as a point-to-point hardware class.
    Tap {
        id: u32,
        host_if_name: String,
        tun: bool,
    },
    Ipip {
        instance: u32,
        src: IpAddr,
        dst: IpAddr,
        table_id: u32,
    },
    Vxlan {
        instance: u32,
        src: IpAddr,
        dst: IpAddr,
        vni: u32,
        src_port: u16,
        dst_port: u16,
        encap_vrf_id: u32,
        is_l3: bool,
    },
}

impl InterfaceKind {
    pub fn dev_type(&self) -> &'static str {
        match self {
            InterfaceKind::Local => "local",
            InterfaceKind::Loopback { .. } => "Loopback",
            InterfaceKind::AfPacket { .. } => "af_packet",
            InterfaceKind::Tap { .. } => "tap",
            InterfaceKind::Ipip { .. } => "IPIP",
            InterfaceKind::Vxlan { .. } => "VXLAN",
        }
    }

    /// Interfaces outside VPP's Ethernet hardware class: they have no L2 address (VPP
    /// reports all zeros in `sw_interface_details`) and VPP resolves no neighbours on them.
    pub fn is_p2p(&self) -> bool {
        matches!(
            self,
            InterfaceKind::Ipip { .. }
                | InterfaceKind::Tap { tun: true, .. }
                | InterfaceKind::Vxlan { is_l3: true, .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    pub kind: InterfaceKind,
    pub mac: String,
    #[serde(skip)]
    pub mac_bytes: [u8; 6],
    pub admin_up: bool,
    pub link_up: bool,
    pub tag: String,
    /// In the order they were added, as VPP lists them.
    pub addresses: Vec<IpNet>,
    pub table_v4: u32,
    pub table_v6: u32,
    /// `mtu[]` of `sw_interface_set_mtu`: L3, IP4, IP6, MPLS.
    pub mtu: [u32; 4],
    pub link_mtu: u16,
    pub cnat: bool,
    /// `sw_interface_set_unnumbered`: the interface whose addresses this one uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unnumbered: Option<u32>,
}

impl Interface {
    fn new(name: String, kind: InterfaceKind, mac: [u8; 6]) -> Self {
        Interface {
            name,
            kind,
            mac: fmt_mac(&mac),
            mac_bytes: mac,
            admin_up: false,
            link_up: false,
            tag: String::new(),
            addresses: Vec::new(),
            table_v4: 0,
            table_v6: 0,
            mtu: [9000, 0, 0, 0],
            link_mtu: 9000,
            cnat: false,
            unnumbered: None,
        }
    }

    pub fn table(&self, v6: bool) -> u32 {
        if v6 {
            self.table_v6
        } else {
            self.table_v4
        }
    }
}

fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// One FIB path as the API carries it; raw enum values so that a dump returns exactly what
/// was programmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Path {
    pub sw_if_index: u32,
    pub table_id: u32,
    pub rpf_id: u32,
    pub weight: u8,
    pub preference: u8,
    pub path_type: u32,
    pub flags: u32,
    pub proto: u32,
    /// The next hop's 16 address bytes (v4 in the first four).
    pub nh: Vec<u8>,
    pub via_label: u32,
    pub obj_id: u32,
    pub classify_table_index: u32,
}

impl Path {
    /// A normal IP path out of `sw_if_index` (`u32::MAX`: resolved through `nh`) to next
    /// hop `nh` (none: attached), weight 1, in table 0.
    pub fn new(sw_if_index: u32, nh: Option<IpAddr>) -> Path {
        let mut bytes = vec![0u8; 16];
        match nh {
            Some(IpAddr::V4(a)) => bytes[..4].copy_from_slice(&a.octets()),
            Some(IpAddr::V6(a)) => bytes.copy_from_slice(&a.octets()),
            None => {}
        }
        Path {
            sw_if_index,
            table_id: 0,
            rpf_id: 0,
            weight: 1,
            preference: 0,
            path_type: 0,
            flags: 0,
            proto: u32::from(nh.is_some_and(|a| a.is_ipv6())),
            nh: bytes,
            via_label: 0,
            obj_id: 0,
            classify_table_index: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub name: String,
    pub routes: BTreeMap<IpNet, Vec<Path>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TableKey {
    pub table_id: u32,
    pub is_ip6: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbor {
    pub mac: String,
    #[serde(skip)]
    pub mac_bytes: [u8; 6],
    pub flags: u8,
}

/// `cnat_endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub sw_if_index: u32,
    pub if_af: u8,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranslationPath {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub flags: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    pub vip: Endpoint,
    pub proto: u8,
    pub is_real_ip: u8,
    pub flags: u8,
    pub lb_type: u8,
    pub flow_hash_config: u32,
    pub paths: Vec<TranslationPath>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Snat {
    pub ip4: Option<IpAddr>,
    pub ip6: Option<IpAddr>,
    pub sw_if_index: u32,
    pub policy: u8,
    /// Excluded prefixes: a set (an add of a present prefix changes nothing but cnat's
    /// per-length refcount, which no API shows; one delete removes it).
    pub exclude: BTreeSet<IpNet>,
    /// `(sw_if_index, table)` from `cnat_snat_policy_add_del_if`.
    pub interfaces: BTreeSet<(u32, u8)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cnat {
    pub translations: Pool<Translation>,
    /// Set once `cnat_set_snat_addresses` ran: cnat's default SNAT policy entry.
    pub snat: Option<Snat>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Npol {
    pub ipsets: Pool<IpSet>,
    pub rules: Pool<Rule<u32>>,
    /// QUIRK: the action a deleted rule's pool slot still holds; see
    /// [`npol::Lookup::deleted_rule_action`].
    pub deleted_rule_actions: HashMap<u32, RuleAction>,
    pub policies: Pool<Policy<u32>>,
    pub interfaces: BTreeMap<u32, InterfaceConfig<u32>>,
}

impl npol::Lookup for Npol {
    type SetRef = u32;
    type RuleRef = u32;
    type PolicyRef = u32;
    fn ipset(&self, r: &u32) -> Option<&IpSet> {
        self.ipsets.get(*r)
    }
    fn rule(&self, r: &u32) -> Option<&Rule<u32>> {
        self.rules.get(*r)
    }
    fn policy(&self, r: &u32) -> Option<&Policy<u32>> {
        self.policies.get(*r)
    }
    fn deleted_rule_action(&self, r: &u32) -> Option<RuleAction> {
        self.deleted_rule_actions.get(r).copied()
    }
}

/// A change of interface state that subscribers of `want_interface_events` hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceEvent {
    pub sw_if_index: u32,
    pub admin_up: bool,
    pub link_up: bool,
    pub deleted: bool,
}

/// Everything a VPP instance holds that the driver can program.
#[derive(Debug, Clone, Serialize)]
pub struct SimState {
    pub interfaces: Pool<Interface>,
    #[serde(serialize_with = "as_entries")]
    pub tables: BTreeMap<TableKey, Table>,
    /// Keyed by `(sw_if_index, address)`.
    #[serde(serialize_with = "as_entries")]
    pub neighbors: BTreeMap<(u32, IpAddr), Neighbor>,
    pub cnat: Cnat,
    pub npol: Npol,
    /// The ACL plugin.
    pub acl: crate::acl::Acls,
    /// Events produced by the last operations, drained by the API layer.
    #[serde(skip)]
    pub events: Vec<InterfaceEvent>,
    #[serde(skip)]
    mac_counter: u32,
}

impl Default for SimState {
    fn default() -> Self {
        Self::new()
    }
}

impl SimState {
    /// A freshly started VPP: `local0` and the default tables.
    pub fn new() -> Self {
        let mut s = SimState {
            interfaces: Pool::default(),
            tables: BTreeMap::new(),
            neighbors: BTreeMap::new(),
            cnat: Cnat::default(),
            npol: Npol::default(),
            acl: crate::acl::Acls::default(),
            events: Vec::new(),
            mac_counter: 0,
        };
        s.interfaces.insert(Interface::new(
            "local0".into(),
            InterfaceKind::Local,
            [0; 6],
        ));
        for is_ip6 in [false, true] {
            let name = if is_ip6 { "ipv6-VRF:0" } else { "ipv4-VRF:0" };
            s.tables.insert(
                TableKey {
                    table_id: 0,
                    is_ip6,
                },
                Table {
                    name: name.into(),
                    routes: BTreeMap::new(),
                },
            );
        }
        s
    }

    pub fn interface(&self, sw_if_index: u32) -> Option<&Interface> {
        self.interfaces.get(sw_if_index)
    }

    fn valid(&self, sw_if_index: u32) -> Result<(), i32> {
        if self.interfaces.contains(sw_if_index) {
            Ok(())
        } else {
            Err(rv::INVALID_SW_IF_INDEX)
        }
    }

    /// A locally administered MAC, distinct per interface.
    fn next_mac(&mut self) -> [u8; 6] {
        self.mac_counter = self.mac_counter.wrapping_add(1);
        let c = self.mac_counter.to_be_bytes();
        [0x02, 0xfe, c[0], c[1], c[2], c[3]]
    }

    fn add_interface(&mut self, name: String, kind: InterfaceKind, mac: Option<[u8; 6]>) -> u32 {
        let mac = match mac {
            Some(m) if m != [0; 6] => m,
            _ => self.next_mac(),
        };
        let mac = if kind.is_p2p() { [0; 6] } else { mac };
        let idx = self.interfaces.insert(Interface::new(name, kind, mac));
        // VPP signals an "add" event whose flags are empty.
        self.events.push(InterfaceEvent {
            sw_if_index: idx,
            admin_up: false,
            link_up: false,
            deleted: false,
        });
        idx
    }

    /// Deletes an interface and what hangs off it (addresses, neighbours, cnat and npol
    /// configuration), as VPP's interface delete callbacks do.
    fn delete_interface(&mut self, sw_if_index: u32) -> Option<Interface> {
        let itf = self.interfaces.remove(sw_if_index)?;
        self.neighbors.retain(|(i, _), _| *i != sw_if_index);
        self.npol.interfaces.remove(&sw_if_index);
        self.acl_forget_interface(sw_if_index);
        self.events.push(InterfaceEvent {
            sw_if_index,
            admin_up: false,
            link_up: false,
            deleted: true,
        });
        Some(itf)
    }

    fn lowest_free_instance(&self, used: impl Fn(&InterfaceKind) -> Option<u32>) -> u32 {
        let taken: BTreeSet<u32> = self
            .interfaces
            .iter()
            .filter_map(|(_, i)| used(&i.kind))
            .collect();
        (0..).find(|n| !taken.contains(n)).unwrap_or(NONE)
    }

    /// The instance (or id) to create with: `requested`, or the lowest free one for `None`;
    /// a requested one already in use fails with `in_use` (each create message has its own
    /// error code for that).
    fn pick_instance(
        &self,
        requested: Option<u32>,
        used: impl Fn(&InterfaceKind) -> Option<u32>,
        in_use: i32,
    ) -> Result<u32, i32> {
        match requested {
            None => Ok(self.lowest_free_instance(used)),
            Some(n)
                if self
                    .interfaces
                    .iter()
                    .any(|(_, i)| used(&i.kind) == Some(n)) =>
            {
                Err(in_use)
            }
            Some(n) => Ok(n),
        }
    }

    // ---- interfaces ------------------------------------------------------------------------

    /// An interface made outside the API, as a CNI plugin or an operator makes one: a tap
    /// (`tun`: point-to-point) named `name` and tagged `tag`, admin and link up, at index
    /// `at` when given and free (a test re-creating an interface with its old index) or
    /// else the next free one. No event: the maker announces it.
    pub fn attach_interface(&mut self, name: &str, tag: &str, tun: bool, at: Option<u32>) -> u32 {
        let used = |k: &InterfaceKind| match k {
            InterfaceKind::Tap { id, .. } => Some(*id),
            _ => None,
        };
        let id = self.lowest_free_instance(used);
        let kind = InterfaceKind::Tap {
            id,
            host_if_name: name.to_string(),
            tun,
        };
        let mac = if kind.is_p2p() {
            [0; 6]
        } else {
            self.next_mac()
        };
        let mut itf = Interface::new(name.to_string(), kind, mac);
        itf.tag = tag.to_string();
        itf.admin_up = true;
        itf.link_up = true;
        match at {
            Some(i) => match self.interfaces.insert_at(i, itf) {
                Ok(()) => i,
                Err(itf) => self.interfaces.insert(itf),
            },
            None => self.interfaces.insert(itf),
        }
    }

    /// Deletes an interface the way its maker would (with what hangs off it); no event.
    pub fn detach_interface(&mut self, sw_if_index: u32) {
        self.delete_interface(sw_if_index);
        self.events.clear();
    }

    pub fn create_loopback(&mut self, mac: [u8; 6], instance: Option<u32>) -> Result<u32, i32> {
        let used = |k: &InterfaceKind| match k {
            InterfaceKind::Loopback { instance } => Some(*instance),
            _ => None,
        };
        let instance = self.pick_instance(instance, used, rv::INVALID_REGISTRATION)?;
        Ok(self.add_interface(
            format!("loop{instance}"),
            InterfaceKind::Loopback { instance },
            Some(mac),
        ))
    }

    pub fn delete_loopback(&mut self, sw_if_index: u32) -> i32 {
        match self.interfaces.get(sw_if_index).map(|i| &i.kind) {
            Some(InterfaceKind::Loopback { .. }) => {
                self.delete_interface(sw_if_index);
                rv::OK
            }
            _ => rv::INVALID_SW_IF_INDEX,
        }
    }

    /// `af_packet_create*`. The simulator cannot check that the host interface exists
    /// (VPP answers a syscall error then); it always can.
    pub fn create_af_packet(
        &mut self,
        host_if_name: &str,
        mac: Option<[u8; 6]>,
    ) -> Result<u32, i32> {
        let exists = self.interfaces.iter().any(|(_, i)| {
            matches!(&i.kind, InterfaceKind::AfPacket { host_if_name: h } if h == host_if_name)
        });
        if exists {
            return Err(rv::IF_ALREADY_EXISTS);
        }
        Ok(self.add_interface(
            format!("host-{host_if_name}"),
            InterfaceKind::AfPacket {
                host_if_name: host_if_name.to_string(),
            },
            mac,
        ))
    }

    pub fn delete_af_packet(&mut self, host_if_name: &str) -> i32 {
        let found = self.interfaces.iter().find_map(|(idx, i)| {
            matches!(&i.kind, InterfaceKind::AfPacket { host_if_name: h } if h == host_if_name)
                .then_some(idx)
        });
        match found {
            Some(idx) => {
                self.delete_interface(idx);
                rv::OK
            }
            // `af_packet_delete_if`: no such host interface.
            None => rv::SYSCALL_ERROR_1,
        }
    }

    /// `tap_create_v2/v3` without `TAP_API_FLAG_TUN`: an Ethernet tap named `tap<id>`.
    /// `id = ~0` takes the lowest free id, a taken id fails.
    pub fn create_tap(
        &mut self,
        id: u32,
        mac: Option<[u8; 6]>,
        host_if_name: Option<&str>,
        tag: &str,
    ) -> Result<u32, i32> {
        self.create_tap_or_tun(id, mac, host_if_name, tag, false)
    }

    /// `tap_create_v3` with `TAP_API_FLAG_TUN`, as Calico/VPP's CNI creates pod interfaces:
    /// named `tun<id>` (taps and tuns share one id space), no MAC (VPP ignores the one
    /// given), no neighbour resolution.
    pub fn create_tun(
        &mut self,
        id: u32,
        host_if_name: Option<&str>,
        tag: &str,
    ) -> Result<u32, i32> {
        self.create_tap_or_tun(id, None, host_if_name, tag, true)
    }

    fn create_tap_or_tun(
        &mut self,
        id: u32,
        mac: Option<[u8; 6]>,
        host_if_name: Option<&str>,
        tag: &str,
        tun: bool,
    ) -> Result<u32, i32> {
        let used = |k: &InterfaceKind| match k {
            InterfaceKind::Tap { id, .. } => Some(*id),
            _ => None,
        };
        let id = self.pick_instance((id != NONE).then_some(id), used, rv::INVALID_INTERFACE)?;
        let name = if tun {
            format!("tun{id}")
        } else {
            format!("tap{id}")
        };
        let host_if_name = host_if_name.map_or_else(|| name.clone(), str::to_string);
        let idx = self.add_interface(
            name,
            InterfaceKind::Tap {
                id,
                host_if_name,
                tun,
            },
            mac,
        );
        if let Some(i) = self.interfaces.get_mut(idx) {
            i.tag = tag.to_string();
        }
        Ok(idx)
    }

    pub fn delete_tap(&mut self, sw_if_index: u32) -> i32 {
        match self.interfaces.get(sw_if_index).map(|i| &i.kind) {
            Some(InterfaceKind::Tap { .. }) => {
                self.delete_interface(sw_if_index);
                rv::OK
            }
            // `tap_delete_if`: any index that is not a tap's.
            _ => rv::INVALID_SW_IF_INDEX,
        }
    }

    /// `sw_interface_set_unnumbered`: `unnumbered` uses `sw_if_index`'s addresses (or
    /// stops, with `is_add` false). The borrower is checked first (`INVALID_SW_IF_INDEX`),
    /// the lender only for an add (`INVALID_SW_IF_INDEX_2`); VPP accepts an interface
    /// borrowing from itself.
    pub fn set_unnumbered(&mut self, sw_if_index: u32, unnumbered: u32, is_add: bool) -> i32 {
        if self.interfaces.get(unnumbered).is_none() {
            return rv::INVALID_SW_IF_INDEX;
        }
        if is_add && self.interfaces.get(sw_if_index).is_none() {
            return rv::INVALID_SW_IF_INDEX_2;
        }
        if let Some(i) = self.interfaces.get_mut(unnumbered) {
            i.unnumbered = is_add.then_some(sw_if_index);
        }
        rv::OK
    }

    /// `ipip_add_tunnel`: one tunnel per (src, dst, table); `instance = ~0` picks the lowest
    /// free instance.
    pub fn add_ipip(
        &mut self,
        instance: u32,
        src: IpAddr,
        dst: IpAddr,
        table_id: u32,
    ) -> Result<u32, i32> {
        if !self.tables.contains_key(&TableKey {
            table_id,
            is_ip6: src.is_ipv6(),
        }) {
            return Err(rv::NO_SUCH_FIB);
        }
        let dup = self.interfaces.iter().any(|(_, i)| {
            matches!(&i.kind, InterfaceKind::Ipip { src: s, dst: d, table_id: t, .. }
                if *s == src && *d == dst && *t == table_id)
        });
        if dup {
            return Err(rv::IF_ALREADY_EXISTS);
        }
        let used = |k: &InterfaceKind| match k {
            InterfaceKind::Ipip { instance, .. } => Some(*instance),
            _ => None,
        };
        let instance = self.pick_instance(
            (instance != NONE).then_some(instance),
            used,
            rv::INSTANCE_IN_USE,
        )?;
        Ok(self.add_interface(
            format!("ipip{instance}"),
            InterfaceKind::Ipip {
                instance,
                src,
                dst,
                table_id,
            },
            None,
        ))
    }

    pub fn del_ipip(&mut self, sw_if_index: u32) -> i32 {
        match self.interfaces.get(sw_if_index).map(|i| &i.kind) {
            Some(InterfaceKind::Ipip { .. }) => {
                self.delete_interface(sw_if_index);
                rv::OK
            }
            _ => rv::NO_SUCH_ENTRY,
        }
    }

    /// `vxlan_add_del_tunnel_v3`: keyed by (src, dst, vni, ports, encap vrf).
    #[allow(clippy::too_many_arguments)]
    pub fn add_del_vxlan(
        &mut self,
        is_add: bool,
        instance: u32,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        vni: u32,
        encap_vrf_id: u32,
        is_l3: bool,
    ) -> Result<u32, i32> {
        let found = self.interfaces.iter().find_map(|(idx, i)| {
            matches!(&i.kind, InterfaceKind::Vxlan { src: s, dst: d, vni: v, src_port: sp, dst_port: dp, encap_vrf_id: e, .. }
                if *s == src && *d == dst && *v == vni && *sp == src_port && *dp == dst_port && *e == encap_vrf_id)
                .then_some(idx)
        });
        if !is_add {
            let Some(idx) = found else {
                return Err(rv::NO_SUCH_ENTRY);
            };
            self.delete_interface(idx);
            return Ok(idx);
        }
        if found.is_some() {
            return Err(rv::TUNNEL_EXIST);
        }
        if !self.tables.contains_key(&TableKey {
            table_id: encap_vrf_id,
            is_ip6: src.is_ipv6(),
        }) {
            return Err(rv::NO_SUCH_FIB);
        }
        let used = |k: &InterfaceKind| match k {
            InterfaceKind::Vxlan { instance, .. } => Some(*instance),
            _ => None,
        };
        let instance = self.pick_instance(
            (instance != NONE).then_some(instance),
            used,
            rv::INSTANCE_IN_USE,
        )?;
        Ok(self.add_interface(
            format!("vxlan_tunnel{instance}"),
            InterfaceKind::Vxlan {
                instance,
                src,
                dst,
                vni,
                src_port,
                dst_port,
                encap_vrf_id,
                is_l3,
            },
            None,
        ))
    }

    /// `sw_interface_set_flags`. Our virtual links follow the admin state; the event
    /// carries the bits that changed, as VPP's link-state process reports them.
    pub fn set_flags(&mut self, sw_if_index: u32, admin_up: bool) -> i32 {
        let Some(i) = self.interfaces.get_mut(sw_if_index) else {
            return rv::INVALID_SW_IF_INDEX;
        };
        if i.admin_up == admin_up {
            return rv::OK;
        }
        i.admin_up = admin_up;
        let link_changed = i.link_up != admin_up && !matches!(i.kind, InterfaceKind::Local);
        if link_changed {
            i.link_up = admin_up;
        }
        self.events.push(InterfaceEvent {
            sw_if_index,
            admin_up,
            link_up: link_changed && admin_up,
            deleted: false,
        });
        rv::OK
    }

    /// Sets the link state as if the host side changed (tests use it to flap a pod link).
    pub fn set_link(&mut self, sw_if_index: u32, up: bool) -> i32 {
        let Some(i) = self.interfaces.get_mut(sw_if_index) else {
            return rv::INVALID_SW_IF_INDEX;
        };
        if i.link_up != up {
            i.link_up = up;
            self.events.push(InterfaceEvent {
                sw_if_index,
                admin_up: false,
                link_up: up,
                deleted: false,
            });
        }
        rv::OK
    }

    pub fn set_tag(&mut self, sw_if_index: u32, is_add: bool, tag: &str) -> i32 {
        let Some(i) = self.interfaces.get_mut(sw_if_index) else {
            return rv::INVALID_SW_IF_INDEX;
        };
        i.tag = if is_add {
            tag.to_string()
        } else {
            String::new()
        };
        rv::OK
    }

    /// `sw_interface_set_rx_mode`: the simulator does not poll, so only the index is checked.
    pub fn set_rx_mode(&self, sw_if_index: u32) -> i32 {
        if self.interfaces.get(sw_if_index).is_some() {
            rv::OK
        } else {
            rv::INVALID_SW_IF_INDEX
        }
    }

    pub fn set_mtu(&mut self, sw_if_index: u32, mtu: [u32; 4]) -> i32 {
        let Some(i) = self.interfaces.get_mut(sw_if_index) else {
            return rv::INVALID_SW_IF_INDEX;
        };
        for (k, v) in mtu.iter().enumerate() {
            if *v != 0 {
                i.mtu[k] = *v;
            }
        }
        rv::OK
    }

    pub fn set_mac(&mut self, sw_if_index: u32, mac: [u8; 6]) -> i32 {
        let Some(i) = self.interfaces.get_mut(sw_if_index) else {
            return rv::INVALID_SW_IF_INDEX;
        };
        i.mac_bytes = mac;
        i.mac = fmt_mac(&mac);
        rv::OK
    }

    /// `sw_interface_add_del_address`, with VPP's overlap check: in one table no two
    /// interfaces may have overlapping subnets, and re-adding an existing address is
    /// `ADDRESS_IN_USE` (the overlap check fires before the duplicate check).
    pub fn add_del_address(
        &mut self,
        sw_if_index: u32,
        is_add: bool,
        del_all: bool,
        prefix: IpNet,
    ) -> i32 {
        if let Err(e) = self.valid(sw_if_index) {
            return e;
        }
        if del_all {
            if let Some(i) = self.interfaces.get_mut(sw_if_index) {
                i.addresses.clear();
            }
            return rv::OK;
        }
        let v6 = matches!(prefix, IpNet::V6(_));
        let table = self.interfaces.get(sw_if_index).map_or(0, |i| i.table(v6));
        if is_add {
            for (idx, other) in self.interfaces.iter() {
                if other.table(v6) != table {
                    continue;
                }
                for a in &other.addresses {
                    let overlap = a.contains(&prefix.addr()) || prefix.contains(&a.addr());
                    if !overlap {
                        continue;
                    }
                    if idx == sw_if_index
                        && a.prefix_len() == prefix.prefix_len()
                        && a.addr() != prefix.addr()
                    {
                        continue;
                    }
                    return rv::ADDRESS_IN_USE;
                }
            }
            if let Some(i) = self.interfaces.get_mut(sw_if_index) {
                i.addresses.push(prefix);
            }
            rv::OK
        } else {
            let Some(i) = self.interfaces.get_mut(sw_if_index) else {
                return rv::INVALID_SW_IF_INDEX;
            };
            let before = i.addresses.len();
            i.addresses
                .retain(|a| !(a.addr() == prefix.addr() && a.prefix_len() == prefix.prefix_len()));
            if i.addresses.len() == before {
                rv::ADDRESS_NOT_FOUND_FOR_INTERFACE
            } else {
                rv::OK
            }
        }
    }

    /// `sw_interface_set_table`: the table must exist and the interface must have no
    /// address of that family.
    pub fn set_table(&mut self, sw_if_index: u32, is_ip6: bool, table_id: u32) -> i32 {
        if let Err(e) = self.valid(sw_if_index) {
            return e;
        }
        if !self.tables.contains_key(&TableKey { table_id, is_ip6 }) {
            return rv::NO_SUCH_FIB;
        }
        let Some(i) = self.interfaces.get_mut(sw_if_index) else {
            return rv::INVALID_SW_IF_INDEX;
        };
        if i.addresses
            .iter()
            .any(|a| matches!(a, IpNet::V6(_)) == is_ip6)
        {
            return rv::ADDRESS_FOUND_FOR_INTERFACE;
        }
        if is_ip6 {
            i.table_v6 = table_id;
        } else {
            i.table_v4 = table_id;
        }
        rv::OK
    }

    // ---- FIB -------------------------------------------------------------------------------

    /// `ip_table_add_del`. Adding an existing table renames it; table 0 is never deleted;
    /// deleting flushes the table's routes.
    pub fn table_add_del(&mut self, is_add: bool, key: TableKey, name: &str) -> i32 {
        if is_add {
            let t = self.tables.entry(key).or_insert_with(|| Table {
                name: String::new(),
                routes: BTreeMap::new(),
            });
            t.name = if name.is_empty() {
                format!(
                    "{}-VRF:{}",
                    if key.is_ip6 { "ipv6" } else { "ipv4" },
                    key.table_id
                )
            } else {
                name.to_string()
            };
            return rv::OK;
        }
        if key.table_id == 0 {
            return rv::OK;
        }
        if self.tables.remove(&key).is_none() {
            return rv::NO_SUCH_FIB;
        }
        rv::OK
    }

    /// `ip_route_add_del`: non-multipath add replaces the paths, multipath add/del adds or
    /// removes the given paths, non-multipath delete removes the entry (no error if absent).
    pub fn route_add_del(
        &mut self,
        is_add: bool,
        is_multipath: bool,
        table_id: u32,
        prefix: IpNet,
        paths: Vec<Path>,
    ) -> i32 {
        let key = TableKey {
            table_id,
            is_ip6: matches!(prefix, IpNet::V6(_)),
        };
        if !self.tables.contains_key(&key) {
            return rv::NO_SUCH_FIB;
        }
        // `fib_api_path_decode`, for normal IP paths: an interface must exist; without one
        // the next-hop table must.
        for p in &paths {
            if p.path_type != 0 || p.proto > 1 {
                continue;
            }
            if p.sw_if_index == NONE {
                let nh_table = TableKey {
                    table_id: p.table_id,
                    is_ip6: p.proto == 1,
                };
                if !self.tables.contains_key(&nh_table) {
                    return rv::NO_SUCH_FIB;
                }
            } else if !self.interfaces.contains(p.sw_if_index) {
                return rv::NO_MATCHING_INTERFACE;
            }
        }
        let Some(table) = self.tables.get_mut(&key) else {
            return rv::NO_SUCH_FIB;
        };
        // The FIB keys entries by the masked prefix.
        let prefix = prefix.trunc();
        if is_add && paths.is_empty() {
            return rv::NO_PATHS_IN_ROUTE;
        }
        match (is_add, is_multipath) {
            (true, false) => {
                table.routes.insert(prefix, paths);
            }
            (true, true) => {
                let e = table.routes.entry(prefix).or_default();
                for p in paths {
                    if !e.contains(&p) {
                        e.push(p);
                    }
                }
            }
            (false, true) => {
                if paths.is_empty() {
                    return rv::NO_PATHS_IN_ROUTE;
                }
                if let Some(e) = table.routes.get_mut(&prefix) {
                    e.retain(|p| !paths.iter().any(|q| same_path(p, q)));
                    if e.is_empty() {
                        table.routes.remove(&prefix);
                    }
                }
            }
            (false, false) => {
                table.routes.remove(&prefix);
            }
        }
        rv::OK
    }

    // ---- neighbours ------------------------------------------------------------------------

    pub fn neighbor_add_del(
        &mut self,
        is_add: bool,
        sw_if_index: u32,
        ip: IpAddr,
        mac: [u8; 6],
        flags: u8,
    ) -> i32 {
        if let Err(e) = self.valid(sw_if_index) {
            return e;
        }
        if is_add {
            self.neighbors.insert(
                (sw_if_index, ip),
                Neighbor {
                    mac: fmt_mac(&mac),
                    mac_bytes: mac,
                    flags,
                },
            );
            rv::OK
        } else if self.neighbors.remove(&(sw_if_index, ip)).is_some() {
            rv::OK
        } else {
            rv::NO_SUCH_ENTRY
        }
    }

    // ---- cnat ------------------------------------------------------------------------------

    pub fn cnat_enable(&mut self, sw_if_index: u32, enable: bool) -> i32 {
        let Some(i) = self.interfaces.get_mut(sw_if_index) else {
            return rv::INVALID_SW_IF_INDEX;
        };
        i.cnat = enable;
        rv::OK
    }

    /// `cnat_translation_update`: a translation is identified by (VIP address, port,
    /// protocol); updating an existing one keeps its id.
    pub fn cnat_translation_update(&mut self, mut t: Translation) -> u32 {
        // Not a real IP: cnat marks the translation exclusive (CNAT_TR_FLAG_EXCLUSIVE).
        if t.is_real_ip == 0 {
            t.flags |= 1 << 4;
        }
        let found = self.cnat.translations.iter().find_map(|(id, x)| {
            (x.vip.addr == t.vip.addr && x.vip.port == t.vip.port && x.proto == t.proto)
                .then_some(id)
        });
        match found.and_then(|id| Some((id, self.cnat.translations.get_mut(id)?))) {
            Some((id, slot)) => {
                *slot = t;
                id
            }
            None => self.cnat.translations.insert(t),
        }
    }

    pub fn cnat_translation_del(&mut self, id: u32) -> i32 {
        if self.cnat.translations.remove(id).is_some() {
            rv::OK
        } else {
            rv::NO_SUCH_ENTRY
        }
    }

    /// QUIRK (confirmed on a real VPP): `cnat_session_purge` also deletes every translation.
    pub fn cnat_session_purge(&mut self) -> i32 {
        let ids: Vec<u32> = self.cnat.translations.iter().map(|(i, _)| i).collect();
        for id in ids {
            self.cnat.translations.remove(id);
        }
        rv::OK
    }

    pub fn cnat_set_snat(
        &mut self,
        ip4: Option<IpAddr>,
        ip6: Option<IpAddr>,
        sw_if_index: u32,
    ) -> i32 {
        if ip4.is_none() && ip6.is_none() && sw_if_index == u32::MAX {
            // Nothing to translate to: the entry goes, with its exclusions and inclusions.
            return match self.cnat.snat.take() {
                Some(_) => rv::OK,
                None => rv::FEATURE_DISABLED,
            };
        }
        let snat = self.cnat.snat.get_or_insert_with(Snat::default);
        snat.ip4 = ip4;
        snat.ip6 = ip6;
        snat.sw_if_index = sw_if_index;
        rv::OK
    }

    pub fn cnat_set_snat_policy(&mut self, policy: u8) -> i32 {
        match self.cnat.snat.as_mut() {
            Some(s) => {
                s.policy = policy;
                rv::OK
            }
            None => rv::FEATURE_DISABLED,
        }
    }

    /// `cnat_snat_policy_add_del_exclude_pfx`: needs the SNAT entry (`FEATURE_DISABLED`
    /// before `cnat_set_snat_addresses`, for an add or a delete); deleting a prefix that is
    /// not excluded is a no-op that succeeds (`cnat_snat_policy_del_pfx`).
    pub fn cnat_snat_exclude(&mut self, is_add: bool, pfx: IpNet) -> i32 {
        let Some(snat) = self.cnat.snat.as_mut() else {
            return rv::FEATURE_DISABLED;
        };
        let pfx = pfx.trunc();
        if is_add {
            snat.exclude.insert(pfx);
        } else {
            snat.exclude.remove(&pfx);
        }
        rv::OK
    }

    /// `cnat_snat_policy_add_del_if`: a table beyond cnat's interface maps is
    /// `INVALID_VALUE`; without the SNAT entry `FEATURE_DISABLED`; otherwise a bit set or
    /// cleared (clearing an absent one succeeds).
    pub fn cnat_snat_if(&mut self, sw_if_index: u32, is_add: bool, table: u8) -> i32 {
        if let Err(e) = self.valid(sw_if_index) {
            return e;
        }
        if table >= SNAT_IF_MAPS {
            return rv::INVALID_VALUE;
        }
        let Some(snat) = self.cnat.snat.as_mut() else {
            return rv::FEATURE_DISABLED;
        };
        if is_add {
            snat.interfaces.insert((sw_if_index, table));
        } else {
            snat.interfaces.remove(&(sw_if_index, table));
        }
        rv::OK
    }

    // ---- npol ------------------------------------------------------------------------------

    pub fn npol_ipset_create(&mut self, kind: IpSetType) -> u32 {
        self.npol.ipsets.insert(IpSet::new(kind))
    }

    pub fn npol_ipset_delete(&mut self, id: u32) -> i32 {
        if self.npol.ipsets.remove(id).is_some() {
            rv::OK
        } else {
            rv::NO_SUCH_ENTRY
        }
    }

    /// Applies members one by one and stops at the first error, keeping the members applied
    /// before it (as VPP's loop does).
    pub fn npol_ipset_add_del(
        &mut self,
        id: u32,
        is_add: bool,
        members: Vec<Result<npol::IpSetMember, i32>>,
    ) -> i32 {
        let Some(set) = self.npol.ipsets.get_mut(id) else {
            return rv::NO_SUCH_ENTRY;
        };
        for m in members {
            let m = match m {
                Ok(m) => m,
                Err(e) => return e,
            };
            if is_add {
                set.members.insert(m);
            } else {
                set.npol_delete_member(&m);
            }
        }
        rv::OK
    }

    /// `npol_rule_create` / `npol_rule_update`. QUIRK: updating an id that does not exist
    /// creates a new rule at the next pool index and still answers 0.
    pub fn npol_rule_put(&mut self, id: Option<u32>, rule: Rule<u32>) -> u32 {
        if let Some(slot) = id.and_then(|i| self.npol.rules.get_mut(i)) {
            *slot = rule;
            return id.unwrap_or(NONE);
        }
        let id = self.npol.rules.insert(rule);
        self.npol.deleted_rule_actions.remove(&id);
        id
    }

    pub fn npol_rule_delete(&mut self, id: u32) -> i32 {
        match self.npol.rules.remove(id) {
            Some(r) => {
                self.npol.deleted_rule_actions.insert(id, r.action);
                rv::OK
            }
            None => rv::NO_SUCH_ENTRY,
        }
    }

    /// `npol_policy_create` / `npol_policy_update`; same QUIRK as rules for unknown ids.
    /// Rule ids are not checked (dangling references are allowed).
    pub fn npol_policy_put(&mut self, id: Option<u32>, policy: Policy<u32>) -> u32 {
        if let Some(slot) = id.and_then(|i| self.npol.policies.get_mut(i)) {
            *slot = policy;
            return id.unwrap_or(NONE);
        }
        self.npol.policies.insert(policy)
    }

    /// Deleting a policy still referenced by an interface succeeds and leaves the reference
    /// dangling (confirmed on a real VPP).
    pub fn npol_policy_delete(&mut self, id: u32) -> i32 {
        if self.npol.policies.remove(id).is_some() {
            rv::OK
        } else {
            rv::NO_SUCH_ENTRY
        }
    }

    /// `npol_configure_policies`: unknown interface → -2; any unknown policy id → 1 and the
    /// previous configuration stays.
    pub fn npol_configure(&mut self, sw_if_index: u32, cfg: InterfaceConfig<u32>) -> i32 {
        if let Err(e) = self.valid(sw_if_index) {
            return e;
        }
        let all_known = cfg
            .rx_policies
            .iter()
            .chain(&cfg.tx_policies)
            .chain(&cfg.profiles)
            .all(|p| self.npol.policies.contains(*p));
        if !all_known {
            return 1;
        }
        self.npol.interfaces.insert(sw_if_index, cfg);
        rv::OK
    }
}

/// JSON object keys must be strings: maps with structured keys become `[key, value]` lists.
fn as_entries<K: Serialize, V: Serialize, S: serde::Serializer>(
    m: &BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter())
}

fn same_path(a: &Path, b: &Path) -> bool {
    a.sw_if_index == b.sw_if_index
        && a.nh == b.nh
        && a.table_id == b.table_id
        && a.path_type == b.path_type
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
