//! The replica side of messaging: reads a connection's requests, does each
//! against the local engine, and writes the replies back, those of one
//! read gathered into one write.
//!
//! Mutations and reads run inline on the connection's task when
//! [`ReplicaHandler::inline`] says the engine never makes them wait for a
//! disk (periodic commitlog); scans, truncates and everything under a batch
//! commitlog run on the blocking pool, at most [`BLOCKING_PER_CONNECTION`]
//! at once per connection (the reader waits beyond that: back-pressure to
//! the sender). A request whose sender has stopped waiting is dropped
//! unanswered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use storage_lsm::codec::{Reader, Writer};
use storage_lsm::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

use super::frame::{self, Message, Reply, Verb};
use crate::trace::ReplicaSteps;
use crate::verbs;

/// Requests of one connection on the blocking pool at once, at most.
pub const BLOCKING_PER_CONNECTION: usize = 64;
/// Reply batches waiting for the connection's writer, at most.
const REPLY_QUEUE_MAX: usize = 1024;
/// A connection's read buffer before frames make it grow.
const READ_BUFFER_START: usize = 4 * 1024;
/// Messaging connections from peers served at once, at most: each peer
/// keeps one (a few while reconnecting), so this allows hundreds of nodes;
/// past it a new connection is closed at once and logged.
pub const CONNECTIONS_MAX: usize = 1024;

/// Does the replication verbs against this node's engine.
#[derive(Debug)]
pub struct ReplicaHandler {
    engine: Arc<Engine>,
    inline: bool,
}

impl ReplicaHandler {
    /// `inline`: mutations and reads may run on the connection's task (the
    /// commitlog is periodic: no write waits for an fsync).
    pub fn new(engine: Arc<Engine>, inline: bool) -> ReplicaHandler {
        ReplicaHandler { engine, inline }
    }

    fn runs_inline(&self, verb: &Verb) -> bool {
        self.inline && matches!(verb, Verb::Mutate(_) | Verb::Read { .. })
    }

    /// Does one request; a traced one also gives the steps it took.
    pub fn handle(&self, verb: Verb, trace: Option<u64>) -> (Reply, Option<ReplicaSteps>) {
        // Ends the gathering even if the work panics (see `Tracing`).
        let _tracing = trace.map(|id| {
            let tracing = crate::trace::begin_replica(id);
            crate::trace::event(|| format!("{} message received", verb_name(&verb)));
            tracing
        });
        let reply = match self.try_handle(verb) {
            Ok(reply) => reply,
            Err(reason) => {
                crate::trace::event(|| format!("Failed: {reason}"));
                Reply::Failed(reason)
            }
        };
        let steps = trace.and_then(|_| {
            crate::trace::event(|| "Enqueuing response to the coordinator".into());
            crate::trace::finish_replica()
        });
        (reply, steps)
    }

    fn try_handle(&self, verb: Verb) -> Result<Reply, String> {
        match verb {
            Verb::Mutate(bytes) => {
                let mutation = Reader::new(&bytes)
                    .mutation()
                    .map_err(|e| format!("bad mutation: {e}"))?;
                crate::trace::event(|| "Appending to commitlog and memtable".into());
                self.engine.apply(mutation).map_err(|e| e.to_string())?;
                Ok(Reply::Done)
            }
            Verb::Read {
                table,
                key,
                query,
                digest_only,
            } => {
                let key = verbs::decode_key(&key).map_err(|e| format!("bad partition key: {e}"))?;
                let query = verbs::decode_query(&query).map_err(|e| format!("bad slice: {e}"))?;
                let data = self
                    .engine
                    .read_data(table, &key, &query)
                    .map_err(|e| e.to_string())?;
                if crate::trace::active() {
                    crate::trace::trace_read(&self.engine, table, &key, data.as_ref());
                }
                let digest = storage_lsm::replica::digest(data.as_ref());
                let bytes = match (&data, digest_only) {
                    (Some(update), false) => {
                        let mut w = Writer::new();
                        w.update(update);
                        Bytes::from(w.buf)
                    }
                    _ => Bytes::new(),
                };
                Ok(Reply::Read {
                    found: data.is_some(),
                    digest,
                    data: bytes,
                })
            }
            Verb::Scan {
                table,
                range,
                resume,
                row_limit,
            } => {
                let range =
                    verbs::decode_range(&range).map_err(|e| format!("bad token range: {e}"))?;
                let resume =
                    verbs::decode_resume(&resume).map_err(|e| format!("bad resume point: {e}"))?;
                let limit = usize::try_from(row_limit).unwrap_or(usize::MAX);
                let page = self
                    .engine
                    .scan(table, &range, resume.as_ref(), limit)
                    .map_err(|e| e.to_string())?;
                crate::trace::event(|| {
                    format!(
                        "Scanned {} partitions of a token range",
                        page.partitions.len()
                    )
                });
                Ok(Reply::Page(Bytes::from(verbs::encode_page(&page))))
            }
            Verb::Truncate(table) => {
                crate::trace::event(|| "Truncating the table".into());
                self.engine.truncate(table).map_err(|e| e.to_string())?;
                Ok(Reply::Done)
            }
        }
    }
}

