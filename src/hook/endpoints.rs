//! Maps the reconciler's endpoint names (the compiler's `DesiredInterface::endpoint`, which is
//! the endpoint id's `Display`) back to Felix's endpoint ids, and turns the reconciler's
//! endpoint status into status for Felix. It only relays what the reconciler saw: it never
//! reports an endpoint up on its own.

use std::collections::HashMap;

use calico_compile::InterfaceKey;
use calico_model::{HostEndpointId, Model, WorkloadEndpointId};
use tracing::{debug, warn};

use crate::reconcile::{EndpointOperStatus, EndpointStatusEvent};
use crate::status::{EndpointStatus, EndpointSummary, StatusEvent};

/// A Felix endpoint id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointRef {
    Workload(WorkloadEndpointId),
    Host(HostEndpointId),
}

#[derive(Debug)]
struct Known {
    id: EndpointRef,
    /// Workloads: what Felix's status files need, kept current with the model.
    summary: Option<EndpointSummary>,
    /// What Felix was last told, and for which interface (an endpoint that moves to another
    /// interface gets an update for the new one before the remove of the old one).
    reported: Option<(EndpointStatus, InterfaceKey)>,
}

/// The endpoints the model holds, by the name the reconciler reports them under.
#[derive(Debug, Default)]
pub struct EndpointDirectory {
    live: HashMap<String, Known>,
    /// Endpoints removed from the model after Felix had a status for them. Felix was told
    /// at once; the reconciler's later events for them (a pass on an older state, then its
    /// remove) are swallowed. Cleared by that remove or when the endpoint comes back.
    gone: HashMap<String, EndpointRef>,
}

