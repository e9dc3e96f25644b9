//! Generic object kinds: the reconciler's tables, diff, journal, retries and prune written
//! once, for every kind of VPP object registered in [`kinds!`](crate::reconcile::kinds).
//!
//! A kind ([`Kind`]) says what its key, desired value and realized record are, which write
//! brings VPP from what it holds to what is desired, what VPP holds after that write, how
//! to delete it, and whether something realized still uses it. Everything else is here:
//! - desired objects come from `DesiredState.<field>`, changes from `DesiredDiff.<field>`
//!   (a [`KindDiff`]); a changed pass looks only at the keys a diff named, those failed or
//!   waiting, and the dependants a kind names when its objects change;
//! - the realized record is a journaled [`Table`] in the state file (flattened, so a kind
//!   keeps its own field name there);
//! - failures (with backoff, retryable or permanent) and waiting reasons are kept per key;
//! - deletes run after every create and update, in reverse stage order, and only for
//!   objects in the realized record, which holds only what this driver made.
//!
//! A new kind is its own module here (the [`Kind`] impl), one line in the registry below,
//! one line in `calico_compile`'s `generic_kinds!` (its desired table), the compiler code
//! that fills that table, and its VPP calls in `dataplane/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use calico_compile::{DesiredDiff, DesiredState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::pass::scoped;
use super::realized::{Orphans, Realized, Table};
use super::status::{Failure, ObjectError, ObjectRef};
use super::{PassReport, Reconciler};
use crate::dataplane::{
    Dataplane, DataplaneError, InterfaceInfo, Op, OpError, OpReply, SwIfIndex, RETVAL_NO_SUCH_ENTRY,
};

pub mod acl;
pub mod local_route;
pub mod npol_objects;
pub mod pod;
pub mod route;
pub mod service_reject;
pub mod snat;
pub mod translation;
pub mod tunnel;
pub mod uplink;

/// Most writes one object gets in one pass (an object built in several writes takes one
/// round each; a kind whose `plan` never settles stops here and goes on next pass).
const MAX_STEPS: usize = 8;

/// Where in a pass a kind's creates and updates run (its deletes run in the reverse
/// order, after every create and update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// After npol policies, before interfaces are configured (what interfaces refer to).
    BeforeInterfaces,
    /// After interfaces (what lives on or points at interfaces: routes, neighbours).
    AfterInterfaces,
}

/// What a kind's `plan` may look at: the desired state, what the driver made so far in
/// this pass, what is held back, and VPP's interface table.
pub struct Ctx<'a> {
    pub desired: &'a DesiredState,
    pub realized: &'a Realized,
    pub interfaces: &'a BTreeMap<SwIfIndex, InterfaceInfo>,
    /// The uplink (`CALICO_VPP_UPLINK_INTERFACE`), if configured: its interface index, or
    /// why VPP has none. Resolved once per context, not per object.
    pub uplink: Option<Result<SwIfIndex, String>>,
    failures: &'a BTreeMap<ObjectRef, Failure>,
    waiting: &'a BTreeMap<ObjectRef, String>,
    books: &'a KindBooks,
}

impl Ctx<'_> {
    /// The uplink's interface index, or why there is none (what needs it waits).
    pub fn uplink(&self) -> Result<SwIfIndex, String> {
        match &self.uplink {
            Some(found) => found.clone(),
            None => Err("no uplink interface configured (CALICO_VPP_UPLINK_INTERFACE)".into()),
        }
    }

    /// A hand-wired object (ipset, interface) is failed or waiting. Builds the reference
    /// only when something is failed or waiting at all (the common case at scale is
    /// neither, and references own their keys).
    pub fn blocked_lazy(&self, obj: impl FnOnce() -> ObjectRef) -> bool {
        if self.failures.is_empty() && self.waiting.is_empty() {
            return false;
        }
        let obj = obj();
        self.failures.contains_key(&obj) || self.waiting.contains_key(&obj)
    }

    /// The realized record of a dependency of another generic kind, once it is desired,
    /// in VPP and not held back; otherwise why not (the dependant waits).
    pub fn dependency<K: Registered>(&self, key: &K::Key) -> Result<&'_ K::Real, String> {
        if !K::desired(self.desired).contains_key(key) {
            return Err(format!("{} {key} is not in the desired state", K::NAME));
        }
        if K::book(self.books).blocked(key) {
            return Err(format!("waiting for {} {key}", K::NAME));
        }
        K::table(&self.realized.kinds)
            .get(key)
            .ok_or_else(|| format!("waiting for {} {key}", K::NAME))
    }
}

