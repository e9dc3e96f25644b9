//! The [`Dataplane`] over VPP's binary API (vpp-bindings): the only file that knows VPP
//! message types.
//!
//! Every batch is one pipelined round trip (requests, then one `control_ping`). The identity
//! of a VPP run is a token we tag onto `local0`: it survives a driver restart and vanishes
//! with a VPP restart, together with the objects it vouches for. Never retries by itself.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};
use vpp_bindings::client::{
    Batch, BatchReplies, Client, ClientConfig, ClientError, EventStream, ReplyHandle,
};
use vpp_bindings::errno::error_name;
use vpp_bindings::gen::acl as acl_api;
use vpp_bindings::gen::acl_types;
use vpp_bindings::gen::cnat::{FeatureCnatEnableDisable, FeatureCnatEnableDisableReply};
use vpp_bindings::gen::ethernet_types::MacAddress;
use vpp_bindings::gen::interface::{
    SwInterfaceDetails, SwInterfaceDump, SwInterfaceEvent, SwInterfaceTagAddDel,
    WantInterfaceEvents,
};
use vpp_bindings::gen::interface_types::IfStatusFlags;
use vpp_bindings::gen::ip_neighbor::{
    IpNeighbor, IpNeighborAddDel, IpNeighborAddDelReply, IpNeighborFlags,
};
use vpp_bindings::gen::ip_types::{Address, IpProto, Prefix};
use vpp_bindings::gen::npol as n;
use vpp_bindings::gen::{fib_types, ip, ipip, tunnel_types};
use vpp_bindings::{Message, MessageInfo};

use super::{
    AclIndex, Dataplane, DataplaneError, InterfaceEvent, InterfaceInfo, IpSetId, Op, OpError,
    OpReply, OpResult, PolicyId, RoutePath, RuleId, SwIfIndex, VppIdentity,
};

/// Tag prefix of the boot token on `local0`.
pub(crate) const BOOT_TAG_PREFIX: &str = "calico-vpp-boot-";
/// Members per `npol_ipset_add_del_members`, to keep each message well under VPP's limits.
const MEMBERS_PER_MESSAGE: usize = 1024;
/// `retval` reported for a request VPP never answered (it answered a later ping).
pub const RETVAL_NO_REPLY: i32 = i32::MIN;
/// `retval` reported for an object that cannot be encoded (never sent).
pub const RETVAL_ENCODE: i32 = -7;

/// Every message this implementation sends or receives; checked against VPP's table at
/// connect, so an incompatible VPP is refused up front with the full list.
pub fn required_messages() -> Vec<MessageInfo> {
    use vpp_bindings::gen::cnat as c;
    use vpp_bindings::gen::interface as i;
    use vpp_bindings::gen::ip_neighbor as ipn;
    vec![
        n::NpolIpsetCreate::INFO,
        n::NpolIpsetCreateReply::INFO,
        n::NpolIpsetAddDelMembers::INFO,
        n::NpolIpsetAddDelMembersReply::INFO,
        n::NpolIpsetDelete::INFO,
        n::NpolIpsetDeleteReply::INFO,
        n::NpolRuleCreate::INFO,
        n::NpolRuleCreateReply::INFO,
        n::NpolRuleUpdate::INFO,
        n::NpolRuleUpdateReply::INFO,
        n::NpolRuleDelete::INFO,
        n::NpolRuleDeleteReply::INFO,
        n::NpolPolicyCreate::INFO,
        n::NpolPolicyCreateReply::INFO,
        n::NpolPolicyUpdate::INFO,
        n::NpolPolicyUpdateReply::INFO,
        n::NpolPolicyDelete::INFO,
        n::NpolPolicyDeleteReply::INFO,
        n::NpolConfigurePolicies::INFO,
        n::NpolConfigurePoliciesReply::INFO,
        c::FeatureCnatEnableDisable::INFO,
        c::FeatureCnatEnableDisableReply::INFO,
        c::CnatSetSnatAddressesV2::INFO,
        c::CnatSetSnatAddressesV2Reply::INFO,
        c::CnatSetSnatPolicy::INFO,
        c::CnatSetSnatPolicyReply::INFO,
        c::CnatSnatPolicyAddDelExcludePfx::INFO,
        c::CnatSnatPolicyAddDelExcludePfxReply::INFO,
        c::CnatSnatPolicyAddDelIf::INFO,
        c::CnatSnatPolicyAddDelIfReply::INFO,
        c::CnatTranslationUpdate::INFO,
        c::CnatTranslationUpdateReply::INFO,
        c::CnatTranslationDel::INFO,
        c::CnatTranslationDelReply::INFO,
        ipn::IpNeighborAddDel::INFO,
        ipn::IpNeighborAddDelReply::INFO,
        ip::IpRouteAddDel::INFO,
        ip::IpRouteAddDelReply::INFO,
        ipip::IpipAddTunnel::INFO,
        ipip::IpipAddTunnelReply::INFO,
        ipip::IpipDelTunnel::INFO,
        ipip::IpipDelTunnelReply::INFO,
        vpp_bindings::gen::vxlan::VxlanAddDelTunnelV3::INFO,
        vpp_bindings::gen::vxlan::VxlanAddDelTunnelV3Reply::INFO,
        vpp_bindings::gen::vlib::AddNodeNext::INFO,
        vpp_bindings::gen::vlib::AddNodeNextReply::INFO,
        i::SwInterfaceSetMacAddress::INFO,
        i::SwInterfaceSetMacAddressReply::INFO,
        i::SwInterfaceSetUnnumbered::INFO,
        i::SwInterfaceSetUnnumberedReply::INFO,
        i::SwInterfaceSetFlags::INFO,
        i::SwInterfaceSetFlagsReply::INFO,
        i::SwInterfaceSetRxMode::INFO,
        i::SwInterfaceSetRxModeReply::INFO,
        vpp_bindings::gen::af_packet::AfPacketCreateV3::INFO,
        vpp_bindings::gen::af_packet::AfPacketCreateV3Reply::INFO,
        vpp_bindings::gen::af_packet::AfPacketDelete::INFO,
        vpp_bindings::gen::af_packet::AfPacketDeleteReply::INFO,
        i::SwInterfaceDump::INFO,
        i::SwInterfaceDetails::INFO,
        i::SwInterfaceTagAddDel::INFO,
        i::SwInterfaceTagAddDelReply::INFO,
        i::WantInterfaceEvents::INFO,
        i::WantInterfaceEventsReply::INFO,
        i::SwInterfaceEvent::INFO,
        acl_api::AclAddReplace::INFO,
        acl_api::AclAddReplaceReply::INFO,
        acl_api::AclDel::INFO,
        acl_api::AclDelReply::INFO,
        acl_api::AclInterfaceSetAclList::INFO,
        acl_api::AclInterfaceSetAclListReply::INFO,
    ]
}

