//! Async VPP API client over any [`Transport`]: request/reply matched by `context`,
//! pipelined batches closed by one `control_ping`, dumps, events, and a timeout on every wait
//! that marks the connection broken (VPP never answers a message it cannot take).
//! A reader task runs for the whole connection, so replies are drained while a big batch is
//! still being written. Never retries on its own: that is the caller's policy.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::codec::{DecodeError, EncodeError};
use crate::compat::{self, CompatReport};
use crate::errno::error_name;
use crate::gen::memclnt::{
    ControlPing, ControlPingReply, MemclntKeepalive, MemclntKeepaliveReply, SockclntCreate,
    SockclntCreateReply, SockclntDelete, SockclntDeleteReply,
};
use crate::message::{
    decode_message, encode_message, peek_context, peek_msg_id, Dump, HeaderKind, Message,
    MessageInfo, MessageTable, Request, Subscribe, SOCKCLNT_CREATE_MSG_ID,
    SOCKCLNT_CREATE_REPLY_MSG_ID,
};
use crate::transport::shm::{ShmConfig, ShmError, ShmTransport};
use crate::transport::socket::SocketTransport;
use crate::transport::{FrameReader, FrameWriter, Transport, TransportError};

/// Everything that can go wrong talking to VPP. Each variant names the message concerned.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The shared-memory transport could not connect (library or API segment missing, the
    /// process already connected, ...).
    #[error("shared-memory API: {0}")]
    Shm(#[from] ShmError),
    #[error("encoding {msg}: {source}")]
    Encode {
        msg: &'static str,
        source: EncodeError,
    },
    #[error("decoding reply to {msg}: {source}")]
    Decode {
        msg: &'static str,
        source: DecodeError,
    },
    /// VPP answered with a negative `retval`.
    #[error("{msg}: VPP error {code} ({})", name.unwrap_or("unknown error"))]
    Vpp {
        msg: &'static str,
        code: i32,
        name: Option<&'static str>,
    },
    #[error("{msg}: no reply within {timeout:?}; connection marked broken")]
    Timeout {
        msg: &'static str,
        timeout: Duration,
    },
    /// VPP answered the batch's closing `control_ping` but never this request.
    #[error("{msg}: VPP sent no reply (it answered a later control_ping)")]
    NoReply { msg: &'static str },
    #[error("{msg}: VPP does not have {name_crc} in its message table")]
    NotSupported {
        msg: &'static str,
        name_crc: &'static str,
    },
    #[error("{msg}: unexpected reply message id {got}")]
    UnexpectedReply { msg: &'static str, got: u16 },
    #[error("connection broken: {0}")]
    Broken(String),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("VPP is incompatible with these bindings:\n{0}")]
    Incompatible(Box<CompatReport>),
}

/// Where VPP puts its API socket by default (`socksvr { default }` in startup.conf).
pub const DEFAULT_SOCKET: &str = "/run/vpp/api.sock";

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Client name VPP shows in `show api clients`.
    pub name: String,
    /// Longest wait for any reply (a batch gets this plus [`ClientConfig::per_message`] each).
    pub request_timeout: Duration,
    pub per_message: Duration,
    /// Messages that must be in VPP's table with our CRC; connect fails listing every
    /// mismatch. Empty: no check (e.g. to print a report with [`compat::check`]).
    pub required: Vec<MessageInfo>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            name: "vpp-bindings".to_owned(),
            request_timeout: Duration::from_secs(10),
            per_message: Duration::from_millis(1),
            required: Vec::new(),
        }
    }
}

/// How the client is registered with VPP, which decides how [`Client::close`] unregisters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    /// `sockclnt_create`; undone with `sockclnt_delete`.
    Socket,
    /// `vac_connect`; undone by the transport (`vac_disconnect`) when its threads stop.
    Shm,
}

/// Context used by the handshake, before the client is registered.
const HANDSHAKE_CONTEXT: u32 = 0x5eed;

type FrameResult = Result<Vec<u8>, ClientError>;

