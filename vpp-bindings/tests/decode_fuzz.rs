//! Fuzzing the decoder: no input, random or derived from a valid message, may make any
//! generated message's decoder panic; truncated messages must be refused, whole ones accepted.

use proptest::prelude::*;
use vpp_bindings::{all_codecs, MessageCodec};

fn codecs() -> Vec<&'static MessageCodec> {
    all_codecs().collect()
}

fn valid(c: &MessageCodec) -> Vec<u8> {
    (c.encode_default)(0x0102, 7, 9).expect("Default value of every message encodes")
}

#[test]
fn every_message_decodes_its_own_default_encoding_and_refuses_every_truncation() {
    let all = codecs();
    assert!(
        all.len() > 300,
        "expected every generated message, got {}",
        all.len()
    );
    for c in all {
        let bytes = valid(c);
        let (_, msg) = (c.decode)(&bytes)
            .unwrap_or_else(|e| panic!("{}: own encoding refused: {e}", c.info.name));
        assert_eq!(msg.info(), c.info);
        for cut in 0..bytes.len() {
            assert!(
                (c.decode)(&bytes[..cut]).is_err(),
                "{}: accepted a message truncated to {cut} of {} bytes",
                c.info.name,
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            (c.decode)(&longer).is_err(),
            "{}: accepted trailing bytes",
            c.info.name
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_any_decoder(
        idx in any::<prop::sample::Index>(),
        bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let all = codecs();
        let c = all[idx.index(all.len())];
        let _ = (c.decode)(&bytes);
    }

    #[test]
    fn mutated_valid_messages_never_panic_any_decoder(
        idx in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        extra in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let all = codecs();
        let c = all[idx.index(all.len())];
        let mut bytes = valid(c);
        bytes.extend_from_slice(&extra);
        for (pos, b) in flips {
            let i = pos.index(bytes.len());
            bytes[i] = b;
        }
        let _ = (c.decode)(&bytes);
    }

    /// Counts written as huge numbers must be refused before anything is allocated.
    #[test]
    fn huge_counts_are_refused_not_allocated(idx in any::<prop::sample::Index>()) {
        let all = codecs();
        let c = all[idx.index(all.len())];
        let mut bytes = valid(c);
        // Overwrite every 4-byte window after the header with 0xffffffff in turn.
        let start = c.info.header.wire_len();
        for i in start..bytes.len().saturating_sub(3) {
            let mut b = bytes.clone();
            b[i..i + 4].copy_from_slice(&[0xff; 4]);
            let _ = (c.decode)(&b);
        }
        bytes.clear();
    }
}
