//! The agent: one task owns the model. It reads Felix's frames, converts and applies them,
//! and once Felix is in sync hands each batch of changes to the dataplane hook; status goes
//! back through a writer task per connection. It never programs anything itself. Before
//! `InSync` it only offers the hook the snapshot so far to prepare from (compile ahead);
//! nothing is applied before `InSync`.

use std::path::Path;

use calico_compile::explain::explain_flow;
use calico_model::kube::KubeUpdate;
use calico_model::{Changes, FelixConfig, Model, Update};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::admin::{AdminQuery, AdminReply, AdminRequest};
use crate::cni::{PodBook, PodQuery};
use crate::felix::codec::{decode_to_dataplane, FrameError, FrameReader};
use crate::felix::convert::{convert, Skip};
use crate::felix::status_writer;
use crate::logging::LogControl;
use crate::metrics;
use crate::status::{StatusHub, StatusReceiver};

/// One batch handed to the dataplane side: the model after the batch and what changed.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub model: &'a Model,
    pub changes: &'a Changes,
    /// First batch of a Felix session (the whole snapshot up to and including `InSync`):
    /// the hook should treat the model as the complete desired state and diff against what
    /// it holds, not trust `changes` to list removals from a previous session. In
    /// [`DataplaneHook::prepare`]: the session's first offer (start from the model).
    pub resync: bool,
    /// Every change of this session before this batch went to the hook's `prepare`, which
    /// took it: `changes` lists only what came after.
    pub prepared: bool,
}

/// The dataplane side of the agent (the compiler + reconciler plug in here).
///
/// Called on the model task after every batch once Felix is in sync, so it must not block:
/// compile (pure, fast) and hand the result to a task of its own.
pub trait DataplaneHook: Send {
    fn apply(&mut self, batch: Batch<'_>);

    /// Before `InSync`, after each batch of the snapshot: work that can start early (a
    /// compile of the snapshot so far, so that `InSync` finds little left to do). Nothing
    /// may be programmed or reported from it. Returns whether the hook took `changes` into
    /// account; then the agent does not hand them again, and the first [`apply`] carries
    /// `prepared` and only the changes after the last taken batch. A hook that prepares
    /// nothing keeps the default (`false`): its first `apply` gets the whole snapshot.
    ///
    /// [`apply`]: DataplaneHook::apply
    fn prepare(&mut self, _batch: Batch<'_>) -> bool {
        false
    }

    /// The Felix session ended (EOF, error, or replaced by a new connection). The next
    /// session rebuilds the model from a fresh snapshot and starts with a `resync` batch.
    fn felix_disconnected(&mut self) {}

    /// The compiled desired state, for an operator's `explain` (`None` before the first
    /// batch, or for a hook that compiles nothing).
    fn desired(&self) -> Option<&calico_compile::DesiredState> {
        None
    }
}

/// Keeps the model only; for `CALICO_VPP_DATAPLANE=none`.
#[derive(Debug, Default)]
pub struct ModelOnly {
    pub batches: u64,
}

impl DataplaneHook for ModelOnly {
    fn apply(&mut self, batch: Batch<'_>) {
        self.batches += 1;
        debug!(
            resync = batch.resync,
            policies = batch.changes.policies.len(),
            ipsets = batch.changes.ipsets.len(),
            endpoints = batch.changes.workload_endpoints.len(),
            "batch applied to the model (no dataplane configured)"
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("reading from Felix: {0}")]
    Frame(#[from] FrameError),
    #[error("writing to Felix: {0}")]
    Write(std::io::Error),
    #[error("Felix socket: {0}")]
    Listen(std::io::Error),
}

/// Counters of what Felix sent, for logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    pub frames: u64,
    pub updates: u64,
    /// Frames whose protobuf did not decode (skipped).
    pub undecodable: u64,
    /// Envelopes with no payload or one unknown to this build (skipped).
    pub unknown_payload: u64,
    /// Messages whose key or content could not be converted (skipped, logged with the key).
    pub unconvertible: u64,
    /// Frames longer than their decoded content re-encodes to: fields from a newer Felix
    /// (skipped; the rest of the message is used), or an encoding that differs from prost's
    /// canonical one (Go writes empty map values, for example). Informational.
    pub unknown_fields: u64,
    pub batches: u64,
}

/// How a Felix session ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Clean end of stream between frames.
    FelixClosed,
}

pub struct Agent {
    hook: Box<dyn DataplaneHook>,
    status: StatusHub,
    log: LogControl,
    max_frame_bytes: usize,
    /// Operators' questions from the admin socket, answered between Felix's batches.
    admin: Option<mpsc::Receiver<AdminQuery>>,
    /// The model of the current (or last) session.
    pub model: Model,
    pub stats: IngestStats,
    /// This node's name when Felix's config does not say it.
    hostname: Option<String>,
    service_cidrs: Vec<ipnet::IpNet>,
    /// The CNI server's questions (pod interfaces), answered between Felix's batches.
    pod_queries: Option<mpsc::Receiver<PodQuery>>,
    pods: PodBook,
    /// The Kubernetes watch (services), applied between Felix's batches.
    kube: Option<mpsc::Receiver<KubeUpdate>>,
}

impl Agent {
    pub fn new(
        hook: Box<dyn DataplaneHook>,
        status_rx: StatusReceiver,
        log: LogControl,
        max_frame_bytes: usize,
    ) -> Self {
        Agent {
            hook,
            status: StatusHub::new(status_rx),
            log,
            max_frame_bytes,
            admin: None,
            model: Model::default(),
            stats: IngestStats::default(),
            hostname: None,
            service_cidrs: Vec::new(),
            pod_queries: None,
            pods: PodBook::default(),
            kube: None,
        }
    }

