//! The two kube-runtime watchers (all namespaces), merged and folded into [`KubeUpdate`]s.
//!
//! While the API server is unreachable nothing is sent: the driver keeps what it has, and the
//! relist that follows the outage ends in a complete `Synced`.

use std::sync::Arc;

use calico_model::kube::KubeUpdate;
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use crate::pace::{is_gone, paced};
use crate::tracker::Tracker;

/// Watches Services and EndpointSlices in all namespaces and sends what changes to `tx`:
/// first `Synced` once both initial lists are in, then single-object updates, and `Synced`
/// again after every relist. Returns when the receiver is dropped; never otherwise.
pub async fn watch(client: Client, tx: mpsc::Sender<KubeUpdate>) {
    // When one watch gets through again, the other retries at once instead of finishing its
    // pause: both relist together after an outage and end in one `Synced`.
    let reachable = Arc::new(Notify::new());
    let services = Api::<Service>::all(client.clone());
    let services = paced(
        watcher(services, watcher::Config::default()),
        reachable.clone(),
    )
    .map(Input::Service)
    .boxed();
    let slices = Api::<EndpointSlice>::all(client);
    let slices = paced(watcher(slices, watcher::Config::default()), reachable)
        .map(Input::Slice)
        .boxed();
    let mut inputs = stream::select(services, slices);
    let mut tracker = Tracker::default();
    let mut service_errors = ErrorStreak::new("services");
    let mut slice_errors = ErrorStreak::new("endpointslices");
    loop {
        let input = tokio::select! {
            _ = tx.closed() => return,
            input = inputs.next() => input,
        };
        let update = match input {
            // The watchers retry forever: they never end.
            None => return,
            Some(Input::Service(Ok(event))) => {
                service_errors.recovered();
                tracker.on_service(event)
            }
            Some(Input::Slice(Ok(event))) => {
                slice_errors.recovered();
                tracker.on_slice(event)
            }
            Some(Input::Service(Err(err))) => {
                service_errors.failed(&err);
                if is_gone(&err) {
                    tracker.services_expired();
                }
                None
            }
            Some(Input::Slice(Err(err))) => {
                slice_errors.failed(&err);
                if is_gone(&err) {
                    tracker.slices_expired();
                }
                None
            }
        };
        if let Some(update) = update {
            if tx.send(update).await.is_err() {
                return;
            }
        }
    }
}

// One item at a time, handled at once: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Input {
    Service(watcher::Result<watcher::Event<Service>>),
    Slice(watcher::Result<watcher::Event<EndpointSlice>>),
}

/// One warning when a resource's watch starts failing, one line when it recovers; the retries
/// in between (every [`crate::RELIST_BACKOFF_CAP`] at most) only at debug.
struct ErrorStreak {
    resource: &'static str,
    failures: u64,
}

impl ErrorStreak {
    fn new(resource: &'static str) -> Self {
        ErrorStreak {
            resource,
            failures: 0,
        }
    }

    fn failed(&mut self, err: &watcher::Error) {
        if is_gone(err) {
            // The normal end of a watch whose history is gone: not a failure.
            info!(
                resource = self.resource,
                "watch history expired (410 Gone): relisting"
            );
            return;
        }
        self.failures += 1;
        if self.failures == 1 {
            warn!(resource = self.resource, error = %err,
                "Kubernetes watch failing: keeping the last state, retrying");
        } else {
            debug!(resource = self.resource, failures = self.failures, error = %err,
                "Kubernetes watch still failing");
        }
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            info!(
                resource = self.resource,
                failures = self.failures,
                "Kubernetes watch recovered"
            );
            self.failures = 0;
        }
    }
}
