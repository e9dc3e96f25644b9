//! Reconciler behaviour against the fake dataplane. Time is paused where backoff matters.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use calico_compile::{DesiredInterface, DesiredState, InterfaceKey, IpSetKey, PolicyKey, RuleKey};
use calico_model::MacAddr;

use super::kinds::npol_objects::{Policies, Rules};
use super::*;
use crate::dataplane::fake::{self, FakeDataplane, FakeHandle};
use crate::dataplane::{Op, RoutePath, SwIfIndex};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn ip_set(members: &[&str]) -> Arc<npol::IpSet> {
    Arc::new(npol::IpSet {
        kind: npol::IpSetType::Ip,
        members: members
            .iter()
            .map(|m| npol::IpSetMember::Ip(ip(m)))
            .collect(),
    })
}

fn port_set(members: &[(&str, u16)]) -> Arc<npol::IpSet> {
    Arc::new(npol::IpSet {
        kind: npol::IpSetType::IpAndPort,
        members: members
            .iter()
            .map(|(a, p)| npol::IpSetMember::IpAndPort {
                addr: ip(a),
                proto: 6,
                port: *p,
            })
            .collect(),
    })
}

fn rule(action: npol::RuleAction, set: &str, port_set: bool) -> npol::Rule<IpSetKey> {
    let key = IpSetKey(set.into());
    npol::Rule {
        action,
        filters: [npol::Filter::NONE; 3],
        entries: vec![npol::Entry {
            is_src: !port_set,
            is_not: false,
            data: if port_set {
                npol::EntryData::PortIpSet(key)
            } else {
                npol::EntryData::IpSet(key)
            },
        }],
    }
}

fn config(tx: &[&str]) -> npol::InterfaceConfig<PolicyKey> {
    npol::InterfaceConfig {
        rx_policies: Vec::new(),
        tx_policies: tx.iter().map(|p| PolicyKey((*p).into())).collect(),
        profiles: Vec::new(),
        invert_rx_tx: false,
        policy_default_rx: npol::PolicyDefault::Pass,
        policy_default_tx: npol::PolicyDefault::Pass,
        profile_default_rx: npol::PolicyDefault::Deny,
        profile_default_tx: npol::PolicyDefault::Deny,
    }
}

fn iface(name: &str, addr: &str, tx: &[&str]) -> DesiredInterface {
    DesiredInterface {
        endpoint: calico_model::EndpointId::workload("k8s", &format!("ns/{name}"), "eth0"),
        interface_name: name.into(),
        neighbours: vec![(ip(addr), MAC)],
        config: config(tx),
        guard: calico_compile::InterfaceGuard::workload(),
    }
}

/// Two sets (IP and IP_AND_PORT), a rule on each, one policy using both, one endpoint.
fn base() -> DesiredState {
    let mut d = DesiredState::default();
    d.acls.extend(calico_compile::guard::guard_acls());
    d.ipsets
        .insert(IpSetKey("s-ip".into()), ip_set(&["10.0.0.1", "10.0.0.2"]));
    d.ipsets.insert(
        IpSetKey("s-port".into()),
        port_set(&[("10.0.0.1", 80), ("10.0.0.2", 80)]),
    );
    d.rules.insert(
        RuleKey("r-ip".into()),
        rule(npol::RuleAction::Allow, "s-ip", false),
    );
    d.rules.insert(
        RuleKey("r-port".into()),
        rule(npol::RuleAction::Allow, "s-port", true),
    );
    d.policies.insert(
        PolicyKey("p1".into()),
        npol::Policy {
            inbound: vec![RuleKey("r-ip".into())],
            outbound: vec![RuleKey("r-port".into())],
        },
    );
    d.interfaces.insert(
        InterfaceKey("cali-a".into()),
        iface("cali-a", "10.0.0.1", &["p1"]),
    );
    d
}

fn setup() -> (Reconciler<FakeDataplane>, FakeHandle, SwIfIndex) {
    let (dp, h) = fake::new();
    let sw = h.add_interface("tap1", "cali-a");
    let r = Reconciler::new(dp, ReconcilerConfig::default());
    (r, h, sw)
}

fn names(h: &FakeHandle) -> Vec<&'static str> {
    h.log().iter().map(|r| r.op.name()).collect()
}

fn position(names: &[&str], name: &str) -> (usize, usize) {
    let first = names.iter().position(|n| *n == name).unwrap();
    let last = names.iter().rposition(|n| *n == name).unwrap();
    (first, last)
}

#[tokio::test]
async fn first_apply_creates_in_dependency_order() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.failed_ops, 0);
    let n = names(&h);
    let order = [
        "npol_ipset_create",
        "npol_ipset_add_del_members",
        "npol_rule_create",
        "npol_policy_create",
        "npol_configure_policies",
        "feature_cnat_enable_disable",
    ];
    for w in order.windows(2) {
        assert!(
            position(&n, w[0]).1 < position(&n, w[1]).0,
            "{w:?} in {n:?}"
        );
    }
    assert!(position(&n, "ip_neighbor_add_del").1 < position(&n, "npol_configure_policies").0);
    let o = h.objects();
    assert_eq!(o.ipsets.len(), 2);
    assert_eq!(o.rules.len(), 2);
    assert_eq!(o.policies.len(), 1);
    assert_eq!(o.configs[&sw].tx_policies.len(), 1);
    assert!(o.cnat.contains(&sw));
    assert_eq!(o.neighbours[&(sw, ip("10.0.0.1"))], MAC);
}

#[tokio::test]
async fn second_apply_with_same_desired_state_writes_nothing() {
    let (mut r, h, _) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let before = h.writes();
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.writes, 0);
    assert_eq!(h.writes(), before);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_programmed_before_the_first_desired_state() {
    let (r, h, _) = setup();
    let (handle, _status, _task) = spawn(r);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.writes(), 0);
    assert_eq!(h.connects(), 1);
    handle.apply(Arc::new(base()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.writes() > 0);
}

#[tokio::test(start_paused = true)]
async fn before_the_first_desired_state_only_staged_ip_sets_are_made() {
    let (r, h, _) = setup();
    let (handle, _status, _task) = spawn(r);
    handle.stage_ipsets(base().ipsets, Vec::new(), true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut made = names(&h);
    made.sort();
    made.dedup();
    assert_eq!(made, ["npol_ipset_add_del_members", "npol_ipset_create"]);
    let o = h.objects();
    assert_eq!(o.ipsets.len(), 2);
    assert!(o.rules.is_empty() && o.policies.is_empty() && o.configs.is_empty());

    // InSync: the sets are there already.
    h.clear_log();
    handle.apply(Arc::new(base()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.count("npol_ipset_create"), 0);
    assert_eq!(h.count("npol_ipset_add_del_members"), 0);
    assert_eq!(h.objects().policies.len(), 1);

    // Once a desired state was given, staging is the passes' business: ignored.
    h.clear_log();
    handle.stage_ipsets(
        [(IpSetKey("late".into()), ip_set(&["10.9.9.9"]))].into(),
        Vec::new(),
        true,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.writes(), 0);
}

#[tokio::test]
async fn staging_changes_no_set_vpp_holds_and_prunes_nothing() {
    // The driver restarts; the new snapshot has other members in s-ip and a new set, and no
    // longer s-port.
    let (mut r, h, _dir) = restarted_after_base().await;
    let mut next = base();
    next.ipsets.remove(&IpSetKey("s-port".into()));
    next.ipsets
        .insert(IpSetKey("s-ip".into()), ip_set(&["10.0.0.7"]));
    next.ipsets
        .insert(IpSetKey("s-new".into()), ip_set(&["10.0.0.8"]));
    next.rules.remove(&RuleKey("r-port".into()));
    next.policies.insert(
        PolicyKey("p1".into()),
        npol::Policy {
            inbound: vec![RuleKey("r-ip".into())],
            outbound: Vec::new(),
        },
    );
    h.clear_log();
    let report = r.stage_ipsets(&next.ipsets).await.unwrap();
    // Only s-new: two writes (create, fill); s-ip keeps its members, s-port is still there.
    assert_eq!(report.writes, 2);
    assert_eq!(h.count("npol_ipset_create"), 1);
    let members = |h: &FakeHandle| {
        h.objects()
            .ipsets
            .values()
            .map(|s| s.members.len())
            .collect::<Vec<_>>()
    };
    assert_eq!(h.objects().ipsets.len(), 3);
    assert_eq!(members(&h).iter().sum::<usize>(), 2 + 2 + 1);

    // InSync: the pass brings s-ip to its new members, removes s-port, keeps s-new.
    h.clear_log();
    r.apply(&next).await.unwrap();
    assert_eq!(h.count("npol_ipset_create"), 0);
    assert_eq!(h.objects().ipsets.len(), 2);
    assert_eq!(members(&h).iter().sum::<usize>(), 1 + 1);
    assert_eq!(r.realized().ipsets.len(), 2);
}

#[tokio::test]
async fn sets_this_driver_staged_follow_the_snapshot_until_in_sync() {
    let (mut r, h, _) = setup();
    r.connect().await.unwrap();
    r.stage_ipsets(&base().ipsets).await.unwrap();
    // Before InSync, s-ip gains a member and s-port loses one (a rebuild: npol cannot delete
    // IP_AND_PORT members).
    let mut next = base();
    next.ipsets.insert(
        IpSetKey("s-ip".into()),
        ip_set(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    );
    next.ipsets
        .insert(IpSetKey("s-port".into()), port_set(&[("10.0.0.1", 80)]));
    h.clear_log();
    let report = r.stage_ipsets(&next.ipsets).await.unwrap();
    assert_eq!(report.failed_ops, 0);
    assert_eq!(h.count("npol_ipset_create"), 1, "the rebuilt s-port");
    assert_eq!(
        h.count("npol_ipset_delete"),
        0,
        "nothing deleted before InSync"
    );
    for (k, want) in &next.ipsets {
        assert_eq!(r.realized().ipsets[k].set, **want);
    }
    // InSync: the replaced s-port goes; the sets are as desired.
    h.clear_log();
    r.apply(&next).await.unwrap();
    assert_eq!(h.count("npol_ipset_create"), 0);
    assert_eq!(h.count("npol_ipset_add_del_members"), 0);
    assert_eq!(h.count("npol_ipset_delete"), 1);
    assert_eq!(h.objects().ipsets.len(), 2);
}

#[tokio::test]
async fn staged_sets_outlive_a_driver_restart_before_in_sync() {
    let (cfg, _dir) = state_file_config();
    let (dp, h) = fake::new();
    h.add_interface("tap1", "cali-a");
    let (handle, _status, task) = spawn(Reconciler::new(dp, cfg.clone()));
    handle.stage_ipsets(base().ipsets, Vec::new(), true);
    while h.objects().ipsets.len() < 2 || h.count("npol_ipset_add_del_members") < 2 {
        tokio::task::yield_now().await;
    }
    // The task writes its state file once staging is done; then the driver restarts.
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(handle);
    task.await.unwrap();

    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg);
    r.connect().await.unwrap();
    h.clear_log();
    assert_eq!(r.stage_ipsets(&base().ipsets).await.unwrap().writes, 0);
    r.apply(&base()).await.unwrap();
    assert_eq!(h.count("npol_ipset_create"), 0);
    assert_eq!(h.count("npol_ipset_add_del_members"), 0);
    assert_eq!(h.objects().policies.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_ip_set_refused_while_staging_is_tried_again_by_the_first_pass_at_once() {
    let (mut r, h, _) = setup();
    h.fail_nth("npol_ipset_create", 0, -2);
    r.connect().await.unwrap();
    let report = r.stage_ipsets(&base().ipsets).await.unwrap();
    assert_eq!(report.failed_ops, 1);
    assert!(r.failures().is_empty(), "no backoff: {:?}", r.failures());
    assert_eq!(h.objects().ipsets.len(), 1);
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.failed_ops, 0);
    assert_eq!(h.objects().ipsets.len(), 2);
    assert_eq!(h.objects().policies.len(), 1);
}

#[tokio::test]
async fn deletes_run_in_reverse_dependency_order() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    h.clear_log();
    r.apply(&DesiredState::default()).await.unwrap();
    let n = names(&h);
    let order = [
        "npol_configure_policies",
        "npol_policy_delete",
        "npol_rule_delete",
        "npol_ipset_delete",
    ];
    for w in order.windows(2) {
        assert!(
            position(&n, w[0]).1 < position(&n, w[1]).0,
            "{w:?} in {n:?}"
        );
    }
    let o = h.objects();
    assert!(o.ipsets.is_empty() && o.rules.is_empty() && o.policies.is_empty());
    // Fail closed: the interface that stays in VPP denies, and cnat keeps enforcing it.
    let cfg = &o.configs[&sw];
    assert!(cfg.tx_policies.is_empty());
    assert_eq!(cfg.policy_default_tx, npol::PolicyDefault::Deny);
    assert!(o.cnat.contains(&sw));
    assert!(o.neighbours.is_empty());
    assert!(r.realized().is_empty());
}

#[tokio::test(start_paused = true)]
async fn failed_rule_is_retried_with_backoff_while_the_rest_converges() {
    let (mut r, h, sw) = setup();
    h.fail_matching(
        |op| matches!(op, Op::RuleCreate { rule } if rule.entries[0].is_src),
        0,
        1,
        -2,
    );
    r.connect().await.unwrap();
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.failed_ops, 1);
    assert!(r
        .failures()
        .contains_key(&kinds::object::<Rules>(&RuleKey("r-ip".into()))));
    // The other rule and both sets are there; the policy waits for the failed rule.
    let o = h.objects();
    assert_eq!(o.rules.len(), 1);
    assert_eq!(o.ipsets.len(), 2);
    assert!(o.policies.is_empty());
    assert!(r
        .waiting()
        .contains_key(&kinds::object::<Policies>(&PolicyKey("p1".into()))));
    // Fail closed: the endpoint gets a deny configuration, not none.
    assert_eq!(o.configs[&sw].policy_default_tx, npol::PolicyDefault::Deny);
    assert!(o.configs[&sw].tx_policies.is_empty());
    let ev = r.take_status_events();
    assert!(matches!(
        &ev[..],
        [EndpointStatusEvent::Update {
            status: EndpointOperStatus::Error,
            ..
        }]
    ));

    // Not due yet: nothing is retried.
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(r.apply(&base()).await.unwrap().writes, 0);

    tokio::time::advance(Duration::from_millis(100)).await;
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.failed_ops, 0);
    assert!(r.failures().is_empty());
    let o = h.objects();
    assert_eq!(o.policies.len(), 1);
    assert_eq!(o.configs[&sw].tx_policies.len(), 1);
    let ev = r.take_status_events();
    assert!(matches!(
        &ev[..],
        [EndpointStatusEvent::Update {
            status: EndpointOperStatus::Up,
            ..
        }]
    ));
}

