//! The reconciler as a task: takes the latest desired state, reconnects with backoff, retries
//! on schedule, follows interface events, and streams endpoint status.
//!
//! The task owns its copy of the desired state: whole states replace it, diffs are folded
//! into it (no copy per change), and the keys a diff names are what the next pass compares.
//! Inputs that arrive during a pass join the next one; `min_apply_interval` can space passes
//! further. Time is `tokio::time`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use calico_compile::{DesiredDiff, DesiredState, IpSetKey};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, error, warn};

use super::{Changed, EndpointStatusEvent, ReconcileSummary, Reconciler};
use crate::dataplane::Dataplane;

/// What the reconciler task is given.
#[derive(Debug)]
pub enum Input {
    /// A whole desired state (the first after Felix's InSync, or a resync): a full pass.
    Replace(Box<DesiredState>),
    /// What changed since the previous input: folded into the task's own copy, and only
    /// the objects it names are compared by the next pass.
    Diff(Box<DesiredDiff>),
    /// Before the first desired state: IP sets of the snapshot so far, created ahead of
    /// InSync ([`Reconciler::stage_ipsets`]). Ignored once a desired state was given.
    StageIpSets {
        /// Sets new or changed since the previous staging input, as they are now.
        sets: BTreeMap<IpSetKey, Arc<npol::IpSet>>,
        /// Sets gone since: not staged if still queued (the first pass deletes any made).
        removed: Vec<IpSetKey>,
        /// The first staging input of a Felix session: what an earlier session queued and
        /// is not made yet is dropped.
        session_start: bool,
    },
}

/// The agent's side of a running reconciler. Dropping every clone stops the task.
#[derive(Debug, Clone)]
pub struct ReconcilerHandle {
    inputs: mpsc::UnboundedSender<Input>,
    sent: Arc<AtomicU64>,
    summary: watch::Receiver<ReconcileSummary>,
}

impl ReconcilerHandle {
    /// Hands over a whole desired state. The first is Felix's InSync: nothing but staged IP
    /// sets is programmed, and nothing pruned, before it.
    pub fn apply(&self, desired: Arc<DesiredState>) {
        let state = Arc::try_unwrap(desired).unwrap_or_else(|shared| (*shared).clone());
        self.send(Input::Replace(Box::new(state)));
    }

    /// Before the first [`apply`](Self::apply): IP sets to create ahead of it (the sets are
    /// shared, not copied). See [`Input::StageIpSets`].
    pub fn stage_ipsets(
        &self,
        sets: BTreeMap<IpSetKey, Arc<npol::IpSet>>,
        removed: Vec<IpSetKey>,
        session_start: bool,
    ) {
        if session_start || !sets.is_empty() || !removed.is_empty() {
            self.send(Input::StageIpSets {
                sets,
                removed,
                session_start,
            });
        }
    }

    /// Hands over what changed since the previous input (which must have been given).
    pub fn apply_diff(&self, diff: DesiredDiff) {
        self.send(Input::Diff(Box::new(diff)));
    }

    pub fn send(&self, input: Input) {
        self.sent.fetch_add(1, Ordering::SeqCst);
        if self.inputs.send(input).is_err() {
            error!("the reconciler has stopped; VPP is no longer updated");
        }
    }

    /// Inputs sent so far; compare with [`ReconcileSummary::inputs`].
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// The counter behind [`sent`](Self::sent), for watchers that must not keep the task
    /// alive.
    pub fn sent_counter(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }

    /// The reconciler's health after its latest pass or connection change.
    pub fn summary(&self) -> watch::Receiver<ReconcileSummary> {
        self.summary.clone()
    }
}

/// The agent's one call: a reconciler over VPP's API socket, loading its state file from
/// `config.state_dir`, connecting (with backoff) in its own task. Nothing is programmed until
/// the first [`ReconcilerHandle::apply`].
pub fn start_vpp(
    config: super::ReconcilerConfig,
    vpp: crate::dataplane::vpp::VppConfig,
) -> (
    ReconcilerHandle,
    mpsc::UnboundedReceiver<EndpointStatusEvent>,
    JoinHandle<()>,
) {
    spawn(Reconciler::new(
        crate::dataplane::vpp::VppDataplane::new(vpp),
        config,
    ))
}

