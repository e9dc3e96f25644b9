//! The socket side of the simulator: VPP's API socket transport (16-byte frame header with
//! the payload length at bytes 8..12, big-endian), client registrations (client index =
//! registration pool index | 1<<31, the listener holding index 0, as `socket_api.c` does),
//! VPP's silences, interface events, counters and fault injection.
//! The state lock is never held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use npol::{Direction, Evaluation, Packet, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{debug, info, warn};
use vpp_bindings::message::{SOCKCLNT_CREATE_MSG_ID, SOCKCLNT_CREATE_REPLY_MSG_ID};
use vpp_bindings::{encode_message, Message, MessageTable};

use crate::api::{self, Ctx, Dispatch, Kind};
use crate::enforce::{Enforcement, FlowVerdict};
use crate::pool::Pool;
use crate::state::SimState;

/// Frames larger than this close the connection (VPP has no limit; a runaway length field
/// must not make the simulator allocate gigabytes).
const MAX_FRAME: usize = 256 << 20;
const HANDLE_BIT: u32 = 1 << 31;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("accepting a connection: {0}")]
    Accept(io::Error),
}

/// Start-up options.
#[derive(Debug, Clone)]
pub struct Options {
    /// `vpe_pid` in `control_ping_reply`.
    pub vpe_pid: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            vpe_pid: std::process::id(),
        }
    }
}

/// What to do to the `nth` call of a message (counted from when the fault is set, 1 =
/// the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this `retval` and default fields, without applying the request.
    Fail(i32),
    /// Do not answer (the request is not applied).
    Silence,
    /// Close the client's connection instead of answering (not applied).
    Disconnect,
}

#[derive(Debug, Clone)]
struct Fault {
    message: String,
    nth: u64,
    seen: u64,
    action: FaultAction,
}

enum Registration {
    Listener,
    Client(Client),
}

struct Client {
    name: String,
    conn: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// `want_interface_events` pid, when subscribed.
    events_pid: Option<u32>,
}

struct Shared {
    state: SimState,
    regs: Pool<Registration>,
    conns: HashMap<u64, AbortHandle>,
    next_conn: u64,
    counts: BTreeMap<String, u64>,
    write_calls: u64,
    unknown_ids: u64,
    faults: Vec<Fault>,
    delay: Option<Duration>,
}

impl Shared {
    fn new() -> Self {
        let mut regs = Pool::default();
        regs.insert(Registration::Listener);
        Shared {
            state: SimState::new(),
            regs,
            conns: HashMap::new(),
            next_conn: 0,
            counts: BTreeMap::new(),
            write_calls: 0,
            unknown_ids: 0,
            faults: Vec::new(),
            delay: None,
        }
    }

    fn client(&self, client_index: u32) -> Option<&Client> {
        if client_index & HANDLE_BIT == 0 {
            return None;
        }
        match self.regs.get(client_index & !HANDLE_BIT)? {
            Registration::Client(c) => Some(c),
            Registration::Listener => None,
        }
    }

    fn drop_all_clients(&mut self) {
        let ids: Vec<u32> = self
            .regs
            .iter()
            .filter(|(_, r)| matches!(r, Registration::Client(_)))
            .map(|(i, _)| i)
            .collect();
        for i in ids {
            self.regs.remove(i);
        }
        for (_, h) in self.conns.drain() {
            h.abort();
        }
    }

    fn close_conn(&mut self, conn: u64) {
        let ids: Vec<u32> = self
            .regs
            .iter()
            .filter(|(_, r)| matches!(r, Registration::Client(c) if c.conn == conn))
            .map(|(i, _)| i)
            .collect();
        for i in ids {
            self.regs.remove(i);
        }
        if let Some(h) = self.conns.remove(&conn) {
            h.abort();
        }
    }

    fn take_fault(&mut self, name: &str) -> Option<FaultAction> {
        let pos = self.faults.iter_mut().position(|f| {
            if f.message != name {
                return false;
            }
            f.seen += 1;
            f.seen == f.nth
        })?;
        Some(self.faults.remove(pos).action)
    }
}

