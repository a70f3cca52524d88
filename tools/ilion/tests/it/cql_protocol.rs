//! Goal: a real `ilion server` speaks the CQL native protocol's handshake as
//! drivers expect (OPTIONS/SUPPORTED, STARTUP/READY, REGISTER, the version
//! downgrade error), answers what it cannot do yet with an honest
//! `not yet supported` Invalid error, and survives garbage on the wire: a
//! broken connection is closed with a ProtocolError and nothing else is
//! affected.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::{frame, read_reply, startup_body, string, Node, Reply};
use cql_frontend::protocol::segment::SegmentCodec;

const START_LIMIT: Duration = Duration::from_secs(20);

/// STARTUP options asking for `algorithm` compression.
fn compressed_startup_body(algorithm: &str) -> Vec<u8> {
    let mut body = 2u16.to_be_bytes().to_vec();
    body.extend(string("CQL_VERSION"));
    body.extend(string("3.4.7"));
    body.extend(string("COMPRESSION"));
    body.extend(string(algorithm));
    body
}

fn query_body(query: &str) -> Vec<u8> {
    let mut body = (query.len() as i32).to_be_bytes().to_vec();
    body.extend_from_slice(query.as_bytes());
    body.extend_from_slice(&1u16.to_be_bytes()); // ONE
    body.push(0);
    body
}

fn connect(node: &Node) -> TcpStream {
    let stream = TcpStream::connect(node.native_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn error_of(reply: &Reply) -> (i32, String) {
    assert_eq!(reply.opcode, 0x00, "expected an ERROR frame");
    let code = i32::from_be_bytes(reply.body[..4].try_into().unwrap());
    let len = u16::from_be_bytes([reply.body[4], reply.body[5]]) as usize;
    (
        code,
        String::from_utf8(reply.body[6..6 + len].to_vec()).unwrap(),
    )
}

fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0))
}

#[test]
fn handshake_as_drivers_do_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let mut s = connect(&node);

    s.write_all(&frame(4, 1, 0x05, &[])).unwrap();
    let supported = read_reply(&mut s).unwrap();
    assert_eq!(
        (supported.version, supported.stream, supported.opcode),
        (0x84, 1, 0x06)
    );
    let text = String::from_utf8_lossy(&supported.body);
    assert!(
        text.contains("CQL_VERSION") && text.contains("COMPRESSION"),
        "{text}"
    );

    s.write_all(&frame(
        4,
        2,
        0x07,
        &query_body("SELECT * FROM system.local"),
    ))
    .unwrap();
    let (code, message) = error_of(&read_reply(&mut s).unwrap());
    assert_eq!(
        code, 0x000A,
        "QUERY before STARTUP is a protocol error: {message}"
    );
}

#[test]
fn startup_register_and_honest_statement_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let mut s = connect(&node);
    s.write_all(&frame(4, 3, 0x01, &startup_body())).unwrap();
    let ready = read_reply(&mut s).unwrap();
    assert_eq!((ready.stream, ready.opcode), (3, 0x02));

    let mut register = 2u16.to_be_bytes().to_vec();
    register.extend(string("SCHEMA_CHANGE"));
    register.extend(string("STATUS_CHANGE"));
    s.write_all(&frame(4, 4, 0x0B, &register)).unwrap();
    assert_eq!(read_reply(&mut s).unwrap().opcode, 0x02);

    s.write_all(&frame(
        4,
        5,
        0x07,
        &query_body("SELECT * FROM system.local"),
    ))
    .unwrap();
    let reply = read_reply(&mut s).unwrap();
    assert_eq!((reply.stream, reply.opcode), (5, 0x08), "a RESULT");
    assert_eq!(&reply.body[..4], &[0, 0, 0, 2], "kind Rows");

    // EXECUTE of an id this node never prepared (or forgot in a restart):
    // Unprepared, carrying the id, so the driver prepares again.
    let id = [7u8; 16];
    let mut execute = 16u16.to_be_bytes().to_vec();
    execute.extend_from_slice(&id);
    execute.extend_from_slice(&1u16.to_be_bytes());
    execute.push(0);
    s.write_all(&frame(4, 7, 0x0A, &execute)).unwrap();
    let reply = read_reply(&mut s).unwrap();
    let (code, message) = error_of(&reply);
    assert_eq!(code, 0x2500, "{message}");
    assert!(
        reply.body.ends_with(&id),
        "the Unprepared error carries the id"
    );

    // Something not built yet: an honest Invalid error.
    s.write_all(&frame(
        4,
        9,
        0x07,
        &query_body("CREATE INDEX ON system.local (cluster_name)"),
    ))
    .unwrap();
    let (code, message) = error_of(&read_reply(&mut s).unwrap());
    assert_eq!(code, 0x2200, "{message}");
    assert!(message.starts_with("not yet supported"), "{message}");

    s.write_all(&frame(4, 8, 0x07, &query_body("SELEKT * FROM t")))
        .unwrap();
    let (code, message) = error_of(&read_reply(&mut s).unwrap());
    assert_eq!(code, 0x2000, "syntax error: {message}");
    assert!(message.starts_with("line 1:1"), "{message}");
    // The connection stays usable after an Invalid error.
    s.write_all(&frame(4, 6, 0x05, &[])).unwrap();
    assert_eq!(read_reply(&mut s).unwrap().opcode, 0x06);
}

