//! Folds the two watchers' events into what the driver is told: one `Synced` once both lists
//! are in (and again after every relist, so removals missed while the watch was broken are
//! caught), single-object updates in between, and nothing that would not change its view.
//!
//! Pure: no I/O, so every ordering of watcher events can be tested directly.

use std::collections::BTreeMap;

use calico_model::kube::{
    KubeEndpointSlice, KubeService, KubeState, KubeUpdate, ServiceKey, SliceKey,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use tracing::{debug, info};

use crate::{convert_service, convert_slice, service_key, slice_key, Ignored};

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    services: Half<ServiceKey, KubeService>,
    slices: Half<SliceKey, KubeEndpointSlice>,
    /// The consumer holds exactly our state, so single-object updates may flow. Cleared when a
    /// relist starts: changes then fold into the next `Synced`.
    synced: bool,
}

/// One resource's objects.
#[derive(Debug)]
struct Half<K, V> {
    current: BTreeMap<K, V>,
    /// Objects of a list in progress (between `Init` and `InitDone`).
    relist: Option<BTreeMap<K, V>>,
    /// A complete list has been seen at least once.
    listed: bool,
}

impl<K, V> Default for Half<K, V> {
    fn default() -> Self {
        Half {
            current: BTreeMap::new(),
            relist: None,
            listed: false,
        }
    }
}

impl<K: Ord + Clone, V: PartialEq> Half<K, V> {
    fn init(&mut self) {
        self.relist = Some(BTreeMap::new());
    }

    fn init_apply(&mut self, key: K, value: V) {
        self.relist
            .get_or_insert_with(BTreeMap::new)
            .insert(key, value);
    }

    fn init_done(&mut self) {
        if let Some(listed) = self.relist.take() {
            self.current = listed;
        }
        self.listed = true;
    }

    fn upsert(&mut self, key: K, value: V) -> Option<(K, Option<V>)>
    where
        V: Clone,
    {
        if self.current.get(&key) == Some(&value) {
            return None;
        }
        self.current.insert(key.clone(), value.clone());
        Some((key, Some(value)))
    }

    fn remove(&mut self, key: K) -> Option<(K, Option<V>)> {
        self.current.remove(&key).map(|_| (key, None))
    }

    fn settled(&self) -> bool {
        self.listed && self.relist.is_none()
    }
}

impl Tracker {
    pub(crate) fn on_service(&mut self, event: Event<Service>) -> Option<KubeUpdate> {
        let change = match event {
            Event::Init => {
                self.services.init();
                self.synced = false;
                None
            }
            Event::InitApply(svc) => {
                let key = usable("Service", service_key(&svc.metadata))?;
                match convert_service(svc) {
                    Ok((key, value)) => self.services.init_apply(key, value),
                    Err(why) => debug!(service = %key, reason = %why, "Service ignored"),
                }
                None
            }
            Event::InitDone => {
                self.services.init_done();
                return self.synced_if_settled();
            }
            Event::Apply(svc) => {
                let key = usable("Service", service_key(&svc.metadata))?;
                match convert_service(svc) {
                    Ok((key, value)) => self.services.upsert(key, value),
                    Err(why) => {
                        debug!(service = %key, reason = %why, "Service ignored");
                        self.services.remove(key)
                    }
                }
            }
            Event::Delete(svc) => {
                let key = usable("Service", service_key(&svc.metadata))?;
                self.services.remove(key)
            }
        };
        change
            .filter(|_| self.synced)
            .map(|(key, value)| KubeUpdate::Service(key, value))
    }

    pub(crate) fn on_slice(&mut self, event: Event<EndpointSlice>) -> Option<KubeUpdate> {
        let change = match event {
            Event::Init => {
                self.slices.init();
                self.synced = false;
                None
            }
            Event::InitApply(slice) => {
                let key = usable("EndpointSlice", slice_key(&slice.metadata))?;
                match convert_slice(slice) {
                    Ok((key, value)) => self.slices.init_apply(key, value),
                    Err(why) => debug!(slice = %key, reason = %why, "EndpointSlice ignored"),
                }
                None
            }
            Event::InitDone => {
                self.slices.init_done();
                return self.synced_if_settled();
            }
            Event::Apply(slice) => {
                let key = usable("EndpointSlice", slice_key(&slice.metadata))?;
                match convert_slice(slice) {
                    Ok((key, value)) => self.slices.upsert(key, value),
                    Err(why) => {
                        // E.g. its Service label was removed: it no longer feeds a Service.
                        debug!(slice = %key, reason = %why, "EndpointSlice ignored");
                        self.slices.remove(key)
                    }
                }
            }
            Event::Delete(slice) => {
                let key = usable("EndpointSlice", slice_key(&slice.metadata))?;
                self.slices.remove(key)
            }
        };
        change
            .filter(|_| self.synced)
            .map(|(key, value)| KubeUpdate::Slice(key, value))
    }

    /// The services watch got 410 Gone: a relist follows. Until it is in, a `Synced` (say from
    /// the slices' own relist) would carry services known to be out of date.
    pub(crate) fn services_expired(&mut self) {
        self.services.init();
        self.synced = false;
    }

    /// As [`Tracker::services_expired`], for EndpointSlices.
    pub(crate) fn slices_expired(&mut self) {
        self.slices.init();
        self.synced = false;
    }

    fn synced_if_settled(&mut self) -> Option<KubeUpdate> {
        if self.synced || !self.services.settled() || !self.slices.settled() {
            return None;
        }
        self.synced = true;
        let state = KubeState {
            services: self.services.current.clone(),
            slices: self.slices.current.clone(),
        };
        info!(
            services = state.services.len(),
            slices = state.slices.len(),
            "Kubernetes Services and EndpointSlices in sync"
        );
        Some(KubeUpdate::Synced(state))
    }
}

/// The key of an object, if it has one (the API server always sets both name and namespace).
fn usable<K>(kind: &'static str, key: Result<K, Ignored>) -> Option<K> {
    key.map_err(|why| debug!(kind, reason = %why, "object ignored"))
        .ok()
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