/// TX ring frames of a pod's af_packet interface (see `Op::AfPacketCreate`).
const POD_TX_FRAMES: u32 = 64;

/// The tap plugin's messages: required only when pods get TUN interfaces (a veth-only node
/// runs on a VPP without the tap plugin).
pub fn tun_messages() -> Vec<MessageInfo> {
    vec![
        vpp_bindings::gen::tapv2::TapCreateV3::INFO,
        vpp_bindings::gen::tapv2::TapCreateV3Reply::INFO,
        vpp_bindings::gen::tapv2::TapDeleteV2::INFO,
        vpp_bindings::gen::tapv2::TapDeleteV2Reply::INFO,
    ]
}

/// How the driver talks to VPP's binary API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ApiTransport {
    /// The AF_UNIX API socket (`socksvr`): the default, and the faster one measured here.
    #[default]
    Socket,
    /// VPP's shared-memory API segment through `libvppapiclient.so` (loaded at run time),
    /// with the segment's `api-segment { prefix }` if VPP has one. One per process.
    Shm { prefix: Option<String> },
}

/// How to reach VPP.
#[derive(Debug, Clone)]
pub struct VppConfig {
    /// VPP's API socket, e.g. `/run/vpp/api.sock` (socket transport).
    pub socket: PathBuf,
    pub request_timeout: Duration,
    pub transport: ApiTransport,
    /// Pods get TUN interfaces: the tap plugin's messages are required too.
    pub tun_pods: bool,
}

impl Default for VppConfig {
    fn default() -> Self {
        VppConfig {
            socket: PathBuf::from("/run/vpp/api.sock"),
            request_timeout: Duration::from_secs(10),
            transport: ApiTransport::Socket,
            tun_pods: false,
        }
    }
}

/// A client of VPP over `transport` (the socket at `socket`, or shared memory).
pub async fn connect_client(
    socket: &std::path::Path,
    transport: &ApiTransport,
    config: ClientConfig,
) -> Result<Client, ClientError> {
    match transport {
        ApiTransport::Socket => Client::connect(socket, config).await,
        ApiTransport::Shm { prefix } => Client::connect_shm(prefix.as_deref(), config).await,
    }
}

pub struct VppDataplane {
    config: VppConfig,
    conn: Option<(Client, EventStream<SwInterfaceEvent>)>,
    /// The next index of `vxlan4-input` (`[0]`) and `vxlan6-input` (`[1]`) towards
    /// `ethernet-input` in this VPP run, once a VXLAN tunnel of that family needed it
    /// (`add_node_next` adds the arc, or finds it).
    vxlan_decap_next: [Option<u32>; 2],
}

impl VppDataplane {
    /// Not connected yet: the reconciler calls [`Dataplane::connect`].
    pub fn new(config: VppConfig) -> Self {
        VppDataplane {
            config,
            conn: None,
            vxlan_decap_next: [None; 2],
        }
    }

    fn client(&self) -> Result<&Client, DataplaneError> {
        self.conn
            .as_ref()
            .map(|(c, _)| c)
            .ok_or(DataplaneError::NotConnected)
    }

    fn lost(&mut self, e: ClientError) -> DataplaneError {
        self.conn = None;
        match e {
            ClientError::Incompatible(r) => DataplaneError::Incompatible(r.to_string()),
            ClientError::Timeout { .. } => DataplaneError::Timeout(e.to_string()),
            other => DataplaneError::Disconnected(other.to_string()),
        }
    }

