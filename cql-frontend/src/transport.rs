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
//! One tokio task reads frames (buffering at most one frame, bounded by
//! [`crate::protocol::frame::FRAME_BODY_BYTES_MAX`]) and answers control messages in order; each
//! statement runs on a blocking thread, at most
//! [`IN_FLIGHT_PER_CONNECTION_MAX`] per connection and
//! [`crate::node::REQUESTS_IN_FLIGHT_MAX`] per node, past which the client
//! gets Overloaded at once; a writer task sends replies and events through a
//! bounded queue, so a client that stops reading slows only itself.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch, Semaphore};

use crate::executor;
use crate::node::{ClientEvent, Node, Session};
use crate::prepared;
use crate::protocol::compression;
use crate::protocol::error::CqlError;
use crate::protocol::frame::{
    check_header, flags, HeaderCheck, ResponseFrame, FALLBACK_VERSION, HEADER_BYTES,
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
}

/// Statement requests one connection may have running at once.
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 1024;

/// Serves one client until it disconnects, breaks the protocol, or `shutdown` fires.
pub async fn serve_connection(
    stream: TcpStream,
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().ok();
    let (mut reader, writer) = stream.into_split();
    let (out, rx) = mpsc::channel::<Bytes>(IN_FLIGHT_PER_CONNECTION_MAX + 16);
    let writing = tokio::spawn(write_loop(writer, rx));
    let mut state = ConnectionState::default();
    let session = Arc::new(Mutex::new(Session::default()));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION_MAX));
    let mut events = node.events.subscribe();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        let header = match check_header(&buf) {
            Ok(HeaderCheck::Ok(header)) if buf.len() >= HEADER_BYTES + header.body_len => header,
            Ok(HeaderCheck::Ok(header)) => {
                buf.reserve(HEADER_BYTES + header.body_len - buf.len());
                if !read_more(
                    &mut reader,
                    &mut buf,
                    &mut shutdown,
                    &mut events,
                    &state,
                    &out,
                )
                .await
                {
                    break;
                }
                continue;
            }
            Ok(HeaderCheck::Incomplete) => {
                if !read_more(
                    &mut reader,
                    &mut buf,
                    &mut shutdown,
                    &mut events,
                    &state,
                    &out,
                )
                .await
                {
                    break;
                }
                continue;
            }
            Ok(HeaderCheck::UnsupportedVersion {
                version,
                stream: id,
            }) => {
                let message = format!(
                    "Invalid or unsupported protocol version ({version}); supported versions are (3/v3, 4/v4)"
                );
                let error = Response::Error(CqlError::Protocol(message));
                let _ = out.send(encode(FALLBACK_VERSION, id, &error, false)).await;
                break;
            }
            Err(violation) => {
                tracing::debug!(?peer, %violation, "protocol violation; closing connection");
                let error = Response::Error(CqlError::Protocol(violation.0));
                let _ = out
                    .send(encode(FALLBACK_VERSION, 0, &error, state.compress))
                    .await;
                break;
            }
        };
        let mut frame = buf.split_to(HEADER_BYTES + header.body_len);
        let body = frame.split_off(HEADER_BYTES).freeze();
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
        let request = match body.and_then(|body| Request::parse(header.opcode, body)) {
            Ok(request) => request,
            Err(error) => {
                let _ = out
                    .send(encode(
                        header.version,
                        header.stream,
                        &Response::Error(error),
                        compress_reply,
                    ))
                    .await;
                break;
            }
        };
        let is_statement = matches!(
            request,
            Request::Query { .. }
                | Request::Prepare { .. }
                | Request::Execute { .. }
                | Request::Batch(_)
        );
        if !is_statement || !state.started {
            let response = answer(&mut state, request);
            if out
                .send(encode(
                    header.version,
                    header.stream,
                    &response,
                    compress_reply,
                ))
                .await
                .is_err()
            {
                break;
            }
            continue;
        }
        // Past either limit the client is told to back off, at once.
        let permits = in_flight
            .clone()
            .try_acquire_owned()
            .ok()
            .zip(node.requests_in_flight.clone().try_acquire_owned().ok());
        let Some(permits) = permits else {
            let error = Response::Error(CqlError::Overloaded(format!(
                "too many requests in flight (at most {IN_FLIGHT_PER_CONNECTION_MAX} per connection and {} per node); retry later",
                crate::node::REQUESTS_IN_FLIGHT_MAX
            )));
            if out
                .send(encode(
                    header.version,
                    header.stream,
                    &error,
                    compress_reply,
                ))
                .await
                .is_err()
            {
                break;
            }
            continue;
        };
        let (node, session, out) = (node.clone(), session.clone(), out.clone());
        tokio::task::spawn_blocking(move || {
            let response = run_statement(&node, &session, request);
            let _ = out.blocking_send(encode(
                header.version,
                header.stream,
                &response,
                compress_reply,
            ));
            drop(permits);
        });
    }
    // Let replies already computed reach the client, then close.
    drop(out);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, writing).await;
}

