//! End-to-end tests, one binary: the real driver binary started as Felix starts it, against the
//! VPP simulator or (the `*_realvpp` modules, `#[ignore]`d without `CALICO_VPP_TEST_VPP_PREFIX`)
//! a real VPP with real packets. One binary, not one per file: each test binary links the whole
//! driver, and twenty of them cost minutes of linking and gigabytes of disk.
//!
//! Run a group by module path: `cargo test -p integration --test e2e -- --ignored _realvpp::`.

mod common;

mod cli_commands;
mod cni_realvpp;
mod cni_wire;
mod driver;
mod driver_realvpp;
mod explain;
mod felix_config_files;
mod felix_process;
mod guard;
mod icmp_realvpp;
mod manifests;
mod metrics;
mod model_realvpp;
mod p2p;
mod reconcile;
mod routes_realvpp;
mod services;
mod services_realvpp;
mod snat_realvpp;
mod tunnels_realvpp;
mod vpp_restart_realvpp;
mod vxlan_realvpp;
