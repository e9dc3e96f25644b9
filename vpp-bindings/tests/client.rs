//! Client behaviour against a scripted VPP below the codec (in-memory transport): the test
//! plays VPP frame by frame, so every case is deterministic.

use std::time::Duration;

use futures::StreamExt;
use vpp_bindings::client::{Client, ClientConfig, ClientError};
use vpp_bindings::gen::interface::{
    SwInterfaceDetails, SwInterfaceDump, SwInterfaceEvent, SwInterfaceSetFlags,
    SwInterfaceSetFlagsReply, WantInterfaceEvents, WantInterfaceEventsReply,
};
use vpp_bindings::gen::interface_types::IfStatusFlags;
use vpp_bindings::gen::memclnt::{
    ControlPing, ControlPingReply, MessageTableEntry, SockclntCreate, SockclntCreateReply,
};
use vpp_bindings::gen::npol::{NpolIpsetCreate, NpolIpsetCreateReply, NpolIpsetType};
use vpp_bindings::message::{
    decode_message, encode_message, SOCKCLNT_CREATE_MSG_ID, SOCKCLNT_CREATE_REPLY_MSG_ID,
};
use vpp_bindings::transport::memory::{pair, MemoryPeer};
use vpp_bindings::transport::socket::SocketTransport;
use vpp_bindings::transport::{FrameReader, FrameWriter, Transport};
use vpp_bindings::{all_messages, Message, MessageTable};

const CLIENT_INDEX: u32 = 0x77;

fn vpp_table() -> MessageTable {
    MessageTable::sequential(all_messages())
}

/// Answers the handshake the way VPP does; returns the client's name.
async fn handshake(peer: &mut MemoryPeer, table: &MessageTable) -> String {
    let f = peer.recv().await.expect("client sends sockclnt_create");
    let (h, req) = decode_message::<SockclntCreate>(&f).expect("sockclnt_create decodes");
    assert_eq!(h.msg_id, SOCKCLNT_CREATE_MSG_ID);
    let reply = SockclntCreateReply {
        response: 0,
        index: CLIENT_INDEX,
        message_table: table
            .entries()
            .into_iter()
            .map(|(index, name)| MessageTableEntry {
                index,
                name: name.to_owned(),
            })
            .collect(),
    };
    peer.send(encode_message(&reply, SOCKCLNT_CREATE_REPLY_MSG_ID, 0, h.context).unwrap());
    req.name
}

async fn connected(config: ClientConfig) -> (Client, MemoryPeer, MessageTable) {
    let (t, mut peer) = pair();
    let table = vpp_table();
    let (client, _) = tokio::join!(
        Client::connect_with(t, config),
        handshake(&mut peer, &table)
    );
    (client.expect("connects"), peer, table)
}

fn reply<M: Message>(table: &MessageTable, m: &M, context: u32) -> Vec<u8> {
    table.encode(m, 0, context).unwrap()
}

fn ping_reply(table: &MessageTable, context: u32) -> Vec<u8> {
    reply(
        table,
        &ControlPingReply {
            retval: 0,
            client_index: CLIENT_INDEX,
            vpe_pid: 1,
        },
        context,
    )
}

#[tokio::test]
async fn handshake_yields_client_index_and_message_table() {
    let (t, mut peer) = pair();
    let table = vpp_table();
    let cfg = ClientConfig {
        name: "calico-test".into(),
        ..Default::default()
    };
    let (client, name) = tokio::join!(Client::connect_with(t, cfg), handshake(&mut peer, &table));
    let client = client.unwrap();
    assert_eq!(name, "calico-test");
    assert_eq!(client.client_index(), CLIENT_INDEX);
    assert_eq!(client.message_table(), &table);
}

#[tokio::test]
async fn requests_carry_the_client_index_and_replies_match_by_context() {
    let (client, mut peer, table) = connected(ClientConfig::default()).await;
    let c2 = client.clone();
    let call = tokio::spawn(async move {
        c2.request(&SwInterfaceSetFlags {
            sw_if_index: 3,
            flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
        })
        .await
    });
    let f = peer.recv().await.unwrap();
    let (h, req) = table.decode::<SwInterfaceSetFlags>(&f).unwrap();
    assert_eq!(h.client_index, CLIENT_INDEX);
    assert_eq!(req.sw_if_index, 3);
    // A reply for another context first: must not be taken for ours.
    peer.send(reply(
        &table,
        &SwInterfaceSetFlagsReply { retval: -6 },
        h.context + 1000,
    ));
    peer.send(reply(
        &table,
        &SwInterfaceSetFlagsReply { retval: 0 },
        h.context,
    ));
    assert_eq!(call.await.unwrap().unwrap().retval, 0);
}

