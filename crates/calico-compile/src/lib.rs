//! Model → desired VPP (npol) objects, deterministic and incremental; plus a reference
//! evaluator of Calico policy semantics, written straight from the model, and npol's
//! evaluation of the compiled objects, so the two can be held equal.
//!
//! Pure: no tokio, no protobuf, no VPP I/O.

pub mod compiler;
pub mod config;
pub mod desired;
mod hash;
pub mod ipsets;
pub mod lookup;
pub mod reference;
pub mod report;
pub mod rules;

pub use compiler::{compile, ChangeSet, Compiled, Compiler};
pub use config::{EndpointToHostAction, PolicyConfig};
pub use desired::{
    DesiredDiff, DesiredInterface, DesiredState, InterfaceKey, IpSetKey, MemberDelta, PolicyKey,
    RuleKey,
};
pub use lookup::{evaluate_compiled, npol_direction};
pub use report::{CalicoDirection, CompileReport, Note, Subject};
pub use rules::IcmpFate;