struct Inner {
    dispatch: Dispatch,
    shared: Mutex<Shared>,
    options: Options,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock is a simulator bug; the state is still usable.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator. Dropping it stops the server and removes the socket file.
pub struct Simulator {
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
    path: PathBuf,
}

/// Runs a simulator on `path` until the listener fails (for the driver's `sim` command).
pub async fn serve(path: &Path, options: Options) -> Result<(), SimError> {
    let mut sim = Simulator::start_with(path, options).await?;
    info!(socket = %sim.path.display(), "VPP simulator listening");
    // The accept loop only ends if its task is cancelled.
    let _ = (&mut sim.accept).await;
    Ok(())
}

impl Simulator {
    pub async fn start(path: impl AsRef<Path>) -> Result<Simulator, SimError> {
        Self::start_with(path.as_ref(), Options::default()).await
    }

    pub async fn start_with(path: &Path, options: Options) -> Result<Simulator, SimError> {
        // VPP unlinks a stale socket file before binding, so does the simulator.
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|source| SimError::Bind {
            path: path.to_path_buf(),
            source,
        })?;
        let inner = Arc::new(Inner {
            dispatch: Dispatch::new(),
            shared: Mutex::new(Shared::new()),
            options,
        });
        let accept = tokio::spawn(accept_loop(listener, inner.clone()));
        Ok(Simulator {
            inner,
            accept,
            path: path.to_path_buf(),
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The message table the simulator hands out in `sockclnt_create_reply`.
    pub fn message_table(&self) -> &MessageTable {
        &self.inner.dispatch.table
    }

    // ---- inspection -------------------------------------------------------------------

    /// Runs `f` on the current state (under the lock; keep it short).
    pub fn with_state<R>(&self, f: impl FnOnce(&SimState) -> R) -> R {
        f(&self.inner.lock().state)
    }

    /// Changes the state directly, as something outside the API would (a link flap, an
    /// operator). Interface events produced are sent to subscribers.
    pub fn with_state_mut<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut g = self.inner.lock();
        let r = f(&mut g.state);
        let out = events_for_subscribers(&self.inner.dispatch.table, &mut g);
        drop(g);
        for (tx, frame) in out {
            let _ = tx.send(frame);
        }
        r
    }

    pub fn snapshot(&self) -> SimState {
        self.with_state(Clone::clone)
    }

    pub fn dump_text(&self) -> String {
        self.with_state(SimState::render_text)
    }

    pub fn dump_json(&self) -> serde_json::Value {
        self.with_state(|s| serde_json::to_value(s).unwrap_or(serde_json::Value::Null))
    }

    /// Requests received that change state (not dumps, pings, version, handshake, event
    /// subscriptions or other reads), including failed and fault-injected ones.
    pub fn write_calls(&self) -> u64 {
        self.inner.lock().write_calls
    }

    /// Received messages by name (every message with a known id, handshake included).
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.inner.lock().counts.clone()
    }

    pub fn calls(&self, name: &str) -> u64 {
        self.inner.lock().counts.get(name).copied().unwrap_or(0)
    }

    /// Messages whose id is not in the table (VPP ignores them).
    pub fn unknown_messages(&self) -> u64 {
        self.inner.lock().unknown_ids
    }

    pub fn reset_counters(&self) {
        let mut g = self.inner.lock();
        g.counts.clear();
        g.write_calls = 0;
        g.unknown_ids = 0;
    }

    /// Connected API clients.
    pub fn client_count(&self) -> usize {
        self.inner.lock().regs.len().saturating_sub(1)
    }

    /// npol's verdict on one interface and direction, where npol is enforced (see
    /// [`SimState::explain`]; TX assumes a cnat-enabled ingress).
    pub fn evaluate(&self, sw_if_index: u32, dir: Direction, pkt: &Packet) -> Verdict {
        self.with_state(|s| s.evaluate(sw_if_index, dir, pkt))
    }

    /// A new flow from `ingress` to `egress`; see [`SimState::evaluate_flow`] (it may
    /// learn a neighbour, as VPP does after the first packet).
    pub fn evaluate_flow(&self, ingress: u32, egress: u32, pkt: &Packet) -> FlowVerdict {
        self.with_state_mut(|s| s.evaluate_flow(ingress, egress, pkt))
    }

    pub fn explain(
        &self,
        sw_if_index: u32,
        dir: Direction,
        pkt: &Packet,
        ingress: Option<u32>,
    ) -> (Enforcement, Option<Evaluation>) {
        self.with_state(|s| s.explain(sw_if_index, dir, pkt, ingress))
    }

    // ---- faults -----------------------------------------------------------------------

    /// The `nth` call (1 = next) of `message` gets `action`.
    pub fn inject(&self, message: &str, nth: u64, action: FaultAction) {
        self.inner.lock().faults.push(Fault {
            message: message.to_string(),
            nth: nth.max(1),
            seen: 0,
            action,
        });
    }

