//! The connection's threads: how messages arrive (the library's callback, or our thread in
//! `vac_read`), the watchdog that probes a quiet VPP and declares it gone, and the writer.
//! The last thread out drops [`Conn`], which disconnects.

use std::ffi::{c_char, c_int, c_uchar};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::debug;

use super::slot::{mark_closing, slot, Slot};
use super::vac_sys::{self, VppApiClient};
use super::{ShmConfig, PROBE_CONTEXT, READ_TICK_SECS};
use crate::transport::TransportError;

/// Why the connection ended, shared with the user's halves.
#[derive(Debug, Default)]
pub(super) struct Why(Mutex<Option<String>>);

impl Why {
    pub(super) fn set(&self, why: String) {
        let mut e = self.0.lock().unwrap_or_else(|p| p.into_inner());
        e.get_or_insert(why);
    }

    pub(super) fn get(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "VPP API connection closed".to_owned())
    }
}

/// Owned only by the two I/O threads, so that the last one out, never a tokio worker,
/// disconnects and frees the slot.
pub(super) struct Conn {
    pub(super) lib: &'static VppApiClient,
    pub(super) generation: u64,
    pub(super) why: Arc<Why>,
    /// Set when the reader found VPP gone: the writer stops too, so the connection is torn
    /// down even while the user still holds the halves.
    pub(super) dead: AtomicBool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: both threads that used the connection have finished. With VPP gone this
        // waits up to ~2 s for memclnt_delete's reply; we are on one of our own threads.
        let rv = unsafe { self.lib.vac_disconnect() };
        debug!(rv, "vac_disconnect");
        // The library's receive thread is gone now; nothing calls on_message any more.
        *sink() = None;
        let mut s = slot();
        if matches!(*s, Slot::Live(g) | Slot::Closing(g) if g == self.generation) {
            *s = Slot::Idle;
        }
    }
}

/// What the writer thread is asked to do.
pub(super) enum WriteCmd {
    Frame(Vec<u8>),
    Probe,
    /// The reader found VPP gone.
    Stop,
}

/// Where [`on_message`] delivers (the library's callback has no user pointer; there is one
/// connection per process anyway).
pub(super) type FrameTx = mpsc::UnboundedSender<Result<Vec<u8>, TransportError>>;
pub(super) static SINK: Mutex<Option<FrameTx>> = Mutex::new(None);
pub(super) static PING_REPLY_ID: AtomicU32 = AtomicU32::new(u32::MAX);
/// When the last message arrived, in ms since [`epoch`].
static LAST_RX_MS: AtomicU64 = AtomicU64::new(0);

pub(super) fn sink() -> std::sync::MutexGuard<'static, Option<FrameTx>> {
    SINK.lock().unwrap_or_else(|p| p.into_inner())
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub(super) fn touch_rx() {
    let ms = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
    LAST_RX_MS.store(ms, Ordering::Release);
}

fn since_rx() -> Duration {
    let last = Duration::from_millis(LAST_RX_MS.load(Ordering::Acquire));
    epoch().elapsed().saturating_sub(last)
}

/// Called by the library's receive thread for every message but keepalives (which it
/// answers itself). Must not panic: it runs on a C thread.
pub(super) unsafe extern "C" fn on_message(data: *mut c_uchar, len: c_int) {
    touch_rx();
    let Ok(n) = usize::try_from(len) else { return };
    if data.is_null() {
        return;
    }
    // SAFETY: the library passes a message of `len` bytes, valid for this call.
    let frame = unsafe { std::slice::from_raw_parts(data, n) };
    let ping_reply_id = PING_REPLY_ID.load(Ordering::Acquire);
    if u16::try_from(ping_reply_id).is_ok_and(|id| is_probe_reply(frame, id)) {
        return;
    }
    if let Some(tx) = sink().as_ref() {
        let _ = tx.send(Ok(frame.to_vec()));
    }
}