enum Pending {
    One {
        msg: &'static str,
        tx: oneshot::Sender<FrameResult>,
    },
    /// A dump: details share the dump's context; the control_ping_reply with the same context
    /// closes it.
    Stream {
        frames: Vec<Vec<u8>>,
        tx: oneshot::Sender<Result<Vec<Vec<u8>>, ClientError>>,
    },
    /// A batch's closing ping: when it is answered, every listed context still pending got
    /// no reply.
    Barrier {
        contexts: Vec<u32>,
        tx: oneshot::Sender<()>,
    },
}

struct Shared {
    pending: HashMap<u32, Pending>,
    events: HashMap<u16, Vec<mpsc::UnboundedSender<Vec<u8>>>>,
    broken: Option<String>,
}

struct Inner {
    table: MessageTable,
    /// Header layout of every message id we have bindings for.
    kinds: HashMap<u16, HeaderKind>,
    client_index: u32,
    registration: Registration,
    ping_reply_id: u16,
    keepalive_id: Option<u16>,
    next_context: AtomicU32,
    to_writer: mpsc::Sender<Vec<u8>>,
    shared: Mutex<Shared>,
    config: ClientConfig,
    /// Stops the reader task when sent to or dropped.
    shutdown: watch::Sender<()>,
}

/// A connection to VPP's binary API. Cheap to clone; all clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_index", &self.inner.client_index)
            .field("messages", &self.inner.table.len())
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the connection, so keep going with the data.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn context(&self) -> u32 {
        self.next_context.fetch_add(1, Ordering::Relaxed)
    }

    fn check_broken(&self) -> Result<(), ClientError> {
        match &self.lock().broken {
            Some(why) => Err(ClientError::Broken(why.clone())),
            None => Ok(()),
        }
    }

    /// Marks the connection unusable and fails everything waiting on it.
    fn fail_all(&self, why: String) {
        let mut s = self.lock();
        if s.broken.is_none() {
            warn!(reason = %why, "VPP API connection broken");
            s.broken = Some(why.clone());
        }
        for (_, p) in s.pending.drain() {
            match p {
                Pending::One { tx, .. } => {
                    let _ = tx.send(Err(ClientError::Broken(why.clone())));
                }
                Pending::Stream { tx, .. } => {
                    let _ = tx.send(Err(ClientError::Broken(why.clone())));
                }
                Pending::Barrier { tx, .. } => drop(tx),
            }
        }
        s.events.clear();
    }

    fn dispatch(&self, frame: Vec<u8>) {
        let Ok(id) = peek_msg_id(&frame) else {
            warn!(
                len = frame.len(),
                "VPP sent a frame too short for a message id"
            );
            return;
        };
        let Some(kind) = self.kinds.get(&id).copied() else {
            debug!(msg_id = id, "dropping message we have no bindings for");
            return;
        };
        let context = match peek_context(&frame, kind) {
            Ok(Some(c)) => c,
            Ok(None) => return self.dispatch_event(id, frame),
            Err(e) => {
                warn!(msg_id = id, error = %e, "dropping malformed message header");
                return;
            }
        };
        if Some(id) == self.keepalive_id {
            return self.answer_keepalive(context);
        }
        let mut s = self.lock();
        match s.pending.remove(&context) {
            Some(Pending::One { tx, .. }) => {
                let _ = tx.send(Ok(frame));
            }
            Some(Pending::Stream { mut frames, tx }) => {
                if id == self.ping_reply_id {
                    let _ = tx.send(Ok(frames));
                } else {
                    frames.push(frame);
                    s.pending.insert(context, Pending::Stream { frames, tx });
                }
            }
            Some(Pending::Barrier { contexts, tx }) => {
                for c in contexts {
                    if let Some(Pending::One { msg, tx }) = s.pending.remove(&c) {
                        let _ = tx.send(Err(ClientError::NoReply { msg }));
                    }
                }
                let _ = tx.send(());
            }
            None => debug!(msg_id = id, context, "reply for no pending request (late?)"),
        }
    }

    /// VPP pings clients it has not heard from; an unanswered client may be reaped.
    fn answer_keepalive(&self, context: u32) {
        let Some(id) = self.table.id_of::<MemclntKeepaliveReply>() else {
            return;
        };
        match encode_message(&MemclntKeepaliveReply { retval: 0 }, id, 0, context) {
            Ok(f) => {
                if self.to_writer.try_send(f).is_err() {
                    warn!("could not queue memclnt_keepalive_reply");
                }
            }
            Err(e) => warn!(error = %e, "could not encode memclnt_keepalive_reply"),
        }
    }

    fn dispatch_event(&self, id: u16, frame: Vec<u8>) {
        let mut s = self.lock();
        if let Some(subs) = s.events.get_mut(&id) {
            subs.retain(|tx| tx.send(frame.clone()).is_ok());
        } else {
            debug!(msg_id = id, "event with no subscriber");
        }
    }

    fn msg_id<M: Message>(&self) -> Result<u16, ClientError> {
        self.table.id_of::<M>().ok_or(ClientError::NotSupported {
            msg: M::NAME,
            name_crc: M::NAME_CRC,
        })
    }

    fn encode<M: Message>(&self, msg: &M, context: u32) -> Result<Vec<u8>, ClientError> {
        let id = self.msg_id::<M>()?;
        encode_message(msg, id, self.client_index, context).map_err(|e| ClientError::Encode {
            msg: M::NAME,
            source: e,
        })
    }

    async fn send_frames(&self, frames: Vec<Vec<u8>>) -> Result<(), ClientError> {
        for f in frames {
            self.to_writer
                .send(f)
                .await
                .map_err(|_| ClientError::Broken("writer stopped".to_owned()))?;
        }
        Ok(())
    }

    fn timed_out(&self, msg: &'static str, timeout: Duration, contexts: &[u32]) -> ClientError {
        {
            let mut s = self.lock();
            for c in contexts {
                s.pending.remove(c);
            }
        }
        self.fail_all(format!("no reply to {msg} within {timeout:?}"));
        ClientError::Timeout { msg, timeout }
    }
}

