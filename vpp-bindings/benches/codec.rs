//! Throughput of the codec and of a pipelined batch over a real socket pair against an
//! in-process responder. Prints rates; run with `cargo bench -p vpp-bindings`.

use std::hint::black_box;
use std::time::Instant;

use vpp_bindings::client::{Client, ClientConfig};
use vpp_bindings::gen::ip_types::Prefix;
use vpp_bindings::gen::memclnt::{
    ControlPing, ControlPingReply, MessageTableEntry, SockclntCreate, SockclntCreateReply,
};
use vpp_bindings::gen::npol::{
    NpolEntryData, NpolEntryType, NpolPortRange, NpolRule, NpolRuleCreate, NpolRuleCreateReply,
    NpolRuleEntry,
};
use vpp_bindings::message::{decode_message, encode_message, SOCKCLNT_CREATE_REPLY_MSG_ID};
use vpp_bindings::transport::socket::SocketTransport;
use vpp_bindings::transport::{FrameReader, FrameWriter, Transport};
use vpp_bindings::{all_messages, Message, MessageTable};

fn rule() -> NpolRuleCreate {
    let cidr = |s: &str| {
        NpolEntryData::from_cidr(&Prefix::from(s.parse::<ipnet::IpNet>().unwrap())).unwrap()
    };
    let mut matches = Vec::new();
    for s in ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"] {
        matches.push(NpolRuleEntry {
            is_src: true,
            is_not: false,
            type_: NpolEntryType::NpolCidr,
            data: cidr(s),
        });
    }
    matches.push(NpolRuleEntry {
        is_src: false,
        is_not: false,
        type_: NpolEntryType::NpolPortRange,
        data: NpolEntryData::from_port_range(&NpolPortRange {
            start: 80,
            end: 443,
        })
        .unwrap(),
    });
    NpolRuleCreate {
        rule: NpolRule {
            matches,
            ..Default::default()
        },
    }
}

fn codec_rates() {
    let msg = rule();
    let n = 200_000;
    let t = Instant::now();
    let mut bytes = Vec::new();
    for i in 0..n {
        bytes = encode_message(black_box(&msg), 100, 1, i).unwrap();
    }
    let enc = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n {
        black_box(decode_message::<NpolRuleCreate>(black_box(&bytes)).unwrap());
    }
    let dec = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "codec: npol_rule_create ({} bytes, 4 entries): encode {:.0}/s, decode {:.0}/s",
        bytes.len(),
        enc,
        dec
    );
}

async fn responder(stream: tokio::net::UnixStream, table: MessageTable) {
    let (mut r, mut w) = SocketTransport::from_stream(stream).split();
    let Ok(Some(f)) = r.read_frame().await else {
        return;
    };
    let Ok((h, _)) = decode_message::<SockclntCreate>(&f) else {
        return;
    };
    let hello = SockclntCreateReply {
        response: 0,
        index: 1,
        message_table: table
            .entries()
            .into_iter()
            .map(|(index, name)| MessageTableEntry {
                index,
                name: name.to_owned(),
            })
            .collect(),
    };
    let _ = w
        .write_frame(&encode_message(&hello, SOCKCLNT_CREATE_REPLY_MSG_ID, 0, h.context).unwrap())
        .await;
    let _ = w.flush().await;
    while let Ok(Some(f)) = r.read_frame().await {
        let out = match table.name_crc_of(&f) {
            Ok(n) if n == NpolRuleCreate::NAME_CRC => {
                let (h, _) = table.decode::<NpolRuleCreate>(&f).unwrap();
                table
                    .encode(
                        &NpolRuleCreateReply {
                            retval: 0,
                            rule_id: h.context,
                        },
                        0,
                        h.context,
                    )
                    .unwrap()
            }
            _ => {
                let (h, _) = table.decode::<ControlPing>(&f).unwrap();
                table
                    .encode(
                        &ControlPingReply {
                            retval: 0,
                            client_index: 1,
                            vpe_pid: 1,
                        },
                        0,
                        h.context,
                    )
                    .unwrap()
            }
        };
        if w.write_frame(&out).await.is_err() {
            return;
        }
        // Flush only when the client has nothing more queued for us, like a busy VPP.
        let _ = w.flush().await;
    }
}

async fn batch_rate() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let table = MessageTable::sequential(all_messages());
    tokio::spawn(responder(b, table));
    let client = Client::connect_with(SocketTransport::from_stream(a), ClientConfig::default())
        .await
        .unwrap();
    let reqs = vec![rule(); 20_000];
    let t = Instant::now();
    let replies = client.request_batch(&reqs).await.unwrap();
    let batch = reqs.len() as f64 / t.elapsed().as_secs_f64();
    assert!(replies.iter().all(|r| r.is_ok()));
    let t = Instant::now();
    let n = 2_000;
    for r in reqs.iter().take(n) {
        client.request(r).await.unwrap();
    }
    let serial = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "client over socket pair: pipelined batch {batch:.0} req/s, one-at-a-time {serial:.0} req/s (ratio {:.1}x)",
        batch / serial
    );
}

fn main() {
    codec_rates();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(batch_rate());
}
