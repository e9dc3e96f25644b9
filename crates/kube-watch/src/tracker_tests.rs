use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::SERVICE_NAME_LABEL;

fn svc(name: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("ns".into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn slice(name: &str, service: Option<&str>) -> EndpointSlice {
    EndpointSlice {
        address_type: "IPv4".into(),
        endpoints: Some(vec![]),
        metadata: ObjectMeta {
            namespace: Some("ns".into()),
            name: Some(name.into()),
            labels: service
                .map(|s| BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), s.to_owned())])),
            ..ObjectMeta::default()
        },
        ports: None,
    }
}

fn skey(name: &str) -> ServiceKey {
    ServiceKey {
        namespace: "ns".into(),
        name: name.into(),
    }
}

fn lkey(name: &str) -> SliceKey {
    SliceKey {
        namespace: "ns".into(),
        name: name.into(),
    }
}

fn converted(s: Service) -> KubeService {
    convert_service(s).expect("converts").1
}

/// Feeds a complete list of both resources.
fn synced(
    t: &mut Tracker,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
) -> Option<KubeUpdate> {
    assert_eq!(t.on_service(Event::Init), None);
    for s in services {
        assert_eq!(t.on_service(Event::InitApply(s)), None);
    }
    assert_eq!(t.on_slice(Event::Init), None);
    for s in slices {
        assert_eq!(t.on_slice(Event::InitApply(s)), None);
    }
    assert_eq!(
        t.on_service(Event::InitDone),
        None,
        "slices are not listed yet"
    );
    t.on_slice(Event::InitDone)
}

fn state_of(update: Option<KubeUpdate>) -> KubeState {
    match update {
        Some(KubeUpdate::Synced(state)) => state,
        other => panic!("expected Synced, got {other:?}"),
    }
}

#[test]
fn first_synced_waits_for_both_lists() {
    let mut t = Tracker::default();
    let state = state_of(synced(
        &mut t,
        vec![svc("a", "10.96.0.1")],
        vec![slice("a-1", Some("a")), slice("orphan", None)],
    ));
    assert_eq!(state.services.keys().collect::<Vec<_>>(), [&skey("a")]);
    assert_eq!(state.slices.keys().collect::<Vec<_>>(), [&lkey("a-1")]);
}

#[test]
fn changes_before_the_first_sync_fold_into_it() {
    let mut t = Tracker::default();
    t.on_service(Event::Init);
    t.on_service(Event::InitApply(svc("a", "10.96.0.1")));
    t.on_service(Event::InitDone);
    // The services watch runs while slices are still listing.
    assert_eq!(t.on_service(Event::Apply(svc("b", "10.96.0.2"))), None);
    assert_eq!(t.on_service(Event::Delete(svc("a", "10.96.0.1"))), None);
    t.on_slice(Event::Init);
    let state = state_of(t.on_slice(Event::InitDone));
    assert_eq!(state.services.keys().collect::<Vec<_>>(), [&skey("b")]);
}

#[test]
fn after_sync_each_change_is_one_update() {
    let mut t = Tracker::default();
    state_of(synced(&mut t, vec![svc("a", "10.96.0.1")], vec![]));
    assert_eq!(
        t.on_service(Event::Apply(svc("a", "10.96.0.9"))),
        Some(KubeUpdate::Service(
            skey("a"),
            Some(converted(svc("a", "10.96.0.9")))
        ))
    );
    assert_eq!(
        t.on_service(Event::Delete(svc("a", "10.96.0.9"))),
        Some(KubeUpdate::Service(skey("a"), None))
    );
    assert!(matches!(
        t.on_slice(Event::Apply(slice("b-1", Some("b")))),
        Some(KubeUpdate::Slice(k, Some(s))) if k == lkey("b-1") && s.service == "b"
    ));
}

