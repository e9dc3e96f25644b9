//! The process-wide connection slot: libvppapiclient has one connection per process, so a
//! second connect while one is live is refused, and one being torn down is waited for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ShmConfig, ShmError};

/// The process-wide connection slot. `Closing` once VPP is gone or the user dropped the
/// reader half, until the I/O threads have run `vac_disconnect`. Each connection has its own
/// generation, so a late drop of an old connection's half never touches a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Idle,
    Connecting(u64),
    Live(u64),
    Closing(u64),
}

static SLOT: Mutex<Slot> = Mutex::new(Slot::Idle);
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub(super) fn slot() -> std::sync::MutexGuard<'static, Slot> {
    SLOT.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Connecting(gen)` or `Live(gen)` becomes `Closing(gen)`; anything else is left alone.
pub(super) fn mark_closing(gen: u64) {
    let mut s = slot();
    if matches!(*s, Slot::Connecting(g) | Slot::Live(g) if g == gen) {
        *s = Slot::Closing(gen);
    }
}

/// Takes the process-wide slot, waiting a little for a connection that is being torn down.
/// How long a connect waits for a live connection to start closing before refusing.
const LIVE_GRACE: Duration = Duration::from_millis(300);

pub(super) async fn claim_slot(config: &ShmConfig) -> Result<u64, ShmError> {
    let started = Instant::now();
    let deadline = started + config.teardown_wait;
    loop {
        {
            let mut s = slot();
            match *s {
                Slot::Idle => {
                    let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
                    *s = Slot::Connecting(generation);
                    return Ok(generation);
                }
                // A client dropped just now lets go of its transport a moment later, when
                // its tasks next run: give that a short grace before refusing.
                Slot::Live(_) | Slot::Connecting(_) if started.elapsed() >= LIVE_GRACE => {
                    return Err(ShmError::AlreadyConnected { detail: "" })
                }
                Slot::Live(_) | Slot::Connecting(_) => {}
                Slot::Closing(_) if Instant::now() >= deadline => {
                    return Err(ShmError::AlreadyConnected {
                        detail: " (the previous connection is still shutting down)",
                    })
                }
                Slot::Closing(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no shared-memory connection exists (the last one's `vac_disconnect` is done);
/// false if that takes longer than `timeout`.
pub async fn wait_released(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if *slot() == Slot::Idle {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