    /// Programs Kubernetes services from this watch (see [`crate::services`]).
    pub fn with_kube(mut self, updates: mpsc::Receiver<KubeUpdate>) -> Self {
        self.kube = Some(updates);
        self
    }

    /// Wires pods for the CNI server: answers its questions, and starts from the pods
    /// `book`'s store recorded (their interfaces are adopted, not rebuilt).
    pub fn with_pods(mut self, queries: mpsc::Receiver<PodQuery>, book: PodBook) -> Self {
        self.model.pods = book.load();
        self.pods = book;
        self.pod_queries = Some(queries);
        self
    }

    /// This node's name when Felix's config does not say it (`FelixHostname`).
    pub fn with_hostname(mut self, hostname: Option<String>) -> Self {
        self.hostname = hostname;
        self
    }

    /// Service CIDRs the driver is told of besides Felix's (they keep their source under
    /// SNAT).
    pub fn with_service_cidrs(mut self, cidrs: Vec<ipnet::IpNet>) -> Self {
        self.service_cidrs = cidrs;
        self
    }

    /// Answers the admin socket's queries (see [`crate::admin::serve`]).
    pub fn with_admin(mut self, queries: mpsc::Receiver<AdminQuery>) -> Self {
        self.admin = Some(queries);
        self
    }

