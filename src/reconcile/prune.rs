//! One reconcile pass, delete half, in reverse dependency order: interface bindings →
//! ACLs → policies → rules → ipsets. An unbound interface keeps its guard ACLs (like its
//! deny-all npol configuration): fail closed.
//!
//! Deletes only objects we own (the realized record), and only once nothing realized still
//! refers to them: npol accepts deleting a policy in use and leaves a dangling reference.

use std::collections::{BTreeMap, BTreeSet};

use calico_compile::{DesiredState, IpSetKey};
use tokio::time::Instant;
use tracing::{info, warn};

use super::kinds::Stage;
use super::pass::{deny_all, StageLog};
use super::realized::{RealInterface, Realized};
use super::status::ObjectRef;
use super::{PassReport, Reconciler};
use crate::dataplane::{
    AclIndex, Dataplane, DataplaneError, IpSetId, Op, OpResult, SwIfIndex, RETVAL_FEATURE_DISABLED,
    RETVAL_INVALID_SW_IF_INDEX, RETVAL_NO_SUCH_ENTRY,
};

/// A delete that finds nothing to delete has reached its goal: "no such entry" for an object,
/// and also "no such interface" for what lives on an interface.
fn gone(op: &Op, res: &OpResult) -> bool {
    match res {
        Ok(_) => true,
        Err(e) if e.retval == RETVAL_NO_SUCH_ENTRY => true,
        Err(e) => {
            e.retval == RETVAL_INVALID_SW_IF_INDEX
                && matches!(op, Op::ConfigurePolicies { .. } | Op::Neighbour { .. })
        }
    }
}

/// Which record an unbinding is for.
#[derive(Clone)]
enum BindingRef {
    Keyed(calico_compile::InterfaceKey),
    Orphan(SwIfIndex),
}

impl<D: Dataplane> Reconciler<D> {
    pub(super) async fn prune(
        &mut self,
        desired: &DesiredState,
        now: Instant,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        self.prune_kinds(Stage::AfterInterfaces, desired, now, report)
            .await?;
        self.clear_stale_inclusions(report).await?;
        self.unbind_interfaces(desired, now, report).await?;
        self.prune_kinds(Stage::BeforeInterfaces, desired, now, report)
            .await?;
        self.delete_stale::<IpSets>(desired, now, report).await
    }

    /// cnat inclusion bits the driver set and holds no record of (see
    /// `Orphans::snat_inclusions`): cleared once VPP has an interface at that index again
    /// and no inclusion is wanted there; forgotten with the SNAT entry, which takes every
    /// bit with it.
    async fn clear_stale_inclusions(
        &mut self,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        if self.realized.orphans.snat_inclusions.is_empty() {
            return Ok(());
        }
        if self.realized.kinds.snat.is_empty() {
            self.realized.orphans.snat_inclusions.clear();
            return Ok(());
        }
        let wanted: BTreeSet<(SwIfIndex, bool)> = self
            .realized
            .kinds
            .snat_interfaces
            .iter()
            .map(|(k, r)| (r.sw_if_index, k.v6))
            .collect();
        self.realized
            .orphans
            .snat_inclusions
            .retain(|bit| !wanted.contains(bit));
        let due: Vec<(SwIfIndex, bool)> = self
            .realized
            .orphans
            .snat_inclusions
            .iter()
            .filter(|(i, _)| self.interfaces.contains_key(i))
            .copied()
            .collect();
        let ops = due
            .iter()
            .map(|&(sw_if_index, v6)| Op::SnatInterface {
                sw_if_index,
                v6,
                is_add: false,
            })
            .collect();
        let results = self.exec(ops, report).await?;
        for (bit, res) in due.into_iter().zip(results) {
            match res {
                Err(e) if e.retval == RETVAL_INVALID_SW_IF_INDEX => {} // gone again: wait
                Err(e) if e.retval != RETVAL_FEATURE_DISABLED => {
                    warn!(sw_if_index = %bit.0, v6 = bit.1, error = %e,
                        "clearing a stale SNAT inclusion failed; will retry");
                }
                _ => {
                    info!(sw_if_index = %bit.0, v6 = bit.1,
                        "cleared the SNAT inclusion a deleted interface left at this index");
                    self.realized.orphans.snat_inclusions.remove(&bit);
                }
            }
        }
        Ok(())
    }

