//! Internode messaging for the replication verbs on the hot path (mutate,
//! read, scan, truncate): one long-lived TCP connection per peer, framed
//! requests and replies matched by id, many frames per write system call.
//!
//! - [`Messenger`] sends: [`Messenger::send`] queues a request on the
//!   peer's connection and returns at once (no task per message); the
//!   reply, a refusal or the deadline passing reaches the request's
//!   callback exactly once, on the connection's reader task. The queue per
//!   peer is bounded: a full one fails the request at once (`Overloaded`)
//!   rather than buffering without limit.
//! - [`inbound::serve`] answers: a connection's requests are handled in
//!   arrival order, mutations and reads inline when the commitlog does
//!   not make writers wait for an fsync, and the replies to everything read
//!   in one go leave in one write.
//! - [`frame`] is the wire format (checksummed frames; deadlines travel
//!   with requests).
//!
//! gRPC stays for gossip, schema pushes and the admin API, which are not on
//! the path of every client request.

pub mod frame;
pub mod inbound;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;

use frame::{Message, Reply, Verb};

/// How long a new connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed connection, requests to that peer fail at once for this
/// long instead of each trying to connect again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// Frames waiting to be written to one peer, at most.
const QUEUE_FRAMES_MAX: usize = 16 * 1024;
/// Frames gathered into one write, at most.
const FRAMES_PER_WRITE_MAX: usize = 512;
/// How often a connection looks for requests whose deadline passed.
const SWEEP_EVERY: Duration = Duration::from_millis(10);

/// Why a request to a peer got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("{peer} did not answer within {timeout:?}")]
    Timeout { peer: SocketAddr, timeout: Duration },
    #[error("{peer} answered {status}")]
    Refused { peer: SocketAddr, status: String },
    #[error("{peer} sent a bad answer: {reason}")]
    BadAnswer { peer: SocketAddr, reason: String },
    #[error("{peer} is unreachable: {reason}")]
    Unreachable { peer: SocketAddr, reason: String },
    #[error("{peer} has {QUEUE_FRAMES_MAX} messages waiting to be sent; this one is dropped")]
    Overloaded { peer: SocketAddr },
}

/// What becomes of a request: called once, with the reply or why none came.
pub type OnReply = Box<dyn FnOnce(Result<Reply, PeerError>) + Send>;

struct Pending {
    deadline: Instant,
    sent_at: Instant,
    on_reply: OnReply,
}

/// One peer's connection: the queue its writer drains and the requests
/// waiting for replies.
struct Connection {
    peer: SocketAddr,
    queue: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<u64, Pending>>,
    closed: AtomicBool,
    /// Set when the connection failed: no new one before this instant.
    retry_at: Mutex<Option<Instant>>,
}

impl Connection {
    /// Fails every waiting request (the connection is gone).
    fn fail_all(&self, reason: &str) {
        self.closed.store(true, Ordering::SeqCst);
        let waiting: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
        for pending in waiting {
            (pending.on_reply)(Err(PeerError::Unreachable {
                peer: self.peer,
                reason: reason.to_owned(),
            }));
        }
    }

    /// Fails the requests whose deadline has passed; returns when the
    /// earliest of them was sent.
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let expired: Vec<Pending> = {
            let mut pending = self.pending.lock();
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        let earliest = expired.iter().map(|p| p.sent_at).min();
        for pending in expired {
            (pending.on_reply)(Err(PeerError::Timeout {
                peer: self.peer,
                timeout: pending.deadline.saturating_duration_since(pending.sent_at),
            }));
        }
        earliest
    }

    fn complete(&self, id: u64, reply: Reply) {
        let pending = self.pending.lock().remove(&id);
        if let Some(pending) = pending {
            let result = match reply {
                Reply::Failed(status) => Err(PeerError::Refused {
                    peer: self.peer,
                    status,
                }),
                other => Ok(other),
            };
            (pending.on_reply)(result);
        }
    }
}