/// With [`Receive::Callback`]: probes when quiet, declares VPP gone when even probes go
/// unanswered, and ends (letting the connection close) when the user's reader is dropped.
pub(super) fn watch_loop(
    conn: Arc<Conn>,
    tx: FrameTx,
    probe_tx: mpsc::Sender<WriteCmd>,
    cfg: &ShmConfig,
) {
    let tick = (cfg.probe_after / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut last_probe: Option<Instant> = None;
    loop {
        std::thread::sleep(tick);
        if conn.dead.load(Ordering::Acquire) {
            return;
        }
        if tx.is_closed() {
            return closed_by_user(&conn, &probe_tx);
        }
        let idle = since_rx();
        if idle >= cfg.dead_after {
            let why = format!(
                "no message from VPP for {idle:?}, not even the answer to a control_ping; \
                 VPP is gone"
            );
            return gone(&conn, &tx, &probe_tx, why);
        }
        if idle < cfg.probe_after {
            last_probe = None;
        } else if last_probe.is_none_or(|t| t.elapsed() >= cfg.probe_after) {
            let _ = probe_tx.try_send(WriteCmd::Probe);
            last_probe = Some(Instant::now());
        }
    }
}

pub(super) fn read_loop(
    conn: Arc<Conn>,
    tx: mpsc::UnboundedSender<Result<Vec<u8>, TransportError>>,
    probe_tx: mpsc::Sender<WriteCmd>,
    ping_reply_id: u16,
    cfg: &ShmConfig,
) {
    let mut last_rx = Instant::now();
    let mut last_probe: Option<Instant> = None;
    loop {
        if conn.dead.load(Ordering::Acquire) {
            return;
        }
        if tx.is_closed() {
            return closed_by_user(&conn, &probe_tx);
        }
        let mut data: *mut c_char = std::ptr::null_mut();
        let mut len: c_int = 0;
        // SAFETY: connected until `conn` drops, which waits for this thread.
        let rv = unsafe { conn.lib.vac_read(&mut data, &mut len, READ_TICK_SECS) };
        if rv == 0 && !data.is_null() {
            let n = usize::try_from(len).unwrap_or(0);
            // SAFETY: vac_read hands out a message of `len` bytes, ours until vac_free.
            let frame = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), n) }.to_vec();
            unsafe { conn.lib.vac_free(data.cast()) };
            last_rx = Instant::now();
            last_probe = None;
            if is_probe_reply(&frame, ping_reply_id) {
                continue;
            }
            if tx.send(Ok(frame)).is_err() {
                return;
            }
            continue;
        }
        if rv != vac_sys::vac_errno_t_VAC_TIMEOUT {
            let why = format!("vac_read failed with {rv}; VPP is probably gone");
            return gone(&conn, &tx, &probe_tx, why);
        }
        let idle = last_rx.elapsed();
        if idle >= cfg.dead_after {
            let why = format!(
                "no message from VPP for {idle:?}, not even the answer to a control_ping; \
                 VPP is gone"
            );
            return gone(&conn, &tx, &probe_tx, why);
        }
        if idle >= cfg.probe_after && last_probe.is_none_or(|t| t.elapsed() >= cfg.probe_after) {
            // A full queue means writes are flowing; their replies will do as a probe.
            let _ = probe_tx.try_send(WriteCmd::Probe);
            last_probe = Some(Instant::now());
        }
    }
}

/// The user dropped the reader: nobody can see replies any more, so the connection ends
/// (the writer half, if still held, reports it on its next write).
fn closed_by_user(conn: &Conn, probe_tx: &mpsc::Sender<WriteCmd>) {
    conn.why.set("the reader half was dropped".to_owned());
    mark_closing_conn(conn);
    let _ = probe_tx.try_send(WriteCmd::Stop);
}

/// VPP is gone: tell the user, stop the writer, free the slot for a new connection.
fn gone(
    conn: &Conn,
    tx: &mpsc::UnboundedSender<Result<Vec<u8>, TransportError>>,
    probe_tx: &mpsc::Sender<WriteCmd>,
    why: String,
) {
    conn.why.set(why.clone());
    mark_closing_conn(conn);
    // A full queue means the writer is busy; it sees `dead` after its current write.
    let _ = probe_tx.try_send(WriteCmd::Stop);
    let _ = tx.send(Err(TransportError::Disconnected(why)));
}

pub(super) fn is_probe_reply(frame: &[u8], ping_reply_id: u16) -> bool {
    frame.len() >= 6
        && u16::from_be_bytes([frame[0], frame[1]]) == ping_reply_id
        && u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) == PROBE_CONTEXT
}

pub(super) fn write_loop(conn: Arc<Conn>, mut rx: mpsc::Receiver<WriteCmd>, probe: Vec<u8>) {
    while let Some(cmd) = rx.blocking_recv() {
        if conn.dead.load(Ordering::Acquire) {
            return;
        }
        let frame = match &cmd {
            WriteCmd::Frame(f) => f.as_slice(),
            WriteCmd::Probe => probe.as_slice(),
            WriteCmd::Stop => return,
        };
        let Ok(len) = c_int::try_from(frame.len()) else {
            continue;
        };
        // SAFETY: connected until `conn` drops; vac_write copies `len` bytes into a message
        // of its own (and writes client_index into bytes 2..6 of that copy).
        let rv = unsafe { conn.lib.vac_write(frame.as_ptr().cast_mut().cast(), len) };
        if rv != 0 {
            conn.why.set(format!("vac_write failed with {rv}"));
            mark_closing_conn(&conn);
            return;
        }
    }
}

/// Stops both threads and lets a new connection take the slot once they are done.
pub(super) fn mark_closing_conn(conn: &Conn) {
    conn.dead.store(true, Ordering::Release);
    mark_closing(conn.generation);
}
