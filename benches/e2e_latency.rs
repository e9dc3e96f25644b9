//! End to end through the real driver binary, started as Felix starts it (fds 3/4), into the
//! VPP simulator over its API socket: convergence of a large snapshot from `InSync` to fully
//! programmed (1,000 endpoints, 500 policies, 50,000 IP set members), VPP write calls per new
//! pod, and the latency from an IP set delta written on fd 3 to VPP having received it.
//!
//! Run: `cargo bench -p calico-vpp-driver --bench e2e_latency` (scale sizes with
//! `E2E_SCALE=0.1`, deltas with `E2E_DELTAS=200`). Targets: convergence < 1 s on a real VPP,
//! ≤ 5 VPP write calls per new pod, delta p99 < 5 ms.

#[path = "../integration/tests/e2e/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use calico_compile::compile;
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, ClusterShape};
use common::driver::{wait_until, Driver};
use common::rig::{sim_matches, Rig};

const WAIT: Duration = Duration::from_secs(300);
/// VPP's API socket of a real VPP to run against as well (loopbacks stand in for pods).
const REAL_VPP_ENV: &str = "CALICO_VPP_TEST_VPP_SOCKET";

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
    d.send(&script::new_pod(shape, i));
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
    // TUN pods, as Calico/VPP's CNI makes them; the new pods measured below are half TUN,
    // half Ethernet taps (which need a static neighbour per address).
    rig.add_pod_tuns(shape.pods);
    for k in 0..new_pods {
        if k % 2 == 0 {
            rig.add_pod_tun(shape.pods + k);
        } else {
            rig.add_pod_tap(shape.pods + k);
        }
    }
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
    let mut per_tap_pod = Vec::new();
    let mut by_message = Default::default();
    for k in 0..new_pods {
        let i = shape.pods + k;
        by_message = rig.sim.call_counts();
        let w0 = rig.sim.write_calls();
        new_pod(&mut d, &shape, i);
        let id = script::workload_id(i, shape.namespaces).workload_id;
        d.wait_status(&id, Some("up"), WAIT);
        std::thread::sleep(Duration::from_millis(250));
        let writes = rig.sim.write_calls() - w0;
        if k % 2 == 0 {
            per_pod.push(writes);
        } else {
            per_tap_pod.push(writes);
        }
    }
    let last: Vec<String> = rig
        .sim
        .call_counts()
        .into_iter()
        .filter_map(|(name, n)| {
            let before = by_message.get(&name).copied().unwrap_or(0);
            (n > before && !name.contains("dump") && !name.contains("ping"))
                .then(|| format!("{name} x{}", n - before))
        })
        .collect();
    println!(
        "sim: VPP write calls per new pod on a TUN interface (Calico/VPP's CNI default): {:?} \
         (mean {:.1}, max {})",
        per_pod,
        per_pod.iter().sum::<u64>() as f64 / per_pod.len() as f64,
        per_pod.iter().max().unwrap(),
    );
    println!(
        "sim: VPP write calls per new dual-stack pod on an Ethernet tap: {:?} (mean {:.1}, max \
         {}); the last one: {}",
        per_tap_pod,
        per_tap_pod.iter().sum::<u64>() as f64 / per_tap_pod.len() as f64,
        per_tap_pod.iter().max().unwrap(),
        last.join(", ")
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
    drop(d);
    drop(rig);

    match std::env::var_os(REAL_VPP_ENV) {
        Some(sock) => real_vpp(
            std::path::Path::new(&sock),
            &shape,
            members,
            new_pods,
            deltas,
        ),
        None => println!("real VPP: SKIPPED ({REAL_VPP_ENV} is not set)"),
    }
}

/// Writes of the passes logged since `from` (index into the pass log).
fn logged_writes(d: &Driver, from: usize) -> u64 {
    d.passes.lock().unwrap()[from..].iter().map(|p| p.1).sum()
}

fn pass_count(d: &Driver) -> usize {
    d.passes.lock().unwrap().len()
}

