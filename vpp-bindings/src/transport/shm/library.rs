//! Loading `libvppapiclient.so` at run time: where to look, and the one process-wide copy
//! (never unloaded: its threads and globals outlive any connection).

use std::ffi::{c_int, c_uchar, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing::warn;

use super::vac_sys::VppApiClient;
use super::ShmError;

/// Where VPP's packages put libraries, searched for a versioned libvppapiclient.
pub(super) const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// The first candidate that loads; the error names every one tried.
pub(super) fn load_any(candidates: &[PathBuf]) -> Result<&'static VppApiClient, ShmError> {
    let mut reasons = Vec::new();
    for c in candidates {
        match library(c) {
            Ok(l) => return Ok(l),
            Err(ShmError::LibraryMissing { reason, .. }) => reasons.push(reason),
            Err(e) => return Err(e),
        }
    }
    Err(ShmError::LibraryMissing {
        library: candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reason: reasons.join("; "),
    })
}

/// The loaded library; never unloaded (its threads and globals outlive any connection).
pub(super) fn library(path: &Path) -> Result<&'static VppApiClient, ShmError> {
    static LIB: OnceLock<&'static VppApiClient> = OnceLock::new();
    static LOADING: Mutex<()> = Mutex::new(());
    if let Some(l) = LIB.get() {
        return Ok(l);
    }
    let _g = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = LIB.get() {
        return Ok(l);
    }
    // SAFETY: loading runs the library's constructors; libvppapiclient's only set up its own
    // globals. The symbols' types are bindgen's from the library's own header.
    let lib = unsafe { VppApiClient::new(path) }.map_err(|e| ShmError::LibraryMissing {
        library: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let lib: &'static VppApiClient = Box::leak(Box::new(lib));
    // SAFETY: both are plain initialisers; vac_mem_init(0) sizes the client heap like VPP's
    // Python client does.
    unsafe {
        lib.vac_mem_init(0);
        lib.vac_set_error_handler(Some(on_vac_error));
    }
    let _ = LIB.set(lib);
    Ok(lib)
}

unsafe extern "C" fn on_vac_error(_arg: *mut c_void, msg: *mut c_uchar, len: c_int) {
    if msg.is_null() || len <= 0 {
        return;
    }
    // SAFETY: the library passes a buffer of `len` bytes, valid for this call.
    let bytes = unsafe { std::slice::from_raw_parts(msg, len as usize) };
    warn!(message = %String::from_utf8_lossy(bytes).trim_end(), "libvppapiclient error");
}
