//! The fake API server answers kube-rs as the real one does where the watcher depends on it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::Api;
use kube_watch::fake::FakeApiServer;

const PATIENCE: Duration = Duration::from_secs(10);

fn service(ns: &str, name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Service::default()
    }
}

async fn next<S, T>(stream: &mut S) -> T
where
    S: futures::Stream<Item = kube::Result<T>> + Unpin,
{
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the watch stream goes on")
        .expect("a well-formed watch event")
}

#[tokio::test]
async fn list_carries_the_resource_version_and_namespaced_lists_filter() {
    let server = FakeApiServer::start().await.expect("starts");
    server.apply_service(service("a", "one"));
    let rv = server.apply_service(service("b", "two"));
    let client = server.client().expect("client");

    let all = Api::<Service>::all(client.clone())
        .list(&ListParams::default().limit(500))
        .await
        .expect("list");
    assert_eq!(all.items.len(), 2);
    assert_eq!(all.metadata.resource_version, Some(rv.to_string()));
    assert_eq!(all.items[1].metadata.resource_version, Some(rv.to_string()));

    let only_b = Api::<Service>::namespaced(client.clone(), "b")
        .list(&ListParams::default())
        .await
        .expect("namespaced list");
    assert_eq!(only_b.items.len(), 1);
    assert_eq!(only_b.items[0].metadata.name.as_deref(), Some("two"));

    let slices = Api::<EndpointSlice>::all(client)
        .list(&ListParams::default())
        .await
        .expect("slice list");
    assert!(slices.items.is_empty());
}

#[tokio::test]
async fn watch_replays_changes_after_its_version_then_streams() {
    let server = FakeApiServer::start().await.expect("starts");
    let from = server.apply_service(service("a", "one"));
    server.apply_service(service("a", "two"));
    let api = Api::<Service>::all(server.client().expect("client"));
    let mut events = api
        .watch(&WatchParams::default().timeout(30), &from.to_string())
        .await
        .expect("watch")
        .boxed();
    match next(&mut events).await {
        WatchEvent::Added(s) => assert_eq!(s.metadata.name.as_deref(), Some("two")),
        other => panic!("expected ADDED two, got {other:?}"),
    }
    server.apply_service(service("a", "two"));
    assert!(matches!(next(&mut events).await, WatchEvent::Modified(_)));
    let deleted_at = server.resource_version() + 1;
    assert!(server.delete_service("a", "one"));
    match next(&mut events).await {
        WatchEvent::Deleted(s) => {
            assert_eq!(s.metadata.resource_version, Some(deleted_at.to_string()))
        }
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_sends_bookmarks_when_asked() {
    let server = FakeApiServer::start().await.expect("starts");
    let client = server.client().expect("client");
    let mut events = Api::<Service>::all(client)
        .watch(
            &WatchParams::default(),
            &server.resource_version().to_string(),
        )
        .await
        .expect("watch")
        .boxed();
    let mut slice = EndpointSlice::default();
    slice.metadata.name = Some("s".into());
    let rv = server.apply_slice(slice);
    match next(&mut events).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv.to_string()),
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
}

#[tokio::test]
async fn too_old_resource_version_gets_an_error_event_410_expired() {
    let server = FakeApiServer::start().await.expect("starts");
    let old = server.apply_service(service("a", "one"));
    let api = Api::<Service>::all(server.client().expect("client"));
    let open = api
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .expect("watch")
        .boxed();
    server.expire_history();
    // The open watch is closed.
    let rest: Vec<_> = tokio::time::timeout(PATIENCE, open.try_collect::<Vec<_>>())
        .await
        .expect("closed in time")
        .expect("closed cleanly");
    assert!(rest.is_empty(), "{rest:?}");

    let mut events = api
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .expect("HTTP 200, as the real API server answers")
        .boxed();
    match next(&mut events).await {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
    assert!(
        events.next().await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn stopped_server_refuses_and_restarted_one_serves_the_same_objects_on_the_same_port() {
    let mut server = FakeApiServer::start().await.expect("starts");
    server.apply_service(service("a", "one"));
    let addr = server.addr();
    let api = Api::<Service>::all(server.client().expect("client"));
    server.stop().await;
    assert!(api.list(&ListParams::default()).await.is_err());
    server.apply_service(service("a", "two"));
    server.restart().await.expect("restarts");
    assert_eq!(server.addr(), addr);
    let listed = api
        .list(&ListParams::default())
        .await
        .expect("list after restart");
    assert_eq!(listed.items.len(), 2);
}
