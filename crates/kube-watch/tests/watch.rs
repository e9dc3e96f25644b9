//! `watch()` through the real kube-rs client against the fake API server: initial sync, single
//! updates, a relist after 410 Gone, and an API server outage.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use calico_model::kube::{KubeState, KubeUpdate, ServiceKey, SliceKey};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_watch::fake::FakeApiServer;
use kube_watch::{convert_service, convert_slice, watch, SERVICE_NAME_LABEL};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Long enough for a loaded CI machine; a broken test fails after it instead of hanging.
const PATIENCE: Duration = Duration::from_secs(15);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("kube_watch=debug")
        .try_init();
}

fn service(ns: &str, name: &str, cluster_ip: &str, port: i32) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            cluster_ips: Some(vec![cluster_ip.into()]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn slice(ns: &str, name: &str, service: Option<&str>, addresses: &[&str]) -> EndpointSlice {
    EndpointSlice {
        address_type: "IPv4".into(),
        endpoints: Some(
            addresses
                .iter()
                .map(|a| Endpoint {
                    addresses: vec![(*a).into()],
                    node_name: Some("node-a".into()),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: service
                .map(|s| BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), s.to_owned())])),
            ..ObjectMeta::default()
        },
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            ..EndpointPort::default()
        }]),
    }
}

/// What the driver should hold for these objects.
fn expected(services: &[Service], slices: &[EndpointSlice]) -> KubeState {
    KubeState {
        services: services
            .iter()
            .map(|s| convert_service(s.clone()).expect("test Service converts"))
            .collect(),
        slices: slices
            .iter()
            .filter_map(|s| convert_slice(s.clone()).ok())
            .collect(),
    }
}

