//! Hands desired states to the reconciler off the model task. The hook sends compiler diffs
//! (or a whole state on resync); this task keeps its own copy up to date and gives the
//! reconciler a fresh `Arc` once per burst, so the (whole-state) copy is paid once per burst
//! and never on the model task. It never changes what the compiler decided.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use calico_compile::{DesiredDiff, DesiredState};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error};

use crate::reconcile::{ReconcileSummary, ReconcilerHandle};

/// What the hook sends to the publisher.
#[derive(Debug)]
pub enum Publish {
    /// The complete desired state (first batch of a Felix session).
    Replace(Box<DesiredState>),
    /// What changed since the previous message.
    Diff(Box<DesiredDiff>),
}

/// Where the publisher stands, for convergence checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Messages folded into the state handed to the reconciler so far.
    pub messages: u64,
    /// The reconciler's pass count just before the latest hand-over: a pass numbered above
    /// it started after the hand-over or picked it up.
    pub passes_before: u64,
}

/// The hook's end: counts what it sends so that a waiter can tell when all of it is published.
#[derive(Debug, Clone)]
pub struct PublishSender {
    tx: mpsc::UnboundedSender<Publish>,
    sent: Arc<AtomicU64>,
}

impl PublishSender {
    pub fn send(&self, msg: Publish) {
        self.sent.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(msg).is_err() {
            error!("the desired-state publisher has stopped; VPP is no longer updated");
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Starts the publisher task for `handle`.
pub fn start(
    handle: ReconcilerHandle,
) -> (PublishSender, watch::Receiver<Published>, Arc<AtomicU64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sent = Arc::new(AtomicU64::new(0));
    let (published_tx, published_rx) = watch::channel(Published::default());
    tokio::spawn(run(rx, handle, published_tx));
    (
        PublishSender {
            tx,
            sent: sent.clone(),
        },
        published_rx,
        sent,
    )
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Publish>,
    handle: ReconcilerHandle,
    published: watch::Sender<Published>,
) {
    let summary = handle.summary();
    let mut state = DesiredState::default();
    let mut messages = 0u64;
    while let Some(msg) = rx.recv().await {
        fold(&mut state, msg);
        messages += 1;
        // Everything already queued joins this hand-over: one copy per burst.
        while let Ok(msg) = rx.try_recv() {
            fold(&mut state, msg);
            messages += 1;
        }
        let passes_before = passes(&summary.borrow());
        debug!(
            messages,
            ipsets = state.ipsets.len(),
            rules = state.rules.len(),
            policies = state.policies.len(),
            interfaces = state.interfaces.len(),
            "desired state handed to the reconciler"
        );
        handle.apply(Arc::new(state.clone()));
        published.send_replace(Published {
            messages,
            passes_before,
        });
    }
}

fn passes(s: &ReconcileSummary) -> u64 {
    s.passes
}

fn fold(state: &mut DesiredState, msg: Publish) {
    match msg {
        Publish::Replace(s) => *state = *s,
        Publish::Diff(d) => apply_diff(state, *d),
    }
}

/// Applies `diff` (computed from a state equal to `state`) to `state`.
pub fn apply_diff(state: &mut DesiredState, diff: DesiredDiff) {
    let DesiredDiff {
        ipsets_upserted,
        ipset_members,
        ipsets_removed,
        rules_upserted,
        rules_removed,
        policies_upserted,
        policies_removed,
        interfaces_upserted,
        interfaces_removed,
        acls_upserted,
        acls_removed,
    } = diff;
    for k in ipsets_removed {
        state.ipsets.remove(&k);
    }
    state.ipsets.extend(ipsets_upserted);
    for (k, delta) in ipset_members {
        match state.ipsets.get_mut(&k) {
            Some(set) => {
                for m in &delta.removed {
                    set.members.remove(m);
                }
                set.members.extend(delta.added);
            }
            // A member delta always names a set the previous state had; if not, the copy has
            // drifted from the compiler, which only a resync repairs.
            None => error!(ipset = %k, "member change for an ipset the published state lacks"),
        }
    }
    for k in rules_removed {
        state.rules.remove(&k);
    }
    state.rules.extend(rules_upserted);
    for k in policies_removed {
        state.policies.remove(&k);
    }
    state.policies.extend(policies_upserted);
    for k in interfaces_removed {
        state.interfaces.remove(&k);
    }
    state.interfaces.extend(interfaces_upserted);
    for k in acls_removed {
        state.acls.remove(&k);
    }
    state.acls.extend(acls_upserted);
}