    fn binding_mut(&mut self, b: &BindingRef) -> Option<&mut RealInterface> {
        match b {
            BindingRef::Keyed(k) => self.realized.interfaces.get_mut(k),
            BindingRef::Orphan(i) => self.realized.orphans.interfaces.get_mut(i),
        }
    }

    fn drop_binding(&mut self, b: &BindingRef) {
        match b {
            BindingRef::Keyed(k) => {
                self.realized.interfaces.remove(k);
            }
            BindingRef::Orphan(i) => {
                self.realized.orphans.interfaces.remove(i);
            }
        }
    }

    /// An endpoint that went keeps a deny-all configuration (and cnat, so the deny holds) on
    /// an interface that still exists, and loses its neighbour entries. An interface that is
    /// gone took its VPP state with it: only our record is dropped.
    async fn unbind_interfaces(
        &mut self,
        desired: &DesiredState,
        now: Instant,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        let mut log = StageLog::default();
        let mut bindings: Vec<(BindingRef, ObjectRef)> = Vec::new();
        for key in self.realized.interfaces.keys() {
            if !desired.interfaces.contains_key(key) {
                bindings.push((
                    BindingRef::Keyed(key.clone()),
                    ObjectRef::Interface(key.clone()),
                ));
            }
        }
        for idx in self.realized.orphans.interfaces.keys() {
            bindings.push((BindingRef::Orphan(*idx), ObjectRef::OrphanInterface(*idx)));
        }
        if bindings.is_empty() {
            return Ok(());
        }
        // Interfaces a desired endpoint holds now: VPP reuses interface indexes, so an old
        // binding may name an interface that already belongs to another endpoint.
        let mut held: BTreeMap<SwIfIndex, BTreeSet<std::net::IpAddr>> = BTreeMap::new();
        for (key, rec) in self.realized.interfaces.iter() {
            if desired.interfaces.contains_key(key) {
                held.entry(rec.sw_if_index)
                    .or_default()
                    .extend(rec.neighbours.iter().map(|(ip, _)| *ip));
            }
        }
        // Guard ACLs that stay: an unbound interface keeps them; others are detached so
        // that they can be deleted.
        let kept_acls: BTreeSet<AclIndex> = self
            .realized
            .kinds
            .acls
            .iter()
            .filter(|(k, _)| desired.acls.contains_key(*k))
            .map(|(_, a)| a.id)
            .collect();
        let mut owners = Vec::new();
        let mut ops = Vec::new();
        let mut done = Vec::new();
        for (b, obj) in bindings {
            if !self.due(&obj, now) {
                continue;
            }
            let Some(have) = self.binding_mut(&b).cloned() else {
                continue;
            };
            if !self.interfaces.contains_key(&have.sw_if_index) {
                info!(object = %obj, "interface gone from VPP; forgetting its binding");
                done.push((b, obj));
                continue;
            }
            let taken = held.get(&have.sw_if_index);
            let deny = deny_all(have.config.as_ref().is_some_and(|c| c.invert_rx_tx));
            let mut n = 0;
            if taken.is_none() && have.config.as_ref() != Some(&deny) {
                ops.push(Op::ConfigurePolicies {
                    sw_if_index: have.sw_if_index,
                    config: deny,
                });
                n += 1;
            }
            if let Some(g) = &have.guard {
                let keep = kept_acls.contains(&g.input) && kept_acls.contains(&g.output);
                if taken.is_none() && !keep {
                    ops.push(Op::AclInterfaceSet {
                        sw_if_index: have.sw_if_index,
                        input: Vec::new(),
                        output: Vec::new(),
                    });
                    n += 1;
                }
            }
            for (ip, mac) in &have.neighbours {
                if taken.is_some_and(|ips| ips.contains(ip)) {
                    continue;
                }
                ops.push(Op::Neighbour {
                    sw_if_index: have.sw_if_index,
                    ip: *ip,
                    mac: *mac,
                    is_add: false,
                });
                n += 1;
            }
            if n == 0 {
                done.push((b, obj));
                continue;
            }
            owners.extend(std::iter::repeat_n((b, obj), n));
        }
        for (b, obj) in done {
            self.drop_binding(&b);
            self.failures.remove(&obj);
        }
        let results = self.exec(ops.clone(), report).await?;
        let mut failed: BTreeSet<ObjectRef> = BTreeSet::new();
        let mut touched: Vec<(BindingRef, ObjectRef)> = Vec::new();
        for (((b, obj), op), res) in owners.into_iter().zip(ops).zip(results) {
            if !gone(&op, &res) {
                if let Err(e) = res {
                    log.op_err(obj.clone(), &e);
                }
                failed.insert(obj);
                continue;
            }
            if let Some(rec) = self.binding_mut(&b) {
                match op {
                    Op::ConfigurePolicies { config, .. } => rec.config = Some(config),
                    Op::AclInterfaceSet { .. } => rec.guard = None,
                    Op::Neighbour { ip, mac, .. } => {
                        rec.neighbours.remove(&(ip, mac));
                    }
                    _ => {}
                }
            }
            touched.push((b, obj));
        }
        for (b, obj) in touched {
            if !failed.contains(&obj) {
                self.drop_binding(&b);
                log.ok(obj);
            }
        }
        self.finish_stage(log, now);
        Ok(())
    }

