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
//!
//! Protocol v5 connections switch to segment framing ([`segment`]) after
//! the server's READY or AUTHENTICATE: from then on envelopes travel inside
//! checksummed segments both ways, and LZ4, if negotiated, applies to
//! segments instead of envelopes. With PasswordAuthenticator, STARTUP is
//! answered with AUTHENTICATE and no statement runs before a SASL PLAIN
//! AUTH_RESPONSE names a role and its password.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch, Semaphore};

use crate::auth::{self, Authenticator};
use crate::executor;
use crate::limits::{Admission, RequestBytes, UNAUTHENTICATED_FRAME_BYTES_MAX};
use crate::node::{ClientEvent, Node, Session};
use crate::prepared;
use crate::protocol::compression::{self, Compression};
use crate::protocol::error::CqlError;
use crate::protocol::frame::{
    check_header, flags, FrameHeader, HeaderCheck, Opcode, ResponseFrame, FALLBACK_VERSION,
    FRAME_BODY_BYTES_MAX, HEADER_BYTES,
};
use crate::protocol::messages::{BatchStatement, BoundValues, QueryParameters, Request, Response};
use crate::protocol::primitives::ProtocolViolation;
use crate::protocol::segment::{self, SegmentCodec};
use crate::results::MetadataRequest;
use std::sync::Arc;

/// Longest a write of responses to a slow client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of waiting envelopes gathered into one write (an envelope larger
/// than this goes out alone).
const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;

/// Events a client may register for.
const KNOWN_EVENTS: [&str; 3] = ["TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE"];

/// What one connection has negotiated.
#[derive(Debug, Default)]
struct ConnectionState {
    started: bool,
    /// The client proved who it is (or no authenticator asks it to).
    authenticated: bool,
    /// The protocol version of this connection (from its STARTUP).
    version: u8,
    /// Compressed envelopes from the reply to STARTUP on (before v5 only;
    /// v5 compresses segments instead).
    compression: Option<Compression>,
    events: Vec<String>,
}

/// Statement requests one connection may have running at once.
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 1024;

/// What the writer task is given, in order.
#[derive(Debug)]
enum Outbound {
    /// One encoded envelope (a whole frame before v5).
    Envelope(Bytes),
    /// From here on, wrap envelopes in v5 segments.
    StartFraming(SegmentCodec),
}

/// Bytes read from the client, and the envelopes in them.
#[derive(Debug, Default)]
struct Inbound {
    raw: BytesMut,
    /// On a v5 connection after STARTUP: the segment codec and the
    /// envelope bytes taken out of segments so far.
    framing: Option<(SegmentCodec, BytesMut)>,
    /// The request bytes granted for the envelope being read.
    granted: Option<RequestBytes>,
}

/// What [`Inbound::next`] found.
enum Next {
    Envelope(FrameHeader, Bytes, RequestBytes),
    UnsupportedVersion {
        version: u8,
        stream: i16,
    },
    NeedMore,
    /// The next envelope's body needs this many request bytes, which the
    /// node's or the address's budget cannot grant now: wait for them.
    NeedBytes(usize),
}

/// Envelope bytes a connection may hold before a whole envelope is there.
const ENVELOPE_BUFFER_MAX: usize = HEADER_BYTES + FRAME_BODY_BYTES_MAX + segment::PAYLOAD_BYTES_MAX;

impl Inbound {
    /// Whether bytes of another request are already here.
    fn more_buffered(&self) -> bool {
        !self.raw.is_empty()
            || self
                .framing
                .as_ref()
                .is_some_and(|(_, envelopes)| !envelopes.is_empty())
    }

