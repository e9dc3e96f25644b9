//! The model: everything Felix has told the driver, as typed and validated Rust values.
//!
//! Pure: no tokio, no protobuf, no VPP. Values arrive here already converted (and, when
//! invalid, already turned into fail-closed objects) by `felix::convert` in the driver crate.

pub mod felix_config;
pub mod kube;
pub mod model;
pub mod pods;
pub mod types;
pub mod update;

pub use felix_config::{EndpointToHostAction, FelixConfig};
pub use model::Model;
pub use pods::{vpp_mac_for, PodBackend, PodInterface, PodKey, Pods};
pub use types::*;
pub use update::{Changes, IpSetChange, Update};
