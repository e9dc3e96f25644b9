//! Desired vs realized VPP state: ordering, batching, retries, status.
