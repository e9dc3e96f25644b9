//! The dataplane hook that programs VPP: on each batch after `InSync` it updates the compiler
//! (a full compile on resync), logs what the compile report says, and hands the desired state
//! to the reconciler. Before `InSync` it compiles the snapshot as it arrives (incrementally,
//! which equals a full compile), so that `InSync` finds only the last batch to compile, and
//! on the driver's first session has the reconciler create the snapshot's IP sets already
//! (they change no verdict before a rule refers to them). It maps the reconciler's endpoint
//! status back to Felix's ids. It runs on the model task and must never wait there: copies,
//! status and logging run on tasks of their own.

pub mod endpoints;
pub mod sim;
mod start;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use calico_compile::{Compiler, Note, Subject};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::agent::{Batch, DataplaneHook};
use crate::dataplane::Dataplane;
use crate::reconcile::{
    self, EndpointStatusEvent, Input, ReconcileSummary, Reconciler, ReconcilerHandle,
};
use crate::status::StatusSender;
use endpoints::EndpointDirectory;
pub use start::{
    dataplane_hook, default_sim_socket, start_dataplane, start_simulator, vpp_config, StartError,
};

/// Compiles batches and feeds the reconciler (see the module docs).
pub struct VppHook {
    compiler: Option<Compiler>,
    /// The current session's snapshot, compiled ahead of `InSync` (not yet handed over).
    ahead: Option<Compiler>,
    reconciler: ReconcilerHandle,
    endpoints: Arc<Mutex<EndpointDirectory>>,
    status: StatusSender,
    /// The compile report as last logged, to log only what changed.
    logged_notes: BTreeMap<Subject, Vec<Note>>,
}

/// Watches a running hook from outside (the demo, tests): the reconciler's health and
/// whether everything the hook produced has reached VPP.
#[derive(Debug, Clone)]
pub struct HookMonitor {
    pub summary: watch::Receiver<ReconcileSummary>,
    /// Inputs the hook has sent the reconciler.
    sent: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error("the dataplane did not converge within {waited:?}: {summary:?}")]
    Timeout {
        waited: Duration,
        summary: ReconcileSummary,
    },
    #[error("the reconciler stopped")]
    Stopped,
}

impl HookMonitor {
    /// Waits until everything the hook sent so far is programmed: a finished pass worked
    /// from every input sent, left nothing failed, waiting or pending, and no further pass
    /// came within `quiet`.
    pub async fn converged(
        &mut self,
        quiet: Duration,
        limit: Duration,
    ) -> Result<ReconcileSummary, ConvergeError> {
        let work = async {
            loop {
                let sent = self.sent.load(Ordering::SeqCst);
                let clean = self
                    .summary
                    .wait_for(|s| s.inputs >= sent && is_clean(s))
                    .await
                    .map_err(|_| ConvergeError::Stopped)?
                    .clone();
                match tokio::time::timeout(quiet, self.summary.changed()).await {
                    Err(_) if self.sent.load(Ordering::SeqCst) == sent => return Ok(clean),
                    Err(_) => continue,
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return Err(ConvergeError::Stopped),
                }
            }
        };
        match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(ConvergeError::Timeout {
                waited: limit,
                summary: self.summary.borrow().clone(),
            }),
        }
    }
}

/// Connected, and nothing failed, waiting for a dependency, or waiting for its interface.
pub fn is_clean(s: &ReconcileSummary) -> bool {
    s.connected && s.failed.is_empty() && s.waiting == 0 && s.pending_interfaces == 0
}

