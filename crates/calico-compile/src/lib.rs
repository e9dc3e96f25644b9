//! Model → desired VPP (npol) objects, deterministic and incremental; plus a reference
//! evaluator of Calico policy semantics, written straight from the model.
//!
//! Pure: no tokio, no protobuf, no VPP I/O.

pub mod desired;

pub use desired::{DesiredInterface, DesiredState, InterfaceKey, IpSetKey, PolicyKey, RuleKey};