/// Decodes a reply frame as `R`, checking its id and turning a negative retval into an error.
fn decode_reply<R: Message>(
    table: &MessageTable,
    request: &'static str,
    frame: &[u8],
) -> Result<R, ClientError> {
    let got = peek_msg_id(frame).map_err(|e| ClientError::Decode {
        msg: request,
        source: e,
    })?;
    if Some(got) != table.id_of::<R>() {
        return Err(ClientError::UnexpectedReply { msg: request, got });
    }
    let (_, reply) = decode_message::<R>(frame).map_err(|e| ClientError::Decode {
        msg: request,
        source: e,
    })?;
    match reply.retval() {
        Some(code) if code < 0 => Err(ClientError::Vpp {
            msg: request,
            code,
            name: error_name(code),
        }),
        _ => Ok(reply),
    }
}

async fn reader_task<R: FrameReader>(
    mut reader: R,
    inner: Weak<Inner>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let frame = tokio::select! {
            f = reader.read_frame() => f,
            _ = shutdown.changed() => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        match frame {
            Ok(Some(frame)) => inner.dispatch(frame),
            Ok(None) => return inner.fail_all("VPP closed the API connection".to_owned()),
            Err(e) => return inner.fail_all(format!("read failed: {e}")),
        }
    }
}

async fn writer_task<W: FrameWriter>(
    mut writer: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    inner: Weak<Inner>,
) {
    while let Some(frame) = rx.recv().await {
        let mut res = writer.write_frame(&frame).await;
        // Coalesce whatever is already queued into one flush.
        while res.is_ok() {
            match rx.try_recv() {
                Ok(f) => res = writer.write_frame(&f).await,
                Err(_) => break,
            }
        }
        if res.is_ok() {
            res = writer.flush().await;
        }
        if let Err(e) = res {
            if let Some(inner) = inner.upgrade() {
                inner.fail_all(format!("write failed: {e}"));
            }
            return;
        }
    }
}

impl Client {
    /// Connects to VPP's API socket (e.g. `/run/vpp/api.sock`).
    pub async fn connect(
        path: impl AsRef<Path>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let t = SocketTransport::connect(path).await?;
        Self::connect_with(t, config).await
    }

