use super::*;
use std::collections::BTreeSet;

fn m(s: &str) -> IpSetMember {
    s.parse().unwrap()
}

fn set(kind: IpSetKind, members: &[&str]) -> IpSet {
    IpSet {
        kind,
        members: members.iter().map(|s| m(s)).collect(),
    }
}

fn id(s: &str) -> IpSetId {
    IpSetId(s.into())
}

fn delta(added: &[&str], removed: &[&str]) -> Update {
    Update::IpSetDelta {
        id: id("s"),
        added: added.iter().map(|s| m(s)).collect(),
        removed: removed.iter().map(|s| m(s)).collect(),
    }
}

fn members(added: &[&str], removed: &[&str]) -> IpSetChange {
    IpSetChange::Members {
        added: added.iter().map(|s| m(s)).collect(),
        removed: removed.iter().map(|s| m(s)).collect(),
    }
}

#[test]
fn new_ipset_is_reported_replaced() {
    let mut model = Model::default();
    let c = model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Ip, &["10.0.0.1"]),
    });
    assert_eq!(c.ipsets.get(&id("s")), Some(&IpSetChange::Replaced));
    assert_eq!(model.ipsets[&id("s")].members.len(), 1);
}

#[test]
fn ipset_delta_reports_only_real_member_changes() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Ip, &["10.0.0.1", "10.0.0.2"]),
    });
    // 10.0.0.1 is already there and 10.0.0.9 is not: neither is a change.
    let c = model.apply(delta(&["10.0.0.1", "10.0.0.3"], &["10.0.0.2", "10.0.0.9"]));
    assert_eq!(c.ipsets[&id("s")], members(&["10.0.0.3"], &["10.0.0.2"]));
    assert_eq!(
        model.ipsets[&id("s")],
        set(IpSetKind::Ip, &["10.0.0.1", "10.0.0.3"])
    );
}

#[test]
fn member_in_both_lists_of_a_delta_ends_up_absent() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Ip, &[]),
    });
    let c = model.apply(delta(&["10.0.0.1"], &["10.0.0.1"]));
    assert!(c.is_empty());
    assert!(model.ipsets[&id("s")].members.is_empty());
}

#[test]
fn batch_of_deltas_is_net() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Ip, &["10.0.0.1"]),
    });
    let mut c = Changes::default();
    model.apply_into(delta(&["10.0.0.2"], &["10.0.0.1"]), &mut c);
    model.apply_into(delta(&["10.0.0.1", "10.0.0.3"], &["10.0.0.2"]), &mut c);
    assert_eq!(c.ipsets[&id("s")], members(&["10.0.0.3"], &[]));
    // Undo everything: the set's entry disappears from the report.
    model.apply_into(delta(&[], &["10.0.0.3"]), &mut c);
    assert!(c.ipsets.is_empty());
}

#[test]
fn full_update_of_existing_set_becomes_member_delta() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Net, &["10.0.0.0/8", "192.168.0.0/16"]),
    });
    let c = model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Net, &["10.0.0.0/8", "172.16.0.0/12"]),
    });
    assert_eq!(
        c.ipsets[&id("s")],
        members(&["172.16.0.0/12"], &["192.168.0.0/16"])
    );
    let c = model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Ip, &["10.0.0.1"]),
    });
    assert_eq!(c.ipsets[&id("s")], IpSetChange::Replaced);
}

#[test]
fn update_with_wrong_type_members_withdraws_the_set() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::IpAndPort, &["10.0.0.1,tcp:80"]),
    });
    let c = model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::IpAndPort, &["10.0.0.1,tcp:80", "10.0.0.2"]),
    });
    assert!(!model.ipsets.contains_key(&id("s")));
    assert_eq!(c.ipsets[&id("s")], IpSetChange::Removed);
}