impl VppHook {
    /// Starts a reconciler over `dp` and the tasks around it. Needs a tokio runtime.
    pub fn start<D: Dataplane + 'static>(
        reconciler: Reconciler<D>,
        status: StatusSender,
    ) -> (VppHook, HookMonitor) {
        let (handle, events, task) = reconcile::spawn(reconciler);
        Self::with_reconciler(handle, events, task, status)
    }

    /// Wraps a reconciler task already running (e.g. from [`reconcile::start_vpp`]).
    pub fn with_reconciler(
        handle: ReconcilerHandle,
        events: mpsc::UnboundedReceiver<EndpointStatusEvent>,
        task: JoinHandle<()>,
        status: StatusSender,
    ) -> (VppHook, HookMonitor) {
        let summary = handle.summary();
        tokio::spawn(log_summaries(summary.clone()));
        tokio::spawn(async move {
            if let Err(e) = task.await {
                if e.is_panic() {
                    error!(error = %e, "the reconciler task panicked; VPP is no longer programmed");
                }
            }
        });
        let endpoints = Arc::new(Mutex::new(EndpointDirectory::default()));
        tokio::spawn(relay_status(events, endpoints.clone(), status.clone()));
        let sent = handle.sent_counter();
        let hook = VppHook {
            compiler: None,
            ahead: None,
            reconciler: handle,
            endpoints,
            status,
            logged_notes: BTreeMap::new(),
        };
        let monitor = HookMonitor { summary, sent };
        (hook, monitor)
    }

    fn directory(&self) -> MutexGuard<'_, EndpointDirectory> {
        lock(&self.endpoints)
    }

    fn log_report(&mut self) {
        let Some(c) = &self.compiler else { return };
        let now = &c.report().notes;
        if *now == self.logged_notes {
            return;
        }
        for (subject, notes) in now {
            let before = self.logged_notes.get(subject);
            for note in notes {
                if before.is_some_and(|b| b.contains(note)) {
                    continue;
                }
                if is_fail_closed(note) {
                    warn!(subject = ?subject, note = ?note, "compiled fail-closed");
                } else {
                    // Informational notes are logged by the compiler where they arise.
                    debug!(subject = ?subject, note = ?note, "compile note");
                }
            }
        }
        for subject in self.logged_notes.keys() {
            if !now.contains_key(subject) {
                debug!(subject = ?subject, "compile notes cleared");
            }
        }
        self.logged_notes = now.clone();
    }
}

fn lock(m: &Mutex<EndpointDirectory>) -> MutexGuard<'_, EndpointDirectory> {
    // The directory stays consistent between statements; a panic elsewhere cannot break it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Notes that deny traffic Calico would decide otherwise (an operator should act).
fn is_fail_closed(n: &Note) -> bool {
    matches!(
        n,
        Note::Invalid { .. }
            | Note::BadIpSetReference { .. }
            | Note::UnknownPolicy { .. }
            | Note::UnknownProfile { .. }
            | Note::BadMembers { .. }
            | Note::InterfaceConflict { .. }
    )
}

impl DataplaneHook for VppHook {
    fn apply(&mut self, batch: Batch<'_>) {
        // Status mapping first: the reconciler can only report endpoints of a state it has
        // been given, and the directory must know them by then.
        let events = {
            let mut dir = self.directory();
            if batch.resync || self.compiler.is_none() {
                let mut ev = dir.resync(batch.model);
                ev.extend(dir.unenforced_hosts(batch.model, batch.model.host_endpoints.keys()));
                ev
            } else {
                let hosts = &batch.changes.host_endpoints;
                let mut ev = dir.workloads_changed(batch.model, &batch.changes.workload_endpoints);
                ev.extend(dir.hosts_changed(batch.model, hosts));
                ev.extend(dir.unenforced_hosts(batch.model, hosts));
                ev
            }
        };
        for ev in events {
            self.status.send(ev);
        }
        match &mut self.compiler {
            Some(c) if !batch.resync => {
                let diff = c.apply_changes(batch.model, batch.changes);
                if !diff.is_empty() {
                    self.reconciler.send(Input::Diff(Box::new(diff)));
                }
            }
            previous => {
                let started = std::time::Instant::now();
                let ahead = self.ahead.take().filter(|_| batch.prepared);
                let compiled_ahead = ahead.is_some();
                let c = match ahead {
                    Some(mut c) => {
                        // What `prepare` has not seen: the batch that brought InSync.
                        c.apply_changes(batch.model, batch.changes);
                        c
                    }
                    None => Compiler::new(batch.model),
                };
                let d = c.desired();
                info!(
                    elapsed_us = started.elapsed().as_micros() as u64,
                    compiled_ahead,
                    ipsets = d.ipsets.len(),
                    rules = d.rules.len(),
                    policies = d.policies.len(),
                    interfaces = d.interfaces.len(),
                    "full compile (Felix in sync)"
                );
                // A later session usually changes little: send only the difference.
                let msg = match previous.take() {
                    Some(old) => Input::Diff(Box::new(old.desired().diff(d))),
                    None => Input::Replace(Box::new(d.clone())),
                };
                self.reconciler.send(msg);
                self.compiler = Some(c);
            }
        }
        self.log_report();
    }

