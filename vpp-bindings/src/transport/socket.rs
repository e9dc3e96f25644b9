//! VPP's AF_UNIX API socket (`/run/vpp/api.sock`). Each message is preceded by a 16-byte
//! header whose bytes 8..12 hold the big-endian payload length; we send the rest as zeros and
//! ignore it on receive. Works for both ends, so a simulator can serve with it too.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::{FrameReader, FrameWriter, Transport, TransportError};

/// Size of the header before each message on the socket.
pub const FRAME_HEADER_LEN: usize = 16;
/// Largest message we accept; VPP's biggest replies (API JSON dumps) stay well below this.
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// The 16-byte header for a payload of `len` bytes.
pub fn frame_header(len: u32) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[8..12].copy_from_slice(&len.to_be_bytes());
    h
}

/// Payload length announced by a header.
pub fn frame_len(header: &[u8; FRAME_HEADER_LEN]) -> usize {
    u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize
}

/// An API socket connection (client or server side).
#[derive(Debug)]
pub struct SocketTransport {
    stream: UnixStream,
}

impl SocketTransport {
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| TransportError::Io {
                what: format!("connect {}", path.display()),
                source: e,
            })?;
        Ok(Self { stream })
    }

    /// Wraps an accepted or already connected stream.
    pub fn from_stream(stream: UnixStream) -> Self {
        Self { stream }
    }
}

impl Transport for SocketTransport {
    type Reader = SocketReader;
    type Writer = SocketWriter;
    fn split(self) -> (SocketReader, SocketWriter) {
        let (r, w) = self.stream.into_split();
        (
            SocketReader {
                inner: BufReader::with_capacity(64 << 10, r),
            },
            SocketWriter {
                inner: BufWriter::with_capacity(64 << 10, w),
            },
        )
    }
}

#[derive(Debug)]
pub struct SocketReader {
    inner: BufReader<OwnedReadHalf>,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> TransportError + '_ {
    move |e| TransportError::Io {
        what: what.to_owned(),
        source: e,
    }
}

impl SocketReader {
    /// Fills `buf` completely; returns how many bytes came before EOF if it ended early.
    async fn fill(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut got = 0;
        while got < buf.len() {
            let n = self
                .inner
                .read(&mut buf[got..])
                .await
                .map_err(io("read api socket"))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(got)
    }
}

impl FrameReader for SocketReader {
    async fn read_frame(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let mut header = [0u8; FRAME_HEADER_LEN];
        let got = self.fill(&mut header).await?;
        if got == 0 {
            return Ok(None);
        }
        if got < FRAME_HEADER_LEN {
            return Err(TransportError::TruncatedFrame {
                got,
                want: FRAME_HEADER_LEN,
            });
        }
        let len = frame_len(&header);
        if len > MAX_FRAME_LEN {
            return Err(TransportError::FrameTooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        let mut payload = vec![0u8; len];
        let got = self.fill(&mut payload).await?;
        if got < len {
            return Err(TransportError::TruncatedFrame { got, want: len });
        }
        Ok(Some(payload))
    }
}

#[derive(Debug)]
pub struct SocketWriter {
    inner: BufWriter<OwnedWriteHalf>,
}

impl FrameWriter for SocketWriter {
    async fn write_frame(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        let len = u32::try_from(msg.len())
            .ok()
            .filter(|&l| l as usize <= MAX_FRAME_LEN)
            .ok_or(TransportError::FrameTooLarge {
                len: msg.len(),
                max: MAX_FRAME_LEN,
            })?;
        self.inner
            .write_all(&frame_header(len))
            .await
            .map_err(io("write api socket"))?;
        self.inner
            .write_all(msg)
            .await
            .map_err(io("write api socket"))
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush().await.map_err(io("flush api socket"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_over_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let (_ar, mut aw) = SocketTransport::from_stream(a).split();
        let (mut br, _bw) = SocketTransport::from_stream(b).split();
        aw.write_frame(b"hello").await.unwrap();
        aw.write_frame(b"").await.unwrap();
        aw.flush().await.unwrap();
        assert_eq!(br.read_frame().await.unwrap().unwrap(), b"hello");
        assert_eq!(br.read_frame().await.unwrap().unwrap(), b"");
    }

    #[tokio::test]
    async fn header_has_length_in_bytes_8_to_12_and_zeros_elsewhere() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (_ar, mut aw) = SocketTransport::from_stream(a).split();
        aw.write_frame(&[7; 5]).await.unwrap();
        aw.flush().await.unwrap();
        let mut raw = [0u8; 21];
        b.read_exact(&mut raw).await.unwrap();
        assert_eq!(
            &raw[..16],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0]
        );
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_an_error_and_eof_between_frames_is_not() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (mut ar, _aw) = SocketTransport::from_stream(a).split();
        b.write_all(&frame_header(10)).await.unwrap();
        b.write_all(&[1, 2, 3]).await.unwrap();
        drop(b);
        assert!(matches!(
            ar.read_frame().await,
            Err(TransportError::TruncatedFrame { got: 3, want: 10 })
        ));

        let (c, d) = UnixStream::pair().unwrap();
        let (mut cr, _cw) = SocketTransport::from_stream(c).split();
        drop(d);
        assert!(cr.read_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_frame_header_is_refused() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (mut ar, _aw) = SocketTransport::from_stream(a).split();
        b.write_all(&frame_header(u32::MAX)).await.unwrap();
        assert!(matches!(
            ar.read_frame().await,
            Err(TransportError::FrameTooLarge { .. })
        ));
    }
}
