//! VPP's binary API on top of [`SimState`]: decode a request with the generated bindings,
//! apply it, encode VPP's reply. One handler per message; the socket, the client registry
//! and faults live in `server`. A handler never blocks and never panics on client input.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use npol::{
    Entry, EntryData, Filter, FilterType, InterfaceConfig, IpSetMember, IpSetType, Policy,
    PolicyDefault, Rule, RuleAction,
};
use vpp_bindings::gen::{
    acl as aclapi, acl_types, af_packet, cnat, ethernet_types, fib_types, interface,
    interface_types, ip, ip_neighbor, ip_types, ipip, memclnt, npol as api, tapv2, vpe, vxlan,
};
use vpp_bindings::message::read_header;
use vpp_bindings::{Dump, Header, Message, MessageTable, Reader, Request};

use crate::state::{
    rv, Endpoint, Interface, Path, SimState, TableKey, Translation, TranslationPath, NONE,
};

/// What the simulator says in `show_version`.
pub const PROGRAM: &str = "vpp-sim";

/// Why a message got no answer. VPP is silent in all these cases.
#[derive(Debug, thiserror::Error)]
pub enum Silence {
    #[error("message does not decode: {0}")]
    Decode(String),
    #[error("reply does not encode: {0}")]
    Encode(String),
}

/// Per-request context: the state, where replies go, and the fault to apply.
pub struct Ctx<'a> {
    pub state: &'a mut SimState,
    pub table: &'a MessageTable,
    /// Encoded replies for the requesting client, in order.
    pub replies: Vec<Vec<u8>>,
    /// Answer with this retval (and default fields) without applying the request.
    pub forced: Option<i32>,
    pub client_index: u32,
    /// The requesting client's current `want_interface_events` pid, if subscribed.
    pub subscribed: Option<u32>,
    /// Set by `want_interface_events`: (enable, pid).
    pub subscribe: Option<(bool, u32)>,
    pub vpe_pid: u32,
}

type Handler = Box<dyn Fn(&mut Ctx<'_>, &[u8]) -> Result<(), Silence> + Send + Sync>;

/// Whether a message changes VPP's state (counted by `write_calls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Write,
    Read,
}

pub struct Entry2 {
    pub name: &'static str,
    pub kind: Kind,
    handler: Handler,
}

/// The message table and the handlers of every message the simulator implements.
pub struct Dispatch {
    pub table: MessageTable,
    pub handlers: HashMap<u16, Entry2>,
    /// Names of all messages in the table (implemented or not), by id.
    pub names: HashMap<u16, &'static str>,
}

/// VPP accepts a message longer than its fields need and ignores the rest.
fn decode_lenient<M: Message>(bytes: &[u8]) -> Result<(Header, M), Silence> {
    let mut r = Reader::new(bytes);
    let h = read_header(&mut r, M::HEADER).map_err(|e| Silence::Decode(e.to_string()))?;
    let m = M::decode(&mut r).map_err(|e| Silence::Decode(e.to_string()))?;
    Ok((h, m))
}

/// A reply's `retval` sits right after the message id and the context.
const RETVAL_OFFSET: usize = 6;