/// Member deltas that arrive between two passes compose into one net change per set; a
/// set replaced in the meantime loses its delta (the pass compares it whole).
#[test]
fn member_deltas_compose_between_passes() {
    use calico_compile::{DesiredDiff, MemberDelta};
    let m = |i: u8| npol::IpSetMember::Ip(IpAddr::from([10, 0, 0, i]));
    let delta = |key: &str, added: Vec<npol::IpSetMember>, removed: Vec<npol::IpSetMember>| {
        let mut d = DesiredDiff::default();
        d.ipset_members
            .insert(IpSetKey(key.into()), MemberDelta { added, removed });
        d
    };
    let mut c = Changed::default();
    c.add_diff(&delta("a", vec![m(1), m(2)], vec![m(9)]));
    c.add_diff(&delta("a", vec![m(9)], vec![m(1), m(3)]));
    let (added, removed) = &c.members[&IpSetKey("a".into())];
    assert_eq!(added.iter().copied().collect::<Vec<_>>(), vec![m(2)]);
    assert_eq!(removed.iter().copied().collect::<Vec<_>>(), vec![m(3)]);

    c.add_diff(&delta("b", vec![m(1)], vec![]));
    let mut replace = DesiredDiff::default();
    replace.ipsets_upserted.insert(
        IpSetKey("b".into()),
        Arc::new(npol::IpSet::new(npol::IpSetType::Net)),
    );
    c.add_diff(&replace);
    c.add_diff(&delta("b", vec![m(4)], vec![]));
    assert!(!c.members.contains_key(&IpSetKey("b".into())));
    assert!(c.ipsets.contains(&IpSetKey("b".into())));
}

/// An object that cannot even be encoded fails permanently: logged, its endpoint in error,
/// never retried by later passes however long one waits — until the desired object
/// changes (or a whole new desired state arrives).
#[tokio::test(start_paused = true)]
async fn an_unencodable_object_is_not_retried_until_it_changes() {
    let (mut r, h, sw) = setup();
    h.fail_unencodable(|op| matches!(op, Op::RuleCreate { rule } if rule.entries[0].is_src));
    r.connect().await.unwrap();
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.failed_ops, 1);
    let key = kinds::object::<Rules>(&RuleKey("r-ip".into()));
    assert!(r.failures()[&key].permanent, "{:?}", r.failures());
    assert!(r
        .waiting()
        .contains_key(&kinds::object::<Policies>(&PolicyKey("p1".into()))));
    assert!(h.objects().configs[&sw].tx_policies.is_empty());
    assert!(r.next_wakeup().is_none(), "nothing to retry on a timer");
    let sent = |h: &FakeHandle| {
        h.log()
            .into_iter()
            .filter(|rec| rec.op.name() == "npol_rule_create")
            .count()
    };
    let before = sent(&h);
    // Passes over what changed (nothing) and periodic full passes leave it alone.
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(120)).await;
        r.apply_changes(&base(), &Changed::default()).await.unwrap();
    }
    assert_eq!(sent(&h), before, "a permanent failure was retried");
    assert!(r.failures()[&key].permanent);

    // The rule changes (here: VPP can encode it now, and Felix's update names it): tried
    // again, and everything converges.
    h.clear_faults();
    let mut changed = Changed::default();
    changed.kinds.rules.insert(RuleKey("r-ip".into()));
    r.apply_changes(&base(), &changed).await.unwrap();
    assert!(r.failures().is_empty(), "{:?}", r.failures());
    assert_eq!(h.objects().policies.len(), 1);
    assert_eq!(h.objects().configs[&sw].tx_policies.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_delays_grow_exponentially_in_the_running_task() {
    let (r, h, _) = setup();
    h.fail_nth("npol_policy_create", 1, -2);
    h.fail_nth("npol_policy_create", 1, -2);
    let (handle, _status, _task) = spawn(r);
    handle.apply(Arc::new(base()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let times: Vec<_> = h
        .log()
        .into_iter()
        .filter(|rec| rec.op.name() == "npol_policy_create")
        .map(|rec| rec.at)
        .collect();
    assert_eq!(times.len(), 3);
    assert_eq!(times[1] - times[0], Duration::from_millis(200));
    assert_eq!(times[2] - times[1], Duration::from_millis(400));
    assert_eq!(h.objects().policies.len(), 1);
}

#[tokio::test]
async fn dependants_of_a_failed_ipset_wait_and_others_proceed() {
    let (mut r, h, _) = setup();
    h.fail_matching(
        |op| {
            matches!(
                op,
                Op::IpSetCreate {
                    kind: npol::IpSetType::Ip
                }
            )
        },
        0,
        usize::MAX,
        -7,
    );
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let sent_rules: Vec<_> = h
        .log()
        .into_iter()
        .filter_map(|rec| match rec.op {
            Op::RuleCreate { rule } => Some(rule),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent_rules.len(),
        1,
        "only the rule on the healthy set is sent"
    );
    assert!(r
        .waiting()
        .contains_key(&kinds::object::<Rules>(&RuleKey("r-ip".into()))));
    assert!(r
        .waiting()
        .contains_key(&kinds::object::<Policies>(&PolicyKey("p1".into()))));
    assert_eq!(h.objects().ipsets.len(), 1);
}

#[tokio::test]
async fn interface_keeps_its_old_configuration_while_the_new_policy_fails() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let old = h.objects().configs[&sw].clone();
    let mut d = base();
    d.policies.insert(
        PolicyKey("p2".into()),
        npol::Policy {
            inbound: vec![RuleKey("r-ip".into())],
            outbound: Vec::new(),
        },
    );
    d.policies.remove(&PolicyKey("p1".into()));
    d.interfaces
        .get_mut(&InterfaceKey("cali-a".into()))
        .unwrap()
        .config = config(&["p2"]);
    h.fail_matching(|op| op.name() == "npol_policy_create", 0, usize::MAX, -2);
    h.clear_log();
    r.apply(&d).await.unwrap();
    assert_eq!(h.count("npol_configure_policies"), 0);
    assert_eq!(h.objects().configs[&sw], old);
    // p1 is no longer desired but still in use: it stays.
    assert_eq!(h.count("npol_policy_delete"), 0);
    assert_eq!(h.objects().policies.len(), 1);
}

#[tokio::test]
async fn prune_leaves_objects_it_does_not_own() {
    let (mut r, h, _) = setup();
    let foreign = h.create_foreign_ipset(npol::IpSetType::Net);
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    r.apply(&DesiredState::default()).await.unwrap();
    let o = h.objects();
    assert_eq!(o.ipsets.keys().copied().collect::<Vec<_>>(), vec![foreign]);
}

#[tokio::test]
async fn ip_and_port_member_removal_rebuilds_the_set_and_repoints_rules() {
    let (mut r, h, _) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let old_id = r.realized().ipsets[&IpSetKey("s-port".into())].id;
    let mut d = base();
    d.ipsets
        .insert(IpSetKey("s-port".into()), port_set(&[("10.0.0.1", 80)]));
    h.clear_log();
    r.apply(&d).await.unwrap();
    assert_eq!(
        names(&h),
        vec![
            "npol_ipset_create",
            "npol_ipset_add_del_members",
            "npol_rule_update",
            "npol_ipset_delete"
        ]
    );
    assert_eq!(h.ip_and_port_member_deletes(), 0);
    let new_id = r.realized().ipsets[&IpSetKey("s-port".into())].id;
    assert_ne!(new_id, old_id);
    let o = h.objects();
    assert!(!o.ipsets.contains_key(&old_id));
    assert_eq!(o.ipsets[&new_id], *port_set(&[("10.0.0.1", 80)]));
    let repointed = o
        .rules
        .values()
        .any(|rule| matches!(rule.entries[0].data, npol::EntryData::PortIpSet(s) if s == new_id));
    assert!(repointed);
    assert!(r.realized().orphans.ipsets.is_empty());
}

#[tokio::test]
async fn ip_set_member_changes_are_sent_as_deltas() {
    let (mut r, h, _) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let id = r.realized().ipsets[&IpSetKey("s-ip".into())].id;
    let mut d = base();
    d.ipsets
        .insert(IpSetKey("s-ip".into()), ip_set(&["10.0.0.2", "10.0.0.3"]));
    h.clear_log();
    r.apply(&d).await.unwrap();
    let ops: Vec<_> = h.log().into_iter().map(|rec| rec.op).collect();
    assert_eq!(
        ops,
        vec![
            Op::IpSetAddMembers {
                set: id,
                members: vec![npol::IpSetMember::Ip(ip("10.0.0.3"))]
            },
            Op::IpSetDelMembers {
                set: id,
                members: vec![npol::IpSetMember::Ip(ip("10.0.0.1"))]
            },
        ]
    );
    assert_eq!(h.objects().ipsets[&id], *ip_set(&["10.0.0.2", "10.0.0.3"]));
}

#[tokio::test]
async fn changed_rule_and_policy_are_updated_in_place() {
    let (mut r, h, _) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let mut d = base();
    d.rules.insert(
        RuleKey("r-ip".into()),
        rule(npol::RuleAction::Deny, "s-ip", false),
    );
    d.policies
        .get_mut(&PolicyKey("p1".into()))
        .unwrap()
        .outbound
        .clear();
    h.clear_log();
    r.apply(&d).await.unwrap();
    assert_eq!(names(&h), vec!["npol_rule_update", "npol_policy_update"]);
    let rid = r.realized().kinds.rules[&RuleKey("r-ip".into())].id;
    assert_eq!(h.objects().rules[&rid].action, npol::RuleAction::Deny);
}

#[tokio::test]
async fn driver_restart_with_state_file_makes_zero_writes() {
    let (cfg, _dir) = state_file_config();
    let (dp, h) = fake::new();
    h.add_interface("tap1", "cali-a");
    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let realized = r.realized().clone();
    drop(r);
    let writes = h.writes();

    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg);
    assert_eq!(r.realized(), &realized);
    r.connect().await.unwrap();
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.writes, 0);
    assert_eq!(h.writes(), writes);
    let ev = r.take_status_events();
    assert!(matches!(
        &ev[..],
        [EndpointStatusEvent::Update {
            status: EndpointOperStatus::Up,
            ..
        }]
    ));
}

/// A configuration with a state file in a new temporary directory (kept while it lives).
fn state_file_config() -> (ReconcilerConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ReconcilerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..ReconcilerConfig::default()
    };
    (cfg, dir)
}