#[tokio::test]
async fn batch_is_pipelined_and_closed_by_one_control_ping() {
    let (client, mut peer, table) = connected(ClientConfig::default()).await;
    let reqs: Vec<NpolIpsetCreate> = (0..200)
        .map(|_| NpolIpsetCreate {
            type_: NpolIpsetType::NpolIp,
        })
        .collect();
    let c2 = client.clone();
    let call = tokio::spawn(async move { c2.request_batch(&reqs).await });

    // Everything arrives before VPP answers anything.
    let mut contexts = Vec::new();
    for _ in 0..200 {
        let f = peer.recv().await.unwrap();
        contexts.push(table.decode::<NpolIpsetCreate>(&f).unwrap().0.context);
    }
    let f = peer.recv().await.unwrap();
    let (ping, _) = table.decode::<ControlPing>(&f).unwrap();
    for (i, c) in contexts.iter().enumerate() {
        let retval = if i == 7 { -2 } else { 0 };
        peer.send(reply(
            &table,
            &NpolIpsetCreateReply {
                retval,
                set_id: i as u32,
            },
            *c,
        ));
    }
    peer.send(ping_reply(&table, ping.context));

    let results = call.await.unwrap().unwrap();
    assert_eq!(results.len(), 200);
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(rep) => assert_eq!(rep.set_id, i as u32),
            Err(ClientError::Vpp { msg, code, name }) => {
                assert_eq!(i, 7);
                assert_eq!(
                    (*msg, *code, *name),
                    ("npol_ipset_create", -2, Some("INVALID_SW_IF_INDEX"))
                );
            }
            Err(e) => panic!("entry {i}: {e}"),
        }
    }
}

#[tokio::test]
async fn batch_entry_without_reply_fails_alone_when_the_ping_is_answered() {
    let (client, mut peer, table) = connected(ClientConfig::default()).await;
    let c2 = client.clone();
    let call = tokio::spawn(async move {
        let mut b = c2.batch();
        let h1 = b.push(&NpolIpsetCreate::default()).unwrap();
        let h2 = b.push(&SwInterfaceSetFlags::default()).unwrap();
        let replies = b.send().await.unwrap();
        (replies.get(&h1), replies.get(&h2))
    });
    let f1 = peer.recv().await.unwrap();
    let _f2 = peer.recv().await.unwrap();
    let fp = peer.recv().await.unwrap();
    let c1 = table.decode::<NpolIpsetCreate>(&f1).unwrap().0.context;
    let cp = table.decode::<ControlPing>(&fp).unwrap().0.context;
    peer.send(reply(
        &table,
        &NpolIpsetCreateReply {
            retval: 0,
            set_id: 9,
        },
        c1,
    ));
    peer.send(ping_reply(&table, cp));
    let (r1, r2) = call.await.unwrap();
    assert_eq!(r1.unwrap().set_id, 9);
    assert!(matches!(
        r2,
        Err(ClientError::NoReply {
            msg: "sw_interface_set_flags"
        })
    ));
    assert!(
        client.broken().is_none(),
        "a missing reply inside a batch is not fatal"
    );
}

#[tokio::test]
async fn dump_collects_details_until_the_control_ping_reply() {
    let (client, mut peer, table) = connected(ClientConfig::default()).await;
    let c2 = client.clone();
    let call = tokio::spawn(async move { c2.dump(&SwInterfaceDump::default()).await });
    let f = peer.recv().await.unwrap();
    let (h, req) = table.decode::<SwInterfaceDump>(&f).unwrap();
    assert_eq!(req.sw_if_index, u32::MAX, "JSON default ~0 is the Default");
    let (hp, _) = table
        .decode::<ControlPing>(&peer.recv().await.unwrap())
        .unwrap();
    assert_eq!(hp.context, h.context, "dump and its ping share the context");
    for i in 0..3 {
        let d = SwInterfaceDetails {
            sw_if_index: i,
            interface_name: format!("tap{i}"),
            ..Default::default()
        };
        peer.send(reply(&table, &d, h.context));
    }
    peer.send(ping_reply(&table, h.context));
    let got = call.await.unwrap().unwrap();
    let names: Vec<_> = got.iter().map(|d| d.interface_name.as_str()).collect();
    assert_eq!(names, ["tap0", "tap1", "tap2"]);
}

