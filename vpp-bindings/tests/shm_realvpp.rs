//! The shared-memory transport against a real VPP: connect through libvppapiclient, ask,
//! pipeline, dump, and notice VPP dying. Needs `CALICO_VPP_TEST_VPP_PREFIX`; run with
//! `--ignored`, where a missing variable fails the test instead of skipping it.
//! One test function: libvppapiclient allows one connection per process.

#[path = "support/realvpp.rs"]
mod realvpp;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use vpp_bindings::client::{Client, ClientConfig, ClientError};
use vpp_bindings::compat::CLIENT_MESSAGES;
use vpp_bindings::gen::fib_types::FibPath;
use vpp_bindings::gen::interface::{CreateLoopback, SwInterfaceSetFlags, WantInterfaceEvents};
use vpp_bindings::gen::interface_types::IfStatusFlags;
use vpp_bindings::gen::ip::{IpRoute, IpRouteAddDel, IpRouteDump, IpTable};
use vpp_bindings::gen::vpe::ShowVersion;
use vpp_bindings::transport::shm::{Receive, ShmConfig, ShmError};
use vpp_bindings::Message;

use realvpp::{client_library, Vpp};

fn shm_config(vpp: &Vpp) -> ShmConfig {
    ShmConfig {
        library: Some(client_library(&vpp.prefix)),
        prefix: Some(vpp.name.clone()),
        name: "shm-realvpp-test".into(),
        ..ShmConfig::default()
    }
}

fn client_config() -> ClientConfig {
    let mut required = CLIENT_MESSAGES.to_vec();
    required.extend([
        IpRouteAddDel::INFO,
        <IpRouteAddDel as vpp_bindings::Request>::Reply::INFO,
        IpRouteDump::INFO,
    ]);
    ClientConfig {
        name: "shm-realvpp-test".into(),
        required,
        ..ClientConfig::default()
    }
}