/// A reconciler with a state file that programmed [`base`], restarted (a new one on the
/// same VPP run, loading the file) and connected.
async fn restarted_after_base() -> (Reconciler<FakeDataplane>, FakeHandle, tempfile::TempDir) {
    let (cfg, dir) = state_file_config();
    let (dp, h) = fake::new();
    h.add_interface("tap1", "cali-a");
    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg);
    r.connect().await.unwrap();
    (r, h, dir)
}

#[tokio::test]
async fn adopted_objects_no_longer_desired_are_pruned_on_the_first_apply() {
    let (mut r, h, _dir) = restarted_after_base().await;
    h.clear_log();
    let mut d = base();
    d.interfaces.clear();
    d.policies.clear();
    r.apply(&d).await.unwrap();
    assert_eq!(h.count("npol_policy_delete"), 1);
    assert_eq!(h.count("npol_rule_create"), 0);
    assert!(h.objects().policies.is_empty());
    assert_eq!(h.objects().rules.len(), 2);
}

#[tokio::test]
async fn vpp_restart_reprograms_everything() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let before = h.objects();
    let tap = h
        .interfaces()
        .into_iter()
        .find(|i| i.sw_if_index == sw)
        .unwrap();
    h.restart_vpp();
    h.readd_interface(tap);
    // With nothing to write, the broken connection shows on the event stream.
    while r.next_interface_event().await.is_ok() {}
    assert!(!r.is_connected());
    assert!(r.apply(&base()).await.is_err());
    r.connect().await.unwrap();
    assert!(r.realized().is_empty());
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.failed_ops, 0);
    assert_eq!(h.objects(), before);
}

#[tokio::test(start_paused = true)]
async fn running_task_reconnects_and_reprograms_after_vpp_restart() {
    let (r, h, sw) = setup();
    let (handle, _status, _task) = spawn(r);
    handle.apply(Arc::new(base()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = h.objects();
    let tap = h
        .interfaces()
        .into_iter()
        .find(|i| i.sw_if_index == sw)
        .unwrap();
    h.restart_vpp();
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.readd_interface(tap);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.connects(), 2);
    assert_eq!(h.objects(), before);
}

/// A pod in a namespace whose policy already exists: its address joins the namespace's set,
/// and its interface gets the existing policy.
#[tokio::test]
async fn new_pod_in_existing_namespace_costs_at_most_five_writes() {
    let (mut r, h, _) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    h.add_interface("tap2", "cali-b");
    r.refresh_interfaces().await.unwrap();
    let mut d = base();
    d.ipsets.insert(
        IpSetKey("s-ip".into()),
        ip_set(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    );
    d.interfaces.insert(
        InterfaceKey("cali-b".into()),
        iface("cali-b", "10.0.0.3", &["p1"]),
    );
    h.clear_log();
    let report = r.apply(&d).await.unwrap();
    // Member add, neighbour, guard ACL attach, npol configuration, cnat enable.
    assert_eq!(report.writes, 5, "{:?}", names(&h));
    assert!(report.writes <= 5);
}

#[tokio::test]
async fn endpoint_is_pending_until_its_interface_appears() {
    let (dp, h) = fake::new();
    let mut r = Reconciler::new(dp, ReconcilerConfig::default());
    r.connect().await.unwrap();
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.pending_interfaces, 1);
    assert_eq!(h.count("npol_configure_policies"), 0);
    assert_eq!(
        r.take_status_events(),
        vec![EndpointStatusEvent::Update {
            endpoint: calico_model::EndpointId::workload("k8s", "ns/cali-a", "eth0"),
            interface: InterfaceKey("cali-a".into()),
            status: EndpointOperStatus::Down,
            reason: Some(pass::NOT_FOUND.into()),
        }]
    );
    assert!(r.has_pending_interfaces());
    let sw = h.add_interface("host-cali-a", "");
    r.refresh_interfaces().await.unwrap();
    r.apply(&base()).await.unwrap();
    assert!(h.objects().cnat.contains(&sw));
    let ev = r.take_status_events();
    assert!(matches!(
        &ev[..],
        [EndpointStatusEvent::Update {
            status: EndpointOperStatus::Up,
            ..
        }]
    ));

    // The endpoint goes: one remove, and its neighbours go with it.
    let mut d = base();
    d.interfaces.clear();
    r.apply(&d).await.unwrap();
    assert_eq!(
        r.take_status_events(),
        vec![EndpointStatusEvent::Remove {
            endpoint: calico_model::EndpointId::workload("k8s", "ns/cali-a", "eth0"),
            interface: InterfaceKey("cali-a".into()),
        }]
    );
    assert!(h.objects().neighbours.is_empty());
}

#[tokio::test]
async fn interface_lookup_prefers_tag_then_name_then_host_prefix() {
    let (dp, h) = fake::new();
    let host = h.add_interface("host-eth9", "");
    let named = h.add_interface("eth9", "");
    let mut r = Reconciler::new(dp, ReconcilerConfig::default());
    r.connect().await.unwrap();
    assert_eq!(r.lookup_interface("eth9"), Some(named));
    h.delete_interface(named);
    r.refresh_interfaces().await.unwrap();
    assert_eq!(r.lookup_interface("eth9"), Some(host));
    let tagged = h.add_interface("tap7", "eth9");
    r.refresh_interfaces().await.unwrap();
    assert_eq!(r.lookup_interface("eth9"), Some(tagged));
    assert_eq!(r.lookup_interface("nothing"), None);
}

#[tokio::test]
async fn deleted_interface_is_forgotten_and_rebound_when_recreated() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    h.delete_interface(sw);
    r.refresh_interfaces().await.unwrap();
    r.apply(&base()).await.unwrap();
    assert!(r.realized().interfaces.is_empty());
    let sw2 = h.add_interface("tap9", "cali-a");
    r.refresh_interfaces().await.unwrap();
    h.clear_log();
    r.apply(&base()).await.unwrap();
    let o = h.objects();
    assert!(o.cnat.contains(&sw2));
    assert_eq!(o.configs[&sw2].tx_policies.len(), 1);
    assert_eq!(o.acl_lists[&sw2].0.len(), 1);
    assert_eq!(h.writes(), 4);
}

#[tokio::test]
async fn link_down_reports_the_endpoint_down() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    r.take_status_events();
    h.set_link(sw, true, false);
    r.next_interface_event().await.unwrap(); // the Rescan from add_interface
    r.next_interface_event().await.unwrap();
    r.apply(&base()).await.unwrap();
    let ev = r.take_status_events();
    assert!(matches!(
        &ev[..],
        [EndpointStatusEvent::Update {
            status: EndpointOperStatus::Down,
            ..
        }]
    ));
}

#[tokio::test(start_paused = true)]
async fn churn_is_coalesced_into_few_passes() {
    let (dp, h) = fake::new();
    h.add_interface("tap1", "cali-a");
    let r = Reconciler::new(
        dp,
        ReconcilerConfig {
            min_apply_interval: Duration::from_millis(100),
            ..ReconcilerConfig::default()
        },
    );
    let (handle, _status, _task) = spawn(r);
    handle.apply(Arc::new(base()));
    tokio::time::sleep(Duration::from_millis(1)).await;
    h.clear_log();
    // 50 updates within 50 ms, each adding one member.
    let mut d = base();
    for i in 0..50 {
        Arc::make_mut(d.ipsets.get_mut(&IpSetKey("s-ip".into())).unwrap())
            .members
            .insert(npol::IpSetMember::Ip(ip(&format!("10.1.0.{i}"))));
        handle.apply(Arc::new(d.clone()));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let members_ops = h.count("npol_ipset_add_del_members");
    assert!(members_ops <= 2, "{members_ops} member operations");
    let id = BTreeSet::from_iter(h.objects().ipsets.values().map(|s| s.members.len()));
    assert!(id.contains(&52));
}

#[test]
fn state_file_round_trips_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::in_dir(dir.path());
    assert!(store.load().unwrap().is_none());
    let mut realized = Realized::default();
    realized.ipsets.insert(
        IpSetKey("s".into()),
        realized::RealIpSet {
            id: crate::dataplane::IpSetId(3),
            set: (*ip_set(&["10.0.0.1"])).clone(),
        },
    );
    let state = PersistedState {
        version: realized::STATE_VERSION,
        vpp: crate::dataplane::VppIdentity("boot".into()),
        realized,
        generation: 1,
    };
    let mut store = store;
    store.save(&state.vpp, &state.realized).unwrap();
    assert_eq!(store.load().unwrap(), Some(state));
    // The snapshot and its (empty) journal.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 2);
}