/// What a verb is called in traces (Cassandra's message names).
fn verb_name(verb: &Verb) -> &'static str {
    match verb {
        Verb::Mutate(_) => "MUTATION",
        Verb::Read {
            digest_only: true, ..
        } => "READ (digest)",
        Verb::Read { .. } => "READ",
        Verb::Scan { .. } => "RANGE_SLICE",
        Verb::Truncate(_) => "TRUNCATE",
    }
}

/// Appends a reply; one too large for a frame becomes a refusal naming the
/// limit (the sender would otherwise drop the whole connection).
fn encode_reply(id: u64, (reply, steps): (Reply, Option<ReplicaSteps>), out: &mut BytesMut) {
    let start = out.len();
    frame::encode(&Message::Reply { id, reply, steps }, out);
    let length = out.len() - start;
    if length > frame::FRAME_BYTES_MAX {
        out.truncate(start);
        let reason = format!(
            "the reply is {length} bytes, over the {} byte frame limit",
            frame::FRAME_BYTES_MAX
        );
        frame::encode(
            &Message::Reply {
                id,
                reply: Reply::Failed(reason),
                steps: None,
            },
            out,
        );
    }
}

/// Serves one messaging connection (its magic and version already read)
/// until it closes or sends something that is not a request.
pub async fn serve<S>(stream: S, handler: Arc<ReplicaHandler>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (replies, mut outgoing) = mpsc::channel::<Bytes>(REPLY_QUEUE_MAX);
    let writing = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(64);
        let mut out = BytesMut::new();
        while outgoing.recv_many(&mut batch, 64).await > 0 {
            out.clear();
            for replies in batch.drain(..) {
                out.extend_from_slice(&replies);
            }
            if writer.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    let blocking = Arc::new(Semaphore::new(BLOCKING_PER_CONNECTION));
    // Small at first: an idle connection costs little, and a frame's
    // header makes room for the whole frame (see `frame::decode`).
    let mut buf = BytesMut::with_capacity(READ_BUFFER_START);
    let reason = 'serve: loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) => break "closed by the peer".to_owned(),
            Err(error) => break format!("read failed: {error}"),
            Ok(_) => {}
        }
        let mut inline_replies = BytesMut::new();
        loop {
            let (id, timeout_ms, verb, trace) = match frame::decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(Message::Request {
                    id,
                    timeout_ms,
                    verb,
                    trace,
                })) => (id, timeout_ms, verb, trace),
                Ok(Some(Message::Reply { .. })) => {
                    break 'serve "a reply on a request stream".into()
                }
                Err(error) => break 'serve format!("bad frame: {error}"),
            };
            if handler.runs_inline(&verb) {
                encode_reply(id, handler.handle(verb, trace), &mut inline_replies);
                continue;
            }
            let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
            let permit = match blocking.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    // Waiting for a permit: the replies done so far go
                    // first, so they are not held behind slow work.
                    if !inline_replies.is_empty()
                        && replies.send(inline_replies.split().freeze()).await.is_err()
                    {
                        break 'serve "the writer stopped".into();
                    }
                    let Ok(permit) = blocking.clone().acquire_owned().await else {
                        break 'serve "shutting down".into();
                    };
                    permit
                }
            };
            let (handler, replies) = (handler.clone(), replies.clone());
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                // Past its deadline the sender no longer waits for the work;
                // it still hears that the request was not done.
                let reply = if Instant::now() >= deadline {
                    (
                        Reply::Failed("the request's deadline passed before it ran".into()),
                        None,
                    )
                } else {
                    handler.handle(verb, trace)
                };
                let mut out = BytesMut::new();
                encode_reply(id, reply, &mut out);
                let _ = replies.blocking_send(out.freeze());
            });
        }
        if !inline_replies.is_empty() && replies.send(inline_replies.freeze()).await.is_err() {
            break "the writer stopped".into();
        }
    };
    tracing::debug!(%reason, "messaging connection from a peer closed");
    drop(replies);
    let _ = writing.await;
}
