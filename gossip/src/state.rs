//! Endpoint state as gossip spreads it: a generation (set at each start of
//! the node), a heartbeat version, and application states (STATUS, TOKENS,
//! HOST_ID, DC, RACK, SCHEMA, LOAD, …), each with the version it was set at.
//! All versions of one node come from one counter, so "everything newer
//! than version v" is a well-defined delta.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A node, by its internode (gossip) address.
pub type Endpoint = SocketAddr;

/// Names of the application states Ilion nodes publish.
pub mod keys {
    pub const STATUS: &str = "STATUS";
    pub const TOKENS: &str = "TOKENS";
    pub const HOST_ID: &str = "HOST_ID";
    pub const DC: &str = "DC";
    pub const RACK: &str = "RACK";
    pub const RPC_ADDRESS: &str = "RPC_ADDRESS";
    pub const NATIVE_PORT: &str = "NATIVE_PORT";
    pub const SCHEMA: &str = "SCHEMA";
    pub const RELEASE_VERSION: &str = "RELEASE_VERSION";
    pub const LOAD: &str = "LOAD";
    pub const RPC_READY: &str = "RPC_READY";
}

/// One application state's value and the version it was set at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue {
    pub value: String,
    pub version: u64,
}

/// Everything gossip knows of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    pub generation: i32,
    /// Version of the latest heartbeat (it rises every gossip round).
    pub heartbeat: u64,
    pub states: BTreeMap<String, VersionedValue>,
}

impl EndpointState {
    pub fn new(generation: i32) -> EndpointState {
        EndpointState {
            generation,
            heartbeat: 0,
            states: BTreeMap::new(),
        }
    }

    /// The highest version anywhere in this state.
    pub fn max_version(&self) -> u64 {
        self.states
            .values()
            .map(|v| v.version)
            .max()
            .unwrap_or(0)
            .max(self.heartbeat)
    }

    /// The part of this state newer than `version`.
    pub fn newer_than(&self, version: u64) -> EndpointState {
        EndpointState {
            generation: self.generation,
            heartbeat: self.heartbeat,
            states: self
                .states
                .iter()
                .filter(|(_, v)| v.version > version)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.states.get(key).map(|v| v.value.as_str())
    }

    /// The endpoint's tokens (none until it has published them).
    pub fn tokens(&self) -> Vec<i64> {
        self.value(keys::TOKENS)
            .and_then(decode_tokens)
            .unwrap_or_default()
    }
}

/// Tokens as a TOKENS value (and as a node keeps them on disk): decimal,
/// comma-separated.
pub fn encode_tokens(tokens: &[i64]) -> String {
    let text: Vec<String> = tokens.iter().map(i64::to_string).collect();
    text.join(",")
}

/// A TOKENS value's tokens; None if an entry is not a token.
pub fn decode_tokens(text: &str) -> Option<Vec<i64>> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().ok())
        .collect()
}

/// What one node tells another it has of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub endpoint: Endpoint,
    pub generation: i32,
    pub max_version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let tokens = vec![i64::MIN, -5, 0, i64::MAX];
        assert_eq!(decode_tokens(&encode_tokens(&tokens)), Some(tokens));
        assert_eq!(decode_tokens("1,x"), None);
        assert_eq!(decode_tokens(""), Some(Vec::new()));
    }

    #[test]
    fn deltas_hold_only_newer_states() {
        let mut state = EndpointState::new(7);
        state.heartbeat = 9;
        for (key, version) in [("A", 3), ("B", 5), ("C", 8)] {
            state.states.insert(
                key.into(),
                VersionedValue {
                    value: key.to_lowercase(),
                    version,
                },
            );
        }
        assert_eq!(state.max_version(), 9);
        let delta = state.newer_than(4);
        assert_eq!(delta.states.keys().collect::<Vec<_>>(), vec!["B", "C"]);
        assert_eq!((delta.generation, delta.heartbeat), (7, 9));
    }
}
