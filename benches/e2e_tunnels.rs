//! Convergence of a cluster's connectivity through the reconciler into the VPP simulator
//! over the real API socket: one L2 VXLAN tunnel per remote node (six writes each: create,
//! MAC, unnumbered, cnat, neighbour, up) and four blocks routed into each, compiled from a
//! Felix model (host metadata, VTEPs, routes). Pipelined, then one request per round trip;
//! then a driver restart (state file adoption).
//!
//! Run: `cargo bench -p calico-vpp-driver --bench e2e_tunnels` (`E2E_NODES=n` remote nodes,
//! default 250). With `E2E_VPP_SOCKET` (a running real VPP's API socket, fresh) and
//! `E2E_VPP_UPLINK` (an interface in it, e.g. a loopback), the pipelined convergence and the
//! restart run against that VPP too.

mod common;

use std::time::{Duration, Instant};

use calico_compile::routes::{desired_routes, desired_uplinks};
use calico_compile::DesiredState;
use calico_model::{
    EncapMode, HostMetadata, IpPoolType, IpamPool, MacAddr, Model, Route, RouteTypes, TunnelType,
    Vtep,
};
use calico_vpp_driver::dataplane::vpp::{VppConfig, VppDataplane};
use calico_vpp_driver::dataplane::Dataplane;
use calico_vpp_driver::reconcile::{Reconciler, ReconcilerConfig};
use common::OneAtATime;
use vpp_sim::Simulator;