impl EndpointDirectory {
    /// Number of endpoints known (for tests and logs).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Follows the model for the workload endpoints in `ids`; returns status for Felix
    /// (a changed summary of a reported endpoint, the removal of a deleted one).
    pub fn workloads_changed<'a>(
        &mut self,
        model: &Model,
        ids: impl IntoIterator<Item = &'a WorkloadEndpointId>,
    ) -> Vec<StatusEvent> {
        let mut out = Vec::new();
        for id in ids {
            let summary = model.workload_endpoints.get(id).map(EndpointSummary::from);
            self.follow(
                EndpointRef::Workload(id.clone()),
                summary.map(Some),
                &mut out,
            );
        }
        out
    }

    /// Follows the model for the host endpoints in `ids`.
    pub fn hosts_changed<'a>(
        &mut self,
        model: &Model,
        ids: impl IntoIterator<Item = &'a HostEndpointId>,
    ) -> Vec<StatusEvent> {
        let mut out = Vec::new();
        for id in ids {
            let present = model.host_endpoints.contains_key(id).then_some(None);
            self.follow(EndpointRef::Host(id.clone()), present, &mut out);
        }
        out
    }

    /// Host endpoints among `ids` that Felix has not heard about yet: `error`, since this
    /// dataplane does not enforce host endpoint policy (the compiler logs it for each one).
    /// Felix hears their removal like any other's.
    pub fn unenforced_hosts<'a>(
        &mut self,
        model: &Model,
        ids: impl IntoIterator<Item = &'a HostEndpointId>,
    ) -> Vec<StatusEvent> {
        let mut out = Vec::new();
        for id in ids {
            let Some(hep) = model.host_endpoints.get(id) else {
                continue;
            };
            let key = endpoint_name(&EndpointRef::Host(id.clone()));
            let Some(k) = self.live.get_mut(&key) else {
                continue;
            };
            if k.reported.is_none() {
                warn!(host_endpoint = %id, interface = %hep.name,
                    "host endpoint reported in error: its policy is not enforced by this dataplane");
                k.reported = Some((EndpointStatus::Error, InterfaceKey(hep.name.clone())));
                out.push(event(&k.id, Some(EndpointStatus::Error), &None));
            }
        }
        out
    }

    /// A new Felix session: the model is the whole truth; endpoints it lacks are removed.
    pub fn resync(&mut self, model: &Model) -> Vec<StatusEvent> {
        let mut workloads: Vec<WorkloadEndpointId> =
            model.workload_endpoints.keys().cloned().collect();
        let mut hosts: Vec<HostEndpointId> = model.host_endpoints.keys().cloned().collect();
        for k in self.live.values() {
            match &k.id {
                EndpointRef::Workload(id) => workloads.push(id.clone()),
                EndpointRef::Host(id) => hosts.push(id.clone()),
            }
        }
        let mut out = self.workloads_changed(model, &workloads);
        out.extend(self.hosts_changed(model, &hosts));
        out
    }

    /// `present`: `None` when the model no longer has the endpoint, else its summary.
    fn follow(
        &mut self,
        id: EndpointRef,
        present: Option<Option<EndpointSummary>>,
        out: &mut Vec<StatusEvent>,
    ) {
        let key = endpoint_name(&id);
        match present {
            Some(summary) => {
                self.gone.remove(&key);
                match self.live.get_mut(&key) {
                    Some(k) => {
                        if k.summary != summary {
                            k.summary = summary;
                            if let Some((status, _)) = &k.reported {
                                out.push(event(&k.id, Some(*status), &k.summary));
                            }
                        }
                    }
                    None => {
                        self.live.insert(
                            key,
                            Known {
                                id,
                                summary,
                                reported: None,
                            },
                        );
                    }
                }
            }
            None => {
                if let Some(k) = self.live.remove(&key) {
                    if k.reported.is_some() {
                        out.push(event(&k.id, None, &None));
                        // Only workloads get late reconciler events to swallow.
                        if matches!(k.id, EndpointRef::Workload(_)) {
                            self.gone.insert(key, k.id);
                        }
                    }
                }
            }
        }
    }

    /// The Felix status for one reconciler event, if Felix should hear about it.
    pub fn on_status(&mut self, ev: EndpointStatusEvent) -> Option<StatusEvent> {
        match ev {
            EndpointStatusEvent::Update {
                endpoint,
                interface,
                status,
                reason,
            } => {
                if self.gone.contains_key(&endpoint) {
                    debug!(%endpoint, "status of a removed endpoint ignored");
                    return None;
                }
                let Some(k) = self.live.get_mut(&endpoint) else {
                    debug!(%endpoint, "status of an endpoint the model does not have ignored");
                    return None;
                };
                let felix = felix_status(&k.id, status);
                if status != EndpointOperStatus::Up {
                    let level_warn = status == EndpointOperStatus::Error;
                    let reason = reason.as_deref().unwrap_or("");
                    if level_warn {
                        warn!(%endpoint, %interface, reason, reported = felix.as_str(),
                            "endpoint policy not programmed");
                    } else {
                        debug!(%endpoint, %interface, reason, "endpoint down");
                    }
                }
                k.reported = Some((felix, interface));
                Some(event(&k.id, Some(felix), &k.summary))
            }
            EndpointStatusEvent::Remove {
                endpoint,
                interface,
            } => {
                if self.gone.remove(&endpoint).is_some() {
                    return None;
                }
                let k = self.live.get_mut(&endpoint)?;
                // Still in the model: only the interface it had went away.
                match &k.reported {
                    Some((_, reported_on)) if *reported_on == interface => {
                        k.reported = None;
                        Some(event(&k.id, None, &None))
                    }
                    _ => None,
                }
            }
        }
    }
}

/// The name the compiler gives an endpoint (`DesiredInterface::endpoint`).
pub fn endpoint_name(id: &EndpointRef) -> String {
    match id {
        EndpointRef::Workload(id) => id.to_string(),
        EndpointRef::Host(id) => id.to_string(),
    }
}

/// Felix's Linux dataplane reports workloads only `up` or `down` (`error` is for host
/// endpoints); a workload whose policy failed is `down`, so the CNI plugin never takes it
/// for ready.
fn felix_status(id: &EndpointRef, s: EndpointOperStatus) -> EndpointStatus {
    match (s, id) {
        (EndpointOperStatus::Up, _) => EndpointStatus::Up,
        (EndpointOperStatus::Down, _) => EndpointStatus::Down,
        (EndpointOperStatus::Error, EndpointRef::Workload(_)) => EndpointStatus::Down,
        (EndpointOperStatus::Error, EndpointRef::Host(_)) => EndpointStatus::Error,
    }
}

fn event(
    id: &EndpointRef,
    status: Option<EndpointStatus>,
    summary: &Option<EndpointSummary>,
) -> StatusEvent {
    match id {
        EndpointRef::Workload(id) => StatusEvent::Workload {
            id: id.clone(),
            status: status.map(|s| (s, summary.clone())),
        },
        EndpointRef::Host(id) => StatusEvent::Host {
            id: id.clone(),
            status,
        },
    }
}
