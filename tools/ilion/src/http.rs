//! The node's HTTP port (9180 by default): Prometheus metrics at
//! `/metrics`, and the probes orchestrators use: `/probes/live` (the
//! process answers) and `/probes/ready` (the node serves CQL and sees itself
//! UP), each 200 or 503.
//!
//! Only `GET` (and `HEAD`) of those paths is served, one request per
//! connection; a request head is read with a size and a short time limit
//! ([`REQUEST_HEAD_TIME_MAX`]), and up to [`CONNECTIONS_MAX`] connections
//! are served at once, so idle or hostile clients cannot starve a
//! Kubernetes probe: a slot frees within a second at worst.

use gossip::GossipHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cql_frontend::node::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Longest request head accepted.
const REQUEST_HEAD_MAX: usize = 8 * 1024;
/// Time a client has to send its request head: a probe or a scraper sends
/// it at once, an idle connection is closed after this.
const REQUEST_HEAD_TIME_MAX: Duration = Duration::from_secs(1);
/// Time a client has to read the answer.
const RESPONSE_TIME_MAX: Duration = Duration::from_secs(10);
/// Connections served at once (each holds at most a request head); more
/// wait in the kernel's backlog until a slot frees.
const CONNECTIONS_MAX: usize = 1024;

/// What the readiness probe reports.
pub struct Readiness {
    /// The CQL port accepts clients.
    pub serving_cql: AtomicBool,
    /// The node is shutting down (drained): no longer ready.
    pub draining: AtomicBool,
    gossip: GossipHandle,
}

impl Readiness {
    pub fn new(gossip: GossipHandle) -> Readiness {
        Readiness {
            serving_cql: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            gossip,
        }
    }

    /// Serving CQL, not draining, and UP in gossip (gossiping at all: a
    /// node always sees itself UP while it gossips).
    fn ready(&self) -> bool {
        self.serving_cql.load(Ordering::Acquire)
            && !self.draining.load(Ordering::Acquire)
            && self.gossip.is_running()
    }

    /// The gossip metrics, appended to the node's own.
    fn render_gossip(&self) -> String {
        let endpoints = self.gossip.endpoints();
        let live = endpoints.iter().filter(|e| e.up).count();
        format!(
            "# HELP ilion_gossip_live_endpoints Endpoints this node sees UP in gossip (itself included).\n\
             # TYPE ilion_gossip_live_endpoints gauge\n\
             ilion_gossip_live_endpoints {live}\n\
             # HELP ilion_gossip_unreachable_endpoints Endpoints this node sees DOWN in gossip.\n\
             # TYPE ilion_gossip_unreachable_endpoints gauge\n\
             ilion_gossip_unreachable_endpoints {}\n",
            endpoints.len() - live
        )
    }
}

/// Serves HTTP until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let (node, readiness) = (node.clone(), readiness.clone());
                tokio::spawn(async move {
                    answer(stream, &node, &readiness).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn answer(mut stream: TcpStream, node: &Arc<Node>, readiness: &Readiness) {
    let Ok(Some(head)) = tokio::time::timeout(REQUEST_HEAD_TIME_MAX, read_head(&mut stream)).await
    else {
        return;
    };
    let _ = tokio::time::timeout(
        RESPONSE_TIME_MAX,
        respond_to(stream, &head, node, readiness),
    )
    .await;
}

/// Reads a request head; `None` when the client leaves or sends too much
/// (answered 431).
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
        if head.len() > REQUEST_HEAD_MAX {
            let _ = respond(stream, 431, "text/plain", "request head too large\n", true).await;
            return None;
        }
    }
    Some(head)
}

async fn respond_to(mut stream: TcpStream, head: &[u8], node: &Arc<Node>, readiness: &Readiness) {
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let with_body = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        let _ = respond(&mut stream, 405, "text/plain", "only GET is served\n", true).await;
        return;
    }
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match path {
        "/metrics" => {
            let node = node.clone();
            match tokio::task::spawn_blocking(move || cql_frontend::metrics::render(&node)).await {
                Ok(text) => (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text + &readiness.render_gossip(),
                ),
                Err(_) => (500, "text/plain", "metrics could not be gathered\n".into()),
            }
        }
        "/probes/live" => (200, "text/plain", "live\n".into()),
        "/probes/ready" if readiness.ready() => (200, "text/plain", "ready\n".into()),
        "/probes/ready" => (
            503,
            "text/plain",
            "not ready: the node is starting, or draining\n".into(),
        ),
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /probes/live or /probes/ready\n".into(),
        ),
    };
    let _ = respond(&mut stream, status, content_type, &body, with_body).await;
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if with_body {
        response.push_str(body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
