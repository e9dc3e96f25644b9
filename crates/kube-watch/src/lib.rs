//! Watches the API server's Services and EndpointSlices and hands the driver
//! `calico_model::kube` values: kube and k8s-openapi types end at this crate's edge.
//!
//! Never programs anything and never writes to the API server; it only reads and converts.

mod client;
mod ignored;
mod pace;
mod service;
mod slice;
mod tracker;
mod watch;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{client_from_env, ClientError};
pub use ignored::Ignored;
pub use pace::RELIST_BACKOFF_CAP;
pub use service::{convert_service, service_key};
pub use slice::{convert_slice, slice_key, SERVICE_NAME_LABEL};
pub use watch::watch;

/// Re-exported so callers name the same versions as this crate.
pub use k8s_openapi;
pub use kube;