    /// Serves one Felix stream until it ends: reads and applies frames, writes status.
    pub async fn run_session<R, W>(
        &mut self,
        reader: R,
        writer: W,
    ) -> Result<SessionEnd, AgentError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.model = Model {
            default_hostname: self.hostname.clone(),
            default_service_cidrs: self.service_cidrs.clone(),
            // Pods are the CNI plugin's, not Felix's: they outlive the session.
            pods: std::mem::take(&mut self.model.pods),
            kube: std::mem::take(&mut self.model.kube),
            kube_synced: self.model.kube_synced,
            ..Model::default()
        };
        self.stats = IngestStats::default();
        let (interval_tx, interval_rx) = watch::channel(self.model.config.reporting_interval);
        let Agent {
            hook,
            status,
            log,
            max_frame_bytes,
            admin,
            model,
            stats,
            hostname: _,
            service_cidrs: _,
            pod_queries,
            pods,
            kube,
        } = self;
        let mut frames = FrameReader::new(reader, *max_frame_bytes);
        let ingest = ingest(
            &mut frames,
            model,
            stats,
            hook.as_mut(),
            log,
            &interval_tx,
            Asked {
                admin,
                pod_queries,
                pods,
                kube,
            },
        );
        let result = tokio::select! {
            r = ingest => r,
            w = status_writer::run_writer(writer, status, interval_rx) => Err(AgentError::Write(
                w.err().unwrap_or_else(|| std::io::Error::other("status writer stopped")),
            )),
        };
        info!(
            frames = stats.frames,
            updates = stats.updates,
            undecodable = stats.undecodable,
            unknown_payload = stats.unknown_payload,
            unconvertible = stats.unconvertible,
            unknown_fields = stats.unknown_fields,
            "Felix session ended"
        );
        result
    }

    /// Socket mode: serves one Felix connection at a time, forever; a new connection replaces
    /// the current one, and a session that fails only ends that connection.
    pub async fn serve(&mut self, listener: UnixListener, path: &Path) -> Result<(), AgentError> {
        info!(socket = %path.display(), "waiting for Felix (felix-proxy) on the socket");
        let mut next = Some(listener.accept().await.map_err(AgentError::Listen)?.0);
        loop {
            let Some(stream) = next.take() else {
                next = Some(listener.accept().await.map_err(AgentError::Listen)?.0);
                continue;
            };
            info!("Felix connected");
            let (r, w) = stream.into_split();
            tokio::select! {
                end = self.run_session(r, w) => {
                    match end {
                        Ok(SessionEnd::FelixClosed) => info!("Felix closed the connection"),
                        Err(e) => error!(error = %e, "Felix connection failed; waiting for a new one"),
                    }
                }
                accepted = listener.accept() => {
                    let (stream, _) = accepted.map_err(AgentError::Listen)?;
                    warn!("a new Felix connection replaces the current one");
                    next = Some(stream);
                }
            }
            self.hook.felix_disconnected();
        }
    }
}

/// Who else asks the model task between Felix's batches.
struct Asked<'a> {
    admin: &'a mut Option<mpsc::Receiver<AdminQuery>>,
    pod_queries: &'a mut Option<mpsc::Receiver<PodQuery>>,
    pods: &'a mut PodBook,
    kube: &'a mut Option<mpsc::Receiver<KubeUpdate>>,
}