    /// The next whole envelope, if its bytes are here. `body_bytes_max`
    /// is the largest body this connection may send now; its body's bytes
    /// are taken from `admission` before they are buffered.
    fn next(&mut self, admission: &Admission, logged_in: bool) -> Result<Next, ProtocolViolation> {
        let body_bytes_max = if logged_in {
            admission.limits().frame_bytes_max()
        } else {
            UNAUTHENTICATED_FRAME_BYTES_MAX
        };
        loop {
            let source = match &mut self.framing {
                Some((_, envelopes)) => envelopes,
                None => &mut self.raw,
            };
            match check_header(source)? {
                HeaderCheck::Ok(header) if header.body_len > body_bytes_max => {
                    return Err(ProtocolViolation(format!(
                        "frame body of {} bytes is larger than the {body_bytes_max} bytes this connection may send now{}",
                        header.body_len,
                        if body_bytes_max == UNAUTHENTICATED_FRAME_BYTES_MAX {
                            " (before STARTUP and login)"
                        } else {
                            " (native_transport_max_request_data_in_flight[_per_ip])"
                        }
                    )));
                }
                HeaderCheck::Ok(_) if self.granted.is_none() && !logged_in => {
                    self.granted = Some(RequestBytes::handshake());
                    continue;
                }
                HeaderCheck::Ok(header) if self.granted.is_none() => {
                    match admission.try_request_bytes(header.body_len) {
                        Some(granted) => self.granted = Some(granted),
                        None => return Ok(Next::NeedBytes(header.body_len)),
                    }
                    continue;
                }
                HeaderCheck::Ok(header) if source.len() >= HEADER_BYTES + header.body_len => {
                    let mut frame = source.split_to(HEADER_BYTES + header.body_len);
                    let body = frame.split_off(HEADER_BYTES).freeze();
                    let granted = self.granted.take().ok_or_else(|| {
                        ProtocolViolation("internal: an envelope without its request bytes".into())
                    })?;
                    return Ok(Next::Envelope(header, body, granted));
                }
                HeaderCheck::Ok(header) => {
                    source.reserve(HEADER_BYTES + header.body_len - source.len());
                }
                HeaderCheck::Incomplete => {}
                HeaderCheck::UnsupportedVersion { version, stream } => {
                    return Ok(Next::UnsupportedVersion { version, stream })
                }
            }
            // Not a whole envelope yet: with framing, take the next segment.
            let Some((codec, envelopes)) = &mut self.framing else {
                return Ok(Next::NeedMore);
            };
            let Some(segment) = codec.decode(&mut self.raw)? else {
                return Ok(Next::NeedMore);
            };
            if envelopes.len() + segment.payload.len() > ENVELOPE_BUFFER_MAX {
                return Err(ProtocolViolation(format!(
                    "segments carry more than {ENVELOPE_BUFFER_MAX} bytes without a whole envelope"
                )));
            }
            envelopes.extend_from_slice(&segment.payload);
        }
    }
}

