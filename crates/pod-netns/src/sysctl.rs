//! Writing network sysctls. `/proc/sys/net` resolves to the network
//! namespace of the thread that opens it, so these act wherever the calling
//! thread currently is.

use std::{fmt::Display, fs::OpenOptions, io::Write, path::Path};

use crate::NetnsError;

/// Writes `value` to `/proc/sys/<key>` (`key` like `net/ipv4/ip_forward`);
/// `place` names the calling thread's namespace in the error.
pub(crate) fn write(key: &str, value: &str, place: impl Display) -> Result<(), NetnsError> {
    let path = Path::new("/proc/sys").join(key);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut file| file.write_all(value.as_bytes()))
        .map_err(|e| NetnsError::io(format!("set sysctl {key} to {value} in {place}"), e))
}

/// Whether this kernel has IPv6 at all (it may be booted with
/// `ipv6.disable=1`, in which case there is nothing to turn off).
pub(crate) fn has_ipv6() -> bool {
    Path::new("/proc/sys/net/ipv6").exists()
}
