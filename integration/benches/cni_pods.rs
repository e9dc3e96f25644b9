//! Pod wiring on a real VPP (issue 14): 100 pods added through the CNI server, 10 at a time
//! (the plugin opens a connection per call), with the veth + af_packet back-end. Prints the
//! `Add` latency (p50, p99, max), VPP writes per pod (the `Add` and, separately, the endpoint
//! binding when Felix's endpoints arrive), the `Del` latency, and whether VPP's interface and
//! route counts and the host's links are back at their baseline after every `Del`.
//!
//! Run (root): `CALICO_VPP_TEST_VPP_PREFIX=<unpacked VPP> cargo bench -p integration --bench
//! cni_pods` (`CNI_PODS=n`, `CNI_PARALLEL=k` to change the 100 and the 10).

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_vpp_driver::cni::{client, proto as cni};
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope};
use common::driver::{wait_until, Driver};
use common::realvpp::{
    attach_af_packet, cni_endpoint, interface_count, ipam_pool, node1, profile_allowing, run,
    VppInstance, Wire, PREFIX_ENV,
};

const NODE_IP: &str = "192.168.82.1";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn netns_name(i: usize) -> String {
    format!("cnib{}-{i}", std::process::id())
}

fn host_name(i: usize) -> String {
    format!("cali{:011x}", 0xb0000000 + i as u64)
}

fn pod_ip(i: usize) -> String {
    format!("10.77.{}.{}", i / 200, i % 200 + 2)
}

fn add_request(i: usize) -> cni::AddRequest {
    cni::AddRequest {
        interface_name: "eth0".into(),
        netns: format!("/var/run/netns/{}", netns_name(i)),
        desired_host_interface_name: host_name(i),
        settings: Some(cni::ContainerSettings {
            allow_ip_forwarding: false,
            mtu: 0,
        }),
        container_ips: vec![cni::IpConfig {
            address: format!("{}/26", pod_ip(i)),
            gateway: "<nil>".into(),
        }],
        container_routes: vec!["0.0.0.0/0".into(), "::/0".into()],
        workload: Some(cni::WorkloadIDs {
            name: format!("p{i}"),
            namespace: "bench".into(),
            orchestrator: "k8s".into(),
            ..Default::default()
        }),
        dataplane_options: Default::default(),
    }
}

fn endpoint(i: usize) -> proto::ToDataplane {
    cni_endpoint(
        &format!("bench/p{i}"),
        &host_name(i),
        &pod_ip(i),
        "kns.bench",
    )
}

