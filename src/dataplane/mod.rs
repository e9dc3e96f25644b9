//! The one seam to VPP: the [`Dataplane`] trait, spoken in npol objects with VPP ids.
//!
//! The reconciler hands over one batch of operations per stage so that an implementation can
//! pipeline them in a single round trip. Only `vpp.rs` may know VPP message types; nothing
//! here knows Calico keys or policy semantics.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;

use calico_model::MacAddr;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod fake;
pub mod npol_match;
pub mod vpp;

macro_rules! vpp_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u32);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

vpp_id!(
    /// An npol ipset id (`set_id`).
    IpSetId
);
vpp_id!(
    /// An npol rule id.
    RuleId
);
vpp_id!(
    /// An npol policy id.
    PolicyId
);
vpp_id!(
    /// A VPP interface index.
    SwIfIndex
);
vpp_id!(
    /// An ACL plugin ACL index (`acl_index`).
    AclIndex
);

/// VPP's `retval` for "no such entry": a delete of something already gone.
pub const RETVAL_NO_SUCH_ENTRY: i32 = -6;
/// VPP's `retval` for a feature not set up: cnat's SNAT exclusions and inclusions before
/// its SNAT entry exists, and deleting an entry that does not.
pub const RETVAL_FEATURE_DISABLED: i32 = -30;
/// VPP's `retval` for a failed system call; `af_packet_delete` answers it for a host
/// interface VPP has no af_packet interface on.
pub const RETVAL_SYSCALL_ERROR_1: i32 = -11;
/// VPP's `retval` for an interface index that does not exist (any more).
pub const RETVAL_INVALID_SW_IF_INDEX: i32 = -2;
/// The ACL plugin's `acl_del` of an ACL still applied as input / output.
pub const RETVAL_ACL_IN_USE_INBOUND: i32 = -142;
pub const RETVAL_ACL_IN_USE_OUTBOUND: i32 = -143;

