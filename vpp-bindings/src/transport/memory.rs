//! An in-memory transport: the client end implements [`Transport`], the [`MemoryPeer`] end is
//! driven by a test (or an in-process simulator) that plays VPP frame by frame.
//! Frames are whole messages without the socket header.

use tokio::sync::mpsc;

use super::{FrameReader, FrameWriter, Transport, TransportError};

/// Client end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryTransport {
    to_peer: mpsc::UnboundedSender<Vec<u8>>,
    from_peer: mpsc::UnboundedReceiver<Vec<u8>>,
}

/// The far end: receives what the client wrote, sends what VPP would answer.
#[derive(Debug)]
pub struct MemoryPeer {
    from_client: mpsc::UnboundedReceiver<Vec<u8>>,
    to_client: mpsc::UnboundedSender<Vec<u8>>,
}

/// A connected pair.
pub fn pair() -> (MemoryTransport, MemoryPeer) {
    let (a_tx, a_rx) = mpsc::unbounded_channel();
    let (b_tx, b_rx) = mpsc::unbounded_channel();
    (
        MemoryTransport {
            to_peer: a_tx,
            from_peer: b_rx,
        },
        MemoryPeer {
            from_client: a_rx,
            to_client: b_tx,
        },
    )
}

impl MemoryPeer {
    /// The next frame the client wrote; `None` once the client's writer is gone.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.from_client.recv().await
    }

    /// A frame already written, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<Vec<u8>> {
        self.from_client.try_recv().ok()
    }

    /// Delivers a frame to the client; false if the client's reader is gone.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        self.to_client.send(frame).is_ok()
    }
}

impl Transport for MemoryTransport {
    type Reader = MemoryReader;
    type Writer = MemoryWriter;
    fn split(self) -> (MemoryReader, MemoryWriter) {
        (
            MemoryReader { rx: self.from_peer },
            MemoryWriter { tx: self.to_peer },
        )
    }
}

#[derive(Debug)]
pub struct MemoryReader {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl FrameReader for MemoryReader {
    async fn read_frame(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(self.rx.recv().await)
    }
}

#[derive(Debug)]
pub struct MemoryWriter {
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl FrameWriter for MemoryWriter {
    async fn write_frame(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.tx
            .send(msg.to_vec())
            .map_err(|_| TransportError::Closed)
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}
