//! Per-object failure bookkeeping with backoff, and the endpoint status the agent reports.
//!
//! Pure data: nothing here talks to VPP or to Felix.

use calico_model::EndpointId;
use std::fmt;
use std::time::Duration;

use calico_compile::{InterfaceKey, IpSetKey};
use tokio::time::Instant;

use crate::dataplane::{IpSetId, SwIfIndex};

/// One object the reconciler manages, for status, logs and retries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectRef {
    IpSet(IpSetKey),
    Interface(InterfaceKey),
    /// An object of a generic kind, by its kind's name and key.
    Other(String),
    /// Objects we own that no key names any more (see `Orphans`).
    OrphanIpSet(IpSetId),
    OrphanInterface(SwIfIndex),
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::IpSet(k) => write!(f, "ipset {k}"),
            ObjectRef::Interface(k) => write!(f, "interface {k}"),
            ObjectRef::Other(o) => f.write_str(o),
            ObjectRef::OrphanIpSet(id) => write!(f, "old ipset id {id}"),
            ObjectRef::OrphanInterface(i) => write!(f, "old binding of sw_if_index {i}"),
        }
    }
}

/// An object whose last operation failed; retried at `retry_at`, unless `permanent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub attempts: u32,
    pub retry_at: Instant,
    pub error: String,
    /// No retry can help (the object cannot be built from its input); it is tried again
    /// only when its desired value changes or a whole new desired state arrives.
    pub permanent: bool,
}

/// Why an object could not be programmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The object can never be built from this input (it cannot even be encoded).
    #[error("{0}")]
    Permanent(String),
    /// VPP refused it for now, or answered oddly: retried with backoff.
    #[error("{0}")]
    Retryable(String),
}

impl ObjectError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, ObjectError::Permanent(_))
    }

    /// An operation failed: permanent when it could not even be encoded.
    pub fn from_op(e: &crate::dataplane::OpError) -> Self {
        if e.permanent {
            ObjectError::Permanent(e.to_string())
        } else {
            ObjectError::Retryable(e.to_string())
        }
    }
}

/// Exponential backoff: `base`, `2 * base`, ... capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before the next try after `attempts` failed ones (`attempts >= 1`).
    pub fn delay(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << shift).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

/// A workload endpoint's state as Felix wants it reported (`WorkloadEndpointStatusUpdate.status`
/// is `"up"`, `"down"` or `"error"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointOperStatus {
    /// Bound, its policy fully programmed and live, and the link is up.
    Up,
    /// Not bound yet (no such VPP interface) or the link is down.
    Down,
    /// Programming its policy failed or waits for a failed object; traffic is denied or held
    /// on the previous configuration.
    Error,
}

impl EndpointOperStatus {
    /// The string Felix's status messages carry.
    pub fn as_felix_str(self) -> &'static str {
        match self {
            EndpointOperStatus::Up => "up",
            EndpointOperStatus::Down => "down",
            EndpointOperStatus::Error => "error",
        }
    }
}

/// What the agent turns into `WorkloadEndpointStatusUpdate` / `WorkloadEndpointStatusRemove`.
/// `endpoint` is `DesiredInterface::endpoint` as the compiler gave it. An update is sent on
/// every change, a remove once when the endpoint leaves the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointStatusEvent {
    Update {
        endpoint: EndpointId,
        interface: InterfaceKey,
        status: EndpointOperStatus,
        /// Why it is not up, for logs.
        reason: Option<String>,
    },
    Remove {
        endpoint: EndpointId,
        interface: InterfaceKey,
    },
}
