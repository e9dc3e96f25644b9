//! The project's own async client (vpp-bindings) against the simulator: compatibility check
//! over the whole generated table, typed VPP errors, pipelined batches, dumps and events.

use vpp_bindings::client::{Client, ClientConfig, ClientError};
use vpp_bindings::gen::af_packet::AfPacketCreateV3;
use vpp_bindings::gen::interface::{SwInterfaceDump, SwInterfaceSetFlags, WantInterfaceEvents};
use vpp_bindings::gen::interface_types::IfStatusFlags;
use vpp_bindings::gen::npol::{NpolIpsetCreate, NpolIpsetDelete, NpolIpsetType};
use vpp_sim::Simulator;

async fn setup() -> (tempfile::TempDir, Simulator, Client) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let sim = Simulator::start(&sock).await.unwrap();
    let config = ClientConfig {
        required: vpp_bindings::all_messages().copied().collect(),
        ..ClientConfig::default()
    };
    let client = Client::connect(&sock, config).await.unwrap();
    (dir, sim, client)
}

#[tokio::test]
async fn every_generated_message_passes_the_compatibility_check() {
    let (_d, sim, client) = setup().await;
    assert_eq!(client.message_table().len(), sim.message_table().len());
}

#[tokio::test]
async fn negative_retval_reaches_the_client_as_a_typed_error() {
    let (_d, _sim, client) = setup().await;
    let err = client
        .request(&NpolIpsetDelete { set_id: 3 })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Vpp { code: -6, .. }), "{err}");
}

#[tokio::test]
async fn batches_dumps_and_events_work_end_to_end() {
    let (_d, sim, client) = setup().await;
    let reqs: Vec<_> = (0..50)
        .map(|_| NpolIpsetCreate {
            type_: NpolIpsetType::NpolNet,
        })
        .collect();
    let ids: Vec<u32> = client
        .request_batch(&reqs)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().set_id)
        .collect();
    assert_eq!(ids, (0..50).collect::<Vec<_>>());

    let (_, mut events) = client
        .subscribe(&WantInterfaceEvents {
            enable_disable: 1,
            pid: 1,
        })
        .await
        .unwrap();
    let itf = client
        .request(&AfPacketCreateV3 {
            host_if_name: "e0".into(),
            use_random_hw_addr: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .sw_if_index;
    let up = IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP;
    client
        .request(&SwInterfaceSetFlags {
            sw_if_index: itf,
            flags: up,
        })
        .await
        .unwrap();
    let created = events.next_event().await.unwrap().unwrap();
    assert_eq!((created.sw_if_index, created.deleted), (itf, false));
    let went_up = events.next_event().await.unwrap().unwrap();
    assert_eq!(went_up.flags.0, 3);

    let all = client
        .dump(&SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(sim.calls("sw_interface_dump"), 1);
}
