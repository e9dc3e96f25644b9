//! VPP's shared-memory API through its C client, `libvppapiclient.so`, loaded at run time so
//! that nothing needs VPP to build or run until this transport is asked for.
//!
//! The library keeps one connection per process, so this is a process-wide singleton: a second
//! connect while one is live is [`ShmError::AlreadyConnected`]. Its calls block, so they run on
//! dedicated threads, never on a tokio worker: by default the library's own receive thread
//! hands each message to a callback ([`Receive::Callback`]); [`Receive::Read`] has a thread
//! of ours wait in `vac_read` instead (slower: each call wakes the library's timeout thread).
//! `vac_write` runs on a writer thread of ours.
//! Frames are the bare message (u16 id first), exactly what the socket transport carries after
//! its 16-byte header; `vac_write` fills in `client_index` (bytes 2..6) itself, so only
//! requests may be written. VPP dying is not signalled by shared memory: when nothing arrives
//! for a while the reader probes with a `control_ping` and reports
//! [`TransportError::Disconnected`] when even that stays unanswered.

#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    clippy::all,
    clippy::pedantic
)]
#[rustfmt::skip]
mod vac_sys;

mod io;
mod library;
mod slot;

pub use slot::wait_released;

use std::ffi::{c_int, c_uchar, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::{FrameReader, FrameWriter, Transport, TransportError};
use crate::gen::memclnt::{ControlPing, ControlPingReply};
use crate::message::{encode_message, Message, MessageTable};
use io::{
    mark_closing_conn, on_message, read_loop, sink, touch_rx, watch_loop, write_loop, Conn,
    FrameTx, Why, WriteCmd, PING_REPLY_ID,
};
use library::{load_any, LIBRARY_DIRS};
use slot::{claim_slot, mark_closing, slot, Slot};
use vac_sys::VppApiClient;

/// The library's name for the dynamic loader when no path is configured.
pub const DEFAULT_LIBRARY: &str = "libvppapiclient.so";

/// Context of the transport's own liveness probes; the client numbers its requests from 1
/// and never gets this far.
const PROBE_CONTEXT: u32 = 0xffff_fffe;

/// `vac_read`'s timeout, in seconds (its unit): how often the reader looks up from waiting.
const READ_TICK_SECS: u16 = 1;

/// Why the shared-memory transport could not connect.
#[derive(Debug, Error)]
pub enum ShmError {
    #[error("cannot load {library} (is VPP's libvppapiclient installed?): {reason}")]
    LibraryMissing { library: String, reason: String },
    #[error(
        "VPP API segment {} is missing: is VPP running with api-segment {{ prefix {} }}?",
        path.display(), prefix.as_deref().unwrap_or("<none>")
    )]
    SegmentMissing {
        prefix: Option<String>,
        path: PathBuf,
    },
    #[error("libvppapiclient allows one connection per process and it is in use{detail}")]
    AlreadyConnected { detail: &'static str },
    #[error("vac_connect to API segment prefix {} failed with {code}", prefix.as_deref().unwrap_or("<none>"))]
    ConnectFailed { prefix: Option<String>, code: i32 },
    #[error("VPP's message table lacks {0}, which the transport needs")]
    MissingMessage(&'static str),
    #[error("{0}")]
    Thread(String),
}

/// How messages from VPP are received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    /// `vac_connect` with a callback: the library's receive thread calls us per message; a
    /// watchdog thread of ours probes and declares VPP gone.
    Callback,
    /// A thread of ours loops on `vac_read` with a 1 s timeout.
    Read,
}

/// How to reach VPP over shared memory.
#[derive(Debug, Clone)]
pub struct ShmConfig {
    /// Path of `libvppapiclient.so`; `None`: `$VPP_API_CLIENT_LIB`, else the dynamic loader's
    /// search path, else `libvppapiclient.so.<version>` in the usual library directories.
    pub library: Option<PathBuf>,
    /// `api-segment { prefix NAME }` of the VPP to reach; `None` for VPP's default.
    pub prefix: Option<String>,
    /// Where VPP's segments live.
    pub shm_dir: PathBuf,
    /// Client name VPP shows in `show api clients`.
    pub name: String,
    /// Length of our input queue in VPP's segment.
    pub rx_qlen: i32,
    pub receive: Receive,
    /// After this long without a message, probe with a `control_ping`.
    pub probe_after: Duration,
    /// After this long without any message (probe answers included), VPP is gone.
    pub dead_after: Duration,
    /// How long a connect waits for the previous connection's teardown.
    pub teardown_wait: Duration,
}

