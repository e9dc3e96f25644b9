//! Connecting to the API server the way a pod (or a developer) would.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no Kubernetes configuration (neither KUBECONFIG/~/.kube/config nor in-cluster): {0}")]
    Config(#[from] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// A client from the environment: a kubeconfig (`KUBECONFIG`, else `~/.kube/config`) when one
/// exists, else the in-cluster service account (`kube::Config::infer`).
pub async fn client_from_env() -> Result<kube::Client, ClientError> {
    let config = kube::Config::infer().await?;
    Ok(kube::Client::try_from(config)?)
}
