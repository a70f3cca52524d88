//! Goal: no payload a peer can send makes the internode verbs' decoders
//! panic: slices, token ranges, resume points, scan pages, partition keys
//! and table ids, from arbitrary bytes and from valid encodings with a
//! flipped byte; and messaging frames from arbitrary bytes, whole or in
//! pieces (a bad frame is an error, never a panic or a huge allocation). Property-based fuzzing with `proptest`, kept short for CI;
//! longer runs: `PROPTEST_CASES=200000 cargo test -p replication --test fuzz_verbs`.

use proptest::prelude::*;
use replication::messaging::frame;
use replication::verbs;
use storage_lsm::model::PartitionKey;
use storage_lsm::{ScanResume, SliceQuery, TokenRange};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = verbs::decode_query(&bytes);
        let _ = verbs::decode_range(&bytes);
        let _ = verbs::decode_resume(&bytes);
        let _ = verbs::decode_page(&bytes);
        let _ = verbs::decode_key(&bytes);
        let _ = verbs::decode_table(&bytes);
    }

    #[test]
    fn arbitrary_frames_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        valid_length in any::<bool>(),
    ) {
        let mut stream = bytes::BytesMut::new();
        if valid_length {
            // A right length and checksum, so the header and body decoders
            // see the arbitrary bytes.
            stream.extend_from_slice(&(bytes.len() as u32 + 4).to_be_bytes());
            stream.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        }
        stream.extend_from_slice(&bytes);
        while let Ok(Some(_)) = frame::decode(&mut stream) {}
        // A claimed length is buffered for only up to the frame limit.
        prop_assert!(stream.capacity() <= frame::FRAME_BYTES_MAX + 16);
    }

    #[test]
    fn flipped_payloads_never_panic(
        token in any::<i64>(),
        key in proptest::collection::vec(any::<u8>(), 1..40),
        start in any::<i64>(),
        end in any::<i64>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = PartitionKey::new(token, key);
        let encodings = [
            verbs::encode_key(&key),
            verbs::encode_range(&TokenRange {
                start: std::ops::Bound::Excluded(start),
                end: std::ops::Bound::Included(end),
            }),
            verbs::encode_query(&SliceQuery::all()),
            verbs::encode_resume(Some(&ScanResume { key: key.clone(), clustering: None })),
        ];
        for mut bytes in encodings {
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            let _ = verbs::decode_key(&bytes);
            let _ = verbs::decode_range(&bytes);
            let _ = verbs::decode_query(&bytes);
            let _ = verbs::decode_resume(&bytes);
            let _ = verbs::decode_page(&bytes);
        }
    }
}
