//! Protobuf → model conversion: the one place where Felix's wire types become model values.
//!
//! Every message is destructured field by field (no `..`), so a field added to the proto
//! breaks the build here instead of being dropped unnoticed. An invalid policy, profile or
//! endpoint becomes its fail-closed form (deny, inactive) carrying the reason; it is never
//! dropped and never turned into an allow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_model::update::Update;
use calico_model::{
    Action, EncapMode, Encapsulation, GlobalBgpConfig, HostEndpoint, HostEndpointId, HostMetadata,
    IcmpMatch, Invalid, IpPoolType, IpSet, IpSetId, IpSetKind, IpSetMember, IpVersion, IpamPool,
    MacAddr, NamespaceId, NatInfo, Policy, PolicyId, PortRange, Profile, ProfileId, Route,
    RouteTypes, Rule, Service, ServiceAccountId, ServiceId, ServicePort, TierDefaultAction,
    TierInfo, TunnelType, Vtep, WireguardEndpoint, WorkloadEndpoint, WorkloadEndpointId,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tracing::{error, warn};

use super::proto;
use super::proto::to_dataplane::Payload;

/// Why a field could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{field}: bad CIDR {value:?}")]
    BadCidr { field: &'static str, value: String },
    #[error("{field}: bad IP address {value:?}")]
    BadAddr { field: &'static str, value: String },
    #[error("{field}: bad port range {first}-{last}")]
    BadPortRange {
        field: &'static str,
        first: i32,
        last: i32,
    },
    #[error("{field}: bad port {value}")]
    BadPort { field: &'static str, value: i32 },
    #[error("{field}: unknown protocol {value:?}")]
    UnknownProtocol { field: &'static str, value: String },
    #[error("unknown rule action {0:?}")]
    UnknownAction(String),
    #[error("unknown IP version {0}")]
    UnknownIpVersion(i32),
    #[error("{field}: ICMP type/code {value} out of range")]
    BadIcmp { field: &'static str, value: i32 },
    #[error("{field}: bad MAC address {value:?}")]
    BadMac { field: &'static str, value: String },
    #[error("{field}: unknown value {value:?}")]
    UnknownEnum { field: &'static str, value: String },
    #[error("missing {0}")]
    Missing(&'static str),
}

/// Why a whole message produced no update. Counted by the caller; never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// No payload, or one this build does not know (e.g. v3.32's per-family host metadata).
    #[error("message without a known payload")]
    NoPayload,
    /// The object's key, or an object that has no fail-closed form, could not be converted.
    #[error("{kind} {key}: {error}")]
    Invalid {
        kind: &'static str,
        key: String,
        error: ConvertError,
    },
}

fn skip(kind: &'static str, key: impl Into<String>, error: ConvertError) -> Skip {
    let key = key.into();
    error!(kind, key = %key, %error, "Felix message could not be converted; skipped");
    Skip::Invalid { kind, key, error }
}

/// Converts one envelope into a model update.
pub fn convert(msg: proto::ToDataplane) -> Result<Update, Skip> {
    let proto::ToDataplane {
        sequence_number: _,
        payload,
    } = msg;
    let Some(payload) = payload else {
        return Err(Skip::NoPayload);
    };
    Ok(match payload {
        Payload::InSync(proto::InSync {}) => Update::InSync,
        Payload::ConfigUpdate(proto::ConfigUpdate {
            config,
            source_to_raw_config: _,
            message: _,
        }) => Update::Config(config),

        Payload::IpsetUpdate(u) => convert_ipset_update(u)?,
        Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id,
            added_members,
            removed_members,
        }) => {
            // A member we cannot read cannot be in the set, so a bad removal is exact to skip;
            // a bad addition means we no longer know the set: withdraw it (fail closed).
            let removed = parse_members(&id, &removed_members).unwrap_or_else(|good| good);
            match parse_members(&id, &added_members) {
                Ok(added) => Update::IpSetDelta {
                    id: IpSetId(id),
                    added,
                    removed,
                },
                Err(_) => withdraw_ipset(id),
            }
        }
        Payload::IpsetRemove(proto::IpSetRemove { id }) => Update::IpSetRemove { id: IpSetId(id) },

        Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate { id, profile }) => {
            let id = profile_id(id).map_err(|e| skip("active_profile_update", "?", e))?;
            let profile = convert_profile(&id, profile);
            Update::ProfileUpdate { id, profile }
        }
        Payload::ActiveProfileRemove(proto::ActiveProfileRemove { id }) => Update::ProfileRemove {
            id: profile_id(id).map_err(|e| skip("active_profile_remove", "?", e))?,
        },
        Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate { id, policy }) => {
            let id = policy_id(id).map_err(|e| skip("active_policy_update", "?", e))?;
            let policy = convert_policy(&id, policy);
            Update::PolicyUpdate { id, policy }
        }
        Payload::ActivePolicyRemove(proto::ActivePolicyRemove { id }) => Update::PolicyRemove {
            id: policy_id(id).map_err(|e| skip("active_policy_remove", "?", e))?,
        },

        Payload::WorkloadEndpointUpdate(proto::WorkloadEndpointUpdate { id, endpoint }) => {
            let id = workload_id(id).map_err(|e| skip("workload_endpoint_update", "?", e))?;
            let endpoint = convert_workload(&id, endpoint);
            Update::WorkloadEndpointUpdate { id, endpoint }
        }
        Payload::WorkloadEndpointRemove(proto::WorkloadEndpointRemove { id }) => {
            Update::WorkloadEndpointRemove {
                id: workload_id(id).map_err(|e| skip("workload_endpoint_remove", "?", e))?,
            }
        }
        Payload::HostEndpointUpdate(proto::HostEndpointUpdate { id, endpoint }) => {
            let id = host_id(id).map_err(|e| skip("host_endpoint_update", "?", e))?;
            let endpoint = convert_host_endpoint(&id, endpoint);
            Update::HostEndpointUpdate { id, endpoint }
        }
        Payload::HostEndpointRemove(proto::HostEndpointRemove { id }) => {
            Update::HostEndpointRemove {
                id: host_id(id).map_err(|e| skip("host_endpoint_remove", "?", e))?,
            }
        }

        Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
            hostname,
            ipv4_addr,
            ipv6_addr,
            asnumber,
            labels,
        }) => {
            let metadata = (|| {
                Ok::<_, ConvertError>(HostMetadata {
                    ipv4_addr: opt_v4_net("ipv4_addr", &ipv4_addr)?,
                    ipv6_addr: opt_v6_net("ipv6_addr", &ipv6_addr)?,
                    asnumber,
                    labels,
                })
            })()
            .map_err(|e| skip("host_metadata_update", hostname.clone(), e))?;
            Update::HostMetadataUpdate { hostname, metadata }
        }
        // The remove repeats the IPv4 address for Felix's own bookkeeping; the host name is
        // the key.
        Payload::HostMetadataRemove(proto::HostMetadataRemove {
            hostname,
            ipv4_addr: _,
        }) => Update::HostMetadataRemove { hostname },
        Payload::HostMetadataV6Update(proto::HostMetadataV6Update {
            hostname,
            ipv6_addr,
        }) => Update::HostIpv6Update {
            ipv6_addr: opt_v6_net("ipv6_addr", &ipv6_addr)
                .map_err(|e| skip("host_metadata_v6_update", hostname.clone(), e))?,
            hostname,
        },
        Payload::HostMetadataV6Remove(proto::HostMetadataV6Remove {
            hostname,
            ipv6_addr: _,
        }) => Update::HostIpv6Remove { hostname },
        Payload::HostMetadataV4v6Update(proto::HostMetadataV4v6Update {
            hostname,
            ipv4_addr,
            ipv6_addr,
            asnumber,
            labels,
        }) => {
            let metadata = (|| {
                Ok::<_, ConvertError>(HostMetadata {
                    ipv4_addr: opt_v4_net("ipv4_addr", &ipv4_addr)?,
                    ipv6_addr: opt_v6_net("ipv6_addr", &ipv6_addr)?,
                    asnumber,
                    labels,
                })
            })()
            .map_err(|e| skip("host_metadata_v4v6_update", hostname.clone(), e))?;
            Update::HostRecordUpdate { hostname, metadata }
        }
        Payload::HostMetadataV4v6Remove(proto::HostMetadataV4v6Remove {
            hostname,
            ipv4_addr: _,
        }) => Update::HostRecordRemove { hostname },

        Payload::IpamPoolUpdate(proto::IpamPoolUpdate { id, pool }) => {
            let pool = convert_pool(pool).map_err(|e| skip("ipam_pool_update", id.clone(), e))?;
            Update::IpamPoolUpdate { id, pool }
        }
        Payload::IpamPoolRemove(proto::IpamPoolRemove { id }) => Update::IpamPoolRemove { id },

        Payload::ServiceAccountUpdate(proto::ServiceAccountUpdate { id, labels }) => {
            Update::ServiceAccountUpdate {
                id: service_account_id(id).map_err(|e| skip("service_account_update", "?", e))?,
                labels,
            }
        }
        Payload::ServiceAccountRemove(proto::ServiceAccountRemove { id }) => {
            Update::ServiceAccountRemove {
                id: service_account_id(id).map_err(|e| skip("service_account_remove", "?", e))?,
            }
        }
        Payload::NamespaceUpdate(proto::NamespaceUpdate { id, labels }) => {
            Update::NamespaceUpdate {
                id: namespace_id(id).map_err(|e| skip("namespace_update", "?", e))?,
                labels,
            }
        }
        Payload::NamespaceRemove(proto::NamespaceRemove { id }) => Update::NamespaceRemove {
            id: namespace_id(id).map_err(|e| skip("namespace_remove", "?", e))?,
        },

        Payload::RouteUpdate(u) => {
            let key = u.dst.clone();
            Update::RouteUpdate {
                route: Route::try_from(u).map_err(|e| skip("route_update", key, e))?,
            }
        }
        Payload::RouteRemove(proto::RouteRemove { dst }) => Update::RouteRemove {
            dst: parse_net("dst", &dst).map_err(|e| skip("route_remove", dst.clone(), e))?,
        },

        Payload::VtepUpdate(u) => {
            let node = u.node.clone();
            let vtep = convert_vtep(u).map_err(|e| skip("vtep_update", node.clone(), e))?;
            Update::VtepUpdate { node, vtep }
        }
        Payload::VtepRemove(proto::VxlanTunnelEndpointRemove { node }) => {
            Update::VtepRemove { node }
        }

        Payload::WireguardEndpointUpdate(proto::WireguardEndpointUpdate {
            hostname,
            public_key,
            interface_ipv4_addr,
        }) => {
            let addr = opt_addr("interface_ipv4_addr", &interface_ipv4_addr)
                .map_err(|e| skip("wireguard_endpoint_update", hostname.clone(), e))?;
            Update::WireguardUpdate {
                hostname,
                endpoint: WireguardEndpoint {
                    public_key,
                    interface_addr: addr,
                },
            }
        }
        Payload::WireguardEndpointRemove(proto::WireguardEndpointRemove { hostname }) => {
            Update::WireguardRemove { hostname }
        }
        Payload::WireguardEndpointV6Update(proto::WireguardEndpointV6Update {
            hostname,
            public_key_v6,
            interface_ipv6_addr,
        }) => {
            let addr = opt_addr("interface_ipv6_addr", &interface_ipv6_addr)
                .map_err(|e| skip("wireguard_endpoint_v6_update", hostname.clone(), e))?;
            Update::WireguardV6Update {
                hostname,
                endpoint: WireguardEndpoint {
                    public_key: public_key_v6,
                    interface_addr: addr,
                },
            }
        }
        Payload::WireguardEndpointV6Remove(proto::WireguardEndpointV6Remove { hostname }) => {
            Update::WireguardV6Remove { hostname }
        }

        Payload::GlobalBgpConfigUpdate(u) => Update::GlobalBgpConfig(
            GlobalBgpConfig::try_from(u).map_err(|e| skip("global_bgp_config_update", "", e))?,
        ),
        Payload::Encapsulation(proto::Encapsulation {
            ipip_enabled,
            vxlan_enabled,
            vxlan_enabled_v6,
            no_encap_enabled,
        }) => Update::Encapsulation(Encapsulation {
            ipip_enabled,
            vxlan_enabled,
            vxlan_enabled_v6,
            no_encap_enabled,
        }),

        Payload::ServiceUpdate(u) => {
            let key = format!("{}/{}", u.namespace, u.name);
            let id = ServiceId {
                namespace: u.namespace.clone(),
                name: u.name.clone(),
            };
            let service = Service::try_from(u).map_err(|e| skip("service_update", key, e))?;
            Update::ServiceUpdate { id, service }
        }
        Payload::ServiceRemove(proto::ServiceRemove { name, namespace }) => Update::ServiceRemove {
            id: ServiceId { namespace, name },
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Ids

fn profile_id(id: Option<proto::ProfileId>) -> Result<ProfileId, ConvertError> {
    let proto::ProfileId { name } = id.ok_or(ConvertError::Missing("profile id"))?;
    Ok(ProfileId(name))
}

impl From<proto::PolicyId> for PolicyId {
    fn from(id: proto::PolicyId) -> Self {
        let proto::PolicyId {
            name,
            namespace,
            kind,
        } = id;
        PolicyId {
            name,
            namespace,
            kind,
        }
    }
}

fn policy_id(id: Option<proto::PolicyId>) -> Result<PolicyId, ConvertError> {
    Ok(id.ok_or(ConvertError::Missing("policy id"))?.into())
}

fn workload_id(id: Option<proto::WorkloadEndpointId>) -> Result<WorkloadEndpointId, ConvertError> {
    let proto::WorkloadEndpointId {
        orchestrator_id,
        workload_id,
        endpoint_id,
    } = id.ok_or(ConvertError::Missing("workload endpoint id"))?;
    Ok(WorkloadEndpointId {
        orchestrator_id,
        workload_id,
        endpoint_id,
    })
}

fn host_id(id: Option<proto::HostEndpointId>) -> Result<HostEndpointId, ConvertError> {
    let proto::HostEndpointId { endpoint_id } =
        id.ok_or(ConvertError::Missing("host endpoint id"))?;
    Ok(HostEndpointId(endpoint_id))
}

fn service_account_id(
    id: Option<proto::ServiceAccountId>,
) -> Result<ServiceAccountId, ConvertError> {
    let proto::ServiceAccountId { namespace, name } =
        id.ok_or(ConvertError::Missing("service account id"))?;
    Ok(ServiceAccountId { namespace, name })
}

fn namespace_id(id: Option<proto::NamespaceId>) -> Result<NamespaceId, ConvertError> {
    let proto::NamespaceId { name } = id.ok_or(ConvertError::Missing("namespace id"))?;
    Ok(NamespaceId(name))
}

// ---------------------------------------------------------------------------------------------
// IP sets

/// Parses members. If any member cannot be read, logs it (with the set and a count) and
/// returns the readable ones as the error: the caller decides whether leaving members out is
/// exact (a removal) or must fail closed (a set whose content is no longer known).
fn parse_members(set: &str, members: &[String]) -> Result<Vec<IpSetMember>, Vec<IpSetMember>> {
    let mut out = Vec::with_capacity(members.len());
    let mut bad = 0usize;
    for m in members {
        match m.parse::<IpSetMember>() {
            Ok(member) => out.push(member),
            Err(e) => {
                if bad == 0 {
                    error!(ipset = %set, error = %e, "unparseable IP set member");
                }
                bad += 1;
            }
        }
    }
    match bad {
        0 => Ok(out),
        _ => {
            error!(ipset = %set, count = bad, "unparseable IP set members");
            Err(out)
        }
    }
}

/// A set whose members we cannot read is removed from the model rather than kept short:
/// leaving members out would narrow allow rules but widen deny and negated matches. Every
/// policy naming a missing set compiles to a deny at its position, so the whole set fails
/// closed until Felix sends it again in full.
fn withdraw_ipset(id: String) -> Update {
    error!(ipset = %id, "IP set withdrawn: rules using it now deny until Felix resends it");
    Update::IpSetRemove { id: IpSetId(id) }
}

fn convert_ipset_update(u: proto::IpSetUpdate) -> Result<Update, Skip> {
    let proto::IpSetUpdate {
        id,
        members,
        r#type,
    } = u;
    let kind = match proto::ip_set_update::IpSetType::try_from(r#type) {
        Ok(proto::ip_set_update::IpSetType::Ip) => IpSetKind::Ip,
        Ok(proto::ip_set_update::IpSetType::IpAndPort) => IpSetKind::IpAndPort,
        Ok(proto::ip_set_update::IpSetType::Net) => IpSetKind::Net,
        Err(_) => {
            return Err(skip(
                "ipset_update",
                id,
                ConvertError::UnknownEnum {
                    field: "type",
                    value: r#type.to_string(),
                },
            ))
        }
    };
    let Ok(members) = parse_members(&id, &members) else {
        return Ok(withdraw_ipset(id));
    };
    Ok(Update::IpSetUpdate {
        id: IpSetId(id),
        set: IpSet {
            kind,
            members: members.into_iter().collect(),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Rules, policies, profiles

fn protocol_number(field: &'static str, p: proto::Protocol) -> Result<Option<u8>, ConvertError> {
    use proto::protocol::NumberOrName;
    let proto::Protocol { number_or_name } = p;
    match number_or_name {
        None => Ok(None),
        Some(NumberOrName::Number(n)) => {
            u8::try_from(n)
                .map(Some)
                .map_err(|_| ConvertError::UnknownProtocol {
                    field,
                    value: n.to_string(),
                })
        }
        Some(NumberOrName::Name(name)) => protocol_by_name(&name)
            .map(Some)
            .ok_or(ConvertError::UnknownProtocol { field, value: name }),
    }
}

/// The protocol names Calico's API accepts, matched without regard to case.
fn protocol_by_name(name: &str) -> Option<u8> {
    const NAMES: [(&str, u8); 6] = [
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("icmpv6", 58),
        ("sctp", 132),
        ("udplite", 136),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, p)| *p)
}

fn parse_net(field: &'static str, s: &str) -> Result<IpNet, ConvertError> {
    let bad = || ConvertError::BadCidr {
        field,
        value: s.to_string(),
    };
    if s.contains('/') {
        s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| bad())
    } else {
        s.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad())
    }
}

fn nets(field: &'static str, v: Vec<String>) -> Result<Vec<IpNet>, ConvertError> {
    v.iter().map(|s| parse_net(field, s)).collect()
}

fn ports(field: &'static str, v: Vec<proto::PortRange>) -> Result<Vec<PortRange>, ConvertError> {
    v.into_iter()
        .map(
            |proto::PortRange { first, last }| match (u16::try_from(first), u16::try_from(last)) {
                (Ok(f), Ok(l)) if f <= l => Ok(PortRange { first: f, last: l }),
                _ => Err(ConvertError::BadPortRange { field, first, last }),
            },
        )
        .collect()
}

fn icmp_u8(field: &'static str, v: i32) -> Result<u8, ConvertError> {
    u8::try_from(v).map_err(|_| ConvertError::BadIcmp { field, value: v })
}

fn ids(v: Vec<String>) -> Vec<IpSetId> {
    v.into_iter().map(IpSetId).collect()
}

impl TryFrom<proto::Rule> for Rule {
    type Error = ConvertError;

    fn try_from(r: proto::Rule) -> Result<Self, Self::Error> {
        use proto::rule::{Icmp, NotIcmp};
        let proto::Rule {
            action,
            ip_version,
            protocol,
            src_net,
            src_ports,
            dst_net,
            dst_ports,
            icmp,
            src_ip_set_ids,
            dst_ip_set_ids,
            src_named_port_ip_set_ids,
            dst_named_port_ip_set_ids,
            dst_ip_port_set_ids,
            not_protocol,
            not_src_net,
            not_src_ports,
            not_dst_net,
            not_dst_ports,
            not_icmp,
            not_src_ip_set_ids,
            not_dst_ip_set_ids,
            not_src_named_port_ip_set_ids,
            not_dst_named_port_ip_set_ids,
            // The v3 selectors and service-account/service matches as the user wrote them:
            // Felix has already folded them into the IP set ids above.
            original_src_selector: _,
            original_dst_selector: _,
            original_src_namespace_selector: _,
            original_dst_namespace_selector: _,
            original_not_src_selector: _,
            original_not_dst_selector: _,
            src_service_account_match: _,
            dst_service_account_match: _,
            original_dst_service: _,
            original_dst_service_namespace: _,
            original_src_service: _,
            original_src_service_namespace: _,
            http_match,
            metadata: _,
            rule_id,
        } = r;

        // Felix renders an empty action as allow.
        let action = match action.to_ascii_lowercase().as_str() {
            "" | "allow" => Action::Allow,
            "deny" => Action::Deny,
            "log" => Action::Log,
            "next-tier" | "pass" => Action::Pass,
            _ => return Err(ConvertError::UnknownAction(action)),
        };
        let ip_version = match ip_version {
            0 => None,
            4 => Some(IpVersion::V4),
            6 => Some(IpVersion::V6),
            v => return Err(ConvertError::UnknownIpVersion(v)),
        };
        let icmp = match icmp {
            None => None,
            Some(Icmp::IcmpType(t)) => Some(IcmpMatch {
                icmp_type: icmp_u8("icmp_type", t)?,
                code: None,
            }),
            Some(Icmp::IcmpTypeCode(proto::IcmpTypeAndCode { r#type, code })) => Some(IcmpMatch {
                icmp_type: icmp_u8("icmp_type", r#type)?,
                code: Some(icmp_u8("icmp_code", code)?),
            }),
        };
        let not_icmp = match not_icmp {
            None => None,
            Some(NotIcmp::NotIcmpType(t)) => Some(IcmpMatch {
                icmp_type: icmp_u8("not_icmp_type", t)?,
                code: None,
            }),
            Some(NotIcmp::NotIcmpTypeCode(proto::IcmpTypeAndCode { r#type, code })) => {
                Some(IcmpMatch {
                    icmp_type: icmp_u8("not_icmp_type", r#type)?,
                    code: Some(icmp_u8("not_icmp_code", code)?),
                })
            }
        };
        let has_http_match = http_match.is_some_and(|proto::HttpMatch { methods, paths }| {
            !methods.is_empty() || !paths.is_empty()
        });

        Ok(Rule {
            action: Some(action),
            ip_version,
            protocol: match protocol {
                Some(p) => protocol_number("protocol", p)?,
                None => None,
            },
            not_protocol: match not_protocol {
                Some(p) => protocol_number("not_protocol", p)?,
                None => None,
            },
            src_net: nets("src_net", src_net)?,
            src_ports: ports("src_ports", src_ports)?,
            src_named_port_ip_set_ids: ids(src_named_port_ip_set_ids),
            src_ip_set_ids: ids(src_ip_set_ids),
            dst_net: nets("dst_net", dst_net)?,
            dst_ports: ports("dst_ports", dst_ports)?,
            dst_named_port_ip_set_ids: ids(dst_named_port_ip_set_ids),
            dst_ip_set_ids: ids(dst_ip_set_ids),
            dst_ip_port_set_ids: ids(dst_ip_port_set_ids),
            icmp,
            not_src_net: nets("not_src_net", not_src_net)?,
            not_src_ports: ports("not_src_ports", not_src_ports)?,
            not_src_named_port_ip_set_ids: ids(not_src_named_port_ip_set_ids),
            not_src_ip_set_ids: ids(not_src_ip_set_ids),
            not_dst_net: nets("not_dst_net", not_dst_net)?,
            not_dst_ports: ports("not_dst_ports", not_dst_ports)?,
            not_dst_named_port_ip_set_ids: ids(not_dst_named_port_ip_set_ids),
            not_dst_ip_set_ids: ids(not_dst_ip_set_ids),
            not_icmp,
            rule_id,
            has_http_match,
        })
    }
}

/// Converts a rule list, naming the failing rule by direction and index.
fn rules(direction: &'static str, v: Vec<proto::Rule>) -> Result<Vec<Rule>, String> {
    v.into_iter()
        .enumerate()
        .map(|(i, r)| Rule::try_from(r).map_err(|e| format!("{direction} rule {i}: {e}")))
        .collect()
}

fn deny_all() -> Vec<Rule> {
    vec![Rule::match_all(Action::Deny)]
}

fn convert_policy(id: &PolicyId, policy: Option<proto::Policy>) -> Policy {
    let Some(proto::Policy {
        inbound_rules,
        outbound_rules,
        untracked,
        pre_dnat,
        namespace,
        original_selector,
        perf_hints,
        tier,
    }) = policy
    else {
        return invalid_policy(id, Policy::default(), "update carried no policy".into());
    };
    let mut out = Policy {
        tier,
        namespace,
        inbound_rules: Vec::new(),
        outbound_rules: Vec::new(),
        untracked,
        pre_dnat,
        original_selector,
        perf_hints,
        invalid: None,
    };
    match (
        rules("inbound", inbound_rules),
        rules("outbound", outbound_rules),
    ) {
        (Ok(inbound), Ok(outbound)) => {
            out.inbound_rules = inbound;
            out.outbound_rules = outbound;
            out
        }
        (Err(reason), _) | (_, Err(reason)) => invalid_policy(id, out, reason),
    }
}

fn invalid_policy(id: &PolicyId, mut p: Policy, reason: String) -> Policy {
    warn!(policy = %id, kind = %id.kind, %reason, "invalid policy; enforcing it as deny-all");
    p.inbound_rules = deny_all();
    p.outbound_rules = deny_all();
    p.invalid = Some(Invalid { reason });
    p
}

fn convert_profile(id: &ProfileId, profile: Option<proto::Profile>) -> Profile {
    let (inbound, outbound) = match profile {
        Some(proto::Profile {
            inbound_rules,
            outbound_rules,
        }) => (
            rules("inbound", inbound_rules),
            rules("outbound", outbound_rules),
        ),
        None => (Err("update carried no profile".to_string()), Ok(vec![])),
    };
    match (inbound, outbound) {
        (Ok(inbound_rules), Ok(outbound_rules)) => Profile {
            inbound_rules,
            outbound_rules,
            invalid: None,
        },
        (Err(reason), _) | (_, Err(reason)) => {
            warn!(profile = %id, %reason, "invalid profile; enforcing it as deny-all");
            Profile {
                inbound_rules: deny_all(),
                outbound_rules: deny_all(),
                invalid: Some(Invalid { reason }),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints

impl TryFrom<proto::TierInfo> for TierInfo {
    type Error = ConvertError;

    fn try_from(t: proto::TierInfo) -> Result<Self, Self::Error> {
        let proto::TierInfo {
            name,
            ingress_policies,
            egress_policies,
            default_action,
        } = t;
        let default_action =
            if default_action.is_empty() || default_action.eq_ignore_ascii_case("deny") {
                TierDefaultAction::Deny
            } else if default_action.eq_ignore_ascii_case("pass") {
                TierDefaultAction::Pass
            } else {
                return Err(ConvertError::UnknownEnum {
                    field: "tier default_action",
                    value: default_action,
                });
            };
        Ok(TierInfo {
            name,
            ingress_policies: ingress_policies.into_iter().map(PolicyId::from).collect(),
            egress_policies: egress_policies.into_iter().map(PolicyId::from).collect(),
            default_action,
        })
    }
}

fn tiers(v: Vec<proto::TierInfo>) -> Result<Vec<TierInfo>, ConvertError> {
    v.into_iter().map(TierInfo::try_from).collect()
}

fn parse_mac(field: &'static str, s: &str) -> Result<Option<MacAddr>, ConvertError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || ConvertError::BadMac {
        field,
        value: s.to_string(),
    };
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in &mut out {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Some(MacAddr(out)))
}

fn parse_addr(field: &'static str, s: &str) -> Result<IpAddr, ConvertError> {
    s.parse().map_err(|_| ConvertError::BadAddr {
        field,
        value: s.to_string(),
    })
}

fn opt_addr(field: &'static str, s: &str) -> Result<Option<IpAddr>, ConvertError> {
    if s.is_empty() {
        Ok(None)
    } else {
        parse_addr(field, s).map(Some)
    }
}

fn opt_v4(field: &'static str, s: &str) -> Result<Option<Ipv4Addr>, ConvertError> {
    match opt_addr(field, s)? {
        None => Ok(None),
        Some(IpAddr::V4(a)) => Ok(Some(a)),
        Some(IpAddr::V6(_)) => Err(ConvertError::BadAddr {
            field,
            value: s.to_string(),
        }),
    }
}

fn opt_v6(field: &'static str, s: &str) -> Result<Option<Ipv6Addr>, ConvertError> {
    match opt_addr(field, s)? {
        None => Ok(None),
        Some(IpAddr::V6(a)) => Ok(Some(a)),
        Some(IpAddr::V4(_)) => Err(ConvertError::BadAddr {
            field,
            value: s.to_string(),
        }),
    }
}

/// An address with or without a prefix length, as host metadata carries it.
fn opt_v4_net(field: &'static str, s: &str) -> Result<Option<Ipv4Net>, ConvertError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || ConvertError::BadCidr {
        field,
        value: s.to_string(),
    };
    if s.contains('/') {
        s.parse().map(Some).map_err(|_| bad())
    } else {
        s.parse::<Ipv4Addr>()
            .map(|a| Some(Ipv4Net::from(a)))
            .map_err(|_| bad())
    }
}

fn opt_v6_net(field: &'static str, s: &str) -> Result<Option<Ipv6Net>, ConvertError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || ConvertError::BadCidr {
        field,
        value: s.to_string(),
    };
    if s.contains('/') {
        s.parse().map(Some).map_err(|_| bad())
    } else {
        s.parse::<Ipv6Addr>()
            .map(|a| Some(Ipv6Net::from(a)))
            .map_err(|_| bad())
    }
}

fn v4_nets(field: &'static str, v: Vec<String>) -> Result<Vec<Ipv4Net>, ConvertError> {
    v.iter()
        .map(|s| match parse_net(field, s)? {
            IpNet::V4(n) => Ok(n),
            IpNet::V6(_) => Err(ConvertError::BadCidr {
                field,
                value: s.clone(),
            }),
        })
        .collect()
}

fn v6_nets(field: &'static str, v: Vec<String>) -> Result<Vec<Ipv6Net>, ConvertError> {
    v.iter()
        .map(|s| match parse_net(field, s)? {
            IpNet::V6(n) => Ok(n),
            IpNet::V4(_) => Err(ConvertError::BadCidr {
                field,
                value: s.clone(),
            }),
        })
        .collect()
}

fn nat(field: &'static str, v: Vec<proto::NatInfo>) -> Result<Vec<NatInfo>, ConvertError> {
    v.into_iter()
        .map(|proto::NatInfo { ext_ip, int_ip }| {
            Ok(NatInfo {
                ext_ip: parse_addr(field, &ext_ip)?,
                int_ip: parse_addr(field, &int_ip)?,
            })
        })
        .collect()
}

fn profile_ids(v: Vec<String>) -> Vec<ProfileId> {
    v.into_iter().map(ProfileId).collect()
}

fn convert_workload(
    id: &WorkloadEndpointId,
    ep: Option<proto::WorkloadEndpoint>,
) -> WorkloadEndpoint {
    let Some(ep) = ep else {
        return invalid_workload(id, String::new(), "update carried no endpoint".into());
    };
    let name = ep.name.clone();
    match WorkloadEndpoint::try_from(ep) {
        Ok(ep) => ep,
        Err(e) => invalid_workload(id, name, e.to_string()),
    }
}

/// The fail-closed endpoint: bound by name so its interface can be found, but inactive (drops
/// everything) and with no policy to enforce.
fn invalid_workload(id: &WorkloadEndpointId, name: String, reason: String) -> WorkloadEndpoint {
    warn!(endpoint = %id, interface = %name, %reason, "invalid workload endpoint; it will drop all traffic");
    WorkloadEndpoint {
        active: false,
        name,
        mac: None,
        profile_ids: Vec::new(),
        ipv4_nets: Vec::new(),
        ipv6_nets: Vec::new(),
        tiers: Vec::new(),
        ipv4_nat: Vec::new(),
        ipv6_nat: Vec::new(),
        allow_spoofed_source_prefixes: Vec::new(),
        annotations: Default::default(),
        invalid: Some(Invalid { reason }),
    }
}

impl TryFrom<proto::WorkloadEndpoint> for WorkloadEndpoint {
    type Error = ConvertError;

    fn try_from(ep: proto::WorkloadEndpoint) -> Result<Self, Self::Error> {
        let proto::WorkloadEndpoint {
            state,
            name,
            mac,
            profile_ids: profiles,
            ipv4_nets,
            ipv6_nets,
            tiers: tier_infos,
            ipv4_nat,
            ipv6_nat,
            allow_spoofed_source_prefixes,
            annotations,
            // Bandwidth/QoS, BGP peering, eBPF redirect, Istio ambient and live migration are
            // features of other Calico dataplanes; none changes policy here.
            qos_controls: _,
            local_bgp_peer: _,
            skip_redir: _,
            qos_policies: _,
            is_istio_ambient: _,
            live_migration_role: _,
            live_migration_uid: _,
            live_migration_vmi_name: _,
        } = ep;
        Ok(WorkloadEndpoint {
            active: state == "active",
            name,
            mac: parse_mac("mac", &mac)?,
            profile_ids: profile_ids(profiles),
            ipv4_nets: v4_nets("ipv4_nets", ipv4_nets)?,
            ipv6_nets: v6_nets("ipv6_nets", ipv6_nets)?,
            tiers: tiers(tier_infos)?,
            ipv4_nat: nat("ipv4_nat", ipv4_nat)?,
            ipv6_nat: nat("ipv6_nat", ipv6_nat)?,
            allow_spoofed_source_prefixes: nets(
                "allow_spoofed_source_prefixes",
                allow_spoofed_source_prefixes,
            )?,
            annotations,
            invalid: None,
        })
    }
}

fn convert_host_endpoint(id: &HostEndpointId, ep: Option<proto::HostEndpoint>) -> HostEndpoint {
    let Some(ep) = ep else {
        return invalid_host_endpoint(id, String::new(), "update carried no endpoint".into());
    };
    let name = ep.name.clone();
    match HostEndpoint::try_from(ep) {
        Ok(ep) => ep,
        Err(e) => invalid_host_endpoint(id, name, e.to_string()),
    }
}

fn invalid_host_endpoint(id: &HostEndpointId, name: String, reason: String) -> HostEndpoint {
    warn!(endpoint = %id, interface = %name, %reason, "invalid host endpoint; it will drop all traffic");
    HostEndpoint {
        name,
        profile_ids: Vec::new(),
        tiers: Vec::new(),
        untracked_tiers: Vec::new(),
        pre_dnat_tiers: Vec::new(),
        forward_tiers: Vec::new(),
        expected_ipv4_addrs: Vec::new(),
        expected_ipv6_addrs: Vec::new(),
        invalid: Some(Invalid { reason }),
    }
}

impl TryFrom<proto::HostEndpoint> for HostEndpoint {
    type Error = ConvertError;

    fn try_from(ep: proto::HostEndpoint) -> Result<Self, Self::Error> {
        let proto::HostEndpoint {
            name,
            profile_ids: profiles,
            tiers: tier_infos,
            expected_ipv4_addrs,
            expected_ipv6_addrs,
            untracked_tiers,
            pre_dnat_tiers,
            forward_tiers,
            // DSCP marking is not a policy verdict and not implemented on this dataplane.
            qos_policies: _,
        } = ep;
        Ok(HostEndpoint {
            name,
            profile_ids: profile_ids(profiles),
            tiers: tiers(tier_infos)?,
            untracked_tiers: tiers(untracked_tiers)?,
            pre_dnat_tiers: tiers(pre_dnat_tiers)?,
            forward_tiers: tiers(forward_tiers)?,
            expected_ipv4_addrs: expected_ipv4_addrs
                .iter()
                .map(|s| {
                    s.parse().map_err(|_| ConvertError::BadAddr {
                        field: "expected_ipv4_addrs",
                        value: s.clone(),
                    })
                })
                .collect::<Result<_, _>>()?,
            expected_ipv6_addrs: expected_ipv6_addrs
                .iter()
                .map(|s| {
                    s.parse().map_err(|_| ConvertError::BadAddr {
                        field: "expected_ipv6_addrs",
                        value: s.clone(),
                    })
                })
                .collect::<Result<_, _>>()?,
            invalid: None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Routes, pools, tunnels, services

impl TryFrom<proto::RouteUpdate> for Route {
    type Error = ConvertError;

    fn try_from(r: proto::RouteUpdate) -> Result<Self, Self::Error> {
        let proto::RouteUpdate {
            ip_pool_type,
            dst,
            dst_node_name,
            dst_node_ip,
            same_subnet,
            nat_outgoing,
            local_workload,
            tunnel_type,
            borrowed,
            types,
        } = r;
        let ip_pool_type = match proto::IpPoolType::try_from(ip_pool_type) {
            Ok(proto::IpPoolType::None) => IpPoolType::None,
            Ok(proto::IpPoolType::NoEncap) => IpPoolType::NoEncap,
            Ok(proto::IpPoolType::Vxlan) => IpPoolType::Vxlan,
            Ok(proto::IpPoolType::Ipip) => IpPoolType::Ipip,
            Err(_) => {
                return Err(ConvertError::UnknownEnum {
                    field: "ip_pool_type",
                    value: ip_pool_type.to_string(),
                })
            }
        };
        let tunnel_type = tunnel_type
            .map(
                |proto::TunnelType {
                     ipip,
                     vxlan,
                     wireguard,
                 }| TunnelType {
                    ipip,
                    vxlan,
                    wireguard,
                },
            )
            .unwrap_or_default();
        Ok(Route {
            dst: parse_net("dst", &dst)?,
            // A bitmap of RouteType values: keep the raw bits.
            types: RouteTypes(types as u32),
            ip_pool_type,
            dst_node_name,
            dst_node_ip: opt_addr("dst_node_ip", &dst_node_ip)?,
            same_subnet,
            nat_outgoing,
            local_workload,
            tunnel_type,
            borrowed,
        })
    }
}

fn encap_mode(field: &'static str, s: String) -> Result<EncapMode, ConvertError> {
    match s.as_str() {
        "" | "Never" | "never" => Ok(EncapMode::Never),
        "Always" | "always" => Ok(EncapMode::Always),
        "CrossSubnet" | "crosssubnet" | "cross-subnet" => Ok(EncapMode::CrossSubnet),
        _ => Err(ConvertError::UnknownEnum { field, value: s }),
    }
}

fn convert_pool(pool: Option<proto::IpamPool>) -> Result<IpamPool, ConvertError> {
    let proto::IpamPool {
        cidr,
        masquerade,
        ipip_mode,
        vxlan_mode,
        allowed_uses,
    } = pool.ok_or(ConvertError::Missing("pool"))?;
    Ok(IpamPool {
        cidr: parse_net("cidr", &cidr)?,
        masquerade,
        ipip_mode: encap_mode("ipip_mode", ipip_mode)?,
        vxlan_mode: encap_mode("vxlan_mode", vxlan_mode)?,
        allowed_uses,
    })
}

fn convert_vtep(v: proto::VxlanTunnelEndpointUpdate) -> Result<Vtep, ConvertError> {
    let proto::VxlanTunnelEndpointUpdate {
        node: _,
        mac,
        ipv4_addr,
        parent_device_ip,
        mac_v6,
        ipv6_addr,
        parent_device_ipv6,
    } = v;
    Ok(Vtep {
        mac: parse_mac("mac", &mac)?,
        ipv4_addr: opt_v4("ipv4_addr", &ipv4_addr)?,
        parent_device_ip: opt_v4("parent_device_ip", &parent_device_ip)?,
        mac_v6: parse_mac("mac_v6", &mac_v6)?,
        ipv6_addr: opt_v6("ipv6_addr", &ipv6_addr)?,
        parent_device_ipv6: opt_v6("parent_device_ipv6", &parent_device_ipv6)?,
    })
}

impl TryFrom<proto::GlobalBgpConfigUpdate> for GlobalBgpConfig {
    type Error = ConvertError;

    fn try_from(g: proto::GlobalBgpConfigUpdate) -> Result<Self, Self::Error> {
        let proto::GlobalBgpConfigUpdate {
            service_cluster_cidrs,
            service_external_cidrs,
            service_loadbalancer_cidrs,
            local_workload_peering_ip_v4,
            local_workload_peering_ip_v6,
        } = g;
        Ok(GlobalBgpConfig {
            service_cluster_cidrs: nets("service_cluster_cidrs", service_cluster_cidrs)?,
            service_external_cidrs: nets("service_external_cidrs", service_external_cidrs)?,
            service_loadbalancer_cidrs: nets(
                "service_loadbalancer_cidrs",
                service_loadbalancer_cidrs,
            )?,
            local_workload_peering_ip_v4: opt_v4(
                "local_workload_peering_ip_v4",
                &local_workload_peering_ip_v4,
            )?,
            local_workload_peering_ip_v6: opt_v6(
                "local_workload_peering_ip_v6",
                &local_workload_peering_ip_v6,
            )?,
        })
    }
}

impl TryFrom<proto::ServiceUpdate> for Service {
    type Error = ConvertError;

    fn try_from(s: proto::ServiceUpdate) -> Result<Self, Self::Error> {
        let proto::ServiceUpdate {
            name: _,
            namespace: _,
            r#type,
            cluster_ips,
            loadbalancer_ip,
            external_ips,
            ports,
            loadbalancer_ingress_ips,
        } = s;
        let addrs = |field: &'static str, v: Vec<String>| -> Result<Vec<IpAddr>, ConvertError> {
            v.iter().map(|a| parse_addr(field, a)).collect()
        };
        let port = |field: &'static str, v: i32| {
            u16::try_from(v).map_err(|_| ConvertError::BadPort { field, value: v })
        };
        Ok(Service {
            service_type: r#type,
            cluster_ips: addrs("cluster_ips", cluster_ips)?,
            loadbalancer_ip: opt_addr("loadbalancer_ip", &loadbalancer_ip)?,
            external_ips: addrs("external_ips", external_ips)?,
            ports: ports
                .into_iter()
                .map(
                    |proto::ServicePort {
                         protocol,
                         port: p,
                         node_port,
                     }| {
                        Ok(ServicePort {
                            protocol: protocol_by_name(&protocol).ok_or(
                                ConvertError::UnknownProtocol {
                                    field: "ports.protocol",
                                    value: protocol.clone(),
                                },
                            )?,
                            port: port("ports.port", p)?,
                            node_port: port("ports.node_port", node_port)?,
                        })
                    },
                )
                .collect::<Result<_, ConvertError>>()?,
            loadbalancer_ingress_ips: addrs("loadbalancer_ingress_ips", loadbalancer_ingress_ips)?,
        })
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