    /// Reads our boot token from `local0`, or puts a new one there for a VPP run that has none.
    async fn boot_identity(client: &Client) -> Result<VppIdentity, ClientError> {
        // VPP reads `sw_if_index = 0` in this dump as "all interfaces": pick local0 out.
        let all = client.dump(&SwInterfaceDump::default()).await?;
        if let Some(tag) = all
            .iter()
            .find(|d| d.sw_if_index == 0)
            .map(|d| d.tag.as_str())
            .filter(|t| t.starts_with(BOOT_TAG_PREFIX))
        {
            return Ok(VppIdentity(tag.to_owned()));
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!("{BOOT_TAG_PREFIX}{nanos:x}-{}", std::process::id());
        client
            .request(&SwInterfaceTagAddDel {
                is_add: true,
                sw_if_index: 0,
                tag: token.clone(),
            })
            .await?;
        info!(token = %token, "tagged a new VPP run");
        Ok(VppIdentity(token))
    }
}

fn address(ip: std::net::IpAddr) -> Address {
    Address::from(ip)
}

fn ipset_type(t: npol::IpSetType) -> n::NpolIpsetType {
    match t {
        npol::IpSetType::Ip => n::NpolIpsetType::NpolIp,
        npol::IpSetType::IpAndPort => n::NpolIpsetType::NpolIpAndPort,
        npol::IpSetType::Net => n::NpolIpsetType::NpolNet,
    }
}

fn member(m: &npol::IpSetMember) -> Result<n::NpolIpsetMember, String> {
    let val = match m {
        npol::IpSetMember::Ip(ip) => n::NpolIpsetMemberVal::from_address(&address(*ip)),
        npol::IpSetMember::Net(net) => n::NpolIpsetMemberVal::from_prefix(&Prefix::from(*net)),
        npol::IpSetMember::IpAndPort { addr, proto, port } => {
            n::NpolIpsetMemberVal::from_tuple(&n::NpolThreeTuple {
                address: address(*addr),
                l4_proto: *proto,
                port: *port,
            })
        }
    };
    val.map(|val| n::NpolIpsetMember { val })
        .map_err(|e| format!("ipset member {m:?}: {e}"))
}

fn rule(r: &npol::Rule<IpSetId>) -> Result<n::NpolRule, String> {
    let action = match r.action {
        npol::RuleAction::Allow => n::NpolRuleAction::NpolAllow,
        npol::RuleAction::Deny => n::NpolRuleAction::NpolDeny,
        npol::RuleAction::Log => n::NpolRuleAction::NpolLog,
        npol::RuleAction::Pass => n::NpolRuleAction::NpolPass,
    };
    let filters = r.filters.map(|f| n::NpolRuleFilter {
        value: f.value,
        type_: match f.kind {
            npol::FilterType::None => n::NpolRuleFilterType::NpolRuleFilterNoneType,
            npol::FilterType::IcmpType => n::NpolRuleFilterType::NpolRuleFilterIcmpType,
            npol::FilterType::IcmpCode => n::NpolRuleFilterType::NpolRuleFilterIcmpCode,
            npol::FilterType::L4Proto => n::NpolRuleFilterType::NpolRuleFilterL4Proto,
        },
        should_match: u8::from(f.should_match),
    });
    let mut matches = Vec::with_capacity(r.entries.len());
    for e in &r.entries {
        let (type_, data) = match &e.data {
            npol::EntryData::Cidr(c) => (
                n::NpolEntryType::NpolCidr,
                n::NpolEntryData::from_cidr(&Prefix::from(*c)),
            ),
            npol::EntryData::PortRange { start, end } => (
                n::NpolEntryType::NpolPortRange,
                n::NpolEntryData::from_port_range(&n::NpolPortRange {
                    start: *start,
                    end: *end,
                }),
            ),
            npol::EntryData::PortIpSet(s) => (
                n::NpolEntryType::NpolPortIpSet,
                n::NpolEntryData::from_set_id(&n::NpolEntrySetId { set_id: s.0 }),
            ),
            npol::EntryData::IpSet(s) => (
                n::NpolEntryType::NpolIpSet,
                n::NpolEntryData::from_set_id(&n::NpolEntrySetId { set_id: s.0 }),
            ),
        };
        let data = data.map_err(|err| format!("rule entry {e:?}: {err}"))?;
        matches.push(n::NpolRuleEntry {
            is_src: e.is_src,
            is_not: e.is_not,
            type_,
            data,
        });
    }
    Ok(n::NpolRule {
        action,
        filters,
        matches,
    })
}

fn policy_items(p: &npol::Policy<RuleId>) -> Vec<n::NpolPolicyItem> {
    let item = |is_inbound| {
        move |r: &RuleId| n::NpolPolicyItem {
            is_inbound,
            rule_id: r.0,
        }
    };
    p.inbound
        .iter()
        .map(item(true))
        .chain(p.outbound.iter().map(item(false)))
        .collect()
}

fn policy_default(d: npol::PolicyDefault) -> n::NpolPolicyDefault {
    match d {
        npol::PolicyDefault::Allow => n::NpolPolicyDefault::NpolDefaultAllow,
        npol::PolicyDefault::Deny => n::NpolPolicyDefault::NpolDefaultDeny,
        npol::PolicyDefault::Pass => n::NpolPolicyDefault::NpolDefaultPass,
    }
}

fn configure(sw: SwIfIndex, c: &npol::InterfaceConfig<PolicyId>) -> n::NpolConfigurePolicies {
    n::NpolConfigurePolicies {
        sw_if_index: sw.0,
        num_rx_policies: c.rx_policies.len() as u32,
        num_tx_policies: c.tx_policies.len() as u32,
        invert_rx_tx: u8::from(c.invert_rx_tx),
        policy_default_rx: policy_default(c.policy_default_rx),
        policy_default_tx: policy_default(c.policy_default_tx),
        profile_default_rx: policy_default(c.profile_default_rx),
        profile_default_tx: policy_default(c.profile_default_tx),
        policy_ids: c
            .rx_policies
            .iter()
            .chain(&c.tx_policies)
            .chain(&c.profiles)
            .map(|p| p.0)
            .collect(),
    }
}

/// Where an operation's reply (or replies) will be.
enum Pending {
    Created(CreatedHandle),
    Done(Vec<DoneHandle>),
    Failed(OpError),
}

enum CreatedHandle {
    Acl(ReplyHandle<acl_api::AclAddReplaceReply>),
    IpSet(ReplyHandle<n::NpolIpsetCreateReply>),
    Rule(ReplyHandle<n::NpolRuleCreateReply>),
    Policy(ReplyHandle<n::NpolPolicyCreateReply>),
    Ipip(ReplyHandle<ipip::IpipAddTunnelReply>),
    Vxlan(ReplyHandle<vpp_bindings::gen::vxlan::VxlanAddDelTunnelV3Reply>),
    AfPacket(ReplyHandle<vpp_bindings::gen::af_packet::AfPacketCreateV3Reply>),
    Tun(ReplyHandle<vpp_bindings::gen::tapv2::TapCreateV3Reply>),
    Translation(ReplyHandle<vpp_bindings::gen::cnat::CnatTranslationUpdateReply>),
}

enum DoneHandle {
    Members(ReplyHandle<n::NpolIpsetAddDelMembersReply>),
    IpSetDelete(ReplyHandle<n::NpolIpsetDeleteReply>),
    RuleUpdate(ReplyHandle<n::NpolRuleUpdateReply>),
    RuleDelete(ReplyHandle<n::NpolRuleDeleteReply>),
    PolicyUpdate(ReplyHandle<n::NpolPolicyUpdateReply>),
    PolicyDelete(ReplyHandle<n::NpolPolicyDeleteReply>),
    Configure(ReplyHandle<n::NpolConfigurePoliciesReply>),
    Cnat(ReplyHandle<FeatureCnatEnableDisableReply>),
    Neighbour(ReplyHandle<IpNeighborAddDelReply>),
    Route(ReplyHandle<ip::IpRouteAddDelReply>),
    IpipDelete(ReplyHandle<ipip::IpipDelTunnelReply>),
    VxlanDelete(ReplyHandle<vpp_bindings::gen::vxlan::VxlanAddDelTunnelV3Reply>),
    Mac(ReplyHandle<vpp_bindings::gen::interface::SwInterfaceSetMacAddressReply>),
    Unnumbered(ReplyHandle<vpp_bindings::gen::interface::SwInterfaceSetUnnumberedReply>),
    Flags(ReplyHandle<vpp_bindings::gen::interface::SwInterfaceSetFlagsReply>),
    SnatAddresses(ReplyHandle<vpp_bindings::gen::cnat::CnatSetSnatAddressesV2Reply>),
    SnatPolicy(ReplyHandle<vpp_bindings::gen::cnat::CnatSetSnatPolicyReply>),
    SnatExclude(ReplyHandle<vpp_bindings::gen::cnat::CnatSnatPolicyAddDelExcludePfxReply>),
    SnatInterface(ReplyHandle<vpp_bindings::gen::cnat::CnatSnatPolicyAddDelIfReply>),
    AclDel(ReplyHandle<acl_api::AclDelReply>),
    AclSet(ReplyHandle<acl_api::AclInterfaceSetAclListReply>),
    AfPacketDelete(ReplyHandle<vpp_bindings::gen::af_packet::AfPacketDeleteReply>),
    TapDelete(ReplyHandle<vpp_bindings::gen::tapv2::TapDeleteV2Reply>),
    Tag(ReplyHandle<vpp_bindings::gen::interface::SwInterfaceTagAddDelReply>),
    RxMode(ReplyHandle<vpp_bindings::gen::interface::SwInterfaceSetRxModeReply>),
    TranslationDel(ReplyHandle<vpp_bindings::gen::cnat::CnatTranslationDelReply>),
}

/// One ACL rule as `acl_add_replace` carries it.
fn acl_rule(r: &super::AclRule) -> Result<acl_types::AclRule, String> {
    if r.src.addr().is_ipv6() != r.dst.addr().is_ipv6() {
        return Err(format!("ACL rule mixes families: {} and {}", r.src, r.dst));
    }
    let proto = IpProto::from_raw(r.proto)
        .ok_or_else(|| format!("IP protocol {} has no ip_proto value", r.proto))?;
    Ok(acl_types::AclRule {
        is_permit: if r.permit {
            acl_types::AclAction::AclActionApiPermit
        } else {
            acl_types::AclAction::AclActionApiDeny
        },
        src_prefix: r.src.into(),
        dst_prefix: r.dst.into(),
        proto,
        srcport_or_icmptype_first: r.sport_or_icmp_type.0,
        srcport_or_icmptype_last: r.sport_or_icmp_type.1,
        dstport_or_icmpcode_first: r.dport_or_icmp_code.0,
        dstport_or_icmpcode_last: r.dport_or_icmp_code.1,
        tcp_flags_mask: 0,
        tcp_flags_value: 0,
    })
}

fn acl_list(ids: &[AclIndex]) -> Vec<u32> {
    ids.iter().map(|a| a.0).collect()
}

/// `vxlan_add_del_tunnel_v3` for an L2 tunnel in the default table.
fn vxlan(
    is_add: bool,
    (src, dst, vni, port): (std::net::IpAddr, std::net::IpAddr, u32, u16),
    decap_next: u32,
) -> vpp_bindings::gen::vxlan::VxlanAddDelTunnelV3 {
    vpp_bindings::gen::vxlan::VxlanAddDelTunnelV3 {
        is_add,
        instance: u32::MAX,
        src_address: address(src),
        dst_address: address(dst),
        src_port: port,
        dst_port: port,
        mcast_sw_if_index: u32::MAX,
        encap_vrf_id: 0,
        decap_next_index: decap_next,
        vni,
        is_l3: false,
    }
}

fn push_op(
    b: &mut Batch<'_>,
    op: &Op,
    vxlan_next: [Option<u32>; 2],
) -> Result<Pending, ClientError> {
    let encode_failed = |why: String| {
        warn!(op = op.name(), error = %why, "cannot encode; not sent");
        Pending::Failed(OpError::unencodable(op.name(), RETVAL_ENCODE))
    };
    Ok(match op {
        Op::IpSetCreate { kind } => {
            Pending::Created(CreatedHandle::IpSet(b.push(&n::NpolIpsetCreate {
                type_: ipset_type(*kind),
            })?))
        }
        Op::IpSetAddMembers { set, members } | Op::IpSetDelMembers { set, members } => {
            let is_add = matches!(op, Op::IpSetAddMembers { .. });
            let encoded: Result<Vec<_>, _> = members.iter().map(member).collect();
            let encoded = match encoded {
                Ok(m) => m,
                Err(why) => return Ok(encode_failed(why)),
            };
            let mut hs = Vec::new();
            for chunk in encoded.chunks(MEMBERS_PER_MESSAGE) {
                hs.push(DoneHandle::Members(b.push(&n::NpolIpsetAddDelMembers {
                    set_id: set.0,
                    is_add,
                    members: chunk.to_vec(),
                })?));
            }
            Pending::Done(hs)
        }
        Op::IpSetDelete { set } => Pending::Done(vec![DoneHandle::IpSetDelete(
            b.push(&n::NpolIpsetDelete { set_id: set.0 })?,
        )]),
        Op::RuleCreate { rule: r } => match rule(r) {
            Ok(rule) => Pending::Created(CreatedHandle::Rule(b.push(&n::NpolRuleCreate { rule })?)),
            Err(why) => encode_failed(why),
        },
        Op::RuleUpdate { id, rule: r } => match rule(r) {
            Ok(rule) => Pending::Done(vec![DoneHandle::RuleUpdate(b.push(
                &n::NpolRuleUpdate {
                    rule_id: id.0,
                    rule,
                },
            )?)]),
            Err(why) => encode_failed(why),
        },
        Op::RuleDelete { id } => Pending::Done(vec![DoneHandle::RuleDelete(
            b.push(&n::NpolRuleDelete { rule_id: id.0 })?,
        )]),
        Op::PolicyCreate { policy } => {
            Pending::Created(CreatedHandle::Policy(b.push(&n::NpolPolicyCreate {
                rules: policy_items(policy),
            })?))
        }
        Op::PolicyUpdate { id, policy } => Pending::Done(vec![DoneHandle::PolicyUpdate(b.push(
            &n::NpolPolicyUpdate {
                policy_id: id.0,
                rules: policy_items(policy),
            },
        )?)]),
        Op::PolicyDelete { id } => Pending::Done(vec![DoneHandle::PolicyDelete(
            b.push(&n::NpolPolicyDelete { policy_id: id.0 })?,
        )]),
        Op::ConfigurePolicies {
            sw_if_index,
            config,
        } => Pending::Done(vec![DoneHandle::Configure(
            b.push(&configure(*sw_if_index, config))?,
        )]),
        Op::CnatFeature {
            sw_if_index,
            enable,
        } => Pending::Done(vec![DoneHandle::Cnat(b.push(
            &FeatureCnatEnableDisable {
                sw_if_index: sw_if_index.0,
                enable_disable: *enable,
            },
        )?)]),
        Op::AclAddReplace { index, tag, rules } => {
            let rules: Result<Vec<_>, _> = rules.iter().map(acl_rule).collect();
            match rules {
                Ok(r) => Pending::Created(CreatedHandle::Acl(b.push(&acl_api::AclAddReplace {
                    acl_index: index.map_or(u32::MAX, |i| i.0),
                    tag: tag.clone(),
                    r,
                })?)),
                Err(why) => encode_failed(why),
            }
        }
        Op::AclDelete { index } => Pending::Done(vec![DoneHandle::AclDel(
            b.push(&acl_api::AclDel { acl_index: index.0 })?,
        )]),
        Op::AclInterfaceSet {
            sw_if_index,
            input,
            output,
        } => match u8::try_from(input.len()) {
            Ok(n_input) => Pending::Done(vec![DoneHandle::AclSet(
                b.push(&acl_api::AclInterfaceSetAclList {
                    sw_if_index: sw_if_index.0,
                    n_input,
                    acls: acl_list(input)
                        .into_iter()
                        .chain(acl_list(output))
                        .collect(),
                })?,
            )]),
            Err(_) => encode_failed(format!("{} input ACLs (at most 255)", input.len())),
        },
        Op::Neighbour {
            sw_if_index,
            ip,
            mac,
            is_add,
        } => Pending::Done(vec![DoneHandle::Neighbour(b.push(&IpNeighborAddDel {
            is_add: *is_add,
            neighbor: IpNeighbor {
                sw_if_index: sw_if_index.0,
                flags: IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC,
                mac_address: MacAddress(mac.0),
                ip_address: address(*ip),
            },
        })?)]),
        Op::Route { dst, via, is_add } => {
            let proto = match dst {
                ipnet::IpNet::V4(_) => fib_types::FibPathNhProto::FibApiPathNhProtoIp4,
                ipnet::IpNet::V6(_) => fib_types::FibPathNhProto::FibApiPathNhProtoIp6,
            };
            let path = match via {
                RoutePath::Via(ip) => fib_types::FibPath {
                    sw_if_index: u32::MAX,
                    weight: 1,
                    proto,
                    nh: fib_types::FibPathNh {
                        address: address(*ip).un,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                RoutePath::Interface(sw_if_index) => fib_types::FibPath {
                    sw_if_index: sw_if_index.0,
                    weight: 1,
                    proto,
                    ..Default::default()
                },
                RoutePath::ViaOn(ip, sw_if_index) => fib_types::FibPath {
                    sw_if_index: sw_if_index.0,
                    weight: 1,
                    proto,
                    nh: fib_types::FibPathNh {
                        address: address(*ip).un,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                RoutePath::Unreachable => fib_types::FibPath {
                    sw_if_index: u32::MAX,
                    weight: 1,
                    proto,
                    type_: fib_types::FibPathType::FibApiPathTypeIcmpUnreach,
                    ..Default::default()
                },
            };
            Pending::Done(vec![DoneHandle::Route(b.push(&ip::IpRouteAddDel {
                is_add: *is_add,
                is_multipath: false,
                route: ip::IpRoute {
                    table_id: 0,
                    prefix: (*dst).into(),
                    // A delete names no path: VPP removes the whole prefix (the driver owns
                    // it), and does not refuse it when the path's interface is gone (a deleted
                    // pod's) — a path naming it would be refused and the route would leak.
                    paths: if *is_add { vec![path] } else { Vec::new() },
                    ..Default::default()
                },
            })?)])
        }
        Op::IpipTunnelCreate { src, dst } => {
            Pending::Created(CreatedHandle::Ipip(b.push(&ipip::IpipAddTunnel {
                tunnel: ipip::IpipTunnel {
                    instance: u32::MAX,
                    src: address(*src),
                    dst: address(*dst),
                    sw_if_index: u32::MAX,
                    table_id: 0,
                    mode: tunnel_types::TunnelMode::TunnelApiModeP2p,
                    ..Default::default()
                },
            })?))
        }
        Op::VxlanTunnelCreate {
            src,
            dst,
            vni,
            port,
        } => match vxlan_next[usize::from(src.is_ipv6())] {
            Some(next) => Pending::Created(CreatedHandle::Vxlan(b.push(&vxlan(
                true,
                (*src, *dst, *vni, *port),
                next,
            ))?)),
            None => encode_failed("VPP has no vxlan4/6-input -> ethernet-input arc".into()),
        },
        Op::VxlanTunnelDelete {
            src,
            dst,
            vni,
            port,
        } => Pending::Done(vec![DoneHandle::VxlanDelete(b.push(&vxlan(
            false,
            (*src, *dst, *vni, *port),
            vxlan_next[usize::from(src.is_ipv6())].unwrap_or(u32::MAX),
        ))?)]),
        Op::SetMac { sw_if_index, mac } => Pending::Done(vec![DoneHandle::Mac(b.push(
            &vpp_bindings::gen::interface::SwInterfaceSetMacAddress {
                sw_if_index: sw_if_index.0,
                mac_address: MacAddress(mac.0),
            },
        )?)]),
        Op::IpipTunnelDelete { sw_if_index } => Pending::Done(vec![DoneHandle::IpipDelete(
            b.push(&ipip::IpipDelTunnel {
                sw_if_index: sw_if_index.0,
            })?,
        )]),
        Op::SetUnnumbered {
            sw_if_index,
            to,
            is_add,
        } => Pending::Done(vec![DoneHandle::Unnumbered(b.push(
            &vpp_bindings::gen::interface::SwInterfaceSetUnnumbered {
                sw_if_index: to.0,
                unnumbered_sw_if_index: sw_if_index.0,
                is_add: *is_add,
            },
        )?)]),
        Op::SnatSet { v4, v6 } => {
            use vpp_bindings::gen::{cnat, ip_types};
            let ip4 = v4.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            let ip6 = v6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
            let mut done = vec![DoneHandle::SnatAddresses(b.push(
                &cnat::CnatSetSnatAddressesV2 {
                    fwd_fib_index: 0,
                    ret_fib_index: 0,
                    snat_ip4: ip_types::Ip4Address(ip4.octets()),
                    snat_ip6: ip_types::Ip6Address(ip6.octets()),
                    sw_if_index: u32::MAX,
                    flags: cnat::CnatSnatPolicyFlags::empty(),
                },
            )?)];
            if v4.is_some() || v6.is_some() {
                done.push(DoneHandle::SnatPolicy(b.push(
                    &cnat::CnatSetSnatPolicy {
                        policy: cnat::CnatSnatPolicies::CnatPolicyIfPfx,
                    },
                )?));
            }
            Pending::Done(done)
        }
        Op::SnatExclude { prefix, is_add } => Pending::Done(vec![DoneHandle::SnatExclude(
            b.push(&vpp_bindings::gen::cnat::CnatSnatPolicyAddDelExcludePfx {
                is_add: u8::from(*is_add),
                prefix: (*prefix).into(),
            })?,
        )]),
        Op::SnatInterface {
            sw_if_index,
            v6,
            is_add,
        } => {
            use vpp_bindings::gen::cnat;
            Pending::Done(vec![DoneHandle::SnatInterface(b.push(
                &cnat::CnatSnatPolicyAddDelIf {
                    sw_if_index: sw_if_index.0,
                    is_add: u8::from(*is_add),
                    table: if *v6 {
                        cnat::CnatSnatPolicyTable::CnatPolicyIncludeV6
                    } else {
                        cnat::CnatSnatPolicyTable::CnatPolicyIncludeV4
                    },
                },
            )?)])
        }
        Op::AfPacketCreate { host_if_name, mac } => {
            use vpp_bindings::gen::af_packet::{AfPacketCreateV3, AfPacketFlags, AfPacketMode};
            Pending::Created(CreatedHandle::AfPacket(b.push(&AfPacketCreateV3 {
                mode: AfPacketMode::AfPacketApiModeEthernet,
                hw_addr: MacAddress(mac.0),
                use_random_hw_addr: false,
                host_if_name: host_if_name.clone(),
                flags: AfPacketFlags::AF_PACKET_API_FLAG_QDISC_BYPASS
                    | AfPacketFlags::AF_PACKET_API_FLAG_CKSUM_GSO,
                // VPP's default TX ring is 1024 frames of 66 KiB (for GSO): 66 MiB of kernel
                // memory per interface, whose mmap starts failing (-11) after a few dozen
                // pods. 64 frames still hold a burst of full-size GSO packets.
                tx_frames_per_block: POD_TX_FRAMES,
                ..Default::default()
            })?))
        }
        Op::AfPacketDelete { host_if_name } => Pending::Done(vec![DoneHandle::AfPacketDelete(
            b.push(&vpp_bindings::gen::af_packet::AfPacketDelete {
                host_if_name: host_if_name.clone(),
            })?,
        )]),
        Op::TunCreate {
            tag,
            netns,
            host_if_name,
            mtu,
            ip4,
            ip6,
        } => {
            use vpp_bindings::gen::tapv2::{TapCreateV3, TapFlags};
            Pending::Created(CreatedHandle::Tun(b.push(&TapCreateV3 {
                host_mtu_set: *mtu != 0,
                host_mtu_size: *mtu,
                host_ip4_prefix_set: ip4.is_some(),
                host_ip4_prefix: ip4.map(Into::into).unwrap_or_default(),
                host_ip6_prefix_set: ip6.is_some(),
                host_ip6_prefix: ip6.map(Into::into).unwrap_or_default(),
                tap_flags: TapFlags::TAP_API_FLAG_TUN
                    | TapFlags::TAP_API_FLAG_GSO
                    | TapFlags::TAP_API_FLAG_GRO_COALESCE,
                host_namespace_set: true,
                host_namespace: netns.clone(),
                host_if_name_set: true,
                host_if_name: host_if_name.clone(),
                tag: tag.clone(),
                ..Default::default()
            })?))
        }
        Op::TapDelete { sw_if_index } => Pending::Done(vec![DoneHandle::TapDelete(b.push(
            &vpp_bindings::gen::tapv2::TapDeleteV2 {
                sw_if_index: sw_if_index.0,
            },
        )?)]),
        Op::SetTag { sw_if_index, tag } => {
            Pending::Done(vec![DoneHandle::Tag(b.push(&SwInterfaceTagAddDel {
                is_add: true,
                sw_if_index: sw_if_index.0,
                tag: tag.clone(),
            })?)])
        }
        Op::SetRxInterrupt { sw_if_index } => Pending::Done(vec![DoneHandle::RxMode(b.push(
            &vpp_bindings::gen::interface::SwInterfaceSetRxMode {
                sw_if_index: sw_if_index.0,
                queue_id_valid: false,
                mode: vpp_bindings::gen::interface_types::RxMode::RxModeApiInterrupt,
                ..Default::default()
            },
        )?)]),
        Op::CnatTranslation {
            vip,
            proto,
            port,
            real_ip,
            backends,
            maglev,
        } => {
            use vpp_bindings::gen::cnat;
            let endpoint = |addr: &std::net::IpAddr, port: u16| cnat::CnatEndpoint {
                addr: address(*addr),
                sw_if_index: u32::MAX,
                port,
                ..Default::default()
            };
            let Some(ip_proto) = IpProto::from_raw(*proto) else {
                return Ok(encode_failed(format!(
                    "IP protocol {proto} has no ip_proto value"
                )));
            };
            Pending::Created(CreatedHandle::Translation(
                b.push(&cnat::CnatTranslationUpdate {
                    translation: cnat::CnatTranslation {
                        vip: endpoint(vip, *port),
                        id: 0,
                        ip_proto,
                        is_real_ip: u8::from(*real_ip),
                        flags: 0,
                        lb_type: if *maglev {
                            cnat::CnatLbType::CnatLbTypeMaglev
                        } else {
                            cnat::CnatLbType::CnatLbTypeDefault
                        },
                        paths: backends
                            .iter()
                            .map(|(a, p)| cnat::CnatEndpointTuple {
                                dst_ep: endpoint(a, *p),
                                src_ep: cnat::CnatEndpoint {
                                    sw_if_index: u32::MAX,
                                    ..Default::default()
                                },
                                flags: 0,
                            })
                            .collect(),
                        ..Default::default()
                    },
                })?,
            ))
        }
        Op::CnatTranslationDel { id } => Pending::Done(vec![DoneHandle::TranslationDel(
            b.push(&vpp_bindings::gen::cnat::CnatTranslationDel { id: *id })?,
        )]),
        Op::SetAdminUp { sw_if_index, up } => Pending::Done(vec![DoneHandle::Flags(b.push(
            &vpp_bindings::gen::interface::SwInterfaceSetFlags {
                sw_if_index: sw_if_index.0,
                flags: if *up {
                    IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP
                } else {
                    IfStatusFlags::default()
                },
            },
        )?)]),
    })
}

/// Splits a reply into "this operation failed" and "the connection is gone".
fn reply<M: Message>(
    op: &'static str,
    r: Result<M, ClientError>,
    retval: impl Fn(&M) -> i32,
) -> Result<Result<M, OpError>, ClientError> {
    match r {
        // npol answers some refusals with a positive retval (unknown policy id: 1).
        Ok(m) if retval(&m) != 0 => Ok(Err(OpError {
            op,
            retval: retval(&m),
            name: error_name(retval(&m)),
            permanent: false,
        })),
        Ok(m) => Ok(Ok(m)),
        Err(ClientError::Vpp { code, name, .. }) => Ok(Err(OpError {
            op,
            retval: code,
            name,
            permanent: false,
        })),
        Err(ClientError::NoReply { .. }) => Ok(Err(OpError {
            op,
            retval: RETVAL_NO_REPLY,
            name: Some("no reply"),
            permanent: false,
        })),
        Err(ClientError::Decode { msg, source }) => {
            warn!(op, error = %source, "undecodable reply");
            Ok(Err(OpError {
                op: msg,
                retval: RETVAL_NO_REPLY,
                name: Some("undecodable reply"),
                permanent: false,
            }))
        }
        Err(e) => Err(e),
    }
}

fn collect(op: &'static str, p: Pending, replies: &BatchReplies) -> Result<OpResult, ClientError> {
    Ok(match p {
        Pending::Failed(e) => Err(e),
        Pending::Created(h) => {
            match h {
                CreatedHandle::Acl(h) => {
                    reply(op, replies.get(&h), |m| m.retval)?.map(|m| OpReply::Created(m.acl_index))
                }
                CreatedHandle::IpSet(h) => {
                    reply(op, replies.get(&h), |m| m.retval)?.map(|m| OpReply::Created(m.set_id))
                }
                CreatedHandle::Rule(h) => {
                    reply(op, replies.get(&h), |m| m.retval)?.map(|m| OpReply::Created(m.rule_id))
                }
                CreatedHandle::Policy(h) => {
                    reply(op, replies.get(&h), |m| m.retval)?.map(|m| OpReply::Created(m.policy_id))
                }
                CreatedHandle::Ipip(h) => reply(op, replies.get(&h), |m| m.retval)?
                    .map(|m| OpReply::Created(m.sw_if_index)),
                CreatedHandle::Vxlan(h) => reply(op, replies.get(&h), |m| m.retval)?
                    .map(|m| OpReply::Created(m.sw_if_index)),
                CreatedHandle::AfPacket(h) => reply(op, replies.get(&h), |m| m.retval)?
                    .map(|m| OpReply::Created(m.sw_if_index)),
                CreatedHandle::Tun(h) => reply(op, replies.get(&h), |m| m.retval)?
                    .map(|m| OpReply::Created(m.sw_if_index)),
                CreatedHandle::Translation(h) => {
                    reply(op, replies.get(&h), |m| m.retval)?.map(|m| OpReply::Created(m.id))
                }
            }
        }
        Pending::Done(hs) => {
            let mut out = Ok(OpReply::Done);
            for h in hs {
                let r = match h {
                    DoneHandle::Members(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::IpSetDelete(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::RuleUpdate(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::RuleDelete(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::PolicyUpdate(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::PolicyDelete(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::Configure(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::Cnat(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::Neighbour(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::Route(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::IpipDelete(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::VxlanDelete(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::Mac(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::Unnumbered(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::Flags(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::AfPacketDelete(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::TapDelete(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::Tag(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::RxMode(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::TranslationDel(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::SnatAddresses(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::SnatPolicy(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::SnatExclude(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::SnatInterface(h) => {
                        reply(op, replies.get(&h), |m| m.retval)?.map(drop)
                    }
                    DoneHandle::AclDel(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                    DoneHandle::AclSet(h) => reply(op, replies.get(&h), |m| m.retval)?.map(drop),
                };
                if let Err(e) = r {
                    if out.is_ok() {
                        out = Err(e);
                    }
                }
            }
            out
        }
    })
}

impl VppDataplane {
    /// The current admin and link state of one interface, as an event (deleted when VPP no
    /// longer has it).
    async fn interface_state(
        &mut self,
        sw_if_index: u32,
    ) -> Result<InterfaceEvent, DataplaneError> {
        let client = self.client()?.clone();
        let dump = SwInterfaceDump {
            sw_if_index,
            ..SwInterfaceDump::default()
        };
        let details = match client.dump(&dump).await {
            Ok(d) => d,
            Err(e) => return Err(self.lost(e)),
        };
        Ok(
            match details.into_iter().find(|d| d.sw_if_index == sw_if_index) {
                Some(d) => InterfaceEvent::Changed {
                    sw_if_index: SwIfIndex(sw_if_index),
                    admin_up: d.flags.contains(IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP),
                    link_up: d.flags.contains(IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP),
                },
                None => InterfaceEvent::Deleted {
                    sw_if_index: SwIfIndex(sw_if_index),
                },
            },
        )
    }
}

impl Dataplane for VppDataplane {
    async fn connect(&mut self) -> Result<VppIdentity, DataplaneError> {
        self.conn = None;
        self.vxlan_decap_next = [None; 2];
        let cfg = ClientConfig {
            name: "calico-vpp-driver".into(),
            request_timeout: self.config.request_timeout,
            required: if self.config.tun_pods {
                required_messages()
                    .into_iter()
                    .chain(tun_messages())
                    .collect()
            } else {
                required_messages()
            },
            ..ClientConfig::default()
        };
        let client = match connect_client(&self.config.socket, &self.config.transport, cfg).await {
            Ok(c) => c,
            Err(e) => return Err(self.lost(e)),
        };
        let subscribed = client
            .subscribe(&WantInterfaceEvents {
                enable_disable: 1,
                pid: std::process::id(),
            })
            .await;
        let events = match subscribed {
            Ok((_, events)) => events,
            Err(e) => return Err(self.lost(e)),
        };
        let identity = match Self::boot_identity(&client).await {
            Ok(id) => id,
            Err(e) => return Err(self.lost(e)),
        };
        info!(socket = %self.config.socket.display(), transport = ?self.config.transport,
            vpp = %identity, "connected to VPP");
        self.conn = Some((client, events));
        Ok(identity)
    }

    async fn execute(&mut self, ops: Vec<Op>) -> Result<Vec<OpResult>, DataplaneError> {
        let client = self.client()?.clone();
        // An L2 VXLAN tunnel must hand its frames to ethernet-input (its default, l2-input,
        // drops them outside a bridge domain): learn that arc's index once per VPP run.
        for (family, node) in [(0, "vxlan4-input"), (1, "vxlan6-input")] {
            let needed = ops.iter().any(|o| match o {
                Op::VxlanTunnelCreate { src, .. } | Op::VxlanTunnelDelete { src, .. } => {
                    usize::from(src.is_ipv6()) == family
                }
                _ => false,
            });
            if !needed || self.vxlan_decap_next[family].is_some() {
                continue;
            }
            let arc = vpp_bindings::gen::vlib::AddNodeNext {
                node_name: node.into(),
                next_name: "ethernet-input".into(),
            };
            match client.request(&arc).await {
                Ok(r) if r.retval == 0 => self.vxlan_decap_next[family] = Some(r.next_index),
                Ok(r) => warn!(
                    retval = r.retval,
                    node, "add_node_next to ethernet-input failed"
                ),
                Err(ClientError::Vpp { code, .. }) => {
                    warn!(
                        retval = code,
                        node, "add_node_next to ethernet-input failed"
                    )
                }
                Err(e) => return Err(self.lost(e)),
            }
        }
        let mut batch = client.batch();
        let n = ops.len();
        let mut pending = Vec::with_capacity(n);
        // Each op is dropped once encoded: a batch of a million IP set members is held once,
        // as frames, not also as ops.
        for op in ops {
            match push_op(&mut batch, &op, self.vxlan_decap_next) {
                Ok(p) => pending.push((op.name(), p)),
                Err(e) => return Err(self.lost(e)),
            }
        }
        debug!(ops = n, messages = batch.len(), "sending batch");
        let replies = match batch.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.lost(e)),
        };
        let mut out = Vec::with_capacity(pending.len());
        for (name, p) in pending {
            match collect(name, p, &replies) {
                Ok(r) => out.push(r),
                Err(e) => return Err(self.lost(e)),
            }
        }
        Ok(out)
    }

    async fn interfaces(&mut self) -> Result<Vec<InterfaceInfo>, DataplaneError> {
        let client = self.client()?.clone();
        let details = match client.dump(&SwInterfaceDump::default()).await {
            Ok(d) => d,
            Err(e) => return Err(self.lost(e)),
        };
        Ok(details
            .into_iter()
            .map(|d| InterfaceInfo {
                point_to_point: is_point_to_point(&d),
                sw_if_index: SwIfIndex(d.sw_if_index),
                name: d.interface_name,
                tag: d.tag,
                admin_up: d.flags.contains(IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP),
                link_up: d.flags.contains(IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP),
            })
            .collect())
    }

    async fn next_interface_event(&mut self) -> Result<InterfaceEvent, DataplaneError> {
        let Some((_, events)) = self.conn.as_mut() else {
            return Err(DataplaneError::NotConnected);
        };
        match events.next_event().await {
            None => {
                self.conn = None;
                Err(DataplaneError::Disconnected(
                    "VPP closed the API connection".into(),
                ))
            }
            Some(Err(e)) => {
                warn!(error = %e, "undecodable sw_interface_event; dumping interfaces instead");
                Ok(InterfaceEvent::Rescan)
            }
            Some(Ok(ev)) if ev.deleted => Ok(InterfaceEvent::Deleted {
                sw_if_index: SwIfIndex(ev.sw_if_index),
            }),
            // The flags name the up-events VPP batched for the interface, not its state: an
            // admin-up event carries no LINK_UP even when the link is up, and a link-up event
            // no ADMIN_UP (vpe-link-state-process). Taking them for the state left endpoints
            // reported down for good; ask VPP for the interface's state instead.
            Some(Ok(ev)) => self.interface_state(ev.sw_if_index).await,
        }
    }
}

/// Whether VPP resolves no neighbours on the interface `d` describes.
///
/// `sw_interface_details` carries no class name, but VPP fills `l2_address` only for an
/// interface of the Ethernet hardware class, the one class whose adjacencies start
/// incomplete and wait for ARP/ND; a TUN tap, ipip or wireguard interface reports all
/// zeros. Sub-interfaces also report zeros while resolving neighbours like their Ethernet
/// parent, so they never count as point-to-point.
fn is_point_to_point(d: &SwInterfaceDetails) -> bool {
    d.sup_sw_if_index == d.sw_if_index && d.l2_address.0 == [0; 6]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(sw_if_index: u32, sup_sw_if_index: u32, mac: [u8; 6]) -> SwInterfaceDetails {
        SwInterfaceDetails {
            sw_if_index,
            sup_sw_if_index,
            l2_address: MacAddress(mac),
            ..Default::default()
        }
    }

    #[test]
    fn zero_l2_address_means_point_to_point() {
        assert!(is_point_to_point(&details(3, 3, [0; 6])));
    }

    #[test]
    fn interface_with_a_mac_resolves_neighbours() {
        assert!(!is_point_to_point(&details(3, 3, [0x02, 0xfe, 0, 0, 0, 1])));
    }

    /// VPP's `sw_interface_event` names the events of a batch: the admin-up event of an
    /// interface whose link came up earlier carries no LINK_UP flag (the simulator sends
    /// what VPP sends). The event must still say the link is up.
    #[tokio::test]
    async fn interface_events_carry_the_state_not_the_event_flags() {
        let dir = tempfile::tempdir().unwrap();
        let sim = vpp_sim::Simulator::start(dir.path().join("api.sock"))
            .await
            .unwrap();
        let mut dp = VppDataplane::new(VppConfig {
            socket: sim.socket_path().to_path_buf(),
            request_timeout: std::time::Duration::from_secs(5),
            ..VppConfig::default()
        });
        dp.connect().await.unwrap();
        let idx = sim.with_state_mut(|s| {
            let idx = s.create_tap(u32::MAX, None, None, "pod").unwrap();
            s.set_link(idx, true);
            s.set_flags(idx, true);
            idx
        });
        let mut last = None;
        while let Ok(Ok(ev)) = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            dp.next_interface_event(),
        )
        .await
        {
            last = Some(ev);
        }
        assert_eq!(
            last,
            Some(InterfaceEvent::Changed {
                sw_if_index: SwIfIndex(idx),
                admin_up: true,
                link_up: true,
            })
        );
    }

    #[test]
    fn sub_interface_without_l2_address_still_resolves_neighbours() {
        assert!(!is_point_to_point(&details(4, 3, [0; 6])));
    }
}
