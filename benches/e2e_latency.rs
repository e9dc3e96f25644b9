//! End to end through the real driver binary, started as Felix starts it (fds 3/4), into the
//! VPP simulator over its API socket: convergence of a large snapshot from `InSync` to fully
//! programmed (1,000 endpoints, 500 policies, 50,000 IP set members), VPP write calls per new
//! pod, and the latency from an IP set delta written on fd 3 to VPP having received it.
//!
//! Run: `cargo bench -p calico-vpp-driver --bench e2e_latency` (scale sizes with
//! `E2E_SCALE=0.1`, deltas with `E2E_DELTAS=200`). Targets: convergence < 1 s on a real VPP,
//! ≤ 5 VPP write calls per new pod, delta p99 < 5 ms.

#[path = "../integration/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use calico_compile::compile;
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, ClusterShape};
use common::driver::{wait_until, Driver};
use common::rig::{sim_matches, Rig};

const WAIT: Duration = Duration::from_secs(300);

/// The scripted cluster with extra members in every namespace set, `members` in all.
fn big_snapshot(shape: &ClusterShape, members: usize) -> Vec<proto::ToDataplane> {
    let extra = members.saturating_sub(shape.pods) / shape.namespaces.max(1);
    let mut stream = script::snapshot(shape);
    let mut n = 0u32;
    for m in &mut stream {
        if let Some(Payload::IpsetUpdate(u)) = &mut m.payload {
            if u.id.starts_with("s:ns") {
                for _ in 0..extra {
                    let a = 0x0a50_0000u32 + n;
                    n += 1;
                    u.members.push(format!(
                        "{}.{}.{}.{}/32",
                        a >> 24,
                        (a >> 16) & 0xff,
                        (a >> 8) & 0xff,
                        a & 0xff
                    ));
                }
            }
        }
    }
    stream
}

fn ups(d: &Driver) -> usize {
    d.status
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.as_deref() == Some("up"))
        .count()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn new_pod(d: &mut Driver, shape: &ClusterShape, i: usize) {
    let ns = i % shape.namespaces;
    d.send(&[
        script::envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id: script::ns_set_id(ns),
            added_members: vec![format!("{}/32", script::pod_ip(i))],
            removed_members: vec![],
        })),
        script::envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
            id: script::named_port_set_id(ns),
            added_members: vec![format!("{},tcp:8080", script::pod_ip(i))],
            removed_members: vec![],
        })),
        script::envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(script::workload_id(i, shape.namespaces)),
                endpoint: Some(script::workload(i, shape)),
            },
        )),
    ]);
}

/// Delta latencies: each delta toggles one member of namespace 0's set; the time until
/// the simulator has received the resulting write. `gap` is the pause after each one.
fn delta_latencies(rig: &Rig, d: &mut Driver, count: usize, gap: Duration) -> Vec<Duration> {
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let member = format!("10.99.{}.{}/32", k / 2 / 250, k / 2 % 250 + 1);
        let delta = if k % 2 == 0 {
            proto::IpSetDeltaUpdate {
                id: script::ns_set_id(0),
                added_members: vec![member],
                removed_members: vec![],
            }
        } else {
            proto::IpSetDeltaUpdate {
                id: script::ns_set_id(0),
                added_members: vec![],
                removed_members: vec![member],
            }
        };
        let w0 = rig.sim.write_calls();
        let t = Instant::now();
        d.send(&[script::envelope(Payload::IpsetDeltaUpdate(delta))]);
        while rig.sim.write_calls() == w0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "delta {k} never reached VPP"
            );
            std::thread::sleep(Duration::from_micros(20));
        }
        out.push(t.elapsed());
        std::thread::sleep(gap);
    }
    out.sort();
    out
}

fn report_latencies(label: &str, l: &[Duration]) {
    println!(
        "{label}: {} deltas: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        l.len(),
        ms(percentile(l, 0.50)),
        ms(percentile(l, 0.90)),
        ms(percentile(l, 0.99)),
        ms(*l.last().unwrap())
    );
}

