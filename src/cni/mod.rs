//! Pod interfaces for Calico's CNI plugin: the gRPC dataplane (`CniDataplane`, `Add` and
//! `Del`) the plugin calls when its conflist says
//! `"dataplane_options": {"type": "grpc", "socket": "unix:///var/run/calico/cni-server.sock"}`.
//!
//! An `Add` is checked by the agent (it owns the model: Felix's pools, the node's pods), the
//! pod's Linux side is built here (a veth, or nothing for a TUN tap VPP creates in the pod),
//! then the pod joins the model and the reconciler builds VPP's side as owned objects
//! (`reconcile::kinds::pod`). The reply waits until VPP's interface is there, so the
//! endpoint Felix sends next binds at once. A pod is dark in VPP (an ACL drops everything) until
//! its endpoint's binding replaces it.

pub mod book;
pub mod client;
pub mod network;
pub mod request;
pub mod server;

/// The CNI plugin's gRPC messages and service (from `proto/cnibackend.proto`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/cni.rs"));
}

pub use book::{PodAnswer, PodBook, PodQuery, PodRequest, PodStore};
pub use network::{FakeNetwork, LinuxNetwork, PodNetwork, SimNetwork};
pub use request::PodSettings;
pub use server::{serve, CniError, CniServer};

/// Where the CNI plugin finds the driver (Calico/VPP's path).
pub const DEFAULT_CNI_SOCKET: &str = "/var/run/calico/cni-server.sock";

#[cfg(test)]
mod tests;
