//! One client connection: reads frames, answers each request, writes
//! responses, until the client leaves, breaks the protocol, or the node
//! shuts down.
//!
//! Frames are checked before they are read ([`check_header`]); a frame that
//! breaks the protocol gets a ProtocolError on its stream and the connection
//! is closed — other connections are untouched. A client asking for a newer
//! protocol version gets the error drivers use to move down a version, in a
//! frame of a version we speak.
//!
//! Runs as one tokio task per connection; the reads buffer at most one frame
//! (bounded by [`FRAME_BODY_BYTES_MAX`]).

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::executor;
use crate::node::{ClientEvent, Node, Session};
use crate::prepared;
use crate::protocol::compression;
use crate::protocol::error::CqlError;
use crate::protocol::frame::{
    check_header, flags, HeaderCheck, ResponseFrame, FALLBACK_VERSION, FRAME_BODY_BYTES_MAX,
    HEADER_BYTES,
};
use crate::protocol::messages::{BatchStatement, BoundValues, QueryParameters, Request, Response};
use std::sync::Arc;

/// Longest a write of responses to a slow client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Events a client may register for.
const KNOWN_EVENTS: [&str; 3] = ["TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE"];

/// What one connection has negotiated.
#[derive(Debug, Default)]
struct ConnectionState {
    started: bool,
    /// The protocol version of this connection (from its STARTUP).
    version: u8,
    /// LZ4 bodies from the reply to STARTUP on.
    compress: bool,
    events: Vec<String>,
    session: Session,
}

/// Serves one client until it disconnects, breaks the protocol, or `shutdown` fires.
pub async fn serve_connection(
    mut stream: TcpStream,
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().ok();
    let mut state = ConnectionState::default();
    let mut events = node.events.subscribe();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        let header = match check_header(&buf) {
            Ok(HeaderCheck::Ok(header)) => header,
            Ok(HeaderCheck::Incomplete) => {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    event = events.recv() => {
                        if push_event(&mut stream, &state, event).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    read = stream.read_buf(&mut buf) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => continue,
                    },
                }
            }
            Ok(HeaderCheck::UnsupportedVersion {
                version,
                stream: id,
            }) => {
                let message = format!(
                    "Invalid or unsupported protocol version ({version}); supported versions are (3/v3, 4/v4)"
                );
                let _ = send(
                    &mut stream,
                    FALLBACK_VERSION,
                    id,
                    Response::Error(CqlError::Protocol(message)),
                    false,
                )
                .await;
                return;
            }
            Err(violation) => {
                tracing::debug!(?peer, %violation, "protocol violation; closing connection");
                let _ = send(
                    &mut stream,
                    FALLBACK_VERSION,
                    0,
                    Response::Error(CqlError::Protocol(violation.0)),
                    state.compress,
                )
                .await;
                return;
            }
        };
        let frame_len = HEADER_BYTES + header.body_len;
        if buf.len() < frame_len {
            buf.reserve(frame_len - buf.len());
            tokio::select! {
                _ = shutdown.changed() => return,
                read = stream.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
            }
        }
        let mut frame = buf.split_to(frame_len);
        let body = frame.split_off(HEADER_BYTES).freeze();
        debug_assert!(body.len() <= FRAME_BODY_BYTES_MAX);
        if header.opcode == crate::protocol::frame::Opcode::Startup {
            state.version = header.version;
        }
        // A reply is compressed if compression was on before its request
        // (so the READY that switches it on is not).
        let compress_reply = state.compress;
        let body = if header.flags & flags::COMPRESSION == 0 {
            Ok(body)
        } else if state.compress {
            compression::lz4_decompress(&body).map_err(|e| CqlError::Protocol(e.0))
        } else {
            Err(CqlError::Protocol(
                "frame is compressed but no compression was negotiated in STARTUP".to_owned(),
            ))
        };
        let (response, close) = match body.and_then(|body| Request::parse(header.opcode, body)) {
            Ok(request) => (answer(&node, &mut state, request), false),
            Err(error) => (Response::Error(error), true),
        };
        if send(
            &mut stream,
            header.version,
            header.stream,
            response,
            compress_reply,
        )
        .await
        .is_err()
            || close
        {
            return;
        }
    }
}

/// Writes an event to a client that registered for its kind.
async fn push_event(
    stream: &mut TcpStream,
    state: &ConnectionState,
    event: Result<ClientEvent, tokio::sync::broadcast::error::RecvError>,
) -> std::io::Result<()> {
    let event = match event {
        Ok(event) => event,
        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
            tracing::warn!(missed, "client too slow for events; some were dropped");
            return Ok(());
        }
        Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
    };
    if !state.started || !state.events.iter().any(|e| e == event.kind()) {
        return Ok(());
    }
    let (flags, body) = if state.compress {
        (
            flags::COMPRESSION,
            compression::lz4_compress(&event.encode()),
        )
    } else {
        (0, event.encode())
    };
    let frame = ResponseFrame {
        version: state.version,
        flags,
        stream: -1,
        opcode: crate::protocol::frame::Opcode::Event,
        body,
    };
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client does not read",
        )),
    }
}