/// Waits for more bytes (or an event to push). Returns false when the
/// connection should close.
async fn read_more(
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    shutdown: &mut watch::Receiver<bool>,
    events: &mut broadcast::Receiver<ClientEvent>,
    state: &ConnectionState,
    out: &mpsc::Sender<Bytes>,
) -> bool {
    tokio::select! {
        _ = shutdown.changed() => false,
        event = events.recv() => match event {
            Ok(event) if state.started && state.events.iter().any(|e| e == event.kind()) => {
                let frame = encode_event(state, &event);
                out.send(frame).await.is_ok()
            }
            Ok(_) => true,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "client too slow for events; some were dropped");
                true
            }
            Err(broadcast::error::RecvError::Closed) => true,
        },
        read = reader.read_buf(buf) => matches!(read, Ok(n) if n > 0),
    }
}

/// Writes encoded frames in the order they are queued.
async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(frame) = rx.recv().await {
        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&frame)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = writer.shutdown().await;
}

fn encode_event(state: &ConnectionState, event: &ClientEvent) -> Bytes {
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
    out.freeze()
}

/// A response as frame bytes.
fn encode(version: u8, id: i16, response: &Response, compress: bool) -> Bytes {
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
    let mut out = BytesMut::with_capacity(HEADER_BYTES + frame.body.len());
    frame.encode(&mut out);
    out.freeze()
}

/// The answer to a control message (handled in order, on the reading task).
fn answer(state: &mut ConnectionState, request: Request) -> Response {
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
        Request::AuthResponse(_) => Response::Error(CqlError::Protocol(
            "AUTH_RESPONSE without an authentication challenge (AllowAllAuthenticator)".into(),
        )),
        statement => run_statement_unexpected(statement),
    }
}

fn run_statement_unexpected(request: Request) -> Response {
    Response::Error(CqlError::Server(format!(
        "internal error: {:?} reached the control path",
        std::mem::discriminant(&request)
    )))
}

/// Runs `f` on a copy of the session and keeps what it changed (`USE`).
fn with_session<T>(session: &Mutex<Session>, f: impl FnOnce(&mut Session) -> T) -> T {
    let mut current = session.lock().clone();
    let before = current.keyspace.clone();
    let result = f(&mut current);
    if current.keyspace != before {
        *session.lock() = current;
    }
    result
}

/// Runs a statement request (QUERY, PREPARE, EXECUTE, BATCH) on a blocking
/// thread: storage calls may wait on an fsync.
fn run_statement(node: &Node, session: &Mutex<Session>, request: Request) -> Response {
    match request {
        Request::Query { query, params } => {
            let result = with_session(session, |session| {
                executor::execute(node, session, &query, &params)
            });
            match result {
                Ok(body) => Response::Result(body, params.skip_metadata),
                Err(error) => Response::Error(error),
            }
        }
        Request::Prepare { query } => {
            let current = session.lock().clone();
            match prepared::prepare(node, &current, &query) {
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
            let mut current = session.lock().clone();
            if current.keyspace.is_none() {
                current.keyspace = prepared.keyspace.clone();
            }
            let result =
                executor::execute_statement(node, &mut current, &prepared.statement, &params);
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
            let result = with_session(session, |session| {
                executor::execute_batch(node, session, &statements, &params)
            });
            match result {
                Ok(body) => Response::Result(body, false),
                Err(error) => Response::Error(error),
            }
        }
        control => run_statement_unexpected(control),
    }
}
