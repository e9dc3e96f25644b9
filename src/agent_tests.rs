use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use calico_model::{IpSetId, WorkloadEndpointId};
use prost::Message;
use tokio::io::{AsyncWriteExt, DuplexStream};

use super::*;
use crate::felix::codec::{encode_to_dataplane, FrameDecoder};
use crate::felix::proto;
use crate::felix::proto::from_dataplane::Payload as Out;
use crate::felix::proto::to_dataplane::Payload;
use crate::felix::script::{self, ClusterShape};
use crate::status::EndpointStatus;
use crate::status::StatusSender;

/// Records every batch the agent hands over: (resync, changes).
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(bool, Changes)>>>);

impl DataplaneHook for Recorder {
    fn apply(&mut self, batch: Batch<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((batch.resync, batch.changes.clone()));
    }
}

fn config(pairs: &[(&str, &str)]) -> proto::ToDataplane {
    script::envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
        config: script::labels(pairs),
        ..Default::default()
    }))
}

struct Harness {
    felix_in: DuplexStream,
    felix_out: DuplexStream,
    out_buf: BytesMut,
}

impl Harness {
    async fn send(&mut self, msgs: &[proto::ToDataplane]) {
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend_from_slice(&encode_to_dataplane(m));
        }
        self.felix_in.write_all(&bytes).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.felix_in.write_all(bytes).await.unwrap();
    }

    async fn recv(&mut self) -> proto::FromDataplane {
        use tokio::io::AsyncReadExt;
        let d = FrameDecoder::new(1 << 20);
        loop {
            if let Some(f) = d.decode(&mut self.out_buf).unwrap() {
                return proto::FromDataplane::decode(f).unwrap();
            }
            let n = self.felix_out.read_buf(&mut self.out_buf).await.unwrap();
            assert!(n > 0, "driver closed its output");
        }
    }
}

type SessionTask = tokio::task::JoinHandle<(Result<SessionEnd, AgentError>, Agent)>;

fn start(hook: impl DataplaneHook + 'static) -> (Harness, StatusSender, SessionTask) {
    let (felix_in, driver_in) = tokio::io::duplex(1 << 20);
    let (driver_out, felix_out) = tokio::io::duplex(1 << 20);
    let (tx, rx) = crate::status::channel();
    let mut agent = Agent::new(Box::new(hook), rx, LogControl::detached(), 1 << 20);
    let task = tokio::spawn(async move {
        let r = agent.run_session(driver_in, driver_out).await;
        (r, agent)
    });
    (
        Harness {
            felix_in,
            felix_out,
            out_buf: BytesMut::new(),
        },
        tx,
        task,
    )
}

fn is_heartbeat(m: &proto::FromDataplane) -> bool {
    matches!(m.payload, Some(Out::ProcessStatusUpdate(_)))
}

#[tokio::test(start_paused = true)]
async fn heartbeat_right_away_then_every_reporting_interval() {
    let (mut h, _tx, _task) = start(Recorder::default());
    let first = h.recv().await;
    let Some(Out::ProcessStatusUpdate(p)) = &first.payload else {
        panic!("{first:?}")
    };
    assert_eq!(first.sequence_number, 0);
    assert!(p.iso_timestamp.contains('T') && p.iso_timestamp.ends_with('Z'));
    let t0 = tokio::time::Instant::now();
    let second = h.recv().await;
    assert!(is_heartbeat(&second));
    assert_eq!(second.sequence_number, 1);
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    let Some(Out::ProcessStatusUpdate(p)) = second.payload else {
        panic!()
    };
    assert!((p.uptime - 30.0).abs() < 0.5, "{}", p.uptime);
}

#[tokio::test(start_paused = true)]
async fn reporting_interval_from_felix_config_applies_and_zero_disables() {
    let (mut h, _tx, _task) = start(Recorder::default());
    assert!(is_heartbeat(&h.recv().await));
    h.send(&[config(&[("ReportingIntervalSecs", "5")])]).await;
    let t0 = tokio::time::Instant::now();
    assert!(is_heartbeat(&h.recv().await));
    assert!(t0.elapsed() <= Duration::from_secs(5));
    let t1 = tokio::time::Instant::now();
    assert!(is_heartbeat(&h.recv().await));
    assert_eq!(t1.elapsed(), Duration::from_secs(5));

    h.send(&[config(&[("ReportingIntervalSecs", "0")])]).await;
    let none = tokio::time::timeout(Duration::from_secs(3600), h.recv()).await;
    assert!(none.is_err(), "no heartbeat once disabled: {none:?}");
}