#[test]
fn delta_adding_wrong_type_member_withdraws_the_set() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::IpAndPort, &["10.0.0.1,tcp:80"]),
    });
    let c = model.apply(delta(&["10.0.0.3"], &[]));
    assert!(!model.ipsets.contains_key(&id("s")));
    assert_eq!(c.ipsets[&id("s")], IpSetChange::Removed);
}

#[test]
fn delta_removing_wrong_type_member_is_a_no_op() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::IpAndPort, &["10.0.0.1,tcp:80"]),
    });
    let c = model.apply(delta(&[], &["10.0.0.3"]));
    assert!(c.is_empty());
    assert_eq!(model.ipsets[&id("s")].members.len(), 1);
}

#[test]
fn delta_for_unknown_set_is_ignored() {
    let mut model = Model::default();
    let c = model.apply(delta(&["10.0.0.1"], &[]));
    assert!(c.is_empty());
    assert!(model.ipsets.is_empty());
}

#[test]
fn remove_after_delta_in_batch_is_removed() {
    let mut model = Model::default();
    model.apply(Update::IpSetUpdate {
        id: id("s"),
        set: set(IpSetKind::Ip, &[]),
    });
    let mut c = Changes::default();
    model.apply_into(delta(&["10.0.0.1"], &[]), &mut c);
    model.apply_into(Update::IpSetRemove { id: id("s") }, &mut c);
    assert_eq!(c.ipsets[&id("s")], IpSetChange::Removed);
    assert!(model.ipsets.is_empty());
}

#[test]
fn identical_policy_resend_is_not_a_change() {
    let mut model = Model::default();
    let pid = PolicyId {
        name: "p".into(),
        namespace: "ns".into(),
        kind: "NetworkPolicy".into(),
    };
    let policy = Policy {
        tier: "default".into(),
        inbound_rules: vec![Rule::match_all(Action::Allow)],
        ..Policy::default()
    };
    let c = model.apply(Update::PolicyUpdate {
        id: pid.clone(),
        policy: policy.clone(),
    });
    assert!(c.policies.contains(&pid));
    let c = model.apply(Update::PolicyUpdate {
        id: pid.clone(),
        policy,
    });
    assert!(c.is_empty());
    let c = model.apply(Update::PolicyRemove { id: pid.clone() });
    assert!(c.policies.contains(&pid));
    assert!(model.policies.is_empty());
    // Removing what is gone changes nothing.
    assert!(model.apply(Update::PolicyRemove { id: pid }).is_empty());
}

#[test]
fn in_sync_is_reported_once() {
    let mut model = Model::default();
    assert!(model.apply(Update::InSync).became_in_sync);
    assert!(model.in_sync);
    assert!(model.apply(Update::InSync).is_empty());
}

#[test]
fn config_update_types_settings_and_reports_changed_keys() {
    let mut model = Model::default();
    let raw: BTreeMap<String, String> = [
        (
            "DefaultEndpointToHostAction".to_string(),
            "ACCEPT".to_string(),
        ),
        ("SomethingElse".to_string(), "x".to_string()),
    ]
    .into();
    let c = model.apply(Update::Config(raw.clone()));
    assert_eq!(c.felix_config.len(), 2);
    assert_eq!(
        model.config.default_endpoint_to_host_action,
        crate::EndpointToHostAction::Accept
    );
    assert!(model.apply(Update::Config(raw)).is_empty());
    let c = model.apply(Update::Config(BTreeMap::new()));
    assert_eq!(c.felix_config.len(), 2);
    assert_eq!(
        model.config.default_endpoint_to_host_action,
        crate::EndpointToHostAction::Drop
    );
}

