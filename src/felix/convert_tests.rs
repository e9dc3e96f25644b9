use super::*;
use crate::felix::script;
use std::collections::BTreeSet;

use calico_model::{IpSetChange, Model};
use prost::Message;

fn env(payload: Payload) -> proto::ToDataplane {
    script::envelope(payload)
}

/// Encodes with our schema, decodes the bytes, converts: what the driver does with a frame.
fn wire(payload: Payload) -> Result<Update, Skip> {
    let bytes = env(payload).encode_to_vec();
    convert(proto::ToDataplane::decode(bytes.as_slice()).unwrap())
}

fn rule_update(rule: proto::Rule) -> Policy {
    let update = wire(Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
        id: Some(script::policy_id(0, 0, false)),
        policy: Some(proto::Policy {
            inbound_rules: vec![rule],
            ..Default::default()
        }),
    }))
    .unwrap();
    match update {
        Update::PolicyUpdate { policy, .. } => policy,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_rule_field_is_typed() {
    let rule = proto::Rule {
        action: "next-tier".into(),
        ip_version: 6,
        protocol: Some(proto::Protocol {
            number_or_name: Some(proto::protocol::NumberOrName::Name("UDPLite".into())),
        }),
        src_net: vec!["fd00::1".into(), "fd00:1::/64".into()],
        src_ports: vec![proto::PortRange {
            first: 1000,
            last: 2000,
        }],
        dst_net: vec!["fd00:2::/64".into()],
        dst_ports: vec![proto::PortRange {
            first: 53,
            last: 53,
        }],
        icmp: Some(proto::rule::Icmp::IcmpType(128)),
        src_ip_set_ids: vec!["s:a".into(), "s:b".into()],
        dst_ip_set_ids: vec!["s:c".into()],
        src_named_port_ip_set_ids: vec!["n:a".into()],
        dst_named_port_ip_set_ids: vec!["n:b".into()],
        dst_ip_port_set_ids: vec!["svc:x".into()],
        not_protocol: Some(proto::Protocol {
            number_or_name: Some(proto::protocol::NumberOrName::Number(6)),
        }),
        not_src_net: vec!["fd00:3::/64".into()],
        not_src_ports: vec![proto::PortRange { first: 1, last: 2 }],
        not_dst_net: vec!["fd00:4::/64".into()],
        not_dst_ports: vec![proto::PortRange { first: 3, last: 4 }],
        not_icmp: Some(proto::rule::NotIcmp::NotIcmpTypeCode(
            proto::IcmpTypeAndCode { r#type: 1, code: 4 },
        )),
        not_src_ip_set_ids: vec!["s:d".into()],
        not_dst_ip_set_ids: vec!["s:e".into()],
        not_src_named_port_ip_set_ids: vec!["n:c".into()],
        not_dst_named_port_ip_set_ids: vec!["n:d".into()],
        http_match: Some(proto::HttpMatch {
            methods: vec!["GET".into()],
            paths: vec![],
        }),
        rule_id: "abc".into(),
        ..Default::default()
    };
    let policy = rule_update(rule);
    assert_eq!(policy.invalid, None);
    let r = &policy.inbound_rules[0];
    let n = |s: &str| s.parse::<IpNet>().unwrap();
    let set = |s: &str| IpSetId(s.into());
    let expected = Rule {
        action: Some(Action::Pass),
        ip_version: Some(IpVersion::V6),
        protocol: Some(136),
        not_protocol: Some(6),
        src_net: vec![n("fd00::1/128"), n("fd00:1::/64")],
        src_ports: vec![PortRange {
            first: 1000,
            last: 2000,
        }],
        src_named_port_ip_set_ids: vec![set("n:a")],
        src_ip_set_ids: vec![set("s:a"), set("s:b")],
        dst_net: vec![n("fd00:2::/64")],
        dst_ports: vec![PortRange {
            first: 53,
            last: 53,
        }],
        dst_named_port_ip_set_ids: vec![set("n:b")],
        dst_ip_set_ids: vec![set("s:c")],
        dst_ip_port_set_ids: vec![set("svc:x")],
        icmp: Some(IcmpMatch {
            icmp_type: 128,
            code: None,
        }),
        not_src_net: vec![n("fd00:3::/64")],
        not_src_ports: vec![PortRange { first: 1, last: 2 }],
        not_src_named_port_ip_set_ids: vec![set("n:c")],
        not_src_ip_set_ids: vec![set("s:d")],
        not_dst_net: vec![n("fd00:4::/64")],
        not_dst_ports: vec![PortRange { first: 3, last: 4 }],
        not_dst_named_port_ip_set_ids: vec![set("n:d")],
        not_dst_ip_set_ids: vec![set("s:e")],
        not_icmp: Some(IcmpMatch {
            icmp_type: 1,
            code: Some(4),
        }),
        rule_id: "abc".into(),
        has_http_match: true,
    };
    assert_eq!(*r, expected);
}

#[test]
fn empty_action_is_allow_and_pass_is_next_tier() {
    let p = rule_update(proto::Rule::default());
    assert_eq!(p.inbound_rules[0].action, Some(Action::Allow));
    let p = rule_update(proto::Rule {
        action: "pass".into(),
        ..Default::default()
    });
    assert_eq!(p.inbound_rules[0].action, Some(Action::Pass));
}

fn assert_fail_closed(p: &Policy, reason_part: &str) {
    let reason = &p.invalid.as_ref().expect("policy must be invalid").reason;
    assert!(reason.contains(reason_part), "{reason}");
    assert_eq!(p.inbound_rules, vec![Rule::match_all(Action::Deny)]);
    assert_eq!(p.outbound_rules, vec![Rule::match_all(Action::Deny)]);
}

#[test]
fn bad_cidr_makes_policy_deny_all() {
    let p = rule_update(proto::Rule {
        action: "allow".into(),
        src_net: vec!["10.0.0.300/32".into()],
        ..Default::default()
    });
    assert_fail_closed(&p, "bad CIDR");
    assert_eq!(p.tier, "");
}

#[test]
fn bad_port_range_makes_policy_deny_all() {
    for (first, last) in [(10, 5), (-1, 5), (1, 70000)] {
        let p = rule_update(proto::Rule {
            action: "allow".into(),
            dst_ports: vec![proto::PortRange { first, last }],
            ..Default::default()
        });
        assert_fail_closed(&p, "bad port range");
    }
}

#[test]
fn unknown_protocol_or_action_makes_policy_deny_all() {
    let p = rule_update(proto::Rule {
        action: "allow".into(),
        protocol: Some(proto::Protocol {
            number_or_name: Some(proto::protocol::NumberOrName::Name("quic".into())),
        }),
        ..Default::default()
    });
    assert_fail_closed(&p, "unknown protocol");
    let p = rule_update(proto::Rule {
        action: "allow-all-the-things".into(),
        ..Default::default()
    });
    assert_fail_closed(&p, "unknown rule action");
    let p = rule_update(proto::Rule {
        action: "allow".into(),
        protocol: Some(proto::Protocol {
            number_or_name: Some(proto::protocol::NumberOrName::Number(256)),
        }),
        ..Default::default()
    });
    assert_fail_closed(&p, "unknown protocol");
}

#[test]
fn invalid_profile_is_deny_all() {
    let u = wire(Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
        id: Some(proto::ProfileId { name: "p".into() }),
        profile: Some(proto::Profile {
            inbound_rules: vec![],
            outbound_rules: vec![proto::Rule {
                action: "allow".into(),
                ip_version: 5,
                ..Default::default()
            }],
        }),
    }))
    .unwrap();
    let Update::ProfileUpdate { profile, .. } = u else {
        panic!("{u:?}")
    };
    assert!(profile.invalid.unwrap().reason.contains("outbound rule 0"));
    assert_eq!(profile.inbound_rules, vec![Rule::match_all(Action::Deny)]);
    assert_eq!(profile.outbound_rules, vec![Rule::match_all(Action::Deny)]);
}