impl Default for ShmConfig {
    fn default() -> Self {
        Self {
            library: None,
            prefix: None,
            shm_dir: PathBuf::from("/dev/shm"),
            name: "vpp-bindings".to_owned(),
            rx_qlen: 4096,
            receive: Receive::Callback,
            probe_after: Duration::from_secs(1),
            dead_after: Duration::from_secs(4),
            teardown_wait: Duration::from_secs(5),
        }
    }
}

impl ShmConfig {
    /// Where to load the library from, in order: the configured path alone if any, else
    /// `$VPP_API_CLIENT_LIB` alone if set, else the loader's search path and then the
    /// versioned file (`libvppapiclient.so.<version>`, which VPP's runtime package installs
    /// without the unversioned link) in the usual library directories.
    fn library_candidates(&self) -> Vec<PathBuf> {
        if let Some(p) = self
            .library
            .clone()
            .or_else(|| std::env::var_os("VPP_API_CLIENT_LIB").map(PathBuf::from))
        {
            return vec![p];
        }
        let mut out = vec![PathBuf::from(DEFAULT_LIBRARY)];
        for dir in LIBRARY_DIRS {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut versioned: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libvppapiclient.so."))
                })
                .collect();
            versioned.sort();
            out.extend(versioned.into_iter().rev());
        }
        out
    }

    /// The API segment file VPP creates (`/dev/shm/<prefix>-vpe-api`). `vac_connect` waits
    /// 100 s for it to appear, so it is checked first.
    pub fn segment_path(&self) -> PathBuf {
        let name = match &self.prefix {
            Some(p) => format!("{p}-vpe-api"),
            None => "vpe-api".to_owned(),
        };
        self.shm_dir.join(name)
    }
}

/// Held by the reader half: once it is dropped the connection starts closing (its threads
/// notice within a tick and run `vac_disconnect`).
#[derive(Debug)]
struct Handle {
    generation: u64,
}

impl Drop for Handle {
    fn drop(&mut self) {
        mark_closing(self.generation);
    }
}

/// A live shared-memory connection, not yet split.
#[derive(Debug)]
pub struct ShmTransport {
    reader: ShmReader,
    writer: ShmWriter,
    table: MessageTable,
}

impl ShmTransport {
    /// Maps VPP's API segment and registers with `vac_connect`, then resolves the id of every
    /// generated message by `name_crc` (`vac_get_msg_index`) into [`ShmTransport::message_table`].
    pub async fn connect(config: ShmConfig) -> Result<Self, ShmError> {
        let segment = config.segment_path();
        if !segment.exists() {
            return Err(ShmError::SegmentMissing {
                prefix: config.prefix.clone(),
                path: segment,
            });
        }
        let generation = claim_slot(&config).await?;
        let res = Self::connect_claimed(config, generation).await;
        // Still `Connecting` unless the connection came up and is already closing, in which
        // case its threads free the slot.
        let mut s = slot();
        if *s == Slot::Connecting(generation) {
            *s = if res.is_ok() {
                Slot::Live(generation)
            } else {
                Slot::Idle
            };
        }
        res
    }

