//! Transports carry whole API messages (frames) to and from VPP. The client sees only these
//! traits, so the AF_UNIX socket ([`socket`]), the in-memory pair for tests ([`memory`]) and
//! VPP's shared-memory API through libvppapiclient loaded at run time ([`shm`]) are
//! interchangeable. A transport never interprets message contents (shm's liveness probe
//! excepted, which it filters out before the client sees it).

pub mod memory;
pub mod shm;
pub mod socket;

use std::future::Future;

use thiserror::Error;

/// Why a transport failed.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("I/O on {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The peer closed in the middle of a frame.
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    TruncatedFrame { got: usize, want: usize },
    /// A frame header announced more than we accept.
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    FrameTooLarge { len: usize, max: usize },
    /// The other side of an in-memory transport is gone.
    #[error("peer closed")]
    Closed,
    /// VPP went away (shared memory has no EOF: found by a read error or an unanswered probe).
    #[error("VPP disconnected: {0}")]
    Disconnected(String),
    /// A frame the transport cannot carry.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
}

/// A connection that can be split into independent read and write halves, so the client can
/// keep reading replies while it is still writing a large batch.
pub trait Transport: Send + 'static {
    type Reader: FrameReader;
    type Writer: FrameWriter;
    fn split(self) -> (Self::Reader, Self::Writer);
}

pub trait FrameReader: Send + 'static {
    /// The next whole message, or `Ok(None)` when the peer closed cleanly between messages.
    fn read_frame(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;
}

pub trait FrameWriter: Send + 'static {
    /// Queues one whole message; it may sit in a buffer until [`FrameWriter::flush`].
    fn write_frame(
        &mut self,
        msg: &[u8],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;
}
