//! Felix's framing: an 8-byte little-endian length, then that many bytes of one protobuf
//! envelope, both ways. The decoder tells "need more bytes" from "these bytes are wrong";
//! it never decodes protobuf itself and never panics on any input.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::proto;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 8;

/// Default maximum frame: room for an `IPSetUpdate` of well over a million members.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 128 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(
        "frame of {len} bytes exceeds the maximum frame size of {max} bytes \
         (raise CALICO_VPP_MAX_FRAME_BYTES / --max-frame-bytes)"
    )]
    TooLarge { len: u64, max: usize },
    #[error("stream ended inside a frame ({have} of {want} bytes received)")]
    EofInFrame { have: usize, want: usize },
    #[error("I/O error on the Felix stream: {0}")]
    Io(#[from] io::Error),
}

/// Pure, incremental frame decoder over a byte buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    pub max_frame_bytes: usize,
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder { max_frame_bytes }
    }

    /// The total length (header included) of the frame at the front of `buf`, once its
    /// header is buffered.
    fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut le = [0u8; HEADER_LEN];
        le.copy_from_slice(header);
        let len = u64::from_le_bytes(le);
        if len > self.max_frame_bytes as u64 {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        // Bounded by max_frame_bytes (a usize), so the cast and the add cannot overflow
        // for any max below usize::MAX - 8.
        Ok(Some(HEADER_LEN.saturating_add(len as usize)))
    }

    /// Takes one whole frame's payload off the front of `buf`, or `None` if more bytes are
    /// needed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.frame_len(buf)? {
            Some(total) if buf.len() >= total => {
                buf.advance(HEADER_LEN);
                Ok(Some(buf.split_to(total - HEADER_LEN).freeze()))
            }
            _ => Ok(None),
        }
    }

    /// How many more bytes the frame at the front of `buf` needs (0 when unknown or none).
    pub fn missing(&self, buf: &[u8]) -> usize {
        match self.frame_len(buf) {
            Ok(Some(total)) => total.saturating_sub(buf.len()),
            _ => 0,
        }
    }

    /// Called at end of stream: leftover bytes mean the stream ended inside a frame.
    pub fn decode_eof(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let want = match self.frame_len(buf) {
            Ok(Some(total)) => total,
            _ => HEADER_LEN,
        };
        Err(FrameError::EofInFrame {
            have: buf.len(),
            want,
        })
    }
}

/// Reads frames from an async byte stream.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    decoder: FrameDecoder,
    eof: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max_frame_bytes: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(max_frame_bytes),
            eof: false,
        }
    }

    /// A frame already in the buffer, without reading: `None` means the current batch of
    /// bytes is used up.
    pub fn buffered_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.decoder.decode(&mut self.buf)
    }

    /// The next frame; `Ok(None)` at a clean end of stream (between frames).
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.eof {
                return self.decoder.decode_eof(&mut self.buf);
            }
            // Reserve what the current frame still needs in one go, so a large IP set is
            // read without repeated reallocation.
            let want = self.decoder.missing(&self.buf).max(64 * 1024);
            self.buf.reserve(want);
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                self.eof = true;
            }
        }
    }
}

/// Encodes one `FromDataplane` as a frame.
pub fn encode_frame(msg: &proto::FromDataplane) -> Bytes {
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(HEADER_LEN + len);
    out.put_u64_le(len as u64);
    // Cannot fail: the buffer has exactly the capacity the message needs.
    let _ = msg.encode(&mut out);
    out.freeze()
}

/// Decodes one frame's `ToDataplane`, and says whether it carried bytes this build does not
/// decode: prost skips unknown fields, and a re-encoding shorter than the frame is the sign
/// (not proof: an empty map value that Go writes out also re-encodes shorter).
pub fn decode_to_dataplane(frame: &[u8]) -> Result<(proto::ToDataplane, bool), prost::DecodeError> {
    let msg = proto::ToDataplane::decode(frame)?;
    let unknown_fields = msg.encoded_len() < frame.len();
    Ok((msg, unknown_fields))
}

/// Encodes one `ToDataplane` as a frame (the scripted Felix and tests use this).
pub fn encode_to_dataplane(msg: &proto::ToDataplane) -> Bytes {
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(HEADER_LEN + len);
    out.put_u64_le(len as u64);
    let _ = msg.encode(&mut out);
    out.freeze()
}

/// Writes already-encoded frames.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn partial_header_and_partial_body_need_more_bytes() {
        let d = FrameDecoder::new(1024);
        let whole = frame(b"hello");
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert!(d.decode(&mut buf).unwrap().is_none(), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        let mut buf = BytesMut::from(&whole[..]);
        assert_eq!(&d.decode(&mut buf).unwrap().unwrap()[..], b"hello");
        assert!(buf.is_empty());
    }

    #[test]
    fn length_above_limit_is_an_error_naming_the_limit() {
        let d = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&101u64.to_le_bytes()[..]);
        let err = d.decode(&mut buf).unwrap_err();
        assert!(
            err.to_string().contains("maximum frame size of 100 bytes"),
            "{err}"
        );
        let mut buf = BytesMut::from(&u64::MAX.to_le_bytes()[..]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn eof_inside_a_frame_is_an_error_and_between_frames_is_clean() {
        let d = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&frame(b"abc")[..5]);
        assert!(matches!(
            d.decode_eof(&mut buf),
            Err(FrameError::EofInFrame { have: 5, want: 8 })
        ));
        let mut buf = BytesMut::from(&frame(b"abc")[..10]);
        assert!(matches!(
            d.decode_eof(&mut buf),
            Err(FrameError::EofInFrame { have: 10, want: 11 })
        ));
        let mut buf = BytesMut::new();
        assert!(d.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn empty_frame_is_a_frame() {
        let d = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&frame(b"")[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn reader_yields_frames_then_clean_eof() {
        let mut bytes = frame(b"one");
        bytes.extend(frame(&vec![7u8; 200_000]));
        let mut r = FrameReader::new(&bytes[..], 1 << 20);
        assert_eq!(&r.next_frame().await.unwrap().unwrap()[..], b"one");
        assert_eq!(r.next_frame().await.unwrap().unwrap().len(), 200_000);
        assert!(r.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reader_reports_truncated_stream() {
        let bytes = frame(b"truncated");
        let mut r = FrameReader::new(&bytes[..bytes.len() - 1], 1024);
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::EofInFrame { .. })
        ));
    }
}