/// One kind of VPP object the driver owns.
pub trait Kind: Sized + Send + Sync + 'static {
    /// Its name in logs, metrics and object references.
    const NAME: &'static str;
    const STAGE: Stage;
    /// Built in several writes: after a successful write, `plan` is asked again in the
    /// same pass (see [`MAX_STEPS`]).
    const MULTI_STEP: bool = false;
    type Key: Ord + Clone + fmt::Debug + fmt::Display + Serialize + DeserializeOwned + Send + Sync;
    type Want: PartialEq + Clone + fmt::Debug + Send + Sync;
    /// What VPP holds because the driver put it there: whatever identifies it in VPP (an
    /// index, a handle) and what it was given. Only ever what VPP acknowledged.
    type Real: PartialEq + Eq + Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync;

    /// The write that brings VPP from `have` to `want`: `Ok(None)` when VPP holds it
    /// already, `Err(reason)` while something it needs is not in VPP (it waits, and its
    /// dependants with it).
    fn plan(
        ctx: &Ctx<'_>,
        key: &Self::Key,
        want: &Self::Want,
        have: Option<&Self::Real>,
    ) -> Result<Option<Op>, String>;

    /// What VPP holds after `op`, planned from `want` and `have`, succeeded with `reply`.
    /// `Err` when the reply cannot be used (retried).
    fn applied(
        want: &Self::Want,
        have: Option<&Self::Real>,
        op: Op,
        reply: OpReply,
    ) -> Result<Self::Real, String>;

    /// A refused write that means VPP no longer holds the object (someone deleted it): the
    /// record is dropped, so the next try creates it afresh.
    fn lost(_error: &OpError) -> bool {
        false
    }

    /// The VPP interface this object is (an interface the driver created): when VPP no
    /// longer has it, the record is forgotten and the object built again.
    fn interface(_real: &Self::Real) -> Option<SwIfIndex> {
        None
    }

    /// The write that deletes a realized object.
    fn delete(key: &Self::Key, real: &Self::Real) -> Op;

    /// The record of an object is dropped while VPP may still hold part of it: its
    /// interface is gone (forgotten, or a delete refused for that), or the object moved to
    /// another interface. What VPP keeps past its interface (cnat's inclusion bit) goes to
    /// `orphans`, to be cleaned up when it can be.
    fn forgotten(_key: &Self::Key, _real: &Self::Real, _orphans: &mut Orphans) {}

    /// A refused delete that means VPP does not hold the object any more: the goal either
    /// way. VPP says so with `NO_SUCH_ENTRY` for most objects; a kind whose delete message
    /// answers otherwise says which answers mean it.
    fn already_gone(error: &OpError) -> bool {
        error.retval == RETVAL_NO_SUCH_ENTRY
    }

    /// Drops from `stale` what something realized still uses (deleted once it does not), or
    /// what may not be deleted yet. Called only when there is something to delete.
    fn retain_unused(
        _realized: &Realized,
        _desired: &DesiredState,
        _stale: &mut Vec<(Self::Key, Self::Real)>,
    ) {
    }

    /// Objects of other kinds to look at again in a changed pass because these keys'
    /// realized records changed or they are now held back.
    fn dependants(_desired: &DesiredState, _hit: &BTreeSet<Self::Key>, _work: &mut super::Changed) {
    }
}

/// Failures and waiting reasons of one kind, per key.
pub struct Book<K: Kind> {
    pub failures: BTreeMap<K::Key, Failure>,
    pub waiting: BTreeMap<K::Key, String>,
}

impl<K: Kind> Default for Book<K> {
    fn default() -> Self {
        Book {
            failures: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
    }
}

impl<K: Kind> fmt::Debug for Book<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Book")
            .field("failures", &self.failures)
            .field("waiting", &self.waiting)
            .finish()
    }
}

impl<K: Kind> Book<K> {
    fn due(&self, key: &K::Key, now: Instant) -> bool {
        self.failures
            .get(key)
            .is_none_or(|f| !f.permanent && f.retry_at <= now)
    }

    fn blocked(&self, key: &K::Key) -> bool {
        self.failures.contains_key(key) || self.waiting.contains_key(key)
    }