/// The same measurements against a real VPP: one tagged, up loopback per pod; VPP write
/// calls and apply times come from the driver's pass log (a real VPP has no call counter).
/// Everything created is removed at the end.
fn real_vpp(
    sock: &std::path::Path,
    shape: &ClusterShape,
    members: usize,
    new_pods: usize,
    deltas: usize,
) {
    use calico_vpp_driver::dataplane::vpp::{VppConfig, VppDataplane};
    use calico_vpp_driver::dataplane::{Dataplane, SwIfIndex};
    use vpp_bindings::client::{Client, ClientConfig};
    use vpp_bindings::gen::interface as itf;
    use vpp_bindings::gen::interface_types::IfStatusFlags;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = rt
        .block_on(Client::connect(sock, ClientConfig::default()))
        .expect("connect to the real VPP");
    let t = Instant::now();
    let mut loops = Vec::new();
    // Half the new pods get a point-to-point interface, as Calico/VPP's CNI makes them (TUN
    // taps; this kernel lacks vhost-net, so a VPP ipip tunnel stands in: the same
    // no-neighbour-resolution class), everything else a loopback (Ethernet class).
    let mut tuns = Vec::new();
    for k in (0..new_pods).step_by(2) {
        let i = shape.pods + k;
        let addr = |n: u8| -> vpp_bindings::gen::ip_types::Address {
            std::net::IpAddr::from([10, 254, (k as u8), n]).into()
        };
        let r = rt
            .block_on(client.request(&vpp_bindings::gen::ipip::IpipAddTunnel {
                tunnel: vpp_bindings::gen::ipip::IpipTunnel {
                    instance: u32::MAX,
                    src: addr(1),
                    dst: addr(2),
                    ..Default::default()
                },
            }))
            .expect("ipip_add_tunnel");
        assert_eq!(r.retval, 0, "ipip_add_tunnel");
        tuns.push(r.sw_if_index);
        let tag = rt.block_on(client.request(&itf::SwInterfaceTagAddDel {
            is_add: true,
            sw_if_index: r.sw_if_index,
            tag: script::pod_iface(i),
        }));
        let up = rt.block_on(client.request(&itf::SwInterfaceSetFlags {
            sw_if_index: r.sw_if_index,
            flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
        }));
        assert!(tag.is_ok() && up.is_ok(), "tag/up tunnel");
    }
    for i in 0..shape.pods + new_pods {
        if i >= shape.pods && (i - shape.pods).is_multiple_of(2) {
            continue;
        }
        let b = (i as u32).to_be_bytes();
        let r = rt
            .block_on(client.request(&itf::CreateLoopback {
                mac_address: vpp_bindings::gen::ethernet_types::MacAddress([
                    0x02, 0xfe, 0x10, b[1], b[2], b[3],
                ]),
            }))
            .expect("create_loopback");
        assert_eq!(r.retval, 0, "create_loopback");
        loops.push(r.sw_if_index);
        let tag = rt.block_on(client.request(&itf::SwInterfaceTagAddDel {
            is_add: true,
            sw_if_index: r.sw_if_index,
            tag: script::pod_iface(i),
        }));
        let up = rt.block_on(client.request(&itf::SwInterfaceSetFlags {
            sw_if_index: r.sw_if_index,
            flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
        }));
        assert!(tag.is_ok() && up.is_ok(), "tag/up loopback");
    }
    println!(
        "real VPP: {} tagged loopbacks and {} point-to-point (ipip) interfaces created in {:.3} s",
        loops.len(),
        tuns.len(),
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let mut d = Driver::spawn(&[
        ("CALICO_VPP_DATAPLANE", "vpp"),
        ("CALICO_VPP_API_SOCKET", sock.to_str().expect("utf-8 path")),
        ("CALICO_VPP_STATE_DIR", state.to_str().expect("utf-8 path")),
    ]);
    let stream = big_snapshot(shape, members);
    d.send(&stream);
    drop(stream);
    let t_insync = Instant::now();
    d.send(&[script::in_sync()]);
    let converged = wait_until(WAIT, || ups(&d) >= shape.pods);
    let reported = t_insync.elapsed();
    let last_pass = d
        .passes
        .lock()
        .unwrap()
        .last()
        .map(|p| p.0.duration_since(t_insync));
    println!(
        "real VPP: InSync -> every endpoint reported up on fd 4: {} in {:.3} s (last pass logged \
         at {:.3} s; {} VPP write calls)",
        if converged {
            "converged"
        } else {
            "NOT converged"
        },
        reported.as_secs_f64(),
        last_pass.unwrap_or_default().as_secs_f64(),
        logged_writes(&d, 0)
    );

    std::thread::sleep(Duration::from_millis(300));
    let mut per_pod = [Vec::new(), Vec::new()];
    for k in 0..new_pods {
        let i = shape.pods + k;
        let p0 = pass_count(&d);
        new_pod(&mut d, shape, i);
        let id = script::workload_id(i, shape.namespaces).workload_id;
        d.wait_status(&id, Some("up"), WAIT);
        std::thread::sleep(Duration::from_millis(250));
        per_pod[k % 2].push(logged_writes(&d, p0));
    }
    for (label, writes) in ["a point-to-point interface", "a loopback (Ethernet class)"]
        .iter()
        .zip(&per_pod)
    {
        println!(
            "real VPP: VPP write calls per new dual-stack pod on {label}: {:?} (mean {:.1}, max {})",
            writes,
            writes.iter().sum::<u64>() as f64 / writes.len().max(1) as f64,
            writes.iter().max().copied().unwrap_or(0)
        );
    }

    for (label, gap) in [
        ("150 ms apart", Duration::from_millis(150)),
        ("back to back", Duration::ZERO),
    ] {
        let mut lat = Vec::new();
        for k in 0..deltas {
            let member = format!("10.98.{}.{}/32", k / 2 / 250, k / 2 % 250 + 1);
            let (added, removed) = if k % 2 == 0 {
                (vec![member], vec![])
            } else {
                (vec![], vec![member])
            };
            let p0 = pass_count(&d);
            let t = Instant::now();
            d.send(&[script::envelope(Payload::IpsetDeltaUpdate(
                proto::IpSetDeltaUpdate {
                    id: script::ns_set_id(0),
                    added_members: added,
                    removed_members: removed,
                },
            ))]);
            assert!(wait_until(Duration::from_secs(10), || pass_count(&d) > p0));
            let at = d.passes.lock().unwrap()[p0].0;
            lat.push(at.duration_since(t));
            std::thread::sleep(gap);
        }
        lat.sort();
        report_latencies(
            &format!("real VPP: IP set delta fd 3 -> pass done (logged), {label}"),
            &lat,
        );
    }

    // Clean up: stop the driver, put the loopbacks back to plain, delete what the driver
    // created (from its state file), then the loopbacks.
    let _ = d.stop();
    rt.block_on(async {
        let mut dp = VppDataplane::new(VppConfig {
            socket: sock.to_path_buf(),
            request_timeout: Duration::from_secs(60),
            ..VppConfig::default()
        });
        dp.connect().await.expect("connect");
        let ops =
            common::rig::release_ops(loops.iter().chain(&tuns).map(|&idx| SwIfIndex(idx)), &state);
        let failed = dp
            .execute(ops)
            .await
            .expect("clean-up batch")
            .into_iter()
            .filter(|r| r.is_err())
            .count();
        for &idx in &loops {
            let _ = client
                .request(&itf::DeleteLoopback { sw_if_index: idx })
                .await;
        }
        for &idx in &tuns {
            let _ = client
                .request(&vpp_bindings::gen::ipip::IpipDelTunnel { sw_if_index: idx })
                .await;
        }
        println!(
            "real VPP: cleaned up ({} loopbacks and {} tunnels deleted, {failed} clean-up \
             operations refused)",
            loops.len(),
            tuns.len()
        );
    });
}
