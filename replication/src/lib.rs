//! Token ring, replication strategies and the coordinator of an Ilion node.
//!
//! Layout:
//! - [`murmur3`]: Cassandra's Murmur3Partitioner token function, bit for bit;
//! - [`consistency`]: consistency levels and their replica arithmetic;
//! - [`ring`]: how much of the token ring each endpoint owns, token choice;
//! - [`topology`]: the ring's endpoints, tokens and liveness, from gossip;
//! - [`strategy`]: SimpleStrategy and NetworkTopologyStrategy placement;
//! - [`coordinator`]: the path of every client read and write;
//! - [`hints`]: hinted handoff;
//! - [`messaging`]: framed internode messages for the hot verbs;
//! - [`internode`] and [`verbs`]: the replication verbs between nodes.
//!
//! Later: streaming for bootstrap and decommission, anti-entropy repair,
//! lightweight transactions.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod consistency;
pub mod coordinator;
pub mod hints;
pub mod internode;
pub mod messaging;
pub mod murmur3;
pub mod ring;
pub mod strategy;
pub mod topology;
pub mod trace;
pub mod verbs;

pub use consistency::ConsistencyLevel;
pub use coordinator::{
    Coordinator, CoordinatorError, PendingWrite, ReadTerms, Remote, RequestTimeouts, WriteType,
};
pub use strategy::Placement;