/// Serves one client until it disconnects, breaks the protocol, or `shutdown` fires.
pub async fn serve_connection(
    stream: TcpStream,
    node: Arc<Node>,
    admission: Admission,
    mut shutdown: watch::Receiver<bool>,
) {
    let handshake_deadline =
        tokio::time::Instant::now() + admission.limits().config().handshake_timeout;
    let peer = stream.peer_addr().ok();
    // Responses go out as soon as they are written (as Cassandra's do):
    // Nagle's algorithm would hold a small response until the client's
    // delayed acknowledgement of the previous one.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(?peer, %error, "could not turn off Nagle's algorithm");
    }
    let metrics_node = node.clone();
    let _open = metrics_node.metrics.connection();
    let (mut reader, writer) = stream.into_split();
    let (out, rx) = mpsc::channel::<Outbound>(IN_FLIGHT_PER_CONNECTION_MAX + 16);
    let writing = tokio::spawn(write_loop(writer, rx));
    let mut state = ConnectionState::default();
    let session = Arc::new(Mutex::new(Session {
        client: peer.map(|p| p.ip()),
        ..Session::default()
    }));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION_MAX));
    let mut events = node.events.subscribe();
    let mut inbound = Inbound {
        raw: BytesMut::with_capacity(8 * 1024),
        framing: None,
        granted: None,
    };
    loop {
        let logged_in = state.started && state.authenticated;
        let (header, body, granted) = match inbound.next(&admission, logged_in) {
            Ok(Next::Envelope(header, body, granted)) => (header, body, granted),
            Ok(Next::NeedBytes(bytes)) => {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    granted = admission.request_bytes(bytes) => inbound.granted = Some(granted),
                }
                continue;
            }
            Ok(Next::NeedMore) => {
                let deadline = (!logged_in).then_some(handshake_deadline);
                if !read_more(
                    &mut reader,
                    &mut inbound.raw,
                    &mut shutdown,
                    &mut events,
                    &state,
                    &out,
                    deadline,
                )
                .await
                {
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        tracing::debug!(
                            ?peer,
                            "connection did not start and log in in time; closing it"
                        );
                    }
                    break;
                }
                continue;
            }
            Ok(Next::UnsupportedVersion {
                version,
                stream: id,
            }) => {
                let message = if version == crate::protocol::frame::BETA_VERSION {
                    // Drivers downgrade on either phrase.
                    "Beta version of the protocol used (6/v6-beta), but USE_BETA flag is unset \
                     (Invalid or unsupported protocol version without it: supported versions \
                     are (3/v3, 4/v4, 5/v5, 6/v6-beta))"
                        .to_owned()
                } else {
                    format!(
                        "Invalid or unsupported protocol version ({version}); supported versions are (3/v3, 4/v4, 5/v5, 6/v6-beta)"
                    )
                };
                let error = Response::Error(CqlError::Protocol(message));
                let _ = out.send(encode(FALLBACK_VERSION, id, &error, None)).await;
                break;
            }
            Err(violation) => {
                tracing::debug!(?peer, %violation, "protocol violation; closing connection");
                let error = Response::Error(CqlError::Protocol(violation.0));
                let version = if state.started {
                    state.version
                } else {
                    FALLBACK_VERSION
                };
                let _ = out
                    .send(encode(version, 0, &error, state.compression))
                    .await;
                break;
            }
        };
        if state.started && header.version != state.version {
            let error = Response::Error(CqlError::Protocol(format!(
                "Invalid message version. Got {} but previous messages on this connection had version {}",
                header.version, state.version
            )));
            let _ = out
                .send(encode(
                    state.version,
                    header.stream,
                    &error,
                    state.compression,
                ))
                .await;
            break;
        }
        if header.opcode == Opcode::Startup {
            state.version = header.version;
        }
        // A reply is compressed if compression was on before its request
        // (so the READY that switches it on is not).
        let compress_reply = state.compression;
        let body = if header.flags & flags::COMPRESSION == 0 {
            Ok(body)
        } else if let Some(algorithm) = state.compression {
            algorithm
                .decompress(&body)
                .map_err(|e| CqlError::Protocol(e.0))
        } else {
            Err(CqlError::Protocol(
                "frame is compressed but no compression was negotiated in STARTUP".to_owned(),
            ))
        };
        let request =
            match body.and_then(|body| Request::parse(header.opcode, body, header.version)) {
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
        if !is_statement || !state.started || !state.authenticated {
            let is_startup = matches!(request, Request::Startup(_));
            let response = match request {
                Request::AuthResponse(token) => {
                    authenticate(&node, &mut state, &session, token).await
                }
                request => answer(&node, &mut state, request),
            };
            drop(granted);
            // v5 frames everything after the READY or AUTHENTICATE.
            let framing = (is_startup
                && state.version >= 5
                && matches!(response, Response::Ready | Response::Authenticate(_)))
            .then(|| SegmentCodec {
                lz4: state.compression == Some(Compression::Lz4),
            });
            if framing.is_some() {
                state.compression = None;
            }
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
            if let Some(codec) = framing {
                inbound.framing = Some((codec, BytesMut::new()));
                if out.send(Outbound::StartFraming(codec)).await.is_err() {
                    break;
                }
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
            node.metrics.overloaded();
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
        // An EXECUTE's statement is looked up once, here: it decides where
        // the request runs, and run_statement uses it.
        let prepared = match &request {
            Request::Execute { id, .. } => node.prepared.get(id),
            _ => None,
        };
        // A traced request runs on one blocking thread from start to end,
        // where its steps gather (see `replication::trace`). Besides those
        // the client asks to trace, a share of all (`nodetool
        // settraceprobability`) is traced without telling the client.
        let sampled = header.flags & flags::TRACING == 0 && node.traces.sample();
        let traced = header.flags & flags::TRACING != 0 || sampled;
        // Only requests that never wait on another node may run inline.
        let inline = !traced
            && node
                .inline_execution
                .load(std::sync::atomic::Ordering::Relaxed)
            && prepared.as_ref().is_some_and(|p| p.single_partition)
            && node.coordinator.is_local_only();
        if inline && !inbound.more_buffered() {
            // The last request read so far runs here, on the connection's
            // own task: no task to spawn and no thread to wake for it. Under
            // a pipelined load, the requests before it were spawned, so one
            // connection still spreads over every core.
            let reply = run_and_encode(
                &node,
                &session,
                request,
                prepared,
                &header,
                compress_reply,
                sampled,
            );
            let sent = out.send(reply).await;
            drop((permits, granted));
            if sent.is_err() {
                break;
            }
            continue;
        }
        let (node, session, out) = (node.clone(), session.clone(), out.clone());
        // A single-partition statement in a cluster: started here, its
        // replicas awaited on a task of its own (never the blocking pool).
        let awaits_replicas = !inline
            && !traced
            && node
                .inline_execution
                .load(std::sync::atomic::Ordering::Relaxed)
            && prepared.as_ref().is_some_and(|p| p.single_partition);
        if awaits_replicas {
            tokio::spawn(async move {
                let reply = run_on_task_and_encode(
                    &node,
                    &session,
                    request,
                    prepared,
                    &header,
                    compress_reply,
                )
                .await;
                let _ = out.send(reply).await;
                drop((permits, granted));
            });
            continue;
        }
        if inline {
            tokio::spawn(async move {
                let reply = run_and_encode(
                    &node,
                    &session,
                    request,
                    prepared,
                    &header,
                    compress_reply,
                    sampled,
                );
                let _ = out.send(reply).await;
                drop((permits, granted));
            });
            continue;
        }
        tokio::task::spawn_blocking(move || {
            let reply = run_and_encode(
                &node,
                &session,
                request,
                prepared,
                &header,
                compress_reply,
                sampled,
            );
            let _ = out.blocking_send(reply);
            drop((permits, granted));
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
    out: &mpsc::Sender<Outbound>,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    let expired = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown.changed() => false,
        () = expired => false,
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

/// Writes frames in the order they are queued. Envelopes already waiting
/// together go out in one write (one system call under load); on a framed
/// (v5) connection they share one segment.
async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::Receiver<Outbound>) {
    let mut codec: Option<SegmentCodec> = None;
    let mut held: Option<Outbound> = None;
    loop {
        let item = match held.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => break,
            },
        };
        let bytes = match (item, codec) {
            (Outbound::StartFraming(new_codec), _) => {
                codec = Some(new_codec);
                continue;
            }
            (Outbound::Envelope(envelope), None) => {
                let mut batch: Option<BytesMut> = None;
                while batch.as_ref().map_or(envelope.len(), BytesMut::len) < WRITE_BATCH_BYTES_MAX {
                    match rx.try_recv() {
                        Ok(Outbound::Envelope(next)) => batch
                            .get_or_insert_with(|| BytesMut::from(envelope.as_ref()))
                            .extend_from_slice(&next),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                batch.map_or(envelope, BytesMut::freeze)
            }
            (Outbound::Envelope(envelope), Some(codec)) => {
                let mut payload = BytesMut::from(envelope.as_ref());
                while payload.len() < segment::PAYLOAD_BYTES_MAX {
                    match rx.try_recv() {
                        Ok(Outbound::Envelope(next))
                            if payload.len() + next.len() <= segment::PAYLOAD_BYTES_MAX =>
                        {
                            payload.extend_from_slice(&next);
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let mut framed = BytesMut::with_capacity(payload.len() + 64);
                codec.encode(&payload, &mut framed);
                framed.freeze()
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = writer.shutdown().await;
}

fn encode_event(state: &ConnectionState, event: &ClientEvent) -> Outbound {
    let (flags, body) = match state.compression {
        Some(algorithm) => (flags::COMPRESSION, algorithm.compress(&event.encode())),
        None => (0, event.encode()),
    };
    let frame = ResponseFrame {
        version: state.version,
        flags,
        stream: -1,
        opcode: Opcode::Event,
        body,
    };
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    Outbound::Envelope(out.freeze())
}

/// Runs a statement request and encodes its response (with the
/// statement's warnings) as a reply to it.
fn run_and_encode(
    node: &Node,
    session: &Mutex<Session>,
    request: Request,
    prepared: Option<std::sync::Arc<crate::prepared::Prepared>>,
    header: &FrameHeader,
    compression: Option<Compression>,
    sampled: bool,
) -> Outbound {
    crate::warnings::begin();
    let asked = header.flags & flags::TRACING != 0;
    let trace = (asked || sampled)
        .then(|| trace_start(session, &request, prepared.as_deref()))
        .flatten();
    // Ends the trace even if the statement panics (see `Tracing`).
    let _tracing = trace.as_ref().map(|_| replication::trace::begin());
    if let Some(start) = &trace {
        replication::trace::event(|| match &request {
            Request::Query { query, .. } => format!("Parsing {query}"),
            Request::Batch(batch) => {
                format!("Executing a batch of {} statements", batch.statements.len())
            }
            _ => {
                let query = start.parameters.iter().find(|(name, _)| name == "query");
                format!(
                    "Executing prepared statement {}",
                    query.map_or("", |(_, q)| q.as_str())
                )
            }
        });
    }
    let response = run_statement(node, session, request, prepared, header.version);
    let warnings = crate::warnings::take();
    let tracing_id = trace.map(|start| {
        let (steps, duration) = replication::trace::finish().unwrap_or_default();
        let id = start.session_id;
        node.traces.record(start.finish(
            node.info.rpc_address,
            node.info.native_port,
            steps,
            duration,
        ));
        id
    });
    // A sampled request's trace is kept; only a client that asked is told.
    let tracing_id = tracing_id.filter(|_| asked);
    encode_traced(
        header.version,
        header.stream,
        &response,
        tracing_id,
        &warnings,
        compression,
    )
}

/// What the session row of a traced request will say, for the requests
/// that are traced (QUERY, EXECUTE, BATCH; Cassandra traces PREPARE too,
/// not yet here).
fn trace_start(
    session: &Mutex<Session>,
    request: &Request,
    prepared: Option<&crate::prepared::Prepared>,
) -> Option<crate::traces::TraceStart> {
    let client = session.lock().client;
    let level = |code: u16| {
        replication::consistency::ConsistencyLevel::from_code(code)
            .map_or_else(|| format!("{code:#06x}"), |l| l.to_string())
    };
    let (command, request_name, mut parameters) = match request {
        Request::Query { query, params } => (
            "QUERY",
            "Execute CQL3 query",
            vec![
                ("query".to_owned(), query.clone()),
                ("consistency_level".to_owned(), level(params.consistency)),
            ],
        ),
        Request::Execute { params, .. } => (
            "EXECUTE",
            "Execute CQL3 prepared query",
            vec![
                (
                    "query".to_owned(),
                    prepared.map(|p| p.query.clone()).unwrap_or_default(),
                ),
                ("consistency_level".to_owned(), level(params.consistency)),
            ],
        ),
        Request::Batch(batch) => (
            "BATCH",
            "Execute batch of CQL3 queries",
            vec![("consistency_level".to_owned(), level(batch.consistency))],
        ),
        _ => return None,
    };
    if let Request::Query { params, .. } | Request::Execute { params, .. } = request {
        if let Some(page_size) = params.page_size {
            parameters.push(("page_size".to_owned(), page_size.to_string()));
        }
    }
    Some(crate::traces::TraceStart::now(
        client,
        command,
        request_name,
        parameters,
    ))
}

/// The session an EXECUTE runs in: the connection's, in the keyspace the
/// statement was prepared in when it had one (its unqualified names were
/// resolved there, whatever `USE` the connection has run since, or the
/// v5 per-request keyspace it was prepared with).
fn prepared_session(session: &Mutex<Session>, prepared: &crate::prepared::Prepared) -> Session {
    let mut current = session.lock().clone();
    if let Some(keyspace) = &prepared.keyspace {
        current.keyspace = Some(keyspace.clone());
    }
    current
}

/// An EXECUTE of a single-partition statement in a cluster, on an async
/// task: writes are started and their replicas awaited, reads awaited,
/// without holding a thread. A statement that needs more than
/// [`executor::TASK_READS_MAX`] reads, or scans token ranges, finishes on
/// a blocking thread.
async fn run_on_task_and_encode(
    node: &Arc<Node>,
    session: &Arc<Mutex<Session>>,
    request: Request,
    prepared: Option<std::sync::Arc<crate::prepared::Prepared>>,
    header: &FrameHeader,
    compression: Option<Compression>,
) -> Outbound {
    let (
        Request::Execute {
            params,
            result_metadata_id,
            ..
        },
        Some(found),
    ) = (&request, &prepared)
    else {
        let response = Response::Error(CqlError::Server(
            "internal error: only an EXECUTE runs on its own task".into(),
        ));
        return encode(header.version, header.stream, &response, compression);
    };
    let started = std::time::Instant::now();
    let on_task = std::cell::RefCell::new(executor::OnTask::default());
    for _ in 0..=executor::TASK_READS_MAX {
        let mut current = prepared_session(session, found);
        crate::warnings::begin();
        let run = executor::run_on_task(
            node,
            &mut current,
            &found.statement,
            params,
            started,
            &on_task,
        );
        match run {
            executor::TaskRun::NeedsRead(read) => {
                let result = executor::read_on_task(node, &read).await;
                on_task.borrow_mut().keep_read(read, result);
            }
            executor::TaskRun::NeedsThread => break,
            executor::TaskRun::Done(result, writes) => {
                let warnings = crate::warnings::take();
                let result =
                    executor::finish_on_task(node, &found.statement, started, result, writes).await;
                let current = found.result_metadata_id;
                let response = match result {
                    Ok(body) => Response::Result(
                        body,
                        MetadataRequest {
                            skip: params.skip_metadata,
                            changed_id: result_metadata_id
                                .as_ref()
                                .filter(|held| held.as_ref() != current)
                                .map(|_| current),
                        },
                    ),
                    Err(error) => Response::Error(error),
                };
                return encode_warned(
                    header.version,
                    header.stream,
                    &response,
                    &warnings,
                    compression,
                );
            }
        }
    }
    let (node, session, header) = (node.clone(), session.clone(), *header);
    tokio::task::spawn_blocking(move || {
        run_and_encode(
            &node,
            &session,
            request,
            prepared,
            &header,
            compression,
            false,
        )
    })
    .await
    .unwrap_or_else(|_| {
        let response = Response::Error(CqlError::Server(
            "internal error: the statement's thread failed".into(),
        ));
        encode(header.version, header.stream, &response, compression)
    })
}

fn encode(version: u8, id: i16, response: &Response, compression: Option<Compression>) -> Outbound {
    encode_warned(version, id, response, &[], compression)
}

/// A response with client warnings: the WARNING flag and a `[string
/// list]` before the body (protocol v4 and later; v3 clients get none).
fn encode_warned(
    version: u8,
    id: i16,
    response: &Response,
    warnings: &[String],
    compression: Option<Compression>,
) -> Outbound {
    encode_traced(version, id, response, None, warnings, compression)
}

/// A response with its tracing id (the TRACING flag and a `[uuid]` first)
/// and client warnings (the WARNING flag and a `[string list]` next, v4
/// and later), then the body.
fn encode_traced(
    version: u8,
    id: i16,
    response: &Response,
    tracing_id: Option<[u8; 16]>,
    warnings: &[String],
    compression: Option<Compression>,
) -> Outbound {
    let mut body = response.encode_body();
    let mut header_flags = 0;
    let warned = version >= 4 && !warnings.is_empty();
    if tracing_id.is_some() || warned {
        let mut prefix = BytesMut::new();
        if let Some(tracing_id) = tracing_id {
            prefix.extend_from_slice(&tracing_id);
            header_flags |= flags::TRACING;
        }
        if warned {
            let mut w = crate::protocol::primitives::BodyWriter::new();
            let list: Vec<&str> = warnings.iter().map(String::as_str).collect();
            w.write_string_list(&list);
            prefix.extend_from_slice(&w.into_bytes());
            header_flags |= flags::WARNING;
        }
        prefix.extend_from_slice(&body);
        body = prefix.freeze();
    }
    let (flags, body) = match compression {
        Some(algorithm) => (flags::COMPRESSION | header_flags, algorithm.compress(&body)),
        None => (header_flags, body),
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
    Outbound::Envelope(out.freeze())
}

/// Checks an AUTH_RESPONSE (SASL PLAIN) on a blocking thread: the password
/// hash is deliberately slow.
async fn authenticate(
    node: &Arc<Node>,
    state: &mut ConnectionState,
    session: &Mutex<Session>,
    token: Option<Bytes>,
) -> Response {
    if !state.started || state.authenticated || node.authenticator != Authenticator::Password {
        return Response::Error(CqlError::Protocol(
            "AUTH_RESPONSE without an authentication challenge".into(),
        ));
    }
    let token = token.unwrap_or_default();
    let checking = node.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        auth::authenticate_plain(checking.coordinator.engine(), &token)
    })
    .await
    .unwrap_or_else(|e| Err(CqlError::Server(format!("authentication failed: {e}"))));
    match outcome {
        Ok(role) => {
            state.authenticated = true;
            session.lock().user = Some(role.name);
            Response::AuthSuccess
        }
        Err(error) => Response::Error(error),
    }
}

/// The answer to a control message (handled in order, on the reading task).
fn answer(node: &Node, state: &mut ConnectionState, request: Request) -> Response {
    match request {
        Request::Options => Response::Supported,
        Request::Startup(options) => {
            let compression = match options.get("COMPRESSION") {
                None => None,
                Some(name) => match Compression::from_name(name) {
                    Some(Compression::Snappy) if state.version >= 5 => {
                        return Response::Error(CqlError::Protocol(
                            "Snappy compression is not available with protocol v5; use lz4"
                                .into(),
                        ))
                    }
                    Some(algorithm) => Some(algorithm),
                    None => {
                        return Response::Error(CqlError::Protocol(format!(
                            "Unknown compression algorithm: {name} (this node supports {})",
                            compression::ALGORITHMS.join(", ")
                        )))
                    }
                },
            };
            if !options.contains_key("CQL_VERSION") {
                return Response::Error(CqlError::Protocol(
                    "STARTUP must carry the CQL_VERSION option".into(),
                ));
            }
            state.started = true;
            state.compression = compression;
            match node.authenticator {
                Authenticator::AllowAll => {
                    state.authenticated = true;
                    Response::Ready
                }
                Authenticator::Password => {
                    Response::Authenticate(auth::PASSWORD_AUTHENTICATOR.into())
                }
            }
        }
        _ if !state.started => Response::Error(CqlError::Protocol(
            "the first message must be STARTUP (or OPTIONS)".into(),
        )),
        _ if !state.authenticated => Response::Error(CqlError::Protocol(
            "authentication is required: answer AUTHENTICATE with an AUTH_RESPONSE (SASL PLAIN username and password) first".into(),
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
        statement => run_statement_unexpected(statement),
    }
}

fn run_statement_unexpected(request: Request) -> Response {
    Response::Error(CqlError::Server(format!(
        "internal error: {:?} reached the control path",
        std::mem::discriminant(&request)
    )))
}

/// Runs `f` on a copy of the session, in `keyspace` if the request names
/// one (v5), and keeps a keyspace change (`USE`).
fn with_session<T>(
    session: &Mutex<Session>,
    keyspace: Option<&String>,
    f: impl FnOnce(&mut Session) -> T,
) -> T {
    let mut current = session.lock().clone();
    if let Some(keyspace) = keyspace {
        current.keyspace = Some(keyspace.clone());
    }
    let before = current.keyspace.clone();
    let result = f(&mut current);
    if current.keyspace != before {
        session.lock().keyspace = current.keyspace;
    }
    result
}

/// Runs a statement request (QUERY, PREPARE, EXECUTE, BATCH). Called on a
/// blocking thread (storage calls may wait on an fsync), or on an async
/// worker for single-partition prepared statements when the node allows it
/// ([`Node::inline_execution`]). `prepared` is the statement an EXECUTE
/// names, as the caller found it in the cache (None: not prepared here).
fn run_statement(
    node: &Node,
    session: &Mutex<Session>,
    request: Request,
    prepared: Option<std::sync::Arc<crate::prepared::Prepared>>,
    version: u8,
) -> Response {
    match request {
        Request::Query { query, params } => {
            let result = with_session(session, params.keyspace.as_ref(), |session| {
                executor::execute(node, session, &query, &params)
            });
            let metadata = MetadataRequest {
                skip: params.skip_metadata,
                changed_id: None,
            };
            match result {
                Ok(body) => Response::Result(body, metadata),
                Err(error) => Response::Error(error),
            }
        }
        Request::Prepare { query, keyspace } => {
            let result = with_session(session, keyspace.as_ref(), |current| {
                prepared::prepare(node, current, &query)
            });
            match result {
                Ok((id, prepared)) => {
                    Response::EncodedResult(prepared::prepared_result(&id, &prepared, version))
                }
                Err(error) => Response::Error(error),
            }
        }
        Request::Execute {
            id,
            result_metadata_id,
            params,
        } => {
            let Some(prepared) = prepared else {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                return Response::Error(CqlError::Unprepared {
                    message: format!("Prepared query with ID {hex} not found (either the query was not prepared on this host (maybe the host has been restarted?) or you have prepared too many queries and it has been evicted from the internal cache)"),
                    id: id.to_vec(),
                });
            };
            let mut current = prepared_session(session, &prepared);
            let result =
                executor::execute_statement(node, &mut current, &prepared.statement, &params);
            let current = prepared.result_metadata_id;
            let metadata = MetadataRequest {
                skip: params.skip_metadata,
                changed_id: result_metadata_id
                    .filter(|held| held.as_ref() != current)
                    .map(|_| current),
            };
            match result {
                Ok(body) => Response::Result(body, metadata),
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
            let write_type = match batch.kind {
                0 => replication::WriteType::Batch,
                2 => replication::WriteType::Counter,
                _ => replication::WriteType::UnloggedBatch,
            };
            let params = QueryParameters {
                consistency: batch.consistency,
                timestamp: batch.timestamp,
                serial_consistency: batch.serial_consistency,
                ..QueryParameters::default()
            };
            let result = with_session(session, batch.keyspace.as_ref(), |session| {
                executor::execute_batch(node, session, &statements, &params, write_type)
            });
            match result {
                Ok(body) => Response::Result(body, MetadataRequest::full()),
                Err(error) => Response::Error(error),
            }
        }
        control => run_statement_unexpected(control),
    }
}