#[test]
fn corrupt_state_file_is_reported_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(StateStore::FILE_NAME), b"{not json").unwrap();
    assert!(matches!(
        StateStore::in_dir(dir.path()).load(),
        Err(StateError::Parse { .. })
    ));
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let b = Backoff::default();
    assert_eq!(b.delay(1), Duration::from_millis(200));
    assert_eq!(b.delay(2), Duration::from_millis(400));
    assert_eq!(b.delay(100), Duration::from_secs(30));
}

#[tokio::test]
async fn synthetic_cluster_converges_and_a_new_pod_costs_five_writes() {
    let (dp, h) = fake::new();
    for j in 0..40 {
        let name = synthetic::interface_name(j);
        h.add_interface(&format!("tap{j}"), &name);
    }
    let mut r = Reconciler::new(dp, ReconcilerConfig::default());
    r.connect().await.unwrap();
    let mut d = synthetic::synthetic(30, 6, 600);
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.failed_ops, 0);
    assert_eq!(report.pending_interfaces, 0);
    assert_eq!(h.objects().cnat.len(), 30);
    synthetic::add_pod(&mut d, 35, 30, 6);
    let report = r.apply(&d).await.unwrap();
    // One member add, one neighbour, one guard attach, one configuration, one cnat enable.
    assert_eq!(report.writes, 5);
    assert_eq!(r.apply(&d).await.unwrap().writes, 0);
}

#[tokio::test(start_paused = true)]
async fn summary_reports_failed_objects_until_they_recover() {
    let (r, h, _) = setup();
    h.fail_nth("npol_policy_create", 1, -2);
    let (handle, _status, _task) = spawn(r);
    let summary = handle.summary();
    handle.apply(Arc::new(base()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = summary.borrow().clone();
    assert!(s.connected);
    assert_eq!(s.failed.len(), 1);
    assert_eq!(s.failed[0].0, "policy p1");
    assert_eq!(s.failed[0].2, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(summary.borrow().failed.is_empty());
}

/// VPP reuses interface indexes: a removed endpoint's old binding must not deny the
/// interface another endpoint now holds.
#[tokio::test]
async fn unbinding_leaves_an_interface_another_endpoint_now_holds() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    // cali-a is gone; its interface index now carries cali-b's tag.
    let mut info = h
        .interfaces()
        .into_iter()
        .find(|i| i.sw_if_index == sw)
        .unwrap();
    h.delete_interface(sw);
    info.tag = "cali-b".into();
    h.readd_interface(info);
    r.refresh_interfaces().await.unwrap();
    let mut d = base();
    d.interfaces.clear();
    d.interfaces.insert(
        InterfaceKey("cali-b".into()),
        iface("cali-b", "10.0.0.2", &["p1"]),
    );
    r.apply(&d).await.unwrap();
    let o = h.objects();
    assert_eq!(o.configs[&sw].tx_policies.len(), 1, "cali-b's policy stays");
    assert!(o.cnat.contains(&sw));
    assert_eq!(o.neighbours.len(), 1);
    assert!(o.neighbours.contains_key(&(sw, ip("10.0.0.2"))));
    assert_eq!(r.realized().interfaces.len(), 1);
}

mod converge {
    //! Law: whatever sequence of desired states arrives, and whichever single operation VPP
    //! refuses on the way, the fake ends up holding exactly the last desired state (no
    //! leaks), and one more pass writes nothing.

    use super::*;
    use proptest::prelude::*;

    const KINDS: [npol::IpSetType; 4] = [
        npol::IpSetType::Ip,
        npol::IpSetType::Net,
        npol::IpSetType::IpAndPort,
        npol::IpSetType::Ip,
    ];

    fn member(kind: npol::IpSetType, n: u8) -> npol::IpSetMember {
        let addr = IpAddr::from([10, 9, 0, n % 8]);
        match kind {
            npol::IpSetType::Ip => npol::IpSetMember::Ip(addr),
            npol::IpSetType::Net => npol::IpSetMember::Net(
                ipnet::IpNet::new(IpAddr::from([10, n % 8, 0, 0]), 16).unwrap(),
            ),
            npol::IpSetType::IpAndPort => npol::IpSetMember::IpAndPort {
                addr,
                proto: 6,
                port: 80 + u16::from(n % 3),
            },
        }
    }

    /// A desired state from choices: which rules (and their sets), their sets and actions,
    /// policies over rules, interfaces over policies, and set members.
    #[derive(Debug, Clone)]
    struct Shape {
        rule_sets: [u8; 4],
        rule_deny: [bool; 4],
        policy_rules: [Vec<u8>; 3],
        iface_policies: [Vec<u8>; 2],
        members: [Vec<u8>; 4],
    }

    fn shape() -> impl Strategy<Value = Shape> {
        let rules = prop::collection::vec(0u8..4, 0..3);
        let pols = prop::collection::vec(0u8..3, 0..3);
        let members = prop::collection::vec(0u8..12, 0..5);
        (
            [0u8..4, 0u8..4, 0u8..4, 0u8..4],
            any::<[bool; 4]>(),
            [rules.clone(), rules.clone(), rules],
            [pols.clone(), pols],
            [members.clone(), members.clone(), members.clone(), members],
        )
            .prop_map(
                |(rule_sets, rule_deny, policy_rules, iface_policies, members)| Shape {
                    rule_sets,
                    rule_deny,
                    policy_rules,
                    iface_policies,
                    members,
                },
            )
    }

    fn build(s: &Shape) -> DesiredState {
        let mut d = DesiredState::default();
        d.acls.extend(calico_compile::guard::guard_acls());
        for (i, pols) in s.iface_policies.iter().enumerate() {
            let name = format!("cali-{i}");
            let keys: Vec<_> = pols.iter().map(|p| format!("p{p}")).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut want = iface(&name, &format!("10.8.0.{i}"), &keys);
            want.config.rx_policies = want.config.tx_policies.clone();
            d.interfaces.insert(InterfaceKey(name), want);
            for p in pols {
                let rules = &s.policy_rules[*p as usize];
                d.policies.insert(
                    PolicyKey(format!("p{p}")),
                    npol::Policy {
                        inbound: rules.iter().map(|r| RuleKey(format!("r{r}"))).collect(),
                        outbound: rules
                            .iter()
                            .rev()
                            .map(|r| RuleKey(format!("r{r}")))
                            .collect(),
                    },
                );
                for r in rules {
                    let set = s.rule_sets[*r as usize];
                    let kind = KINDS[set as usize];
                    let action = if s.rule_deny[*r as usize] {
                        npol::RuleAction::Deny
                    } else {
                        npol::RuleAction::Allow
                    };
                    let set_name = format!("s{set}");
                    d.rules.insert(
                        RuleKey(format!("r{r}")),
                        rule(action, &set_name, kind == npol::IpSetType::IpAndPort),
                    );
                    let mut ipset = npol::IpSet::new(kind);
                    for m in &s.members[set as usize] {
                        ipset.members.insert(member(kind, *m));
                    }
                    d.ipsets.insert(IpSetKey(set_name), Arc::new(ipset));
                }
            }
        }
        d
    }

    fn assert_holds_exactly(r: &Reconciler<FakeDataplane>, h: &FakeHandle, d: &DesiredState) {
        let o = h.objects();
        let real = r.realized();
        assert_eq!(o.ipsets.len(), d.ipsets.len(), "ipsets");
        assert_eq!(o.rules.len(), d.rules.len(), "rules");
        assert_eq!(o.policies.len(), d.policies.len(), "policies");
        for (k, want) in &d.ipsets {
            assert_eq!(&o.ipsets[&real.ipsets[k].id], &**want, "ipset {k}");
        }
        for (k, want) in &d.rules {
            let got = &o.rules[&real.kinds.rules[k].id];
            assert_eq!(got.action, want.action, "rule {k}");
            assert_eq!(got.entries.len(), want.entries.len());
            for (g, w) in got.entries.iter().zip(&want.entries) {
                let (npol::EntryData::IpSet(gs) | npol::EntryData::PortIpSet(gs)) = &g.data else {
                    panic!("rule {k}: entry {g:?}");
                };
                let (npol::EntryData::IpSet(ws) | npol::EntryData::PortIpSet(ws)) = &w.data else {
                    panic!("rule {k}: entry {w:?}");
                };
                assert_eq!(*gs, real.ipsets[ws].id, "rule {k} points at {ws}");
            }
        }
        for (k, want) in &d.policies {
            let got = &o.policies[&real.kinds.policies[k].id];
            let ids: Vec<_> = want
                .inbound
                .iter()
                .map(|r| real.kinds.rules[r].id)
                .collect();
            assert_eq!(got.inbound, ids, "policy {k}");
        }
        for (k, want) in &d.interfaces {
            let sw = real.interfaces[k].sw_if_index;
            let got = &o.configs[&sw];
            let ids: Vec<_> = want
                .config
                .tx_policies
                .iter()
                .map(|p| real.kinds.policies[p].id)
                .collect();
            assert_eq!(got.tx_policies, ids, "interface {k}");
            assert_eq!(got.policy_default_tx, want.config.policy_default_tx);
            assert!(o.cnat.contains(&sw));
        }
        assert_eq!(o.neighbours.len(), d.interfaces.len());
        assert_eq!(h.ip_and_port_member_deletes(), 0);
    }

    /// A pass towards `d`; with `hinted`, one told only what changed since `prev`.
    async fn pass(
        r: &mut Reconciler<FakeDataplane>,
        hinted: bool,
        prev: Option<&DesiredState>,
        d: &DesiredState,
    ) -> Result<PassReport, crate::dataplane::DataplaneError> {
        match prev {
            Some(p) if hinted => r.apply_changes(d, &Changed::from_diff(&p.diff(d))).await,
            _ => r.apply(d).await,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn any_sequence_with_one_refusal_converges_to_the_last_state_without_leaks(
            shapes in prop::collection::vec(shape(), 1..5),
            fail_at in 0usize..40,
            fail_again in 0usize..40,
            retval in prop_oneof![Just(-2i32), Just(-6), Just(1)],
            restart_after in prop::option::of(0usize..4),
            driver_restart_after in prop::option::of(0usize..4),
            hinted in any::<bool>(),
            members_only in any::<[bool; 5]>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let (dp, h) = fake::new();
                h.add_interface("tap0", "cali-0");
                h.add_interface("tap1", "cali-1");
                // "No such entry" on a delete means it is gone, in VPP as here: inject it
                // only where it is a refusal.
                let is_delete = |op: &Op| {
                    op.name().ends_with("_delete") || matches!(op, Op::Neighbour { is_add: false, .. })
                };
                h.fail_matching(move |op| retval != -6 || !is_delete(op), fail_at, 1, retval);
                h.fail_matching(move |op| !is_delete(op), fail_again, 1, -7);
                let dir = tempfile::tempdir().unwrap();
                let cfg = ReconcilerConfig {
                    state_dir: Some(dir.path().to_path_buf()),
                    // Hinted passes only: no periodic full pass hides a missed object.
                    full_pass_interval: Duration::from_secs(1 << 30),
                    ..ReconcilerConfig::default()
                };
                let mut r = Reconciler::new(dp, cfg.clone());
                r.connect().await.unwrap();
                // Some states differ from the one before in set members only, as most do.
                let mut shapes = shapes;
                for i in 1..shapes.len() {
                    if members_only[i] {
                        let members = shapes[i].members.clone();
                        shapes[i] = Shape { members, ..shapes[i - 1].clone() };
                    }
                }
                let states: Vec<_> = shapes.iter().map(build).collect();
                let mut prev: Option<&DesiredState> = None;
                for (i, d) in states.iter().enumerate() {
                    pass(&mut r, hinted, prev, d).await.unwrap();
                    prev = Some(d);
                    if driver_restart_after == Some(i) {
                        // The driver restarts: what it knew comes back from the state file,
                        // and the same desired state costs nothing.
                        let realized = r.realized().clone();
                        drop(r);
                        r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
                        assert_eq!(r.realized(), &realized);
                        r.connect().await.unwrap();
                    }
                    if restart_after == Some(i) {
                        // VPP restarts empty; the CNI recreates the pod interfaces.
                        let taps: Vec<_> = h.interfaces().into_iter().filter(|t| t.sw_if_index.0 > 0).collect();
                        h.restart_vpp();
                        for t in taps {
                            h.readd_interface(t);
                        }
                        while r.next_interface_event().await.is_ok() {}
                        r.connect().await.unwrap();
                        assert!(r.realized().is_empty());
                    }
                }
                let last = states.last().unwrap();
                for _ in 0..10 {
                    pass(&mut r, hinted, Some(last), last).await.unwrap();
                    if r.failures().is_empty() && r.waiting().is_empty() {
                        break;
                    }
                    tokio::time::advance(Duration::from_secs(60)).await;
                }
                assert!(r.failures().is_empty(), "{:?}", r.failures());
                assert_holds_exactly(&r, &h, last);
                assert_eq!(r.apply(last).await.unwrap().writes, 0);
            });
        }
    }
}

#[tokio::test(start_paused = true)]
async fn connection_attempts_back_off_until_vpp_is_up() {
    let (r, h, sw) = setup();
    h.refuse_connects(3);
    let (handle, _status, _task) = spawn(r);
    handle.apply(Arc::new(base()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = h.connect_attempts();
    assert_eq!(t.len(), 4);
    let gaps: Vec<_> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        vec![
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(400)
        ]
    );
    assert!(h.objects().cnat.contains(&sw));
}

#[tokio::test]
async fn guard_is_attached_before_the_policy_goes_live() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let n = names(&h);
    assert_eq!(h.count("acl_add_replace"), 2, "{n:?}");
    let order = [
        "acl_add_replace",
        "acl_interface_set_acl_list",
        "npol_configure_policies",
        "feature_cnat_enable_disable",
    ];
    for w in order.windows(2) {
        assert!(
            position(&n, w[0]).1 < position(&n, w[1]).0,
            "{w:?} in {n:?}"
        );
    }
    let o = h.objects();
    let (input, output) = &o.acl_lists[&sw];
    let by_tag = |id: &crate::dataplane::AclIndex| o.acls[id].tag.clone();
    assert!(by_tag(&input[0]).ends_with(calico_compile::guard::GUARD_RX));
    assert!(by_tag(&output[0]).ends_with(calico_compile::guard::GUARD_TX));
    assert_eq!(r.apply(&base()).await.unwrap().writes, 0);
}

#[tokio::test]
async fn interface_stays_dark_while_its_guard_acl_fails() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    h.fail_nth("acl_add_replace", 1, -1);
    let report = r.apply(&base()).await.unwrap();
    assert_eq!(report.failed_ops, 1);
    let o = h.objects();
    assert!(
        !o.cnat.contains(&sw),
        "npol must not go live without the guard"
    );
    assert!(!o.acl_lists.contains_key(&sw));
    // Fail closed meanwhile: deny-all, not the endpoint's policy.
    assert_eq!(o.configs[&sw].policy_default_tx, npol::PolicyDefault::Deny);
    assert!(o.configs[&sw].tx_policies.is_empty());
    assert!(r.summary().waiting >= 1);
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    r.apply(&base()).await.unwrap();
    let o = h.objects();
    assert!(o.cnat.contains(&sw));
    assert_eq!(o.acl_lists[&sw].0.len(), 1);
    assert_eq!(o.configs[&sw].tx_policies.len(), 1);
}

