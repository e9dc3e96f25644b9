//! calico-vpp-driver: a Calico dataplane driver for VPP.
//!
//! Data flows one way: `felix` (bytes ⇄ proto ⇄ model) → `calico_model` → `calico_compile`
//! → `reconcile` → `dataplane` (trait) → `vpp_bindings`; status flows back from realized
//! state and VPP events through `status` to Felix. `agent` owns the model and ties it together.

pub mod admin;
pub mod agent;
pub mod cli;
pub mod cni;
pub mod commands;
pub mod config;
pub mod dataplane;
pub mod demo;
pub mod felix;
pub mod hook;
pub mod logging;
pub mod metrics;
pub mod reconcile;
pub mod status;