#[test]
fn invalid_endpoint_is_inactive_and_keeps_its_interface() {
    let shape = script::ClusterShape::default();
    let mut ep = script::workload(3, &shape);
    ep.ipv4_nets.push("fd00::1/128".into());
    let u = wire(Payload::WorkloadEndpointUpdate(
        proto::WorkloadEndpointUpdate {
            id: Some(script::workload_id(3, 3)),
            endpoint: Some(ep),
        },
    ))
    .unwrap();
    let Update::WorkloadEndpointUpdate { endpoint, .. } = u else {
        panic!("{u:?}")
    };
    assert!(!endpoint.active);
    assert_eq!(endpoint.name, script::pod_iface(3));
    assert!(endpoint.invalid.unwrap().reason.contains("ipv4_nets"));
    assert!(endpoint.tiers.is_empty() && endpoint.profile_ids.is_empty());

    let mut ep = script::workload(3, &shape);
    ep.mac = "ee:ee:ee".into();
    let Update::WorkloadEndpointUpdate { endpoint, .. } = wire(Payload::WorkloadEndpointUpdate(
        proto::WorkloadEndpointUpdate {
            id: Some(script::workload_id(3, 3)),
            endpoint: Some(ep),
        },
    ))
    .unwrap() else {
        panic!()
    };
    assert!(!endpoint.active && endpoint.invalid.is_some());
}