/// Reads frames until EOF, applying each batch (all frames already buffered) to the model.
async fn ingest<R: AsyncRead + Unpin>(
    frames: &mut FrameReader<R>,
    model: &mut Model,
    stats: &mut IngestStats,
    hook: &mut dyn DataplaneHook,
    log: &LogControl,
    interval_tx: &watch::Sender<Option<std::time::Duration>>,
    asked: Asked<'_>,
) -> Result<SessionEnd, AgentError> {
    let Asked {
        admin,
        pod_queries,
        pods,
        kube,
    } = asked;
    let mut pending = Changes::default();
    // The pods and services carried over from before this session are part of its first
    // batch.
    pending.pods.extend(model.pods.keys().cloned());
    pending.kube_resync = model.kube_synced;
    let mut resync = true;
    // The hook took every change of this session so far in `prepare`.
    let mut prepared = false;
    // Whether the hook prepares at all (it said so at the first offer), and when the next
    // offer may come.
    let mut offer = true;
    let mut next_offer = tokio::time::Instant::now();
    let mut applied_config = FelixConfig::default();
    loop {
        let offer_due =
            |model: &Model, pending: &Changes| offer && !model.in_sync && !pending.is_empty();
        let offer_waits = offer_due(model, &pending);
        // Reading a frame is cancel safe: a question answered in between loses nothing.
        tokio::select! {
            frame = frames.next_frame() => {
                let Some(frame) = frame? else {
                    return Ok(SessionEnd::FelixClosed);
                };
                ingest_frame(&frame, model, stats, &mut pending);
                while let Some(frame) = frames.buffered_frame()? {
                    ingest_frame(&frame, model, stats, &mut pending);
                }
                if model.config != applied_config {
                    apply_felix_config(&model.config, log, interval_tx);
                    applied_config = model.config.clone();
                }
            }
            query = next_admin_query(admin) => {
                answer_admin(query, model, &*hook);
                continue;
            }
            update = next_kube_update(kube) => {
                apply_kube(update, model, &mut pending);
            }
            query = next_pod_query(pod_queries) => {
                let PodQuery { request, reply } = query;
                // The asker may have given up; the change stands either way.
                let _ = reply.send(pods.answer(request, model, &mut pending));
            }
            // The snapshot's tail is offered once the spacing allows, even if Felix pauses.
            () = tokio::time::sleep_until(next_offer), if offer_waits => {}
        }
        let now = tokio::time::Instant::now();
        if offer_due(model, &pending) && now >= next_offer {
            let taken = hook.prepare(Batch {
                model,
                changes: &pending,
                resync: !prepared,
                prepared,
            });
            debug!(
                taken,
                elapsed_us = now.elapsed().as_micros() as u64,
                policies = pending.policies.len(),
                ipsets = pending.ipsets.len(),
                workload_endpoints = pending.workload_endpoints.len(),
                "snapshot so far offered to the dataplane hook ahead of InSync"
            );
            if taken {
                prepared = true;
                pending = Changes::default();
            } else {
                offer = false;
            }
            // Offers are spaced so that preparing takes at most half the model task's time,
            // whatever order the snapshot comes in (Felix sends IP sets, policies, then
            // endpoints; another order makes each batch recompile more).
            next_offer = tokio::time::Instant::now() + now.elapsed();
        }
        if model.in_sync && !pending.is_empty() {
            stats.batches += 1;
            let started = std::time::Instant::now();
            hook.apply(Batch {
                model,
                changes: &pending,
                resync,
                prepared,
            });
            metrics::global()
                .batch_apply_seconds
                .observe(started.elapsed().as_secs_f64());
            resync = false;
            prepared = false;
            pending = Changes::default();
        }
    }
}

/// The next admin query; never returns once the admin socket is gone (or was never there).
async fn next_admin_query(admin: &mut Option<mpsc::Receiver<AdminQuery>>) -> AdminQuery {
    if let Some(rx) = admin {
        if let Some(q) = rx.recv().await {
            return q;
        }
        *admin = None;
    }
    std::future::pending().await
}

/// The next change from the Kubernetes watch; never returns once it is gone.
async fn next_kube_update(updates: &mut Option<mpsc::Receiver<KubeUpdate>>) -> KubeUpdate {
    if let Some(rx) = updates {
        if let Some(u) = rx.recv().await {
            return u;
        }
        *updates = None;
    }
    std::future::pending().await
}

/// Folds one change of the Kubernetes watch into the model. Before the first complete list
/// nothing is recorded as changed (nothing is programmed from half a list).
pub fn apply_kube(update: KubeUpdate, model: &mut Model, changes: &mut Changes) {
    match update {
        KubeUpdate::Synced(state) => {
            if !model.kube_synced {
                info!(
                    services = state.services.len(),
                    slices = state.slices.len(),
                    "Kubernetes services and endpoint slices listed"
                );
            }
            model.kube = state;
            model.kube_synced = true;
            changes.kube_resync = true;
        }
        KubeUpdate::Service(key, svc) => {
            match svc {
                Some(s) => model.kube.services.insert(key.clone(), s),
                None => model.kube.services.remove(&key),
            };
            if model.kube_synced {
                changes.kube_services.insert(key);
            }
        }
        KubeUpdate::Slice(key, slice) => {
            let old = model.kube.slices.get(&key).map(|s| s.service.clone());
            let new = slice.as_ref().map(|s| s.service.clone());
            match slice {
                Some(s) => model.kube.slices.insert(key.clone(), s),
                None => model.kube.slices.remove(&key),
            };
            if model.kube_synced {
                for name in [old, new].into_iter().flatten() {
                    changes
                        .kube_services
                        .insert(calico_model::kube::ServiceKey {
                            namespace: key.namespace.clone(),
                            name,
                        });
                }
            }
        }
    }
}