/// Node 0 is this node; nodes 1..=n are remote, each with four VXLAN blocks.
fn model(n: usize) -> Model {
    let mut m = Model {
        default_hostname: Some("node0".into()),
        ..Model::default()
    };
    m.ipam_pools.insert(
        "10.0.0.0-8".into(),
        IpamPool {
            cidr: "10.0.0.0/8".parse().unwrap(),
            masquerade: false,
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Always,
            allowed_uses: Vec::new(),
        },
    );
    for i in 0..=n {
        let node = format!("node{i}");
        let (hi, lo) = ((i / 250) as u8, (i % 250) as u8 + 1);
        let ip = std::net::Ipv4Addr::new(172, 16 + hi, lo, 1);
        m.host_metadata.insert(
            node.clone(),
            HostMetadata {
                ipv4_addr: Some(ipnet::Ipv4Net::new(ip, 12).unwrap()),
                ..HostMetadata::default()
            },
        );
        m.vteps.insert(
            node.clone(),
            Vtep {
                mac: Some(MacAddr([0x66, 0, 0, 0, hi, lo])),
                ipv4_addr: Some(std::net::Ipv4Addr::new(10, hi, lo, 0)),
                parent_device_ip: Some(ip),
                ..Vtep::default()
            },
        );
        if i == 0 {
            continue;
        }
        for b in 0..4u8 {
            let dst: ipnet::IpNet = format!("10.{hi}.{lo}.{}/26", b * 64).parse().unwrap();
            m.routes.insert(
                dst,
                Route {
                    dst,
                    types: RouteTypes(RouteTypes::REMOTE_WORKLOAD),
                    ip_pool_type: IpPoolType::Vxlan,
                    dst_node_name: node.clone(),
                    dst_node_ip: Some(ip.into()),
                    same_subnet: false,
                    nat_outgoing: false,
                    local_workload: false,
                    tunnel_type: TunnelType::default(),
                    borrowed: false,
                },
            );
        }
    }
    m
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

async fn converge<D: Dataplane>(
    label: &str,
    r: &mut Reconciler<D>,
    d: &DesiredState,
    writes: impl Fn() -> u64,
) -> Duration {
    r.connect().await.expect("connect");
    let w0 = writes();
    let t = Instant::now();
    let report = r.apply(d).await.expect("apply");
    let took = t.elapsed();
    assert_eq!(report.failed_ops, 0, "{label}: failures {:?}", r.failures());
    assert_eq!(
        report.waiting_objects,
        0,
        "{label}: waiting {:?}",
        r.waiting()
    );
    println!(
        "{label}: converged in {:.3} s: {} operations, {} VPP write calls, {:.0} operations/s",
        secs(took),
        report.writes,
        writes() - w0,
        report.writes as f64 / secs(took)
    );
    took
}

fn main() {
    let n: usize = std::env::var("E2E_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250);
    let t = Instant::now();
    let m = model(n);
    let (routes, tunnels) = desired_routes(&m);
    let d = DesiredState {
        routes,
        tunnels,
        uplinks: desired_uplinks(),
        ..DesiredState::default()
    };
    println!(
        "e2e_tunnels: {n} remote nodes; compiled in {:.3} s: {} VXLAN tunnels, {} routes",
        secs(t.elapsed()),
        d.tunnels.len(),
        d.routes.len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Simulator::start(dir.path().join("api.sock"))
            .await
            .expect("simulator");
        let uplink = || {
            sim.with_state_mut(|s| {
                let idx = s.create_tap(u32::MAX, None, None, "uplink").expect("tap");
                s.set_flags(idx, true);
            })
        };
        uplink();
        let vpp = || {
            VppDataplane::new(VppConfig {
                socket: sim.socket_path().to_path_buf(),
                request_timeout: Duration::from_secs(60),
                ..VppConfig::default()
            })
        };
        let cfg = ReconcilerConfig {
            state_dir: Some(dir.path().join("state")),
            uplink: Some("tap0".into()),
            ..ReconcilerConfig::default()
        };
        let mut r = Reconciler::new(vpp(), cfg.clone());
        let pipelined = converge("sim (pipelined)", &mut r, &d, || sim.write_calls()).await;
        drop(r);

        let w0 = sim.write_calls();
        let t = Instant::now();
        let mut r = Reconciler::new(vpp(), cfg.clone());
        r.connect().await.expect("connect");
        let report = r.apply(&d).await.expect("apply");
        println!(
            "sim: driver restart: adopted and resynced in {:.3} s with {} writes ({} VPP write calls)",
            secs(t.elapsed()),
            report.writes,
            sim.write_calls() - w0
        );
        drop(r);

        if let (Ok(sock), Ok(up)) = (
            std::env::var("E2E_VPP_SOCKET"),
            std::env::var("E2E_VPP_UPLINK"),
        ) {
            let real = || {
                VppDataplane::new(VppConfig {
                    socket: sock.clone().into(),
                    request_timeout: Duration::from_secs(120),
                    ..VppConfig::default()
                })
            };
            let real_dir = tempfile::tempdir().expect("tempdir");
            let real_cfg = ReconcilerConfig {
                state_dir: Some(real_dir.path().join("state")),
                uplink: Some(up),
                ..ReconcilerConfig::default()
            };
            let mut r = Reconciler::new(real(), real_cfg.clone());
            converge("real VPP (pipelined)", &mut r, &d, || 0).await;
            drop(r);
            let t = Instant::now();
            let mut r = Reconciler::new(real(), real_cfg);
            r.connect().await.expect("connect");
            let report = r.apply(&d).await.expect("apply");
            println!(
                "real VPP: driver restart: adopted and resynced in {:.3} s with {} writes",
                secs(t.elapsed()),
                report.writes
            );
        }

        sim.restart_empty();
        uplink();
        let serial_cfg = ReconcilerConfig {
            state_dir: None,
            ..cfg
        };
        let mut r = Reconciler::new(OneAtATime(vpp()), serial_cfg);
        let serial = converge("sim (one at a time)", &mut r, &d, || sim.write_calls()).await;
        println!(
            "sim: pipelining gain {:.2}x ({:.3} s vs {:.3} s)",
            secs(serial) / secs(pipelined),
            secs(pipelined),
            secs(serial)
        );
    });
}