/// Sends requests to other nodes and routes their replies.
pub struct Messenger {
    /// Connections leave from this node's listen address, so a firewall
    /// rule between two nodes' addresses cuts them.
    local: IpAddr,
    runtime: tokio::runtime::Handle,
    connections: Mutex<HashMap<SocketAddr, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("local", &self.local)
            .field("peers", &self.connections.lock().len())
            .finish()
    }
}

impl Messenger {
    pub fn new(local: IpAddr, runtime: tokio::runtime::Handle) -> Messenger {
        Messenger {
            local,
            runtime,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// The peer's open connection, or a new one (None while a failed one's
    /// backoff lasts).
    fn connection(&self, peer: SocketAddr) -> Result<Arc<Connection>, PeerError> {
        let mut connections = self.connections.lock();
        if let Some(existing) = connections.get(&peer) {
            if !existing.closed.load(Ordering::SeqCst) {
                return Ok(existing.clone());
            }
            if let Some(at) = *existing.retry_at.lock() {
                if Instant::now() < at {
                    return Err(PeerError::Unreachable {
                        peer,
                        reason: "the last connection attempt failed moments ago".into(),
                    });
                }
            }
        }
        let (queue, frames) = mpsc::channel(QUEUE_FRAMES_MAX);
        let connection = Arc::new(Connection {
            peer,
            queue,
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            retry_at: Mutex::new(None),
        });
        connections.insert(peer, connection.clone());
        self.runtime
            .spawn(run_connection(connection.clone(), self.local, frames));
        Ok(connection)
    }

    /// Sends `verb` to `peer`; `on_reply` gets the answer, or the reason
    /// none came by `deadline`. Never blocks.
    pub fn send(&self, peer: SocketAddr, verb: Verb, deadline: Instant, on_reply: OnReply) {
        let connection = match self.connection(peer) {
            Ok(connection) => connection,
            Err(error) => return on_reply(Err(error)),
        };
        let now = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let timeout_ms =
            u32::try_from(deadline.saturating_duration_since(now).as_millis()).unwrap_or(u32::MAX);
        let mut encoded = BytesMut::new();
        frame::encode(
            &Message::Request {
                id,
                timeout_ms,
                verb,
                trace: crate::trace::current_id(),
            },
            &mut encoded,
        );
        if encoded.len() > frame::FRAME_BYTES_MAX {
            return on_reply(Err(PeerError::Refused {
                peer,
                status: format!(
                    "the request is {} bytes, over the {} byte frame limit",
                    encoded.len(),
                    frame::FRAME_BYTES_MAX
                ),
            }));
        }
        connection.pending.lock().insert(
            id,
            Pending {
                deadline,
                sent_at: now,
                on_reply,
            },
        );
        let refused = match connection.queue.try_send(encoded.freeze()) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) => Some(PeerError::Overloaded { peer }),
            Err(mpsc::error::TrySendError::Closed(_)) => Some(PeerError::Unreachable {
                peer,
                reason: "the connection closed".into(),
            }),
        };
        // The connection may have closed (and failed everything waiting)
        // between our lookup and our insert: then fail this one ourselves.
        let refused = refused.or_else(|| {
            connection
                .closed
                .load(Ordering::SeqCst)
                .then(|| PeerError::Unreachable {
                    peer,
                    reason: "the connection closed".into(),
                })
        });
        if let Some(error) = refused {
            let pending = connection.pending.lock().remove(&id);
            if let Some(pending) = pending {
                (pending.on_reply)(Err(error));
            }
        }
    }

    /// Sends and waits for the answer (for callers on async tasks).
    pub async fn call(
        &self,
        peer: SocketAddr,
        verb: Verb,
        timeout: Duration,
    ) -> Result<Reply, PeerError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(
            peer,
            verb,
            Instant::now() + timeout,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.await.unwrap_or(Err(PeerError::Unreachable {
            peer,
            reason: "the request was dropped".into(),
        }))
    }
}

