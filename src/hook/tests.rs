//! The VPP hook: status mapping, the published copy of the desired state, and the whole path
//! (agent → compiler → reconciler → fake VPP → status frames to Felix).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use calico_compile::{Compiler, InterfaceKey};
use calico_model::{Changes, Model, WorkloadEndpointId};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::endpoints::EndpointDirectory;
use super::*;
use crate::agent::{ingest_frame, Agent, IngestStats};
use crate::dataplane::fake;
use crate::felix::codec::{encode_to_dataplane, FrameDecoder};
use crate::felix::proto;
use crate::felix::proto::from_dataplane::Payload as Out;
use crate::felix::proto::to_dataplane::Payload;
use crate::felix::script::{self, ClusterShape};
use crate::logging::LogControl;
use crate::reconcile::apply_diff;
use crate::reconcile::{EndpointOperStatus, ReconcilerConfig};
use crate::status::{self, EndpointStatus, StatusEvent};

fn shape(pods: usize) -> ClusterShape {
    ClusterShape {
        namespaces: 2,
        pods,
        policies: 6,
        tiers: 2,
        pools: 1,
        services: 1,
        remote_nodes: 1,
    }
}

/// The model after `msgs`, and the changes they made.
fn ingest(model: &mut Model, msgs: &[proto::ToDataplane]) -> Changes {
    let mut stats = IngestStats::default();
    let mut pending = Changes::default();
    for m in msgs {
        ingest_frame(&m.encode_to_vec(), model, &mut stats, &mut pending);
    }
    pending
}

fn synced_model(shape: &ClusterShape) -> Model {
    let mut model = Model::default();
    let mut msgs = script::snapshot(shape);
    msgs.push(script::in_sync());
    ingest(&mut model, &msgs);
    model
}

fn wid(i: usize, shape: &ClusterShape) -> WorkloadEndpointId {
    let p = script::workload_id(i, shape.namespaces);
    WorkloadEndpointId {
        orchestrator_id: p.orchestrator_id,
        workload_id: p.workload_id,
        endpoint_id: p.endpoint_id,
    }
}

fn update(id: &WorkloadEndpointId, iface: &str, status: EndpointOperStatus) -> EndpointStatusEvent {
    EndpointStatusEvent::Update {
        endpoint: id.clone().into(),
        interface: InterfaceKey(iface.into()),
        status,
        reason: None,
    }
}

fn remove(id: &WorkloadEndpointId, iface: &str) -> EndpointStatusEvent {
    EndpointStatusEvent::Remove {
        endpoint: id.clone().into(),
        interface: InterfaceKey(iface.into()),
    }
}

#[test]
fn reconciler_status_maps_to_the_felix_endpoint_with_its_summary() {
    let s = shape(3);
    let model = synced_model(&s);
    let mut dir = EndpointDirectory::default();
    assert!(dir.resync(&model).is_empty());
    // Three workloads and the node's host endpoint.
    assert_eq!(dir.len(), 4);
    let id = wid(1, &s);
    let ev = dir.on_status(update(&id, &script::pod_iface(1), EndpointOperStatus::Up));
    let Some(StatusEvent::Workload {
        id: got,
        status: Some((EndpointStatus::Up, Some(summary))),
    }) = ev
    else {
        panic!("unexpected {ev:?}");
    };
    assert_eq!(got, id);
    assert_eq!(summary.name, script::pod_iface(1));
    assert_eq!(
        summary.ipv4_nets[0].to_string(),
        format!("{}/32", script::pod_ip(1))
    );
}

#[test]
fn workload_error_is_reported_down_never_up() {
    let s = shape(2);
    let model = synced_model(&s);
    let mut dir = EndpointDirectory::default();
    dir.resync(&model);
    let id = wid(0, &s);
    let ev = dir.on_status(update(
        &id,
        &script::pod_iface(0),
        EndpointOperStatus::Error,
    ));
    assert!(matches!(
        ev,
        Some(StatusEvent::Workload {
            status: Some((EndpointStatus::Down, _)),
            ..
        })
    ));
}

#[test]
fn status_of_unknown_endpoints_is_ignored() {
    let mut dir = EndpointDirectory::default();
    let id = wid(0, &shape(1));
    assert_eq!(
        dir.on_status(update(&id, "x", EndpointOperStatus::Up)),
        None
    );
    assert_eq!(dir.on_status(remove(&id, "x")), None);
}