#[tokio::test]
async fn guard_acl_changed_in_the_desired_state_is_replaced_in_place() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let before = h.objects().acl_lists[&sw].clone();
    let mut d = base();
    let key = calico_compile::AclKey(calico_compile::guard::GUARD_RX.into());
    d.acls.get_mut(&key).unwrap().rules.pop();
    h.clear_log();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(names(&h), vec!["acl_add_replace"]);
    assert_eq!(report.writes, 1);
    let o = h.objects();
    assert_eq!(o.acl_lists[&sw], before, "ids unchanged, no re-attach");
    let want = &d.acls[&key];
    let held = &o.acls[&before.0[0]];
    assert_eq!(held.tag, want.tag);
    let rules: Vec<_> = want.rules.iter().map(kinds::acl::acl_rule).collect();
    assert_eq!(held.rules, rules);
}

#[tokio::test]
async fn removing_every_endpoint_and_acl_detaches_and_deletes_the_guard() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    r.apply(&DesiredState::default()).await.unwrap();
    let o = h.objects();
    assert!(o.acls.is_empty());
    assert!(!o.acl_lists.contains_key(&sw));
    assert!(r.realized().is_empty());
}

#[tokio::test]
async fn unbound_interface_keeps_the_guard_while_it_is_still_desired() {
    let (mut r, h, sw) = setup();
    r.connect().await.unwrap();
    r.apply(&base()).await.unwrap();
    let mut d = base();
    d.interfaces.clear();
    r.apply(&d).await.unwrap();
    let o = h.objects();
    assert_eq!(o.acl_lists[&sw].0.len(), 1, "fail closed: the guard stays");
    assert_eq!(o.acls.len(), 2);
}

mod hinted {
    //! Passes told what changed look only at that, and still reach what a full pass would.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn diffs_given_to_the_task_are_folded_in_and_programmed() {
        let (r, h, _) = setup();
        let (handle, _status, _task) = spawn(r);
        let mut summary = handle.summary();
        let mut d = base();
        handle.apply(Arc::new(d.clone()));
        for i in 0..20 {
            let old = d.clone();
            Arc::make_mut(d.ipsets.get_mut(&IpSetKey("s-ip".into())).unwrap())
                .members
                .insert(npol::IpSetMember::Ip(ip(&format!("10.2.0.{i}"))));
            handle.apply_diff(old.diff(&d));
        }
        let sent = handle.sent();
        assert_eq!(sent, 21);
        summary
            .wait_for(|s| s.inputs == sent && s.failed.is_empty())
            .await
            .unwrap();
        let sets: Vec<usize> = h
            .objects()
            .ipsets
            .values()
            .map(|s| s.members.len())
            .collect();
        assert!(sets.contains(&22), "{sets:?}");
        // The first pass took the whole burst, so members went in one or two calls.
        assert!(h.count("npol_ipset_add_del_members") <= 3);
    }

    fn changed(old: &DesiredState, new: &DesiredState) -> Changed {
        Changed::from_diff(&old.diff(new))
    }

    #[tokio::test]
    async fn a_rebuilt_port_set_repoints_its_rules_though_only_the_set_changed() {
        let (mut r, h, _) = setup();
        r.connect().await.unwrap();
        let old = base();
        r.apply(&old).await.unwrap();
        let mut new = old.clone();
        new.ipsets
            .insert(IpSetKey("s-port".into()), port_set(&[("10.0.0.1", 80)]));
        let c = changed(&old, &new);
        assert_eq!(c.ipsets.len(), 1);
        assert!(c.kinds.rules.is_empty());
        h.clear_log();
        r.apply_changes(&new, &c).await.unwrap();
        let n = names(&h);
        // New set, filled, the rule repointed (in place), the old set deleted.
        assert!(n.contains(&"npol_rule_update"), "{n:?}");
        assert!(n.contains(&"npol_ipset_delete"), "{n:?}");
        let id = r.realized().ipsets[&IpSetKey("s-port".into())].id;
        let rule = &h.objects().rules[&r.realized().kinds.rules[&RuleKey("r-port".into())].id];
        assert_eq!(rule.entries[0].data, npol::EntryData::PortIpSet(id));
        assert_eq!(
            r.apply(&new).await.unwrap().writes,
            0,
            "a full pass finds nothing left"
        );
    }

    #[tokio::test]
    async fn a_member_change_compares_nothing_else_and_writes_one_call() {
        let (mut r, h, _) = setup();
        r.connect().await.unwrap();
        let old = base();
        r.apply(&old).await.unwrap();
        let mut new = old.clone();
        new.ipsets.insert(
            IpSetKey("s-ip".into()),
            ip_set(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        );
        h.clear_log();
        let report = r.apply_changes(&new, &changed(&old, &new)).await.unwrap();
        assert_eq!(report.writes, 1);
        assert_eq!(names(&h), vec!["npol_ipset_add_del_members"]);
        assert_eq!(r.apply(&new).await.unwrap().writes, 0);
    }

    #[tokio::test]
    async fn a_refused_set_holds_back_its_dependants_and_they_follow_its_recovery() {
        let (mut r, h, _) = setup();
        r.connect().await.unwrap();
        let old = base();
        r.apply(&old).await.unwrap();
        r.take_status_events();
        // A new set and a rule on it, added to the policy: the set's creation is refused.
        let mut new = old.clone();
        new.ipsets
            .insert(IpSetKey("s-new".into()), ip_set(&["10.0.0.9"]));
        new.rules.insert(
            RuleKey("r-new".into()),
            rule(npol::RuleAction::Deny, "s-new", false),
        );
        new.policies
            .get_mut(&PolicyKey("p1".into()))
            .unwrap()
            .inbound
            .insert(0, RuleKey("r-new".into()));
        h.fail_matching(|op| matches!(op, Op::IpSetCreate { .. }), 0, 1, -2);
        let c = changed(&old, &new);
        r.apply_changes(&new, &c).await.unwrap();
        assert_eq!(r.failures().len(), 1);
        assert!(r
            .waiting()
            .contains_key(&kinds::object::<Rules>(&RuleKey("r-new".into()))));
        assert!(r
            .waiting()
            .contains_key(&kinds::object::<Policies>(&PolicyKey("p1".into()))));
        // Nothing else changed; the retry comes from the failure, not from the hint.
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(60)).await;
        r.apply_changes(&new, &Changed::default()).await.unwrap();
        assert!(r.failures().is_empty() && r.waiting().is_empty());
        let p = &h.objects().policies[&r.realized().kinds.policies[&PolicyKey("p1".into())].id];
        assert_eq!(
            p.inbound[0],
            r.realized().kinds.rules[&RuleKey("r-new".into())].id
        );
        assert_eq!(r.apply(&new).await.unwrap().writes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tag_set_without_an_event_is_found_though_other_events_keep_coming() {
        let (r, h, sw) = setup();
        let untagged = h.add_interface("loop5", "");
        let mut d = base();
        d.interfaces.insert(
            InterfaceKey("cali-b".into()),
            iface("cali-b", "10.0.0.2", &["p1"]),
        );
        let (handle, _status, _task) = spawn(r);
        handle.apply(Arc::new(d));
        tokio::time::sleep(Duration::from_millis(10)).await;
        h.set_tag_silently(untagged, "cali-b");
        // Another interface flaps every 200 ms: the wake-ups must not postpone the rescan.
        for k in 0..20 {
            h.set_link(sw, true, k % 2 == 0);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(h.objects().cnat.contains(&untagged), "never bound");
    }

    #[tokio::test]
    async fn a_new_interface_table_makes_the_next_pass_full() {
        let (mut r, h, _) = setup();
        r.connect().await.unwrap();
        let mut d = base();
        d.interfaces.insert(
            InterfaceKey("cali-b".into()),
            iface("cali-b", "10.0.0.2", &["p1"]),
        );
        r.apply(&d).await.unwrap();
        assert_eq!(r.summary().pending_interfaces, 1);
        // The interface appears; the hint names nothing, the pending endpoint is looked at.
        h.add_interface("tap2", "cali-b");
        r.next_interface_event().await.unwrap();
        let report = r.apply_changes(&d, &Changed::default()).await.unwrap();
        assert!(report.writes > 0);
        assert_eq!(r.summary().pending_interfaces, 0);
        assert_eq!(r.apply(&d).await.unwrap().writes, 0);
    }
}

/// Routes are a generic kind: created after interfaces, a changed next hop is one add (it
/// replaces the paths), a removed route is deleted, nothing is rewritten after a driver
/// restart, a changed pass looks only at what changed, and a refused add is retried.
#[tokio::test]
async fn routes_are_programmed_replaced_pruned_and_adopted() {
    use calico_compile::{DesiredRoute, NextHop, RouteKey};
    let dir = tempfile::tempdir().unwrap();
    let cfg = ReconcilerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        },
        ..ReconcilerConfig::default()
    };
    let (dp, h) = fake::new();
    h.add_interface("tap1", "cali-a");
    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    let key = |s: &str| RouteKey(s.parse().unwrap());
    let via = |s: &str| DesiredRoute {
        next_hop: NextHop::Via(ip(s)),
    };
    let mut d = base();
    d.routes.insert(key("10.70.1.0/26"), via("192.168.1.2"));
    d.routes.insert(key("fd00:70::/122"), via("fd00:1::2"));
    r.apply(&d).await.unwrap();
    let routes = |h: &FakeHandle| h.objects().routes;
    assert_eq!(routes(&h).len(), 2);
    assert_eq!(
        routes(&h)[&"10.70.1.0/26".parse().unwrap()],
        RoutePath::Via(ip("192.168.1.2"))
    );
    let names = names(&h);
    assert!(
        position(&names, "ip_route_add_del").0 > position(&names, "feature_cnat_enable_disable").0,
        "routes come after interfaces: {names:?}"
    );

    // The next hop moves: one replacing add, seen by a changed pass.
    h.clear_log();
    let mut d2 = d.clone();
    d2.routes.insert(key("10.70.1.0/26"), via("192.168.1.3"));
    let diff = d.diff(&d2);
    let report = r
        .apply_changes(&d2, &Changed::from_diff(&diff))
        .await
        .unwrap();
    assert_eq!(report.writes, 1);
    assert_eq!(
        routes(&h)[&"10.70.1.0/26".parse().unwrap()],
        RoutePath::Via(ip("192.168.1.3"))
    );

    // A driver restart adopts them: no write.
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    assert_eq!(r.apply(&d2).await.unwrap().writes, 0);

    // A refused add is retried; the other route is deleted meanwhile.
    let mut d3 = d2.clone();
    d3.routes.remove(&key("fd00:70::/122"));
    d3.routes.insert(key("10.70.2.0/26"), via("192.168.1.4"));
    h.fail_nth("ip_route_add_del", 1, -1);
    let report = r.apply(&d3).await.unwrap();
    assert_eq!(report.failed_objects, 1);
    assert!(r
        .failures()
        .contains_key(&kinds::object::<kinds::route::Routes>(&key("10.70.2.0/26"))));
    assert!(!routes(&h).contains_key(&"fd00:70::/122".parse().unwrap()));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = r.apply(&d3).await.unwrap();
    assert_eq!(report.failed_objects, 0);
    assert_eq!(routes(&h).len(), 2);
    assert_eq!(r.realized().kinds.routes.len(), 2);
}

