//! Open connections of a server, capped in all and per source address:
//! idle connections would otherwise stay open for as long as their peer
//! likes (2,000 idle HTTP/2 connections held 66 MiB of a node), and a cap
//! in all alone would let one host hold every place, locking real peers
//! out. Past either cap a new connection is closed at once; refusals are
//! logged on the first and every thousandth, so a flood cannot flood the
//! log. [`Permitted`] is a connection with its place, for gRPC servers.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The open connections of one server.
#[derive(Clone)]
pub struct ConnectionLimit {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    max: usize,
    per_source_max: usize,
    open: Mutex<Open>,
    refused: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// A connection's place among the open ones, given back on drop.
pub struct Place {
    inner: Arc<Inner>,
    source: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.inner.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_source.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

impl ConnectionLimit {
    /// At most `max` open connections, `per_source_max` from one address.
    pub fn new(name: &'static str, max: usize, per_source_max: usize) -> ConnectionLimit {
        ConnectionLimit {
            inner: Arc::new(Inner {
                name,
                max,
                per_source_max,
                open: Mutex::new(Open::default()),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// A place for a connection from `source`, or `None` when either cap
    /// is reached (the caller then closes the connection).
    pub fn admit_from(&self, source: IpAddr) -> Option<Place> {
        let mut open = self.inner.open.lock();
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        if open.total >= self.inner.max || from_source >= self.inner.per_source_max {
            drop(open);
            let count = self.inner.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if count == 1 || count.is_multiple_of(1000) {
                tracing::warn!(
                    service = self.inner.name,
                    limit = self.inner.max,
                    per_source_limit = self.inner.per_source_max,
                    %source,
                    refused = count,
                    "connection refused: too many open"
                );
            }
            return None;
        }
        open.total += 1;
        *open.by_source.entry(source).or_insert(0) += 1;
        Some(Place {
            inner: self.inner.clone(),
            source,
        })
    }

    /// The stream with its place, or `None` (then dropped, so closed).
    pub fn admit(&self, stream: TcpStream) -> Option<Permitted> {
        let source = stream.peer_addr().ok()?.ip();
        let place = self.admit_from(source)?;
        Some(Permitted {
            stream,
            _place: place,
        })
    }
}

/// A connection and its place among the open ones.
pub struct Permitted {
    stream: TcpStream,
    _place: Place,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_in_all_and_per_source_and_given_back() {
        let limit = ConnectionLimit::new("test", 5, 2);
        let (a, b, c) = (
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([127, 0, 0, 2]),
            IpAddr::from([127, 0, 0, 3]),
        );
        let first = limit.admit_from(a);
        let second = limit.admit_from(a);
        assert!(first.is_some() && second.is_some());
        assert!(limit.admit_from(a).is_none(), "two from one source at most");
        let others: Vec<_> = [b, b, c].into_iter().map(|s| limit.admit_from(s)).collect();
        assert!(others.iter().all(Option::is_some));
        assert!(limit.admit_from(c).is_none(), "five in all at most");
        drop(first);
        let again = limit.admit_from(a);
        assert!(again.is_some(), "a place given back is taken again");
        drop(others);
        assert_eq!(limit.inner.open.lock().total, 2);
        assert_eq!(
            limit.inner.open.lock().by_source.len(),
            1,
            "empty sources forgotten"
        );
        drop((second, again));
        assert_eq!(limit.inner.open.lock().total, 0);
    }
}
