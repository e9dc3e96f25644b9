//! Fuzz targets as property tests: the frame decoder, protobuf decoding, conversion and
//! `Model::apply` must never panic, whatever the bytes.

use bytes::BytesMut;
use calico_model::{Action, Changes, Model, Rule};
use proptest::prelude::*;
use prost::Message;

use super::codec::{encode_to_dataplane, FrameDecoder, FrameError};
use super::convert::convert;
use super::proto;
use super::proto::to_dataplane::Payload;
use super::script;
use crate::agent::{ingest_frame, IngestStats};

/// Feeds `data` to the decoder in the given chunk sizes, as a socket would deliver it.
fn decode_chunked(
    data: &[u8],
    chunks: &[usize],
    max: usize,
) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let d = FrameDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    match d.decode_eof(&mut buf) {
        Ok(Some(f)) => {
            frames.push(f.to_vec());
            (frames, Ok(()))
        }
        Ok(None) => (frames, Ok(())),
        Err(e) => (frames, Err(e)),
    }
}

fn frame_bytes(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn valid_stream() -> Vec<Vec<u8>> {
    let shape = script::ClusterShape {
        pods: 5,
        policies: 4,
        ..Default::default()
    };
    let mut msgs = script::snapshot(&shape);
    msgs.push(script::in_sync());
    msgs.extend(script::deltas(&shape, 8));
    msgs.iter()
        .map(|m| encode_to_dataplane(m).to_vec())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        max in 0usize..300,
    ) {
        let _ = decode_chunked(&data, &chunks, max);
    }

    #[test]
    fn decoder_returns_exactly_the_frames_sent_whatever_the_chunking(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..10),
        chunks in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let data = frame_bytes(&payloads);
        let (frames, end) = decode_chunked(&data, &chunks, 100);
        prop_assert!(end.is_ok());
        prop_assert_eq!(frames, payloads);
    }

    #[test]
    fn decode_convert_apply_never_panics_on_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut model = Model::default();
        let mut changes = Changes::default();
        let mut stats = IngestStats::default();
        ingest_frame(&data, &mut model, &mut stats, &mut changes);
        prop_assert_eq!(stats.frames, 1);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let stream = valid_stream();
        let mut model = Model::default();
        let mut changes = Changes::default();
        let mut stats = IngestStats::default();
        for frame in &stream {
            let mut f = frame[8..].to_vec();
            for (at, byte) in &flips {
                let i = at.index(f.len().max(1));
                if let Some(b) = f.get_mut(i) {
                    *b ^= byte;
                }
            }
            ingest_frame(&f, &mut model, &mut stats, &mut changes);
        }
        prop_assert_eq!(stats.frames as usize, stream.len());
    }

    /// Arbitrary field values in a well-formed policy: conversion either types every field or
    /// fails the policy closed; it never panics and never yields an allow from bad input.
    #[test]
    fn arbitrary_rule_values_convert_or_fail_closed(
        action in prop::sample::select(vec!["", "allow", "deny", "log", "next-tier", "pass", "Allow", "bogus"]),
        ip_version in prop::sample::select(vec![0, 4, 6, 5, -1]),
        proto_num in -5i32..300,
        proto_name in "[a-zA-Z0-9]{0,8}",
        net in "[0-9a-f:./]{0,24}",
        first in -10i32..70000,
        last in -10i32..70000,
        icmp in -3i32..300,
    ) {
        let rule = proto::Rule {
            action: action.to_string(),
            ip_version,
            protocol: Some(proto::Protocol {
                number_or_name: Some(if proto_num % 2 == 0 {
                    proto::protocol::NumberOrName::Number(proto_num)
                } else {
                    proto::protocol::NumberOrName::Name(proto_name)
                }),
            }),
            src_net: vec![net],
            dst_ports: vec![proto::PortRange { first, last }],
            icmp: Some(proto::rule::Icmp::IcmpType(icmp)),
            ..Default::default()
        };
        let msg = script::envelope(Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
            id: Some(script::policy_id(0, 0, false)),
            policy: Some(proto::Policy {
                inbound_rules: vec![rule],
                ..Default::default()
            }),
        }));
        let bytes = msg.encode_to_vec();
        let update = convert(proto::ToDataplane::decode(bytes.as_slice()).unwrap()).unwrap();
        let calico_model::Update::PolicyUpdate { policy, .. } = update else {
            panic!("not a policy update");
        };
        if policy.invalid.is_some() {
            prop_assert_eq!(&policy.inbound_rules, &vec![Rule::match_all(Action::Deny)]);
            prop_assert_eq!(&policy.outbound_rules, &vec![Rule::match_all(Action::Deny)]);
        } else {
            let r = &policy.inbound_rules[0];
            prop_assert!(first <= last && (0..=65535).contains(&first) && last <= 65535);
            prop_assert_eq!(r.dst_ports[0].first as i32, first);
            prop_assert!(r.src_net.len() == 1 && r.icmp.is_some());
        }
    }
}
