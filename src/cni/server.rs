//! The gRPC server: `Add` and `Del` as the CNI plugin calls them (see the module docs of
//! [`crate::cni`]). Every failure is an answer (`successful: false` and a sentence), never a
//! gRPC error, and leaves nothing half-built behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_model::{PodBackend, PodInterface};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{debug, info, warn};

use super::book::{PodAnswer, PodQuery, PodRequest};
use super::network::PodNetwork;
use super::proto;
use super::request::{key_from_del, pod_from_add, PodSettings};
use crate::reconcile::ReconcileSummary;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI socket {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Serves the CNI plugin; cheap to clone (one per connection).
pub struct CniServer {
    agent: mpsc::Sender<PodQuery>,
    summary: watch::Receiver<ReconcileSummary>,
    net: Arc<dyn PodNetwork>,
    settings: PodSettings,
    /// How long an `Add` waits for VPP's side (the plugin gives up after 5 s).
    timeout: Duration,
}

impl Clone for CniServer {
    fn clone(&self) -> Self {
        CniServer {
            agent: self.agent.clone(),
            summary: self.summary.clone(),
            net: self.net.clone(),
            settings: self.settings.clone(),
            timeout: self.timeout,
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("netlink task failed: {e}"))
}

impl CniServer {
    pub fn new(
        agent: mpsc::Sender<PodQuery>,
        summary: watch::Receiver<ReconcileSummary>,
        net: Arc<dyn PodNetwork>,
        settings: PodSettings,
        timeout: Duration,
    ) -> Self {
        CniServer {
            agent,
            summary,
            net,
            settings,
            timeout,
        }
    }

    async fn ask(&self, request: PodRequest) -> Result<PodAnswer, String> {
        let (reply, answer) = oneshot::channel();
        self.agent
            .send(PodQuery { request, reply })
            .await
            .map_err(|_| "the driver is shutting down".to_string())?;
        answer
            .await
            .map_err(|_| "the driver is shutting down".to_string())
    }

    /// `Add`: the reply the plugin gets.
    pub async fn add(&self, req: proto::AddRequest) -> proto::AddReply {
        let started = Instant::now();
        let name = req.desired_host_interface_name.clone();
        match self.try_add(req).await {
            Ok(pod) => {
                info!(pod = %pod.workload, interface = %pod.host_ifname, backend = %pod.backend,
                    ms = started.elapsed().as_millis() as u64, "CNI Add done");
                proto::AddReply {
                    successful: true,
                    error_message: String::new(),
                    host_interface_name: pod.host_ifname.clone(),
                    container_mac: pod.reported_mac().to_string(),
                }
            }
            Err(why) => {
                warn!(interface = %name, error = %why, "CNI Add failed");
                proto::AddReply {
                    successful: false,
                    error_message: why,
                    host_interface_name: String::new(),
                    container_mac: String::new(),
                }
            }
        }
    }

    async fn try_add(&self, req: proto::AddRequest) -> Result<PodInterface, String> {
        let mut pod = pod_from_add(req, &self.settings)?;
        let net = self.net.clone();
        let netns = pod.key.netns.clone();
        if !blocking(move || net.netns_exists(&netns)).await? {
            return Err(format!(
                "network namespace {} does not exist",
                pod.key.netns.display()
            ));
        }
        match self.ask(PodRequest::Reserve(Box::new(pod.clone()))).await? {
            PodAnswer::Reserved => {}
            PodAnswer::Existing(have) => {
                debug!(interface = %have.host_ifname, "repeated CNI Add: already wired");
                return Ok(*have);
            }
            PodAnswer::Refused(why) => return Err(why),
            other => return Err(format!("unexpected answer {other:?}")),
        }
        let mut veth = false;
        let built = self.build(&mut pod, &mut veth).await;
        if let Err(why) = built {
            self.undo(&pod, veth).await;
            return Err(why);
        }
        Ok(pod)
    }

    async fn build(&self, pod: &mut PodInterface, veth: &mut bool) -> Result<(), String> {
        if pod.backend == PodBackend::Veth {
            let net = self.net.clone();
            let p = pod.clone();
            pod.container_mac = Some(blocking(move || net.create_veth(&p)).await??);
            *veth = true;
        }
        match self.ask(PodRequest::Commit(Box::new(pod.clone()))).await? {
            PodAnswer::Committed => {}
            PodAnswer::Refused(why) => return Err(why),
            other => return Err(format!("unexpected answer {other:?}")),
        }
        self.wait_ready(&pod.host_ifname).await?;
        if pod.backend == PodBackend::Tun {
            let net = self.net.clone();
            let p = pod.clone();
            blocking(move || net.configure_tun(&p)).await??;
        }
        Ok(())
    }

    /// Takes back what a failed `Add` made: the pod leaves the model (the reconciler
    /// deletes whatever of VPP's side it built), and the veth goes.
    async fn undo(&self, pod: &PodInterface, veth: bool) {
        if let Err(e) = self.ask(PodRequest::Remove(pod.key.clone())).await {
            warn!(error = %e, "could not withdraw a failed pod");
        }
        if veth {
            let net = self.net.clone();
            let name = pod.host_ifname.clone();
            match blocking(move || net.delete_veth(&name)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => {
                    warn!(interface = %pod.host_ifname, error = %e, "could not delete the veth of a failed pod")
                }
            }
        }
    }

    async fn wait_ready(&self, name: &str) -> Result<(), String> {
        let mut rx = self.summary.clone();
        let done = |s: &ReconcileSummary| {
            s.pods
                .get(name)
                .is_some_and(|p| p.ready || p.failure.as_ref().is_some_and(|f| f.1))
        };
        let waited = tokio::time::timeout(self.timeout, rx.wait_for(done)).await;
        let s = match waited {
            Ok(Ok(s)) => s.clone(),
            Ok(Err(_)) => return Err("the dataplane has stopped".into()),
            Err(_) => {
                let s = self.summary.borrow().clone();
                let why = match s.pods.get(name).and_then(|p| p.failure.clone()) {
                    Some((e, _)) => e,
                    None if !s.connected => "VPP is not connected".into(),
                    None => "still being built".into(),
                };
                return Err(format!(
                    "VPP's side of {name} was not ready within {:?}: {why}",
                    self.timeout
                ));
            }
        };
        match s.pods.get(name) {
            Some(p) if p.ready => Ok(()),
            Some(p) => Err(format!(
                "VPP cannot build {name}: {}",
                p.failure.as_ref().map(|f| f.0.as_str()).unwrap_or("?")
            )),
            None => Err(format!("VPP's side of {name} is gone")),
        }
    }

    /// `Del`: succeeds for a pod this driver does not know (the plugin retries `Del` and
    /// kubelet calls it for pods that never got their network).
    pub async fn del(&self, req: proto::DelRequest) -> proto::DelReply {
        match self.try_del(req).await {
            Ok(()) => proto::DelReply {
                successful: true,
                error_message: String::new(),
            },
            Err(why) => {
                warn!(error = %why, "CNI Del failed");
                proto::DelReply {
                    successful: false,
                    error_message: why,
                }
            }
        }
    }

    async fn try_del(&self, req: proto::DelRequest) -> Result<(), String> {
        let key = key_from_del(req)?;
        let pod = match self.ask(PodRequest::Remove(key.clone())).await? {
            PodAnswer::Removed(Some(pod)) => pod,
            PodAnswer::Removed(None) => {
                debug!(pod = %key, "CNI Del of a pod this driver does not know");
                return Ok(());
            }
            other => return Err(format!("unexpected answer {other:?}")),
        };
        // VPP's side goes first (an af_packet interface on a vanished link is still
        // deleted, but in this order nothing is ever left dangling).
        let mut rx = self.summary.clone();
        let name = pod.host_ifname.clone();
        let gone = tokio::time::timeout(self.timeout, rx.wait_for(|s| !s.pods.contains_key(&name)))
            .await
            .is_ok_and(|r| r.is_ok());
        if !gone {
            warn!(interface = %name, "VPP's side of the pod is not deleted yet; the reconciler goes on");
        }
        if pod.backend == PodBackend::Veth {
            let net = self.net.clone();
            blocking(move || net.delete_veth(&name)).await??;
        }
        info!(pod = %pod.workload, interface = %pod.host_ifname, "CNI Del done");
        Ok(())
    }

    /// Keeps TUN pods' routes: VPP re-creates a tap in the pod's namespace after it
    /// restarts (with its addresses), but the routes went with the old one. Configuring is
    /// idempotent, so it is redone whenever a TUN pod's interface or VPP connection is new.
    pub async fn keep_tun_routes(self) {
        let mut rx = self.summary.clone();
        let mut configured: BTreeMap<String, (crate::dataplane::SwIfIndex, u64)> = BTreeMap::new();
        loop {
            let current: Vec<(String, (crate::dataplane::SwIfIndex, u64))> = {
                let s = rx.borrow_and_update();
                s.pods
                    .iter()
                    .filter_map(|(n, p)| {
                        p.sw_if_index
                            .filter(|_| p.ready)
                            .map(|i| (n.clone(), (i, s.connections)))
                    })
                    .collect()
            };
            configured.retain(|n, _| current.iter().any(|(c, _)| c == n));
            let stale: Vec<_> = current
                .into_iter()
                .filter(|(n, at)| configured.get(n) != Some(at))
                .collect();
            if !stale.is_empty() {
                if let Ok(PodAnswer::Pods(pods)) = self.ask(PodRequest::List).await {
                    for (name, at) in stale {
                        let Some(pod) = pods.iter().find(|p| p.host_ifname == name) else {
                            continue;
                        };
                        if pod.backend == PodBackend::Tun {
                            let net = self.net.clone();
                            let p = pod.clone();
                            if let Ok(Err(e)) | Err(e) =
                                blocking(move || net.configure_tun(&p)).await
                            {
                                warn!(interface = %name, error = %e, "cannot restore a TUN pod's routes");
                                continue;
                            }
                        }
                        configured.insert(name, at);
                    }
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl proto::cni_dataplane_server::CniDataplane for CniServer {
    async fn add(
        &self,
        request: tonic::Request<proto::AddRequest>,
    ) -> Result<tonic::Response<proto::AddReply>, tonic::Status> {
        Ok(tonic::Response::new(
            CniServer::add(self, request.into_inner()).await,
        ))
    }

    async fn del(
        &self,
        request: tonic::Request<proto::DelRequest>,
    ) -> Result<tonic::Response<proto::DelReply>, tonic::Status> {
        Ok(tonic::Response::new(
            CniServer::del(self, request.into_inner()).await,
        ))
    }
}

/// Listens on `path` (a stale socket file is replaced) and serves until the task is
/// dropped or aborted; also keeps TUN pods' routes.
pub fn serve(path: &Path, server: CniServer) -> Result<JoinHandle<()>, CniError> {
    let listen = |source| CniError::Listen {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen(e)),
    }
    let listener = UnixListener::bind(path).map_err(listen)?;
    info!(socket = %path.display(), backend = %server.settings.backend, "serving the CNI plugin (gRPC dataplane)");
    let keeper = tokio::spawn(server.clone().keep_tun_routes());
    let svc = proto::cni_dataplane_server::CniDataplaneServer::new(server);
    Ok(tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await;
        keeper.abort();
        if let Err(e) = r {
            warn!(error = %e, "the CNI server stopped");
        }
    }))
}