/// Starts the reconciler task. Returns the handle, the endpoint status stream and the task.
pub fn spawn<D: Dataplane + 'static>(
    reconciler: Reconciler<D>,
) -> (
    ReconcilerHandle,
    mpsc::UnboundedReceiver<EndpointStatusEvent>,
    JoinHandle<()>,
) {
    let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let (summary_tx, summary_rx) = watch::channel(reconciler.summary());
    let task = tokio::spawn(run(reconciler, inputs_rx, status_tx, summary_tx));
    (
        ReconcilerHandle {
            inputs: inputs_tx,
            sent: Arc::new(AtomicU64::new(0)),
            summary: summary_rx,
        },
        status_rx,
        task,
    )
}

/// The task's copy of the desired state and what changed in it since the last pass.
#[derive(Default)]
struct Desired {
    state: Option<DesiredState>,
    changed: Changed,
    /// The next pass compares everything (a whole state arrived).
    full: bool,
    /// IP sets to create before the first desired state.
    staged: BTreeMap<IpSetKey, Arc<npol::IpSet>>,
    received: u64,
}

impl Desired {
    fn take(&mut self, input: Input) {
        self.received += 1;
        match input {
            Input::Replace(state) => {
                self.state = Some(*state);
                self.changed = Changed::default();
                self.full = true;
                // The full pass makes them, as they are desired now.
                self.staged.clear();
            }
            Input::StageIpSets {
                sets,
                removed,
                session_start,
            } if self.state.is_none() => {
                if session_start {
                    self.staged.clear();
                }
                for k in &removed {
                    self.staged.remove(k);
                }
                // A newer copy of a queued set replaces it (the old one is freed).
                self.staged.extend(sets);
            }
            // A later Felix session: the current state's passes would prune what is staged.
            Input::StageIpSets { .. } => {}
            Input::Diff(diff) => match &mut self.state {
                Some(state) => {
                    self.changed.add_diff(&diff);
                    apply_diff(state, *diff);
                }
                None => error!("a desired-state change arrived before any desired state; ignored"),
            },
        }
    }
}

async fn run<D: Dataplane>(
    mut r: Reconciler<D>,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    status_tx: mpsc::UnboundedSender<EndpointStatusEvent>,
    summary_tx: watch::Sender<ReconcileSummary>,
) {
    let mut desired = Desired::default();
    let mut taken = 0u64;
    let mut connect_failures = 0u32;
    let mut next_connect = Instant::now();
    let mut last_pass: Option<Instant> = None;
    let mut rescan = false;
    r.defer_saves();
    loop {
        if rescan && r.is_connected() {
            rescan = false;
            if let Err(e) = r.refresh_interfaces().await {
                warn!(error = %e, "dumping VPP interfaces failed; reconnecting");
            }
        }
        if !r.is_connected() {
            crate::metrics::global().set_ready(false);
        }
        if !r.is_connected() && Instant::now() >= next_connect {
            match r.connect().await {
                Ok(()) => connect_failures = 0,
                Err(e) => {
                    connect_failures += 1;
                    let delay = r.config.reconnect.delay(connect_failures);
                    warn!(error = %e, attempts = connect_failures,
                        retry_in_ms = delay.as_millis() as u64, "connecting to VPP failed");
                    next_connect = Instant::now() + delay;
                }
            }
        }
        if r.is_connected() && !desired.staged.is_empty() {
            let sets = std::mem::take(&mut desired.staged);
            if let Err(e) = r.stage_ipsets(&sets).await {
                warn!(error = %e, "staging IP sets ahead of InSync interrupted; reconnecting");
            }
            // Not counted as taken: only a pass makes VPP hold what the hook sent.
            r.save_deferred();
        }
        // Every wake-up (new input, interface event, retry or rescan timer, reconnect) is
        // worth a pass; a pass with nothing to do sends nothing.
        if r.is_connected() && desired.state.is_some() {
            let earliest = last_pass.map(|t| t + r.config.min_apply_interval);
            if let Some(t) = earliest.filter(|t| *t > Instant::now()) {
                sleep_until(t).await;
                // Take whatever arrived meanwhile: one pass for the whole burst.
                while let Ok(input) = inputs.try_recv() {
                    desired.take(input);
                }
            }
            let changed = std::mem::take(&mut desired.changed);
            let full = std::mem::replace(&mut desired.full, false);
            let received = desired.received;
            if let Some(state) = &desired.state {
                let result = if full {
                    r.apply(state).await
                } else {
                    r.apply_changes(state, &changed).await
                };
                match result {
                    Ok(report) => {
                        debug!(?report, "reconcile pass done");
                        taken = received;
                        // Ready once a whole desired state reached VPP.
                        crate::metrics::global().set_ready(true);
                    }
                    // Not in step any more: the pass after reconnecting compares everything.
                    Err(e) => {
                        crate::metrics::global().set_ready(false);
                        warn!(error = %e, "reconcile pass interrupted; reconnecting");
                    }
                }
            }
            last_pass = Some(Instant::now());
            let events = r.take_status_events();
            let any = !events.is_empty();
            for ev in events {
                if status_tx.send(ev).is_err() {
                    r.save_deferred();
                    return;
                }
            }
            if any {
                // Let the status reach Felix before the state file is written.
                tokio::task::yield_now().await;
            }
            r.save_deferred();
        }
        summary_tx.send_if_modified(|s| {
            let mut now = r.summary();
            now.inputs = taken;
            let changed = *s != now;
            *s = now;
            changed
        });
        let wake = if r.is_connected() {
            r.next_wakeup()
        } else {
            Some(next_connect)
        };
        let connected = r.is_connected();
        tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else {
                    return;
                };
                desired.take(input);
                while let Ok(input) = inputs.try_recv() {
                    desired.take(input);
                }
            }
            ev = r.next_interface_event(), if connected => {
                if let Err(e) = ev {
                    warn!(error = %e, "lost VPP interface events; reconnecting");
                }
            }
            _ = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                rescan = r.has_pending_interfaces();
            }
        }
    }
}