    /// Stale npol objects of one kind (keyed ones no longer desired, and orphans) that no
    /// realized object refers to any more.
    async fn delete_stale<K: NpolKind>(
        &mut self,
        desired: &DesiredState,
        now: Instant,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        let mut cands = K::stale(&self.realized, desired);
        if cands.is_empty() {
            return Ok(());
        }
        // What refers to them: a scan of the realized record, so only when there are any.
        let used = K::referenced(&self.realized);
        cands.retain(|(k, id)| !used.contains(id) && self.due(&K::object(k.as_ref(), *id), now));
        let ops = cands.iter().map(|(_, id)| K::delete(*id)).collect();
        let results = self.exec(ops, report).await?;
        let mut log = StageLog::default();
        for ((key, id), res) in cands.into_iter().zip(results) {
            let obj = K::object(key.as_ref(), id);
            if !gone(&K::delete(id), &res) {
                if let Err(e) = res {
                    log.op_err(obj, &e);
                }
                continue;
            }
            K::forget(&mut self.realized, key, id);
            log.ok(obj);
        }
        self.finish_stage(log, now);
        Ok(())
    }
}

/// What deleting differs in between the three npol object kinds.
trait NpolKind {
    type Key: Clone;
    type Id: Copy + Ord;
    /// Keyed objects no longer desired, then orphans (no key).
    fn stale(r: &Realized, desired: &DesiredState) -> Vec<(Option<Self::Key>, Self::Id)>;
    fn referenced(r: &Realized) -> BTreeSet<Self::Id>;
    fn object(key: Option<&Self::Key>, id: Self::Id) -> ObjectRef;
    fn delete(id: Self::Id) -> Op;
    fn forget(r: &mut Realized, key: Option<Self::Key>, id: Self::Id);
}

/// Implements [`NpolKind`] for one kind: the realized and desired tables, the orphan set,
/// the id field, the status names and the delete operation.
macro_rules! npol_kind {
    ($kind:ident, $key:ty, $id:ty, $table:ident, $referenced:ident, $keyed:ident, $orphan:ident,
     |$d:ident| $delete:expr) => {
        struct $kind;
        impl NpolKind for $kind {
            type Key = $key;
            type Id = $id;
            fn stale(r: &Realized, desired: &DesiredState) -> Vec<(Option<$key>, $id)> {
                r.$table
                    .iter()
                    .filter(|(k, _)| !desired.$table.contains_key(*k))
                    .map(|(k, o)| (Some(k.clone()), o.id))
                    .chain(r.orphans.$table.iter().map(|id| (None, *id)))
                    .collect()
            }
            fn referenced(r: &Realized) -> BTreeSet<$id> {
                r.$referenced()
            }
            fn object(key: Option<&$key>, id: $id) -> ObjectRef {
                match key {
                    Some(k) => ObjectRef::$keyed(k.clone()),
                    None => ObjectRef::$orphan(id),
                }
            }
            fn delete($d: $id) -> Op {
                $delete
            }
            fn forget(r: &mut Realized, key: Option<$key>, id: $id) {
                match key {
                    Some(k) => {
                        r.$table.remove(&k);
                    }
                    None => {
                        r.orphans.$table.remove(&id);
                    }
                }
            }
        }
    };
}

npol_kind!(
    IpSets,
    IpSetKey,
    IpSetId,
    ipsets,
    referenced_ipsets,
    IpSet,
    OrphanIpSet,
    |set| Op::IpSetDelete { set }
);
