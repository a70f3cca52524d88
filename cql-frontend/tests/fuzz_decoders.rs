//! Goal: no bytes or text a client can send make the CQL layer's decoders
//! panic: frame headers and request bodies of every opcode and version, v5
//! segments (arbitrary, and valid ones with a flipped byte), the lexer and
//! parser (arbitrary text, and valid statements mutated: tokens dropped,
//! repeated, brackets nested thousands deep), type strings, values decoded
//! by type (JSON rendering, clustering encoding) and INSERT JSON documents.
//! Property-based fuzzing with `proptest`, kept short for CI (a few seconds
//! in all); longer runs: `PROPTEST_CASES=200000 cargo test -p cql-frontend
//! --test fuzz_decoders`.

use bytes::{Bytes, BytesMut};
use cql_frontend::cql::parser::parse;
use cql_frontend::protocol::frame::{check_header, Opcode};
use cql_frontend::protocol::messages::Request;
use cql_frontend::protocol::segment::SegmentCodec;
use cql_frontend::types::CqlType;
use proptest::prelude::*;

const OPCODES: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10,
];

/// Statements that parse, the seeds of structured mutations.
const STATEMENTS: [&str; 10] = [
    "SELECT a, b FROM ks.t WHERE k = 1 AND c > 2 LIMIT 10",
    "INSERT INTO ks.t (k, v) VALUES (1, [[1, 2], [3]]) USING TTL 10",
    "UPDATE ks.t SET m = m + {'a': 1}, l[0] = 5 WHERE k = ? IF EXISTS",
    "DELETE m['a'] FROM ks.t WHERE k IN (1, 2, 3)",
    "CREATE TABLE ks.t (k int, c text, v frozen<map<int, list<text>>>, PRIMARY KEY ((k), c)) WITH CLUSTERING ORDER BY (c DESC)",
    "BEGIN BATCH INSERT INTO t (k) VALUES (1); UPDATE t SET v = 2 WHERE k = 1; APPLY BATCH",
    "SELECT CAST(k AS text), token(k), writetime(v) FROM t WHERE (a, b) > (1, 2) ALLOW FILTERING",
    "INSERT INTO t JSON '{\"k\": 1, \"v\": [1, 2]}' DEFAULT UNSET",
    "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
    "INSERT INTO t (k, v, d) VALUES (-1, {x: 1, y: 'z'}, 1h30m)",
];

fn types() -> Vec<CqlType> {
    [
        "int",
        "bigint",
        "text",
        "blob",
        "boolean",
        "double",
        "float",
        "decimal",
        "varint",
        "uuid",
        "timeuuid",
        "inet",
        "date",
        "time",
        "timestamp",
        "duration",
        "smallint",
        "tinyint",
        "list<int>",
        "set<text>",
        "map<int, frozen<list<text>>>",
        "frozen<tuple<int, text, list<blob>>>",
        "frozen<map<frozen<set<int>>, tuple<int, int>>>",
    ]
    .iter()
    .filter_map(|t| CqlType::parse(t).ok())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn request_bodies_of_every_opcode_never_panic(
        opcode in proptest::sample::select(OPCODES.to_vec()),
        version in 3u8..=5,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Some(opcode) = Opcode::from_byte(opcode) {
            let _ = Request::parse(opcode, Bytes::from(body), version);
        }
    }

    #[test]
    fn frame_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
        let _ = check_header(&bytes);
    }

    #[test]
    fn segments_never_panic(
        lz4 in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = SegmentCodec { lz4 }.decode(&mut buf);
    }

    #[test]
    fn damaged_segments_are_errors_not_panics(
        lz4 in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 1..2000),
        flip_at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let codec = SegmentCodec { lz4 };
        let mut framed = BytesMut::new();
        codec.encode(&payload, &mut framed);
        let at = flip_at.index(framed.len());
        framed[at] ^= flip;
        // Either an error, or (a flip the checksums cannot see: none
        // should exist) a payload; never a panic.
        let _ = codec.decode(&mut framed);
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn mutated_statements_never_panic_the_parser(
        seed in proptest::sample::select(STATEMENTS.to_vec()),
        cut in any::<prop::sample::Index>(),
        insert in proptest::sample::select(vec!["(", ")", "[", "]", "{", "}", "<", ">", "'", "\"", "-", "?", ":", ",", ";", "CAST(", "frozen<", "0x", "1e400", "--", "/*"]),
        repeat in 1usize..3000,
    ) {
        let at = cut.index(seed.len() + 1);
        let at = (0..=at).rev().find(|&i| seed.is_char_boundary(i)).unwrap_or(0);
        let mut text = String::with_capacity(seed.len() + insert.len() * repeat);
        text.push_str(&seed[..at]);
        for _ in 0..repeat {
            text.push_str(insert);
        }
        text.push_str(&seed[at..]);
        let _ = parse(&text);
    }

    #[test]
    fn type_strings_never_panic(text in "[a-z<>, ]{0,100}", depth in 0usize..5000) {
        let _ = CqlType::parse(&text);
        let nested = format!("{}int{}", "frozen<list<".repeat(depth), ">>".repeat(depth));
        let _ = CqlType::parse(&nested);
    }

    #[test]
    fn values_of_every_type_never_panic(
        index in any::<prop::sample::Index>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        descending in any::<bool>(),
    ) {
        let types = types();
        let ty = &types[index.index(types.len())];
        let _ = cql_frontend::json::render(ty, &bytes);
        let mut out = Vec::new();
        if ty.encode_comparable(&bytes, descending, &mut out).is_ok() {
            let _ = ty.decode_comparable(&out, descending);
        }
        let _ = ty.decode_comparable(&bytes, descending);
    }

    #[test]
    fn json_documents_never_panic(
        index in any::<prop::sample::Index>(),
        text in "[\\[\\]{}\":,0-9a-z .eE+-]{0,120}",
        depth in 0usize..2000,
    ) {
        let types = types();
        let ty = &types[index.index(types.len())];
        for doc in [text.clone(), format!("{}1{}", "[".repeat(depth), "]".repeat(depth))] {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&doc) {
                let _ = cql_frontend::json::to_term(ty, &value, "c");
            }
        }
    }
}

/// Found by this fuzzing's seeds (issue 17): statements nested thousands
/// deep overflowed a request thread's stack.
#[test]
fn deep_nesting_is_a_syntax_error() {
    let deep = 5000;
    for text in [
        format!(
            "INSERT INTO t (k, v) VALUES (1, {}1{})",
            "[".repeat(deep),
            "]".repeat(deep)
        ),
        format!(
            "SELECT * FROM t WHERE k = {}1{}",
            "(".repeat(deep),
            ")".repeat(deep)
        ),
        format!(
            "SELECT {}k{} FROM t",
            "CAST(".repeat(deep),
            " AS int)".repeat(deep)
        ),
        format!("INSERT INTO t (k) VALUES ({}1)", "- ".repeat(deep)),
        format!(
            "CREATE TABLE t (k int PRIMARY KEY, v {}int{})",
            "frozen<list<".repeat(deep),
            ">>".repeat(deep)
        ),
    ] {
        let error = parse(&text).expect_err("too deep");
        assert!(
            error.message.contains("levels") || error.message.contains("expecting"),
            "{error}"
        );
    }
}