/// The next question of the CNI server; never returns once it is gone (or was never there).
async fn next_pod_query(queries: &mut Option<mpsc::Receiver<PodQuery>>) -> PodQuery {
    if let Some(rx) = queries {
        if let Some(q) = rx.recv().await {
            return q;
        }
        *queries = None;
    }
    std::future::pending().await
}

/// Answers one operator question from the model (and the hook's compiled state).
fn answer_admin(query: AdminQuery, model: &Model, hook: &dyn DataplaneHook) {
    let AdminQuery { request, reply } = query;
    let answer = match request {
        AdminRequest::Explain(q) => match explain_flow(model, hook.desired(), &q) {
            Ok(e) => AdminReply::Explained(e),
            Err(e) => AdminReply::Error(e.to_string()),
        },
    };
    // The asker may have given up; nothing to do then.
    let _ = reply.send(answer);
}

fn apply_felix_config(
    cfg: &FelixConfig,
    log: &LogControl,
    interval_tx: &watch::Sender<Option<std::time::Duration>>,
) {
    interval_tx.send_if_modified(|current| {
        let changed = *current != cfg.reporting_interval;
        *current = cfg.reporting_interval;
        changed
    });
    if let Some(severity) = cfg.log_severity_screen {
        log.felix_severity(severity);
    }
}

/// Decodes, converts and applies one frame; nothing in it is fatal.
pub fn ingest_frame(
    frame: &[u8],
    model: &mut Model,
    stats: &mut IngestStats,
    pending: &mut Changes,
) {
    stats.frames += 1;
    let (msg, unknown_fields) = match decode_to_dataplane(frame) {
        Ok(m) => m,
        Err(e) => {
            stats.undecodable += 1;
            metrics::global().felix_skipped.inc();
            warn!(len = frame.len(), error = %e, total = stats.undecodable,
                "Felix frame does not decode as ToDataplane; skipped");
            return;
        }
    };
    let seq = msg.sequence_number;
    if unknown_fields {
        stats.unknown_fields += 1;
        if stats.unknown_fields == 1 {
            info!(seq, "Felix message with bytes this build does not decode (unknown fields are ignored; counted from now on)");
        }
    }
    match convert(msg) {
        Ok(update) => {
            stats.updates += 1;
            metrics::global()
                .felix_messages
                .get_or_create(&metrics::kind(update.kind()))
                .inc();
            if matches!(update, Update::InSync) && !model.in_sync {
                info!(
                    seq,
                    frames = stats.frames,
                    policies = model.policies.len(),
                    profiles = model.profiles.len(),
                    ipsets = model.ipsets.len(),
                    workload_endpoints = model.workload_endpoints.len(),
                    skipped = stats.undecodable + stats.unknown_payload + stats.unconvertible,
                    "Felix snapshot complete (InSync)"
                );
            }
            model.apply_into(update, pending);
        }
        Err(Skip::NoPayload) => {
            stats.unknown_payload += 1;
            metrics::global().felix_skipped.inc();
            if stats.unknown_payload == 1 {
                warn!(seq, "Felix message with a payload this driver does not know; skipped (counted from now on)");
            } else {
                debug!(
                    seq,
                    total = stats.unknown_payload,
                    "unknown Felix payload skipped"
                );
            }
        }
        Err(Skip::Invalid { .. }) => {
            stats.unconvertible += 1;
            metrics::global().felix_skipped.inc();
        }
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
