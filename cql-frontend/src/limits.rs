//! Admission of client connections and of the bytes of their requests:
//! how many connections the node holds, in all and per source address, how
//! long a connection may take to start and log in, and how many request
//! bytes may be held in memory at once, in all and per source address
//! (Cassandra's `native_transport_max_concurrent_connections[_per_ip]` and
//! `native_transport_max_request_data_in_flight[_per_ip]`).
//!
//! The accept loop asks [`ClientLimits::admit`] for an [`Admission`] before
//! it serves a connection; the connection asks its admission for
//! [`RequestBytes`] before it buffers a frame's body, and holds them until
//! the request is answered. Past a byte budget a connection stops reading
//! (the client's writes wait in TCP) until earlier requests finish, so one
//! address sending huge frames slowly cannot hold the node's memory. Entries
//! for an address are removed when its last connection closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub connections_max: usize,
    pub connections_per_ip_max: usize,
    /// Request bytes held at once, all connections together.
    pub request_bytes_in_flight_max: usize,
    /// Request bytes held at once by the connections of one address.
    pub request_bytes_in_flight_per_ip_max: usize,
    /// How long a connection may take from accept to a completed STARTUP
    /// (and login, with an authenticator) before it is closed.
    pub handshake_timeout: Duration,
}

/// Largest frame body a connection may send before it has started and
/// logged in: STARTUP, OPTIONS and AUTH_RESPONSE are small, and a client
/// nobody knows yet must not make the node buffer megabytes.
pub const UNAUTHENTICATED_FRAME_BYTES_MAX: usize = 64 * 1024;

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            connections_max: 1024,
            connections_per_ip_max: 256,
            request_bytes_in_flight_max: 256 * 1024 * 1024,
            request_bytes_in_flight_per_ip_max: 64 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the node holds {max} client connections (native_transport_max_concurrent_connections)"
    )]
    Node { max: usize },
    #[error(
        "{ip} holds {max} client connections (native_transport_max_concurrent_connections_per_ip)"
    )]
    Address { ip: IpAddr, max: usize },
}

/// One source address's share.
#[derive(Debug)]
struct PerAddress {
    connections: usize,
    request_bytes: Arc<Semaphore>,
}

/// The node's admission state, shared by the accept loop and every
/// connection.
#[derive(Debug)]
pub struct ClientLimits {
    config: LimitsConfig,
    connections: Arc<Semaphore>,
    request_bytes: Arc<Semaphore>,
    addresses: Mutex<HashMap<IpAddr, PerAddress>>,
}

impl ClientLimits {
    pub fn new(config: LimitsConfig) -> Arc<ClientLimits> {
        Arc::new(ClientLimits {
            config,
            connections: Arc::new(Semaphore::new(config.connections_max)),
            request_bytes: Arc::new(Semaphore::new(config.request_bytes_in_flight_max)),
            addresses: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// Takes a connection slot for `ip`, or says which limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let slot = self
            .connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Node {
                max: self.config.connections_max,
            })?;
        let mut addresses = self.addresses.lock();
        let entry = addresses.entry(ip).or_insert_with(|| PerAddress {
            connections: 0,
            request_bytes: Arc::new(Semaphore::new(
                self.config.request_bytes_in_flight_per_ip_max,
            )),
        });
        if entry.connections >= self.config.connections_per_ip_max {
            return Err(Refusal::Address {
                ip,
                max: self.config.connections_per_ip_max,
            });
        }
        entry.connections += 1;
        Ok(Admission {
            limits: self.clone(),
            ip,
            address_bytes: entry.request_bytes.clone(),
            _slot: slot,
        })
    }

    /// The largest frame body any connection can be given bytes for.
    pub fn frame_bytes_max(&self) -> usize {
        self.config
            .request_bytes_in_flight_max
            .min(self.config.request_bytes_in_flight_per_ip_max)
    }
}

/// A served connection's place: released (and its address forgotten when
/// it was the last) when dropped.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<ClientLimits>,
    ip: IpAddr,
    address_bytes: Arc<Semaphore>,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    /// Waits until `bytes` of request data may be held by this connection
    /// (node-wide and for its address). `bytes` must not exceed
    /// [`ClientLimits::frame_bytes_max`]: the caller refuses larger frames.
    pub async fn request_bytes(&self, bytes: usize) -> RequestBytes {
        let count = u32::try_from(bytes).unwrap_or(u32::MAX);
        // The address's share first: a connection waiting for it holds
        // none of the node's, so one busy address cannot starve others.
        // Neither semaphore is ever closed, so acquiring only waits.
        let address = self.address_bytes.clone().acquire_many_owned(count).await;
        let node = self
            .limits
            .request_bytes
            .clone()
            .acquire_many_owned(count)
            .await;
        RequestBytes {
            _held: node.ok().zip(address.ok()),
        }
    }

