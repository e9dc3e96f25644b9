//! Why an object from the API server carries nothing for the driver.

use thiserror::Error;

/// An object that is skipped whole (logged at debug: these are normal, not faults).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Ignored {
    #[error("object has no metadata.name")]
    NoName,
    #[error("object has no metadata.namespace")]
    NoNamespace,
    #[error("EndpointSlice has no kubernetes.io/service-name label")]
    NoServiceLabel,
    #[error("EndpointSlice addressType {0:?} carries no IP addresses")]
    NotIp(String),
}
