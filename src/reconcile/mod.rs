//! Desired vs realized VPP state: ordering, batching, retries, endpoint binding and status.
//!
//! Drives a [`Dataplane`](crate::dataplane::Dataplane) so that VPP holds the compiler's
//! `DesiredState`. Before the first `apply` (Felix's InSync) it only creates IP sets (which
//! change no verdict until a rule refers to them, see [`Reconciler::stage_ipsets`]); it never
//! touches objects it did not create, and never leaves an interface on a configuration more
//! permissive than its policy: a failed object keeps the old configuration or a deny one.
//!
//! # For the agent
//!
//! ```ignore
//! let (handle, mut status, task) =
//!     reconcile::start_vpp(ReconcilerConfig::from_env(), VppConfig { socket, ..Default::default() });
//! // after InSync: the whole state once, then what changed (bursts coalesce):
//! handle.apply(Arc::new(compiled.desired));
//! handle.apply_diff(compiler.apply_changes(&model, &changes));
//! // endpoint status for Felix: Update { endpoint, status: up|down|error, .. } / Remove { endpoint }
//! while let Some(ev) = status.recv().await { /* WorkloadEndpointStatusUpdate / Remove */ }
//! // health for logs and status: handle.summary() (a watch of ReconcileSummary)
//! ```
//!
//! A pass after a diff compares only the objects the diff names, those still failed, waiting
//! or pending, and the dependants of any whose VPP id changed; a full pass (after a
//! (re)connection, a changed interface table, and every `full_pass_interval`) compares
//! everything. The state is kept in `$CALICO_VPP_STATE_DIR`: a snapshot
//! (`reconciler-state.json`) and a journal of what each pass changed
//! (`reconciler-state.journal`), see [`StateStore`]. VPP restarts are detected by a boot
//! token the reconciler tags onto `local0`. Tests and benches drive a [`Reconciler`] by hand
//! instead: [`Reconciler::connect`], [`Reconciler::apply`], [`Reconciler::apply_changes`],
//! [`Reconciler::take_status_events`].

use calico_model::EndpointId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use calico_compile::{DesiredDiff, DesiredState, InterfaceKey, IpSetKey};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::dataplane::{
    Dataplane, DataplaneError, InterfaceEvent, InterfaceInfo, SwIfIndex, VppIdentity,
};

pub mod kinds;
mod pass;
mod prune;
pub mod realized;
mod run;
pub mod status;
pub mod synthetic;
#[cfg(test)]
mod tests;

pub use realized::{PersistedState, Realized, StateError, StateStore};
pub use run::{apply_diff, spawn, start_vpp, Input, ReconcilerHandle};
pub use status::{
    Backoff, EndpointOperStatus, EndpointStatusEvent, Failure, ObjectError, ObjectRef,
};

/// Environment variable naming the directory of the state file.
pub const STATE_DIR_ENV: &str = "CALICO_VPP_STATE_DIR";

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Directory of the state file; `None` keeps nothing across restarts (tests only: a
    /// restarted driver would then reprogram everything and leak the old objects).
    pub state_dir: Option<PathBuf>,
    pub backoff: Backoff,
    /// Backoff between reconnection attempts.
    pub reconnect: Backoff,
    /// Minimum time between two passes, so that churn coalesces into fewer, larger passes.
    pub min_apply_interval: Duration,
    /// How often the interface table is dumped again while some endpoint waits for its
    /// interface (tags set after creation raise no event).
    pub rescan_interval: Duration,
    /// Changes are applied by comparing only the objects that changed; at least this often
    /// a pass compares everything instead (a safety net that logs any drift it repairs).
    pub full_pass_interval: Duration,
    /// The VPP interface facing the network, by name: tunnels borrow its address.
    pub uplink: Option<String>,
}