#[tokio::test]
async fn hook_waits_for_in_sync_then_gets_snapshot_as_resync_and_deltas() {
    let rec = Recorder::default();
    let (mut h, _tx, task) = start(rec.clone());
    let shape = ClusterShape::default();
    h.send(&script::snapshot(&shape)).await;
    tokio::task::yield_now().await;
    assert!(rec.0.lock().unwrap().is_empty(), "no batch before InSync");
    h.send(&[script::in_sync()]).await;
    h.send(&script::deltas(&shape, 4)).await;
    drop(h.felix_in);
    let (end, agent) = task.await.unwrap();
    assert_eq!(end.unwrap(), SessionEnd::FelixClosed);

    let batches = rec.0.lock().unwrap().clone();
    assert!(!batches.is_empty());
    let (resync, first) = &batches[0];
    assert!(*resync && first.became_in_sync);
    assert_eq!(first.workload_endpoints.len(), 50);
    assert_eq!(first.policies.len(), 20);
    assert!(batches[1..].iter().all(|(r, _)| !r));
    let mut all = Changes::default();
    for (_, c) in batches {
        all.merge(c);
    }
    assert!(all.ipsets.contains_key(&IpSetId(script::ns_set_id(0))));
    assert_eq!(agent.stats.undecodable, 0);
    assert_eq!(agent.model.workload_endpoints.len(), 50);
}