/// Tunnels are interfaces the driver creates and owns: built in four writes in one pass
/// (create, unnumbered to the uplink, cnat, up) before the routes into them; the uplink
/// gets cnat too (npol judges what enters by it); adopted with no write
/// after a driver restart; rebuilt, with their routes repointed, when VPP lost one; deleted
/// after their routes when Felix withdraws them; and waiting, not failing, while the uplink
/// is missing. A tunnel the driver did not create is never touched.
#[tokio::test]
async fn tunnels_are_built_owned_adopted_rebuilt_and_pruned() {
    use calico_compile::{DesiredRoute, DesiredTunnel, Encap, NextHop, RouteKey, TunnelKey};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ReconcilerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        },
        uplink: Some("host-eth0".into()),
        ..ReconcilerConfig::default()
    };
    let (dp, h) = fake::new();
    h.add_interface("tap1", "cali-a");
    let key = |s: &str| RouteKey(s.parse().unwrap());
    let tunnel = |dst: &str| TunnelKey {
        encap: Encap::Ipip,
        src: ip("192.168.1.1"),
        dst: ip(dst),
    };
    let into = |dst: &str| DesiredRoute {
        next_hop: NextHop::Tunnel(tunnel(dst)),
    };
    let mut d = base();
    d.tunnels.insert(tunnel("192.168.1.2"), DesiredTunnel::P2P);
    d.tunnels.insert(tunnel("192.168.1.3"), DesiredTunnel::P2P);
    d.routes.insert(key("10.70.1.0/26"), into("192.168.1.2"));
    d.routes.insert(key("10.70.1.64/26"), into("192.168.1.2"));
    d.routes.insert(key("10.70.2.0/26"), into("192.168.1.3"));
    d.uplinks = calico_compile::routes::desired_uplinks();

    // No uplink in VPP yet: the uplink, the tunnels and their routes wait; nothing fails.
    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.failed_objects, 0);
    assert_eq!(report.waiting_objects, 6, "{:?}", r.waiting());
    assert!(h.objects().ipip.is_empty() && h.objects().routes.is_empty());

    let uplink = h.add_interface("host-eth0", "");
    // A tunnel someone else made: never touched.
    let foreign = h.add_p2p_interface("ipip9", "");
    r.refresh_interfaces().await.unwrap();
    h.clear_log();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.waiting_objects, 0, "{:?}", r.waiting());
    assert_eq!(report.writes, 1 + 2 * 4 + 3, "{:?}", names(&h));
    let o = h.objects();
    assert!(
        o.cnat.contains(&uplink),
        "npol sees what enters by the uplink"
    );
    assert_eq!(o.ipip.len(), 2);
    for idx in o.ipip.keys() {
        assert_eq!(o.unnumbered[idx], uplink);
        assert!(o.cnat.contains(idx), "npol sees what enters by the tunnel");
        assert!(h
            .interfaces()
            .iter()
            .any(|i| i.sw_if_index == *idx && i.admin_up));
    }
    let idx_of = |h: &FakeHandle, dst: &str| {
        *h.objects()
            .ipip
            .iter()
            .find(|(_, t)| t.1 == ip(dst))
            .unwrap()
            .0
    };
    let t2 = idx_of(&h, "192.168.1.2");
    assert_eq!(
        h.objects().routes[&"10.70.1.64/26".parse().unwrap()],
        RoutePath::Interface(t2)
    );
    let ops = names(&h);
    assert!(position(&ops, "ip_route_add_del").0 > position(&ops, "sw_interface_set_flags").1);

    // A driver restart adopts tunnels and routes: no write.
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    assert_eq!(r.apply(&d).await.unwrap().writes, 0);

    // The uplink is re-created (VPP hands its freed index out again): the delete event
    // drops what the driver had made on it, and cnat follows the new interface.
    h.delete_interface(uplink);
    let readded = h.add_interface("host-eth0", "");
    assert_eq!(readded, uplink, "VPP's pools reuse the last freed index");
    r.next_interface_event().await.unwrap(); // Deleted
    r.next_interface_event().await.unwrap(); // the Rescan from add_interface
    h.clear_log();
    r.apply(&d).await.unwrap();
    assert!(h.objects().cnat.contains(&uplink));
    let ops = names(&h);
    assert_eq!(
        ops.first().copied(),
        Some("feature_cnat_enable_disable"),
        "{ops:?}"
    );

    // VPP lost a tunnel: the next write to it fails, it is built again, routes follow.
    let built = h.count("ipip_add_tunnel");
    h.delete_interface(t2);
    r.refresh_interfaces().await.unwrap();
    let mut d2 = d.clone();
    d2.routes.insert(key("10.70.3.0/26"), into("192.168.1.2"));
    let diff = d.diff(&d2);
    r.apply_changes(&d2, &Changed::from_diff(&diff))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    r.apply(&d2).await.unwrap();
    let t2b = idx_of(&h, "192.168.1.2");
    assert_eq!(h.count("ipip_add_tunnel"), built + 1, "{:?}", names(&h));
    for dst in ["10.70.1.0/26", "10.70.1.64/26", "10.70.3.0/26"] {
        assert_eq!(
            h.objects().routes[&dst.parse().unwrap()],
            RoutePath::Interface(t2b),
            "{dst}"
        );
    }

    // Felix withdraws node 192.168.1.3's block: its route, then its tunnel, are deleted.
    h.clear_log();
    let mut d3 = d2.clone();
    d3.routes.remove(&key("10.70.2.0/26"));
    d3.tunnels.remove(&tunnel("192.168.1.3"));
    let diff = d2.diff(&d3);
    let report = r
        .apply_changes(&d3, &Changed::from_diff(&diff))
        .await
        .unwrap();
    assert_eq!(report.writes, 2, "{:?}", names(&h));
    assert_eq!(names(&h), vec!["ip_route_add_del", "ipip_del_tunnel"]);
    assert_eq!(h.objects().ipip.len(), 1);
    assert!(h.interfaces().iter().any(|i| i.sw_if_index == foreign));

    // The uplink setting is gone: nothing is deleted, the tunnel just waits.
    cfg.uplink = None;
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg);
    r.connect().await.unwrap();
    let report = r.apply(&d3).await.unwrap();
    assert_eq!(h.objects().ipip.len(), 1);
    assert!(report.waiting_objects >= 1);
}