impl ReconcilerConfig {
    /// Defaults, with the state directory from `CALICO_VPP_STATE_DIR` when set. Without it
    /// nothing survives a driver restart (it then reprograms everything and leaks the old
    /// objects), which is logged.
    pub fn from_env() -> Self {
        let state_dir = std::env::var_os(STATE_DIR_ENV).map(PathBuf::from);
        if state_dir.is_none() {
            warn!(
                env = STATE_DIR_ENV,
                "no state directory: a driver restart will reprogram VPP from scratch"
            );
        }
        ReconcilerConfig {
            state_dir,
            ..ReconcilerConfig::default()
        }
    }
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            state_dir: None,
            backoff: Backoff::default(),
            reconnect: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            min_apply_interval: Duration::ZERO,
            rescan_interval: Duration::from_secs(1),
            full_pass_interval: Duration::from_secs(60),
            uplink: None,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Write operations sent to VPP.
    pub writes: usize,
    /// Operations VPP refused.
    pub failed_ops: usize,
    /// Objects currently failed (waiting for their retry).
    pub failed_objects: usize,
    /// Objects waiting for a failed or missing dependency.
    pub waiting_objects: usize,
    /// Endpoints whose interface is not in VPP yet.
    pub pending_interfaces: usize,
    /// Batches sent to VPP.
    pub batches: usize,
    /// Time inside the dataplane's `execute` for those batches: encoding, VPP's work and its
    /// replies (the rest of a pass is the driver's own: diffing and planning).
    pub vpp_wait: Duration,
}

/// The reconciler's health in one value, for the agent's status and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    pub connected: bool,
    pub passes: u64,
    /// Failed objects: (object, last error, attempts).
    pub failed: Vec<(String, String, u32)>,
    /// Objects waiting for a failed or missing dependency.
    pub waiting: usize,
    /// Endpoints whose interface is not in VPP (yet).
    pub pending_interfaces: usize,
    /// Desired-state inputs (whole states and diffs) the latest finished pass worked from.
    pub inputs: u64,
    /// The pod interfaces the driver made, by host interface name (for the CNI server).
    pub pods: BTreeMap<String, PodState>,
    /// Successful connections to VPP so far (a new one may be a new VPP run).
    pub connections: u64,
}

/// Where one pod interface stands in VPP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// Its interface, once created.
    pub sw_if_index: Option<SwIfIndex>,
    /// Built as far as it goes before its endpoint: the endpoint can bind to it.
    pub ready: bool,
    /// Its endpoint is bound with its policy live (before, it is dark).
    pub up: bool,
    /// The last failure: (error, permanent).
    pub failure: Option<(String, bool)>,
}

/// Where one desired interface stands after a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InterfaceOutcome {
    endpoint: EndpointId,
    status: EndpointOperStatus,
    reason: Option<String>,
}

pub struct Reconciler<D> {
    dp: D,
    config: ReconcilerConfig,
    store: Option<StateStore>,
    connected: bool,
    /// The VPP run `realized` describes; `None` before the first connection without a state file.
    realized_for: Option<VppIdentity>,
    realized: Realized,
    /// The next save writes a whole snapshot (a new VPP run, a failed write) instead of
    /// appending what changed to the journal.
    snapshot_needed: bool,
    /// The orphan record as last written to the state file.
    orphans_written: realized::Orphans,
    interfaces: BTreeMap<SwIfIndex, InterfaceInfo>,
    /// Indexes of `interfaces` for binding (lowest index wins on duplicates).
    by_tag: HashMap<String, SwIfIndex>,
    by_name: HashMap<String, SwIfIndex>,
    failures: BTreeMap<ObjectRef, Failure>,
    /// Objects held back by a dependency, with the reason; recomputed by every pass.
    waiting: BTreeMap<ObjectRef, String>,
    /// Failures and waiting reasons of the generic kinds.
    books: kinds::KindBooks,
    outcomes: BTreeMap<InterfaceKey, InterfaceOutcome>,
    /// The keys of `outcomes` whose interface is not in VPP (yet).
    pending: BTreeSet<InterfaceKey>,
    reported: BTreeMap<InterfaceKey, InterfaceOutcome>,
    /// Every desired object outside failures, waiting and pending is in VPP as desired: a
    /// pass may look at changed objects only. Lost on (re)connection, a changed interface
    /// table, or a broken pass.
    in_step: bool,
    last_full_pass: Option<Instant>,
    /// Interfaces whose link state changed since the last pass (their endpoints' status).
    link_changed: BTreeSet<SwIfIndex>,
    /// Successful connections to VPP so far (for the reconnect counter).
    connections: u64,
    /// When the interface table was last dumped: the next rescan for pending endpoints is
    /// due a `rescan_interval` after it, however often other wake-ups come.
    last_refresh: Option<Instant>,
    events: Vec<EndpointStatusEvent>,
    /// See [`Reconciler::defer_saves`].
    defer_saves: bool,
    /// A pass left the state file to [`Reconciler::save_deferred`].
    save_due: bool,
    passes: u64,
    /// IP sets [`Reconciler::stage_ipsets`] made in this process before any pass: no rule
    /// refers to them, so staging may still change them.
    staged_here: BTreeSet<IpSetKey>,
}