    /// The `nth` call (1 = next) of `message` fails with `retval`.
    pub fn fail_nth(&self, message: &str, nth: u64, retval: i32) {
        self.inject(message, nth, FaultAction::Fail(retval));
    }

    pub fn clear_faults(&self) {
        let mut g = self.inner.lock();
        g.faults.clear();
        g.delay = None;
    }

    /// Delays every answer (and the processing of later requests of that client) by `d`.
    pub fn set_reply_delay(&self, d: Option<Duration>) {
        self.inner.lock().delay = d;
    }

    /// Closes every client connection; the state stays (like a broken socket).
    pub fn drop_connections(&self) {
        self.inner.lock().drop_all_clients();
    }

    /// Like a VPP restart: every client connection closed, every object gone, client
    /// indexes start over. Counters and faults stay.
    pub fn restart_empty(&self) {
        let mut g = self.inner.lock();
        g.drop_all_clients();
        g.state = SimState::new();
        g.regs = Pool::default();
        g.regs.insert(Registration::Listener);
        info!("simulated VPP restarted empty");
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.accept.abort();
        self.inner.lock().drop_all_clients();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, inner: Arc<Inner>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "simulator accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut g = inner.lock();
        let conn = g.next_conn;
        g.next_conn += 1;
        // VPP creates the registration when it accepts the socket.
        let reg = g.regs.insert(Registration::Client(Client {
            name: String::new(),
            conn,
            tx,
            events_pid: None,
        }));
        let task = tokio::spawn(run_conn(inner.clone(), stream, conn, reg, rx));
        g.conns.insert(conn, task.abort_handle());
        drop(g);
        debug!(
            conn,
            client_index = reg | HANDLE_BIT,
            "API client connected"
        );
    }
}

async fn run_conn(
    inner: Arc<Inner>,
    stream: UnixStream,
    conn: u64,
    reg: u32,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let (rd, wr) = stream.into_split();
    let writer = tokio::spawn(write_loop(wr, rx));
    let r = read_loop(&inner, rd, conn, reg).await;
    if let Err(e) = r {
        debug!(conn, error = %e, "API client connection ended");
    }
    inner.lock().close_conn(conn);
    // The sender is gone with the registration: the writer flushes what is queued and ends.
    let _ = writer.await;
}

async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut w = BufWriter::new(wr);
    while let Some(frame) = rx.recv().await {
        if write_frame(&mut w, &frame).await.is_err() {
            return;
        }
        // Batch: flush only when nothing else is queued.
        while let Ok(frame) = rx.try_recv() {
            if write_frame(&mut w, &frame).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
}

async fn write_frame(w: &mut BufWriter<OwnedWriteHalf>, payload: &[u8]) -> io::Result<()> {
    let mut hdr = [0u8; 16];
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("frame too large"))?;
    hdr[8..12].copy_from_slice(&len.to_be_bytes());
    w.write_all(&hdr).await?;
    w.write_all(payload).await
}

async fn read_loop(inner: &Inner, mut rd: OwnedReadHalf, conn: u64, reg: u32) -> io::Result<()> {
    let mut hdr = [0u8; 16];
    loop {
        rd.read_exact(&mut hdr).await?;
        let len = u32::from_be_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
        if len > MAX_FRAME {
            warn!(conn, len, "API frame too large, closing the connection");
            return Ok(());
        }
        let mut payload = vec![0u8; len];
        rd.read_exact(&mut payload).await?;
        let out = process(inner, conn, reg, &payload);
        if let Some(d) = out.delay {
            tokio::time::sleep(d).await;
        }
        for (tx, frame) in out.frames {
            let _ = tx.send(frame);
        }
        if let Some(c) = out.close {
            inner.lock().close_conn(c);
            if c == conn {
                return Ok(());
            }
        }
    }
}

#[derive(Default)]
struct Outcome {
    frames: Vec<(mpsc::UnboundedSender<Vec<u8>>, Vec<u8>)>,
    delay: Option<Duration>,
    close: Option<u64>,
}

fn process(inner: &Inner, conn: u64, reg: u32, bytes: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Some(id) = bytes.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        debug!(conn, "message shorter than its id: ignored");
        return out;
    };
    let d = &inner.dispatch;
    let mut g = inner.lock();
    let Some(name) = d.names.get(&id).copied() else {
        g.unknown_ids += 1;
        debug!(conn, id, "unknown message id: ignored, as VPP does");
        return out;
    };
    *g.counts.entry(name.to_string()).or_insert(0) += 1;
    out.delay = g.delay;