#[test]
fn unchanged_objects_and_unknown_deletions_send_nothing() {
    let mut t = Tracker::default();
    state_of(synced(&mut t, vec![svc("a", "10.96.0.1")], vec![]));
    let mut same = svc("a", "10.96.0.1");
    same.metadata.resource_version = Some("99".into());
    assert_eq!(t.on_service(Event::Apply(same)), None);
    assert_eq!(t.on_service(Event::Delete(svc("never", "10.96.0.3"))), None);
    assert_eq!(t.on_slice(Event::Apply(slice("orphan", None))), None);
}

#[test]
fn slice_losing_its_service_label_is_removed() {
    let mut t = Tracker::default();
    state_of(synced(&mut t, vec![], vec![slice("a-1", Some("a"))]));
    assert_eq!(
        t.on_slice(Event::Apply(slice("a-1", None))),
        Some(KubeUpdate::Slice(lkey("a-1"), None))
    );
}

#[test]
fn relist_of_one_resource_resyncs_with_the_complete_state() {
    let mut t = Tracker::default();
    state_of(synced(
        &mut t,
        vec![svc("a", "10.96.0.1"), svc("b", "10.96.0.2")],
        vec![slice("a-1", Some("a"))],
    ));
    // The services watch expired; "b" was deleted meanwhile.
    assert_eq!(t.on_service(Event::Init), None);
    assert_eq!(t.on_service(Event::InitApply(svc("a", "10.96.0.1"))), None);
    // A slice change during the relist folds into the coming Synced.
    assert_eq!(t.on_slice(Event::Apply(slice("a-2", Some("a")))), None);
    let state = state_of(t.on_service(Event::InitDone));
    assert_eq!(state.services.keys().collect::<Vec<_>>(), [&skey("a")]);
    assert_eq!(
        state.slices.keys().collect::<Vec<_>>(),
        [&lkey("a-1"), &lkey("a-2")]
    );
    // And single updates flow again.
    assert!(t.on_service(Event::Apply(svc("c", "10.96.0.3"))).is_some());
}

#[test]
fn relist_of_both_resources_ends_in_one_synced() {
    let mut t = Tracker::default();
    state_of(synced(
        &mut t,
        vec![svc("a", "10.96.0.1")],
        vec![slice("a-1", Some("a"))],
    ));
    t.on_service(Event::Init);
    t.on_slice(Event::Init);
    assert_eq!(
        t.on_service(Event::InitDone),
        None,
        "slices still relisting"
    );
    let state = state_of(t.on_slice(Event::InitDone));
    assert!(state.services.is_empty() && state.slices.is_empty());
}

#[test]
fn a_failed_relist_start_keeps_the_state_for_the_next_one() {
    let mut t = Tracker::default();
    state_of(synced(&mut t, vec![svc("a", "10.96.0.1")], vec![]));
    // ListWatch emits Init before its list; a failed list means another Init follows.
    t.on_service(Event::Init);
    t.on_service(Event::Init);
    t.on_service(Event::InitApply(svc("a", "10.96.0.1")));
    let state = state_of(t.on_service(Event::InitDone));
    assert_eq!(state.services.len(), 1);
}

#[test]
fn expired_watch_holds_the_next_synced_until_its_relist_is_in() {
    let mut t = Tracker::default();
    state_of(synced(
        &mut t,
        vec![svc("a", "10.96.0.1")],
        vec![slice("a-1", Some("a"))],
    ));
    // Both watches got 410; the slices relist first.
    t.services_expired();
    t.slices_expired();
    t.on_slice(Event::Init);
    assert_eq!(
        t.on_slice(Event::InitDone),
        None,
        "services are known to be stale"
    );
    t.on_service(Event::Init);
    t.on_service(Event::InitApply(svc("b", "10.96.0.2")));
    let state = state_of(t.on_service(Event::InitDone));
    assert_eq!(state.services.keys().collect::<Vec<_>>(), [&skey("b")]);
    assert!(state.slices.is_empty());
}
