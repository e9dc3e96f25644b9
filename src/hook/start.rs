//! Building the dataplane hook the configuration asks for: the reconciler over VPP's API
//! (socket or shared memory), the built-in simulator, or the model only. The agent only
//! knows the [`DataplaneHook`] trait; this is where the concrete hooks are put together.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;
use vpp_sim::Simulator;

use super::sim::SimHook;
use super::{HookMonitor, VppHook};
use crate::agent::{DataplaneHook, ModelOnly};
use crate::config::{DataplaneKind, DriverConfig};
use crate::dataplane::vpp::{VppConfig, VppDataplane};
use crate::reconcile::{self, Reconciler, ReconcilerConfig};
use crate::status::StatusSender;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("starting the VPP simulator: {0}")]
    Simulator(String),
}

/// Builds the hook for the configured dataplane. `status` is how it reports endpoint status.
/// Needs a tokio runtime (the reconciler and, for `sim`, the simulator run as tasks); it
/// connects nothing itself: the reconciler connects (with backoff) on its own task.
pub fn dataplane_hook(
    config: &DriverConfig,
    status: StatusSender,
) -> Result<Box<dyn DataplaneHook>, StartError> {
    start_dataplane(config, status).map(|(hook, _)| hook)
}

/// [`dataplane_hook`], plus a monitor of the reconciler (none for `CALICO_VPP_DATAPLANE=none`)
/// for callers that wait for convergence.
pub fn start_dataplane(
    config: &DriverConfig,
    status: StatusSender,
) -> Result<(Box<dyn DataplaneHook>, Option<HookMonitor>), StartError> {
    match config.dataplane {
        DataplaneKind::None => Ok((Box::<ModelOnly>::default(), None)),
        DataplaneKind::Vpp => {
            info!(socket = %config.api_socket.display(), state_dir = %config.state_dir.display(),
                "programming VPP");
            let rc = ReconcilerConfig {
                state_dir: Some(config.state_dir.clone()),
                min_apply_interval: config.min_apply_interval,
                uplink: config.uplink_interface.clone(),
                ..ReconcilerConfig::default()
            };
            let vpp = VppConfig {
                transport: config.api_transport.clone(),
                tun_pods: config.cni_socket.is_some()
                    && config.pods.backend == calico_model::PodBackend::Tun,
                ..vpp_config(&config.api_socket)
            };
            let (handle, events, task) = reconcile::start_vpp(rc, vpp);
            let (hook, monitor) = VppHook::with_reconciler(handle, events, task, status);
            Ok((Box::new(hook), Some(monitor)))
        }
        DataplaneKind::Sim => {
            let path = config.sim_socket.clone().unwrap_or_else(default_sim_socket);
            let sim = start_simulator(&path)?;
            info!(socket = %path.display(), "programming the built-in VPP simulator (not a VPP)");
            // The simulator starts empty with every run: there is nothing to adopt.
            let reconciler = Reconciler::new(
                VppDataplane::new(VppConfig {
                    // The simulator has the tap plugin's messages.
                    tun_pods: true,
                    ..vpp_config(&path)
                }),
                ReconcilerConfig {
                    min_apply_interval: config.min_apply_interval,
                    uplink: config.uplink_interface.clone(),
                    ..ReconcilerConfig::default()
                },
            );
            let (hook, monitor) = VppHook::start(reconciler, status);
            Ok((Box::new(SimHook::new(hook, Arc::new(sim))), Some(monitor)))
        }
    }
}

/// The VPP API client settings for `socket`.
pub fn vpp_config(socket: &Path) -> VppConfig {
    VppConfig {
        socket: socket.to_path_buf(),
        ..VppConfig::default()
    }
}

/// A per-process socket path under the temporary directory, so that a simulator never
/// replaces a real VPP's socket.
pub fn default_sim_socket() -> PathBuf {
    std::env::temp_dir().join(format!("calico-vpp-sim-{}.sock", std::process::id()))
}

/// Starts the simulator from synchronous code inside a runtime. Its start binds and spawns
/// without waiting on anything, so one poll completes it.
pub fn start_simulator(path: &Path) -> Result<Simulator, StartError> {
    use futures::FutureExt;
    match Simulator::start(path).now_or_never() {
        Some(Ok(sim)) => Ok(sim),
        Some(Err(e)) => Err(StartError::Simulator(e.to_string())),
        None => Err(StartError::Simulator(
            "the simulator did not start without waiting".into(),
        )),
    }
}
