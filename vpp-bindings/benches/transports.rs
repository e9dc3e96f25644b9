//! Socket against shared-memory transport on one real VPP, in one run: pipelined
//! `ip_route_add_del` rate, pipelined npol member-add rate, one-at-a-time route rate, and
//! single-request round trip (`control_ping`) p50/p99. Needs `CALICO_VPP_TEST_VPP_PREFIX`;
//! without it, says so and exits. Run: `cargo bench -p vpp-bindings --bench transports`.

#[path = "../tests/support/realvpp.rs"]
mod realvpp;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use vpp_bindings::client::{Client, ClientConfig};
use vpp_bindings::gen::fib_types::FibPath;
use vpp_bindings::gen::ip::{IpRoute, IpRouteAddDel};
use vpp_bindings::gen::memclnt::ControlPing;
use vpp_bindings::gen::npol::{
    NpolIpsetAddDelMembers, NpolIpsetCreate, NpolIpsetMember, NpolIpsetMemberVal, NpolIpsetType,
};
use vpp_bindings::transport::shm::{Receive, ShmConfig};

const ROUTES: u32 = 50_000;
const BATCH: usize = 1_000;
const MEMBERS: u32 = 50_000;
const SINGLE: u32 = 5_000;
const ROUND_TRIPS: usize = 5_000;

fn route(i: u32, is_add: bool) -> IpRouteAddDel {
    let net = Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + (i << 8)), 24).unwrap();
    IpRouteAddDel {
        is_add,
        is_multipath: false,
        route: IpRoute {
            prefix: net.into(),
            paths: vec![FibPath {
                sw_if_index: u32::MAX,
                ..FibPath::default()
            }],
            ..IpRoute::default()
        },
    }
}

/// Requests per second for `reqs`, sent in pipelined batches of [`BATCH`].
async fn pipelined<R: vpp_bindings::Request>(client: &Client, reqs: &[R]) -> f64 {
    let t = Instant::now();
    for chunk in reqs.chunks(BATCH) {
        for (i, r) in client
            .request_batch(chunk)
            .await
            .unwrap()
            .iter()
            .enumerate()
        {
            if let Err(e) = r {
                panic!("{} #{i}: {e}", R::NAME);
            }
        }
    }
    reqs.len() as f64 / t.elapsed().as_secs_f64()
}

struct Numbers {
    routes_pipelined: f64,
    routes_single: f64,
    members_pipelined: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(client: &Client, base: u32) -> Numbers {
    let adds: Vec<_> = (0..ROUTES).map(|i| route(base + i, true)).collect();
    let dels: Vec<_> = (0..ROUTES).map(|i| route(base + i, false)).collect();
    let routes_pipelined = pipelined(client, &adds).await;
    pipelined(client, &dels).await;

    let t = Instant::now();
    for r in &adds[..SINGLE as usize] {
        client.request(r).await.unwrap();
    }
    let routes_single = f64::from(SINGLE) / t.elapsed().as_secs_f64();
    pipelined(client, &dels[..SINGLE as usize]).await;

    let set = client
        .request(&NpolIpsetCreate {
            type_: NpolIpsetType::NpolIp,
        })
        .await
        .unwrap()
        .set_id;
    let members: Vec<_> = (0..MEMBERS)
        .map(|i| NpolIpsetAddDelMembers {
            set_id: set,
            is_add: true,
            members: vec![NpolIpsetMember {
                val: NpolIpsetMemberVal::from_address(&Ipv4Addr::from(0x0c00_0000 + i).into())
                    .unwrap(),
            }],
        })
        .collect();
    let members_pipelined = pipelined(client, &members).await;

    let mut rtt = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        client.request(&ControlPing {}).await.unwrap();
        rtt.push(t.elapsed());
    }
    rtt.sort();
    Numbers {
        routes_pipelined,
        routes_single,
        members_pipelined,
        p50: rtt[rtt.len() / 2],
        p99: rtt[rtt.len() * 99 / 100],
    }
}

fn print(name: &str, n: &Numbers) {
    println!(
        "{name:<8} ip_route_add_del pipelined {:>9.0}/s  one at a time {:>8.0}/s ({:.1}x)  \
         npol member add pipelined {:>9.0}/s  control_ping round trip p50 {:>6.1} us p99 {:>6.1} us",
        n.routes_pipelined,
        n.routes_single,
        n.routes_pipelined / n.routes_single,
        n.members_pipelined,
        n.p50.as_secs_f64() * 1e6,
        n.p99.as_secs_f64() * 1e6,
    );
}

fn main() {
    if std::env::var_os(realvpp::PREFIX_ENV).is_none() {
        println!(
            "transports bench: SKIP, set {} to a VPP install to compare socket and shm",
            realvpp::PREFIX_ENV
        );
        return;
    }
    let vpp = realvpp::Vpp::start("bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = ClientConfig {
            name: "transports-bench".into(),
            ..ClientConfig::default()
        };
        let socket = Client::connect(vpp.socket(), config.clone()).await.unwrap();
        let shm = |receive| {
            let config = config.clone();
            let shm = ShmConfig {
                library: Some(realvpp::client_library(&vpp.prefix)),
                prefix: Some(vpp.name.clone()),
                receive,
                ..ShmConfig::default()
            };
            async move { Client::connect_shm_with(shm, config).await.unwrap() }
        };
        // Warm VPP up (FIB, allocator), then measure each transport twice, alternating.
        // One shm connection per process: each is closed before the next connects.
        measure(&socket, 0).await;
        for round in 1..=2 {
            println!("round {round}:");
            print("socket", &measure(&socket, 0).await);
            let c = shm(Receive::Callback).await;
            print("shm", &measure(&c, 0).await);
            c.close().await.unwrap();
            let c = shm(Receive::Read).await;
            print("shm/read", &measure(&c, 0).await);
            c.close().await.unwrap();
        }
    });
}
