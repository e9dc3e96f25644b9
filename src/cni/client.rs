//! A client of the CNI server over its unix socket, as the plugin connects: for tests,
//! benchmarks and operators checking a node.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use super::proto::cni_dataplane_client::CniDataplaneClient;

/// Connects to the CNI server at `path`.
pub async fn connect(path: &Path) -> Result<CniDataplaneClient<Channel>, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the API but unused: every connection goes to the socket.
    let channel = Endpoint::from_static("http://cni-server.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(CniDataplaneClient::new(channel))
}