/// One write to VPP. Every variant is exactly one request message (member lists may be split
/// by the implementation when they exceed a message's size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    IpSetCreate {
        kind: npol::IpSetType,
    },
    IpSetAddMembers {
        set: IpSetId,
        members: Vec<npol::IpSetMember>,
    },
    /// Only for IP and NET sets: npol removes the wrong members from IP_AND_PORT sets.
    IpSetDelMembers {
        set: IpSetId,
        members: Vec<npol::IpSetMember>,
    },
    IpSetDelete {
        set: IpSetId,
    },
    RuleCreate {
        rule: npol::Rule<IpSetId>,
    },
    RuleUpdate {
        id: RuleId,
        rule: npol::Rule<IpSetId>,
    },
    RuleDelete {
        id: RuleId,
    },
    PolicyCreate {
        policy: npol::Policy<RuleId>,
    },
    PolicyUpdate {
        id: PolicyId,
        policy: npol::Policy<RuleId>,
    },
    PolicyDelete {
        id: PolicyId,
    },
    ConfigurePolicies {
        sw_if_index: SwIfIndex,
        config: npol::InterfaceConfig<PolicyId>,
    },
    /// `feature_cnat_enable_disable`: npol only sees traffic on interfaces with cnat on.
    CnatFeature {
        sw_if_index: SwIfIndex,
        enable: bool,
    },
    /// `acl_add_replace`: creates an ACL (`index` `None`) or replaces one in place (every
    /// interface using it sees the new rules at once).
    AclAddReplace {
        index: Option<AclIndex>,
        /// Stored with the ACL, for operators (`show acl-plugin acl`).
        tag: String,
        rules: Vec<AclRule>,
    },
    AclDelete {
        index: AclIndex,
    },
    /// `acl_interface_set_acl_list`: the interface's whole input and output ACL lists.
    AclInterfaceSet {
        sw_if_index: SwIfIndex,
        input: Vec<AclIndex>,
        output: Vec<AclIndex>,
    },
    /// `ip_route_add_del` in the default table: `dst` via `via`. An add replaces the
    /// route's paths; a delete removes the prefix whatever its paths (`via` is not sent).
    Route {
        dst: ipnet::IpNet,
        via: RoutePath,
        is_add: bool,
    },
    /// `ipip_add_tunnel`: a point-to-point IP-in-IP tunnel in the default table; replies
    /// with the new interface ([`OpReply::Created`]).
    IpipTunnelCreate {
        src: IpAddr,
        dst: IpAddr,
    },
    /// `ipip_del_tunnel`.
    IpipTunnelDelete {
        sw_if_index: SwIfIndex,
    },
    /// `vxlan_add_del_tunnel_v3`: an L2 VXLAN tunnel in the default table whose decapsulated
    /// frames go to `ethernet-input` (so it works in no bridge domain, as an IP interface);
    /// replies with the new interface ([`OpReply::Created`]).
    VxlanTunnelCreate {
        src: IpAddr,
        dst: IpAddr,
        vni: u32,
        port: u16,
    },
    /// `vxlan_add_del_tunnel_v3` with `is_add` 0: VPP finds the tunnel by its endpoints,
    /// VNI and port.
    VxlanTunnelDelete {
        src: IpAddr,
        dst: IpAddr,
        vni: u32,
        port: u16,
    },
    /// `sw_interface_set_mac_address`.
    SetMac {
        sw_if_index: SwIfIndex,
        mac: MacAddr,
    },
    /// `sw_interface_set_unnumbered`: `sw_if_index` borrows `to`'s addresses (which makes
    /// it IP-enabled without an address of its own).
    SetUnnumbered {
        sw_if_index: SwIfIndex,
        to: SwIfIndex,
        is_add: bool,
    },
    /// `sw_interface_set_flags`: admin up or down.
    SetAdminUp {
        sw_if_index: SwIfIndex,
        up: bool,
    },
    /// `cnat_set_snat_addresses_v2`, the source addresses SNAT translates to (absent: none
    /// for that family) in the default table, then, in the same batch,
    /// `cnat_set_snat_policy` "interface + prefix" (translate only what enters by an
    /// included interface, towards no excluded prefix). Two messages back to back because
    /// cnat creates the entry with its "none" policy, which translates *everything*: the
    /// gap must be as short as VPP makes it. Neither address: the entry is deleted (with
    /// its exclusions and inclusions), no policy message.
    SnatSet {
        v4: Option<std::net::Ipv4Addr>,
        v6: Option<std::net::Ipv6Addr>,
    },
    /// `cnat_snat_policy_add_del_exclude_pfx`: traffic towards `prefix` keeps its source.
    /// A set member: one delete removes it however often it was added, and deleting an
    /// absent prefix succeeds; but each add bumps a per-prefix-length refcount in cnat that
    /// only a delete of a present prefix brings down, so write each exclusion once.
    SnatExclude {
        prefix: ipnet::IpNet,
        is_add: bool,
    },
    /// `cnat_snat_policy_add_del_if`: what enters by `sw_if_index` (of one family) is
    /// translated.
    SnatInterface {
        sw_if_index: SwIfIndex,
        v6: bool,
        is_add: bool,
    },
    /// A static neighbour (ARP/ND) entry.
    Neighbour {
        sw_if_index: SwIfIndex,
        ip: IpAddr,
        mac: MacAddr,
        is_add: bool,
    },
    /// `af_packet_create_v3`: an Ethernet interface on the host link `host_if_name` (VPP
    /// names it `host-<name>`) with `mac`, checksum offload understood (so a veth's partial
    /// checksums are completed); replies with the new interface ([`OpReply::Created`]).
    AfPacketCreate {
        host_if_name: String,
        mac: MacAddr,
    },
    /// `af_packet_delete`.
    AfPacketDelete {
        host_if_name: String,
    },
    /// `tap_create_v3` in TUN mode with GSO and GRO coalescing, created inside the network
    /// namespace `netns` as `host_if_name`, with `mtu` (0: VPP's default) and the host-side
    /// addresses; tagged `tag`. Replies with the new interface ([`OpReply::Created`]).
    TunCreate {
        tag: String,
        netns: String,
        host_if_name: String,
        mtu: u32,
        ip4: Option<ipnet::Ipv4Net>,
        ip6: Option<ipnet::Ipv6Net>,
    },
    /// `tap_delete_v2`.
    TapDelete {
        sw_if_index: SwIfIndex,
    },
    /// `sw_interface_tag_add_del` (add): the tag endpoints are bound by.
    SetTag {
        sw_if_index: SwIfIndex,
        tag: String,
    },
    /// `sw_interface_set_rx_mode` interrupt, every queue: VPP does not spin polling it.
    SetRxInterrupt {
        sw_if_index: SwIfIndex,
    },
    /// `cnat_translation_update`: new connections to `vip`:`port` (`proto`) go to one of
    /// `backends`; an update of the same frontend replaces its backends in place. Replies
    /// with the translation's id ([`OpReply::Created`]), the handle to delete it by.
    CnatTranslation {
        vip: IpAddr,
        proto: u8,
        port: u16,
        /// The frontend is this node's own address (a node port).
        real_ip: bool,
        backends: Vec<(IpAddr, u16)>,
        maglev: bool,
    },
    /// `cnat_translation_del`.
    CnatTranslationDel {
        id: u32,
    },
}

