//! Connections a gRPC server is handed while each holds a permit of a
//! bounded set, so the server's open connections are capped: HTTP/2
//! connections that say nothing stay open for as long as their peer
//! likes (2,000 idle ones held 66 MiB of a node), so past the cap a new
//! connection is closed at once.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A connection and its place among the open ones (given back on drop).
pub struct Permitted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

/// The open connections of one server, at most `max`.
#[derive(Clone)]
pub struct ConnectionLimit {
    name: &'static str,
    max: usize,
    permits: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
}

impl ConnectionLimit {
    pub fn new(name: &'static str, max: usize) -> ConnectionLimit {
        ConnectionLimit {
            name,
            max,
            permits: Arc::new(Semaphore::new(max)),
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The connection with a permit, or `None` (it is then dropped, so
    /// closed) when `max` are open; refusals are logged on the first and
    /// every thousandth, so a flood cannot flood the log.
    pub fn admit(&self, stream: TcpStream) -> Option<Permitted> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Permitted {
                stream,
                _permit: permit,
            }),
            Err(_) => {
                let count = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if count == 1 || count.is_multiple_of(1000) {
                    tracing::warn!(
                        service = self.name,
                        limit = self.max,
                        refused = count,
                        "gRPC connection refused: too many open"
                    );
                }
                None
            }
        }
    }
}

impl Connected for Permitted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Permitted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Permitted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
