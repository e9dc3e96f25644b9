//! Request rate of the vpp-bindings async client against the simulator: `ip_route_add_del`
//! one at a time (await each reply) versus pipelined (batches sent at once, closed by one
//! control_ping). Prints req/s for both and the ratio. Run with
//! `cargo bench -p vpp-sim --bench client_pipelining` (optional arg: number of requests).

use std::net::Ipv4Addr;
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net};
use vpp_bindings::client::{Client, ClientConfig};
use vpp_bindings::gen::af_packet::AfPacketCreateV3;
use vpp_bindings::gen::fib_types::FibPath;
use vpp_bindings::gen::ip::{IpRoute, IpRouteAddDel};
use vpp_bindings::gen::ip_types::Prefix;
use vpp_sim::Simulator;

const BATCH: usize = 1000;

fn routes(n: usize, sw_if_index: u32, third: u8) -> Vec<IpRouteAddDel> {
    (0..n)
        .map(|i| {
            let i = i as u32;
            let a = Ipv4Addr::new(10, third, (i >> 8) as u8, (i & 0xff) as u8);
            let net = IpNet::V4(Ipv4Net::new(a, 32).expect("valid /32"));
            IpRouteAddDel {
                is_add: true,
                is_multipath: false,
                route: IpRoute {
                    table_id: 0,
                    prefix: Prefix::from(net),
                    paths: vec![FibPath {
                        sw_if_index,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            }
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000)
        .min(65_536);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let sock = dir.path().join("api.sock");
        let sim = Simulator::start(&sock).await?;
        let client = Client::connect(&sock, ClientConfig::default()).await?;
        let itf = client
            .request(&AfPacketCreateV3 {
                host_if_name: "bench0".into(),
                use_random_hw_addr: true,
                ..Default::default()
            })
            .await?
            .sw_if_index;

        let one = routes(n, itf, 1);
        let t = Instant::now();
        for r in &one {
            client.request(r).await?;
        }
        let serial = n as f64 / t.elapsed().as_secs_f64();

        let many = routes(n, itf, 2);
        let t = Instant::now();
        for chunk in many.chunks(BATCH) {
            for r in client.request_batch(chunk).await? {
                r?;
            }
        }
        let pipelined = n as f64 / t.elapsed().as_secs_f64();

        let programmed =
            sim.with_state(|s| s.tables.values().map(|t| t.routes.len()).sum::<usize>());
        anyhow::ensure!(
            programmed == 2 * n,
            "expected {} routes, simulator has {programmed}",
            2 * n
        );
        println!("ip_route_add_del against vpp-sim, {n} requests each:");
        println!("  one at a time: {serial:>10.0} req/s");
        println!("  pipelined:     {pipelined:>10.0} req/s (batches of {BATCH})");
        println!("  ratio:         {:>10.2}x", pipelined / serial);
        Ok(())
    })
}
