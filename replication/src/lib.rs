//! Token ring, replication strategies and the coordinator of an Ilion node.
//!
//! Layout:
//! - [`murmur3`]: Cassandra's Murmur3Partitioner token function, bit for bit;
//! - [`consistency`]: consistency levels and their replica arithmetic;
//! - [`ring`]: how much of the token ring each endpoint owns;
//! - [`coordinator`]: the path of every client read and write (one-node
//!   ring today).
//!
//! Later (issue 6): the ring of vnode tokens, SimpleStrategy and
//! NetworkTopologyStrategy, the snitch, hints, read repair, range scans
//! across nodes.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod consistency;
pub mod coordinator;
pub mod murmur3;
pub mod ring;

pub use consistency::ConsistencyLevel;
pub use coordinator::{
    Coordinator, CoordinatorError, Placement, ReadTerms, RequestTimeouts, WriteType,
};