    fn prepare(&mut self, batch: Batch<'_>) -> bool {
        let (sets, removed) = match &mut self.ahead {
            Some(c) if !batch.resync => {
                let diff = c.apply_changes(batch.model, batch.changes);
                let mut sets = diff.ipsets_upserted;
                let now = &c.desired().ipsets;
                for k in diff.ipset_members.keys() {
                    if let Some(set) = now.get(k) {
                        sets.insert(k.clone(), set.clone());
                    }
                }
                (sets, diff.ipsets_removed)
            }
            ahead => {
                let c = ahead.insert(Compiler::new(batch.model));
                (c.desired().ipsets.clone(), Vec::new())
            }
        };
        // The first session since the driver started: VPP can make the IP sets already (no
        // rule refers to them yet). Later sessions keep to the reconciler's current state.
        if self.compiler.is_none() {
            self.reconciler.stage_ipsets(sets, removed, batch.resync);
        }
        true
    }

    fn felix_disconnected(&mut self) {
        self.ahead = None;
        // What VPP holds stays until the next session's snapshot says otherwise.
        info!("Felix disconnected; VPP keeps its configuration until the next snapshot");
    }

    fn desired(&self) -> Option<&calico_compile::DesiredState> {
        self.compiler.as_ref().map(|c| c.desired())
    }
}

/// Turns the reconciler's endpoint events into Felix status until the reconciler stops.
async fn relay_status(
    mut events: mpsc::UnboundedReceiver<EndpointStatusEvent>,
    endpoints: Arc<Mutex<EndpointDirectory>>,
    status: StatusSender,
) {
    while let Some(ev) = events.recv().await {
        let out = lock(&endpoints).on_status(ev);
        if let Some(out) = out {
            status.send(out);
        }
    }
}

/// Logs the reconciler's health when it changes: failed objects at warn (one line each,
/// with the error and the attempts), recovery and connection changes at info.
async fn log_summaries(mut rx: watch::Receiver<ReconcileSummary>) {
    let mut last = rx.borrow_and_update().clone();
    while rx.changed().await.is_ok() {
        let now = rx.borrow_and_update().clone();
        if now.connected != last.connected {
            if now.connected {
                info!("connected to VPP");
            } else {
                warn!("not connected to VPP; retrying");
            }
        }
        for (object, err, attempts) in &now.failed {
            let same = last.failed.iter().any(|(o, e, _)| o == object && e == err);
            if !same {
                warn!(%object, error = %err, attempts, "VPP refused an object; retrying with backoff");
            }
        }
        if now.failed.is_empty() && !last.failed.is_empty() {
            info!("every failed VPP object is now programmed");
        }
        if (now.waiting, now.pending_interfaces) != (last.waiting, last.pending_interfaces) {
            info!(
                failed = now.failed.len(),
                waiting = now.waiting,
                pending_interfaces = now.pending_interfaces,
                "reconciler state"
            );
        }
        last = now;
    }
}
