//! A VPP simulator: VPP's socket API with VPP's message table, the objects the driver
//! programs (interfaces, FIB, neighbours, cnat, npol, ACLs) with VPP's id allocation and error
//! codes, npol evaluation through the shared `npol` evaluator, and fault injection.
//! It is a stand-in for tests and demos; real VPP stays the reference it must agree with.
//! It must never be mistaken for a VPP: `show_version` says `vpp-sim`.
//!
//! - Run: [`Simulator::start`]`(path)` (tests) or [`serve`]`(path, Options)` (the CLI).
//! - Look: [`Simulator::with_state`], [`Simulator::dump_text`], [`Simulator::dump_json`],
//!   [`Simulator::write_calls`], [`Simulator::calls`].
//! - Police: [`Simulator::evaluate`], [`Simulator::evaluate_flow`], [`Simulator::explain`]
//!   (npol only where cnat is enabled, as on a real VPP; quirks flagged `QUIRK`).
//! - Break: [`Simulator::fail_nth`], [`Simulator::inject`], [`Simulator::set_reply_delay`],
//!   [`Simulator::drop_connections`], [`Simulator::restart_empty`].

pub mod acl;
pub mod api;
pub mod enforce;
pub mod forward;
pub mod pool;
mod render;
pub mod server;
pub mod state;

pub use enforce::{Enforcement, FlowVerdict};
pub use forward::{Forwarding, NotForwarded, PathResult};
pub use npol::{Direction, Packet, Verdict};
pub use server::{serve, FaultAction, Options, SimError, Simulator};
pub use state::{rv, SimState};