fn route(i: u32, is_add: bool) -> IpRouteAddDel {
    let net = Ipv4Net::new(Ipv4Addr::from(0x0a80_0000 + (i << 8)), 24).unwrap();
    IpRouteAddDel {
        is_add,
        is_multipath: false,
        route: IpRoute {
            table_id: 0,
            prefix: net.into(),
            paths: vec![FibPath {
                sw_if_index: u32::MAX,
                ..FibPath::default()
            }],
            ..IpRoute::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real VPP: set CALICO_VPP_TEST_VPP_PREFIX"]
async fn shm_transport_talks_to_vpp_pipelines_and_notices_it_dying() {
    let mut vpp = Vpp::start("shm");
    let client = Client::connect_shm_with(shm_config(&vpp), client_config())
        .await
        .unwrap_or_else(|e| panic!("connect over shm: {e}\n{}", vpp.log()));
    let v = client.request(&ShowVersion {}).await.expect("show_version");
    eprintln!(
        "connected over shm to VPP {} (client index {})",
        v.version,
        client.client_index()
    );
    assert!(!v.version.is_empty());

    // One connection per process.
    let second = Client::connect_shm_with(shm_config(&vpp), client_config()).await;
    assert!(
        matches!(
            second,
            Err(ClientError::Shm(ShmError::AlreadyConnected { .. }))
        ),
        "{second:?}"
    );

    // A pipelined batch, then a dump that sees every route.
    let n = 1000;
    let adds: Vec<_> = (0..n).map(|i| route(i, true)).collect();
    let t = Instant::now();
    let replies = client.request_batch(&adds).await.expect("batch");
    let took = t.elapsed();
    assert_eq!(replies.len(), n as usize);
    for (i, r) in replies.iter().enumerate() {
        if let Err(e) = r {
            panic!("route {i}: {e}");
        }
    }
    eprintln!("{n} ip_route_add_del pipelined over shm in {took:?}");
    let routes = client
        .dump(&IpRouteDump {
            table: IpTable::default(),
        })
        .await
        .expect("ip_route_dump");
    let ours = routes
        .iter()
        .filter(|r| {
            let p = &r.route.prefix;
            p.len == 24
                && p.address
                    .un
                    .ip4()
                    .is_ok_and(|a| a.0[0] == 10 && a.0[1] >= 0x80)
        })
        .count();
    assert_eq!(ours, n as usize, "dump shows every added route");

    // Events arrive on the same connection.
    let (_, mut events) = client
        .subscribe(&WantInterfaceEvents {
            enable_disable: 1,
            pid: std::process::id(),
        })
        .await
        .expect("want_interface_events");
    let lo = client
        .request(&CreateLoopback::default())
        .await
        .expect("create_loopback")
        .sw_if_index;
    client
        .request(&SwInterfaceSetFlags {
            sw_if_index: lo,
            flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
        })
        .await
        .expect("sw_interface_set_flags");
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = events
                .next_event()
                .await
                .expect("event stream open")
                .expect("decodes");
            // The loopback's creation comes first; wait for it going up.
            if e.sw_if_index == lo && e.flags.contains(IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP) {
                return;
            }
        }
    })
    .await
    .expect("an admin-up event for the loopback within 5 s");

    // A quiet connection stays up (the liveness probe gets answered).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(client.broken(), None);
    client
        .request(&ShowVersion {})
        .await
        .expect("still alive after idling");

    // VPP dies without a word: the client must say so within a few seconds.
    vpp.kill();
    let killed = Instant::now();
    while client.broken().is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "client did not notice VPP dying within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "disconnect noticed {:?} after VPP was killed: {}",
        killed.elapsed(),
        client.broken().unwrap()
    );
    let err = client.request(&ShowVersion {}).await.unwrap_err();
    assert!(matches!(err, ClientError::Broken(_)), "{err}");

    // The dead registration is released (vac_disconnect) even while the broken client is
    // still held, so a new VPP can be reached before the old client is dropped.
    let mut vpp2 = Vpp::start("shm2");
    let t = Instant::now();
    let client2 = Client::connect_shm_with(shm_config(&vpp2), client_config())
        .await
        .unwrap_or_else(|e| panic!("reconnect over shm: {e}\n{}", vpp2.log()));
    eprintln!("reconnected to a new VPP in {:?}", t.elapsed());
    drop(client);
    client2
        .request(&ShowVersion {})
        .await
        .expect("show_version");
    let clients = vpp2.cli("show api clients");
    assert!(clients.contains("shm-realvpp-test"), "{clients}");
    client2.close().await.expect("close");
    // close (vac_disconnect) unregistered: VPP no longer lists the client.
    let clients = vpp2.cli("show api clients");
    assert!(!clients.contains("shm-realvpp-test"), "{clients}");

    // Dropping a client (no close) lets the next connect in too.
    let dropped = Client::connect_shm_with(shm_config(&vpp2), client_config())
        .await
        .expect("connect right after close");
    dropped
        .request(&ShowVersion {})
        .await
        .expect("show_version");
    drop(dropped);

    // The other receive mode (our thread in vac_read) does the same.
    let read_mode = ShmConfig {
        receive: Receive::Read,
        ..shm_config(&vpp2)
    };
    let client3 = Client::connect_shm_with(read_mode, client_config())
        .await
        .expect("connect right after a drop");
    let replies = client3.request_batch(&adds[..100]).await.expect("batch");
    assert!(replies.iter().all(Result::is_ok));
    client3
        .request(&ShowVersion {})
        .await
        .expect("show_version");
    vpp2.kill();
    let killed = Instant::now();
    while client3.broken().is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "vac_read mode did not notice VPP dying within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "vac_read mode noticed the kill after {:?}",
        killed.elapsed()
    );
}

#[test]
fn shm_connect_without_a_segment_is_a_clear_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(Client::connect_shm(
            Some("no-such-vpp-segment"),
            ClientConfig::default(),
        ))
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Shm(ShmError::SegmentMissing { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("no-such-vpp-segment-vpe-api"),
        "{err}"
    );
}