#[test]
fn newer_version_gets_the_downgrade_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    for version in [6u8, 0x42, 0x45] {
        let mut s = connect(&node);
        s.write_all(&frame(version, 0, 0x05, &[])).unwrap();
        let reply = read_reply(&mut s).unwrap();
        assert_eq!(reply.version, 0x84, "answered in a version we speak");
        let (code, message) = error_of(&reply);
        assert_eq!(code, 0x000A);
        assert!(
            message.contains("Invalid or unsupported protocol version"),
            "drivers look for this text: {message}"
        );
        if version == 6 {
            assert!(
                message.contains("USE_BETA flag is unset"),
                "the Python driver looks for this text: {message}"
            );
        }
    }
    // With USE_BETA, v6 is spoken (as v5).
    let mut s = connect(&node);
    let use_beta = 0x10;
    let mut options = frame(6, 9, 0x05, &[]);
    options[1] = use_beta;
    s.write_all(&options).unwrap();
    let reply = read_reply(&mut s).unwrap();
    assert_eq!(reply.version, 0x86, "answered in v6");
    assert_eq!(reply.opcode, 0x06, "SUPPORTED");
}

#[test]
fn garbage_closes_only_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let mut bystander = connect(&node);
    bystander
        .write_all(&frame(4, 1, 0x01, &startup_body()))
        .unwrap();
    assert_eq!(read_reply(&mut bystander).unwrap().opcode, 0x02);

    // A declared length far over the limit: refused before anything is allocated.
    let mut s = connect(&node);
    s.write_all(&[4, 0, 0, 1, 0x07, 0x7f, 0xff, 0xff, 0xff])
        .unwrap();
    let (code, _) = error_of(&read_reply(&mut s).unwrap());
    assert_eq!(code, 0x000A);
    assert!(closed(&mut s));

    // A truncated body inside a well-formed frame, bad UTF-8, an unknown opcode.
    let cases: Vec<Vec<u8>> = vec![
        frame(4, 1, 0x07, &[0, 0, 0, 50, b'S']),
        frame(4, 1, 0x01, &[0, 1, 0, 2, 0xc3, 0x28, 0, 1, b'x']),
        frame(4, 1, 0x42, &[]),
        frame(4, 1, 0x08, &[]),
    ];
    for case in cases {
        let mut s = connect(&node);
        s.write_all(&case).unwrap();
        let (code, message) = error_of(&read_reply(&mut s).unwrap());
        assert_eq!(code, 0x000A, "{message}");
        assert!(closed(&mut s));
    }

    // Random and mutated bytes on many connections.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let good = frame(4, 9, 0x07, &query_body("SELECT * FROM t"));
    for round in 0..200 {
        let mut bytes = if round % 2 == 0 {
            (0..(next() % 64))
                .map(|_| next() as u8)
                .collect::<Vec<u8>>()
        } else {
            let mut mutated = good.clone();
            let at = (next() as usize) % mutated.len();
            mutated[at] = next() as u8;
            mutated
        };
        if bytes.is_empty() {
            bytes.push(4);
        }
        let mut s = connect(&node);
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }

    // The node is alive, and the bystander never noticed.
    bystander.write_all(&frame(4, 2, 0x05, &[])).unwrap();
    assert_eq!(read_reply(&mut bystander).unwrap().opcode, 0x06);
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the server must not crash"
    );
}