#[test]
fn routes_are_keyed_by_destination() {
    let mut model = Model::default();
    let dst: IpNet = "10.65.1.0/26".parse().unwrap();
    let route = Route {
        dst,
        types: RouteTypes(RouteTypes::REMOTE_WORKLOAD | RouteTypes::REMOTE_TUNNEL),
        ip_pool_type: IpPoolType::Vxlan,
        dst_node_name: "node2".into(),
        dst_node_ip: Some("192.168.0.2".parse().unwrap()),
        same_subnet: false,
        nat_outgoing: true,
        local_workload: false,
        tunnel_type: TunnelType::default(),
        borrowed: false,
    };
    let c = model.apply(Update::RouteUpdate { route });
    assert!(c.routes.contains(&dst));
    let c = model.apply(Update::RouteRemove { dst });
    assert!(c.routes.contains(&dst));
    assert!(model.routes.is_empty());
}

mod laws {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Delta(Vec<u8>, Vec<u8>),
        Full(Vec<u8>),
        Remove,
    }

    fn member(i: u8) -> IpSetMember {
        IpSetMember::Net(IpNet::from(std::net::IpAddr::from([10, 0, 0, i % 16])))
    }

    fn op() -> impl Strategy<Value = Op> {
        let ms = || proptest::collection::vec(any::<u8>(), 0..6);
        prop_oneof![
            6 => (ms(), ms()).prop_map(|(a, r)| Op::Delta(a, r)),
            2 => ms().prop_map(Op::Full),
            1 => Just(Op::Remove),
        ]
    }

    fn to_update(op: &Op) -> Update {
        match op {
            Op::Delta(a, r) => Update::IpSetDelta {
                id: id("s"),
                added: a.iter().map(|&i| member(i)).collect(),
                removed: r.iter().map(|&i| member(i)).collect(),
            },
            Op::Full(m) => Update::IpSetUpdate {
                id: id("s"),
                set: IpSet {
                    kind: IpSetKind::Ip,
                    members: m.iter().map(|&i| member(i)).collect(),
                },
            },
            Op::Remove => Update::IpSetRemove { id: id("s") },
        }
    }

    proptest! {
        /// The change recorded for a batch tells exactly how to get from the set before the
        /// batch to the set after it.
        #[test]
        fn batch_change_takes_the_old_set_to_the_new_one(
            initial in proptest::collection::vec(any::<u8>(), 0..8),
            ops in proptest::collection::vec(op(), 0..12),
        ) {
            let mut model = Model::default();
            model.apply(to_update(&Op::Full(initial)));
            let before = model.ipsets.get(&id("s")).cloned();
            let mut changes = Changes::default();
            for op in &ops {
                model.apply_into(to_update(op), &mut changes);
            }
            let after = model.ipsets.get(&id("s")).cloned();
            match changes.ipsets.get(&id("s")) {
                None => prop_assert_eq!(before, after),
                Some(IpSetChange::Removed) => prop_assert!(after.is_none()),
                Some(IpSetChange::Replaced) => prop_assert!(after.is_some()),
                Some(IpSetChange::Members { added, removed }) => {
                    let before = before.unwrap().members;
                    let after = after.unwrap().members;
                    prop_assert!(added.is_disjoint(removed));
                    let rebuilt: BTreeSet<IpSetMember> =
                        before.difference(removed).chain(added.iter()).cloned().collect();
                    prop_assert_eq!(&rebuilt, &after);
                    prop_assert!(added.is_disjoint(&before) && removed.is_subset(&before));
                }
            }
        }

        /// Recording update by update and merging gives the same report as recording the
        /// whole batch at once.
        #[test]
        fn merging_per_update_changes_equals_batch_changes(
            ops in proptest::collection::vec(op(), 0..12),
        ) {
            let mut a = Model::default();
            let mut b = Model::default();
            a.apply(to_update(&Op::Full(vec![1, 2, 3])));
            b.apply(to_update(&Op::Full(vec![1, 2, 3])));
            let mut batch = Changes::default();
            let mut merged = Changes::default();
            for op in &ops {
                a.apply_into(to_update(op), &mut batch);
                merged.merge(b.apply(to_update(op)));
            }
            prop_assert_eq!(batch, merged);
            prop_assert_eq!(a, b);
        }
    }
}
