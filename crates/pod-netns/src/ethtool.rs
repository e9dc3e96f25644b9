//! Turning TX checksum offload off through the legacy ethtool ioctl.
//!
//! A veth hands its peer packets whose checksum is still partial (the
//! sender's kernel expects hardware to finish it). Linux's receive path
//! copes, but VPP reading the host end through af_packet forwards them
//! unfixed, so pods would send TCP/UDP with bad checksums. Turning TX
//! checksumming off makes the sending kernel compute them in full.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// `ETHTOOL_STXCSUM` from `<linux/ethtool.h>`.
const ETHTOOL_STXCSUM: u32 = 0x17;
/// `ETHTOOL_GTXCSUM` from `<linux/ethtool.h>`.
const ETHTOOL_GTXCSUM: u32 = 0x16;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns TX checksum offload off on `ifname` in the calling thread's
/// network namespace (the ioctl resolves the name there), and checks that
/// the driver did turn it off.
pub(crate) fn disable_tx_checksum(ifname: &str) -> io::Result<()> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    ethtool(ifname, &mut value)?;
    if tx_checksum(ifname)? {
        return Err(io::Error::other("the driver kept it on"));
    }
    Ok(())
}

/// Whether TX checksum offload is on for `ifname`.
fn tx_checksum(ifname: &str) -> io::Result<bool> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    ethtool(ifname, &mut value)?;
    Ok(value.data != 0)
}

fn ethtool(ifname: &str, value: &mut EthtoolValue) -> io::Result<()> {
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    // SAFETY: `ifreq` is plain old data (a name and a union of integers and
    // pointers), for which all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (value as *mut EthtoolValue).cast();
    // SAFETY: `ifr` names a NUL-terminated interface (zeroed tail) and points
    // at `value`, a live `ethtool_value` that the kernel reads and may write;
    // both outlive the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