#[test]
fn invalid_host_endpoint_is_marked() {
    let u = wire(Payload::HostEndpointUpdate(proto::HostEndpointUpdate {
        id: Some(proto::HostEndpointId {
            endpoint_id: "h".into(),
        }),
        endpoint: Some(proto::HostEndpoint {
            name: "eth0".into(),
            expected_ipv4_addrs: vec!["not-an-ip".into()],
            ..Default::default()
        }),
    }))
    .unwrap();
    let Update::HostEndpointUpdate { endpoint, .. } = u else {
        panic!()
    };
    assert_eq!(endpoint.name, "eth0");
    assert!(endpoint.invalid.is_some());
}

#[test]
fn inactive_state_is_not_active() {
    let shape = script::ClusterShape::default();
    let mut ep = script::workload(1, &shape);
    ep.state = "inactive".into();
    let ep = WorkloadEndpoint::try_from(ep).unwrap();
    assert!(!ep.active);
    assert!(ep.invalid.is_none());
}

#[test]
fn route_types_keep_every_bit_even_unknown_ones() {
    let u = wire(Payload::RouteUpdate(proto::RouteUpdate {
        dst: "10.0.0.0/24".into(),
        types: 1 | 16 | 64,
        ..Default::default()
    }))
    .unwrap();
    let Update::RouteUpdate { route } = u else {
        panic!()
    };
    assert_eq!(route.types, RouteTypes(81));
    assert!(route.types.contains(RouteTypes::REMOTE_WORKLOAD));
    assert!(route.types.contains(RouteTypes::REMOTE_TUNNEL));
}

#[test]
fn route_with_bad_destination_is_skipped_with_its_key() {
    let err = wire(Payload::RouteUpdate(proto::RouteUpdate {
        dst: "10.0.0/24".into(),
        ..Default::default()
    }))
    .unwrap_err();
    assert!(
        matches!(err, Skip::Invalid { kind: "route_update", ref key, .. } if key == "10.0.0/24")
    );
}

#[test]
fn named_port_members_become_ip_port_triples() {
    let u = wire(Payload::IpsetUpdate(proto::IpSetUpdate {
        id: "n:x".into(),
        members: vec!["10.0.0.1,tcp:8080".into(), "fd00::1,udp:53".into()],
        r#type: proto::ip_set_update::IpSetType::IpAndPort as i32,
    }))
    .unwrap();
    let Update::IpSetUpdate { set, .. } = u else {
        panic!()
    };
    assert_eq!(set.kind, IpSetKind::IpAndPort);
    assert!(set.members.contains(&IpSetMember::IpPort {
        addr: "10.0.0.1".parse().unwrap(),
        proto: 6,
        port: 8080
    }));
    assert!(set.members.contains(&IpSetMember::IpPort {
        addr: "fd00::1".parse().unwrap(),
        proto: 17,
        port: 53
    }));
}