fn request<M, F>(f: F) -> Handler
where
    M: Request,
    M::Reply: Default,
    F: Fn(&mut Ctx<'_>, M) -> M::Reply + Send + Sync + 'static,
{
    Box::new(move |ctx, bytes| {
        let (h, m) = decode_lenient::<M>(bytes)?;
        let reply = match ctx.forced {
            Some(_) => M::Reply::default(),
            None => f(ctx, m),
        };
        let mut out = ctx
            .table
            .encode(&reply, 0, h.context)
            .map_err(|e| Silence::Encode(e.to_string()))?;
        if let Some(code) = ctx.forced {
            if reply.retval().is_some() && out.len() >= RETVAL_OFFSET + 4 {
                out[RETVAL_OFFSET..RETVAL_OFFSET + 4].copy_from_slice(&code.to_be_bytes());
            }
        }
        ctx.replies.push(out);
        Ok(())
    })
}

fn dump<M, F>(f: F) -> Handler
where
    M: Dump,
    F: Fn(&mut Ctx<'_>, M) -> Vec<M::Details> + Send + Sync + 'static,
{
    Box::new(move |ctx, bytes| {
        let (h, m) = decode_lenient::<M>(bytes)?;
        // A failed dump sends no details; the client's control_ping still closes it.
        if ctx.forced.is_some() {
            return Ok(());
        }
        for d in f(ctx, m) {
            let out = ctx
                .table
                .encode(&d, 0, h.context)
                .map_err(|e| Silence::Encode(e.to_string()))?;
            ctx.replies.push(out);
        }
        Ok(())
    })
}

impl Dispatch {
    pub fn new() -> Self {
        let table = MessageTable::sequential(vpp_bindings::all_messages());
        let names = vpp_bindings::all_messages()
            .filter_map(|m| Some((table.id(m.name_crc)?, m.name)))
            .collect();
        let mut d = Dispatch {
            table,
            handlers: HashMap::new(),
            names,
        };
        d.register_core();
        d.register_interfaces();
        d.register_fib();
        d.register_cnat();
        d.register_npol();
        d.register_acl();
        d
    }

    fn add<M: Message>(&mut self, kind: Kind, handler: Handler) {
        if let Some(id) = self.table.id_of::<M>() {
            self.handlers.insert(
                id,
                Entry2 {
                    name: M::NAME,
                    kind,
                    handler,
                },
            );
        }
    }

    fn w<M, F>(&mut self, f: F)
    where
        M: Request,
        M::Reply: Default,
        F: Fn(&mut Ctx<'_>, M) -> M::Reply + Send + Sync + 'static,
    {
        self.add::<M>(Kind::Write, request::<M, F>(f));
    }

    fn r<M, F>(&mut self, f: F)
    where
        M: Request,
        M::Reply: Default,
        F: Fn(&mut Ctx<'_>, M) -> M::Reply + Send + Sync + 'static,
    {
        self.add::<M>(Kind::Read, request::<M, F>(f));
    }

    fn d<M, F>(&mut self, f: F)
    where
        M: Dump,
        F: Fn(&mut Ctx<'_>, M) -> Vec<M::Details> + Send + Sync + 'static,
    {
        self.add::<M>(Kind::Read, dump::<M, F>(f));
    }

    /// Runs the handler for message `id`; `None` when the simulator does not implement it.
    pub fn handle(&self, id: u16, ctx: &mut Ctx<'_>, bytes: &[u8]) -> Option<Result<(), Silence>> {
        let e = self.handlers.get(&id)?;
        Some((e.handler)(ctx, bytes))
    }

    pub fn name_crc_of<M: Message>(&self) -> Option<u16> {
        self.table.id_of::<M>()
    }

    fn register_core(&mut self) {
        self.r(|ctx, _: memclnt::ControlPing| memclnt::ControlPingReply {
            retval: 0,
            client_index: ctx.client_index,
            vpe_pid: ctx.vpe_pid,
        });
        self.r(|_, _: memclnt::MemclntKeepalive| memclnt::MemclntKeepaliveReply { retval: 0 });
        self.r(|_, m: memclnt::GetFirstMsgId| first_msg_id(&m.name));
        self.r(|_, _: vpe::ShowVersion| vpe::ShowVersionReply {
            retval: 0,
            program: PROGRAM.into(),
            version: format!("simulator of {}", vpp_bindings::gen::VPP_VERSION)
                .chars()
                .take(31)
                .collect(),
            build_date: "simulator".into(),
            build_directory: "vpp-sim (not a real VPP)".into(),
        });
        self.r(|_, _: api::NpolGetVersion| api::NpolGetVersionReply { major: 0, minor: 0 });
    }

    fn register_interfaces(&mut self) {
        self.w(
            |ctx, m: interface::SwInterfaceSetFlags| interface::SwInterfaceSetFlagsReply {
                retval: ctx.state.set_flags(m.sw_if_index, m.flags.0 & 1 != 0),
            },
        );
        self.w(|ctx, m: interface::SwInterfaceSetUnnumbered| {
            interface::SwInterfaceSetUnnumberedReply {
                retval: ctx
                    .state
                    .set_unnumbered(m.sw_if_index, m.unnumbered_sw_if_index, m.is_add),
            }
        });
        // Subscribing twice, or unsubscribing when not subscribed, is INVALID_REGISTRATION.
        self.r(|ctx, m: interface::WantInterfaceEvents| {
            let enable = m.enable_disable != 0;
            let retval = if enable == ctx.subscribed.is_some() {
                rv::INVALID_REGISTRATION
            } else {
                ctx.subscribe = Some((enable, m.pid));
                0
            };
            interface::WantInterfaceEventsReply { retval }
        });
        self.d(|ctx, m: interface::SwInterfaceDump| {
            ctx.state
                .interfaces
                .iter()
                .filter(|(idx, _)| m.sw_if_index == NONE || *idx == m.sw_if_index)
                .filter(|(_, i)| !m.name_filter_valid || i.name.contains(&m.name_filter))
                .map(|(idx, i)| sw_interface_details(idx, i))
                .collect()
        });
        self.w(|ctx, m: interface::SwInterfaceAddDelAddress| {
            let retval = match IpNet::try_from(m.prefix) {
                Ok(p) => ctx
                    .state
                    .add_del_address(m.sw_if_index, m.is_add, m.del_all, p),
                Err(_) => rv::INVALID_VALUE,
            };
            interface::SwInterfaceAddDelAddressReply { retval }
        });
        self.w(
            |ctx, m: interface::SwInterfaceTagAddDel| interface::SwInterfaceTagAddDelReply {
                retval: ctx.state.set_tag(m.sw_if_index, m.is_add, &m.tag),
            },
        );
        self.w(
            |ctx, m: interface::SwInterfaceSetTable| interface::SwInterfaceSetTableReply {
                retval: ctx.state.set_table(m.sw_if_index, m.is_ipv6, m.vrf_id),
            },
        );
        self.w(
            |ctx, m: interface::SwInterfaceSetMtu| interface::SwInterfaceSetMtuReply {
                retval: ctx.state.set_mtu(m.sw_if_index, m.mtu),
            },
        );
        self.w(
            |ctx, m: interface::SwInterfaceSetRxMode| interface::SwInterfaceSetRxModeReply {
                retval: ctx.state.set_rx_mode(m.sw_if_index),
            },
        );
        self.w(|ctx, m: interface::SwInterfaceSetMacAddress| {
            interface::SwInterfaceSetMacAddressReply {
                retval: ctx.state.set_mac(m.sw_if_index, m.mac_address.0),
            }
        });
        self.w(|ctx, m: interface::CreateLoopback| {
            let (retval, sw_if_index) = split(ctx.state.create_loopback(m.mac_address.0, None));
            interface::CreateLoopbackReply {
                retval,
                sw_if_index,
            }
        });
        self.w(|ctx, m: interface::CreateLoopbackInstance| {
            let inst = m.is_specified.then_some(m.user_instance);
            let (retval, sw_if_index) = split(ctx.state.create_loopback(m.mac_address.0, inst));
            interface::CreateLoopbackInstanceReply {
                retval,
                sw_if_index,
            }
        });
        self.w(
            |ctx, m: interface::DeleteLoopback| interface::DeleteLoopbackReply {
                retval: ctx.state.delete_loopback(m.sw_if_index),
            },
        );
        self.w(|ctx, m: af_packet::AfPacketCreateV3| {
            let mac = (!m.use_random_hw_addr).then_some(m.hw_addr.0);
            let (retval, sw_if_index) = split(ctx.state.create_af_packet(&m.host_if_name, mac));
            af_packet::AfPacketCreateV3Reply {
                retval,
                sw_if_index,
            }
        });
        self.w(|ctx, m: af_packet::AfPacketCreateV2| {
            let mac = (!m.use_random_hw_addr).then_some(m.hw_addr.0);
            let (retval, sw_if_index) = split(ctx.state.create_af_packet(&m.host_if_name, mac));
            af_packet::AfPacketCreateV2Reply {
                retval,
                sw_if_index,
            }
        });
        self.w(
            |ctx, m: af_packet::AfPacketDelete| af_packet::AfPacketDeleteReply {
                retval: ctx.state.delete_af_packet(&m.host_if_name),
            },
        );
        self.w(|ctx, m: tapv2::TapCreateV3| {
            let mac = (!m.use_random_mac).then_some(m.mac_address.0);
            let host = m.host_if_name_set.then_some(m.host_if_name.as_str());
            let created = if m.tap_flags.contains(tapv2::TapFlags::TAP_API_FLAG_TUN) {
                ctx.state.create_tun(m.id, host, &m.tag)
            } else {
                ctx.state.create_tap(m.id, mac, host, &m.tag)
            };
            let (retval, sw_if_index) = split(created);
            tapv2::TapCreateV3Reply {
                retval,
                sw_if_index,
            }
        });
        self.w(|ctx, m: tapv2::TapCreateV2| {
            let mac = (!m.use_random_mac).then_some(m.mac_address.0);
            let host = m.host_if_name_set.then_some(m.host_if_name.as_str());
            let created = if m.tap_flags.contains(tapv2::TapFlags::TAP_API_FLAG_TUN) {
                ctx.state.create_tun(m.id, host, &m.tag)
            } else {
                ctx.state.create_tap(m.id, mac, host, &m.tag)
            };
            let (retval, sw_if_index) = split(created);
            tapv2::TapCreateV2Reply {
                retval,
                sw_if_index,
            }
        });
        self.w(|ctx, m: tapv2::TapDeleteV2| tapv2::TapDeleteV2Reply {
            retval: ctx.state.delete_tap(m.sw_if_index),
        });
        self.w(|ctx, m: ipip::IpipAddTunnel| {
            let t = m.tunnel;
            let (retval, sw_if_index) = split(ctx.state.add_ipip(
                t.instance,
                IpAddr::from(t.src),
                IpAddr::from(t.dst),
                t.table_id,
            ));
            ipip::IpipAddTunnelReply {
                retval,
                sw_if_index,
            }
        });
        self.w(|ctx, m: ipip::IpipDelTunnel| ipip::IpipDelTunnelReply {
            retval: ctx.state.del_ipip(m.sw_if_index),
        });
        // Graph arcs are not modelled: any two nodes are joined by arc 1.
        self.w(|_, _: vpp_bindings::gen::vlib::AddNodeNext| {
            vpp_bindings::gen::vlib::AddNodeNextReply {
                retval: 0,
                next_index: 1,
            }
        });
        self.w(|ctx, m: vxlan::VxlanAddDelTunnelV3| {
            let (retval, sw_if_index) = split(ctx.state.add_del_vxlan(
                m.is_add,
                m.instance,
                IpAddr::from(m.src_address),
                IpAddr::from(m.dst_address),
                m.src_port,
                m.dst_port,
                m.vni,
                m.encap_vrf_id,
                m.is_l3,
            ));
            vxlan::VxlanAddDelTunnelV3Reply {
                retval,
                sw_if_index,
            }
        });
    }

    fn register_fib(&mut self) {
        self.w(|ctx, m: ip::IpTableAddDel| ip::IpTableAddDelReply {
            retval: ctx.state.table_add_del(
                m.is_add,
                TableKey {
                    table_id: m.table.table_id,
                    is_ip6: m.table.is_ip6,
                },
                &m.table.name,
            ),
        });
        self.d(|ctx, _: ip::IpTableDump| {
            ctx.state
                .tables
                .iter()
                .map(|(k, t)| ip::IpTableDetails {
                    table: ip::IpTable {
                        table_id: k.table_id,
                        is_ip6: k.is_ip6,
                        name: t.name.clone(),
                    },
                })
                .collect()
        });
        self.w(|ctx, m: ip::IpRouteAddDel| {
            let retval = match IpNet::try_from(m.route.prefix) {
                Ok(p) => {
                    let paths = m.route.paths.iter().map(path_from_api).collect();
                    ctx.state
                        .route_add_del(m.is_add, m.is_multipath, m.route.table_id, p, paths)
                }
                Err(_) => rv::INVALID_PREFIX_LENGTH,
            };
            ip::IpRouteAddDelReply {
                retval,
                stats_index: 0,
            }
        });
        self.d(|ctx, m: ip::IpRouteDump| {
            let key = TableKey {
                table_id: m.table.table_id,
                is_ip6: m.table.is_ip6,
            };
            let Some(t) = ctx.state.tables.get(&key) else {
                return Vec::new();
            };
            t.routes
                .iter()
                .map(|(pfx, paths)| ip::IpRouteDetails {
                    route: ip::IpRoute {
                        table_id: key.table_id,
                        stats_index: 0,
                        prefix: ip_types::Prefix::from(*pfx),
                        paths: paths.iter().map(path_to_api).collect(),
                    },
                })
                .collect()
        });
        self.d(|ctx, m: ip::IpAddressDump| {
            let Some(i) = ctx.state.interface(m.sw_if_index) else {
                return Vec::new();
            };
            i.addresses
                .iter()
                .filter(|a| matches!(a, IpNet::V6(_)) == m.is_ipv6)
                .map(|a| ip::IpAddressDetails {
                    sw_if_index: m.sw_if_index,
                    prefix: ip_types::Prefix::from(*a),
                })
                .collect()
        });
        self.w(|ctx, m: ip_neighbor::IpNeighborAddDel| {
            let n = m.neighbor;
            let retval = ctx.state.neighbor_add_del(
                m.is_add,
                n.sw_if_index,
                IpAddr::from(n.ip_address),
                n.mac_address.0,
                n.flags.0,
            );
            ip_neighbor::IpNeighborAddDelReply {
                retval,
                stats_index: NONE,
            }
        });
        self.d(|ctx, m: ip_neighbor::IpNeighborDump| {
            let v6 = m.af == ip_types::AddressFamily::AddressIp6;
            ctx.state
                .neighbors
                .iter()
                .filter(|((sw, ip), _)| {
                    (m.sw_if_index == NONE || *sw == m.sw_if_index) && ip.is_ipv6() == v6
                })
                .map(|((sw, ip), n)| ip_neighbor::IpNeighborDetails {
                    age: 0.0,
                    neighbor: ip_neighbor::IpNeighbor {
                        sw_if_index: *sw,
                        flags: ip_neighbor::IpNeighborFlags(n.flags),
                        mac_address: ethernet_types::MacAddress(n.mac_bytes),
                        ip_address: ip_types::Address::from(*ip),
                    },
                })
                .collect()
        });
    }

    fn register_cnat(&mut self) {
        self.w(
            |ctx, m: cnat::FeatureCnatEnableDisable| cnat::FeatureCnatEnableDisableReply {
                retval: ctx.state.cnat_enable(m.sw_if_index, m.enable_disable),
            },
        );
        self.w(|ctx, m: cnat::CnatTranslationUpdate| {
            let t = m.translation;
            let tr = Translation {
                vip: endpoint_from_api(&t.vip),
                proto: t.ip_proto.to_raw(),
                is_real_ip: t.is_real_ip,
                flags: t.flags,
                lb_type: t.lb_type.to_raw(),
                flow_hash_config: t.flow_hash_config.0,
                paths: t
                    .paths
                    .iter()
                    .map(|p| TranslationPath {
                        src: endpoint_from_api(&p.src_ep),
                        dst: endpoint_from_api(&p.dst_ep),
                        flags: p.flags,
                    })
                    .collect(),
            };
            let id = ctx.state.cnat_translation_update(tr);
            cnat::CnatTranslationUpdateReply { retval: 0, id }
        });
        self.w(
            |ctx, m: cnat::CnatTranslationDel| cnat::CnatTranslationDelReply {
                retval: ctx.state.cnat_translation_del(m.id),
            },
        );
        self.d(|ctx, _: cnat::CnatTranslationDump| {
            ctx.state
                .cnat
                .translations
                .iter()
                .map(|(id, t)| cnat::CnatTranslationDetails {
                    translation: translation_to_api(id, t),
                })
                .collect()
        });
        self.w(
            |ctx, _: cnat::CnatSessionPurge| cnat::CnatSessionPurgeReply {
                retval: ctx.state.cnat_session_purge(),
            },
        );
        self.w(|ctx, m: cnat::CnatSetSnatAddresses| {
            let (ip4, ip6) = snat_addresses(m.snat_ip4, m.snat_ip6);
            cnat::CnatSetSnatAddressesReply {
                retval: ctx.state.cnat_set_snat(ip4, ip6, m.sw_if_index),
            }
        });
        // v2 adds forward and return FIB indexes; the simulator has one table.
        self.w(|ctx, m: cnat::CnatSetSnatAddressesV2| {
            let (ip4, ip6) = snat_addresses(m.snat_ip4, m.snat_ip6);
            cnat::CnatSetSnatAddressesV2Reply {
                retval: ctx.state.cnat_set_snat(ip4, ip6, m.sw_if_index),
            }
        });
        self.r(
            |ctx, _: cnat::CnatGetSnatAddresses| match &ctx.state.cnat.snat {
                Some(s) => cnat::CnatGetSnatAddressesReply {
                    retval: 0,
                    id: 0,
                    snat_ip4: match s.ip4 {
                        Some(IpAddr::V4(a)) => a.into(),
                        _ => Default::default(),
                    },
                    snat_ip6: match s.ip6 {
                        Some(IpAddr::V6(a)) => a.into(),
                        _ => Default::default(),
                    },
                    sw_if_index: s.sw_if_index,
                },
                None => cnat::CnatGetSnatAddressesReply {
                    retval: rv::FEATURE_DISABLED,
                    ..Default::default()
                },
            },
        );
        self.w(
            |ctx, m: cnat::CnatSetSnatPolicy| cnat::CnatSetSnatPolicyReply {
                retval: ctx.state.cnat_set_snat_policy(m.policy.to_raw()),
            },
        );
        self.w(|ctx, m: cnat::CnatSnatPolicyAddDelExcludePfx| {
            let retval = match IpNet::try_from(m.prefix) {
                Ok(p) => ctx.state.cnat_snat_exclude(m.is_add != 0, p),
                Err(_) => rv::INVALID_VALUE,
            };
            cnat::CnatSnatPolicyAddDelExcludePfxReply { retval }
        });
        self.w(
            |ctx, m: cnat::CnatSnatPolicyAddDelIf| cnat::CnatSnatPolicyAddDelIfReply {
                retval: ctx
                    .state
                    .cnat_snat_if(m.sw_if_index, m.is_add != 0, m.table.to_raw()),
            },
        );
    }

    fn register_npol(&mut self) {
        self.w(|ctx, m: api::NpolIpsetCreate| api::NpolIpsetCreateReply {
            retval: 0,
            set_id: ctx.state.npol_ipset_create(ipset_type(m.type_)),
        });
        self.w(|ctx, m: api::NpolIpsetAddDelMembers| {
            let kind = ctx.state.npol.ipsets.get(m.set_id).map(|s| s.kind);
            let retval = match kind {
                None => rv::NO_SUCH_ENTRY,
                Some(kind) => {
                    let members = m.members.iter().map(|x| member_from_api(kind, x)).collect();
                    ctx.state.npol_ipset_add_del(m.set_id, m.is_add, members)
                }
            };
            api::NpolIpsetAddDelMembersReply { retval }
        });
        self.w(|ctx, m: api::NpolIpsetDelete| api::NpolIpsetDeleteReply {
            retval: ctx.state.npol_ipset_delete(m.set_id),
        });
        self.w(|ctx, m: api::NpolRuleCreate| match rule_from_api(&m.rule) {
            Ok(r) => api::NpolRuleCreateReply {
                retval: 0,
                rule_id: ctx.state.npol_rule_put(None, r),
            },
            Err(retval) => api::NpolRuleCreateReply {
                retval,
                rule_id: NONE,
            },
        });
        self.w(|ctx, m: api::NpolRuleUpdate| {
            let retval = match rule_from_api(&m.rule) {
                Ok(r) => {
                    ctx.state.npol_rule_put(Some(m.rule_id), r);
                    0
                }
                Err(e) => e,
            };
            api::NpolRuleUpdateReply { retval }
        });
        self.w(|ctx, m: api::NpolRuleDelete| api::NpolRuleDeleteReply {
            retval: ctx.state.npol_rule_delete(m.rule_id),
        });
        self.w(|ctx, m: api::NpolPolicyCreate| api::NpolPolicyCreateReply {
            retval: 0,
            policy_id: ctx.state.npol_policy_put(None, policy_from_api(&m.rules)),
        });
        self.w(|ctx, m: api::NpolPolicyUpdate| {
            ctx.state
                .npol_policy_put(Some(m.policy_id), policy_from_api(&m.rules));
            api::NpolPolicyUpdateReply { retval: 0 }
        });
        self.w(|ctx, m: api::NpolPolicyDelete| api::NpolPolicyDeleteReply {
            retval: ctx.state.npol_policy_delete(m.policy_id),
        });
        self.w(|ctx, m: api::NpolConfigurePolicies| {
            let retval = match config_from_api(&m) {
                Ok(cfg) => ctx.state.npol_configure(m.sw_if_index, cfg),
                // VPP would read past the id list; refuse instead.
                Err(e) => e,
            };
            api::NpolConfigurePoliciesReply { retval }
        });
    }
}

impl Dispatch {
    fn register_acl(&mut self) {
        self.w(|ctx, m: aclapi::AclAddReplace| {
            let rules: Result<Vec<_>, i32> = m.r.iter().map(acl_rule_from_api).collect();
            let (retval, acl_index) = match rules {
                Ok(rules) => ctx.state.acl_add_replace(m.acl_index, m.tag, rules),
                Err(e) => (e, NONE),
            };
            aclapi::AclAddReplaceReply { acl_index, retval }
        });
        self.w(|ctx, m: aclapi::AclDel| aclapi::AclDelReply {
            retval: ctx.state.acl_del(m.acl_index),
        });
        self.w(
            |ctx, m: aclapi::AclInterfaceSetAclList| aclapi::AclInterfaceSetAclListReply {
                retval: ctx
                    .state
                    .acl_set_interface_list(m.sw_if_index, m.n_input, &m.acls),
            },
        );
        self.d(|ctx, m: aclapi::AclDump| {
            ctx.state
                .acl
                .acls
                .iter()
                .filter(|(i, _)| m.acl_index == NONE || *i == m.acl_index)
                .map(|(i, a)| aclapi::AclDetails {
                    acl_index: i,
                    tag: a.tag.clone(),
                    r: a.rules.iter().map(acl_rule_to_api).collect(),
                })
                .collect()
        });
        self.d(|ctx, m: aclapi::AclInterfaceListDump| {
            let acl = &ctx.state.acl;
            let ifs: std::collections::BTreeSet<u32> =
                acl.input.keys().chain(acl.output.keys()).copied().collect();
            ifs.into_iter()
                .filter(|i| m.sw_if_index == NONE || *i == m.sw_if_index)
                .map(|i| {
                    let input = acl.input.get(&i).cloned().unwrap_or_default();
                    let output = acl.output.get(&i).cloned().unwrap_or_default();
                    aclapi::AclInterfaceListDetails {
                        sw_if_index: i,
                        n_input: u8::try_from(input.len()).unwrap_or(u8::MAX),
                        acls: input.into_iter().chain(output).collect(),
                    }
                })
                .collect()
        });
    }
}

fn acl_rule_from_api(r: &acl_types::AclRule) -> Result<crate::acl::AclRule, i32> {
    let src = IpNet::try_from(r.src_prefix).map_err(|_| crate::acl::INVALID_SRC_ADDRESS)?;
    let dst = IpNet::try_from(r.dst_prefix).map_err(|_| crate::acl::INVALID_DST_ADDRESS)?;
    Ok(crate::acl::AclRule {
        action: r.is_permit.to_raw(),
        src,
        dst,
        proto: r.proto.to_raw(),
        sport_or_type: (r.srcport_or_icmptype_first, r.srcport_or_icmptype_last),
        dport_or_code: (r.dstport_or_icmpcode_first, r.dstport_or_icmpcode_last),
    })
}

fn acl_rule_to_api(r: &crate::acl::AclRule) -> acl_types::AclRule {
    acl_types::AclRule {
        is_permit: acl_types::AclAction::from_raw(r.action)
            .unwrap_or(acl_types::AclAction::AclActionApiDeny),
        src_prefix: ip_types::Prefix::from(r.src),
        dst_prefix: ip_types::Prefix::from(r.dst),
        proto: ip_types::IpProto::from_raw(r.proto).unwrap_or(ip_types::IpProto::IpApiProtoHopopt),
        srcport_or_icmptype_first: r.sport_or_type.0,
        srcport_or_icmptype_last: r.sport_or_type.1,
        dstport_or_icmpcode_first: r.dport_or_code.0,
        dstport_or_icmpcode_last: r.dport_or_code.1,
        tcp_flags_mask: 0,
        tcp_flags_value: 0,
    }
}

impl Default for Dispatch {
    fn default() -> Self {
        Self::new()
    }
}

fn split(r: Result<u32, i32>) -> (i32, u32) {
    match r {
        Ok(i) => (0, i),
        Err(e) => (e, NONE),
    }
}

/// `get_first_msg_id`: the id of the first message of an API module (`npol_4f3f8c5e` style
/// names carry a CRC suffix; the module is what precedes it).
fn first_msg_id(name: &str) -> memclnt::GetFirstMsgIdReply {
    let module = name.rsplit_once('_').map_or(name, |(m, _)| m);
    let table = MessageTable::sequential(vpp_bindings::all_messages());
    let first = vpp_bindings::all_messages()
        .find(|m| m.module == module || m.module == name)
        .and_then(|m| table.id(m.name_crc));
    match first {
        Some(id) => memclnt::GetFirstMsgIdReply {
            retval: 0,
            first_msg_id: id,
        },
        None => memclnt::GetFirstMsgIdReply {
            retval: rv::UNSPECIFIED,
            first_msg_id: u16::MAX,
        },
    }
}

fn sw_interface_details(idx: u32, i: &Interface) -> interface::SwInterfaceDetails {
    let mut flags = 0;
    if i.admin_up {
        flags |= 1;
    }
    if i.link_up {
        flags |= 2;
    }
    interface::SwInterfaceDetails {
        sw_if_index: idx,
        sup_sw_if_index: idx,
        l2_address: ethernet_types::MacAddress(i.mac_bytes),
        flags: interface_types::IfStatusFlags(flags),
        // VPP's IF_API_TYPE_P2P is for point-to-point Ethernet sub-interfaces; tunnels and
        // TUN taps are hardware interfaces too, told apart only by their zero l2_address.
        type_: interface_types::IfType::IfApiTypeHardware,
        link_duplex: interface_types::LinkDuplex::LinkDuplexApiFull,
        link_mtu: i.link_mtu,
        mtu: i.mtu,
        interface_name: i.name.clone(),
        interface_dev_type: i.kind.dev_type().into(),
        tag: i.tag.clone(),
        ..Default::default()
    }
}

fn path_from_api(p: &fib_types::FibPath) -> Path {
    Path {
        sw_if_index: p.sw_if_index,
        table_id: p.table_id,
        rpf_id: p.rpf_id,
        weight: p.weight,
        preference: p.preference,
        path_type: p.type_.to_raw(),
        flags: p.flags.0,
        proto: p.proto.to_raw(),
        nh: p.nh.address.0.to_vec(),
        via_label: p.nh.via_label,
        obj_id: p.nh.obj_id,
        classify_table_index: p.nh.classify_table_index,
    }
}

fn path_to_api(p: &Path) -> fib_types::FibPath {
    let mut nh = [0u8; 16];
    for (d, s) in nh.iter_mut().zip(&p.nh) {
        *d = *s;
    }
    fib_types::FibPath {
        sw_if_index: p.sw_if_index,
        table_id: p.table_id,
        rpf_id: p.rpf_id,
        weight: p.weight,
        preference: p.preference,
        type_: fib_types::FibPathType::from_raw(p.path_type)
            .unwrap_or(fib_types::FibPathType::FibApiPathTypeNormal),
        flags: fib_types::FibPathFlags(p.flags),
        proto: fib_types::FibPathNhProto::from_raw(p.proto)
            .unwrap_or(fib_types::FibPathNhProto::FibApiPathNhProtoIp4),
        nh: fib_types::FibPathNh {
            address: ip_types::AddressUnion(nh),
            via_label: p.via_label,
            obj_id: p.obj_id,
            classify_table_index: p.classify_table_index,
        },
        ..Default::default()
    }
}

/// cnat's SNAT addresses as set: an unspecified address means none for that family.
fn snat_addresses(
    ip4: vpp_bindings::gen::ip_types::Ip4Address,
    ip6: vpp_bindings::gen::ip_types::Ip6Address,
) -> (Option<IpAddr>, Option<IpAddr>) {
    let ip4 = std::net::Ipv4Addr::from(ip4);
    let ip6 = std::net::Ipv6Addr::from(ip6);
    (
        (!ip4.is_unspecified()).then_some(IpAddr::V4(ip4)),
        (!ip6.is_unspecified()).then_some(IpAddr::V6(ip6)),
    )
}

fn endpoint_from_api(e: &cnat::CnatEndpoint) -> Endpoint {
    Endpoint {
        addr: IpAddr::from(e.addr),
        sw_if_index: e.sw_if_index,
        if_af: e.if_af.to_raw(),
        port: e.port,
    }
}

fn endpoint_to_api(e: &Endpoint) -> cnat::CnatEndpoint {
    cnat::CnatEndpoint {
        addr: ip_types::Address::from(e.addr),
        sw_if_index: e.sw_if_index,
        if_af: ip_types::AddressFamily::from_raw(e.if_af)
            .unwrap_or(ip_types::AddressFamily::AddressIp4),
        port: e.port,
    }
}

fn translation_to_api(id: u32, t: &Translation) -> cnat::CnatTranslation {
    cnat::CnatTranslation {
        vip: endpoint_to_api(&t.vip),
        id,
        ip_proto: ip_types::IpProto::from_raw(t.proto)
            .unwrap_or(ip_types::IpProto::IpApiProtoReserved),
        // VPP's details leave is_real_ip, flags and flow_hash_config at zero.
        is_real_ip: 0,
        flags: 0,
        lb_type: cnat::CnatLbType::from_raw(t.lb_type)
            .unwrap_or(cnat::CnatLbType::CnatLbTypeDefault),
        flow_hash_config: ip::IpFlowHashConfigV2(0),
        paths: t
            .paths
            .iter()
            .map(|p| cnat::CnatEndpointTuple {
                dst_ep: endpoint_to_api(&p.dst),
                src_ep: endpoint_to_api(&p.src),
                flags: p.flags,
            })
            .collect(),
    }
}

fn ipset_type(t: api::NpolIpsetType) -> IpSetType {
    match t {
        api::NpolIpsetType::NpolIp => IpSetType::Ip,
        api::NpolIpsetType::NpolIpAndPort => IpSetType::IpAndPort,
        api::NpolIpsetType::NpolNet => IpSetType::Net,
    }
}

/// `ip_prefix_decode2`: a length beyond the family or host bits set is `IP_PREFIX_INVALID`.
fn strict_prefix(p: &ip_types::Prefix) -> Result<IpNet, i32> {
    let n = IpNet::try_from(*p).map_err(|_| rv::IP_PREFIX_INVALID)?;
    if n.trunc() != n {
        return Err(rv::IP_PREFIX_INVALID);
    }
    Ok(n)
}

/// Decodes one member the way the set's type says (the union carries no tag).
fn member_from_api(kind: IpSetType, m: &api::NpolIpsetMember) -> Result<IpSetMember, i32> {
    match kind {
        IpSetType::Ip => m
            .val
            .address()
            .map(|a| IpSetMember::Ip(a.into()))
            .map_err(|_| rv::UNSPECIFIED),
        IpSetType::Net => {
            strict_prefix(&m.val.prefix().map_err(|_| rv::UNSPECIFIED)?).map(IpSetMember::Net)
        }
        IpSetType::IpAndPort => {
            let t = m.val.tuple().map_err(|_| rv::UNSPECIFIED)?;
            Ok(IpSetMember::IpAndPort {
                addr: t.address.into(),
                proto: t.l4_proto,
                port: t.port,
            })
        }
    }
}

fn rule_from_api(r: &api::NpolRule) -> Result<Rule<u32>, i32> {
    let action = match r.action {
        api::NpolRuleAction::NpolAllow => RuleAction::Allow,
        api::NpolRuleAction::NpolDeny => RuleAction::Deny,
        api::NpolRuleAction::NpolLog => RuleAction::Log,
        api::NpolRuleAction::NpolPass => RuleAction::Pass,
    };
    let filter = |f: &api::NpolRuleFilter| Filter {
        kind: match f.type_ {
            api::NpolRuleFilterType::NpolRuleFilterNoneType => FilterType::None,
            api::NpolRuleFilterType::NpolRuleFilterIcmpType => FilterType::IcmpType,
            api::NpolRuleFilterType::NpolRuleFilterIcmpCode => FilterType::IcmpCode,
            api::NpolRuleFilterType::NpolRuleFilterL4Proto => FilterType::L4Proto,
        },
        value: f.value,
        should_match: f.should_match != 0,
    };
    let filters = [
        filter(&r.filters[0]),
        filter(&r.filters[1]),
        filter(&r.filters[2]),
    ];
    let mut entries = Vec::with_capacity(r.matches.len());
    for e in &r.matches {
        let data = match e.type_ {
            api::NpolEntryType::NpolCidr => {
                EntryData::Cidr(strict_prefix(&e.data.cidr().map_err(|_| rv::UNSPECIFIED)?)?)
            }
            api::NpolEntryType::NpolPortRange => {
                let p = e.data.port_range().map_err(|_| rv::UNSPECIFIED)?;
                EntryData::PortRange {
                    start: p.start,
                    end: p.end,
                }
            }
            api::NpolEntryType::NpolPortIpSet => {
                EntryData::PortIpSet(e.data.set_id().map_err(|_| rv::UNSPECIFIED)?.set_id)
            }
            api::NpolEntryType::NpolIpSet => {
                EntryData::IpSet(e.data.set_id().map_err(|_| rv::UNSPECIFIED)?.set_id)
            }
        };
        entries.push(Entry {
            is_src: e.is_src,
            is_not: e.is_not,
            data,
        });
    }
    Ok(Rule {
        action,
        filters,
        entries,
    })
}

fn policy_from_api(items: &[api::NpolPolicyItem]) -> Policy<u32> {
    let mut p = Policy {
        inbound: Vec::new(),
        outbound: Vec::new(),
    };
    for i in items {
        if i.is_inbound {
            p.inbound.push(i.rule_id);
        } else {
            p.outbound.push(i.rule_id);
        }
    }
    p
}

fn default_from_api(d: api::NpolPolicyDefault) -> PolicyDefault {
    match d {
        api::NpolPolicyDefault::NpolDefaultAllow => PolicyDefault::Allow,
        api::NpolPolicyDefault::NpolDefaultDeny => PolicyDefault::Deny,
        api::NpolPolicyDefault::NpolDefaultPass => PolicyDefault::Pass,
    }
}

fn config_from_api(m: &api::NpolConfigurePolicies) -> Result<InterfaceConfig<u32>, i32> {
    let rx = m.num_rx_policies as usize;
    let tx = m.num_tx_policies as usize;
    let ids = &m.policy_ids;
    if rx.checked_add(tx).is_none_or(|n| n > ids.len()) {
        return Err(rv::INVALID_VALUE);
    }
    Ok(InterfaceConfig {
        rx_policies: ids[..rx].to_vec(),
        tx_policies: ids[rx..rx + tx].to_vec(),
        profiles: ids[rx + tx..].to_vec(),
        invert_rx_tx: m.invert_rx_tx != 0,
        policy_default_rx: default_from_api(m.policy_default_rx),
        policy_default_tx: default_from_api(m.policy_default_tx),
        profile_default_rx: default_from_api(m.profile_default_rx),
        profile_default_tx: default_from_api(m.profile_default_tx),
    })
}

/// The `sw_interface_event` for one subscriber.
pub fn interface_event(e: &crate::state::InterfaceEvent, pid: u32) -> interface::SwInterfaceEvent {
    let mut flags = 0;
    if e.admin_up {
        flags |= 1;
    }
    if e.link_up {
        flags |= 2;
    }
    interface::SwInterfaceEvent {
        pid,
        sw_if_index: e.sw_if_index,
        flags: interface_types::IfStatusFlags(flags),
        deleted: e.deleted,
    }
}

/// The handshake reply: client index and the whole message table.
pub fn sockclnt_create_reply(table: &MessageTable, index: u32) -> memclnt::SockclntCreateReply {
    memclnt::SockclntCreateReply {
        response: 0,
        index,
        message_table: table
            .entries()
            .into_iter()
            .map(|(index, name)| memclnt::MessageTableEntry {
                index,
                name: name.to_string(),
            })
            .collect(),
    }
}

pub use memclnt::{SockclntCreate, SockclntDelete, SockclntDeleteReply};