fn v5_query_body(query: &str) -> Vec<u8> {
    let mut body = (query.len() as i32).to_be_bytes().to_vec();
    body.extend_from_slice(query.as_bytes());
    body.extend_from_slice(&1u16.to_be_bytes()); // ONE
    body.extend_from_slice(&0i32.to_be_bytes()); // v5: flags are an int
    body
}

/// The bytes read from a v5 connection: raw segments, and envelope bytes
/// taken out of them (one segment may carry several replies).
#[derive(Default)]
struct Framed {
    raw: BytesMut,
    envelopes: Vec<u8>,
}

/// Reads segments until one whole envelope is there; returns it and keeps
/// whatever follows it for the next call.
fn read_framed_reply(stream: &mut TcpStream, codec: SegmentCodec, framed: &mut Framed) -> Reply {
    let Framed { raw, envelopes } = framed;
    loop {
        if envelopes.len() >= 9 {
            let len = i32::from_be_bytes(envelopes[5..9].try_into().unwrap()) as usize;
            if envelopes.len() >= 9 + len {
                let rest = envelopes.split_off(9 + len);
                let envelope = std::mem::replace(envelopes, rest);
                return Reply {
                    version: envelope[0],
                    stream: i16::from_be_bytes([envelope[2], envelope[3]]),
                    opcode: envelope[4],
                    body: envelope[9..].to_vec(),
                };
            }
        }
        match codec.decode(raw).expect("the node's segments check out") {
            Some(segment) => envelopes.extend_from_slice(&segment.payload),
            None => {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed mid-segment");
                raw.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// Protocol v5: STARTUP and READY unframed, then checksummed (and here
/// LZ4-compressed) segments both ways; a damaged segment is a protocol
/// error that closes only that connection.
#[test]
fn v5_segments_carry_envelopes_and_damage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let mut s = connect(&node);
    s.write_all(&frame(5, 1, 0x01, &compressed_startup_body("lz4")))
        .unwrap();
    let ready = read_reply(&mut s).unwrap();
    assert_eq!(
        (ready.version, ready.opcode),
        (0x85, 0x02),
        "READY is unframed"
    );

    let codec = SegmentCodec { lz4: true };
    let mut raw = Framed::default();
    // Two queries in one segment: two answers.
    let mut payload = frame(
        5,
        2,
        0x07,
        &v5_query_body("SELECT release_version FROM system.local"),
    );
    payload.extend(frame(
        5,
        3,
        0x07,
        &v5_query_body("SELECT cluster_name FROM system.local"),
    ));
    let mut wire = BytesMut::new();
    codec.encode(&payload, &mut wire);
    s.write_all(&wire).unwrap();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let reply = read_framed_reply(&mut s, codec, &mut raw);
        assert_eq!((reply.version, reply.opcode), (0x85, 0x08), "RESULT");
        assert_eq!(&reply.body[..4], &[0, 0, 0, 2], "Rows");
        streams.push(reply.stream);
    }
    streams.sort();
    assert_eq!(streams, [2, 3]);

    // A query larger than one segment, cut across several.
    let long = format!(
        "SELECT key FROM system.local WHERE key = '{}'",
        "x".repeat(300_000)
    );
    let mut wire = BytesMut::new();
    codec.encode(&frame(5, 4, 0x07, &v5_query_body(&long)), &mut wire);
    s.write_all(&wire).unwrap();
    let reply = read_framed_reply(&mut s, codec, &mut raw);
    assert_eq!(
        (reply.stream, reply.opcode),
        (4, 0x08),
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );

    // A flipped payload byte: ProtocolError naming the checksum, then close.
    let mut wire = BytesMut::new();
    codec.encode(&frame(5, 5, 0x05, &[]), &mut wire);
    let last = wire.len() - 5;
    wire[last] ^= 0x40;
    s.write_all(&wire).unwrap();
    let reply = read_framed_reply(&mut s, codec, &mut raw);
    let (code, message) = error_of(&reply);
    assert_eq!(code, 0x000A);
    assert!(message.contains("checksum"), "{message}");
    assert!(closed(&mut s), "the connection is closed");
    let mut other = connect(&node);
    other.write_all(&frame(5, 1, 0x05, &[])).unwrap();
    assert_eq!(
        read_reply(&mut other).unwrap().opcode,
        0x06,
        "others unaffected"
    );
}

/// Snappy, as v4 defines it: a raw Snappy block per compressed body.
#[test]
fn snappy_compression_on_v4() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let mut s = connect(&node);
    s.write_all(&frame(4, 1, 0x01, &compressed_startup_body("snappy")))
        .unwrap();
    assert_eq!(read_reply(&mut s).unwrap().opcode, 0x02);
    let body = snap::raw::Encoder::new()
        .compress_vec(&query_body("SELECT * FROM system.local"))
        .unwrap();
    let mut request = frame(4, 2, 0x07, &body);
    request[1] = 0x01;
    s.write_all(&request).unwrap();
    let mut header = [0u8; 9];
    s.read_exact(&mut header).unwrap();
    assert_eq!(header[1] & 0x01, 0x01, "the reply is compressed");
    let len = i32::from_be_bytes(header[5..9].try_into().unwrap()) as usize;
    let mut compressed = vec![0u8; len];
    s.read_exact(&mut compressed).unwrap();
    let body = snap::raw::Decoder::new()
        .decompress_vec(&compressed)
        .unwrap();
    assert_eq!(&body[..4], &[0, 0, 0, 2], "Rows");
    assert!(String::from_utf8_lossy(&body).contains("Murmur3Partitioner"));
}

/// A connection that registered for SCHEMA_CHANGE hears about DDL run on
/// another connection; one that did not register hears nothing.
#[test]
fn schema_change_events_reach_registered_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let mut listener = connect(&node);
    listener
        .write_all(&frame(4, 1, 0x01, &startup_body()))
        .unwrap();
    assert_eq!(read_reply(&mut listener).unwrap().opcode, 0x02);
    let mut register = 1u16.to_be_bytes().to_vec();
    register.extend(string("SCHEMA_CHANGE"));
    listener.write_all(&frame(4, 2, 0x0B, &register)).unwrap();
    assert_eq!(read_reply(&mut listener).unwrap().opcode, 0x02);
    let mut quiet = connect(&node);
    quiet
        .write_all(&frame(4, 1, 0x01, &startup_body()))
        .unwrap();
    assert_eq!(read_reply(&mut quiet).unwrap().opcode, 0x02);

    let mut actor = connect(&node);
    actor
        .write_all(&frame(4, 1, 0x01, &startup_body()))
        .unwrap();
    assert_eq!(read_reply(&mut actor).unwrap().opcode, 0x02);
    let ddl = "CREATE KEYSPACE evks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}";
    actor
        .write_all(&frame(4, 2, 0x07, &query_body(ddl)))
        .unwrap();
    assert_eq!(read_reply(&mut actor).unwrap().opcode, 0x08);

    let event = read_reply(&mut listener).expect("an EVENT frame");
    assert_eq!((event.stream, event.opcode), (-1, 0x0C));
    let text = String::from_utf8_lossy(&event.body);
    for part in ["SCHEMA_CHANGE", "CREATED", "KEYSPACE", "evks"] {
        assert!(text.contains(part), "{part} missing from {text:?}");
    }
    quiet
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        quiet.read(&mut byte).is_err(),
        "an unregistered connection gets no event"
    );
}

/// Requests pipelined on one connection all get answered, each on its own
/// stream id, whatever order they finish in.
#[test]
fn pipelined_requests_are_answered_by_stream_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let mut s = connect(&node);
    s.write_all(&frame(4, 0, 0x01, &startup_body())).unwrap();
    assert_eq!(read_reply(&mut s).unwrap().opcode, 0x02);
    let mut burst = Vec::new();
    for id in 1..=300i16 {
        burst.extend(frame(
            4,
            id,
            0x07,
            &query_body("SELECT release_version FROM system.local"),
        ));
    }
    s.write_all(&burst).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let reply = read_reply(&mut s).expect("a reply per request");
        assert_eq!(reply.opcode, 0x08, "RESULT");
        assert!(
            seen.insert(reply.stream),
            "stream {} answered twice",
            reply.stream
        );
    }
    assert_eq!(seen, (1..=300).collect());
}
