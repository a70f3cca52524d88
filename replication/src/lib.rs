//! Token ring, replication strategies and the coordinator of an Ilion node.
//!
//! Layout:
//! - [`murmur3`]: Cassandra's Murmur3Partitioner token function, bit for bit.
//!
//! Later (issue 6): the ring of vnode tokens, SimpleStrategy and
//! NetworkTopologyStrategy, the snitch, and the coordinator (consistency
//! levels, hints, read repair, range scans).

pub mod murmur3;
