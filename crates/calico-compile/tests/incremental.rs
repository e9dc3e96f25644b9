//! Incrementality: a small model change yields a small change of desired objects.

mod common;

use calico_compile::compiler::ANTI_SPOOF_PREFIX;
use calico_compile::{compile, ChangeSet, Compiler, DesiredState, PolicyKey};
use calico_model::*;
use common::*;

/// Two pods in one namespace, a tier with one policy allowing from a label (an IP set),
/// and a namespace profile.
fn namespace() -> Model {
    let mut m = Model::default();
    m.ipsets.insert(
        IpSetId("s:frontend".into()),
        net_set(&["10.0.1.1/32", "10.0.1.2/32"]),
    );
    let mut r = rule(Action::Allow);
    r.src_ip_set_ids = vec![IpSetId("s:frontend".into())];
    m.policies
        .insert(pid("from-frontend"), policy(vec![r], vec![]));
    m.profiles
        .insert(ProfileId("kns.ns".into()), allow_all_profile());
    for (n, a) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
        m.workload_endpoints.insert(
            wid(n),
            workload(
                n,
                &[a],
                vec![tier("default", &[pid("from-frontend")], &[])],
                &["kns.ns"],
            ),
        );
    }
    m
}

#[test]
fn adding_a_pod_to_an_ip_set_changes_only_members() {
    let before = namespace();
    let mut c = Compiler::new(&before);
    let mut after = before.clone();
    let id = IpSetId("s:frontend".into());
    let new = IpSetMember::Net("10.0.1.3/32".parse().unwrap());
    after.ipsets.get_mut(&id).unwrap().members.insert(new);
    let mut ch = ChangeSet::default();
    ch.ipsets.insert(id.clone());
    ch.ipset_members
        .insert(id, ([new].into_iter().collect(), Default::default()));
    let diff = c.update(&after, &ch);
    assert_eq!(diff.len(), 1, "{diff:?}");
    let delta = &diff.ipset_members[&calico_compile::IpSetKey("s:s:frontend".into())];
    assert_eq!(
        delta.added,
        vec![npol::IpSetMember::Net("10.0.1.3/32".parse().unwrap())]
    );
    assert_eq!(c.desired(), &compile(&after).desired);
}

#[test]
fn adding_a_policy_to_a_tier_changes_only_that_tiers_objects() {
    let mut before = namespace();
    // A second tier, untouched by the change.
    before
        .policies
        .insert(pid("other"), policy(vec![rule(Action::Pass)], vec![]));
    for ep in before.workload_endpoints.values_mut() {
        ep.tiers.insert(0, tier("security", &[pid("other")], &[]));
    }
    let mut c = Compiler::new(&before);
    let old = c.desired().clone();
    let mut after = before.clone();
    let mut deny_ssh = rule(Action::Deny);
    deny_ssh.protocol = Some(6);
    deny_ssh.dst_ports = vec![PortRange {
        first: 22,
        last: 22,
    }];
    after
        .policies
        .insert(pid("no-ssh"), policy(vec![deny_ssh], vec![]));
    let mut ch = ChangeSet::default();
    ch.policies.insert(pid("no-ssh"));
    for (id, ep) in after.workload_endpoints.iter_mut() {
        ep.tiers[1].ingress_policies.insert(0, pid("no-ssh"));
        ch.workload_endpoints.insert(id.clone());
    }
    let diff = c.update(&after, &ch);
    assert_eq!(c.desired(), &compile(&after).desired);
    // The default tier's npol policy is replaced (its policy list is its key); the
    // security tier's, the profile's and every ipset are untouched.
    assert!(diff.ipsets_upserted.is_empty() && diff.ipset_members.is_empty());
    assert_eq!(diff.kinds.rules.upserted.len(), 1, "only the new deny rule");
    assert!(diff.kinds.rules.removed.is_empty());
    assert_eq!(diff.kinds.policies.upserted.len(), 1);
    assert_eq!(diff.kinds.policies.removed.len(), 1);
    let touched: Vec<&str> = diff
        .kinds
        .policies
        .upserted
        .keys()
        .chain(&diff.kinds.policies.removed)
        .map(|k| k.0.as_str())
        .collect();
    assert!(
        touched.iter().all(|k| k.starts_with("t:default:in:")),
        "{touched:?}"
    );
    assert!(old.policies.keys().any(|k| k.0.starts_with("t:security:")));
    assert_eq!(diff.interfaces_upserted.len(), 2);
}

#[test]
fn a_new_pod_in_an_existing_namespace_adds_only_its_interface_anti_spoofing_and_route() {
    let before = namespace();
    let mut c = Compiler::new(&before);
    let mut after = before.clone();
    after.workload_endpoints.insert(
        wid("c"),
        workload(
            "c",
            &["10.0.0.3"],
            vec![tier("default", &[pid("from-frontend")], &[])],
            &["kns.ns"],
        ),
    );
    let mut ch = ChangeSet::default();
    ch.workload_endpoints.insert(wid("c"));
    let diff = c.update(&after, &ch);
    // Its interface, its anti-spoofing policy (its addresses are its own) and rule, and
    // the route to its address.
    assert_eq!(diff.len(), 4, "{diff:?}");
    assert_eq!(diff.interfaces_upserted.len(), 1);
    assert_eq!(diff.kinds.local_routes.upserted.len(), 1);
    assert_eq!(diff.kinds.policies.upserted.len(), 1);
    assert!(diff
        .kinds
        .policies
        .upserted
        .keys()
        .all(|k| k.0.starts_with(ANTI_SPOOF_PREFIX)));
    assert_eq!(diff.kinds.rules.upserted.len(), 1);
    assert_eq!(c.desired(), &compile(&after).desired);
}