    /// The same without waiting: `None` when either budget is short now.
    pub fn try_request_bytes(&self, bytes: usize) -> Option<RequestBytes> {
        let count = u32::try_from(bytes).ok()?;
        let address = self
            .address_bytes
            .clone()
            .try_acquire_many_owned(count)
            .ok()?;
        let node = self
            .limits
            .request_bytes
            .clone()
            .try_acquire_many_owned(count)
            .ok()?;
        Some(RequestBytes {
            _held: Some((node, address)),
        })
    }

    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut addresses = self.limits.addresses.lock();
        if let Some(entry) = addresses.get_mut(&self.ip) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                addresses.remove(&self.ip);
            }
        }
    }
}

/// Request bytes held for one frame until it is answered.
#[derive(Debug)]
pub struct RequestBytes {
    _held: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl RequestBytes {
    /// For a frame sent before login: at most
    /// [`UNAUTHENTICATED_FRAME_BYTES_MAX`] bytes on a connection that
    /// holds nothing else, so counting it is not needed, and not counting
    /// it lets a client start even when its address's budget is spent.
    pub fn handshake() -> RequestBytes {
        RequestBytes { _held: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Arc<ClientLimits> {
        ClientLimits::new(LimitsConfig {
            connections_max: 3,
            connections_per_ip_max: 2,
            request_bytes_in_flight_max: 100,
            request_bytes_in_flight_per_ip_max: 60,
            handshake_timeout: Duration::from_secs(1),
        })
    }

    #[test]
    fn connections_are_bounded_per_address_and_in_all() {
        let limits = limits();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = limits.admit(a).ok();
        let second = limits.admit(a).ok();
        assert!(first.is_some() && second.is_some());
        assert_eq!(
            limits.admit(a).err(),
            Some(Refusal::Address { ip: a, max: 2 })
        );
        let third = limits.admit(b).ok();
        assert!(third.is_some());
        assert_eq!(limits.admit(b).err(), Some(Refusal::Node { max: 3 }));
        drop(first);
        assert!(
            limits.admit(a).is_ok(),
            "a closed connection frees its slot"
        );
        drop((second, third));
        assert!(
            limits.addresses.lock().is_empty(),
            "addresses are forgotten"
        );
    }

    #[test]
    fn request_bytes_are_bounded_per_address_and_in_all() {
        let limits = limits();
        let a = limits.admit([127, 0, 0, 1].into()).ok();
        let b = limits.admit([127, 0, 0, 2].into()).ok();
        let (Some(a), Some(b)) = (a, b) else {
            panic!("admitted");
        };
        let held = a.try_request_bytes(50);
        assert!(held.is_some());
        assert!(a.try_request_bytes(20).is_none(), "past the address's 60");
        let other = b.try_request_bytes(50);
        assert!(other.is_some());
        assert!(b.try_request_bytes(1).is_none(), "past the node's 100");
        drop(held);
        assert!(
            a.try_request_bytes(50).is_some(),
            "answered requests free bytes"
        );
    }
}
