//! Prometheus metrics and health: one process-wide set of instruments (as Felix's Go
//! registry is process-wide), updated where things happen — Felix messages in the agent, VPP
//! calls and pass results in the reconciler — and served over HTTP with `/liveness` and
//! `/readiness` for calico-node's probes. Off unless `CALICO_VPP_PROMETHEUS_PORT` is set;
//! bound to localhost unless configured otherwise. Every name starts with `calico_vpp_`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabel {
    pub message: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabel {
    pub full: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}

/// The driver's instruments.
pub struct Metrics {
    registry: Registry,
    /// Felix messages applied to the model, by kind (`Update::kind`).
    pub felix_messages: Family<KindLabel, Counter>,
    /// Felix messages skipped (undecodable, unknown payload, not convertible).
    pub felix_skipped: Counter,
    /// Batches handed to the dataplane after InSync, and how long compiling one took.
    pub batch_apply_seconds: Histogram,
    /// VPP API write calls by message, and those VPP refused.
    pub vpp_calls: Family<MessageLabel, Counter>,
    pub vpp_errors: Family<MessageLabel, Counter>,
    /// Reconcile passes (`full`: compared everything).
    pub passes: Family<PassLabel, Counter>,
    /// (Re)connections to VPP after the first.
    pub vpp_reconnects: Counter,
    /// Objects by kind: desired, in VPP, and failing (`retryable` / `permanent`).
    pub objects_desired: Family<KindLabel, Gauge>,
    pub objects_realized: Family<KindLabel, Gauge>,
    pub objects_failed: Family<ErrorLabel, Gauge>,
    /// Objects waiting for a failed dependency, and endpoints whose interface is missing.
    pub objects_waiting: Gauge,
    pub endpoints_pending: Gauge,
    /// Workload endpoints by reported status.
    pub endpoints: Family<StatusLabel, Gauge>,
    /// IP set members in the desired state.
    pub ipset_members: Gauge,
    /// 1 once the first complete sync reached VPP and VPP is connected.
    pub ready: Gauge,
    /// Resident memory of the process, read at every scrape.
    pub resident_memory_bytes: Gauge,
    live: AtomicBool,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("calico_vpp");
        let m = Metrics {
            felix_messages: Family::default(),
            felix_skipped: Counter::default(),
            batch_apply_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 12)),
            vpp_calls: Family::default(),
            vpp_errors: Family::default(),
            passes: Family::default(),
            vpp_reconnects: Counter::default(),
            objects_desired: Family::default(),
            objects_realized: Family::default(),
            objects_failed: Family::default(),
            objects_waiting: Gauge::default(),
            endpoints_pending: Gauge::default(),
            endpoints: Family::default(),
            ipset_members: Gauge::default(),
            ready: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
            live: AtomicBool::new(true),
            registry: Registry::default(),
        };
        registry.register(
            "felix_messages",
            "Felix messages applied to the model, by kind",
            m.felix_messages.clone(),
        );
        registry.register(
            "felix_messages_skipped",
            "Felix messages skipped (undecodable, unknown payload or not convertible)",
            m.felix_skipped.clone(),
        );
        registry.register(
            "batch_apply_seconds",
            "Time to compile one batch of Felix changes and hand it to the reconciler",
            m.batch_apply_seconds.clone(),
        );
        registry.register(
            "vpp_api_calls",
            "VPP API write calls, by message",
            m.vpp_calls.clone(),
        );
        registry.register(
            "vpp_api_errors",
            "VPP API write calls VPP refused, by message",
            m.vpp_errors.clone(),
        );
        registry.register(
            "reconcile_passes",
            "Reconcile passes (full: compared every object)",
            m.passes.clone(),
        );
        registry.register(
            "vpp_reconnects",
            "Connections to VPP after the first (VPP or its socket went away)",
            m.vpp_reconnects.clone(),
        );
        registry.register(
            "objects_desired",
            "Objects the compiler wants in VPP, by kind",
            m.objects_desired.clone(),
        );
        registry.register(
            "objects_realized",
            "Objects the driver holds in VPP, by kind",
            m.objects_realized.clone(),
        );
        registry.register(
            "objects_failed",
            "Objects whose programming failed (retryable: retried with backoff; permanent: \
             until they change)",
            m.objects_failed.clone(),
        );
        registry.register(
            "objects_waiting",
            "Objects waiting for a failed dependency",
            m.objects_waiting.clone(),
        );
        registry.register(
            "endpoints_pending",
            "Workload endpoints whose VPP interface is not there yet",
            m.endpoints_pending.clone(),
        );
        registry.register(
            "endpoints",
            "Workload endpoints by the status reported to Felix",
            m.endpoints.clone(),
        );
        registry.register(
            "ipset_members",
            "IP set members in the desired state",
            m.ipset_members.clone(),
        );
        registry.register(
            "ready",
            "1 once the first complete sync reached VPP and VPP is connected",
            m.ready.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the driver process",
            m.resident_memory_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        if let Some(rss) = resident_memory_bytes() {
            self.resident_memory_bytes.set(rss as i64);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            let _ = writeln!(out, "# encoding the metrics failed");
        }
        out
    }

    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Marks the process not live (its model task ended): liveness fails from then on.
    pub fn set_dead(&self) {
        self.live.store(false, Ordering::Relaxed);
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }
}

/// The process's instruments.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

pub fn kind(kind: &str) -> KindLabel {
    KindLabel { kind: kind.into() }
}

pub fn message(m: &str) -> MessageLabel {
    MessageLabel { message: m.into() }
}

fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics endpoint {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Serves `/metrics`, `/liveness` and `/readiness` on `addr` on a task of its own.
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    info!(%local, "serving Prometheus metrics and health");
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint accept failed; no longer serving");
                    return;
                }
            };
            tokio::spawn(async move {
                // The whole request head (it may come in pieces), at most 8 KiB, within 5 s:
                // closing with unread bytes would reset the connection under the reply.
                let mut buf = Vec::with_capacity(1024);
                let read_head = async {
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                        let n = stream.read(&mut chunk).await?;
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    Ok::<_, std::io::Error>(())
                };
                match tokio::time::timeout(std::time::Duration::from_secs(5), read_head).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        debug!(error = %e, "metrics request unreadable");
                        return;
                    }
                    Err(_) => {
                        debug!("metrics request incomplete after 5 s");
                        return;
                    }
                }
                let request = String::from_utf8_lossy(&buf);
                let path = request
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("/");
                let (status, ctype, body) = respond(path);
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(local)
}

fn respond(path: &str) -> (&'static str, &'static str, String) {
    let m = global();
    match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            m.render(),
        ),
        "/liveness" if m.is_live() => ("200 OK", "text/plain", "live\n".into()),
        "/liveness" => ("503 Service Unavailable", "text/plain", "not live\n".into()),
        "/readiness" if m.is_ready() => ("200 OK", "text/plain", "ready\n".into()),
        "/readiness" => (
            "503 Service Unavailable",
            "text/plain",
            "not ready: no complete sync with VPP yet, or VPP is not connected\n".into(),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}