/// SNAT for masquerading pools: the settings (addresses and policy), the exclusions
/// and, last, the inclusion of the bound pod interface; adopted with no write after a
/// restart (cnat cannot be read back, and a blind re-add would bump its refcount); the
/// inclusion follows a re-created interface; all of it removed, inclusion first, when no
/// pool masquerades any more.
#[tokio::test]
async fn snat_is_set_once_followed_and_removed_in_order() {
    use calico_compile::{
        DesiredSnat, DesiredSnatExclude, DesiredSnatIf, SnatExcludeKey, SnatIfKey, SnatKey,
    };
    let (cfg, _dir) = state_file_config();
    let (dp, h) = fake::new();
    let sw = h.add_interface("tap1", "cali-a");
    let mut d = base();
    let node: std::net::Ipv4Addr = "192.168.1.1".parse().unwrap();
    d.snat.insert(
        SnatKey,
        DesiredSnat {
            v4: Some(node),
            v6: None,
        },
    );
    for n in ["10.70.0.0/16", "192.168.1.1/32", "10.96.0.0/12"] {
        d.snat_excludes
            .insert(SnatExcludeKey(n.parse().unwrap()), DesiredSnatExclude);
    }
    let include = SnatIfKey {
        interface: InterfaceKey("cali-a".into()),
        v6: false,
    };
    d.snat_interfaces.insert(include.clone(), DesiredSnatIf);

    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    r.apply(&d).await.unwrap();
    let o = h.objects();
    assert_eq!(o.snat_addresses, Some((Some(node), None)));
    assert!(o.snat_if_pfx);
    assert_eq!(o.snat_excludes.len(), 3);
    assert_eq!(
        h.count("cnat_snat_policy_add_del_exclude_pfx"),
        3,
        "each exclusion written once"
    );
    assert_eq!(o.snat_interfaces, BTreeSet::from([(sw, false)]));
    let ops = names(&h);
    let include_at = position(&ops, "cnat_snat_policy_add_del_if").0;
    assert!(include_at > position(&ops, "cnat_snat_policy_add_del_exclude_pfx").1);
    assert!(
        position(&ops, "cnat_snat_policy_add_del_exclude_pfx").0
            > position(&ops, "cnat_set_snat_addresses_v2").0
    );
    assert!(include_at > position(&ops, "feature_cnat_enable_disable").0);

    // A driver restart adopts it all: no write (cnat has no read-back for any of it).
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    assert_eq!(r.apply(&d).await.unwrap().writes, 0);

    // The pod's interface is deleted behind the driver's back and re-created at another
    // index, while another interface takes the freed one: the inclusion follows the new
    // index, and the bit cnat kept for the old index (it has no interface-delete hook) is
    // cleared, so the other interface's traffic is not translated.
    h.delete_interface(sw);
    let other = h.add_interface("tapx", "");
    let sw2 = h.add_interface("tap2", "cali-a");
    assert_ne!(sw2, sw);
    assert_eq!(other, sw, "VPP hands the freed index out first");
    assert!(
        h.objects().snat_interfaces.contains(&(other, false)),
        "cnat keeps the deleted interface's bit"
    );
    r.refresh_interfaces().await.unwrap();
    h.clear_log();
    r.apply(&d).await.unwrap();
    assert_eq!(h.objects().snat_interfaces, BTreeSet::from([(sw2, false)]));
    assert_eq!(h.count("cnat_snat_policy_add_del_if"), 2, "{:?}", names(&h));
    assert!(r.realized().orphans.snat_inclusions.is_empty());

    // The node's address changes: only the settings are written again (the addresses and
    // the policy, back to back).
    h.clear_log();
    let mut d2 = d.clone();
    d2.snat.insert(
        SnatKey,
        DesiredSnat {
            v4: Some("192.168.1.9".parse().unwrap()),
            v6: None,
        },
    );
    let diff = d.diff(&d2);
    r.apply_changes(&d2, &Changed::from_diff(&diff))
        .await
        .unwrap();
    assert_eq!(names(&h), vec!["cnat_set_snat_addresses_v2"]);
    assert_eq!(h.objects().snat_excludes.len(), 3);

    // No pool masquerades any more: inclusion and exclusions go, then the entry (never
    // cnat's "none" policy, which translates everything).
    h.clear_log();
    let mut d3 = d2.clone();
    d3.snat.clear();
    d3.snat_excludes.clear();
    d3.snat_interfaces.clear();
    let diff = d2.diff(&d3);
    r.apply_changes(&d3, &Changed::from_diff(&diff))
        .await
        .unwrap();
    let o = h.objects();
    assert!(o.snat_interfaces.is_empty() && o.snat_excludes.is_empty());
    assert_eq!(o.snat_addresses, None);
    let ops = names(&h);
    assert_eq!(ops.len(), 5, "{ops:?}");
    assert_eq!(ops[0], "cnat_snat_policy_add_del_if");
    assert_eq!(ops[4], "cnat_set_snat_addresses_v2");

    // Masquerading again: the entry first, then what lives in it.
    h.clear_log();
    let diff = d3.diff(&d2);
    r.apply_changes(&d2, &Changed::from_diff(&diff))
        .await
        .unwrap();
    let o = h.objects();
    assert!(o.snat_if_pfx && o.snat_excludes.len() == 3 && o.snat_interfaces.len() == 1);
    assert_eq!(names(&h)[0], "cnat_set_snat_addresses_v2");
}

/// An L2 VXLAN tunnel (Linux `vxlan.calico`'s kind): created, given this node's VTEP MAC,
/// unnumbered, cnat, a static neighbour for the remote VTEP, up — then the block via the
/// remote VTEP's address on it. Adopted with no write; a new remote MAC is one write; a
/// withdrawn block takes its route, then its tunnel.
#[tokio::test]
async fn vxlan_tunnels_are_l2_with_a_static_neighbour_for_the_remote_vtep() {
    use calico_compile::{
        DesiredRoute, DesiredTunnel, Encap, L2Ends, NextHop, RouteKey, TunnelKey,
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = ReconcilerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        uplink: Some("host-eth0".into()),
        ..ReconcilerConfig::default()
    };
    let (dp, h) = fake::new();
    h.add_interface("tap1", "cali-a");
    let uplink = h.add_interface("host-eth0", "");
    let mac = |b: u8| MacAddr([0x66, 0, 0, 0, 0, b]);
    let key = TunnelKey {
        encap: Encap::Vxlan {
            vni: 4096,
            port: 4789,
        },
        src: ip("192.168.1.1"),
        dst: ip("192.168.1.2"),
    };
    let ends = |peer_mac| DesiredTunnel {
        l2: Some(L2Ends {
            own_mac: mac(1),
            peer: "10.70.1.1".parse().unwrap(),
            peer_mac,
        }),
    };
    let block = RouteKey("10.70.1.0/26".parse().unwrap());
    let mut d = base();
    d.tunnels.insert(key, ends(mac(2)));
    d.routes.insert(
        block,
        DesiredRoute {
            next_hop: NextHop::TunnelVia(key, ip("10.70.1.1")),
        },
    );
    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    r.apply(&d).await.unwrap();
    let o = h.objects();
    let (&t, _) = o.vxlan.iter().next().expect("a vxlan tunnel");
    assert_eq!(
        o.vxlan[&t],
        (ip("192.168.1.1"), ip("192.168.1.2"), 4096, 4789)
    );
    assert_eq!(o.macs[&t], mac(1));
    assert_eq!(o.unnumbered[&t], uplink);
    assert!(o.cnat.contains(&t));
    assert_eq!(o.neighbours[&(t, ip("10.70.1.1"))], mac(2));
    assert!(h
        .interfaces()
        .iter()
        .any(|i| i.sw_if_index == t && i.admin_up));
    assert_eq!(o.routes[&block.0], RoutePath::ViaOn(ip("10.70.1.1"), t));
    let ops = names(&h);
    let at = |n| position(&ops, n).0;
    assert!(at("vxlan_add_del_tunnel_v3") < at("sw_interface_set_mac_address"));
    assert!(at("sw_interface_set_unnumbered") < position(&ops, "ip_neighbor_add_del").1);
    assert!(position(&ops, "ip_neighbor_add_del").1 < at("ip_route_add_del"));

    // A driver restart adopts it: no write.
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    assert_eq!(r.apply(&d).await.unwrap().writes, 0);

    // The remote VTEP's MAC changes: one neighbour write.
    let mut d2 = d.clone();
    d2.tunnels.insert(key, ends(mac(3)));
    let diff = d.diff(&d2);
    r.apply_changes(&d2, &Changed::from_diff(&diff))
        .await
        .unwrap();
    assert_eq!(names(&h), vec!["ip_neighbor_add_del"]);
    assert_eq!(h.objects().neighbours[&(t, ip("10.70.1.1"))], mac(3));

    // Felix withdraws the block: the route, then the tunnel.
    h.clear_log();
    let mut d3 = d2.clone();
    d3.routes.clear();
    d3.tunnels.clear();
    let diff = d2.diff(&d3);
    r.apply_changes(&d3, &Changed::from_diff(&diff))
        .await
        .unwrap();
    assert_eq!(
        names(&h),
        vec!["ip_route_add_del", "vxlan_add_del_tunnel_v3"]
    );
    assert!(h.objects().vxlan.is_empty());
}

/// The guard and dark ACLs and one af_packet pod `name` (VPP's MAC `mac`) with its link.
/// A reconciler configuration whose uplink is `host-eth0`.
fn uplink_cfg() -> ReconcilerConfig {
    ReconcilerConfig {
        uplink: Some("host-eth0".into()),
        ..ReconcilerConfig::default()
    }
}

/// The af_packet interface the driver made for pod `name`.
fn pod_interface(h: &FakeHandle, name: &str) -> crate::dataplane::InterfaceInfo {
    h.interfaces()
        .into_iter()
        .find(|i| i.name == format!("host-{name}"))
        .expect("the af_packet interface")
}

fn pod_desired(name: &str, mac: MacAddr) -> DesiredState {
    use calico_compile::{DesiredPod, DesiredPodLink, PodLink};
    let key = InterfaceKey(name.into());
    let mut d = DesiredState::default();
    d.acls.extend(calico_compile::guard::guard_acls());
    d.acls.extend([calico_compile::guard::pod_dark_acl()]);
    d.pods.insert(
        key.clone(),
        DesiredPod {
            tag: name.into(),
            kind: PodLink::AfPacket {
                host_ifname: name.into(),
                mac,
            },
        },
    );
    d.pod_links
        .insert(key.clone(), DesiredPodLink { interface: key });
    d
}

/// Pod interfaces the driver creates: built dark (af_packet, tag, unnumbered, the dark ACL,
/// interrupt mode, up), bound to their endpoint in the same pass (its guard replaces the
/// dark ACL); adopted on restart with no write; deleted with their pod.
#[tokio::test]
async fn pod_interfaces_are_built_dark_bound_adopted_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ReconcilerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        uplink: Some("host-eth0".into()),
        ..ReconcilerConfig::default()
    };
    let (dp, h) = fake::new();
    let uplink = h.add_interface("host-eth0", "");
    let name = "cali0123456789a";
    let key = InterfaceKey(name.into());
    let vpp_mac = MacAddr([2, 0xca, 1, 2, 3, 4]);
    let mut d = pod_desired(name, vpp_mac);
    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.failed_objects, 0, "{:?}", r.failures());
    let pod = pod_interface(&h, name);
    assert_eq!(pod.tag, name, "tagged with Felix's interface name");
    assert!(pod.admin_up, "up: VPP drains what the pod sends");
    let o = h.objects();
    let dark = o
        .acls
        .iter()
        .find(|(_, a)| a.tag == calico_compile::guard::POD_DARK)
        .map(|(i, _)| *i)
        .unwrap();
    assert_eq!(
        o.acl_lists[&pod.sw_if_index],
        (vec![dark], vec![dark]),
        "dark while Felix has sent no endpoint for it"
    );
    assert_eq!(o.macs[&pod.sw_if_index], vpp_mac);
    assert_eq!(o.unnumbered[&pod.sw_if_index], uplink);
    assert_eq!(report.waiting_objects, 1, "{:?}", r.waiting());
    let s = r.summary();
    assert!(s.pods[name].ready && !s.pods[name].up);

    // Felix's endpoint arrives: bound in the pass; its guard replaces the dark ACL.
    let mut ep = iface(name, "10.71.0.2", &[]);
    ep.neighbours = vec![(ip("10.71.0.2"), MAC)];
    d.interfaces.insert(key.clone(), ep);
    h.clear_log();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.waiting_objects, 0, "{:?}", r.waiting());
    let o = h.objects();
    let (input, output) = &o.acl_lists[&pod.sw_if_index];
    assert!(
        !input.contains(&dark) && !output.contains(&dark),
        "{input:?} {output:?}"
    );
    assert!(o.cnat.contains(&pod.sw_if_index));
    assert!(r.summary().pods[name].up);

    // A driver restart adopts it all: no write.
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.writes, 0, "{:?}", names(&h));

    // The pod goes: down, then deleted (the endpoint's binding goes with the interface).
    d.pods.clear();
    d.pod_links.clear();
    d.interfaces.clear();
    r.apply(&d).await.unwrap();
    assert!(!h
        .interfaces()
        .iter()
        .any(|i| i.name == format!("host-{name}")));
    assert!(r.summary().pods.is_empty());
}

