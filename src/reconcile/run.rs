//! The reconciler as a task: takes the latest desired state, reconnects with backoff, retries
//! on schedule, follows interface events, and streams endpoint status.
//!
//! Desired states are coalesced (only the newest matters) and passes are spaced by
//! `min_apply_interval`, so churn costs fewer, larger passes. Time is `tokio::time`.

use std::sync::Arc;

use calico_compile::DesiredState;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};

use super::{EndpointStatusEvent, ReconcileSummary, Reconciler};
use crate::dataplane::Dataplane;

/// The agent's side of a running reconciler. Dropping it stops the task.
pub struct ReconcilerHandle {
    desired: watch::Sender<Option<Arc<DesiredState>>>,
    summary: watch::Receiver<ReconcileSummary>,
}

impl ReconcilerHandle {
    /// Hands over a new desired state. The first one is Felix's InSync: nothing is programmed
    /// (or pruned) before it.
    pub fn apply(&self, desired: Arc<DesiredState>) {
        // Only fails when the task has ended, which the JoinHandle reports.
        let _ = self.desired.send(Some(desired));
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
    let (desired_tx, desired_rx) = watch::channel(None);
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let (summary_tx, summary_rx) = watch::channel(reconciler.summary());
    let task = tokio::spawn(run(reconciler, desired_rx, status_tx, summary_tx));
    (
        ReconcilerHandle {
            desired: desired_tx,
            summary: summary_rx,
        },
        status_rx,
        task,
    )
}

async fn run<D: Dataplane>(
    mut r: Reconciler<D>,
    mut desired_rx: watch::Receiver<Option<Arc<DesiredState>>>,
    status_tx: mpsc::UnboundedSender<EndpointStatusEvent>,
    summary_tx: watch::Sender<ReconcileSummary>,
) {
    let mut desired: Option<Arc<DesiredState>> = None;
    let mut connect_failures = 0u32;
    let mut next_connect = Instant::now();
    let mut last_pass: Option<Instant> = None;
    let mut rescan = false;
    loop {
        if rescan && r.is_connected() {
            rescan = false;
            if let Err(e) = r.refresh_interfaces().await {
                warn!(error = %e, "dumping VPP interfaces failed; reconnecting");
            }
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
        // Every wake-up (new desired state, interface event, retry or rescan timer, reconnect)
        // is worth a pass; a pass with nothing to do sends nothing.
        if r.is_connected() {
            if let Some(d) = desired.clone() {
                let earliest = last_pass.map(|t| t + r.config.min_apply_interval);
                if let Some(t) = earliest.filter(|t| *t > Instant::now()) {
                    sleep_until(t).await;
                    // Take whatever arrived meanwhile: one pass for the whole burst.
                    let latest = desired_rx.borrow_and_update().clone();
                    desired = latest.or(desired);
                }
                let d = desired.clone().unwrap_or(d);
                match r.apply(&d).await {
                    Ok(report) => debug!(?report, "reconcile pass done"),
                    Err(e) => warn!(error = %e, "reconcile pass interrupted; reconnecting"),
                }
                last_pass = Some(Instant::now());
                for ev in r.take_status_events() {
                    if status_tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        }
        summary_tx.send_if_modified(|s| {
            let now = r.summary();
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
            changed = desired_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                desired = desired_rx.borrow_and_update().clone();
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
