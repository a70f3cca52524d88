//! Cluster membership for Ilion.
//!
//! - [`state`]: endpoint state (generation, heartbeat, versioned
//!   application states) and digests;
//! - [`detector`]: phi-accrual failure detection;
//! - [`core`]: the protocol as a plain state machine driven by `tick(now)`
//!   and the SYN/ACK/ACK2 messages (tested with an in-memory simulation);
//! - [`service`]: the tonic service on the internode port and the task
//!   that gossips once a second, every call under a timeout.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod core;
pub mod detector;
pub mod service;
pub mod state;

pub use crate::core::{EndpointView, Event, GossipConfig, GossipError, Gossiper, SHUTDOWN};
pub use service::{GossipHandle, ROUND};
pub use state::{decode_tokens, encode_tokens, keys, Endpoint, EndpointState};
