//! A minimal raw API client for the simulator's tests: frames, handshake, typed
//! request/reply through the message table the simulator hands out. Deliberately not the
//! project's client, so that these tests pin the wire behaviour on their own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use vpp_bindings::gen::memclnt::{SockclntCreate, SockclntCreateReply};
use vpp_bindings::{decode_message, encode_message, Message, MessageTable, Request};
use vpp_sim::Simulator;

pub struct Raw {
    pub s: UnixStream,
    pub table: MessageTable,
    pub client_index: u32,
    ctx: u32,
}

pub async fn frame(s: &mut UnixStream, payload: &[u8]) {
    let mut hdr = [0u8; 16];
    hdr[8..12].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    s.write_all(&hdr).await.unwrap();
    s.write_all(payload).await.unwrap();
}

/// The next frame, or `None` on EOF or after `wait`.
pub async fn read_frame(s: &mut UnixStream, wait: Duration) -> Option<Vec<u8>> {
    let mut hdr = [0u8; 16];
    match tokio::time::timeout(wait, s.read_exact(&mut hdr)).await {
        Ok(Ok(_)) => {}
        _ => return None,
    }
    let len = u32::from_be_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await.ok()?;
    Some(p)
}

pub const WAIT: Duration = Duration::from_secs(5);
pub const SHORT: Duration = Duration::from_millis(200);

impl Raw {
    pub async fn connect(path: &Path) -> Raw {
        let mut s = UnixStream::connect(path).await.unwrap();
        let req = encode_message(
            &SockclntCreate {
                name: "test".into(),
            },
            15,
            0,
            124,
        )
        .unwrap();
        frame(&mut s, &req).await;
        let rep = read_frame(&mut s, WAIT).await.expect("handshake reply");
        let (h, r) = decode_message::<SockclntCreateReply>(&rep).unwrap();
        assert_eq!(h.msg_id, 16);
        assert_eq!(h.context, 124);
        let table =
            MessageTable::from_entries(r.message_table.iter().map(|e| (e.index, e.name.clone())));
        Raw {
            s,
            table,
            client_index: r.index,
            ctx: 1000,
        }
    }

    pub async fn send<M: Message>(&mut self, m: &M) -> u32 {
        self.ctx += 1;
        let b = self.table.encode(m, self.client_index, self.ctx).unwrap();
        frame(&mut self.s, &b).await;
        self.ctx
    }

    pub async fn recv<M: Message>(&mut self) -> M {
        let b = read_frame(&mut self.s, WAIT).await.expect("a reply");
        self.table.decode::<M>(&b).unwrap().1
    }

    pub async fn call<M: Request>(&mut self, m: &M) -> M::Reply {
        let ctx = self.send(m).await;
        let b = read_frame(&mut self.s, WAIT).await.expect("a reply");
        let (h, r) = self.table.decode::<M::Reply>(&b).unwrap();
        assert_eq!(h.context, ctx);
        r
    }

    /// Sends a dump and a control_ping, returns the details before the ping reply.
    pub async fn dump<M: vpp_bindings::Dump>(&mut self, m: &M) -> Vec<M::Details> {
        use vpp_bindings::gen::memclnt::{ControlPing, ControlPingReply};
        self.send(m).await;
        self.send(&ControlPing {}).await;
        let ping = self.table.id_of::<ControlPingReply>().unwrap();
        let mut out = Vec::new();
        loop {
            let b = read_frame(&mut self.s, WAIT)
                .await
                .expect("details or ping reply");
            if u16::from_be_bytes([b[0], b[1]]) == ping {
                return out;
            }
            out.push(self.table.decode::<M::Details>(&b).unwrap().1);
        }
    }

    /// True when nothing arrives for a short while.
    pub async fn silent(&mut self) -> bool {
        read_frame(&mut self.s, SHORT).await.is_none()
    }
}

pub struct Fixture {
    pub sim: Simulator,
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let sim = Simulator::start(&path).await.unwrap();
    Fixture {
        sim,
        _dir: dir,
        path,
    }
}
