//! `client_from_env` with `KUBECONFIG` (its own test binary: it sets a process-wide variable).

use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::Api;
use kube_watch::client_from_env;
use kube_watch::fake::FakeApiServer;

#[tokio::test]
async fn client_from_env_follows_kubeconfig() {
    let server = FakeApiServer::start().await.expect("starts");
    let mut svc = Service::default();
    svc.metadata.name = Some("front".into());
    server.apply_service(svc);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, server.kubeconfig_yaml()).expect("kubeconfig written");
    std::env::set_var("KUBECONFIG", &path);

    let client = client_from_env().await.expect("client from KUBECONFIG");
    let listed = Api::<Service>::all(client)
        .list(&ListParams::default())
        .await
        .expect("lists through the kubeconfig's server");
    assert_eq!(listed.items.len(), 1);
}
