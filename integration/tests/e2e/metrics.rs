//! The metrics and health endpoint of the real driver (as Felix starts it, programming the
//! simulator) through the demo scenario: readiness flips only once Felix's snapshot reached
//! VPP, and the counters move as Felix's messages and the VPP writes do.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use calico_vpp_driver::demo::scenario;
use common::driver::wait_until;
use common::rig::Rig;

const CONVERGE: Duration = Duration::from_secs(30);

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// The value of the first sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn readiness_follows_the_first_sync_and_counters_move() {
    let rig = Rig::new();
    let tags: Vec<String> = scenario::PODS.iter().map(|p| p.iface()).collect();
    rig.add_tagged_taps(tags.iter().map(String::as_str));
    let port = free_port();
    let mut d = rig.driver_with(&[("CALICO_VPP_PROMETHEUS_PORT", &port.to_string())]);
    assert!(
        wait_until(CONVERGE, || get(port, "/liveness")
            .is_some_and(|(c, _)| c == 200)),
        "no liveness; log:\n{}",
        d.log()
    );
    // The snapshot without InSync: nothing is programmed, not ready.
    let mut snapshot = scenario::snapshot();
    // The snapshot's pods (frontend-2 comes with the deltas).
    let first = scenario::PODS.len() - 1;
    let in_sync = snapshot.pop().unwrap();
    d.send(&snapshot);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(port, "/readiness").map(|(c, _)| c), Some(503));
    let (_, m) = get(port, "/metrics").unwrap();
    // Every message of the snapshot so far, counted by kind.
    let counted = |kind: &str| {
        sample(
            &m,
            &format!("calico_vpp_felix_messages_total{{kind=\"{kind}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let policies = snapshot
        .iter()
        .filter(|m| {
            matches!(
                m.payload,
                Some(calico_vpp_driver::felix::proto::to_dataplane::Payload::ActivePolicyUpdate(_))
            )
        })
        .count();
    assert!(policies > 0);
    assert_eq!(counted("policy_update"), policies as f64, "{m}");
    assert_eq!(counted("workload_endpoint_update"), first as f64, "{m}");
    assert_eq!(sample(&m, "calico_vpp_ready "), Some(0.0), "{m}");

    d.send(&[in_sync]);
    for pod in &scenario::PODS[..first] {
        d.wait_status(&pod.label(), Some("up"), CONVERGE);
    }
    assert!(
        wait_until(CONVERGE, || get(port, "/readiness")
            .is_some_and(|(c, _)| c == 200)),
        "not ready after the sync; log:\n{}",
        d.log()
    );
    let (_, m) = get(port, "/metrics").unwrap();
    let calls = sample(
        &m,
        "calico_vpp_vpp_api_calls_total{message=\"npol_rule_create\"}",
    );
    assert!(calls.is_some_and(|n| n > 0.0), "{m}");
    assert_eq!(
        sample(&m, "calico_vpp_endpoints{status=\"up\"}"),
        Some(first as f64),
        "{m}"
    );
    assert!(sample(&m, "calico_vpp_objects_desired{kind=\"rule\"}").is_some_and(|n| n > 0.0));
    assert!(sample(&m, "calico_vpp_process_resident_memory_bytes").is_some_and(|n| n > 1e6));
    let passes_before = sample(&m, "calico_vpp_reconcile_passes_total{full=\"false\"}")
        .unwrap_or(0.0)
        + sample(&m, "calico_vpp_reconcile_passes_total{full=\"true\"}").unwrap_or(0.0);
    let batches_before = sample(&m, "calico_vpp_batch_apply_seconds_count").unwrap();

    // The demo's deltas (a new pod and the IP set members that admit it): more batches, more
    // passes, and the new pod up.
    d.send(&scenario::deltas());
    d.wait_status(&scenario::FRONTEND2.label(), Some("up"), CONVERGE);
    assert!(
        wait_until(CONVERGE, || {
            let (_, m) = get(port, "/metrics").unwrap();
            let passes = sample(&m, "calico_vpp_reconcile_passes_total{full=\"false\"}")
                .unwrap_or(0.0)
                + sample(&m, "calico_vpp_reconcile_passes_total{full=\"true\"}").unwrap_or(0.0);
            passes > passes_before
                && sample(&m, "calico_vpp_batch_apply_seconds_count").unwrap() > batches_before
        }),
        "counters did not move"
    );
    assert_eq!(get(port, "/nope").map(|(c, _)| c), Some(404));
    let _ = d.stop();
}
