//! One reconcile pass, create/update half: ipsets → rules → policies → guard ACLs →
//! interfaces, each stage one pipelined batch (two where an id from the first is needed).
//! An interface gets its guard ACLs in the same batch as (and before) its npol
//! configuration, and cnat — which makes the policy live — only once both are in place.
//!
//! A dependant of a failed or waiting object waits too; an interface is never left on a
//! configuration more permissive than its desired one.

use calico_model::EndpointId;
use std::collections::{BTreeMap, BTreeSet};

use calico_compile::{DesiredInterface, DesiredState, InterfaceKey, IpSetKey};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::kinds::npol_objects::Policies;
use super::kinds::Stage;
use super::realized::{RealGuard, RealInterface, RealIpSet};
use super::status::{EndpointOperStatus, Failure, ObjectError, ObjectRef};
use super::{Changed, InterfaceOutcome, PassReport, Reconciler};
use crate::dataplane::{
    Dataplane, DataplaneError, IpSetId, Op, OpError, OpReply, OpResult, PolicyId, SwIfIndex,
};

pub(super) const NOT_FOUND: &str = "interface not found in VPP";

/// All of `all`, or the entries of `keys` that `all` has.
pub(super) fn scoped<'a, K: Ord, V>(
    all: &'a BTreeMap<K, V>,
    keys: Option<&'a BTreeSet<K>>,
) -> Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a> {
    match keys {
        None => Box::new(all.iter()),
        Some(keys) => Box::new(keys.iter().filter_map(move |k| all.get_key_value(k))),
    }
}

/// The keys of the objects in `all` that `refers` to something.
fn referring<'a, K: Ord + Clone, V>(
    all: &'a BTreeMap<K, V>,
    refers: impl Fn(&V) -> bool + 'a,
) -> impl Iterator<Item = K> + 'a {
    all.iter()
        .filter(move |(_, v)| refers(v))
        .map(|(k, _)| k.clone())
}

/// The realized ids of `keys` in `table`, to tell afterwards whose id changed.
fn ids_of<K: Ord + Clone, V, I>(
    table: &BTreeMap<K, V>,
    keys: &BTreeSet<K>,
    id: impl Fn(&V) -> I,
) -> BTreeMap<K, Option<I>> {
    keys.iter()
        .map(|k| (k.clone(), table.get(k).map(&id)))
        .collect()
}

