//! Service scalability on a real VPP (issue 15): with 10, 1,000 and 10,000 Kubernetes
//! services programmed (each two backends), the TCP connect latency from a pod to one
//! service's ClusterIP (p50, p99 of 300 connections), and the time from the API server's
//! change to the last translation in VPP. Calico/VPP's claim is a latency flat in the number
//! of services (kube-proxy's iptables mode grows with it).
//!
//! Run (root): `CALICO_VPP_TEST_VPP_PREFIX=<unpacked VPP> cargo bench -p integration --bench
//! services_scale` (`SERVICES_SCALE=10,1000,10000` to change the steps).

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use calico_vpp_driver::felix::script;
use common::driver::{wait_until, Driver};
use common::realvpp::{
    ipam_pool, node1, profile_allowing, unique, Pod, VppInstance, PREFIX_ENV, TCP_SERVER,
};
use kube_watch::fake::FakeApiServer;
use kube_watch::k8s_openapi::api::core::v1::Service;
use kube_watch::k8s_openapi::api::discovery::v1::EndpointSlice;

const NODE_IP: &str = "192.168.84.1";

/// The ClusterIP of service `i`: 10.96.0.0/16 upwards.
fn vip(i: usize) -> String {
    format!("10.96.{}.{}", 1 + i / 250, 1 + i % 250)
}

fn service(i: usize) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("s{i}"), "namespace": "scale"},
        "spec": {"clusterIP": vip(i), "clusterIPs": [vip(i)],
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn slice(i: usize, backends: &[&Pod]) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = backends
        .iter()
        .map(
            |p| serde_json::json!({"addresses": [p.v4.to_string()], "conditions": {"ready": true}}),
        )
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("s{i}-x"), "namespace": "scale",
                     "labels": {"kubernetes.io/service-name": format!("s{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": endpoints
    }))
    .unwrap()
}

/// argv[3] connections to argv[1]:argv[2]; prints p50 and p99 connect times in ms, and the
/// failures.
const CONNECT_TIMES: &str = r#"
import socket, sys, time
t = []
fail = 0
for i in range(int(sys.argv[3])):
    s = time.perf_counter()
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
        t.append((time.perf_counter() - s) * 1000)
        c.close()
    except Exception:
        fail += 1
t.sort()
p = lambda q: t[min(len(t) - 1, int(len(t) * q))] if t else float("nan")
print("%.3f %.3f %d" % (p(0.5), p(0.99), fail))
"#;

/// The service translations in VPP (VIPs in 10.96.0.0/16), counted through the binary API's
/// dump: `show cnat translation` prints every translation with its load-balancing buckets,
/// and at 10,000 services that CLI keeps VPP's main thread (and so its API) busy for seconds.
fn translations(vpp: &VppInstance) -> usize {
    use vpp_bindings::gen::cnat::CnatTranslationDump;
    common::realvpp::block_on(async {
        let Ok(client) = vpp.client().await else {
            return 0;
        };
        let n = client
            .dump(&CnatTranslationDump {})
            .await
            .map(|ts| {
                ts.iter()
                    .filter(|t| {
                        let a = t.translation.vip.addr.un.0;
                        a[0] == 10 && a[1] == 96
                    })
                    .count()
            })
            .unwrap_or(0);
        let _ = client.close().await;
        n
    })
}

fn main() {
    if std::env::var_os(PREFIX_ENV).is_none() {
        println!("services_scale: needs a real VPP (set {PREFIX_ENV} to an unpacked VPP) and root; skipped");
        return;
    }
    let steps: Vec<usize> = std::env::var("SERVICES_SCALE")
        .unwrap_or_else(|_| "10,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let vpp = VppInstance::start();
    let ext = Pod::attach_as(&vpp, &unique("x"), [192, 168, 84], "fd84:84");
    let uplink = format!("host-{}", ext.host_if);
    let client = Pod::attach_as(&vpp, &unique("c"), [10, 79, 9], "fd79:9");
    let b1 = Pod::attach_as(&vpp, &unique("b"), [10, 79, 1], "fd79:1");
    let b2 = Pod::attach_as(&vpp, &unique("b"), [10, 79, 2], "fd79:2");
    let _s1 = b1.spawn_python(TCP_SERVER, &["8080"]);
    let _s2 = b2.spawn_python(TCP_SERVER, &["8080"]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeApiServer::start()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).unwrap();
    let mut d = Driver::on_vpp(
        &vpp,
        &[
            ("CALICO_VPP_UPLINK_INTERFACE", uplink.as_str()),
            ("CALICO_VPP_SERVICES", "on"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("CALICO_VPP_LOG_LEVEL", "warn"),
        ],
    );
    let mut snapshot = node1(NODE_IP);
    snapshot.extend([
        profile_allowing("kns.scale", false),
        ipam_pool("10.79.0.0/16", false, "Never"),
        client.endpoint("scale/client", "kns.scale", false),
        b1.endpoint("scale/b1", "kns.scale", false),
        b2.endpoint("scale/b2", "kns.scale", false),
        script::in_sync(),
    ]);
    d.send(&snapshot);
    for w in ["scale/client", "scale/b1", "scale/b2"] {
        d.wait_status(w, Some("up"), Duration::from_secs(30));
    }

    println!("services_scale: real VPP, one node, every service 2 backends; 300 connections to one ClusterIP per step");
    println!(
        "  {:>8}  {:>12}  {:>10}  {:>10}  {:>8}",
        "services", "program (s)", "p50 (ms)", "p99 (ms)", "failed"
    );
    let mut have = 0;
    let target = 0; // service 0 is the one connected to
    for &n in &steps {
        let t = Instant::now();
        for i in have..n {
            api.apply_service(service(i));
            api.apply_slice(slice(i, &[&b1, &b2]));
        }
        let ok = wait_until(Duration::from_secs(600), || translations(&vpp) >= n);
        let programmed = t.elapsed();
        have = n;
        if !ok {
            println!(
                "  {n:>8}  not programmed within 600 s ({} translations)",
                translations(&vpp)
            );
            break;
        }
        // Warm the client's neighbour entry, then measure.
        let _ = client.python(CONNECT_TIMES, &[&vip(target), "80", "5"]);
        let (_, out) = client.python(CONNECT_TIMES, &[&vip(target), "80", "300"]);
        let f: Vec<&str> = out.split_whitespace().collect();
        if f.get(2).is_some_and(|n| *n != "0") {
            // Failures: what VPP counted, for the record.
            for cmd in ["show errors", "show cnat session", "show cnat client"] {
                let o = vpp.cli(cmd);
                let lines: Vec<&str> = o.lines().filter(|l| !l.trim().is_empty()).collect();
                eprintln!("--- {cmd} ({} lines)", lines.len());
                for l in lines.iter().take(25) {
                    eprintln!("{l}");
                }
            }
        }
        println!(
            "  {n:>8}  {:>12.2}  {:>10}  {:>10}  {:>8}",
            programmed.as_secs_f64(),
            f.first().unwrap_or(&"?"),
            f.get(1).unwrap_or(&"?"),
            f.get(2).unwrap_or(&"?")
        );
    }
    d.stop();
    drop(api);
    drop(rt);
}