    /// Applies one stage's outcome: successes clear failures, failures back off.
    fn finish(
        &mut self,
        ok: Vec<K::Key>,
        err: BTreeMap<K::Key, ObjectError>,
        backoff: &super::Backoff,
        now: Instant,
    ) {
        for key in ok {
            if !err.contains_key(&key) && self.failures.remove(&key).is_some() {
                info!(kind = K::NAME, key = %key, "recovered after failures");
            }
        }
        for (key, e) in err {
            let attempts = self.failures.get(&key).map_or(0, |f| f.attempts) + 1;
            let delay = backoff.delay(attempts);
            let permanent = e.is_permanent();
            if permanent {
                error!(kind = K::NAME, key = %key, error = %e,
                    "cannot be programmed from this input; not retried until it changes");
            } else {
                warn!(kind = K::NAME, key = %key, error = %e, attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    "VPP refused an operation; will retry");
            }
            self.failures.insert(
                key,
                Failure {
                    attempts,
                    retry_at: now + delay,
                    error: e.to_string(),
                    permanent,
                },
            );
        }
    }
}

/// Where a registered kind's tables live (implemented by [`kinds!`]).
pub trait Registered: Kind {
    fn desired(d: &DesiredState) -> &BTreeMap<Self::Key, Self::Want>;
    fn table(t: &KindTables) -> &Table<Self::Key, Self::Real>;
    fn table_mut(t: &mut KindTables) -> &mut Table<Self::Key, Self::Real>;
    fn keys(k: &KindKeys) -> &BTreeSet<Self::Key>;
    fn keys_mut(k: &mut KindKeys) -> &mut BTreeSet<Self::Key>;
    fn book(b: &KindBooks) -> &Book<Self>;
    fn book_mut(b: &mut KindBooks) -> &mut Book<Self>;
}

/// How failures and waiting reasons of a generic kind's object are named outside it.
pub fn object<K: Kind>(key: &K::Key) -> ObjectRef {
    ObjectRef::Other(format!("{} {key}", K::NAME))
}

/// A failure as summaries and logs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindFailure {
    pub object: String,
    pub failure: Failure,
}