    if id == SOCKCLNT_CREATE_MSG_ID {
        // Answered on the socket it came by, whatever its client_index says.
        let Ok((h, m)) = lenient::<api::SockclntCreate>(bytes) else {
            return out;
        };
        let Some(Registration::Client(c)) = g.regs.get_mut(reg) else {
            return out;
        };
        c.name = m.name;
        let reply = api::sockclnt_create_reply(&d.table, reg | HANDLE_BIT);
        if let Ok(frame) = encode_message(&reply, SOCKCLNT_CREATE_REPLY_MSG_ID, 0, h.context) {
            out.frames.push((c.tx.clone(), frame));
        }
        info!(conn, client = %c.name, client_index = reg | HANDLE_BIT, "API client registered");
        return out;
    }

    // Every other handler finds its client by the client_index in the message.
    let Some(client_index) = bytes
        .get(2..6)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return out;
    };
    let Some(client) = g.client(client_index) else {
        debug!(
            conn,
            name, client_index, "unknown client index: ignored, as VPP does"
        );
        return out;
    };
    let reply_tx = client.tx.clone();
    let subscribed = client.events_pid;

    if name == api::SockclntDelete::NAME {
        let Ok((h, m)) = lenient::<api::SockclntDelete>(bytes) else {
            return out;
        };
        let target = m.index & !HANDLE_BIT;
        let target_conn = match g.regs.get(target) {
            Some(Registration::Client(c)) => Some(c.conn),
            _ => None,
        };
        let reply = api::SockclntDeleteReply {
            response: if target_conn.is_some() { 1 } else { -1 },
        };
        if let Ok(frame) = d.table.encode(&reply, 0, h.context) {
            out.frames.push((reply_tx, frame));
        }
        out.close = target_conn;
        return out;
    }

    let kind = d.handlers.get(&id).map(|e| e.kind);
    if kind == Some(Kind::Write) {
        g.write_calls += 1;
    }
    let forced = match g.take_fault(name) {
        None => None,
        Some(FaultAction::Fail(rv)) => Some(rv),
        Some(FaultAction::Silence) => {
            info!(name, "fault injected: no reply");
            return out;
        }
        Some(FaultAction::Disconnect) => {
            info!(name, "fault injected: connection closed");
            out.close = Some(conn);
            return out;
        }
    };
    let vpe_pid = inner.options.vpe_pid;
    let mut ctx = Ctx {
        state: &mut g.state,
        table: &d.table,
        replies: Vec::new(),
        forced,
        client_index,
        subscribed,
        subscribe: None,
        vpe_pid,
    };
    match d.handle(id, &mut ctx, bytes) {
        None => {
            warn!(name, "message not implemented by the simulator: no reply");
            return out;
        }
        Some(Err(e)) => {
            debug!(name, error = %e, "message ignored");
            return out;
        }
        Some(Ok(())) => {}
    }
    let Ctx {
        replies, subscribe, ..
    } = ctx;
    for r in replies {
        out.frames.push((reply_tx.clone(), r));
    }
    if let Some((enable, pid)) = subscribe {
        if let Some(Registration::Client(c)) = g.regs.get_mut(client_index & !HANDLE_BIT) {
            c.events_pid = enable.then_some(pid);
        }
    }
    out.frames.extend(events_for_subscribers(&d.table, &mut g));
    out
}

fn lenient<M: Message>(
    bytes: &[u8],
) -> Result<(vpp_bindings::Header, M), vpp_bindings::DecodeError> {
    let mut r = vpp_bindings::Reader::new(bytes);
    let h = vpp_bindings::message::read_header(&mut r, M::HEADER)?;
    Ok((h, M::decode(&mut r)?))
}

/// Encodes pending interface events for every subscribed client.
fn events_for_subscribers(
    table: &MessageTable,
    g: &mut Shared,
) -> Vec<(mpsc::UnboundedSender<Vec<u8>>, Vec<u8>)> {
    let events = std::mem::take(&mut g.state.events);
    let mut out = Vec::new();
    for e in &events {
        for (idx, r) in g.regs.iter() {
            let Registration::Client(c) = r else { continue };
            let Some(pid) = c.events_pid else { continue };
            let ev = api::interface_event(e, pid);
            if let Ok(frame) = table.encode(&ev, idx | HANDLE_BIT, 0) {
                out.push((c.tx.clone(), frame));
            }
        }
    }
    out
}