/// Every call a [`Preparer`] saw: (prepare or apply, resync, prepared, changes).
type Calls = Arc<Mutex<Vec<(&'static str, bool, bool, Changes)>>>;

/// A hook that prepares (taking the changes when `takes`), recording every call.
#[derive(Clone)]
struct Preparer {
    takes: bool,
    calls: Calls,
}

impl Preparer {
    fn record(&self, what: &'static str, b: &Batch<'_>) {
        let call = (what, b.resync, b.prepared, b.changes.clone());
        self.calls.lock().unwrap().push(call);
    }
}

impl DataplaneHook for Preparer {
    fn apply(&mut self, batch: Batch<'_>) {
        self.record("apply", &batch);
    }

    fn prepare(&mut self, batch: Batch<'_>) -> bool {
        assert!(!batch.model.in_sync);
        self.record("prepare", &batch);
        self.takes
    }
}

#[tokio::test]
async fn the_snapshot_is_offered_to_prepare_and_in_sync_brings_only_the_rest() {
    for takes in [true, false] {
        let calls = Calls::default();
        let hook = Preparer {
            takes,
            calls: calls.clone(),
        };
        let (mut h, _tx, task) = start(hook);
        let shape = ClusterShape::default();
        let snapshot = script::snapshot(&shape);
        let (first, rest) = snapshot.split_at(snapshot.len() / 2);
        // Each half a batch of its own (a hook that does not take them is asked once).
        let offered = || calls.lock().unwrap().len();
        for (n, half) in [first, rest].into_iter().enumerate() {
            h.send(half).await;
            while offered() <= n && (takes || offered() == 0) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        h.send(&[script::in_sync()]).await;
        h.send(&script::deltas(&shape, 2)).await;
        drop(h.felix_in);
        let (end, _agent) = task.await.unwrap();
        assert_eq!(end.unwrap(), SessionEnd::FelixClosed);

        let calls = calls.lock().unwrap().clone();
        let prepares: Vec<_> = calls.iter().filter(|c| c.0 == "prepare").collect();
        // Taken: the first offer starts the session, later ones follow on; not taken: no
        // second offer.
        assert!(prepares[0].1 && !prepares[0].2);
        if takes {
            assert!(prepares.len() >= 2, "{} prepares", prepares.len());
            assert!(prepares[1..].iter().all(|p| !p.1 && p.2));
        } else {
            assert_eq!(prepares.len(), 1);
        }
        let applies: Vec<_> = calls.iter().filter(|c| c.0 == "apply").collect();
        let (_, resync, prepared, changes) = applies[0];
        assert!(*resync && changes.became_in_sync);
        assert_eq!(*prepared, takes);
        // Taken, the first apply brings what came after (InSync and perhaps the deltas);
        // not taken, the whole snapshot.
        let endpoints = changes.workload_endpoints.len();
        if takes {
            assert!(endpoints <= 2 && changes.policies.is_empty(), "{changes:?}");
        } else {
            assert_eq!(endpoints, 50);
        }
        assert!(applies[1..].iter().all(|a| !a.1 && !a.2));
        // Nothing is offered to `prepare` after InSync.
        let first_apply = calls.iter().position(|c| c.0 == "apply").unwrap();
        assert!(calls[first_apply..].iter().all(|c| c.0 == "apply"));
    }
}

#[tokio::test]
async fn malformed_and_unknown_frames_are_skipped_and_counted() {
    let (mut h, _tx, task) = start(Recorder::default());
    // A frame of garbage: field 1 with wire type 7 does not exist.
    h.send_raw(&[3, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0xff, 0xff])
        .await;
    // An empty envelope and a payload no release uses (field 99).
    h.send(&[proto::ToDataplane::default()]).await;
    let v332 = [0x9a, 0x06, 0x02, 0x0a, 0x00];
    let mut f = (v332.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(&v332);
    h.send_raw(&f).await;
    // InSync with an extra field 9 (varint) a newer Felix might add.
    let newer = [0x0a, 0x02, 0x48, 0x01];
    let mut f = (newer.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(&newer);
    h.send_raw(&f).await;
    drop(h.felix_in);
    let (end, agent) = task.await.unwrap();
    assert_eq!(end.unwrap(), SessionEnd::FelixClosed);
    assert_eq!(agent.stats.undecodable, 1);
    assert_eq!(agent.stats.unknown_payload, 2);
    assert_eq!(
        agent.stats.unknown_fields, 2,
        "field 99 and InSync's field 9"
    );
    assert!(agent.model.in_sync);
}

#[tokio::test]
async fn eof_inside_a_frame_and_oversized_length_are_errors() {
    let (mut h, _tx, task) = start(Recorder::default());
    h.send_raw(&[10, 0, 0, 0, 0, 0, 0, 0, 1, 2]).await;
    drop(h.felix_in);
    let (end, _) = task.await.unwrap();
    assert!(matches!(
        end,
        Err(AgentError::Frame(FrameError::EofInFrame { .. }))
    ));

    let (mut h, _tx, task) = start(Recorder::default());
    h.send_raw(&((1u64 << 20) + 1).to_le_bytes()).await;
    let (end, _) = task.await.unwrap();
    let err = end.unwrap_err();
    assert!(err.to_string().contains("1048576"), "{err}");
}

#[tokio::test]
async fn endpoint_status_goes_to_felix_once_per_change() {
    let (mut h, tx, _task) = start(Recorder::default());
    assert!(is_heartbeat(&h.recv().await));
    let id = WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: "ns0/pod-0".into(),
        endpoint_id: "eth0".into(),
    };
    let ep =
        calico_model::WorkloadEndpoint::try_from(script::workload(0, &ClusterShape::default()))
            .unwrap();
    tx.workload(id.clone(), EndpointStatus::Down, Some(&ep));
    tx.workload(id.clone(), EndpointStatus::Down, Some(&ep));
    tx.workload(id.clone(), EndpointStatus::Up, Some(&ep));
    tx.workload_removed(id.clone());
    let m = h.recv().await;
    let Some(Out::WorkloadEndpointStatusUpdate(u)) = m.payload else {
        panic!("{m:?}")
    };
    assert_eq!(u.status.unwrap().status, "down");
    assert_eq!(u.id.unwrap().workload_id, "ns0/pod-0");
    let m = h.recv().await;
    let Some(Out::WorkloadEndpointStatusUpdate(u)) = m.payload else {
        panic!("{m:?}")
    };
    assert_eq!(u.status.unwrap().status, "up");
    let sent = u.endpoint.expect("endpoint for Felix's status file");
    assert_eq!(sent.name, script::pod_iface(0));
    assert_eq!(sent.ipv4_nets, vec![format!("{}/32", script::pod_ip(0))]);
    let m = h.recv().await;
    assert!(matches!(
        m.payload,
        Some(Out::WorkloadEndpointStatusRemove(_))
    ));
    assert_eq!(m.sequence_number, 3);
}