    async fn connect_claimed(config: ShmConfig, generation: u64) -> Result<Self, ShmError> {
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let sink_tx = frames_tx.clone();
        let (tx, rx) = oneshot::channel();
        let cfg = config.clone();
        std::thread::Builder::new()
            .name("vpp-shm-connect".into())
            .spawn(move || {
                let res = blocking_connect(&cfg, sink_tx);
                if let Err(unsent) = tx.send(res) {
                    // The caller stopped waiting (its future was dropped): undo.
                    if let Ok(c) = unsent {
                        // SAFETY: connected, and no thread of ours uses the connection.
                        unsafe { c.lib.vac_disconnect() };
                        *sink() = None;
                    }
                    let mut s = slot();
                    if *s == Slot::Connecting(generation) {
                        *s = Slot::Idle;
                    }
                }
            })
            .map_err(|e| ShmError::Thread(format!("spawn connect thread: {e}")))?;
        let Connected {
            lib,
            table,
            ping_reply_id,
            probe,
        } = rx
            .await
            .map_err(|_| ShmError::Thread("connect thread died".into()))??;

        let why = Arc::new(Why::default());
        let conn = Arc::new(Conn {
            lib,
            generation,
            why: why.clone(),
            dead: AtomicBool::new(false),
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let probe_tx = cmd_tx.clone();
        let c = conn.clone();
        let cfg = config.clone();
        PING_REPLY_ID.store(u32::from(ping_reply_id), Ordering::Release);
        touch_rx();
        let spawned = match config.receive {
            Receive::Callback => std::thread::Builder::new()
                .name("vpp-shm-watch".into())
                .spawn(move || watch_loop(c, frames_tx, probe_tx, &cfg)),
            Receive::Read => std::thread::Builder::new()
                .name("vpp-shm-read".into())
                .spawn(move || read_loop(c, frames_tx, probe_tx, ping_reply_id, &cfg)),
        };
        if let Err(e) = spawned {
            // The connection is up: let a thread of ours take it down.
            std::thread::spawn(move || {
                mark_closing_conn(&conn);
                drop(conn)
            });
            return Err(ShmError::Thread(format!("spawn reader thread: {e}")));
        }
        let c = conn.clone();
        let spawned = std::thread::Builder::new()
            .name("vpp-shm-write".into())
            .spawn(move || write_loop(c, cmd_rx, probe));
        if let Err(e) = spawned {
            // The reader thread sees `dead`, stops, and the connection goes down with it.
            mark_closing_conn(&conn);
            return Err(ShmError::Thread(format!("spawn writer thread: {e}")));
        }
        debug!(
            prefix = config.prefix.as_deref().unwrap_or(""),
            messages = table.len(),
            "connected to VPP API over shared memory"
        );
        Ok(Self {
            reader: ShmReader {
                rx: frames_rx,
                why: why.clone(),
                _handle: Handle { generation },
            },
            writer: ShmWriter { tx: cmd_tx, why },
            table,
        })
    }

    /// VPP's ids for every generated message it has with our CRC.
    pub fn message_table(&self) -> &MessageTable {
        &self.table
    }
}

/// What a successful `vac_connect` yields.
struct Connected {
    lib: &'static VppApiClient,
    table: MessageTable,
    ping_reply_id: u16,
    /// The liveness probe, encoded once.
    probe: Vec<u8>,
}

fn blocking_connect(cfg: &ShmConfig, frames: FrameTx) -> Result<Connected, ShmError> {
    let lib = load_any(&cfg.library_candidates())?;
    let name = CString::new(cfg.name.replace('\0', "")).unwrap_or_default();
    let prefix = cfg
        .prefix
        .as_ref()
        .map(|p| CString::new(p.replace('\0', "")).unwrap_or_default());
    let prefix_ptr = prefix
        .as_ref()
        .map_or(std::ptr::null_mut(), |p| p.as_ptr().cast_mut());
    let callback = match cfg.receive {
        Receive::Callback => {
            *sink() = Some(frames);
            Some(on_message as unsafe extern "C" fn(*mut c_uchar, c_int))
        }
        Receive::Read => None,
    };
    // SAFETY: both strings outlive the call and are only read. With a callback, the
    // library's receive thread calls on_message until vac_disconnect.
    let rv =
        unsafe { lib.vac_connect(name.as_ptr().cast_mut(), prefix_ptr, callback, cfg.rx_qlen) };
    if rv != 0 {
        *sink() = None;
        return Err(ShmError::ConnectFailed {
            prefix: cfg.prefix.clone(),
            code: rv,
        });
    }
    let mut table = MessageTable::new();
    for m in crate::all_messages() {
        let Ok(nc) = CString::new(m.name_crc) else {
            continue;
        };
        // SAFETY: connected; the name is read only.
        let id = unsafe { lib.vac_get_msg_index(nc.as_ptr().cast_mut()) };
        if let Ok(id) = u16::try_from(id) {
            if id != u16::MAX {
                table.insert(id, m.name_crc);
            }
        }
    }
    let ids = (
        table.id_of::<ControlPing>(),
        table.id_of::<ControlPingReply>(),
    );
    let (Some(ping_id), Some(ping_reply_id)) = ids else {
        // SAFETY: connected, and no other thread uses the connection yet.
        unsafe { lib.vac_disconnect() };
        *sink() = None;
        let missing = match ids.0 {
            None => ControlPing::NAME_CRC,
            Some(_) => ControlPingReply::NAME_CRC,
        };
        return Err(ShmError::MissingMessage(missing));
    };
    let probe = encode_message(&ControlPing {}, ping_id, 0, PROBE_CONTEXT)
        .expect("control_ping has no fields that can fail to encode");
    Ok(Connected {
        lib,
        table,
        ping_reply_id,
        probe,
    })
}

impl Transport for ShmTransport {
    type Reader = ShmReader;
    type Writer = ShmWriter;
    fn split(self) -> (ShmReader, ShmWriter) {
        (self.reader, self.writer)
    }
}

#[derive(Debug)]
pub struct ShmReader {
    rx: mpsc::UnboundedReceiver<Result<Vec<u8>, TransportError>>,
    why: Arc<Why>,
    _handle: Handle,
}

impl FrameReader for ShmReader {
    async fn read_frame(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        match self.rx.recv().await {
            Some(r) => r.map(Some),
            None => Err(TransportError::Disconnected(self.why.get())),
        }
    }
}

#[derive(Debug)]
pub struct ShmWriter {
    tx: mpsc::Sender<WriteCmd>,
    why: Arc<Why>,
}

/// `vac_write` stores the client index into bytes 2..6 of its copy, so it needs at least
/// the request header.
const MIN_FRAME_LEN: usize = 6;

impl FrameWriter for ShmWriter {
    async fn write_frame(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        if msg.len() < MIN_FRAME_LEN {
            return Err(TransportError::InvalidFrame(format!(
                "{} bytes is shorter than a request header ({MIN_FRAME_LEN})",
                msg.len()
            )));
        }
        self.tx
            .send(WriteCmd::Frame(msg.to_vec()))
            .await
            .map_err(|_| TransportError::Disconnected(self.why.get()))
    }

    /// Every frame goes to VPP as soon as the writer thread takes it.
    async fn flush(&mut self) -> Result<(), TransportError> {
        if self.tx.is_closed() {
            return Err(TransportError::Disconnected(self.why.get()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::io::is_probe_reply;
    use super::library::library;
    use super::*;

    fn absent_library() -> ShmConfig {
        ShmConfig {
            library: Some(PathBuf::from("/nonexistent/libvppapiclient.so")),
            ..ShmConfig::default()
        }
    }

    #[test]
    fn missing_library_is_a_typed_error() {
        let Err(e) = library(Path::new("/nonexistent/libvppapiclient.so")) else {
            panic!("a library that does not exist loaded");
        };
        assert!(matches!(e, ShmError::LibraryMissing { .. }), "{e}");
        assert!(
            e.to_string().contains("/nonexistent/libvppapiclient.so"),
            "{e}"
        );
    }

    #[test]
    fn segment_path_follows_the_prefix() {
        let mut c = ShmConfig::default();
        assert_eq!(c.segment_path(), Path::new("/dev/shm/vpe-api"));
        c.prefix = Some("test1".into());
        assert_eq!(c.segment_path(), Path::new("/dev/shm/test1-vpe-api"));
    }

    #[tokio::test]
    async fn missing_segment_fails_fast_and_frees_the_slot() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ShmConfig {
            shm_dir: dir.path().to_owned(),
            prefix: Some("nobody".into()),
            ..absent_library()
        };
        for _ in 0..2 {
            let e = ShmTransport::connect(cfg.clone()).await.unwrap_err();
            assert!(matches!(e, ShmError::SegmentMissing { .. }), "{e}");
        }
    }

    #[tokio::test]
    async fn missing_library_fails_connect_and_frees_the_slot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vpe-api"), b"").unwrap();
        let cfg = ShmConfig {
            shm_dir: dir.path().to_owned(),
            ..absent_library()
        };
        for _ in 0..2 {
            let e = ShmTransport::connect(cfg.clone()).await.unwrap_err();
            assert!(matches!(e, ShmError::LibraryMissing { .. }), "{e}");
        }
    }

    #[test]
    fn probe_replies_are_recognised_by_id_and_context() {
        let mut f = vec![0, 42];
        f.extend_from_slice(&PROBE_CONTEXT.to_be_bytes());
        f.extend_from_slice(&[0; 12]);
        assert!(is_probe_reply(&f, 42));
        assert!(!is_probe_reply(&f, 43));
        f[5] = 1;
        assert!(!is_probe_reply(&f, 42));
        assert!(!is_probe_reply(&[0, 42], 42));
    }
}
