//! `CALICO_VPP_DATAPLANE=sim`: the VPP hook against the built-in simulator, which this hook
//! owns, plus the part a CNI plugin plays on a real node: a tagged, up interface per
//! workload endpoint (a TUN tap, as Calico/VPP's CNI makes by default), so endpoints bind
//! and come up. Never used against a real VPP.

use std::collections::BTreeMap;
use std::sync::Arc;

use calico_model::{Model, WorkloadEndpointId};
use tracing::{debug, warn};
use vpp_sim::Simulator;

use super::VppHook;
use crate::agent::{Batch, DataplaneHook};

/// What kind of interface the hook makes for a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodInterface {
    /// `tap_create_v3` with the TUN flag: point-to-point, no neighbour resolution.
    #[default]
    Tun,
    /// An Ethernet tap: VPP resolves neighbours on it (ARP/ND).
    Tap,
}

/// [`VppHook`] plus the pod interfaces in the simulator it programs.
pub struct SimHook {
    inner: VppHook,
    sim: Arc<Simulator>,
    kind: PodInterface,
    /// The interface made for each endpoint: (interface tag, sw_if_index).
    taps: BTreeMap<WorkloadEndpointId, (String, u32)>,
}

impl SimHook {
    /// Pods get TUN interfaces.
    pub fn new(inner: VppHook, sim: Arc<Simulator>) -> Self {
        Self::with_pod_interface(inner, sim, PodInterface::default())
    }

    pub fn with_pod_interface(inner: VppHook, sim: Arc<Simulator>, kind: PodInterface) -> Self {
        SimHook {
            inner,
            sim,
            kind,
            taps: BTreeMap::new(),
        }
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }

    fn sync_taps(&mut self, model: &Model, ids: Vec<WorkloadEndpointId>) {
        for id in ids {
            let want = model.workload_endpoints.get(&id).map(|ep| ep.name.clone());
            let have = self.taps.get(&id).map(|(name, _)| name.clone());
            if want == have {
                continue;
            }
            if let Some((name, idx)) = self.taps.remove(&id) {
                let still_used = self.taps.values().any(|(n, _)| *n == name);
                if !still_used {
                    self.sim.with_state_mut(|s| s.delete_tap(idx));
                    debug!(endpoint = %id, interface = %name, "simulated pod interface removed");
                }
            }
            let Some(name) = want else { continue };
            let existing = self
                .taps
                .values()
                .find(|(n, _)| *n == name)
                .map(|(_, idx)| *idx);
            let kind = self.kind;
            let created = existing.map(Ok).unwrap_or_else(|| {
                self.sim.with_state_mut(|s| {
                    let idx = match kind {
                        PodInterface::Tun => s.create_tun(u32::MAX, Some(&name), &name)?,
                        PodInterface::Tap => s.create_tap(u32::MAX, None, Some(&name), &name)?,
                    };
                    s.set_flags(idx, true);
                    s.set_link(idx, true);
                    Ok::<u32, i32>(idx)
                })
            });
            match created {
                Ok(idx) => {
                    debug!(endpoint = %id, interface = %name, sw_if_index = idx, ?kind,
                        "simulated pod interface");
                    self.taps.insert(id, (name, idx));
                }
                Err(rv) => warn!(endpoint = %id, interface = %name, retval = rv,
                    "the simulator refused a pod interface"),
            }
        }
    }
}

impl DataplaneHook for SimHook {
    fn apply(&mut self, batch: Batch<'_>) {
        let ids: Vec<WorkloadEndpointId> = if batch.resync {
            let mut all: Vec<WorkloadEndpointId> =
                batch.model.workload_endpoints.keys().cloned().collect();
            all.extend(self.taps.keys().cloned());
            all
        } else {
            batch.changes.workload_endpoints.iter().cloned().collect()
        };
        // Interfaces first, as a CNI plugin creates them before Felix hears of the pod.
        self.sync_taps(batch.model, ids);
        self.inner.apply(batch);
    }

    fn prepare(&mut self, batch: Batch<'_>) -> bool {
        self.inner.prepare(batch)
    }

    fn felix_disconnected(&mut self) {
        self.inner.felix_disconnected();
    }

    fn desired(&self) -> Option<&calico_compile::DesiredState> {
        self.inner.desired()
    }
}
