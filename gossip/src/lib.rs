//! Cluster membership for Ilion.
//!
//! Owns endpoint state (generation, versioned application states), the
//! SYN/ACK/ACK2 exchange with seeds and live peers, and phi-accrual failure
//! detection. The protocol core is a plain struct driven by `tick(now)` and
//! incoming messages; only a thin service module touches the network.
//!
//! Status: not built yet (issue 6). Nothing here is used by a running node.