    /// Runs the `sockclnt_create` handshake over any transport, then the compatibility check
    /// of `config.required`.
    pub async fn connect_with<T: Transport>(
        transport: T,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let (mut reader, mut writer) = transport.split();
        let hello = SockclntCreate {
            name: config.name.clone(),
        };
        let frame =
            encode_message(&hello, SOCKCLNT_CREATE_MSG_ID, 0, HANDSHAKE_CONTEXT).map_err(|e| {
                ClientError::Encode {
                    msg: SockclntCreate::NAME,
                    source: e,
                }
            })?;
        writer.write_frame(&frame).await?;
        writer.flush().await?;
        let reply = tokio::time::timeout(config.request_timeout, reader.read_frame())
            .await
            .map_err(|_| ClientError::Timeout {
                msg: SockclntCreate::NAME,
                timeout: config.request_timeout,
            })??
            .ok_or_else(|| ClientError::Handshake("VPP closed the socket".to_owned()))?;
        let id = peek_msg_id(&reply).map_err(|e| ClientError::Decode {
            msg: SockclntCreate::NAME,
            source: e,
        })?;
        if id != SOCKCLNT_CREATE_REPLY_MSG_ID {
            return Err(ClientError::Handshake(format!(
                "expected sockclnt_create_reply (id {SOCKCLNT_CREATE_REPLY_MSG_ID}), got id {id}"
            )));
        }
        let (_, created) =
            decode_message::<SockclntCreateReply>(&reply).map_err(|e| ClientError::Decode {
                msg: SockclntCreate::NAME,
                source: e,
            })?;
        if created.response < 0 {
            return Err(ClientError::Vpp {
                msg: SockclntCreate::NAME,
                code: created.response,
                name: error_name(created.response),
            });
        }
        let table = MessageTable::from_entries(
            created.message_table.into_iter().map(|e| (e.index, e.name)),
        );
        Self::start(
            reader,
            writer,
            table,
            created.index,
            Registration::Socket,
            config,
        )
    }

    /// Connects over VPP's shared-memory API (`api-segment { prefix .. }`; `None` for VPP's
    /// default segment) through `libvppapiclient.so` (see [`ShmConfig::library`]). One such
    /// connection per process: a second is [`ShmError::AlreadyConnected`].
    pub async fn connect_shm(
        prefix: Option<&str>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let shm = ShmConfig {
            prefix: prefix.map(str::to_owned),
            name: config.name.clone(),
            ..ShmConfig::default()
        };
        Self::connect_shm_with(shm, config).await
    }

    /// [`Client::connect_shm`] with every transport setting.
    pub async fn connect_shm_with(
        shm: ShmConfig,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let transport = ShmTransport::connect(shm).await?;
        // There is no sockclnt_create on shared memory: the table is what vac_get_msg_index
        // resolved for our messages, and VPP tells the client index in a control_ping_reply.
        let table = transport.message_table().clone();
        let (mut reader, mut writer) = transport.split();
        let ping_id = table
            .id_of::<ControlPing>()
            .ok_or(ClientError::NotSupported {
                msg: ControlPing::NAME,
                name_crc: ControlPing::NAME_CRC,
            })?;
        let reply_id = table
            .id_of::<ControlPingReply>()
            .ok_or(ClientError::NotSupported {
                msg: ControlPing::NAME,
                name_crc: ControlPingReply::NAME_CRC,
            })?;
        let ping = encode_message(&ControlPing {}, ping_id, 0, HANDSHAKE_CONTEXT).map_err(|e| {
            ClientError::Encode {
                msg: ControlPing::NAME,
                source: e,
            }
        })?;
        writer.write_frame(&ping).await?;
        writer.flush().await?;
        let wait = async {
            loop {
                let Some(f) = reader.read_frame().await? else {
                    return Err(ClientError::Handshake("VPP closed the connection".into()));
                };
                if peek_msg_id(&f).ok() != Some(reply_id) {
                    continue;
                }
                let (_, r) =
                    decode_message::<ControlPingReply>(&f).map_err(|e| ClientError::Decode {
                        msg: ControlPing::NAME,
                        source: e,
                    })?;
                if f.len() >= 6 && u32::from_be_bytes([f[2], f[3], f[4], f[5]]) == HANDSHAKE_CONTEXT
                {
                    return Ok(r);
                }
            }
        };
        let pong = tokio::time::timeout(config.request_timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout {
                msg: ControlPing::NAME,
                timeout: config.request_timeout,
            })??;
        Self::start(
            reader,
            writer,
            table,
            pong.client_index,
            Registration::Shm,
            config,
        )
    }