#[test]
fn removed_endpoint_is_retracted_once_and_late_reconciler_events_are_swallowed() {
    let s = shape(2);
    let mut model = synced_model(&s);
    let mut dir = EndpointDirectory::default();
    dir.resync(&model);
    let id = wid(0, &s);
    let iface = script::pod_iface(0);
    assert!(dir
        .on_status(update(&id, &iface, EndpointOperStatus::Up))
        .is_some());

    let p = script::workload_id(0, s.namespaces);
    let changes = ingest(
        &mut model,
        &[script::envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove { id: Some(p) },
        ))],
    );
    let out = dir.workloads_changed(&model, &changes.workload_endpoints);
    assert_eq!(
        out,
        vec![StatusEvent::Workload {
            id: id.clone(),
            status: None
        }]
    );
    // A pass on the older state, then the reconciler's own remove: Felix hears neither.
    assert_eq!(
        dir.on_status(update(&id, &iface, EndpointOperStatus::Up)),
        None
    );
    assert_eq!(dir.on_status(remove(&id, &iface)), None);
    assert_eq!(dir.len(), 2, "one workload and the host endpoint left");
}

#[test]
fn endpoint_never_reported_leaves_without_a_removal() {
    let s = shape(2);
    let mut model = synced_model(&s);
    let mut dir = EndpointDirectory::default();
    dir.resync(&model);
    let p = script::workload_id(1, s.namespaces);
    let changes = ingest(
        &mut model,
        &[script::envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove { id: Some(p) },
        ))],
    );
    assert!(dir
        .workloads_changed(&model, &changes.workload_endpoints)
        .is_empty());
    assert_eq!(dir.len(), 2, "one workload and the host endpoint left");
}

#[test]
fn endpoint_moving_to_a_new_interface_keeps_its_status() {
    let s = shape(1);
    let model = synced_model(&s);
    let mut dir = EndpointDirectory::default();
    dir.resync(&model);
    let id = wid(0, &s);
    dir.on_status(update(&id, "old", EndpointOperStatus::Up));
    // The reconciler reports the new interface before removing the old one.
    assert!(dir
        .on_status(update(&id, "new", EndpointOperStatus::Up))
        .is_some());
    assert_eq!(dir.on_status(remove(&id, "old")), None);
    assert_eq!(
        dir.on_status(remove(&id, "new")),
        Some(StatusEvent::Workload { id, status: None })
    );
}

#[test]
fn changed_addresses_of_a_reported_endpoint_are_sent_again() {
    let s = shape(1);
    let mut model = synced_model(&s);
    let mut dir = EndpointDirectory::default();
    dir.resync(&model);
    let id = wid(0, &s);
    dir.on_status(update(&id, &script::pod_iface(0), EndpointOperStatus::Up));
    let mut ep = script::workload(0, &s);
    ep.ipv4_nets = vec!["10.65.9.9/32".into()];
    let changes = ingest(
        &mut model,
        &[script::envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(script::workload_id(0, s.namespaces)),
                endpoint: Some(ep),
            },
        ))],
    );
    let out = dir.workloads_changed(&model, &changes.workload_endpoints);
    let [StatusEvent::Workload {
        status: Some((EndpointStatus::Up, Some(summary))),
        ..
    }] = out.as_slice()
    else {
        panic!("unexpected {out:?}");
    };
    assert_eq!(summary.ipv4_nets[0].to_string(), "10.65.9.9/32");
}