/// Connects, then writes queued frames and reads replies until either side
/// fails; every request still waiting then fails.
async fn run_connection(
    connection: Arc<Connection>,
    local: IpAddr,
    mut frames: mpsc::Receiver<Bytes>,
) {
    let peer = connection.peer;
    let stream = match connect(peer, local).await {
        Ok(stream) => stream,
        Err(reason) => {
            tracing::debug!(%peer, %reason, "cannot connect for messaging");
            *connection.retry_at.lock() = Some(Instant::now() + RECONNECT_BACKOFF);
            connection.fail_all(&reason);
            frames.close();
            return;
        }
    };
    let established = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let writing = async {
        let mut batch = Vec::with_capacity(FRAMES_PER_WRITE_MAX);
        let mut out = BytesMut::new();
        loop {
            if frames.recv_many(&mut batch, FRAMES_PER_WRITE_MAX).await == 0 {
                return "this node stopped sending".to_owned();
            }
            out.clear();
            for frame in batch.drain(..) {
                out.extend_from_slice(&frame);
            }
            if let Err(error) = writer.write_all(&out).await {
                return format!("write failed: {error}");
            }
        }
    };
    let reading = async {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Requests sent while connecting are not held against the connection.
        let mut last_read = established;
        loop {
            tokio::select! {
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) => return "the peer closed the connection".to_owned(),
                    Err(error) => return format!("read failed: {error}"),
                    Ok(_) => {
                        last_read = Instant::now();
                        loop {
                            match frame::decode(&mut buf) {
                                Ok(None) => break,
                                Ok(Some(Message::Reply { id, reply, steps })) => {
                                    // The steps first: the answer may end the trace.
                                    if let Some(steps) = steps {
                                        crate::trace::deliver(peer.ip(), steps);
                                    }
                                    connection.complete(id, reply)
                                }
                                Ok(Some(Message::Request { .. })) => {
                                    return "the peer sent a request on a reply stream".to_owned()
                                }
                                Err(error) => return format!("bad frame: {error}"),
                            }
                        }
                    }
                },
                _ = sweep.tick() => {
                    // A request timed out and not a byte came back since it
                    // was sent: the connection is likely cut (a partition
                    // leaves TCP retrying for minutes). A new one is cheap.
                    let expired_since = connection.sweep(Instant::now());
                    if expired_since.is_some_and(|sent| last_read < sent) {
                        return "no reply within a request's deadline".to_owned();
                    }
                }
            }
        }
    };
    let reason = tokio::select! {
        reason = writing => reason,
        reason = reading => reason,
    };
    tracing::debug!(%peer, %reason, "messaging connection closed");
    connection.fail_all(&reason);
}