#[test]
fn set_with_an_unreadable_member_is_withdrawn_not_shortened() {
    let u = wire(Payload::IpsetUpdate(proto::IpSetUpdate {
        id: "s:x".into(),
        members: vec!["10.0.0.1".into(), "bogus".into(), "10.0.0.2/32".into()],
        r#type: 0,
    }))
    .unwrap();
    assert_eq!(
        u,
        Update::IpSetRemove {
            id: IpSetId("s:x".into())
        }
    );
}

#[test]
fn delta_adding_an_unreadable_member_withdraws_the_set() {
    let u = wire(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
        id: "s:x".into(),
        added_members: vec!["10.0.0.3".into(), "10.0.0.300".into()],
        removed_members: vec![],
    }))
    .unwrap();
    assert_eq!(
        u,
        Update::IpSetRemove {
            id: IpSetId("s:x".into())
        }
    );
}

#[test]
fn delta_removing_an_unreadable_member_keeps_the_readable_changes() {
    // A member we could never have read is not in the set: skipping its removal is exact.
    let u = wire(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
        id: "s:x".into(),
        added_members: vec!["10.0.0.3".into()],
        removed_members: vec!["nonsense".into(), "10.0.0.1/32".into()],
    }))
    .unwrap();
    let Update::IpSetDelta { added, removed, .. } = u else {
        panic!("expected a delta, got {u:?}")
    };
    assert_eq!(added.len(), 1);
    assert_eq!(removed.len(), 1);
}

#[test]
fn unset_or_unknown_payload_is_skipped() {
    assert_eq!(
        convert(proto::ToDataplane {
            sequence_number: 1,
            payload: None
        }),
        Err(Skip::NoPayload)
    );
    // Field 99: no release uses it; decodes with no payload.
    let mut bytes = vec![0x78, 0x05]; // field 15 (sequence_number) = 5
    bytes.extend([0x9a, 0x06, 0x02, 0x0a, 0x00]); // field 99, LEN 2: { field 1: "" }
    let msg = proto::ToDataplane::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.sequence_number, 5);
    assert_eq!(convert(msg), Err(Skip::NoPayload));
}

