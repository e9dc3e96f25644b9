//! The admin socket: a local unix socket, readable and writable by root only (mode 0600),
//! on which the running driver answers operators' questions — today `explain`. One JSON
//! request line in, one JSON reply line out. The answers are computed by the task that owns
//! the model (see `agent`); nothing here reads or changes state, and nothing is reachable
//! from the network.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use calico_compile::explain::{FlowExplanation, FlowQuery};
use npol::Verdict;

use crate::dataplane::npol_match::{vpp_verdicts, MatchDirection};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Where the driver answers operators by default.
pub const DEFAULT_ADMIN_SOCKET: &str = "/var/run/calico/calico-vpp-driver-admin.sock";
/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a request may wait for the model's owner (it may be busy with a large batch).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRequest {
    Explain(FlowQuery),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminReply {
    Explained(FlowExplanation),
    Error(String),
}

/// A request on its way to the model's owner, with where the answer goes.
#[derive(Debug)]
pub struct AdminQuery {
    pub request: AdminRequest,
    pub reply: oneshot::Sender<AdminReply>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("admin socket {0}: another driver is answering there")]
    InUse(PathBuf),
    #[error("admin socket: the driver's reply is not valid: {0}")]
    BadReply(serde_json::Error),
    #[error("admin socket: the driver closed the connection without replying")]
    NoReply,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AdminError + '_ {
    move |source| AdminError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Binds the admin socket (mode 0600; a stale socket file is replaced, a live one is not)
/// and serves it on a task of its own. Queries arrive on the returned channel. With
/// `vpp_socket`, each explanation also carries VPP's own verdicts (`npol match`), asked over
/// a connection of the admin task's own.
pub async fn serve(
    path: &Path,
    vpp_socket: Option<PathBuf>,
) -> Result<mpsc::Receiver<AdminQuery>, AdminError> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(AdminError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io(path))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(path))?;
    }
    let listener = UnixListener::bind(path).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    info!(socket = %path.display(), "answering operators on the admin socket");
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "admin socket accept failed; no longer answering");
                    return;
                }
            };
            let tx = tx.clone();
            let vpp = vpp_socket.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, tx, vpp).await {
                    debug!(error = %e, "admin connection ended with an error");
                }
            });
        }
    });
    Ok(rx)
}

async fn answer(
    stream: UnixStream,
    tx: mpsc::Sender<AdminQuery>,
    vpp: Option<PathBuf>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    BufReader::new(r.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<AdminRequest>(&line) {
        Err(e) => AdminReply::Error(format!("not a valid request: {e}")),
        Ok(request) => {
            let (reply_tx, reply_rx) = oneshot::channel();
            let query = AdminQuery {
                request,
                reply: reply_tx,
            };
            if tx.send(query).await.is_err() {
                AdminReply::Error("the driver is shutting down".into())
            } else {
                match tokio::time::timeout(ANSWER_TIMEOUT, reply_rx).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => AdminReply::Error("the driver dropped the request".into()),
                    Err(_) => AdminReply::Error(format!(
                        "no answer within {ANSWER_TIMEOUT:?} (the driver is busy)"
                    )),
                }
            }
        }
    };
    let reply = match (reply, vpp) {
        (AdminReply::Explained(mut e), Some(socket)) => {
            add_vpp_verdicts(&socket, &mut e).await;
            AdminReply::Explained(e)
        }
        (reply, _) => reply,
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}

/// Fills in VPP's own verdict for each direction: `npol match` inbound on the source's
/// interface (its egress), outbound on the destination's (its ingress).
async fn add_vpp_verdicts(socket: &Path, e: &mut FlowExplanation) {
    let asks: Vec<_> = e
        .directions
        .iter()
        .map(|d| {
            let dir = if d.direction == "egress" {
                MatchDirection::Inbound
            } else {
                MatchDirection::Outbound
            };
            (d.interface.clone(), dir, e.flow)
        })
        .collect();
    if asks.is_empty() {
        return;
    }
    let answers = tokio::time::timeout(ANSWER_TIMEOUT, vpp_verdicts(socket, &asks)).await;
    let answers = match answers {
        Ok(Ok(a)) => a,
        Ok(Err(err)) => {
            e.notes.push(format!("VPP's own verdict unknown: {err}"));
            return;
        }
        Err(_) => {
            e.notes
                .push("VPP's own verdict unknown: VPP did not answer in time".into());
            return;
        }
    };
    for (d, a) in e.directions.iter_mut().zip(answers) {
        d.vpp = Some(match a {
            Ok(Verdict::Allow) => "allow".into(),
            Ok(Verdict::Deny) => "deny".into(),
            Err(err) => format!("unknown ({err})"),
        });
        d.reconcile_agreement();
    }
}

/// The client side: sends `request` to the driver at `path` and returns its reply.
pub async fn ask(path: &Path, request: &AdminRequest) -> Result<AdminReply, AdminError> {
    let stream = UnixStream::connect(path).await.map_err(io(path))?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| AdminError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    line.push(b'\n');
    w.write_all(&line).await.map_err(io(path))?;
    let mut reply = String::new();
    BufReader::new(r)
        .read_line(&mut reply)
        .await
        .map_err(io(path))?;
    if reply.is_empty() {
        return Err(AdminError::NoReply);
    }
    serde_json::from_str(&reply).map_err(AdminError::BadReply)
}

/// A human-readable rendering of an explanation, as `explain` prints it.
pub fn render(e: &FlowExplanation) -> String {
    let mut out = format!("{}: {}\n", e.packet, e.verdict.to_uppercase());
    for d in &e.directions {
        out.push_str(&format!(
            "  {} of {}: {} — {}\n",
            d.direction, d.endpoint, d.calico, d.decided_by
        ));
        match &d.compiled {
            Some(v) => {
                out.push_str(&format!(
                    "    compiled (guard + npol, as VPP evaluates them): {v}{}\n",
                    if d.agree { "" } else { "  ✘ DISAGREES" }
                ));
                for s in &d.compiled_steps {
                    out.push_str(&format!("      {s}\n"));
                }
            }
            None => out.push_str("    compiled: not programmed\n"),
        }
        if let Some(v) = &d.vpp {
            out.push_str(&format!(
                "    VPP's own npol match: {v}{}\n",
                if v == &d.calico {
                    ""
                } else {
                    "  ✘ DISAGREES"
                }
            ));
        }
    }
    for n in &e.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}