fn main() {
    std::env::set_var(
        "CALICO_VPP_DRIVER_BIN",
        env!("CARGO_BIN_EXE_calico-vpp-driver"),
    );
    let scale: f64 = std::env::var("E2E_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let deltas: usize = std::env::var("E2E_DELTAS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let pods = ((1000.0 * scale) as usize).max(10);
    let members = ((50_000.0 * scale) as usize).max(100);
    let shape = ClusterShape {
        namespaces: (pods / 10).max(1),
        pods,
        policies: ((500.0 * scale) as usize).max(2),
        tiers: 2,
        ..ClusterShape::default()
    };
    let new_pods = 10;
    let t = Instant::now();
    let mut stream = big_snapshot(&shape, members);
    let bytes: usize = stream.iter().map(prost::Message::encoded_len).sum();
    println!(
        "e2e_latency: {} endpoints, {} policies ({} tiers), {} IP set members; snapshot {} \
         messages, {:.1} MB, built in {:.3} s",
        shape.pods,
        shape.policies,
        shape.tiers,
        members,
        stream.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let rig = Rig::new();
    rig.add_pod_taps(shape.pods + new_pods);
    let mut d = rig.driver();

    // The snapshot first: the driver ingests it but programs nothing before InSync.
    let t_snap = Instant::now();
    d.send(&stream);
    let written = t_snap.elapsed();
    stream.clear();
    let w0 = rig.sim.write_calls();
    let t_insync = Instant::now();
    d.send(&[script::in_sync()]);
    assert!(
        wait_until(WAIT, || rig
            .sim
            .with_state(|s| s.npol.interfaces.len() >= shape.pods)),
        "never programmed; log:\n{}",
        d.log()
    );
    let programmed = t_insync.elapsed();
    assert!(wait_until(WAIT, || ups(&d) >= shape.pods), "statuses");
    let reported = t_insync.elapsed();
    let writes = rig.sim.write_calls() - w0;
    println!(
        "sim: snapshot written to fd 3 in {:.3} s; InSync -> every interface configured {:.3} s, \
         -> every endpoint reported up on fd 4 {:.3} s ({} VPP write calls)",
        written.as_secs_f64(),
        programmed.as_secs_f64(),
        reported.as_secs_f64(),
        writes
    );
    let desired = compile(&d.model).desired;
    let t = Instant::now();
    let verdict = rig.sim.with_state(|s| sim_matches(s, &desired));
    println!(
        "sim: state equals the compiled desired state: {} (checked in {:.3} s; {} ipsets, {} rules, \
         {} policies)",
        match &verdict {
            Ok(()) => "yes".to_string(),
            Err(e) => format!("NO: {e}"),
        },
        t.elapsed().as_secs_f64(),
        desired.ipsets.len(),
        desired.rules.len(),
        desired.policies.len()
    );

    // New pods, one at a time.
    std::thread::sleep(Duration::from_millis(300));
    let mut per_pod = Vec::new();
    for k in 0..new_pods {
        let i = shape.pods + k;
        let w0 = rig.sim.write_calls();
        new_pod(&mut d, &shape, i);
        let id = script::workload_id(i, shape.namespaces).workload_id;
        d.wait_status(&id, Some("up"), WAIT);
        std::thread::sleep(Duration::from_millis(250));
        per_pod.push(rig.sim.write_calls() - w0);
    }
    println!(
        "sim: VPP write calls per new pod: {:?} (mean {:.1}, max {})",
        per_pod,
        per_pod.iter().sum::<u64>() as f64 / per_pod.len() as f64,
        per_pod.iter().max().unwrap()
    );

    // IP set deltas: spaced (a quiet cluster) and back to back (churn).
    let spaced = delta_latencies(&rig, &mut d, deltas, Duration::from_millis(150));
    report_latencies("sim: IP set delta fd 3 -> VPP, 150 ms apart", &spaced);
    let busy = delta_latencies(&rig, &mut d, deltas, Duration::ZERO);
    report_latencies("sim: IP set delta fd 3 -> VPP, back to back", &busy);
    let desired = compile(&d.model).desired;
    let ok = wait_until(Duration::from_secs(30), || {
        rig.sim.with_state(|s| sim_matches(s, &desired)).is_ok()
    });
    println!("sim: state equals the desired state after the deltas: {ok}");
}