/// Calico v3.32 sends a host's IPv4 address (14/18) and IPv6 address (35/36) in separate
/// messages, or a whole record (37/38); v3.33 sends whole records in 14/18. Both merge by
/// hostname into one record.
#[test]
fn v3_32_host_metadata_merges_by_hostname() {
    let mut model = Model::default();
    let mut apply = |p: Payload| {
        let u = wire(p).unwrap();
        model.apply(u);
        model.host_metadata.get("node2").cloned()
    };
    let v4 = |s: &str| Some(s.parse::<ipnet::Ipv4Net>().unwrap());
    let v6 = |s: &str| Some(s.parse::<ipnet::Ipv6Net>().unwrap());
    let h = apply(Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
        hostname: "node2".into(),
        ipv4_addr: "192.168.0.2/24".into(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!((h.ipv4_addr, h.ipv6_addr), (v4("192.168.0.2/24"), None));
    let h = apply(Payload::HostMetadataV6Update(proto::HostMetadataV6Update {
        hostname: "node2".into(),
        ipv6_addr: "fd00:192::2".into(),
    }))
    .unwrap();
    assert_eq!(
        (h.ipv4_addr, h.ipv6_addr),
        (v4("192.168.0.2/24"), v6("fd00:192::2/128"))
    );
    // A later v4-only update keeps the IPv6 address.
    let h = apply(Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
        hostname: "node2".into(),
        ipv4_addr: "192.168.0.3".into(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(
        (h.ipv4_addr, h.ipv6_addr),
        (v4("192.168.0.3/32"), v6("fd00:192::2/128"))
    );
    // Losing the IPv4 address keeps the host with its IPv6 one; losing both removes it.
    let h = apply(Payload::HostMetadataRemove(proto::HostMetadataRemove {
        hostname: "node2".into(),
        ipv4_addr: "192.168.0.3".into(),
    }))
    .unwrap();
    assert_eq!((h.ipv4_addr, h.ipv6_addr), (None, v6("fd00:192::2/128")));
    assert_eq!(
        apply(Payload::HostMetadataV6Remove(proto::HostMetadataV6Remove {
            hostname: "node2".into(),
            ipv6_addr: "fd00:192::2".into(),
        })),
        None
    );
    // A whole record (v3.32's V4V6), then its removal.
    let h = apply(Payload::HostMetadataV4v6Update(
        proto::HostMetadataV4v6Update {
            hostname: "node2".into(),
            ipv4_addr: "192.168.0.2".into(),
            ipv6_addr: "fd00:192::2".into(),
            asnumber: "64512".into(),
            labels: script::labels(&[("zone", "a")]),
        },
    ))
    .unwrap();
    assert_eq!(h.asnumber, "64512");
    assert_eq!(h.labels["zone"], "a");
    assert_eq!(
        apply(Payload::HostMetadataV4v6Remove(
            proto::HostMetadataV4v6Remove {
                hostname: "node2".into(),
                ipv4_addr: "192.168.0.2".into(),
            }
        )),
        None
    );
    // v3.33: one whole record, removed by 18 whatever it held.
    let h = apply(Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
        hostname: "node2".into(),
        ipv4_addr: "192.168.0.2".into(),
        ipv6_addr: "fd00:192::2".into(),
        ..Default::default()
    }))
    .unwrap();
    assert!(h.ipv6_addr.is_some());
    assert_eq!(
        apply(Payload::HostMetadataRemove(proto::HostMetadataRemove {
            hostname: "node2".into(),
            ipv4_addr: "192.168.0.2".into(),
        })),
        None
    );
}

#[test]
fn staged_policy_id_is_recognised_after_conversion() {
    let Update::PolicyUpdate { id, .. } =
        wire(Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
            id: Some(script::policy_id(0, 1, true)),
            policy: Some(script::policy(0, 1, 3)),
        }))
        .unwrap()
    else {
        panic!()
    };
    assert!(id.is_staged());
}

/// Round trip of every payload kind: encode with our schema, decode, convert, apply, and
/// check the model holds exactly what was sent.
#[test]
fn every_payload_kind_round_trips_into_the_model() {
    let payloads = script::every_payload();
    let mut model = Model::default();
    let mut kinds = BTreeSet::new();
    for payload in payloads {
        let update = wire(payload.clone()).unwrap_or_else(|e| panic!("{payload:?}: {e}"));
        kinds.insert(update.kind());
        let changes = model.apply(update.clone());
        assert!(!changes.is_empty(), "{} changed nothing", update.kind());
        check_applied(&model, &update);
    }
    assert_eq!(kinds.len(), 37, "{kinds:?}");
    // Updates were followed by their removes: only config and the cluster-wide singletons stay.
    assert!(model.ipsets.is_empty() && model.policies.is_empty() && model.routes.is_empty());
    assert!(model.in_sync);
}