/// Runs `calls` (pod indexes) `parallel` at a time, each on a connection of its own; the
/// latency of each and whether it succeeded.
fn run_calls<F, Fut>(
    rt: &tokio::runtime::Runtime,
    n: usize,
    parallel: usize,
    call: F,
) -> Vec<(Duration, bool)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    rt.block_on(async move {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut tasks = Vec::new();
        for i in 0..n {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let call = call.clone();
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = call(i).await;
                drop(permit);
                (t.elapsed(), ok)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99), v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// (interfaces, IPv4 FIB entries) in VPP.
fn vpp_counts(vpp: &VppInstance) -> (usize, usize) {
    let ifs = interface_count(vpp);
    let routes = vpp
        .cli("show ip fib")
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .count();
    (ifs, routes)
}

fn cali_links() -> usize {
    run("ip", &["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(": cali000b"))
        .count()
}

fn main() {
    if std::env::var_os(PREFIX_ENV).is_none() {
        println!(
            "cni_pods: needs a real VPP (set {PREFIX_ENV} to an unpacked VPP) and root; skipped"
        );
        return;
    }
    let pods = env_usize("CNI_PODS", 100);
    let parallel = env_usize("CNI_PARALLEL", 10);
    let vpp = VppInstance::start();
    let wire = Wire::new();
    attach_af_packet(
        &vpp,
        &wire.a,
        [2, 0, 0, 0x52, 0, 1],
        &[(NODE_IP.parse().unwrap(), 24)],
    );
    let uplink = format!("host-{}", wire.a);
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("cni.sock");
    let mut d = Driver::on_vpp(
        &vpp,
        &[
            ("CALICO_VPP_UPLINK_INTERFACE", uplink.as_str()),
            ("CALICO_VPP_CNI_SOCKET", socket.to_str().unwrap()),
            ("CALICO_VPP_POD_INTERFACE", "veth"),
            (
                "CALICO_VPP_LOG_LEVEL",
                "warn,calico_vpp_driver::reconcile=info",
            ),
        ],
    );
    let mut snapshot = node1(NODE_IP);
    snapshot.extend([
        profile_allowing("kns.bench", false),
        ipam_pool("10.77.0.0/16", false, "Never"),
        script::in_sync(),
    ]);
    d.send(&snapshot);
    assert!(
        wait_until(Duration::from_secs(20), || socket.exists()),
        "no CNI socket\n{}",
        d.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let baseline = vpp_counts(&vpp);
    let links_before = cali_links();
    for i in 0..pods {
        let ns = netns_name(i);
        let _ = run("ip", &["netns", "del", &ns]);
        run("ip", &["netns", "add", &ns]).unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let writes0 = d.writes();
    let sock = socket.clone();
    let added = run_calls(&rt, pods, parallel, move |i| {
        let sock = sock.clone();
        async move {
            let Ok(mut c) = client::connect(Path::new(&sock)).await else {
                return false;
            };
            c.add(add_request(i))
                .await
                .is_ok_and(|r| r.into_inner().successful)
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let add_writes = d.writes() - writes0;
    let failed = added.iter().filter(|(_, ok)| !ok).count();

    // Felix's endpoints: binding (policy, neighbours, routes) and up.
    let writes1 = d.writes();
    let t = Instant::now();
    let eps: Vec<_> = (0..pods).map(endpoint).collect();
    d.send(&eps);
    for i in 0..pods {
        d.wait_status(&format!("bench/p{i}"), Some("up"), Duration::from_secs(60));
    }
    let all_up = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let bind_writes = d.writes() - writes1;

    let sock = socket.clone();
    let deleted = run_calls(&rt, pods, parallel, move |i| {
        let sock = sock.clone();
        async move {
            let Ok(mut c) = client::connect(Path::new(&sock)).await else {
                return false;
            };
            c.del(cni::DelRequest {
                interface_name: "eth0".into(),
                netns: format!("/var/run/netns/{}", netns_name(i)),
                dataplane_options: Default::default(),
            })
            .await
            .is_ok_and(|r| r.into_inner().successful)
        }
    });
    // Felix withdraws the endpoints as Kubernetes deletes the pods.
    let removes: Vec<_> = (0..pods)
        .map(|i| {
            envelope(Payload::WorkloadEndpointRemove(
                proto::WorkloadEndpointRemove {
                    id: Some(proto::WorkloadEndpointId {
                        orchestrator_id: "k8s".into(),
                        workload_id: format!("bench/p{i}"),
                        endpoint_id: "eth0".into(),
                    }),
                },
            ))
        })
        .collect();
    d.send(&removes);
    let back = wait_until(Duration::from_secs(30), || vpp_counts(&vpp) == baseline);
    let after = vpp_counts(&vpp);
    let links_after = cali_links();
    for i in 0..pods {
        let _ = Command::new("ip")
            .args(["netns", "del", &netns_name(i)])
            .status();
    }

    let (a50, a99, amax) = percentiles(added.iter().map(|(t, _)| *t).collect());
    let (d50, d99, dmax) = percentiles(deleted.iter().map(|(t, _)| *t).collect());
    println!("cni_pods: {pods} pods, {parallel} at a time, veth + af_packet, real VPP");
    println!(
        "  Add   p50 {}  p99 {}  max {}  ({failed} failed)",
        ms(a50),
        ms(a99),
        ms(amax)
    );
    println!(
        "  VPP writes per pod: {:.1} for the Add, {:.1} for the endpoint binding",
        add_writes as f64 / pods as f64,
        bind_writes as f64 / pods as f64
    );
    println!("  every endpoint up {} after Felix's endpoints", ms(all_up));
    println!(
        "  Del   p50 {}  p99 {}  max {}  ({} failed)",
        ms(d50),
        ms(d99),
        ms(dmax),
        deleted.iter().filter(|(_, ok)| !ok).count()
    );
    println!(
        "  after Del: VPP interfaces {} (baseline {}), IPv4 FIB entries {} (baseline {}), host cali links {links_after} (before {links_before}): {}",
        after.0,
        baseline.0,
        after.1,
        baseline.1,
        if back && links_after == links_before { "back at baseline" } else { "NOT at baseline" }
    );
    d.stop();
}