impl Op {
    /// The VPP message this operation is sent as, for logs, counters and fault injection.
    pub fn name(&self) -> &'static str {
        match self {
            Op::IpSetCreate { .. } => "npol_ipset_create",
            Op::IpSetAddMembers { .. } | Op::IpSetDelMembers { .. } => "npol_ipset_add_del_members",
            Op::IpSetDelete { .. } => "npol_ipset_delete",
            Op::RuleCreate { .. } => "npol_rule_create",
            Op::RuleUpdate { .. } => "npol_rule_update",
            Op::RuleDelete { .. } => "npol_rule_delete",
            Op::PolicyCreate { .. } => "npol_policy_create",
            Op::PolicyUpdate { .. } => "npol_policy_update",
            Op::PolicyDelete { .. } => "npol_policy_delete",
            Op::ConfigurePolicies { .. } => "npol_configure_policies",
            Op::CnatFeature { .. } => "feature_cnat_enable_disable",
            Op::Neighbour { .. } => "ip_neighbor_add_del",
            Op::Route { .. } => "ip_route_add_del",
            Op::IpipTunnelCreate { .. } => "ipip_add_tunnel",
            Op::IpipTunnelDelete { .. } => "ipip_del_tunnel",
            Op::VxlanTunnelCreate { .. } | Op::VxlanTunnelDelete { .. } => {
                "vxlan_add_del_tunnel_v3"
            }
            Op::SetMac { .. } => "sw_interface_set_mac_address",
            Op::SetUnnumbered { .. } => "sw_interface_set_unnumbered",
            Op::SetAdminUp { .. } => "sw_interface_set_flags",
            Op::SnatSet { .. } => "cnat_set_snat_addresses_v2",
            Op::SnatExclude { .. } => "cnat_snat_policy_add_del_exclude_pfx",
            Op::SnatInterface { .. } => "cnat_snat_policy_add_del_if",
            Op::AclAddReplace { .. } => "acl_add_replace",
            Op::AclDelete { .. } => "acl_del",
            Op::AclInterfaceSet { .. } => "acl_interface_set_acl_list",
            Op::AfPacketCreate { .. } => "af_packet_create_v3",
            Op::AfPacketDelete { .. } => "af_packet_delete",
            Op::TunCreate { .. } => "tap_create_v3",
            Op::TapDelete { .. } => "tap_delete_v2",
            Op::SetTag { .. } => "sw_interface_tag_add_del",
            Op::SetRxInterrupt { .. } => "sw_interface_set_rx_mode",
            Op::CnatTranslation { .. } => "cnat_translation_update",
            Op::CnatTranslationDel { .. } => "cnat_translation_del",
        }
    }
}

/// One rule of an ACL plugin ACL (`acl_rule_t`), stateless: the first rule an IP packet
/// matches decides; an ACL no rule of matches denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclRule {
    pub permit: bool,
    /// Source and destination prefixes; both of one family (VPP refuses a mix).
    pub src: ipnet::IpNet,
    pub dst: ipnet::IpNet,
    /// IP protocol; 0 matches every protocol and ignores the ranges.
    pub proto: u8,
    /// Inclusive ranges: ports for TCP and UDP, the ICMP type and code for the family's
    /// ICMP.
    pub sport_or_icmp_type: (u16, u16),
    pub dport_or_icmp_code: (u16, u16),
}

/// Where a route sends its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RoutePath {
    /// To this address, resolved by VPP's FIB (a neighbour on a connected subnet).
    Via(IpAddr),
    /// Out of this point-to-point interface (a tunnel): no next-hop address.
    Interface(SwIfIndex),
    /// To this address out of this interface (an L2 tunnel: the neighbour behind it).
    ViaOn(IpAddr, SwIfIndex),
    /// Nowhere: VPP answers with an ICMP destination unreachable.
    Unreachable,
}