    /// Checks compatibility and starts the connection's reader and writer tasks.
    fn start<R: FrameReader, W: FrameWriter>(
        reader: R,
        writer: W,
        table: MessageTable,
        client_index: u32,
        registration: Registration,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let report = compat::check_table(&table, &config.required, None);
        if !report.is_compatible() {
            return Err(ClientError::Incompatible(Box::new(report)));
        }
        let need = |nc: &'static str, msg| {
            table
                .id(nc)
                .ok_or(ClientError::NotSupported { msg, name_crc: nc })
        };
        need(ControlPing::NAME_CRC, ControlPing::NAME)?;
        let ping_reply_id = need(ControlPingReply::NAME_CRC, ControlPing::NAME)?;
        let by_name_crc: HashMap<&str, &MessageInfo> =
            crate::all_messages().map(|m| (m.name_crc, m)).collect();
        let kinds = table
            .entries()
            .into_iter()
            .filter_map(|(id, nc)| by_name_crc.get(nc).map(|m| (id, m.header)))
            .collect();
        debug!(
            client_index,
            ?registration,
            messages = table.len(),
            "connected to VPP API"
        );
        let keepalive_id = table.id_of::<MemclntKeepalive>();
        let (to_writer, writer_rx) = mpsc::channel(1024);
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let inner = Arc::new(Inner {
            table,
            kinds,
            client_index,
            registration,
            ping_reply_id,
            keepalive_id,
            next_context: AtomicU32::new(1),
            to_writer,
            shared: Mutex::new(Shared {
                pending: HashMap::new(),
                events: HashMap::new(),
                broken: None,
            }),
            config,
            shutdown: shutdown_tx,
        });
        tokio::spawn(reader_task(reader, Arc::downgrade(&inner), shutdown_rx));
        tokio::spawn(writer_task(writer, writer_rx, Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// VPP's message table as negotiated at connect.
    pub fn message_table(&self) -> &MessageTable {
        &self.inner.table
    }

    /// The client index VPP assigned.
    pub fn client_index(&self) -> u32 {
        self.inner.client_index
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<String> {
        self.inner.lock().broken.clone()
    }

    /// Sends one request and waits for its reply.
    pub async fn request<R: Request>(&self, req: &R) -> Result<R::Reply, ClientError> {
        let inner = &self.inner;
        inner.check_broken()?;
        inner.msg_id::<R::Reply>()?;
        let ctx = inner.context();
        let frame = inner.encode(req, ctx)?;
        let (tx, rx) = oneshot::channel();
        inner
            .lock()
            .pending
            .insert(ctx, Pending::One { msg: R::NAME, tx });
        inner.send_frames(vec![frame]).await?;
        let timeout = inner.config.request_timeout;
        let frame = match tokio::time::timeout(timeout, rx).await {
            Err(_) => return Err(inner.timed_out(R::NAME, timeout, &[ctx])),
            Ok(Err(_)) => return Err(ClientError::Broken("reader stopped".to_owned())),
            Ok(Ok(r)) => r?,
        };
        decode_reply::<R::Reply>(&inner.table, R::NAME, &frame)
    }

    /// Sends a dump and a `control_ping` with the same context; returns every details
    /// message that came before the ping's reply.
    pub async fn dump<D: Dump>(&self, req: &D) -> Result<Vec<D::Details>, ClientError> {
        let inner = &self.inner;
        inner.check_broken()?;
        let details_id = inner.msg_id::<D::Details>()?;
        let ctx = inner.context();
        let frames = vec![inner.encode(req, ctx)?, inner.encode(&ControlPing {}, ctx)?];
        let (tx, rx) = oneshot::channel();
        inner.lock().pending.insert(
            ctx,
            Pending::Stream {
                frames: Vec::new(),
                tx,
            },
        );
        inner.send_frames(frames).await?;
        let timeout = inner.config.request_timeout;
        let got = match tokio::time::timeout(timeout, rx).await {
            Err(_) => return Err(inner.timed_out(D::NAME, timeout, &[ctx])),
            Ok(Err(_)) => return Err(ClientError::Broken("reader stopped".to_owned())),
            Ok(Ok(r)) => r?,
        };
        let mut out = Vec::with_capacity(got.len());
        for f in got {
            let id = peek_msg_id(&f).unwrap_or_default();
            if id != details_id {
                return Err(ClientError::UnexpectedReply {
                    msg: D::NAME,
                    got: id,
                });
            }
            out.push(decode_reply::<D::Details>(&inner.table, D::NAME, &f)?);
        }
        Ok(out)
    }

    /// Pipelines requests of one kind: sends them all, then one `control_ping`, and returns
    /// each request's own result in order (a VPP error or a missing reply fails only that
    /// entry). The outer error is for the connection as a whole.
    pub async fn request_batch<R: Request>(
        &self,
        reqs: &[R],
    ) -> Result<Vec<Result<R::Reply, ClientError>>, ClientError> {
        let mut b = self.batch();
        let mut handles = Vec::with_capacity(reqs.len());
        for r in reqs {
            handles.push(b.push(r)?);
        }
        let replies = b.send().await?;
        Ok(handles.iter().map(|h| replies.get(h)).collect())
    }

    /// Starts a batch of requests of any kinds; see [`Batch`].
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            client: self,
            items: Vec::new(),
        }
    }

    /// Sends a subscription request (e.g. `want_interface_events`) and returns its reply and
    /// the stream of its events. The listener is in place before the request is sent, so no
    /// event is missed.
    pub async fn subscribe<S: Subscribe>(
        &self,
        req: &S,
    ) -> Result<(S::Reply, EventStream<S::Event>), ClientError> {
        let events = self.events::<S::Event>()?;
        let reply = self.request(req).await?;
        Ok((reply, events))
    }

    /// A stream of every message `E` VPP sends without a context (events).
    pub fn events<E: Message>(&self) -> Result<EventStream<E>, ClientError> {
        self.inner.check_broken()?;
        let id = self.inner.msg_id::<E>()?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().events.entry(id).or_default().push(tx);
        Ok(EventStream {
            rx,
            _m: PhantomData,
        })
    }

    /// Unregisters from VPP and stops the connection's tasks (for every clone): with
    /// `sockclnt_delete` on the socket; on shared memory by stopping the reader, whose
    /// transport then runs `vac_disconnect`, waited for (up to 5 s) so that a new
    /// `connect_shm` can follow at once.
    pub async fn close(self) -> Result<(), ClientError> {
        if self.inner.registration == Registration::Shm {
            self.inner.fail_all("closed".to_owned());
            let _ = self.inner.shutdown.send(());
            drop(self);
            if !crate::transport::shm::wait_released(Duration::from_secs(5)).await {
                return Err(ClientError::Broken(
                    "shared-memory connection still shutting down after 5 s".to_owned(),
                ));
            }
            return Ok(());
        }
        let req = SockclntDelete {
            index: self.inner.client_index,
        };
        let res = self.request(&req).await.map(|_: SockclntDeleteReply| ());
        self.inner.fail_all("closed".to_owned());
        res
    }
}

/// A pipelined batch of requests of any kinds, closed by one `control_ping`.
///
/// ```ignore
/// let mut b = client.batch();
/// let h1 = b.push(&NpolIpsetCreate { .. })?;
/// let h2 = b.push(&NpolRuleCreate { .. })?;
/// let replies = b.send().await?;
/// let set = replies.get(&h1)?.set_id;
/// ```
pub struct Batch<'c> {
    client: &'c Client,
    items: Vec<(u32, &'static str, Vec<u8>)>,
}

/// Where one request's reply will be in [`BatchReplies`].
#[derive(Debug)]
pub struct ReplyHandle<M> {
    index: usize,
    _m: PhantomData<fn() -> M>,
}

impl<'c> Batch<'c> {
    /// Encodes a request into the batch (nothing is sent yet).
    pub fn push<R: Request>(&mut self, req: &R) -> Result<ReplyHandle<R::Reply>, ClientError> {
        let inner = &self.client.inner;
        inner.msg_id::<R::Reply>()?;
        let ctx = inner.context();
        let frame = inner.encode(req, ctx)?;
        self.items.push((ctx, R::NAME, frame));
        Ok(ReplyHandle {
            index: self.items.len() - 1,
            _m: PhantomData,
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sends everything plus a `control_ping`, and waits for the ping's reply.
    pub async fn send(self) -> Result<BatchReplies, ClientError> {
        let inner = &self.client.inner;
        inner.check_broken()?;
        let ping_ctx = inner.context();
        let ping = inner.encode(&ControlPing {}, ping_ctx)?;
        let mut receivers = Vec::with_capacity(self.items.len());
        let mut frames = Vec::with_capacity(self.items.len() + 1);
        let mut contexts = Vec::with_capacity(self.items.len());
        let (done_tx, done_rx) = oneshot::channel();
        {
            let mut s = inner.lock();
            for (ctx, msg, frame) in self.items {
                let (tx, rx) = oneshot::channel();
                s.pending.insert(ctx, Pending::One { msg, tx });
                receivers.push((msg, rx));
                frames.push(frame);
                contexts.push(ctx);
            }
            s.pending.insert(
                ping_ctx,
                Pending::Barrier {
                    contexts: contexts.clone(),
                    tx: done_tx,
                },
            );
        }
        frames.push(ping);
        let count = u32::try_from(frames.len()).unwrap_or(u32::MAX);
        inner.send_frames(frames).await?;
        let timeout = inner.config.request_timeout + inner.config.per_message * count;
        match tokio::time::timeout(timeout, done_rx).await {
            Err(_) => {
                contexts.push(ping_ctx);
                return Err(inner.timed_out(ControlPing::NAME, timeout, &contexts));
            }
            Ok(Err(_)) => {
                return Err(ClientError::Broken(
                    inner
                        .lock()
                        .broken
                        .clone()
                        .unwrap_or_else(|| "reader stopped".to_owned()),
                ))
            }
            Ok(Ok(())) => {}
        }
        let mut results = Vec::with_capacity(receivers.len());
        for (msg, mut rx) in receivers {
            results.push((
                msg,
                rx.try_recv().unwrap_or(Err(ClientError::NoReply { msg })),
            ));
        }
        Ok(BatchReplies {
            table: inner.table.clone(),
            results,
        })
    }
}

/// The raw replies of a batch, decoded on demand by handle.
pub struct BatchReplies {
    table: MessageTable,
    results: Vec<(&'static str, FrameResult)>,
}

impl BatchReplies {
    /// The reply for `h`: decoded, with a negative retval turned into [`ClientError::Vpp`].
    pub fn get<M: Message>(&self, h: &ReplyHandle<M>) -> Result<M, ClientError> {
        let Some((msg, res)) = self.results.get(h.index) else {
            return Err(ClientError::NoReply { msg: M::NAME });
        };
        match res {
            Ok(frame) => decode_reply::<M>(&self.table, msg, frame),
            Err(ClientError::NoReply { msg }) => Err(ClientError::NoReply { msg }),
            Err(e) => Err(ClientError::Broken(e.to_string())),
        }
    }

    pub fn len(&self) -> usize {
        self.results.len()
    }

    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

/// Events of one kind, in arrival order. Ends when the connection does.
pub struct EventStream<E> {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    _m: PhantomData<fn() -> E>,
}

impl<E: Message> EventStream<E> {
    /// The next event; `None` when the connection is gone.
    pub async fn next_event(&mut self) -> Option<Result<E, DecodeError>> {
        let f = self.rx.recv().await?;
        Some(decode_message::<E>(&f).map(|(_, e)| e))
    }
}

impl<E: Message> Stream for EventStream<E> {
    type Item = Result<E, DecodeError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx
            .poll_recv(cx)
            .map(|o| o.map(|f| decode_message::<E>(&f).map(|(_, e)| e)))
    }
}
