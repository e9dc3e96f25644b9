//! Pacing of the watchers' retries: short enough that a relist follows an API server outage
//! within seconds, jittered so that a fleet of nodes does not hammer a recovering server in
//! step. Replaces kube-runtime's default backoff (up to 30 s).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{stream, Stream, StreamExt};
use kube::runtime::watcher;
use tokio::sync::Notify;

/// The longest pause between two attempts to reach the API server: a relist after an outage
/// starts within this long of the server coming back (kube's default waits up to 30 s).
pub const RELIST_BACKOFF_CAP: Duration = Duration::from_secs(2);
const BACKOFF_FIRST: Duration = Duration::from_millis(200);

/// Runs a watcher, pausing after each error before polling it again (the watcher retries on
/// the next poll). A 410 Gone is the normal end of an expired watch: the relist follows after
/// the shortest pause instead of the grown one. The first answer after failures wakes the
/// other watcher from its pause through `reachable`.
pub(crate) fn paced<K: Send + 'static>(
    events: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    reachable: Arc<Notify>,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static {
    let state = Paced {
        events: events.boxed(),
        backoff: CappedBackoff::default(),
        pause: None,
        failing: false,
        reachable,
    };
    stream::unfold(state, |mut state| async move {
        if let Some(pause) = state.pause.take() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = state.reachable.notified() => {}
            }
        }
        let item = state.events.next().await?;
        // Anything but a failure (a 410 included) is an answer from the API server.
        if !matches!(&item, Err(err) if !is_gone(err)) && std::mem::take(&mut state.failing) {
            state.reachable.notify_waiters();
        }
        match &item {
            Ok(_) => state.backoff.reset(),
            Err(err) if is_gone(err) => {
                state.backoff.reset();
                state.pause = Some(state.backoff.next_delay());
            }
            Err(_) => {
                state.failing = true;
                state.pause = Some(state.backoff.next_delay());
            }
        }
        Some((item, state))
    })
}

struct Paced<K> {
    events: BoxStream<'static, watcher::Result<watcher::Event<K>>>,
    backoff: CappedBackoff,
    pause: Option<Duration>,
    failing: bool,
    reachable: Arc<Notify>,
}

pub(crate) fn is_gone(err: &watcher::Error) -> bool {
    matches!(err, watcher::Error::WatchError(status) if status.code == 410)
}

/// Exponential from [`BACKOFF_FIRST`], doubling up to [`RELIST_BACKOFF_CAP`], each delay
/// jittered down by up to half so that a fleet of nodes does not retry in step.
#[derive(Debug)]
struct CappedBackoff {
    next: Duration,
}

impl Default for CappedBackoff {
    fn default() -> Self {
        CappedBackoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl CappedBackoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(RELIST_BACKOFF_CAP);
        delay.mul_f64(1.0 - jitter() / 2.0)
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// A number in [0, 1): std's per-instance random hash keys are enough for spreading retries.
fn jitter() -> f64 {
    let random = RandomState::new().build_hasher().finish();
    (random >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = CappedBackoff::default();
        for full in [200, 400, 800, 1600, 2000, 2000].map(Duration::from_millis) {
            let delay = b.next_delay();
            assert!(delay > full / 2 && delay <= full, "{delay:?} for {full:?}");
        }
        b.reset();
        assert!(b.next_delay() <= BACKOFF_FIRST);
    }

    #[test]
    fn jitter_is_a_fraction_that_varies() {
        let draws: Vec<f64> = (0..32).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