async fn send(
    stream: &mut TcpStream,
    version: u8,
    id: i16,
    response: Response,
    compress: bool,
) -> std::io::Result<()> {
    let body = response.encode_body();
    let (flags, body) = if compress {
        (flags::COMPRESSION, compression::lz4_compress(&body))
    } else {
        (0, body)
    };
    let frame = ResponseFrame {
        version,
        flags,
        stream: id,
        opcode: response.opcode(),
        body,
    };
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client does not read",
        )),
    }
}

/// The answer to one request.
fn answer(node: &Node, state: &mut ConnectionState, request: Request) -> Response {
    match request {
        Request::Options => Response::Supported,
        Request::Startup(options) => {
            let compress = match options.get("COMPRESSION").map(|a| a.to_ascii_lowercase()) {
                None => false,
                Some(algorithm) if algorithm == "lz4" => true,
                Some(algorithm) => {
                    return Response::Error(CqlError::Protocol(format!(
                        "Unknown compression algorithm: {algorithm} (this node supports lz4)"
                    )))
                }
            };
            if !options.contains_key("CQL_VERSION") {
                return Response::Error(CqlError::Protocol(
                    "STARTUP must carry the CQL_VERSION option".into(),
                ));
            }
            state.started = true;
            state.compress = compress;
            Response::Ready
        }
        _ if !state.started => Response::Error(CqlError::Protocol(
            "the first message must be STARTUP (or OPTIONS)".into(),
        )),
        Request::Register { events } => {
            if let Some(unknown) = events.iter().find(|e| !KNOWN_EVENTS.contains(&e.as_str())) {
                return Response::Error(CqlError::Protocol(format!(
                    "unknown event type {unknown:?}; known: {}",
                    KNOWN_EVENTS.join(", ")
                )));
            }
            state.events = events;
            Response::Ready
        }
        Request::Query { query, params } => {
            // Storage calls may block briefly (fsync in batch mode): keep
            // the async worker's other tasks moving.
            let result = tokio::task::block_in_place(|| {
                executor::execute(node, &mut state.session, &query, &params)
            });
            match result {
                Ok(body) => Response::Result(body, params.skip_metadata),
                Err(error) => Response::Error(error),
            }
        }
        Request::Prepare { query } => {
            match tokio::task::block_in_place(|| prepared::prepare(node, &state.session, &query)) {
                Ok((id, prepared)) => {
                    Response::EncodedResult(prepared::prepared_result(&id, &prepared))
                }
                Err(error) => Response::Error(error),
            }
        }
        Request::Execute { id, params } => {
            let Some(prepared) = node.prepared.get(&id) else {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                return Response::Error(CqlError::Unprepared {
                    message: format!("Prepared query with ID {hex} not found (either the query was not prepared on this host (maybe the host has been restarted?) or you have prepared too many queries and it has been evicted from the internal cache)"),
                    id: id.to_vec(),
                });
            };
            let mut session = state.session.clone();
            if session.keyspace.is_none() {
                session.keyspace = prepared.keyspace.clone();
            }
            let result = tokio::task::block_in_place(|| {
                executor::execute_statement(node, &mut session, &prepared.statement, &params)
            });
            match result {
                Ok(body) => Response::Result(body, params.skip_metadata),
                Err(error) => Response::Error(error),
            }
        }
        Request::Batch(batch) => {
            let mut statements = Vec::with_capacity(batch.statements.len());
            for (statement, values) in batch.statements {
                let values = BoundValues::Positional(values);
                match statement {
                    BatchStatement::Query(text) => match crate::cql::parser::parse(&text) {
                        Ok(parsed) => statements.push((parsed, values)),
                        Err(error) => return Response::Error(CqlError::Syntax(error.to_string())),
                    },
                    BatchStatement::Prepared(id) => match node.prepared.get(&id) {
                        Some(prepared) => statements.push((prepared.statement.clone(), values)),
                        None => return Response::Error(CqlError::Unprepared {
                            message:
                                "Prepared statement in BATCH not found (was the node restarted?)"
                                    .into(),
                            id: id.to_vec(),
                        }),
                    },
                }
            }
            let params = QueryParameters {
                consistency: batch.consistency,
                timestamp: batch.timestamp,
                serial_consistency: batch.serial_consistency,
                ..QueryParameters::default()
            };
            let result = tokio::task::block_in_place(|| {
                executor::execute_batch(node, &mut state.session, &statements, &params)
            });
            match result {
                Ok(body) => Response::Result(body, false),
                Err(error) => Response::Error(error),
            }
        }
        Request::AuthResponse(_) => Response::Error(CqlError::Protocol(
            "AUTH_RESPONSE without an authentication challenge (AllowAllAuthenticator)".into(),
        )),
    }
}