#[test]
fn published_copy_follows_the_compiler_through_deltas() {
    let s = shape(12);
    let mut model = synced_model(&s);
    let mut compiler = Compiler::new(&model);
    let mut copy = compiler.desired().clone();
    for d in script::deltas(&s, 40) {
        let changes = ingest(&mut model, &[d]);
        let diff = compiler.apply_changes(&model, &changes);
        apply_diff(&mut copy, diff);
        assert_eq!(&copy, compiler.desired());
    }
    // Endpoints, a policy and an IP set going away.
    let removals = vec![
        script::envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove {
                id: Some(script::workload_id(0, s.namespaces)),
            },
        )),
        script::envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove {
                id: Some(script::workload_id(5, s.namespaces)),
            },
        )),
        script::envelope(Payload::ActivePolicyRemove(proto::ActivePolicyRemove {
            id: Some(script::policy_id(0, 1, false)),
        })),
        script::envelope(Payload::IpsetRemove(proto::IpSetRemove {
            id: script::named_port_set_id(1),
        })),
    ];
    for r in removals {
        let changes = ingest(&mut model, &[r]);
        let diff = compiler.apply_changes(&model, &changes);
        apply_diff(&mut copy, diff);
        assert_eq!(&copy, compiler.desired());
    }
    // A second session's full compile, sent as a difference.
    let fresh = Compiler::new(&model);
    apply_diff(&mut copy, compiler.desired().diff(fresh.desired()));
    assert_eq!(&copy, fresh.desired());
}

struct Felix {
    input: DuplexStream,
    output: DuplexStream,
    buf: BytesMut,
}