fn skey(ns: &str, name: &str) -> ServiceKey {
    ServiceKey {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn lkey(ns: &str, name: &str) -> SliceKey {
    SliceKey {
        namespace: ns.into(),
        name: name.into(),
    }
}

struct Watching {
    rx: mpsc::Receiver<KubeUpdate>,
    task: JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start_watch(server: &FakeApiServer) -> Watching {
    let client = server.client().expect("client for the fake API server");
    let (tx, rx) = mpsc::channel(64);
    Watching {
        rx,
        task: tokio::spawn(watch(client, tx)),
    }
}

impl Watching {
    async fn next(&mut self) -> KubeUpdate {
        tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("no update in time")
            .expect("watch() ended")
    }

    async fn synced(&mut self) -> KubeState {
        match self.next().await {
            KubeUpdate::Synced(state) => state,
            other => panic!("expected Synced, got {other:?}"),
        }
    }

    /// Waits for a `Synced` holding `want`, within `within`. Single updates and earlier
    /// `Synced`s may come first (a relist of one resource resyncs before the other's is in);
    /// returns how many updates came first.
    async fn synced_to(
        &mut self,
        want: &KubeState,
        within: Duration,
        singles_allowed: bool,
    ) -> usize {
        let deadline = Instant::now() + within;
        let mut before = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let update = tokio::time::timeout(left, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no Synced with {want:?} within {within:?}"))
                .expect("watch() ended");
            match update {
                KubeUpdate::Synced(state) if state == *want => return before,
                KubeUpdate::Synced(_) => {}
                single => assert!(singles_allowed, "unexpected single update {single:?}"),
            }
            before += 1;
        }
    }

    async fn nothing_for(&mut self, quiet: Duration) {
        if let Ok(update) = tokio::time::timeout(quiet, self.rx.recv()).await {
            panic!("expected no update, got {update:?}");
        }
    }
}

async fn server() -> FakeApiServer {
    init_logs();
    FakeApiServer::start()
        .await
        .expect("fake API server starts")
}

#[tokio::test]
async fn first_update_is_synced_with_both_lists() {
    let server = server().await;
    let services = [
        service("web", "front", "10.96.0.10", 80),
        service("db", "pg", "10.96.0.20", 5432),
    ];
    let slices = [
        slice("web", "front-1", Some("front"), &["10.0.1.5", "10.0.1.6"]),
        slice("db", "pg-1", Some("pg"), &["10.0.2.5"]),
        slice("db", "unowned", None, &["10.0.2.9"]),
    ];
    for s in &services {
        server.apply_service(s.clone());
    }
    for s in &slices {
        server.apply_slice(s.clone());
    }
    let mut w = start_watch(&server);
    let state = w.synced().await;
    assert_eq!(state, expected(&services, &slices));
    assert_eq!(
        state.slices.len(),
        2,
        "the slice without a Service label is ignored"
    );
    w.nothing_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn empty_cluster_still_syncs() {
    let server = server().await;
    let mut w = start_watch(&server);
    assert_eq!(w.synced().await, KubeState::default());
}

#[tokio::test]
async fn adds_modifications_and_deletions_arrive_as_updates() {
    let server = server().await;
    server.apply_service(service("web", "front", "10.96.0.10", 80));
    let mut w = start_watch(&server);
    w.synced().await;

    let added = service("web", "api", "10.96.0.11", 8443);
    server.apply_service(added.clone());
    let want = convert_service(added).expect("converts").1;
    assert_eq!(
        w.next().await,
        KubeUpdate::Service(skey("web", "api"), Some(want))
    );

    let modified = service("web", "api", "10.96.0.11", 9443);
    server.apply_service(modified.clone());
    let want = convert_service(modified).expect("converts").1;
    assert_eq!(
        w.next().await,
        KubeUpdate::Service(skey("web", "api"), Some(want))
    );

    let s = slice("web", "api-1", Some("api"), &["10.0.1.7"]);
    server.apply_slice(s.clone());
    let want = convert_slice(s).expect("converts").1;
    assert_eq!(
        w.next().await,
        KubeUpdate::Slice(lkey("web", "api-1"), Some(want))
    );

    let s = slice("web", "api-1", Some("api"), &["10.0.1.7", "10.0.1.8"]);
    server.apply_slice(s.clone());
    let want = convert_slice(s).expect("converts").1;
    assert_eq!(
        w.next().await,
        KubeUpdate::Slice(lkey("web", "api-1"), Some(want))
    );

    assert!(server.delete_slice("web", "api-1"));
    assert_eq!(
        w.next().await,
        KubeUpdate::Slice(lkey("web", "api-1"), None)
    );
    assert!(server.delete_service("web", "api"));
    assert_eq!(
        w.next().await,
        KubeUpdate::Service(skey("web", "api"), None)
    );

    // A change that does not alter what the driver sees is not sent.
    server.apply_service(service("web", "front", "10.96.0.10", 80));
    w.nothing_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn expired_history_relists_and_resyncs() {
    let server = server().await;
    let front = service("web", "front", "10.96.0.10", 80);
    let old = service("web", "old", "10.96.0.12", 80);
    let front_slice = slice("web", "front-1", Some("front"), &["10.0.1.5"]);
    server.apply_service(front.clone());
    server.apply_service(old);
    server.apply_slice(front_slice.clone());
    let mut w = start_watch(&server);
    w.synced().await;

    assert!(server.delete_service("web", "old"));
    let moved = slice("web", "front-1", Some("front"), &["10.0.1.9"]);
    server.apply_slice(moved.clone());
    server.expire_history();

    // The single updates may or may not get through before the watch closes; the relist's
    // Synced must hold the complete, current state either way.
    w.synced_to(&expected(&[front], &[moved]), PATIENCE, true)
        .await;
    // Single updates flow again after the relist.
    let added = service("web", "new", "10.96.0.13", 80);
    server.apply_service(added.clone());
    let want = convert_service(added).expect("converts").1;
    assert_eq!(
        w.next().await,
        KubeUpdate::Service(skey("web", "new"), Some(want))
    );
}

#[tokio::test]
async fn api_server_outage_keeps_state_then_resyncs_within_seconds() {
    let mut server = server().await;
    let front = service("web", "front", "10.96.0.10", 80);
    server.apply_service(front.clone());
    server.apply_service(service("web", "gone", "10.96.0.12", 80));
    server.apply_slice(slice("web", "front-1", Some("front"), &["10.0.1.5"]));
    let mut w = start_watch(&server);
    w.synced().await;

    server.stop().await;
    // Changes the watcher cannot see; a removal among them.
    assert!(server.delete_service("web", "gone"));
    let moved = slice("web", "front-1", Some("front"), &["10.0.1.9"]);
    server.apply_slice(moved.clone());
    let added = service("db", "pg", "10.96.0.20", 5432);
    server.apply_service(added.clone());
    // Long enough for the backoff to reach its cap: nothing is said while unreachable.
    w.nothing_for(Duration::from_secs(3)).await;

    server.restart().await.expect("restart on the same port");
    let restarted = Instant::now();
    let want = expected(&[added, front], &[moved]);
    let earlier = w.synced_to(&want, Duration::from_secs(5), false).await;
    eprintln!(
        "resynced {:?} after the restart, after {earlier} partial Synced",
        restarted.elapsed()
    );
}

#[tokio::test]
async fn watch_returns_when_the_receiver_is_dropped() {
    let server = server().await;
    let client = server.client().expect("client for the fake API server");
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(watch(client, tx));
    drop(rx);
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("watch() returned in time")
        .expect("watch() did not panic");
}