/// An endpoint whose tag moves to another interface takes its SNAT inclusion along: the new
/// interface is included and the old one, still in VPP, is not translated any more.
#[tokio::test]
async fn a_moved_endpoint_takes_its_snat_inclusion_along() {
    use calico_compile::{DesiredSnat, DesiredSnatIf, SnatIfKey, SnatKey};
    let (dp, h) = fake::new();
    let old = h.add_interface("tap1", "cali-a");
    let new = h.add_interface("tap2", "");
    let mut d = base();
    d.snat.insert(
        SnatKey,
        DesiredSnat {
            v4: Some("192.168.1.1".parse().unwrap()),
            v6: None,
        },
    );
    d.snat_interfaces.insert(
        SnatIfKey {
            interface: InterfaceKey("cali-a".into()),
            v6: false,
        },
        DesiredSnatIf,
    );
    let mut r = Reconciler::new(dp, ReconcilerConfig::default());
    r.connect().await.unwrap();
    r.apply(&d).await.unwrap();
    assert_eq!(h.objects().snat_interfaces, BTreeSet::from([(old, false)]));

    h.set_tag_silently(old, "");
    h.set_tag_silently(new, "cali-a");
    r.refresh_interfaces().await.unwrap();
    r.apply(&d).await.unwrap();
    assert_eq!(h.objects().snat_interfaces, BTreeSet::from([(new, false)]));
    assert!(r.realized().orphans.snat_inclusions.is_empty());
    h.clear_log();
    assert_eq!(r.apply(&d).await.unwrap().writes, 0, "{:?}", names(&h));
}

/// A pod interface VPP lost while nobody told the driver (no event came): when the pod goes,
/// VPP's answer to the delete (`af_packet_delete` of an unknown host interface is
/// `SYSCALL_ERROR_1`, not `NO_SUCH_ENTRY`) means the goal is reached; the record goes and
/// nothing is retried.
#[tokio::test]
async fn a_pod_interface_vpp_lost_unannounced_is_pruned_without_retries() {
    let cfg = uplink_cfg();
    let (dp, h) = fake::new();
    h.add_interface("host-eth0", "");
    let name = "cali0123456789b";
    let mut d = pod_desired(name, MacAddr([2, 0xca, 1, 2, 3, 5]));
    let mut r = Reconciler::new(dp, cfg);
    r.connect().await.unwrap();
    r.apply(&d).await.unwrap();
    let pod = pod_interface(&h, name);
    h.delete_interface(pod.sw_if_index); // its event is never read
    d.pods.clear();
    d.pod_links.clear();
    h.clear_log();
    let report = r.apply(&d).await.unwrap();
    let log = h.log();
    let delete = log
        .iter()
        .find(|rec| rec.op.name() == "af_packet_delete")
        .expect("the pod's delete");
    assert_eq!(
        delete.result.map_err(|e| e.retval),
        Err(crate::dataplane::RETVAL_SYSCALL_ERROR_1)
    );
    assert_eq!(report.failed_objects, 0, "{:?}", r.failures());
    assert!(r.summary().pods.is_empty());
    h.clear_log();
    assert_eq!(r.apply(&d).await.unwrap().writes, 0, "{:?}", names(&h));
}

/// The driver's own deletes come back as VPP interface events: they must not cost a full
/// pass (a pod going would otherwise make the next pass compare every object), while the
/// delete of an interface a binding uses must.
#[tokio::test]
async fn the_drivers_own_interface_deletes_do_not_force_a_full_pass() {
    async fn drain(r: &mut Reconciler<FakeDataplane>) {
        while let Ok(ev) =
            tokio::time::timeout(Duration::from_millis(20), r.next_interface_event()).await
        {
            ev.unwrap();
        }
    }
    let cfg = uplink_cfg();
    let (dp, h) = fake::new();
    h.add_interface("host-eth0", "");
    let bound = h.add_interface("tap9", "cali-bound");
    let name = "cali0123456789c";
    let mut d = pod_desired(name, MacAddr([2, 0xca, 1, 2, 3, 6]));
    d.interfaces.insert(
        InterfaceKey("cali-bound".into()),
        iface("cali-bound", "10.71.0.9", &[]),
    );
    let mut r = Reconciler::new(dp, cfg);
    r.connect().await.unwrap();
    r.apply(&d).await.unwrap();
    drain(&mut r).await;
    r.apply(&d).await.unwrap();
    drain(&mut r).await;
    assert!(r.in_step, "in step after a full pass");

    let before = d.clone();
    d.pods.clear();
    d.pod_links.clear();
    let diff = before.diff(&d);
    r.apply_changes(&d, &Changed::from_diff(&diff))
        .await
        .unwrap();
    assert_eq!(h.count("af_packet_delete"), 1);
    drain(&mut r).await;
    assert!(
        r.in_step,
        "the pod's own delete came back without a full pass"
    );

    h.delete_interface(bound);
    drain(&mut r).await;
    assert!(
        !r.in_step,
        "a bound interface gone: the next pass looks at everything"
    );
}

/// Service frontends: created with VPP's id, backends replaced in place under that id,
/// adopted on restart with no write, kept while the Kubernetes watch has not listed, and
/// deleted by id once it has.
#[tokio::test]
async fn service_translations_are_updated_in_place_and_pruned_only_after_the_list() {
    use calico_compile::services::{DesiredTranslation, FrontendKey};
    use calico_model::kube::L4Proto;
    let (cfg, _dir) = state_file_config();
    let (dp, h) = fake::new();
    let fk = |port| FrontendKey {
        proto: L4Proto::Tcp,
        vip: ip("10.96.0.10"),
        port,
    };
    let t = |backends: &[(&str, u16)]| DesiredTranslation {
        real_ip: false,
        backends: backends.iter().map(|(a, p)| (ip(a), *p)).collect(),
        maglev: false,
        service: "shop/web".into(),
    };
    let mut d = DesiredState {
        services_synced: true,
        ..DesiredState::default()
    };
    d.translations.insert(fk(80), t(&[("10.70.0.2", 8080)]));
    d.translations.insert(fk(443), t(&[("10.70.0.2", 8443)]));
    let mut r = Reconciler::new(dp, cfg.clone());
    r.connect().await.unwrap();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.writes, 2);
    let ids: Vec<u32> = h.objects().translations.keys().copied().collect();
    assert_eq!(ids.len(), 2);

    // A new backend: one update, same id.
    d.translations
        .insert(fk(80), t(&[("10.70.0.2", 8080), ("10.70.0.3", 8080)]));
    h.clear_log();
    assert_eq!(r.apply(&d).await.unwrap().writes, 1);
    let o = h.objects();
    assert_eq!(o.translations.keys().copied().collect::<Vec<_>>(), ids);
    assert!(o.translations.values().any(|t| t.4.len() == 2));

    // A restart adopts them; before the watch has listed, nothing is deleted.
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    let early = DesiredState::default();
    assert_eq!(r.apply(&early).await.unwrap().writes, 0, "{:?}", names(&h));
    assert_eq!(h.objects().translations.len(), 2);
    assert_eq!(r.apply(&d).await.unwrap().writes, 0, "{:?}", names(&h));

    // Listed: the service that is gone is deleted by its id.
    d.translations.remove(&fk(443));
    r.apply(&d).await.unwrap();
    assert_eq!(h.objects().translations.len(), 1);
    assert_eq!(names(&h), vec!["cnat_translation_del"]);

    // A ClusterIP with an unserved port: an unreachable route, once; adopted on restart;
    // kept before the list, deleted after it.
    let vip = calico_compile::RouteKey("10.96.0.11/32".parse().unwrap());
    let reject = calico_compile::services::DesiredReject {
        service: "shop/api".into(),
    };
    d.service_rejects.insert(vip, reject);
    h.clear_log();
    assert_eq!(r.apply(&d).await.unwrap().writes, 1);
    assert_eq!(
        h.objects().routes.get(&vip.0),
        Some(&RoutePath::Unreachable)
    );
    drop(r);
    let mut r = Reconciler::new(h.reconnect_dataplane(), cfg.clone());
    r.connect().await.unwrap();
    h.clear_log();
    assert_eq!(r.apply(&early).await.unwrap().writes, 0, "{:?}", names(&h));
    assert_eq!(r.apply(&d).await.unwrap().writes, 0, "{:?}", names(&h));
    d.service_rejects.clear();
    r.apply(&d).await.unwrap();
    assert!(h.objects().routes.is_empty());
}

/// A pod built while the uplink is missing (after a VPP restart, before VPP's own uplink is
/// back) is dark before it waits, so its endpoint's binding in the same pass replaces the
/// dark ACL for good: the uplink arriving later must not make the pod dark again.
#[tokio::test]
async fn a_pod_waiting_for_the_uplink_is_not_darkened_after_its_binding() {
    let cfg = uplink_cfg();
    let (dp, h) = fake::new();
    let name = "cali0123456789b";
    let key = InterfaceKey(name.into());
    let mut d = pod_desired(name, MacAddr([2, 0xca, 1, 2, 3, 5]));
    d.interfaces
        .insert(key.clone(), iface(name, "10.71.0.3", &[]));
    let mut r = Reconciler::new(dp, cfg);
    r.connect().await.unwrap();
    r.apply(&d).await.unwrap();
    let pod = h
        .interfaces()
        .into_iter()
        .find(|i| i.name == format!("host-{name}"))
        .unwrap();
    let guard = |h: &FakeHandle| {
        let o = h.objects();
        let dark = o
            .acls
            .iter()
            .find(|(_, a)| a.tag == calico_compile::guard::POD_DARK)
            .map(|(i, _)| *i)
            .unwrap();
        let (input, output) = o.acl_lists[&pod.sw_if_index].clone();
        !input.contains(&dark) && !output.contains(&dark)
    };
    assert!(guard(&h), "bound in the pass that built it");
    assert!(r
        .waiting()
        .keys()
        .any(|k| k.to_string().contains("pod interface")));
    h.add_interface("host-eth0", "");
    r.refresh_interfaces().await.unwrap();
    let report = r.apply(&d).await.unwrap();
    assert_eq!(report.waiting_objects, 0, "{:?}", r.waiting());
    assert!(
        guard(&h),
        "the uplink's arrival left the endpoint's guard in place"
    );
    assert!(h.objects().unnumbered.contains_key(&pod.sw_if_index));
}