impl Felix {
    async fn send(&mut self, msgs: &[proto::ToDataplane]) {
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend_from_slice(&encode_to_dataplane(m));
        }
        self.input.write_all(&bytes).await.unwrap();
    }

    async fn recv(&mut self) -> proto::FromDataplane {
        let d = FrameDecoder::new(1 << 20);
        loop {
            if let Some(f) = d.decode(&mut self.buf).unwrap() {
                return proto::FromDataplane::decode(f).unwrap();
            }
            let n = self.output.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "driver closed its output");
        }
    }

    /// Workload status frames until `done` says so: (workload id, status or None for remove).
    async fn statuses_until(
        &mut self,
        seen: &mut BTreeMap<String, Option<String>>,
        done: impl Fn(&BTreeMap<String, Option<String>>) -> bool,
    ) {
        while !done(seen) {
            match self.recv().await.payload {
                Some(Out::WorkloadEndpointStatusUpdate(u)) => {
                    let id = u.id.unwrap();
                    assert!(u.endpoint.is_some(), "status without the endpoint");
                    seen.insert(id.workload_id, Some(u.status.unwrap().status));
                }
                Some(Out::WorkloadEndpointStatusRemove(r)) => {
                    seen.insert(r.id.unwrap().workload_id, None);
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn hook_programs_the_fake_vpp_and_felix_hears_every_endpoint_up_then_removed() {
    let s = shape(4);
    let (dp, vpp) = fake::new();
    for i in 0..s.pods {
        vpp.add_interface(&format!("tap{i}"), &script::pod_iface(i));
    }
    let rc = ReconcilerConfig {
        min_apply_interval: Duration::from_millis(10),
        ..ReconcilerConfig::default()
    };
    let (status_tx, status_rx) = status::channel();
    let (hook, mut monitor) = VppHook::start(Reconciler::new(dp, rc), status_tx);
    let (felix_in, driver_in) = tokio::io::duplex(1 << 20);
    let (driver_out, felix_out) = tokio::io::duplex(1 << 20);
    let mut agent = Agent::new(Box::new(hook), status_rx, LogControl::detached(), 1 << 20);
    let session = tokio::spawn(async move { agent.run_session(driver_in, driver_out).await });
    let mut felix = Felix {
        input: felix_in,
        output: felix_out,
        buf: BytesMut::new(),
    };

    felix.send(&script::snapshot(&s)).await;
    // Nothing but the IP sets is programmed before InSync.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        made_by(&vpp),
        ["npol_ipset_add_del_members", "npol_ipset_create"]
    );
    assert!(vpp.objects().policies.is_empty());
    felix.send(&[script::in_sync()]).await;

    let mut seen = BTreeMap::new();
    let pods = s.pods;
    felix
        .statuses_until(&mut seen, |m| {
            m.len() == pods && m.values().all(|v| v.as_deref() == Some("up"))
        })
        .await;
    let summary = monitor
        .converged(Duration::from_millis(100), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(summary.failed.is_empty());
    let objects = vpp.objects();
    assert!(!objects.policies.is_empty());

    let gone = script::workload_id(2, s.namespaces);
    felix
        .send(&[script::envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove {
                id: Some(gone.clone()),
            },
        ))])
        .await;
    felix
        .statuses_until(&mut seen, |m| m[&gone.workload_id].is_none())
        .await;
    drop(felix);
    assert!(session.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_second_felix_session_with_the_same_snapshot_writes_nothing() {
    let s = shape(3);
    let (dp, vpp) = fake::new();
    for i in 0..s.pods {
        vpp.add_interface(&format!("tap{i}"), &script::pod_iface(i));
    }
    let rc = ReconcilerConfig {
        min_apply_interval: Duration::from_millis(10),
        ..ReconcilerConfig::default()
    };
    let (status_tx, status_rx) = status::channel();
    let (hook, mut monitor) = VppHook::start(Reconciler::new(dp, rc), status_tx);
    let mut agent = Agent::new(Box::new(hook), status_rx, LogControl::detached(), 1 << 20);
    let mut stream = script::snapshot(&s);
    stream.push(script::in_sync());
    for session in 0..2 {
        if session == 1 {
            vpp.clear_log();
        }
        let (mut felix_in, driver_in) = tokio::io::duplex(1 << 20);
        let (driver_out, _felix_out) = tokio::io::duplex(1 << 20);
        let mut bytes = Vec::new();
        for m in &stream {
            bytes.extend_from_slice(&encode_to_dataplane(m));
        }
        felix_in.write_all(&bytes).await.unwrap();
        drop(felix_in);
        agent.run_session(driver_in, driver_out).await.unwrap();
        monitor
            .converged(Duration::from_millis(100), Duration::from_secs(10))
            .await
            .unwrap();
        if session == 0 {
            assert!(vpp.writes() > 0);
        }
    }
    assert_eq!(vpp.writes(), 0, "{:?}", vpp.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_dataplane_makes_pod_interfaces_and_reports_every_endpoint_up() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sim.sock");
    let cli = crate::cli::Cli::try_parse_from([
        "calico-vpp-driver",
        "--dataplane",
        "sim",
        "--sim-socket",
        sock.to_str().unwrap(),
    ])
    .unwrap();
    let config = crate::config::DriverConfig::from_settings(&cli.settings).unwrap();
    let (status_tx, status_rx) = status::channel();
    let hook = crate::hook::dataplane_hook(&config, status_tx).unwrap();
    let (felix_in, driver_in) = tokio::io::duplex(1 << 20);
    let (driver_out, felix_out) = tokio::io::duplex(1 << 20);
    let mut agent = Agent::new(hook, status_rx, LogControl::detached(), 1 << 20);
    let session = tokio::spawn(async move { agent.run_session(driver_in, driver_out).await });
    let mut felix = Felix {
        input: felix_in,
        output: felix_out,
        buf: BytesMut::new(),
    };
    let s = shape(3);
    let mut stream = script::snapshot(&s);
    stream.push(script::in_sync());
    felix.send(&stream).await;
    let mut seen = BTreeMap::new();
    let wait = felix.statuses_until(&mut seen, |m| {
        m.len() == 3 && m.values().all(|v| v.as_deref() == Some("up"))
    });
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("every endpoint up through the simulator");
    assert!(sock.exists());
    drop(felix);
    // Felix closing both pipes ends the session: cleanly at EOF, or with a failed write when
    // a status update (a later pass's) raced the close. Nothing else is acceptable.
    match session.await.unwrap() {
        Ok(_) | Err(crate::agent::AgentError::Write(_)) => {}
        Err(e) => panic!("session ended with {e}"),
    }
}

#[test]
fn host_endpoints_are_reported_in_error_once_and_removed_when_gone() {
    let s = shape(1);
    let mut model = synced_model(&s);
    let mut dir = EndpointDirectory::default();
    dir.resync(&model);
    let out = dir.unenforced_hosts(&model, model.host_endpoints.keys());
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(
        &out[0],
        StatusEvent::Host {
            status: Some(EndpointStatus::Error),
            ..
        }
    ));
    assert!(
        dir.unenforced_hosts(&model, model.host_endpoints.keys())
            .is_empty(),
        "said once"
    );
    let id = model.host_endpoints.keys().next().unwrap().clone();
    model.host_endpoints.clear();
    let out = dir.hosts_changed(&model, [&id]);
    assert_eq!(
        out,
        vec![StatusEvent::Host {
            id: id.clone(),
            status: None
        }]
    );
    assert_eq!(dir.len(), 1, "the workload is left");
}

/// The hook with a fake VPP behind it; prepares and applies batches by hand.
fn hook_on_fake() -> (VppHook, HookMonitor, fake::FakeHandle) {
    let (dp, vpp) = fake::new();
    let (status_tx, _status_rx) = status::channel();
    let (hook, monitor) =
        VppHook::start(Reconciler::new(dp, ReconcilerConfig::default()), status_tx);
    (hook, monitor, vpp)
}

/// The kinds of VPP call the fake saw, once each.
fn made_by(vpp: &fake::FakeHandle) -> Vec<&'static str> {
    let names: std::collections::BTreeSet<_> = vpp.log().iter().map(|r| r.op.name()).collect();
    names.into_iter().collect()
}

#[tokio::test]
async fn the_snapshot_compiled_ahead_of_in_sync_equals_a_full_compile_and_only_stages_ip_sets() {
    let s = shape(8);
    let (mut hook, monitor, vpp) = hook_on_fake();
    for i in 0..s.pods {
        vpp.add_interface(&format!("tap{i}"), &script::pod_iface(i));
    }
    let mut model = Model::default();
    let snapshot = script::snapshot(&s);
    // The snapshot in small batches, each offered to `prepare` as the agent does.
    for (n, chunk) in snapshot.chunks(7).enumerate() {
        let changes = ingest(&mut model, chunk);
        let taken = hook.prepare(Batch {
            model: &model,
            changes: &changes,
            resync: n == 0,
            prepared: n > 0,
        });
        assert!(taken);
    }
    assert!(hook.ahead.is_some());
    assert!(hook.desired().is_none(), "nothing published before InSync");
    // Only the IP sets went to the reconciler, which made them and nothing else.
    let staged = monitor.sent.load(Ordering::SeqCst);
    assert!(staged >= 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        made_by(&vpp),
        ["npol_ipset_add_del_members", "npol_ipset_create"]
    );
    // InSync, with one more endpoint change in the same batch.
    let mut last = script::deltas(&s, 3);
    last.push(script::in_sync());
    let changes = ingest(&mut model, &last);
    hook.apply(Batch {
        model: &model,
        changes: &changes,
        resync: true,
        prepared: true,
    });
    assert!(hook.ahead.is_none());
    assert_eq!(monitor.sent.load(Ordering::SeqCst), staged + 1);
    let full = Compiler::new(&model);
    assert_eq!(hook.desired(), Some(full.desired()));
    // Each set was made once, ahead of InSync.
    let mut monitor = monitor;
    monitor
        .converged(Duration::from_millis(50), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(vpp.count("npol_ipset_create"), full.desired().ipsets.len());
    assert!(!vpp.objects().policies.is_empty());
}

/// Felix configuration makes any compiler start over; these snapshots leave it out, so
/// that a stale compiler would show.
fn without_config(msgs: Vec<proto::ToDataplane>) -> Vec<proto::ToDataplane> {
    msgs.into_iter()
        .filter(|m| !matches!(m.payload, Some(Payload::ConfigUpdate(_))))
        .collect()
}

#[tokio::test]
async fn a_compile_ahead_from_a_session_that_ended_before_in_sync_is_not_used() {
    for disconnect in [false, true] {
        let (mut hook, _monitor, _vpp) = hook_on_fake();
        // A first session prepares a snapshot with six endpoints, then ends before InSync.
        let mut model = Model::default();
        let changes = ingest(&mut model, &without_config(script::snapshot(&shape(6))));
        assert!(hook.prepare(Batch {
            model: &model,
            changes: &changes,
            resync: true,
            prepared: false,
        }));
        if disconnect {
            hook.felix_disconnected();
            assert!(hook.ahead.is_none());
        }
        // The next session's snapshot (two endpoints) comes whole with InSync, unprepared:
        // the hook compiles it, not the first session's leftovers, whether or not it heard
        // of the disconnection.
        let mut model = Model::default();
        let mut msgs = without_config(script::snapshot(&shape(2)));
        msgs.push(script::in_sync());
        let changes = ingest(&mut model, &msgs);
        hook.apply(Batch {
            model: &model,
            changes: &changes,
            resync: true,
            prepared: false,
        });
        assert_eq!(hook.desired(), Some(Compiler::new(&model).desired()));
        assert_eq!(hook.desired().unwrap().interfaces.len(), 2);
        assert!(hook.ahead.is_none());
    }
}

/// What the fake VPP holds, without its ids: each set's members, how many rules and
/// policies, and each interface's numbers of policies (rx, tx, profiles).
type VppShape = (
    Vec<Vec<npol::IpSetMember>>,
    usize,
    usize,
    Vec<(usize, usize, usize)>,
);

fn vpp_shape(vpp: &fake::FakeHandle) -> VppShape {
    let o = vpp.objects();
    let mut sets: Vec<Vec<npol::IpSetMember>> = o
        .ipsets
        .values()
        .map(|s| s.members.iter().copied().collect())
        .collect();
    sets.sort();
    let mut configs: Vec<_> = o
        .configs
        .values()
        .map(|c| (c.rx_policies.len(), c.tx_policies.len(), c.profiles.len()))
        .collect();
    configs.sort();
    (sets, o.rules.len(), o.policies.len(), configs)
}

/// The whole path (agent, hook, reconciler, fake VPP) with the snapshot written `chunk`
/// messages at a time, 5 ms apart, then InSync: what VPP holds once every endpoint is up.
async fn program_through_the_agent(s: &ClusterShape, chunk: usize) -> VppShape {
    let (dp, vpp) = fake::new();
    for i in 0..s.pods {
        vpp.add_interface(&format!("tap{i}"), &script::pod_iface(i));
    }
    let (status_tx, status_rx) = status::channel();
    let rc = ReconcilerConfig::default();
    let (hook, mut monitor) = VppHook::start(Reconciler::new(dp, rc), status_tx);
    let (felix_in, driver_in) = tokio::io::duplex(1 << 20);
    let (driver_out, felix_out) = tokio::io::duplex(1 << 20);
    let mut agent = Agent::new(Box::new(hook), status_rx, LogControl::detached(), 1 << 20);
    let _session = tokio::spawn(async move { agent.run_session(driver_in, driver_out).await });
    let mut felix = Felix {
        input: felix_in,
        output: felix_out,
        buf: BytesMut::new(),
    };
    for part in script::snapshot(s).chunks(chunk) {
        felix.send(part).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    felix.send(&[script::in_sync()]).await;
    let pods = s.pods;
    let mut seen = BTreeMap::new();
    let all_up = felix.statuses_until(&mut seen, |m| {
        m.len() == pods && m.values().all(|v| v.as_deref() == Some("up"))
    });
    tokio::time::timeout(Duration::from_secs(10), all_up)
        .await
        .unwrap_or_else(|_| panic!("not every endpoint up: {:?}", vpp_shape(&vpp)));
    monitor
        .converged(Duration::from_millis(50), Duration::from_secs(10))
        .await
        .unwrap();
    vpp_shape(&vpp)
}

#[tokio::test]
async fn a_snapshot_streamed_in_batches_programs_what_a_whole_one_does() {
    let s = shape(6);
    let whole = program_through_the_agent(&s, usize::MAX).await;
    assert!(whole.2 > 0 && !whole.0.is_empty(), "{whole:?}");
    // Small batches: the hook prepares several times before InSync.
    let streamed = program_through_the_agent(&s, 5).await;
    assert_eq!(streamed, whole);
}

#[tokio::test]
async fn the_first_apply_after_prepare_builds_on_the_compile_ahead() {
    let s = shape(4);
    let (mut hook, _monitor, _vpp) = hook_on_fake();
    let mut model = Model::default();
    let changes = ingest(&mut model, &without_config(script::snapshot(&s)));
    assert!(hook.prepare(Batch {
        model: &model,
        changes: &changes,
        resync: true,
        prepared: false,
    }));
    // A change the batch leaves out (an agent never does): only a hook that builds on what
    // it prepared misses it, where a full compile would see it.
    ingest(&mut model, &script::deltas(&s, 1));
    let last = Changes {
        became_in_sync: true,
        ..Changes::default()
    };
    ingest(&mut model, &[script::in_sync()]);
    hook.apply(Batch {
        model: &model,
        changes: &last,
        resync: true,
        prepared: true,
    });
    assert_ne!(hook.desired(), Some(Compiler::new(&model).desired()));
}