#[test]
fn removing_the_last_user_removes_shared_objects() {
    let before = namespace();
    let mut c = Compiler::new(&before);
    let mut after = before.clone();
    after.workload_endpoints.clear();
    let ch = ChangeSet {
        workload_endpoints: [wid("a"), wid("b")].into_iter().collect(),
        ..ChangeSet::default()
    };
    c.update(&after, &ch);
    let d = c.desired();
    assert!(d.interfaces.is_empty() && d.policies.is_empty() && d.rules.is_empty());
    assert_eq!(d, &compile(&after).desired);
}

fn anti_spoof_keys(d: &DesiredState) -> Vec<&PolicyKey> {
    d.policies
        .keys()
        .filter(|k| k.0.starts_with(ANTI_SPOOF_PREFIX))
        .collect()
}

fn endpoint_changed(id: WorkloadEndpointId) -> ChangeSet {
    ChangeSet {
        workload_endpoints: [id].into_iter().collect(),
        ..ChangeSet::default()
    }
}

#[test]
fn new_allowed_spoofed_prefix_replaces_only_that_pods_anti_spoofing_policy() {
    let before = namespace();
    let mut c = Compiler::new(&before);
    let old_keys: Vec<PolicyKey> = anti_spoof_keys(c.desired()).into_iter().cloned().collect();
    assert_eq!(old_keys.len(), 2, "one per distinct set of sources");
    let mut after = before.clone();
    after
        .workload_endpoints
        .get_mut(&wid("a"))
        .unwrap()
        .allow_spoofed_source_prefixes = vec!["192.168.0.0/16".parse().unwrap()];
    let diff = c.update(&after, &endpoint_changed(wid("a")));
    let full = compile(&after);
    assert_eq!(c.desired(), &full.desired);
    assert_eq!(diff.kinds.policies.upserted.len(), 1, "{diff:?}");
    assert_eq!(diff.kinds.policies.removed.len(), 1, "{diff:?}");
    assert!(old_keys.contains(&diff.kinds.policies.removed[0]));
    assert_eq!(diff.kinds.rules.upserted.len(), 1);
    assert_eq!(diff.kinds.rules.removed.len(), 1);
    assert_eq!(diff.interfaces_upserted.len(), 1);
    let a = &full.desired.interfaces[&calico_compile::InterfaceKey("calia".into())];
    assert!(diff
        .kinds
        .policies
        .upserted
        .contains_key(&a.config.rx_policies[0]));
}

#[test]
fn changed_pod_address_recompiles_its_anti_spoofing_policy() {
    let before = namespace();
    let mut c = Compiler::new(&before);
    let mut after = before.clone();
    let ep = after.workload_endpoints.get_mut(&wid("b")).unwrap();
    ep.ipv4_nets = vec!["10.0.0.9/32".parse().unwrap()];
    ep.ipv6_nets = vec!["fd00::9/128".parse().unwrap()];
    let diff = c.update(&after, &endpoint_changed(wid("b")));
    assert_eq!(c.desired(), &compile(&after).desired);
    assert_eq!(diff.kinds.policies.upserted.len(), 1);
    assert_eq!(diff.kinds.policies.removed.len(), 1);
}

#[test]
fn pods_with_the_same_sources_share_anti_spoofing_until_the_last_goes() {
    let mut before = namespace();
    // "b" is given "a"'s addresses: the same permitted sources, one shared policy.
    let a = before.workload_endpoints[&wid("a")].clone();
    let b = before.workload_endpoints.get_mut(&wid("b")).unwrap();
    b.ipv4_nets = a.ipv4_nets.clone();
    let mut c = Compiler::new(&before);
    assert_eq!(anti_spoof_keys(c.desired()).len(), 1);
    let shared = anti_spoof_keys(c.desired())[0].clone();

    let mut after = before.clone();
    after.workload_endpoints.remove(&wid("a"));
    let diff = c.update(&after, &endpoint_changed(wid("a")));
    assert_eq!(c.desired(), &compile(&after).desired);
    assert!(
        diff.kinds.policies.removed.is_empty(),
        "still used by b: {diff:?}"
    );
    assert_eq!(diff.interfaces_removed.len(), 1);

    let mut gone = after.clone();
    gone.workload_endpoints.remove(&wid("b"));
    let diff = c.update(&gone, &endpoint_changed(wid("b")));
    assert_eq!(c.desired(), &compile(&gone).desired);
    assert!(diff.kinds.policies.removed.contains(&shared), "{diff:?}");
    assert!(anti_spoof_keys(c.desired()).is_empty());
}