/// Applies `diff` (computed from a state equal to `state`) to `state`.
pub fn apply_diff(state: &mut DesiredState, mut diff: DesiredDiff) {
    std::mem::take(&mut diff.kinds).apply_to(state);
    let DesiredDiff {
        ipsets_upserted,
        ipset_members,
        ipsets_removed,
        interfaces_upserted,
        interfaces_removed,
        kinds: _,
        services_synced,
    } = diff;
    for k in ipsets_removed {
        state.ipsets.remove(&k);
    }
    state.ipsets.extend(ipsets_upserted);
    for (k, delta) in ipset_members {
        match state.ipsets.get_mut(&k) {
            Some(set) => {
                // The compiler copied its side before changing it: no copy here.
                let set = std::sync::Arc::make_mut(set);
                for m in &delta.removed {
                    set.members.remove(m);
                }
                set.members.extend(delta.added);
            }
            // A member delta always names a set the previous state had; if not, the copy has
            // drifted from the compiler, which only a resync repairs.
            None => error!(ipset = %k, "member change for an ipset the desired state lacks"),
        }
    }
    for k in interfaces_removed {
        state.interfaces.remove(&k);
    }
    state.interfaces.extend(interfaces_upserted);
    if let Some(synced) = services_synced {
        state.services_synced = synced;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(m: &str) -> Arc<npol::IpSet> {
        let mut s = npol::IpSet::new(npol::IpSetType::Ip);
        s.members
            .insert(npol::IpSetMember::Ip(m.parse().expect("address")));
        Arc::new(s)
    }

    fn stage(sets: &[(&str, &str)], removed: &[&str], session_start: bool) -> Input {
        Input::StageIpSets {
            sets: sets
                .iter()
                .map(|(k, m)| (IpSetKey((*k).into()), set(m)))
                .collect(),
            removed: removed.iter().map(|k| IpSetKey((*k).into())).collect(),
            session_start,
        }
    }

    fn queued(d: &Desired) -> Vec<(&str, usize)> {
        d.staged
            .iter()
            .map(|(k, s)| (k.0.as_str(), s.members.len()))
            .collect()
    }

    /// What waits to be staged follows the snapshot: newer copies replace older ones, removed
    /// sets leave the queue, a new session starts it over, and the first desired state ends
    /// staging.
    #[test]
    fn the_staging_queue_follows_the_snapshot_until_the_first_desired_state() {
        let mut d = Desired::default();
        d.take(stage(&[("a", "10.0.0.1"), ("b", "10.0.0.2")], &[], true));
        d.take(stage(&[("a", "10.0.0.3")], &["b"], false));
        assert_eq!(queued(&d), [("a", 1)]);
        assert!(d.staged[&IpSetKey("a".into())]
            .members
            .contains(&npol::IpSetMember::Ip("10.0.0.3".parse().unwrap())));
        d.take(stage(&[("c", "10.0.0.4")], &[], true));
        assert_eq!(queued(&d), [("c", 1)]);
        d.take(Input::Replace(Box::default()));
        assert!(d.staged.is_empty());
        d.take(stage(&[("d", "10.0.0.5")], &[], true));
        assert!(d.staged.is_empty());
    }
}
