//! calico-vpp-driver: a Calico dataplane driver for VPP.
//!
//! Data flows one way: `felix` (bytes ⇄ proto ⇄ model) → `calico_model` → `calico_compile`
//! → `reconcile` → `dataplane` (trait) → `vpp_bindings`; status flows back from realized
//! state and VPP events through `status` to Felix.

pub mod dataplane;
pub mod felix;
pub mod reconcile;