fn check_applied(model: &Model, update: &Update) {
    let n = |s: &str| s.parse::<IpNet>().unwrap();
    match update {
        Update::Config(raw) => {
            assert_eq!(model.felix_config, *raw);
            assert_eq!(
                model.config.reporting_interval,
                Some(std::time::Duration::from_secs(10))
            );
        }
        Update::IpSetUpdate { id, set } => {
            assert_eq!(model.ipsets[id], *set);
            assert_eq!(set.kind, IpSetKind::Net);
            assert_eq!(set.members.len(), 2);
        }
        Update::IpSetDelta { id, .. } => {
            let members: Vec<String> = model.ipsets[id]
                .members
                .iter()
                .map(|m| m.to_string())
                .collect();
            assert_eq!(members, vec!["10.0.0.0/8", "192.168.0.0/16"]);
        }
        Update::ProfileUpdate { id, profile } => {
            assert_eq!(model.profiles[id], *profile);
            assert_eq!(profile.inbound_rules[0].action, Some(Action::Pass));
        }
        Update::PolicyUpdate { id, policy } => {
            assert_eq!(model.policies[id], *policy);
            assert_eq!(policy.tier, "tier1");
            assert_eq!(policy.inbound_rules.len(), 2);
            assert_eq!(
                policy.inbound_rules[0].icmp,
                Some(IcmpMatch {
                    icmp_type: 8,
                    code: Some(0)
                })
            );
            assert!(policy.invalid.is_none());
        }
        Update::WorkloadEndpointUpdate { id, endpoint } => {
            assert_eq!(model.workload_endpoints[id], *endpoint);
            assert_eq!(id.workload_id, "ns0/pod-0");
            assert!(endpoint.active && endpoint.invalid.is_none());
            assert_eq!(endpoint.mac, Some(MacAddr([0xee, 0xee, 0xee, 0xee, 0, 0])));
            assert_eq!(endpoint.ipv4_nets, vec!["10.65.0.2/32".parse().unwrap()]);
            assert_eq!(endpoint.tiers.len(), 2);
            assert_eq!(endpoint.tiers[0].default_action, TierDefaultAction::Pass);
            assert!(endpoint.tiers[0].ingress_policies[9].is_staged());
        }
        Update::HostEndpointUpdate { id, endpoint } => {
            assert_eq!(model.host_endpoints[id], *endpoint);
            assert_eq!(endpoint.forward_tiers.len(), 2);
            assert_eq!(endpoint.expected_ipv6_addrs.len(), 1);
        }
        Update::HostMetadataUpdate { hostname, metadata } => {
            assert_eq!(model.host_metadata[hostname], *metadata);
            assert_eq!(metadata.ipv4_addr, Some("192.168.0.2/24".parse().unwrap()));
            assert_eq!(metadata.ipv6_addr, Some("fd00:192::2/128".parse().unwrap()));
        }
        Update::HostIpv6Update {
            hostname,
            ipv6_addr,
        } => {
            assert_eq!(model.host_metadata[hostname].ipv6_addr, *ipv6_addr);
            assert!(ipv6_addr.is_some());
        }
        Update::HostRecordUpdate { hostname, metadata } => {
            assert_eq!(model.host_metadata[hostname], *metadata);
            assert_eq!(metadata.labels["zone"], "b");
        }
        Update::HostIpv6Remove { hostname } => {
            assert!(model
                .host_metadata
                .get(hostname)
                .is_none_or(|h| h.ipv6_addr.is_none()))
        }
        Update::HostRecordRemove { hostname } => {
            assert!(!model.host_metadata.contains_key(hostname))
        }
        Update::IpamPoolUpdate { id, pool } => {
            assert_eq!(model.ipam_pools[id], *pool);
            assert_eq!(pool.ipip_mode, EncapMode::Always);
        }
        Update::ServiceAccountUpdate { id, labels } => {
            assert_eq!(model.service_accounts[id], *labels)
        }
        Update::NamespaceUpdate { id, labels } => assert_eq!(model.namespaces[id], *labels),
        Update::RouteUpdate { route } => {
            assert_eq!(model.routes[&n("10.65.3.0/26")], *route);
            assert_eq!(route.types, RouteTypes(17));
            assert_eq!(route.ip_pool_type, IpPoolType::Ipip);
            assert!(route.tunnel_type.wireguard && route.borrowed && route.same_subnet);
        }
        Update::VtepUpdate { node, vtep } => {
            assert_eq!(model.vteps[node], *vtep);
            assert!(vtep.mac_v6.is_some() && vtep.parent_device_ipv6.is_some());
        }
        Update::WireguardUpdate { hostname, endpoint } => {
            assert_eq!(model.wireguard_v4[hostname], *endpoint)
        }
        Update::WireguardV6Update { hostname, endpoint } => {
            assert_eq!(model.wireguard_v6[hostname], *endpoint);
            assert_eq!(endpoint.public_key, "k6=");
        }
        Update::GlobalBgpConfig(cfg) => {
            assert_eq!(model.global_bgp.as_ref(), Some(cfg));
            assert_eq!(cfg.service_loadbalancer_cidrs, vec![n("198.51.100.0/24")]);
        }
        Update::Encapsulation(e) => {
            assert_eq!(model.encapsulation, Some(*e));
            assert!(e.no_encap_enabled);
        }
        Update::ServiceUpdate { id, service } => {
            assert_eq!(model.services[id], *service);
            assert_eq!(service.ports[0].protocol, 17);
            assert_eq!(service.cluster_ips.len(), 2);
        }
        Update::InSync => assert!(model.in_sync),
        Update::IpSetRemove { id } => assert!(!model.ipsets.contains_key(id)),
        Update::ProfileRemove { id } => assert!(!model.profiles.contains_key(id)),
        Update::PolicyRemove { id } => assert!(!model.policies.contains_key(id)),
        Update::WorkloadEndpointRemove { id } => {
            assert!(!model.workload_endpoints.contains_key(id))
        }
        Update::HostEndpointRemove { id } => assert!(!model.host_endpoints.contains_key(id)),
        Update::HostMetadataRemove { hostname } => {
            assert!(!model.host_metadata.contains_key(hostname))
        }
        Update::IpamPoolRemove { id } => assert!(!model.ipam_pools.contains_key(id)),
        Update::ServiceAccountRemove { id } => assert!(!model.service_accounts.contains_key(id)),
        Update::NamespaceRemove { id } => assert!(!model.namespaces.contains_key(id)),
        Update::ServiceRemove { id } => assert!(!model.services.contains_key(id)),
        Update::RouteRemove { dst } => assert!(!model.routes.contains_key(dst)),
        Update::VtepRemove { node } => assert!(!model.vteps.contains_key(node)),
        Update::WireguardRemove { hostname } => assert!(!model.wireguard_v4.contains_key(hostname)),
        Update::WireguardV6Remove { hostname } => {
            assert!(!model.wireguard_v6.contains_key(hostname))
        }
    }
}

