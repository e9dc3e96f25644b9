//! Convergence of a large desired state through the reconciler: 1,000 endpoints, 500
//! policies, 50,000 IP set members, into the in-memory fake and into the VPP simulator over
//! the real API socket (pipelined, and one request per round trip for comparison). Also the
//! VPP write calls a new pod costs, and a driver restart (state file adoption).
//!
//! Run: `cargo bench -p calico-vpp-driver --bench e2e_convergence` (sizes can be scaled with
//! `E2E_SCALE=0.1`).

mod common;

use std::time::{Duration, Instant};

use calico_compile::DesiredState;
use calico_vpp_driver::dataplane::fake;
use calico_vpp_driver::dataplane::vpp::{VppConfig, VppDataplane};
use calico_vpp_driver::dataplane::Dataplane;
use calico_vpp_driver::reconcile::{synthetic, Changed, Reconciler, ReconcilerConfig};
use common::OneAtATime;
use vpp_sim::Simulator;

struct Sizes {
    endpoints: usize,
    policies: usize,
    members: usize,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// First apply, a no-op apply, and a new pod; prints and returns the first apply's duration.
async fn converge<D: Dataplane>(
    label: &str,
    r: &mut Reconciler<D>,
    d: &DesiredState,
    sizes: &Sizes,
    writes: impl Fn() -> u64,
) -> Duration {
    let t = Instant::now();
    r.connect().await.expect("connect");
    let connect = t.elapsed();
    let w0 = writes();
    let t = Instant::now();
    let report = r.apply(d).await.expect("apply");
    let first = t.elapsed();
    assert_eq!(report.failed_ops, 0, "{label}: failures {:?}", r.failures());
    assert_eq!(report.pending_interfaces, 0, "{label}: pending interfaces");
    let ops = report.writes;
    let msgs = writes() - w0;
    println!(
        "{label}: converged in {:.3} s (connect {:.3} s): {ops} operations, {msgs} VPP write calls, \
         {:.0} operations/s, {:.0} members/s",
        secs(first),
        secs(connect),
        ops as f64 / secs(first),
        sizes.members as f64 / secs(first),
    );

    let t = Instant::now();
    let again = r.apply(d).await.expect("apply");
    println!(
        "{label}: second apply of the same state: {} writes in {:.3} s",
        again.writes,
        secs(t.elapsed())
    );

    let mut with_pod = d.clone();
    synthetic::add_pod(
        &mut with_pod,
        sizes.endpoints,
        sizes.endpoints,
        sizes.policies,
    );
    // As the driver applies it: a pass told what changed (the full compare is the no-op
    // apply above).
    let changed = Changed::from_diff(&d.diff(&with_pod));
    let w0 = writes();
    let t = Instant::now();
    let report = r.apply_changes(&with_pod, &changed).await.expect("apply");
    println!(
        "{label}: new pod in an existing namespace (changed pass): {} operations, {} VPP write \
         calls, {:.3} ms",
        report.writes,
        writes() - w0,
        t.elapsed().as_secs_f64() * 1e3
    );
    first
}

fn main() {
    let scale: f64 = std::env::var("E2E_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let sizes = Sizes {
        endpoints: ((1000.0 * scale) as usize).max(10),
        policies: ((500.0 * scale) as usize).max(2),
        members: ((50_000.0 * scale) as usize).max(100),
    };
    println!(
        "e2e_convergence: {} endpoints, {} policies, {} IP set members",
        sizes.endpoints, sizes.policies, sizes.members
    );
    let t = Instant::now();
    let d = synthetic::synthetic(sizes.endpoints, sizes.policies, sizes.members);
    println!(
        "desired state built in {:.3} s: {} ipsets, {} rules, {} policies, {} interfaces",
        secs(t.elapsed()),
        d.ipsets.len(),
        d.rules.len(),
        d.policies.len(),
        d.interfaces.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        // Into the fake: the reconciler's cost plus the simulator's model, no socket.
        let (dp, h) = fake::new();
        for j in 0..=sizes.endpoints {
            h.add_interface(&format!("tap{j}"), &synthetic::interface_name(j));
        }
        let mut r = Reconciler::new(dp, ReconcilerConfig::default());
        converge("fake", &mut r, &d, &sizes, || h.writes() as u64).await;

        // Into the simulator over the API socket, with a state file.
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Simulator::start(dir.path().join("api.sock"))
            .await
            .expect("simulator");
        sim.with_state_mut(|s| {
            for j in 0..=sizes.endpoints {
                let idx = s
                    .create_tap(u32::MAX, None, None, &synthetic::interface_name(j))
                    .expect("tap");
                s.set_flags(idx, true);
                s.set_link(idx, true);
            }
        });
        let vpp = || {
            VppDataplane::new(VppConfig {
                socket: sim.socket_path().to_path_buf(),
                request_timeout: Duration::from_secs(60),
                ..VppConfig::default()
            })
        };
        let state_dir = dir.path().join("state");
        let cfg = ReconcilerConfig {
            state_dir: Some(state_dir.clone()),
            ..ReconcilerConfig::default()
        };
        let mut r = Reconciler::new(vpp(), cfg.clone());
        let pipelined = converge("sim (pipelined)", &mut r, &d, &sizes, || sim.write_calls()).await;
        drop(r);

        // Driver restart: adopt the state file, diff, write nothing.
        let mut with_pod = d.clone();
        synthetic::add_pod(
            &mut with_pod,
            sizes.endpoints,
            sizes.endpoints,
            sizes.policies,
        );
        let w0 = sim.write_calls();
        let t = Instant::now();
        let mut r = Reconciler::new(vpp(), cfg);
        let load = t.elapsed();
        r.connect().await.expect("connect");
        let report = r.apply(&with_pod).await.expect("apply");
        println!(
            "sim: driver restart: state file loaded in {:.3} s, resynced in {:.3} s with {} writes \
             ({} VPP write calls)",
            secs(load),
            secs(t.elapsed()),
            report.writes,
            sim.write_calls() - w0
        );
        drop(r);

        // The same convergence one request per round trip, on a fresh simulator state.
        sim.restart_empty();
        sim.with_state_mut(|s| {
            for j in 0..=sizes.endpoints {
                let idx = s
                    .create_tap(u32::MAX, None, None, &synthetic::interface_name(j))
                    .expect("tap");
                s.set_flags(idx, true);
                s.set_link(idx, true);
            }
        });
        let mut r = Reconciler::new(OneAtATime(vpp()), ReconcilerConfig::default());
        let serial = converge("sim (one at a time)", &mut r, &d, &sizes, || {
            sim.write_calls()
        })
        .await;
        println!(
            "sim: pipelining gain {:.2}x ({:.3} s vs {:.3} s)",
            secs(serial) / secs(pipelined),
            secs(pipelined),
            secs(serial)
        );
    });
}