/// The registry: one line per kind, `field: Type`, in stage order within each [`Stage`]
/// (an object's dependencies come before it). `field` names the kind's table in
/// `DesiredState` and `KindDiffs` (declared once, in `calico_compile::desired`'s
/// `generic_kinds!`), the state file and `Changed`.
macro_rules! kinds {
    ($($field:ident: $kind:ty),* $(,)?) => {
        /// The realized records of the generic kinds (flattened into [`Realized`]).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct KindTables {
            $( #[serde(default)] pub $field: Table<<$kind as Kind>::Key, <$kind as Kind>::Real>, )*
        }

        /// What changed in [`KindTables`] since the last record (flattened into the journal).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[allow(clippy::type_complexity)]
        pub struct KindRecords {
            $(
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                pub $field: Vec<(<$kind as Kind>::Key, Option<<$kind as Kind>::Real>)>,
            )*
        }

        /// The keys of the generic kinds a changed pass looks at.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct KindKeys {
            $( pub $field: BTreeSet<<$kind as Kind>::Key>, )*
        }

        /// Failures and waiting reasons of the generic kinds.
        #[derive(Debug, Default)]
        pub struct KindBooks {
            $( pub $field: Book<$kind>, )*
        }

        $(
            impl Registered for $kind {
                fn desired(d: &DesiredState) -> &BTreeMap<Self::Key, Self::Want> {
                    &d.$field
                }
                fn table(t: &KindTables) -> &Table<Self::Key, Self::Real> {
                    &t.$field
                }
                fn table_mut(t: &mut KindTables) -> &mut Table<Self::Key, Self::Real> {
                    &mut t.$field
                }
                fn keys(k: &KindKeys) -> &BTreeSet<Self::Key> {
                    &k.$field
                }
                fn keys_mut(k: &mut KindKeys) -> &mut BTreeSet<Self::Key> {
                    &mut k.$field
                }
                fn book(b: &KindBooks) -> &Book<Self> {
                    &b.$field
                }
                fn book_mut(b: &mut KindBooks) -> &mut Book<Self> {
                    &mut b.$field
                }
            }
        )*

        impl KindTables {
            /// Whether `idx` is an interface the driver created (a realized record is it).
            pub(crate) fn owns_interface(&self, idx: SwIfIndex) -> bool {
                false $( || self.$field.values().any(|r| <$kind as Kind>::interface(r) == Some(idx)) )*
            }

            /// Forgets the records of created interfaces VPP no longer has; how many.
            pub(crate) fn forget_interfaces(
                &mut self,
                gone: impl Fn(SwIfIndex) -> bool,
                orphans: &mut Orphans,
            ) -> usize {
                let mut n = 0;
                $(
                    let lost: Vec<_> = self.$field
                        .iter()
                        .filter(|(_, r)| <$kind as Kind>::interface(r).is_some_and(&gone))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in lost {
                        warn!(kind = <$kind as Kind>::NAME, key = %k,
                            "VPP no longer has this interface the driver created; building it again");
                        if let Some(r) = self.$field.remove(&k) {
                            <$kind as Kind>::forgotten(&k, &r, orphans);
                        }
                        n += 1;
                    }
                )*
                n
            }

            pub(super) fn take_changes(&mut self) -> KindRecords {
                KindRecords { $( $field: self.$field.take_changed(), )* }
            }

            pub(super) fn forget_changes(&mut self) {
                $( self.$field.forget_changed(); )*
            }

            pub(super) fn replay(&mut self, rec: KindRecords) {
                $( self.$field.apply_changed(rec.$field); )*
            }

            /// (kind, desired, realized) per kind.
            pub fn counts(&self, desired: &DesiredState) -> Vec<(&'static str, usize, usize)> {
                vec![ $( (<$kind as Kind>::NAME, desired.$field.len(), self.$field.len()), )* ]
            }
        }

        impl KindRecords {
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_empty() )*
            }
        }

        impl KindKeys {
            pub fn add_diff(&mut self, diff: &DesiredDiff) {
                $( self.$field.extend(diff.kinds.$field.keys().cloned()); )*
            }
        }

        impl KindBooks {
            /// Every failure, by object name.
            pub fn failures(&self) -> Vec<KindFailure> {
                let mut out = Vec::new();
                $(
                    out.extend(self.$field.failures.iter().map(|(k, f)| KindFailure {
                        object: object::<$kind>(k).to_string(),
                        failure: f.clone(),
                    }));
                )*
                out
            }

            pub fn waiting_len(&self) -> usize {
                0 $( + self.$field.waiting.len() )*
            }

            pub fn waiting(&self) -> Vec<(String, String)> {
                let mut out = Vec::new();
                $(
                    out.extend(self.$field.waiting.iter().map(|(k, w)| {
                        (object::<$kind>(k).to_string(), w.clone())
                    }));
                )*
                out
            }

            pub fn clear_failures(&mut self) {
                $( self.$field.failures.clear(); )*
            }

            pub fn clear_waiting(&mut self) {
                $( self.$field.waiting.clear(); )*
            }

            /// Forgets permanent failures (of the keys in `only`, or all): worth another try.
            pub fn forget_permanent(&mut self, only: Option<&KindKeys>) {
                $(
                    self.$field.failures.retain(|k, f| {
                        !f.permanent || only.is_some_and(|o| !o.$field.contains(k))
                    });
                )*
            }

            /// Forgets failures of objects neither desired nor realized any more.
            pub fn retain_relevant(&mut self, desired: &DesiredState, realized: &KindTables) {
                $(
                    self.$field.failures.retain(|k, _| {
                        desired.$field.contains_key(k) || realized.$field.contains_key(k)
                    });
                )*
            }

            /// Adds what is failed or waiting to a changed pass's work.
            pub fn add_to(&self, work: &mut KindKeys) {
                $(
                    work.$field.extend(self.$field.failures.keys().cloned());
                    work.$field.extend(self.$field.waiting.keys().cloned());
                )*
            }
        }

        impl<D: Dataplane> Reconciler<D> {
            /// Creates and updates of every kind of `stage`, in registry order.
            pub(super) async fn sync_kinds(
                &mut self,
                stage: Stage,
                desired: &DesiredState,
                work: &mut Option<super::Changed>,
                now: Instant,
                report: &mut PassReport,
            ) -> Result<(), DataplaneError> {
                $(
                    if <$kind as Kind>::STAGE == stage {
                        self.sync_kind::<$kind>(desired, work, now, report).await?;
                    }
                )*
                Ok(())
            }

            /// Deletes of every kind of `stage`, in reverse registry order.
            pub(super) async fn prune_kinds(
                &mut self,
                stage: Stage,
                desired: &DesiredState,
                now: Instant,
                report: &mut PassReport,
            ) -> Result<(), DataplaneError> {
                let n = [$( stringify!($field) ),*].len();
                for i in (0..n).rev() {
                    let mut j = 0;
                    $(
                        if j == i && <$kind as Kind>::STAGE == stage {
                            self.prune_kind::<$kind>(desired, now, report).await?;
                        }
                        j += 1;
                    )*
                    let _ = j;
                }
                Ok(())
            }
        }

    };
}