impl<D: Dataplane> Reconciler<D> {
    /// Loads the state file, if configured. An unreadable file is logged and ignored: we then
    /// reprogram everything (the old objects leak, nothing is left permissive).
    pub fn new(dp: D, config: ReconcilerConfig) -> Self {
        let mut store = config.state_dir.as_deref().map(StateStore::in_dir);
        let mut realized = Realized::default();
        let mut realized_for = None;
        if let Some(store) = &mut store {
            match store.open() {
                Ok(Some(state)) => {
                    info!(
                        path = %store.path().display(),
                        vpp = %state.vpp,
                        ipsets = state.realized.ipsets.len(),
                        rules = state.realized.kinds.rules.len(),
                        policies = state.realized.kinds.policies.len(),
                        interfaces = state.realized.interfaces.len(),
                        acls = state.realized.kinds.acls.len(),
                        "adopting state file"
                    );
                    realized = state.realized;
                    realized_for = Some(state.vpp);
                }
                Ok(None) => info!(path = %store.path().display(), "no state file, starting empty"),
                Err(e) => warn!(error = %e, "ignoring state file; VPP objects it lists will leak"),
            }
        }
        Reconciler {
            dp,
            config,
            store,
            connected: false,
            realized_for,
            orphans_written: realized.orphans.clone(),
            realized,
            snapshot_needed: false,
            interfaces: BTreeMap::new(),
            by_tag: HashMap::new(),
            by_name: HashMap::new(),
            failures: BTreeMap::new(),
            waiting: BTreeMap::new(),
            books: kinds::KindBooks::default(),
            outcomes: BTreeMap::new(),
            pending: BTreeSet::new(),
            reported: BTreeMap::new(),
            in_step: false,
            last_full_pass: None,
            link_changed: BTreeSet::new(),
            connections: 0,
            last_refresh: None,
            events: Vec::new(),
            defer_saves: false,
            save_due: false,
            passes: 0,
            staged_here: BTreeSet::new(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// What we believe VPP holds.
    pub fn realized(&self) -> &Realized {
        &self.realized
    }

    /// Objects whose last operation failed, of every kind.
    pub fn failures(&self) -> BTreeMap<ObjectRef, Failure> {
        let mut all = self.failures.clone();
        all.extend(
            self.books
                .failures()
                .into_iter()
                .map(|f| (ObjectRef::Other(f.object), f.failure)),
        );
        all
    }

    /// Objects held back by a dependency, with the reason, of every kind.
    pub fn waiting(&self) -> BTreeMap<ObjectRef, String> {
        let mut all = self.waiting.clone();
        all.extend(
            self.books
                .waiting()
                .into_iter()
                .map(|(o, w)| (ObjectRef::Other(o), w)),
        );
        all
    }

    /// Nothing failed and nothing waits, of any kind.
    fn all_clear(&self) -> bool {
        self.failures.is_empty()
            && self.waiting.is_empty()
            && self.books.failures().is_empty()
            && self.books.waiting_len() == 0
    }

    pub fn dataplane(&self) -> &D {
        &self.dp
    }

    /// Connects (or reconnects) to VPP. A different VPP run than the one the realized state
    /// belongs to means VPP restarted empty: everything is forgotten and will be reprogrammed.
    pub async fn connect(&mut self) -> Result<(), DataplaneError> {
        self.connected = false;
        self.in_step = false;
        let identity = self.dp.connect().await?;
        match &self.realized_for {
            Some(prev) if *prev == identity => {
                info!(vpp = %identity, "connected to the same VPP run; keeping realized state")
            }
            Some(prev) => {
                warn!(previous = %prev, vpp = %identity,
                    "VPP restarted: its objects are gone, reprogramming everything");
                self.realized = Realized::default();
                self.staged_here.clear();
                self.failures.clear();
                self.books.clear_failures();
                self.snapshot_needed = true;
            }
            None => info!(vpp = %identity, "connected to VPP"),
        }
        if self.realized_for.as_ref() != Some(&identity) {
            self.snapshot_needed = true;
        }
        self.realized_for = Some(identity);
        self.connected = true;
        if self.connections > 0 {
            crate::metrics::global().vpp_reconnects.inc();
        }
        self.connections += 1;
        self.refresh_interfaces().await?;
        if let Some(uplink) = &self.config.uplink {
            if !self.by_name.contains_key(uplink) {
                error!(uplink = %uplink,
                    "the uplink interface (CALICO_VPP_UPLINK_INTERFACE) is not in VPP: no tunnel to another node can be built until it is");
            }
        }
        Ok(())
    }

    /// Dumps VPP's interface table again.
    pub async fn refresh_interfaces(&mut self) -> Result<(), DataplaneError> {
        if !self.connected {
            return Err(DataplaneError::NotConnected);
        }
        let r = self.dp.interfaces().await;
        let list = self.note(r)?;
        self.last_refresh = Some(Instant::now());
        let table: BTreeMap<_, _> = list.into_iter().map(|i| (i.sw_if_index, i)).collect();
        if table != self.interfaces {
            // Bindings may have moved: the next pass looks at every endpoint. Not when the
            // only change is interfaces the driver just created (a pod's): the pass that made
            // them binds them, and a full pass per new pod would make pod creation quadratic.
            let only_ours_added = self.interfaces.iter().all(|(k, v)| table.get(k) == Some(v))
                && table
                    .keys()
                    .filter(|k| !self.interfaces.contains_key(k))
                    .all(|k| self.realized.kinds.owns_interface(*k));
            if !only_ours_added {
                self.in_step = false;
            }
            let realized = &mut self.realized;
            realized
                .kinds
                .forget_interfaces(|i| !table.contains_key(&i), &mut realized.orphans);
            self.interfaces = table;
            self.index_interfaces();
        }
        Ok(())
    }

    fn index_interfaces(&mut self) {
        self.by_tag.clear();
        self.by_name.clear();
        for i in self.interfaces.values() {
            if !i.tag.is_empty() {
                self.by_tag.entry(i.tag.clone()).or_insert(i.sw_if_index);
            }
            self.by_name.entry(i.name.clone()).or_insert(i.sw_if_index);
        }
    }

    /// Waits for the next interface event (cancel-safe) and folds it into the interface table.
    pub async fn next_interface_event(&mut self) -> Result<(), DataplaneError> {
        if !self.connected {
            return Err(DataplaneError::NotConnected);
        }
        let r = self.dp.next_interface_event().await;
        let ev = self.note(r)?;
        debug!(?ev, "VPP interface event");
        match ev {
            InterfaceEvent::Changed {
                sw_if_index,
                admin_up,
                link_up,
            } => match self.interfaces.get_mut(&sw_if_index) {
                Some(i) => {
                    i.admin_up = admin_up;
                    i.link_up = link_up;
                    self.link_changed.insert(sw_if_index);
                }
                None => self.refresh_interfaces().await?,
            },
            InterfaceEvent::Deleted { sw_if_index } => {
                // Only an interface something realized refers to changes what the next pass
                // must look at; the driver's own deletes (a pod's interface, a tunnel) come
                // back here after their records are gone, and must not cost a full pass.
                let referred = self
                    .realized
                    .interfaces
                    .values()
                    .any(|b| b.sw_if_index == sw_if_index)
                    || self.realized.orphans.interfaces.contains_key(&sw_if_index)
                    || self.realized.kinds.owns_interface(sw_if_index);
                self.interfaces.remove(&sw_if_index);
                self.index_interfaces();
                let realized = &mut self.realized;
                realized
                    .kinds
                    .forget_interfaces(|i| i == sw_if_index, &mut realized.orphans);
                if referred {
                    self.in_step = false;
                }
            }
            InterfaceEvent::Rescan => self.refresh_interfaces().await?,
        }
        Ok(())
    }

    /// Marks the connection broken on a connection error, so the caller reconnects.
    fn note<T>(&mut self, r: Result<T, DataplaneError>) -> Result<T, DataplaneError> {
        if let Err(e) = &r {
            warn!(error = %e, "VPP connection failed");
            self.connected = false;
        }
        r
    }

    pub fn summary(&self) -> ReconcileSummary {
        ReconcileSummary {
            connected: self.connected,
            passes: self.passes,
            failed: self
                .failures()
                .iter()
                .map(|(o, f)| (o.to_string(), f.error.clone(), f.attempts))
                .collect(),
            waiting: self.waiting.len() + self.books.waiting_len(),
            pending_interfaces: self.pending.len(),
            inputs: 0,
            pods: self.pod_states(),
            connections: self.connections,
        }
    }

    fn pod_states(&self) -> BTreeMap<String, PodState> {
        let kinds = &self.realized.kinds;
        let book = &self.books.pods;
        let mut out: BTreeMap<String, PodState> = kinds
            .pods
            .iter()
            .map(|(k, r)| {
                let up = self
                    .realized
                    .interfaces
                    .get(k)
                    .is_some_and(|i| i.sw_if_index == r.sw_if_index && i.cnat);
                let state = PodState {
                    sw_if_index: Some(r.sw_if_index),
                    ready: r.ready(),
                    up,
                    failure: None,
                };
                (k.0.clone(), state)
            })
            .collect();
        for (k, f) in &book.failures {
            out.entry(k.0.clone())
                .or_insert(PodState {
                    sw_if_index: None,
                    ready: false,
                    up: false,
                    failure: None,
                })
                .failure = Some((f.error.clone(), f.permanent));
        }
        out
    }

    /// From now on a successful pass leaves writing the state file to
    /// [`save_deferred`](Self::save_deferred), so that its status events can go out first:
    /// status reflects VPP, which is programmed by then, and Felix should not wait for the
    /// file (a million IP set members take a while to write). A crash in between is no worse
    /// than one during the pass: the file is behind VPP either way.
    pub fn defer_saves(&mut self) {
        self.defer_saves = true;
    }

    /// Records what VPP acknowledged: now, or at [`Reconciler::save_deferred`] when saves
    /// are deferred.
    fn save_or_defer(&mut self) {
        if self.defer_saves {
            self.save_due = true;
        } else {
            self.save_state();
        }
    }

    /// Writes the state file if a pass left it to this.
    pub fn save_deferred(&mut self) {
        if std::mem::take(&mut self.save_due) {
            self.save_state();
        }
    }

    /// Status changes since the last call, in order.
    pub fn take_status_events(&mut self) -> Vec<EndpointStatusEvent> {
        std::mem::take(&mut self.events)
    }

    /// When the reconciler next has work without outside input: a retry falls due, or a
    /// pending endpoint's interface should be looked for again. Failures already due are
    /// waiting for a dependency, whose own retry wakes them.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let now = Instant::now();
        let kinds = self.books.failures();
        let retry = self
            .failures
            .values()
            .chain(kinds.iter().map(|k| &k.failure))
            .filter(|f| !f.permanent)
            .map(|f| f.retry_at)
            .filter(|t| *t > now)
            .min();
        // Counted from the last dump, not from now: interface events of other interfaces
        // must not postpone it forever (a tag set after creation raises no event).
        let rescan = self.has_pending_interfaces().then(|| {
            self.last_refresh
                .map_or(now, |t| (t + self.config.rescan_interval).max(now))
        });
        match (retry, rescan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Some desired endpoint's interface is not in VPP (yet).
    pub fn has_pending_interfaces(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Forgets failures of objects that are neither desired nor ours any more.
    fn retain_relevant_failures(&mut self, desired: &DesiredState) {
        let r = &self.realized;
        self.failures.retain(|obj, _| match obj {
            ObjectRef::IpSet(k) => desired.ipsets.contains_key(k) || r.ipsets.contains_key(k),
            ObjectRef::Interface(k) => {
                desired.interfaces.contains_key(k) || r.interfaces.contains_key(k)
            }
            ObjectRef::Other(_) => false,
            ObjectRef::OrphanIpSet(id) => r.orphans.ipsets.contains(id),
            ObjectRef::OrphanInterface(i) => r.orphans.interfaces.contains_key(i),
        });
        self.books.retain_relevant(desired, &self.realized.kinds);
    }

    /// Brings the state file up to date with `realized`: what changed is appended to the
    /// journal; a new VPP run, an outgrown journal or a failed write get a whole snapshot.
    fn save_state(&mut self) {
        let (Some(store), Some(vpp)) = (self.store.as_mut(), &self.realized_for) else {
            self.realized.forget_changes(&mut self.orphans_written);
            self.snapshot_needed = false;
            return;
        };
        if self.snapshot_needed {
            self.realized.forget_changes(&mut self.orphans_written);
        } else {
            let record = self.realized.take_changes(&mut self.orphans_written);
            if record.is_empty() {
                return;
            }
            match store.append(&record) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "appending to the state journal failed; writing a snapshot")
                }
            }
        }
        match store.save(vpp, &self.realized) {
            Ok(()) => self.snapshot_needed = false,
            // The next pass tries again. Until then a driver restart would leak.
            Err(e) => {
                warn!(error = %e, "writing the state file failed");
                self.snapshot_needed = true;
            }
        }
    }

    /// Object, failure and endpoint counts after a pass, for the metrics endpoint.
    fn publish_metrics(&self, desired: &DesiredState, full: bool) {
        use crate::metrics::{global, kind, ErrorLabel, PassLabel, StatusLabel};
        let m = global();
        m.passes
            .get_or_create(&PassLabel {
                full: full.to_string(),
            })
            .inc();
        let r = &self.realized;
        for (k, want, have) in [
            ("ipset", desired.ipsets.len(), r.ipsets.len()),
            ("interface", desired.interfaces.len(), r.interfaces.len()),
        ]
        .into_iter()
        .chain(r.kinds.counts(desired))
        {
            m.objects_desired.get_or_create(&kind(k)).set(want as i64);
            m.objects_realized.get_or_create(&kind(k)).set(have as i64);
        }
        let failures = self.failures();
        let permanent = failures.values().filter(|f| f.permanent).count();
        for (error, n) in [
            ("permanent", permanent),
            ("retryable", failures.len() - permanent),
        ] {
            m.objects_failed
                .get_or_create(&ErrorLabel {
                    error: error.into(),
                })
                .set(n as i64);
        }
        m.objects_waiting
            .set((self.waiting.len() + self.books.waiting_len()) as i64);
        m.endpoints_pending.set(self.pending.len() as i64);
        let mut by_status = [0i64; 3];
        for o in self.outcomes.values() {
            by_status[match o.status {
                EndpointOperStatus::Up => 0,
                EndpointOperStatus::Down => 1,
                EndpointOperStatus::Error => 2,
            }] += 1;
        }
        for (status, n) in ["up", "down", "error"].into_iter().zip(by_status) {
            m.endpoints
                .get_or_create(&StatusLabel {
                    status: status.into(),
                })
                .set(n);
        }
        m.ipset_members.set(
            desired
                .ipsets
                .values()
                .map(|s| s.members.len() as i64)
                .sum(),
        );
    }

    /// Status events for the endpoints whose outcome changed: among `keys`, or all.
    fn emit_status_changes(&mut self, keys: Option<&BTreeSet<InterfaceKey>>) {
        let keys: Vec<InterfaceKey> = match keys {
            Some(keys) => keys.iter().cloned().collect(),
            None => self
                .outcomes
                .keys()
                .chain(self.reported.keys())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        for key in keys {
            match (self.outcomes.get(&key), self.reported.get(&key)) {
                (Some(out), reported) if reported != Some(out) => {
                    self.events.push(EndpointStatusEvent::Update {
                        endpoint: out.endpoint.clone(),
                        interface: key.clone(),
                        status: out.status,
                        reason: out.reason.clone(),
                    });
                    self.reported.insert(key, out.clone());
                }
                (None, Some(_)) => {
                    if let Some(out) = self.reported.remove(&key) {
                        self.events.push(EndpointStatusEvent::Remove {
                            endpoint: out.endpoint,
                            interface: key,
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// A pass over every desired object towards `desired`: creates and updates in dependency
    /// order, then deletes in reverse, each stage one pipelined batch. Objects whose retry is
    /// not yet due are left alone. Returns an error only when the connection broke (reconnect,
    /// then call again).
    /// A whole new desired state: objects that failed permanently are tried once more.
    pub async fn apply(&mut self, desired: &DesiredState) -> Result<PassReport, DataplaneError> {
        self.failures.retain(|_, f| !f.permanent);
        self.books.forget_permanent(None);
        self.run_pass(desired, None).await
    }

    /// A pass towards `desired`, which differs from the previous pass's state only in
    /// `changed`: only those objects, and those still failed, waiting or pending, are looked
    /// at. Falls back to a full pass when the reconciler is not in step with VPP (after a
    /// (re)connection, a changed interface table or a broken pass) or a full pass is due.
    pub async fn apply_changes(
        &mut self,
        desired: &DesiredState,
        changed: &Changed,
    ) -> Result<PassReport, DataplaneError> {
        // A changed object is worth another try, even after a permanent failure.
        self.failures
            .retain(|obj, f| !f.permanent || !changed.names(obj));
        self.books.forget_permanent(Some(&changed.kinds));
        let full_due = self
            .last_full_pass
            .is_none_or(|t| t.elapsed() >= self.config.full_pass_interval);
        if !self.in_step || full_due {
            let drift_check = self.in_step && self.all_clear();
            let report = self.run_pass(desired, None).await?;
            if drift_check && report.writes > 0 {
                warn!(
                    writes = report.writes,
                    "a periodic full pass found VPP out of step with what changed passes did"
                );
            }
            return Ok(report);
        }
        let work = self.work_for(changed);
        self.run_pass(desired, Some(work)).await
    }

    /// Before the first desired state (Felix not yet in sync): creates and fills the IP sets
    /// among `sets` that VPP does not hold under their key yet, and brings those it made so
    /// earlier in this process to their new members. A set no rule refers to changes no
    /// verdict, so this is safe while policy is still unknown, and it takes the bulk of a
    /// node's start (a million members) off the path from `InSync` to enforcing. Nothing
    /// else is touched: no other set VPP holds is changed (rules of an earlier run may use
    /// it), nothing is deleted (a set made here that the first desired state lacks, or a
    /// set a rebuild replaced, goes in that state's pass), and a set VPP refused is left to
    /// the first pass to try again, without backoff.
    pub async fn stage_ipsets(
        &mut self,
        sets: &BTreeMap<IpSetKey, Arc<npol::IpSet>>,
    ) -> Result<PassReport, DataplaneError> {
        if !self.connected {
            return Err(DataplaneError::NotConnected);
        }
        let started = Instant::now();
        let staged = DesiredState {
            ipsets: sets
                .iter()
                .filter(|(k, _)| {
                    !self.realized.ipsets.contains_key(*k) || self.staged_here.contains(*k)
                })
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect(),
            ..DesiredState::default()
        };
        let mut report = PassReport::default();
        if staged.ipsets.is_empty() {
            return Ok(report);
        }
        let work = Changed {
            ipsets: staged.ipsets.keys().cloned().collect(),
            ..Changed::default()
        };
        let result = self
            .sync_ipsets(&staged, Some(&work), Instant::now(), &mut report)
            .await;
        self.failures
            .retain(|obj, _| !matches!(obj, ObjectRef::IpSet(k) if work.ipsets.contains(k)));
        self.staged_here.extend(
            work.ipsets
                .into_iter()
                .filter(|k| self.realized.ipsets.contains_key(k)),
        );
        self.save_or_defer();
        result?;
        debug!(
            sets = staged.ipsets.len(),
            writes = report.writes,
            failed_ops = report.failed_ops,
            vpp_us = report.vpp_wait.as_micros() as u64,
            elapsed_us = started.elapsed().as_micros() as u64,
            "IP sets staged ahead of InSync"
        );
        Ok(report)
    }

    /// What a hinted pass must look at besides `changed`.
    fn work_for(&self, changed: &Changed) -> Changed {
        let mut w = changed.clone();
        for obj in self.failures.keys().chain(self.waiting.keys()) {
            match obj {
                ObjectRef::IpSet(k) => {
                    w.ipsets.insert(k.clone());
                }
                ObjectRef::Interface(k) => {
                    w.interfaces.insert(k.clone());
                }
                ObjectRef::Other(_) => {}
                // Orphans are looked at by every pass's prune.
                ObjectRef::OrphanIpSet(_) | ObjectRef::OrphanInterface(_) => {}
            }
        }
        self.books.add_to(&mut w.kinds);
        w.interfaces.extend(self.pending.iter().cloned());
        if !self.link_changed.is_empty() {
            w.interfaces.extend(
                self.realized
                    .interfaces
                    .iter()
                    .filter(|(_, r)| self.link_changed.contains(&r.sw_if_index))
                    .map(|(k, _)| k.clone()),
            );
        }
        w
    }

    async fn run_pass(
        &mut self,
        desired: &DesiredState,
        mut work: Option<Changed>,
    ) -> Result<PassReport, DataplaneError> {
        if !self.connected {
            return Err(DataplaneError::NotConnected);
        }
        let started = Instant::now();
        let full = work.is_none();
        let mut report = PassReport::default();
        // Rules may refer to any set from now on.
        self.staged_here.clear();
        self.waiting.clear();
        self.books.clear_waiting();
        let result = self.pass(desired, &mut work, &mut report).await;
        self.passes += 1;
        if let Err(e) = result {
            // Whatever VPP acknowledged before a break is recorded: keep the file in step.
            self.save_state();
            self.in_step = false;
            return Err(e);
        }
        if full {
            self.in_step = true;
            self.last_full_pass = Some(started);
        }
        self.link_changed.clear();
        self.retain_relevant_failures(desired);
        self.emit_status_changes(work.as_ref().map(|w| &w.interfaces));
        self.save_or_defer();
        self.publish_metrics(desired, full);
        report.failed_objects = self.failures.len() + self.books.failures().len();
        report.waiting_objects = self.waiting.len() + self.books.waiting_len();
        report.pending_interfaces = self.pending.len();
        if report.writes == 0 && report.failed_objects == 0 {
            return Ok(report);
        }
        info!(
            pass = self.passes,
            full,
            writes = report.writes,
            failed_ops = report.failed_ops,
            failed_objects = report.failed_objects,
            waiting = report.waiting_objects,
            pending_interfaces = report.pending_interfaces,
            batches = report.batches,
            vpp_us = report.vpp_wait.as_micros() as u64,
            elapsed_us = started.elapsed().as_micros() as u64,
            "reconcile pass"
        );
        Ok(report)
    }
}

/// The keys of desired objects that may differ from the previous desired state: the hint a
/// changed pass works from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    pub ipsets: BTreeSet<IpSetKey>,
    pub interfaces: BTreeSet<InterfaceKey>,
    /// The keys of the generic kinds.
    pub kinds: kinds::KindKeys,
    /// The net member changes of ipsets that changed only by member deltas since the last
    /// pass (added, removed): a pass applies them as they are, without comparing the whole
    /// set, when the set is in VPP as it was desired before. Sets replaced or removed in
    /// the meantime are in `ipsets` only.
    pub members: BTreeMap<IpSetKey, (BTreeSet<npol::IpSetMember>, BTreeSet<npol::IpSetMember>)>,
    /// Ipsets replaced or removed since the last pass: their member deltas are void.
    replaced: BTreeSet<IpSetKey>,
}

impl Changed {
    /// Does this change name `obj`? (Orphans are never named.)
    pub fn names(&self, obj: &ObjectRef) -> bool {
        match obj {
            ObjectRef::IpSet(k) => self.ipsets.contains(k),
            ObjectRef::Interface(k) => self.interfaces.contains(k),
            ObjectRef::Other(_) | ObjectRef::OrphanIpSet(_) | ObjectRef::OrphanInterface(_) => {
                false
            }
        }
    }

    /// Everything `diff` touches, removals included.
    pub fn from_diff(diff: &DesiredDiff) -> Self {
        let mut c = Changed::default();
        c.add_diff(diff);
        c
    }

    pub fn add_diff(&mut self, diff: &DesiredDiff) {
        let DesiredDiff {
            ipsets_upserted,
            ipset_members,
            ipsets_removed,
            interfaces_upserted,
            interfaces_removed,
            kinds: _,
            services_synced: _,
        } = diff;
        self.kinds.add_diff(diff);
        self.ipsets.extend(ipsets_upserted.keys().cloned());
        self.ipsets.extend(ipset_members.keys().cloned());
        self.ipsets.extend(ipsets_removed.iter().cloned());
        for k in ipsets_upserted.keys().chain(ipsets_removed) {
            self.members.remove(k);
            self.replaced.insert(k.clone());
        }
        for (k, delta) in ipset_members {
            if self.replaced.contains(k) {
                continue;
            }
            // Compose with what came before: deltas are exact, so a member added then
            // removed (or the reverse) cancels out.
            let (added, removed) = self.members.entry(k.clone()).or_default();
            for m in &delta.removed {
                if !added.remove(m) {
                    removed.insert(*m);
                }
            }
            for m in &delta.added {
                if !removed.remove(m) {
                    added.insert(*m);
                }
            }
        }
        self.interfaces.extend(interfaces_upserted.keys().cloned());
        self.interfaces.extend(interfaces_removed.iter().cloned());
    }
}
