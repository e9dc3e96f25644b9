//! An in-process fake Kubernetes API server for tests: Services and EndpointSlices, list and
//! watch, over plain HTTP on 127.0.0.1, driven through the real kube-rs client.
//!
//! It behaves where kube-runtime depends on it as the real one does: a watch from a version
//! older than its history gets HTTP 200 and an `ERROR` event with a 410 Status (anything else
//! makes the watcher retry the same version forever), and a restart forgets the history (a
//! restarted API server's watch cache starts at the current version), so clients relist.
//! It only reads over HTTP; tests change objects through its methods.

mod http;
mod store;

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tracing::debug;

use store::{Resource, Store};

/// A fake API server on `127.0.0.1:<random port>`. Dropping it stops it.
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    serving: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts serving, with no objects, at resourceVersion 1.
    pub async fn start() -> io::Result<FakeApiServer> {
        let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Store::new()));
        let serving = Some(tokio::spawn(serve(listener, store.clone())));
        Ok(FakeApiServer {
            addr,
            store,
            serving,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client pointed at this server.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        // Infallible: the URL is built from a socket address.
        let url = self
            .url()
            .parse()
            .expect("an http URL built from a socket address");
        kube::Client::try_from(kube::Config::new(url))
    }

    /// A kubeconfig file's text that points at this server (for `KUBECONFIG`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().resource_version()
    }

    /// Creates or replaces a Service (namespace `default` when unset) and notifies the open
    /// watches; returns its new resourceVersion.
    ///
    /// # Panics
    /// When the Service has no `metadata.name`: a bug in the test.
    pub fn apply_service(&self, svc: Service) -> u64 {
        let (namespace, name) = names(&svc.metadata);
        let object = serde_json::to_value(&svc).expect("a k8s-openapi Service serializes");
        self.store()
            .apply(Resource::Services, &namespace, &name, object)
    }

    /// Deletes a Service; `false` when there was none.
    pub fn delete_service(&self, namespace: &str, name: &str) -> bool {
        self.store()
            .delete(Resource::Services, namespace, name)
            .is_some()
    }

    /// Creates or replaces an EndpointSlice (namespace `default` when unset) and notifies the
    /// open watches; returns its new resourceVersion.
    ///
    /// # Panics
    /// When the slice has no `metadata.name`: a bug in the test.
    pub fn apply_slice(&self, slice: EndpointSlice) -> u64 {
        let (namespace, name) = names(&slice.metadata);
        let object = serde_json::to_value(&slice).expect("a k8s-openapi EndpointSlice serializes");
        self.store()
            .apply(Resource::EndpointSlices, &namespace, &name, object)
    }

    /// Deletes an EndpointSlice; `false` when there was none.
    pub fn delete_slice(&self, namespace: &str, name: &str) -> bool {
        self.store()
            .delete(Resource::EndpointSlices, namespace, name)
            .is_some()
    }

    /// Forgets the change history, like etcd compaction: a watch from any version seen so far
    /// is answered 410 Gone; open watches are closed, so clients notice at once.
    pub fn expire_history(&self) {
        self.store().expire_history();
    }

    /// Stops serving: open connections are closed and new ones refused. Objects are kept and
    /// may still be changed.
    pub async fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
            // Waiting makes sure the listener is closed before this returns.
            let _ = serving.await;
        }
        self.store().close_watches();
    }

    /// Serves again on the same port with the same objects, as a restarted API server: the
    /// change history is gone, so a client's next watch gets 410 and relists.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        let listener = listen(self.addr)?;
        self.store().expire_history();
        self.serving = Some(tokio::spawn(serve(listener, self.store.clone())));
        Ok(())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

fn names(meta: &ObjectMeta) -> (String, String) {
    let name = meta
        .name
        .clone()
        .expect("the fake API server needs objects with metadata.name");
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    (namespace, name)
}

/// A listener that can take the same port again right after `stop()`.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// Accepts connections until aborted; aborting drops the listener and every connection.
async fn serve(listener: TcpListener, store: Arc<Mutex<Store>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        debug!(error = %err, "fake API server: accept failed");
                        continue;
                    }
                };
                let store = store.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let resp = http::handle(&store, &req);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    if let Err(err) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        debug!(error = %err, "fake API server: connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