kinds! {
    rules: npol_objects::Rules,
    policies: npol_objects::Policies,
    acls: acl::Acls,
    pods: pod::Pods,
    uplinks: uplink::Uplinks,
    tunnels: tunnel::Tunnels,
    routes: route::Routes,
    local_routes: local_route::LocalRoutes,
    snat: snat::Snat,
    snat_excludes: snat::SnatExcludes,
    snat_interfaces: snat::SnatInterfaces,
    pod_links: pod::PodLinks,
    translations: translation::Translations,
    service_rejects: service_reject::ServiceRejects,
}

impl<D: Dataplane> Reconciler<D> {
    pub(super) fn kind_ctx<'a>(&'a self, desired: &'a DesiredState) -> Ctx<'a> {
        Ctx {
            desired,
            realized: &self.realized,
            interfaces: &self.interfaces,
            uplink: self.config.uplink.as_deref().map(|name| {
                self.by_name
                    .get(name)
                    .copied()
                    .ok_or_else(|| format!("uplink interface {name} is not in VPP"))
            }),
            failures: &self.failures,
            waiting: &self.waiting,
            books: &self.books,
        }
    }

    /// One kind's creates and updates, in one pipelined batch. With `work`, only the keys
    /// it names; the dependants of those whose record changed or which are now held back
    /// join the work.
    async fn sync_kind<K: Registered>(
        &mut self,
        desired: &DesiredState,
        work: &mut Option<super::Changed>,
        now: Instant,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        let scope = work.as_ref().map(|w| K::keys(&w.kinds));
        let before: Option<BTreeMap<K::Key, Option<K::Real>>> = scope.map(|keys| {
            let table = K::table(&self.realized.kinds);
            keys.iter()
                .map(|k| (k.clone(), table.get(k).cloned()))
                .collect()
        });
        let mut ok = Vec::new();
        let mut err = BTreeMap::new();
        // An object built in several writes (a tunnel: create, unnumbered, up) gets its next
        // write in another round of the same pass, once the previous one succeeded.
        let mut again: Option<BTreeSet<K::Key>> = None;
        for _ in 0..MAX_STEPS {
            let mut sent = Vec::new();
            let mut ops = Vec::new();
            let mut waiting = Vec::new();
            {
                let scope = match &again {
                    Some(keys) => Some(keys),
                    None => work.as_ref().map(|w| K::keys(&w.kinds)),
                };
                let ctx = self.kind_ctx(desired);
                let table = K::table(&self.realized.kinds);
                let book = K::book(&self.books);
                for (key, want) in scoped(K::desired(desired), scope) {
                    match K::plan(&ctx, key, want, table.get(key)) {
                        Err(reason) => waiting.push((key.clone(), reason)),
                        Ok(None) => ok.push(key.clone()),
                        Ok(Some(op)) => {
                            if again.is_some() || book.due(key, now) {
                                sent.push(key.clone());
                                ops.push(op);
                            }
                        }
                    }
                }
            }
            K::book_mut(&mut self.books).waiting.extend(waiting);
            if ops.is_empty() {
                break;
            }
            let results = self.exec(ops.clone(), report).await?;
            let mut progressed = BTreeSet::new();
            for ((key, op), res) in sent.into_iter().zip(ops).zip(results) {
                let table = K::table_mut(&mut self.realized.kinds);
                let want = &K::desired(desired)[&key];
                match res {
                    Ok(reply) => match K::applied(want, table.get(&key), op, reply) {
                        Ok(real) => {
                            if let Some(old) = table.get(&key) {
                                if K::interface(old) != K::interface(&real) {
                                    K::forgotten(&key, old, &mut self.realized.orphans);
                                }
                            }
                            let table = K::table_mut(&mut self.realized.kinds);
                            table.insert(key.clone(), real);
                            progressed.insert(key.clone());
                            ok.push(key);
                        }
                        Err(e) => {
                            err.insert(key, ObjectError::Retryable(e));
                        }
                    },
                    Err(e) => {
                        if K::lost(&e) {
                            if let Some(old) = table.remove(&key) {
                                K::forgotten(&key, &old, &mut self.realized.orphans);
                            }
                        }
                        err.insert(key, ObjectError::from_op(&e));
                    }
                }
            }
            if !K::MULTI_STEP || progressed.is_empty() {
                break;
            }
            again = Some(progressed);
        }
        let backoff = self.config.backoff;
        K::book_mut(&mut self.books).finish(ok, err, &backoff, now);
        if let (Some(w), Some(before)) = (work.as_mut(), before) {
            let table = K::table(&self.realized.kinds);
            let book = K::book(&self.books);
            let hit: BTreeSet<K::Key> = before
                .into_iter()
                .filter(|(k, was)| table.get(k) != was.as_ref() || book.blocked(k))
                .map(|(k, _)| k)
                .collect();
            if !hit.is_empty() {
                K::dependants(desired, &hit, w);
            }
        }
        Ok(())
    }