/// Counts a batch's calls and refusals by message (one counter update per message kind,
/// not per call: batches hold thousands).
fn count_calls(names: &[&'static str], results: &[OpResult]) {
    let mut calls: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for (name, res) in names.iter().zip(results) {
        let c = calls.entry(name).or_default();
        c.0 += 1;
        c.1 += u64::from(res.is_err());
    }
    let m = crate::metrics::global();
    for (name, (n, errors)) in calls {
        let label = crate::metrics::message(name);
        m.vpp_calls.get_or_create(&label).inc_by(n);
        if errors > 0 {
            m.vpp_errors.get_or_create(&label).inc_by(errors);
        }
    }
}

/// Successes and failures of one stage, applied to the failure table at its end, so that an
/// object with several operations counts as failed if any of them failed.
#[derive(Default)]
pub(super) struct StageLog {
    ok: BTreeSet<ObjectRef>,
    err: BTreeMap<ObjectRef, ObjectError>,
}

impl StageLog {
    pub(super) fn ok(&mut self, obj: ObjectRef) {
        self.ok.insert(obj);
    }

    /// A failure a retry may cure (VPP answered oddly).
    pub(super) fn err(&mut self, obj: ObjectRef, error: String) {
        self.err.insert(obj, ObjectError::Retryable(error));
    }

    /// An operation of `obj` failed: permanent when it could not be encoded.
    pub(super) fn op_err(&mut self, obj: ObjectRef, e: &OpError) {
        let error = if e.permanent {
            ObjectError::Permanent(e.to_string())
        } else {
            ObjectError::Retryable(e.to_string())
        };
        // A permanent failure of one operation makes the object's failure permanent.
        match self.err.get(&obj) {
            Some(ObjectError::Permanent(_)) => {}
            _ => {
                self.err.insert(obj, error);
            }
        }
    }
}

/// The configuration an interface gets while its own cannot be programmed: everything denied.
pub(super) fn deny_all(invert_rx_tx: bool) -> npol::InterfaceConfig<PolicyId> {
    npol::InterfaceConfig {
        rx_policies: Vec::new(),
        tx_policies: Vec::new(),
        profiles: Vec::new(),
        invert_rx_tx,
        policy_default_rx: npol::PolicyDefault::Deny,
        policy_default_tx: npol::PolicyDefault::Deny,
        profile_default_rx: npol::PolicyDefault::Deny,
        profile_default_tx: npol::PolicyDefault::Deny,
    }
}

/// Per-interface plan for the second interface batch.
struct InterfacePlan {
    key: InterfaceKey,
    sw_if_index: SwIfIndex,
    endpoint: EndpointId,
}

impl<D: Dataplane> Reconciler<D> {
    /// Sends one batch; an empty batch costs nothing.
    pub(super) async fn exec(
        &mut self,
        ops: Vec<Op>,
        report: &mut PassReport,
    ) -> Result<Vec<OpResult>, DataplaneError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let n = ops.len();
        report.writes += n;
        let creates = ops
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    Op::IpSetCreate { .. }
                        | Op::RuleCreate { .. }
                        | Op::PolicyCreate { .. }
                        | Op::AclAddReplace { index: None, .. }
                )
            })
            .count();
        let names: Vec<&'static str> = ops.iter().map(Op::name).collect();
        let sent = Instant::now();
        let r = self.dp.execute(ops).await;
        report.batches += 1;
        report.vpp_wait += sent.elapsed();
        debug!(
            ops = n,
            first = names.first().copied().unwrap_or(""),
            last = names.last().copied().unwrap_or(""),
            elapsed_us = sent.elapsed().as_micros() as u64,
            "batch executed"
        );
        if r.is_err() && creates > 0 {
            // npol has no dump: an object VPP created but whose reply was lost is unknown to
            // us and stays in VPP (unused) until VPP restarts.
            warn!(
                creates,
                "the connection broke during a batch with creates; objects VPP made before the \
                 break may be left behind unused"
            );
        }
        let results = self.note(r)?;
        if results.len() != n {
            self.connected = false;
            return Err(DataplaneError::Disconnected(format!(
                "{n} operations sent, {} results",
                results.len()
            )));
        }
        report.failed_ops += results.iter().filter(|r| r.is_err()).count();
        count_calls(&names, &results);
        Ok(results)
    }

    pub(super) fn due(&self, obj: &ObjectRef, now: Instant) -> bool {
        self.failures
            .get(obj)
            .is_none_or(|f| !f.permanent && f.retry_at <= now)
    }

    fn blocked(&self, obj: &ObjectRef) -> bool {
        self.failures.contains_key(obj) || self.waiting.contains_key(obj)
    }

    pub(super) fn finish_stage(&mut self, log: StageLog, now: Instant) {
        for obj in log.ok {
            if !log.err.contains_key(&obj) && self.failures.remove(&obj).is_some() {
                info!(object = %obj, "recovered after failures");
            }
        }
        for (obj, error) in log.err {
            let attempts = self.failures.get(&obj).map_or(0, |f| f.attempts) + 1;
            let delay = self.config.backoff.delay(attempts);
            let permanent = error.is_permanent();
            if permanent {
                error!(object = %obj, %error,
                    "cannot be programmed from this input; not retried until it changes");
            } else {
                warn!(object = %obj, %error, attempts, retry_in_ms = delay.as_millis() as u64,
                    "VPP refused an operation; will retry");
            }
            self.failures.insert(
                obj,
                Failure {
                    attempts,
                    retry_at: now + delay,
                    error: error.to_string(),
                    permanent,
                },
            );
        }
    }

    /// Creates and updates in dependency order, then deletes. With `work`, only those
    /// objects are looked at: what changed since the last pass, what is failed, waiting or
    /// pending, and (added as the pass goes) whatever refers to an object whose VPP id
    /// changed or which is now held back. Every other desired object is known to be in VPP
    /// as desired, so it is not compared at all.
    pub(super) async fn pass(
        &mut self,
        desired: &DesiredState,
        work: &mut Option<Changed>,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        let now = Instant::now();

        let before = work
            .as_ref()
            .map(|w| ids_of(&self.realized.ipsets, &w.ipsets, |r| r.id));
        self.sync_ipsets(desired, work.as_ref(), now, report)
            .await?;
        if let (Some(w), Some(before)) = (work.as_mut(), before) {
            let hit = self.affected(before, &self.realized.ipsets, |r| r.id, ObjectRef::IpSet);
            if !hit.is_empty() {
                w.kinds.rules.extend(referring(&desired.rules, |r| {
                    r.entries.iter().any(|e| match &e.data {
                        npol::EntryData::IpSet(k) | npol::EntryData::PortIpSet(k) => {
                            hit.contains(k)
                        }
                        _ => false,
                    })
                }));
            }
        }

        self.sync_kinds(Stage::BeforeInterfaces, desired, work, now, report)
            .await?;
        // Interfaces made in this stage (pod interfaces) are bound in this pass: the table
        // must know them.
        let made: Vec<InterfaceKey> = self
            .realized
            .kinds
            .pods
            .iter()
            .filter(|(_, r)| !self.interfaces.contains_key(&r.sw_if_index))
            .map(|(k, _)| k.clone())
            .collect();
        if !made.is_empty() {
            self.refresh_interfaces().await?;
            if let Some(w) = work.as_mut() {
                w.interfaces.extend(made);
            }
        }
        self.sync_interfaces(desired, work.as_ref().map(|w| &w.interfaces), now, report)
            .await?;
        self.sync_kinds(Stage::AfterInterfaces, desired, work, now, report)
            .await?;
        self.prune(desired, now, report).await
    }

    /// Of the keys a stage looked at, those whose dependants must be looked at too: their
    /// VPP id changed (created, rebuilt), or they are now failed or waiting.
    fn affected<K: Ord + Clone, V, I: PartialEq>(
        &self,
        before: BTreeMap<K, Option<I>>,
        table: &BTreeMap<K, V>,
        id: impl Fn(&V) -> I,
        object: impl Fn(K) -> ObjectRef,
    ) -> BTreeSet<K> {
        before
            .into_iter()
            .filter(|(k, was)| table.get(k).map(&id) != *was || self.blocked(&object(k.clone())))
            .map(|(k, _)| k)
            .collect()
    }

    pub(super) async fn sync_ipsets(
        &mut self,
        desired: &DesiredState,
        work: Option<&Changed>,
        now: Instant,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        let keys = work.map(|w| &w.ipsets);
        let mut log = StageLog::default();
        // (key, rebuild): a rebuild replaces the set under a new id (npol's IP_AND_PORT
        // member delete is broken, DESIGN section 3).
        let mut creates: Vec<(&IpSetKey, bool)> = Vec::new();
        let mut create_ops = Vec::new();
        // (key, new set id, rebuild or add): a new set's fill needs nothing back once sent; a
        // delta keeps its members to record once VPP took them (the op itself is consumed by
        // the send, so 1M members are not held twice).
        let mut fills: Vec<(&IpSetKey, Option<IpSetId>, bool)> = Vec::new();
        let mut deltas: Vec<Vec<npol::IpSetMember>> = Vec::new();
        let mut fill_ops = Vec::new();
        for (key, want) in scoped(&desired.ipsets, keys) {
            if !self.failures.is_empty() && !self.due(&ObjectRef::IpSet(key.clone()), now) {
                continue;
            }
            let Some(have) = self.realized.ipsets.get(key) else {
                creates.push((key, false));
                create_ops.push(Op::IpSetCreate { kind: want.kind });
                continue;
            };
            // Changed only by member deltas since the last pass, and in VPP as desired then
            // (not failed): the net delta is what VPP needs, no whole-set comparison.
            let delta = work
                .and_then(|w| w.members.get(key))
                .filter(|(_, removed)| {
                    have.set.kind == want.kind
                        && (want.kind != npol::IpSetType::IpAndPort || removed.is_empty())
                        && !self.failures.contains_key(&ObjectRef::IpSet(key.clone()))
                });
            if let Some((added, removed)) = delta {
                if added.is_empty() && removed.is_empty() {
                    log.ok(ObjectRef::IpSet(key.clone()));
                }
                if !added.is_empty() {
                    let members: Vec<_> = added.iter().copied().collect();
                    fills.push((key, None, true));
                    deltas.push(members.clone());
                    fill_ops.push(Op::IpSetAddMembers {
                        set: have.id,
                        members,
                    });
                }
                if !removed.is_empty() {
                    let members: Vec<_> = removed.iter().copied().collect();
                    fills.push((key, None, false));
                    deltas.push(members.clone());
                    fill_ops.push(Op::IpSetDelMembers {
                        set: have.id,
                        members,
                    });
                }
                continue;
            }
            if have.set == **want {
                log.ok(ObjectRef::IpSet(key.clone()));
                continue;
            }
            let removed: Vec<_> = have
                .set
                .members
                .difference(&want.members)
                .copied()
                .collect();
            let rebuild = have.set.kind != want.kind
                || (want.kind == npol::IpSetType::IpAndPort && !removed.is_empty());
            if rebuild {
                creates.push((key, true));
                create_ops.push(Op::IpSetCreate { kind: want.kind });
                continue;
            }
            let added: Vec<_> = want
                .members
                .difference(&have.set.members)
                .copied()
                .collect();
            if added.is_empty() && removed.is_empty() {
                // In sync: whatever failed before (e.g. a delete no longer wanted) is over.
                log.ok(ObjectRef::IpSet(key.clone()));
            }
            if !added.is_empty() {
                fills.push((key, None, true));
                deltas.push(added.clone());
                fill_ops.push(Op::IpSetAddMembers {
                    set: have.id,
                    members: added,
                });
            }
            if !removed.is_empty() {
                fills.push((key, None, false));
                deltas.push(removed.clone());
                fill_ops.push(Op::IpSetDelMembers {
                    set: have.id,
                    members: removed,
                });
            }
        }
        let results = self.exec(create_ops, report).await?;
        for ((key, rebuild), res) in creates.into_iter().zip(results) {
            let obj = ObjectRef::IpSet(key.clone());
            let want = &desired.ipsets[key];
            let id = match res {
                Ok(OpReply::Created(id)) => IpSetId(id),
                Ok(OpReply::Done) => {
                    log.err(obj, "npol_ipset_create: reply carried no set id".into());
                    continue;
                }
                Err(e) => {
                    log.op_err(obj, &e);
                    continue;
                }
            };
            if rebuild {
                // Owned from now on, so that a crash before the swap does not leak it.
                self.realized.orphans.ipsets.insert(id);
            } else {
                self.realized.ipsets.insert(
                    key.clone(),
                    RealIpSet {
                        id,
                        set: npol::IpSet::new(want.kind),
                    },
                );
            }
            if want.members.is_empty() {
                self.finish_fill(key, id, rebuild, want);
                log.ok(obj);
            } else {
                fills.push((key, Some(id), rebuild));
                deltas.push(Vec::new());
                fill_ops.push(Op::IpSetAddMembers {
                    set: id,
                    members: want.members.iter().copied().collect(),
                });
            }
        }
        let results = self.exec(fill_ops, report).await?;
        for (((key, new_id, flag), members), res) in fills.into_iter().zip(deltas).zip(results) {
            let obj = ObjectRef::IpSet(key.clone());
            if let Err(e) = res {
                // A rebuilt set that failed stays an orphan and is deleted later.
                log.op_err(obj, &e);
                continue;
            }
            log.ok(obj);
            match new_id {
                Some(id) => self.finish_fill(key, id, flag, &desired.ipsets[key]),
                None if flag => self.realized.ipsets.add_members(key, &members),
                None => self.realized.ipsets.remove_members(key, &members),
            }
        }
        self.finish_stage(log, now);
        Ok(())
    }

    fn finish_fill(&mut self, key: &IpSetKey, id: IpSetId, rebuild: bool, want: &npol::IpSet) {
        let new = RealIpSet {
            id,
            set: want.clone(),
        };
        if rebuild {
            self.realized.orphans.ipsets.remove(&id);
            if let Some(old) = self.realized.ipsets.insert(key.clone(), new) {
                // Rules are repointed by the rule stage; the old set goes once unreferenced.
                self.realized.orphans.ipsets.insert(old.id);
            }
        } else {
            self.realized.ipsets.insert(key.clone(), new);
        }
    }

    fn resolve_config(
        &self,
        desired: &DesiredState,
        want: &npol::InterfaceConfig<calico_compile::PolicyKey>,
    ) -> Result<npol::InterfaceConfig<PolicyId>, String> {
        let ctx = self.kind_ctx(desired);
        let ids = |keys: &[calico_compile::PolicyKey]| -> Result<Vec<PolicyId>, String> {
            keys.iter()
                .map(|k| ctx.dependency::<Policies>(k).map(|p| p.id))
                .collect()
        };
        Ok(npol::InterfaceConfig {
            rx_policies: ids(&want.rx_policies)?,
            tx_policies: ids(&want.tx_policies)?,
            profiles: ids(&want.profiles)?,
            invert_rx_tx: want.invert_rx_tx,
            policy_default_rx: want.policy_default_rx,
            policy_default_tx: want.policy_default_tx,
            profile_default_rx: want.profile_default_rx,
            profile_default_tx: want.profile_default_tx,
        })
    }

    /// The VPP interface an endpoint's interface name designates: tag first, then the exact
    /// name, then af_packet's `host-<name>`.
    pub(super) fn lookup_interface(&self, name: &str) -> Option<SwIfIndex> {
        self.by_tag
            .get(name)
            .or_else(|| self.by_name.get(name))
            .or_else(|| self.by_name.get(&format!("host-{name}")))
            .copied()
    }

    /// The ACL ids of an interface's guard, when both ACLs are in VPP.
    fn resolve_guard(&self, g: &calico_compile::InterfaceGuard) -> Result<RealGuard, String> {
        let id = |k: &calico_compile::AclKey| {
            self.realized
                .kinds
                .acls
                .get(k)
                .map(|a| a.id)
                .ok_or_else(|| format!("waiting for guard ACL {k}"))
        };
        Ok(RealGuard {
            input: id(&g.input)?,
            output: id(&g.output)?,
        })
    }

    async fn sync_interfaces(
        &mut self,
        desired: &DesiredState,
        keys: Option<&BTreeSet<InterfaceKey>>,
        now: Instant,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        let mut log = StageLog::default();
        let mut plans: Vec<InterfacePlan> = Vec::new();
        let mut steps: Vec<(usize, Op)> = Vec::new();
        match keys {
            None => self.clear_outcomes(),
            Some(keys) => keys.iter().for_each(|k| self.remove_outcome(k)),
        }
        for (key, want) in scoped(&desired.interfaces, keys) {
            let obj = ObjectRef::Interface(key.clone());
            let found = self.lookup_interface(&want.interface_name);
            self.drop_stale_binding(key, found);
            let Some(sw_if_index) = found else {
                self.set_outcome(key, want, EndpointOperStatus::Down, Some(NOT_FOUND.into()));
                continue;
            };
            let have = self.realized.interfaces.get(key);
            let have_config = have.and_then(|h| h.config.as_ref());
            let guard = self.resolve_guard(&want.guard);
            // Fail closed: keep what is there, or deny everything when nothing is.
            let resolved = guard
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|_| self.resolve_config(desired, &want.config));
            let target = match resolved {
                Ok(c) => Some(c),
                Err(reason) => {
                    self.waiting.insert(obj.clone(), reason);
                    match have_config {
                        Some(_) => None,
                        None => Some(deny_all(want.config.invert_rx_tx)),
                    }
                }
            };
            if !self.due(&obj, now) {
                continue;
            }
            let plan = plans.len();
            let have_neigh = have.map(|h| h.neighbours.clone()).unwrap_or_default();
            // A point-to-point interface (a TUN pod) never resolves neighbours, so the first
            // flow cannot slip past the TX policy there: no static entry needed.
            let want_neighbours: &[_] = match self.interfaces.get(&sw_if_index) {
                Some(i) if i.point_to_point => &[],
                _ => &want.neighbours,
            };
            let want_ips: BTreeSet<_> = want_neighbours.iter().map(|(ip, _)| *ip).collect();
            for (ip, mac) in &have_neigh {
                if !want_ips.contains(ip) {
                    steps.push((
                        plan,
                        Op::Neighbour {
                            sw_if_index,
                            ip: *ip,
                            mac: *mac,
                            is_add: false,
                        },
                    ));
                }
            }
            for (ip, mac) in want_neighbours {
                if !have_neigh.contains(&(*ip, *mac)) {
                    steps.push((
                        plan,
                        Op::Neighbour {
                            sw_if_index,
                            ip: *ip,
                            mac: *mac,
                            is_add: true,
                        },
                    ));
                }
            }
            if let Ok(g) = guard {
                if have.and_then(|h| h.guard.as_ref()) != Some(&g) {
                    steps.push((
                        plan,
                        Op::AclInterfaceSet {
                            sw_if_index,
                            input: vec![g.input],
                            output: vec![g.output],
                        },
                    ));
                }
            }
            if let Some(config) = target {
                if have_config != Some(&config) {
                    steps.push((
                        plan,
                        Op::ConfigurePolicies {
                            sw_if_index,
                            config,
                        },
                    ));
                }
            }
            plans.push(InterfacePlan {
                key: key.clone(),
                sw_if_index,
                endpoint: want.endpoint.clone(),
            });
        }

        // Neighbours and configuration first; cnat (which makes the policy live) only where
        // both went through.
        let (owners, ops): (Vec<usize>, Vec<Op>) = steps.into_iter().unzip();
        let results = self.exec(ops.clone(), report).await?;
        let mut plan_failed = vec![false; plans.len()];
        for ((p, op), res) in owners.into_iter().zip(ops).zip(results) {
            let plan = &plans[p];
            let obj = ObjectRef::Interface(plan.key.clone());
            if let Err(e) = res {
                plan_failed[p] = true;
                log.op_err(obj, &e);
                continue;
            }
            let rec = self.binding(plan);
            match op {
                Op::Neighbour {
                    ip, mac, is_add, ..
                } => {
                    if is_add {
                        rec.neighbours.retain(|(i, _)| *i != ip);
                        rec.neighbours.insert((ip, mac));
                    } else {
                        rec.neighbours.remove(&(ip, mac));
                    }
                }
                Op::ConfigurePolicies { config, .. } => rec.config = Some(config),
                Op::AclInterfaceSet { input, output, .. } => {
                    rec.guard = match (input.as_slice(), output.as_slice()) {
                        ([i], [o]) => Some(RealGuard {
                            input: *i,
                            output: *o,
                        }),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
        let mut cnat_plans = Vec::new();
        let mut cnat_ops = Vec::new();
        for (p, plan) in plans.iter().enumerate() {
            if plan_failed[p] {
                continue;
            }
            let have = self.realized.interfaces.get(&plan.key);
            // npol goes live with cnat: never before the guard is attached.
            let configured = have.is_some_and(|h| h.config.is_some() && h.guard.is_some());
            if configured && !have.is_some_and(|h| h.cnat) {
                cnat_plans.push(p);
                cnat_ops.push(Op::CnatFeature {
                    sw_if_index: plan.sw_if_index,
                    enable: true,
                });
            }
        }
        let results = self.exec(cnat_ops, report).await?;
        for (p, res) in cnat_plans.into_iter().zip(results) {
            let obj = ObjectRef::Interface(plans[p].key.clone());
            match res {
                Ok(_) => {
                    self.binding(&plans[p]).cnat = true;
                }
                Err(e) => {
                    plan_failed[p] = true;
                    log.op_err(obj, &e);
                }
            }
        }
        for (p, plan) in plans.iter().enumerate() {
            if !plan_failed[p] {
                log.ok(ObjectRef::Interface(plan.key.clone()));
            }
        }
        self.finish_stage(log, now);
        for (key, want) in scoped(&desired.interfaces, keys) {
            if !self.outcomes.contains_key(key) {
                let (status, reason) = self.interface_status(key);
                self.set_outcome(key, want, status, reason);
            }
        }
        Ok(())
    }

    fn binding(&mut self, plan: &InterfacePlan) -> &mut RealInterface {
        self.realized
            .interfaces
            .get_or_insert_with(&plan.key, || RealInterface {
                endpoint: plan.endpoint.clone(),
                sw_if_index: plan.sw_if_index,
                config: None,
                cnat: false,
                neighbours: BTreeSet::new(),
                guard: None,
            })
    }

    /// The endpoint's interface changed (recreated, or its tag moved): forget a binding whose
    /// interface is gone, and queue one whose interface still exists for unbinding.
    fn drop_stale_binding(&mut self, key: &InterfaceKey, found: Option<SwIfIndex>) {
        let Some(have) = self.realized.interfaces.get(key) else {
            return;
        };
        let still_there = self.interfaces.contains_key(&have.sw_if_index);
        if found == Some(have.sw_if_index) || (found.is_none() && still_there) {
            return;
        }
        let Some(old) = self.realized.interfaces.remove(key) else {
            return;
        };
        info!(interface = %key, sw_if_index = %old.sw_if_index, "endpoint left its VPP interface");
        if still_there {
            self.realized
                .orphans
                .interfaces
                .insert(old.sw_if_index, old);
        }
    }

    fn interface_status(&self, key: &InterfaceKey) -> (EndpointOperStatus, Option<String>) {
        let obj = ObjectRef::Interface(key.clone());
        if let Some(f) = self.failures.get(&obj) {
            return (EndpointOperStatus::Error, Some(f.error.clone()));
        }
        if let Some(reason) = self.waiting.get(&obj) {
            return (EndpointOperStatus::Error, Some(reason.clone()));
        }
        let Some(have) = self.realized.interfaces.get(key) else {
            return (EndpointOperStatus::Down, Some("not programmed yet".into()));
        };
        if have.config.is_none() || have.guard.is_none() || !have.cnat {
            return (EndpointOperStatus::Down, Some("not programmed yet".into()));
        }
        match self.interfaces.get(&have.sw_if_index) {
            Some(i) if i.admin_up && i.link_up => (EndpointOperStatus::Up, None),
            Some(_) => (EndpointOperStatus::Down, Some("link down".into())),
            None => (EndpointOperStatus::Down, Some(NOT_FOUND.into())),
        }
    }

    fn set_outcome(
        &mut self,
        key: &InterfaceKey,
        want: &DesiredInterface,
        status: EndpointOperStatus,
        reason: Option<String>,
    ) {
        if reason.as_deref() == Some(NOT_FOUND) {
            self.pending.insert(key.clone());
        } else {
            self.pending.remove(key);
        }
        self.outcomes.insert(
            key.clone(),
            InterfaceOutcome {
                endpoint: want.endpoint.clone(),
                status,
                reason,
            },
        );
    }

    fn remove_outcome(&mut self, key: &InterfaceKey) {
        self.outcomes.remove(key);
        self.pending.remove(key);
    }

    fn clear_outcomes(&mut self) {
        self.outcomes.clear();
        self.pending.clear();
    }
}
