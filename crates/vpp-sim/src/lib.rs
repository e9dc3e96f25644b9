//! A VPP simulator: VPP's socket API with VPP's message table, the objects the driver
//! programs (interfaces, FIB, neighbours, cnat, npol) with VPP's id allocation and error
//! codes, npol evaluation through the shared `npol` evaluator, and fault injection.
//! It is a stand-in for tests and demos; real VPP stays the reference it must agree with.
//! It must never be mistaken for a VPP: `show_version` says `vpp-sim`.

pub mod api;
pub mod enforce;
pub mod pool;
mod render;
pub mod server;
pub mod state;

pub use enforce::{Enforcement, FlowVerdict};
pub use npol::{Direction, Packet, Verdict};
pub use server::{serve, FaultAction, Options, SimError, Simulator};
pub use state::{rv, SimState};