#[tokio::test]
async fn negative_retval_is_a_typed_error_naming_message_and_vpp_error() {
    let (client, mut peer, table) = connected(ClientConfig::default()).await;
    let c2 = client.clone();
    let call = tokio::spawn(async move { c2.request(&SwInterfaceSetFlags::default()).await });
    let (h, _) = table
        .decode::<SwInterfaceSetFlags>(&peer.recv().await.unwrap())
        .unwrap();
    peer.send(reply(
        &table,
        &SwInterfaceSetFlagsReply { retval: -2 },
        h.context,
    ));
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Vpp { code: -2, .. }));
    assert_eq!(
        err.to_string(),
        "sw_interface_set_flags: VPP error -2 (INVALID_SW_IF_INDEX)"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_reply_times_out_and_marks_the_connection_broken() {
    let cfg = ClientConfig {
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let (client, mut peer, _table) = connected(cfg).await;
    let started = tokio::time::Instant::now();
    let err = client
        .request(&SwInterfaceSetFlags::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                msg: "sw_interface_set_flags",
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(peer.recv().await.is_some(), "the request was sent");
    assert!(client.broken().is_some());
    let again = client.request(&SwInterfaceSetFlags::default()).await;
    assert!(matches!(again, Err(ClientError::Broken(_))));
}

#[tokio::test]
async fn events_interleaved_with_a_dump_reach_the_event_stream() {
    let (client, mut peer, table) = connected(ClientConfig::default()).await;
    let c2 = client.clone();
    let sub = tokio::spawn(async move {
        c2.subscribe(&WantInterfaceEvents {
            enable_disable: 1,
            pid: 42,
        })
        .await
    });
    let (h, _) = table
        .decode::<WantInterfaceEvents>(&peer.recv().await.unwrap())
        .unwrap();
    peer.send(reply(
        &table,
        &WantInterfaceEventsReply { retval: 0 },
        h.context,
    ));
    let (_, mut events) = sub.await.unwrap().unwrap();

    let c3 = client.clone();
    let dump = tokio::spawn(async move { c3.dump(&SwInterfaceDump::default()).await });
    let (hd, _) = table
        .decode::<SwInterfaceDump>(&peer.recv().await.unwrap())
        .unwrap();
    let _ping = peer.recv().await.unwrap();
    let ev = SwInterfaceEvent {
        pid: 42,
        sw_if_index: 5,
        flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP
            | IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP,
        deleted: false,
    };
    peer.send(reply(&table, &SwInterfaceDetails::default(), hd.context));
    peer.send(table.encode(&ev, CLIENT_INDEX, 0).unwrap());
    peer.send(reply(&table, &SwInterfaceDetails::default(), hd.context));
    peer.send(ping_reply(&table, hd.context));

    assert_eq!(dump.await.unwrap().unwrap().len(), 2);
    let got = events.next().await.unwrap().unwrap();
    assert_eq!(got, ev);
}

#[tokio::test]
async fn connect_refuses_vpp_with_a_crc_mismatch_listing_every_one() {
    let (t, mut peer) = pair();
    let mut table = vpp_table();
    let id = table.id_of::<NpolIpsetCreate>().unwrap();
    table.insert(id, "npol_ipset_create_deadbeef");
    let cfg = ClientConfig {
        required: vec![NpolIpsetCreate::INFO, SwInterfaceDump::INFO],
        ..Default::default()
    };
    let (client, _) = tokio::join!(Client::connect_with(t, cfg), handshake(&mut peer, &table));
    match client {
        Err(ClientError::Incompatible(report)) => {
            assert_eq!(report.mismatches().count(), 1);
            assert!(report.to_string().contains("npol_ipset_create_deadbeef"));
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
}

/// A server on a real socket pair that answers each request as soon as it reads it, with
/// nothing read ahead: if the client stopped reading while writing, both would block.
#[tokio::test]
async fn big_batch_over_a_socket_does_not_deadlock() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let table = vpp_table();
    let server_table = table.clone();
    let server = tokio::spawn(async move {
        let (mut r, mut w) = SocketTransport::from_stream(b).split();
        let f = r.read_frame().await.unwrap().unwrap();
        let (h, _) = decode_message::<SockclntCreate>(&f).unwrap();
        let hello = SockclntCreateReply {
            response: 0,
            index: 1,
            message_table: server_table
                .entries()
                .into_iter()
                .map(|(index, name)| MessageTableEntry {
                    index,
                    name: name.to_owned(),
                })
                .collect(),
        };
        w.write_frame(&encode_message(&hello, SOCKCLNT_CREATE_REPLY_MSG_ID, 0, h.context).unwrap())
            .await
            .unwrap();
        w.flush().await.unwrap();
        let mut served = 0usize;
        while let Ok(Some(f)) = r.read_frame().await {
            let name = server_table.name_crc_of(&f).unwrap().to_owned();
            let out = if name == NpolIpsetCreate::NAME_CRC {
                let (h, _) = server_table.decode::<NpolIpsetCreate>(&f).unwrap();
                served += 1;
                // A fat reply makes socket buffers fill fast.
                server_table
                    .encode(
                        &NpolIpsetCreateReply {
                            retval: 0,
                            set_id: served as u32,
                        },
                        0,
                        h.context,
                    )
                    .unwrap()
            } else {
                let (h, _) = server_table.decode::<ControlPing>(&f).unwrap();
                ping_reply(&server_table, h.context)
            };
            w.write_frame(&out).await.unwrap();
            w.flush().await.unwrap();
        }
        served
    });
    let client = Client::connect_with(SocketTransport::from_stream(a), ClientConfig::default())
        .await
        .unwrap();
    let reqs = vec![NpolIpsetCreate::default(); 50_000];
    let results = client.request_batch(&reqs).await.unwrap();
    assert_eq!(results.len(), 50_000);
    assert!(results.iter().all(|r| r.is_ok()));
    drop(client);
    assert_eq!(server.await.unwrap(), 50_000);
}

#[tokio::test]
async fn keepalive_from_vpp_is_answered_with_its_context() {
    use vpp_bindings::gen::memclnt::{MemclntKeepalive, MemclntKeepaliveReply};
    let (_client, mut peer, table) = connected(ClientConfig::default()).await;
    peer.send(table.encode(&MemclntKeepalive {}, 0, 4242).unwrap());
    let f = peer.recv().await.unwrap();
    let (h, r) = table.decode::<MemclntKeepaliveReply>(&f).unwrap();
    assert_eq!((h.context, r.retval), (4242, 0));
}

#[tokio::test]
async fn compat_check_reports_vpp_version_and_each_message() {
    use vpp_bindings::compat::{self, CLIENT_MESSAGES};
    use vpp_bindings::gen::vpe::{ShowVersion, ShowVersionReply};
    let (client, mut peer, table) = connected(ClientConfig::default()).await;
    let c2 = client.clone();
    let mut required = CLIENT_MESSAGES.to_vec();
    required.push(NpolIpsetCreate::INFO);
    let check = tokio::spawn(async move { compat::check(&c2, &required).await });
    let (h, _) = table
        .decode::<ShowVersion>(&peer.recv().await.unwrap())
        .unwrap();
    let v = ShowVersionReply {
        version: "26.10-test".into(),
        ..Default::default()
    };
    peer.send(reply(&table, &v, h.context));
    let report = check.await.unwrap();
    assert!(report.is_compatible(), "{report}");
    assert_eq!(report.vpp_version.as_deref(), Some("26.10-test"));
    let text = report.to_string();
    assert!(text.contains("VPP version: 26.10-test"), "{text}");
    assert!(text.contains(NpolIpsetCreate::NAME_CRC), "{text}");
    assert!(text.ends_with("=> compatible"), "{text}");
}

/// Without libvppapiclient (every machine without VPP), asking for shared memory is a typed,
/// printable error; nothing panics and a later attempt gets the same answer.
#[tokio::test]
async fn connect_shm_without_the_library_is_a_clear_error() {
    use vpp_bindings::transport::shm::{ShmConfig, ShmError};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("somevpp-vpe-api"), b"").unwrap();
    let shm = ShmConfig {
        library: Some(dir.path().join("libvppapiclient.so")),
        prefix: Some("somevpp".into()),
        shm_dir: dir.path().to_owned(),
        ..ShmConfig::default()
    };
    for _ in 0..2 {
        let err = Client::connect_shm_with(shm.clone(), ClientConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Shm(ShmError::LibraryMissing { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("libvppapiclient"), "{err}");
    }
}