async fn connect(peer: SocketAddr, local: IpAddr) -> Result<tokio::net::TcpStream, String> {
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    if local.is_ipv4() == peer.is_ipv4() && !local.is_unspecified() {
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(|e| format!("cannot bind {local}: {e}"))?;
    }
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut hello = Vec::with_capacity(5);
    hello.extend_from_slice(frame::MAGIC);
    hello.push(frame::VERSION);
    stream
        .write_all(&hello)
        .await
        .map_err(|e| format!("handshake failed: {e}"))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::frame::{Reply, Verb};
    use super::inbound::{serve, ReplicaHandler};
    use super::*;
    use storage_lsm::model::{Cell, Mutation, PartitionKey, PartitionUpdate, Row, TableId};
    use storage_lsm::{Engine, EngineConfig, SliceQuery, TableOptions};
    use tokio::io::AsyncReadExt;

    const TABLE: TableId = TableId(42);

    /// Tests fail with the error instead of panicking on it.
    type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn engine(dir: &std::path::Path) -> TestResult<Arc<Engine>> {
        let engine = Engine::open(EngineConfig::new(dir.join("data"), dir.join("commitlog")))?;
        engine.create_table(TABLE, TableOptions::default())?;
        Ok(Arc::new(engine))
    }

    /// A replica listening on 127.0.19.1: reads the hello, then serves.
    async fn replica(engine: Arc<Engine>) -> TestResult<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.19.1:0").await?;
        let address = listener.local_addr()?;
        let handler = Arc::new(ReplicaHandler::new(engine, true));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let handler = handler.clone();
                tokio::spawn(async move {
                    let mut hello = [0u8; 5];
                    if stream.read_exact(&mut hello).await.is_ok() && &hello[..4] == frame::MAGIC {
                        serve(stream, handler).await;
                    }
                });
            }
        });
        Ok(address)
    }

    fn mutation(n: u8) -> Mutation {
        Mutation {
            table: TABLE,
            key: PartitionKey::new(i64::from(n), vec![n]),
            update: PartitionUpdate {
                rows: vec![Row::new(vec![n], vec![Cell::live(1, 1, vec![n])])],
                ..PartitionUpdate::default()
            },
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thousands_of_requests_share_one_connection_and_each_gets_its_reply() -> TestResult {
        let dir = tempfile::tempdir()?;
        let engine = engine(dir.path())?;
        let address = replica(engine.clone()).await?;
        let messenger = Arc::new(Messenger::new(
            "127.0.19.2".parse()?,
            tokio::runtime::Handle::current(),
        ));
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..=255u8 {
            let messenger = messenger.clone();
            calls.spawn(async move {
                let bytes = Bytes::from(crate::internode::encode_mutation(&mutation(n)));
                messenger
                    .call(address, Verb::Mutate(bytes), Duration::from_secs(5))
                    .await
            });
        }
        while let Some(reply) = calls.join_next().await {
            assert_eq!(reply??, Reply::Done);
        }
        assert_eq!(
            messenger.connections.lock().len(),
            1,
            "one connection per peer"
        );
        for n in [0u8, 77, 255] {
            let key = PartitionKey::new(i64::from(n), vec![n]);
            let verb = crate::internode::read_verb(TABLE, &key, &SliceQuery::all(), false);
            let reply = messenger
                .call(address, verb, Duration::from_secs(5))
                .await?;
            match crate::internode::read_answer(address, reply, false)? {
                crate::internode::ReadAnswer::Data(Some(update)) => {
                    assert_eq!(update.rows.len(), 1, "the row written through messaging");
                }
                other => panic!("no data for key {n}: {other:?}"),
            }
        }
        // An unknown table is the replica's error, carried back.
        let unknown = Verb::Truncate(TableId(7));
        match messenger
            .call(address, unknown, Duration::from_secs(5))
            .await
        {
            Err(PeerError::Refused { status, .. }) => {
                assert!(status.to_lowercase().contains("table"), "{status}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_peer_times_out_and_a_closed_port_is_unreachable() -> TestResult {
        // Accepts and reads, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.19.3:0").await?;
        let silent = listener.local_addr()?;
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut sink = vec![0u8; 4096];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        let messenger = Messenger::new("127.0.19.2".parse()?, tokio::runtime::Handle::current());
        let started = Instant::now();
        let result = messenger
            .call(silent, Verb::Truncate(TABLE), Duration::from_millis(100))
            .await;
        assert!(
            matches!(result, Err(PeerError::Timeout { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // A request sent on the established connection gets nothing back
        // within its deadline: the connection is dropped, and the next
        // request opens a new one rather than queueing behind a dead one.
        let _ = messenger
            .call(silent, Verb::Truncate(TABLE), Duration::from_millis(50))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = messenger
            .call(silent, Verb::Truncate(TABLE), Duration::from_millis(50))
            .await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "reconnected once");

        let closed = {
            let probe = std::net::TcpListener::bind("127.0.19.4:0")?;
            probe.local_addr()?
        };
        let result = messenger
            .call(closed, Verb::Truncate(TABLE), Duration::from_secs(2))
            .await;
        assert!(
            matches!(result, Err(PeerError::Unreachable { .. })),
            "{result:?}"
        );
        // Within the backoff, the next request fails at once.
        let again = messenger
            .call(closed, Verb::Truncate(TABLE), Duration::from_secs(2))
            .await;
        assert!(
            matches!(again, Err(PeerError::Unreachable { .. })),
            "{again:?}"
        );
        Ok(())
    }
}
