//! Follows Felix's endpoints (by the typed id the compiler puts in
//! `DesiredInterface::endpoint` and the reconciler reports under) and turns the reconciler's
//! endpoint status into status for Felix. It only relays what the reconciler saw: it never
//! reports an endpoint up on its own.

use std::collections::HashMap;

use calico_compile::InterfaceKey;
use calico_model::{EndpointId, HostEndpointId, Model, WorkloadEndpointId};
use tracing::{debug, warn};

use crate::reconcile::{EndpointOperStatus, EndpointStatusEvent};
use crate::status::{EndpointStatus, EndpointSummary, StatusEvent};

#[derive(Debug)]
struct Known {
    /// Workloads: what Felix's status files need, kept current with the model.
    summary: Option<EndpointSummary>,
    /// What Felix was last told, and for which interface (an endpoint that moves to another
    /// interface gets an update for the new one before the remove of the old one).
    reported: Option<(EndpointStatus, InterfaceKey)>,
}

/// The endpoints the model holds.
#[derive(Debug, Default)]
pub struct EndpointDirectory {
    live: HashMap<EndpointId, Known>,
    /// Endpoints removed from the model after Felix had a status for them. Felix was told
    /// at once; the reconciler's later events for them (a pass on an older state, then its
    /// remove) are swallowed. Cleared by that remove or when the endpoint comes back.
    gone: std::collections::HashSet<EndpointId>,
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
                EndpointId::Workload(id.clone()),
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
            self.follow(EndpointId::Host(id.clone()), present, &mut out);
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
            let key = EndpointId::Host(id.clone());
            let Some(k) = self.live.get_mut(&key) else {
                continue;
            };
            if k.reported.is_none() {
                warn!(host_endpoint = %id, interface = %hep.name,
                    "host endpoint reported in error: its policy is not enforced by this dataplane");
                k.reported = Some((EndpointStatus::Error, InterfaceKey(hep.name.clone())));
                out.push(event(&key, Some(EndpointStatus::Error), &None));
            }
        }
        out
    }

    /// A new Felix session: the model is the whole truth; endpoints it lacks are removed.
    pub fn resync(&mut self, model: &Model) -> Vec<StatusEvent> {
        let mut workloads: Vec<WorkloadEndpointId> =
            model.workload_endpoints.keys().cloned().collect();
        let mut hosts: Vec<HostEndpointId> = model.host_endpoints.keys().cloned().collect();
        for id in self.live.keys() {
            match id {
                EndpointId::Workload(id) => workloads.push(id.clone()),
                EndpointId::Host(id) => hosts.push(id.clone()),
            }
        }
        let mut out = self.workloads_changed(model, &workloads);
        out.extend(self.hosts_changed(model, &hosts));
        out
    }

    /// `present`: `None` when the model no longer has the endpoint, else its summary.
    fn follow(
        &mut self,
        id: EndpointId,
        present: Option<Option<EndpointSummary>>,
        out: &mut Vec<StatusEvent>,
    ) {
        match present {
            Some(summary) => {
                self.gone.remove(&id);
                match self.live.get_mut(&id) {
                    Some(k) => {
                        if k.summary != summary {
                            k.summary = summary;
                            if let Some((status, _)) = &k.reported {
                                out.push(event(&id, Some(*status), &k.summary));
                            }
                        }
                    }
                    None => {
                        self.live.insert(
                            id,
                            Known {
                                summary,
                                reported: None,
                            },
                        );
                    }
                }
            }
            None => {
                if let Some(k) = self.live.remove(&id) {
                    if k.reported.is_some() {
                        out.push(event(&id, None, &None));
                        // Only workloads get late reconciler events to swallow.
                        if matches!(id, EndpointId::Workload(_)) {
                            self.gone.insert(id);
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
                if self.gone.contains(&endpoint) {
                    debug!(%endpoint, "status of a removed endpoint ignored");
                    return None;
                }
                let Some(k) = self.live.get_mut(&endpoint) else {
                    debug!(%endpoint, "status of an endpoint the model does not have ignored");
                    return None;
                };
                let felix = felix_status(&endpoint, status);
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
                Some(event(&endpoint, Some(felix), &k.summary))
            }
            EndpointStatusEvent::Remove {
                endpoint,
                interface,
            } => {
                if self.gone.remove(&endpoint) {
                    return None;
                }
                let k = self.live.get_mut(&endpoint)?;
                // Still in the model: only the interface it had went away.
                match &k.reported {
                    Some((_, reported_on)) if *reported_on == interface => {
                        k.reported = None;
                        Some(event(&endpoint, None, &None))
                    }
                    _ => None,
                }
            }
        }
    }
}

/// Felix's Linux dataplane reports workloads only `up` or `down` (`error` is for host
/// endpoints); a workload whose policy failed is `down`, so the CNI plugin never takes it
/// for ready.
fn felix_status(id: &EndpointId, s: EndpointOperStatus) -> EndpointStatus {
    match (s, id) {
        (EndpointOperStatus::Up, _) => EndpointStatus::Up,
        (EndpointOperStatus::Down, _) => EndpointStatus::Down,
        (EndpointOperStatus::Error, EndpointId::Workload(_)) => EndpointStatus::Down,
        (EndpointOperStatus::Error, EndpointId::Host(_)) => EndpointStatus::Error,
    }
}

fn event(
    id: &EndpointId,
    status: Option<EndpointStatus>,
    summary: &Option<EndpointSummary>,
) -> StatusEvent {
    match id {
        EndpointId::Workload(id) => StatusEvent::Workload {
            id: id.clone(),
            status: status.map(|s| (s, summary.clone())),
        },
        EndpointId::Host(id) => StatusEvent::Host {
            id: id.clone(),
            status,
        },
    }
}