/// What a successful operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpReply {
    Done,
    /// The id of a created ipset, rule, policy or ACL, or the interface index of a created
    /// interface.
    Created(u32),
}

/// One operation failed; the others in the batch are unaffected. Either VPP refused it
/// (non-zero `retval`: retried with backoff, since VPP's codes do not tell a missing
/// dependency from bad content — npol answers 1 for an unknown policy, -7 for both), or it
/// could not even be encoded (`permanent`: no retry can change that; it waits until the
/// desired object changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{op}: {} {retval} ({})", if *permanent { "cannot be encoded, error" } else { "VPP error" }, name.unwrap_or("unknown error"))]
pub struct OpError {
    pub op: &'static str,
    pub retval: i32,
    /// VPP's name for `retval`, when the implementation knows it.
    pub name: Option<&'static str>,
    /// Retrying cannot help (the operation was never sent).
    pub permanent: bool,
}

impl OpError {
    /// VPP refused `op` with `retval`: retryable.
    pub fn new(op: &'static str, retval: i32) -> Self {
        OpError {
            op,
            retval,
            name: None,
            permanent: false,
        }
    }

    /// `op` cannot be encoded from its input (never sent): permanent.
    pub fn unencodable(op: &'static str, retval: i32) -> Self {
        OpError {
            permanent: true,
            ..OpError::new(op, retval)
        }
    }
}

pub type OpResult = Result<OpReply, OpError>;

/// The connection itself failed: every operation of the batch has an unknown outcome.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DataplaneError {
    #[error("not connected to VPP")]
    NotConnected,
    #[error("connection to VPP lost: {0}")]
    Disconnected(String),
    #[error("VPP did not answer within the timeout: {0}")]
    Timeout(String),
    #[error("VPP API incompatible: {0}")]
    Incompatible(String),
    #[error("reading VPP state failed: {0}")]
    Read(String),
}

/// Identifies one run of VPP: a driver restart sees the same value, a VPP restart a new one.
/// The VPP implementation keeps it in VPP itself (a tag on `local0`), so it cannot outlive
/// the objects it vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VppIdentity(pub String);

impl fmt::Display for VppIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One VPP interface as `sw_interface_dump` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub sw_if_index: SwIfIndex,
    pub name: String,
    pub tag: String,
    pub admin_up: bool,
    pub link_up: bool,
    /// VPP does no neighbour resolution (ARP/ND) on this interface: a TUN-mode tap (what
    /// Calico/VPP's CNI gives pods), ipip, wireguard. Its adjacencies are complete from the
    /// start, so no first packet waits for a neighbour and a static neighbour entry is a
    /// wasted write. `false` whenever in doubt: a needless neighbour costs one write, a
    /// missing one lets the first flow skip the TX policy.
    pub point_to_point: bool,
}

/// `sw_interface_event`, or a hint that the interface table should be dumped again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceEvent {
    /// The interface's admin and link state now (read from VPP: `sw_interface_event`'s own
    /// flags name events, not the state).
    Changed {
        sw_if_index: SwIfIndex,
        admin_up: bool,
        link_up: bool,
    },
    Deleted {
        sw_if_index: SwIfIndex,
    },
    /// Something changed that events do not describe (a new interface, a new tag).
    Rescan,
}

/// VPP as the reconciler sees it.
///
/// Every method may be called again after a [`DataplaneError`]: `connect` then re-establishes
/// the connection. Futures are `Send` so the reconciler can run in a spawned task.
pub trait Dataplane: Send {
    /// (Re)connects and returns the identity of the VPP run now behind the connection.
    fn connect(&mut self) -> impl Future<Output = Result<VppIdentity, DataplaneError>> + Send;

    /// Sends every operation in order, pipelined, and returns one result per operation in the
    /// same order. VPP executes them in order, so a later operation may use an object an
    /// earlier one in the same batch modified, but not an id an earlier one created.
    fn execute(
        &mut self,
        ops: Vec<Op>,
    ) -> impl Future<Output = Result<Vec<OpResult>, DataplaneError>> + Send;

    /// The current interface table.
    fn interfaces(
        &mut self,
    ) -> impl Future<Output = Result<Vec<InterfaceInfo>, DataplaneError>> + Send;

    /// The next interface event. Must be cancel-safe (it sits in a `select!`); pends forever
    /// when there is nothing to report.
    fn next_interface_event(
        &mut self,
    ) -> impl Future<Output = Result<InterfaceEvent, DataplaneError>> + Send;
}