#[test]
fn scripted_snapshot_converts_without_a_single_skip() {
    let shape = script::ClusterShape::default();
    let mut model = Model::default();
    for msg in script::snapshot(&shape) {
        let bytes = msg.encode_to_vec();
        let update = convert(proto::ToDataplane::decode(bytes.as_slice()).unwrap()).unwrap();
        model.apply(update);
    }
    assert_eq!(model.workload_endpoints.len(), 50);
    assert_eq!(model.policies.len(), 20);
    assert_eq!(model.policies.keys().filter(|p| p.is_staged()).count(), 2);
    assert_eq!(model.namespaces.len(), 3);
    assert_eq!(model.ipam_pools.len(), 2);
    assert!(model.policies.values().all(|p| p.invalid.is_none()));
    assert!(model
        .workload_endpoints
        .values()
        .all(|e| e.invalid.is_none()));
    let mut changes = model.apply(convert(script::in_sync()).unwrap());
    assert!(changes.became_in_sync);
    for msg in script::deltas(&shape, 2) {
        model.apply_into(convert(msg).unwrap(), &mut changes);
    }
    let added: BTreeSet<IpSetMember> = ["10.66.0.1/32".parse().unwrap()].into();
    assert_eq!(
        changes.ipsets[&IpSetId(script::ns_set_id(0))],
        IpSetChange::Members {
            added,
            removed: BTreeSet::new()
        }
    );
    // The second delta removes a member namespace 1's set never had: no change recorded.
    assert_eq!(changes.ipsets.len(), 1);
}