    /// One kind's deletes: realized objects no longer desired that nothing realized uses.
    async fn prune_kind<K: Registered>(
        &mut self,
        desired: &DesiredState,
        now: Instant,
        report: &mut PassReport,
    ) -> Result<(), DataplaneError> {
        let want = K::desired(desired);
        let book = K::book(&self.books);
        let mut stale: Vec<(K::Key, K::Real)> = K::table(&self.realized.kinds)
            .iter()
            .filter(|(k, _)| !want.contains_key(*k) && book.due(k, now))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        K::retain_unused(&self.realized, desired, &mut stale);
        let ops: Vec<Op> = stale.iter().map(|(k, r)| K::delete(k, r)).collect();
        let results = self.exec(ops, report).await?;
        let mut ok = Vec::new();
        let mut err = BTreeMap::new();
        for ((key, _), res) in stale.into_iter().zip(results) {
            match res {
                Err(e) if !K::already_gone(&e) => {
                    err.insert(key, ObjectError::from_op(&e));
                }
                // Deleted, or already gone: the goal either way.
                res => {
                    let old = K::table_mut(&mut self.realized.kinds).remove(&key);
                    if let (Err(_), Some(old)) = (res, old) {
                        K::forgotten(&key, &old, &mut self.realized.orphans);
                    }
                    ok.push(key);
                }
            }
        }
        let backoff = self.config.backoff;
        K::book_mut(&mut self.books).finish(ok, err, &backoff, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::RuleId;
    use crate::reconcile::kinds::npol_objects::RealRule;
    use calico_compile::RuleKey;

    /// The generic kinds keep the field names the state file had before them, so a driver
    /// upgrade adopts what an older one made (and an orphan record with the old rule and
    /// policy sets still loads).
    #[test]
    fn state_file_layout_is_unchanged_by_the_generic_kinds() {
        let mut r = Realized::default();
        r.kinds.rules.insert(
            RuleKey("r".into()),
            RealRule {
                id: RuleId(7),
                rule: npol::Rule {
                    action: npol::RuleAction::Allow,
                    filters: [npol::Filter::NONE; 3],
                    entries: Vec::new(),
                },
            },
        );
        // Every table must survive JSON (whose keys are strings).
        r.kinds.tunnels.insert(
            calico_compile::TunnelKey {
                encap: calico_compile::Encap::Ipip,
                src: "192.168.1.1".parse().unwrap(),
                dst: "192.168.1.2".parse().unwrap(),
            },
            super::tunnel::RealTunnel {
                sw_if_index: SwIfIndex(9),
                unnumbered: Some(SwIfIndex(1)),
                cnat: true,
                mac: None,
                neighbour: None,
                up: true,
            },
        );
        let v = serde_json::to_value(&r).unwrap();
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "ipsets",
                "rules",
                "policies",
                "interfaces",
                "orphans",
                "acls",
                "uplinks",
                "tunnels",
                "routes",
                "local_routes",
                "snat",
                "snat_excludes",
                "snat_interfaces",
                "pods",
                "pod_links",
                "translations",
                "service_rejects"
            ])
        );
        let mut old = v.clone();
        old["orphans"]["rules"] = serde_json::json!([3]);
        old["orphans"]["policies"] = serde_json::json!([]);
        let back: Realized = serde_json::from_value(old).unwrap();
        assert_eq!(back, r);
    }
}
