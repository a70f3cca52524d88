//! This node's identity in the ring: a host id and its tokens, made once and
//! kept in the data directory (`host_id`, `tokens`).
//!
//! Tokens are chosen at the node's first start. A node that knows other
//! nodes (through its seeds) waits for gossip to show their tokens and takes
//! its share from the endpoints that own most (`replication::ring::
//! allocate_tokens`); a node alone spreads its tokens evenly.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use gossip::{keys, GossipHandle};

/// Longest a new node waits for gossip to show the other nodes' tokens.
const RING_WAIT: Duration = Duration::from_secs(10);

/// The host id, and whether it was just created (a new node).
pub fn load_or_create_host_id(data_dir: &Path) -> anyhow::Result<(u128, bool)> {
    let path = data_dir.join("host_id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
        let host_id = u128::from_str_radix(&hex, 16)
            .with_context(|| format!("{} does not hold a host id", path.display()))?;
        return Ok((host_id, false));
    }
    let random: u128 = rand::random();
    let host_id = (random & !(0xf000u128 << 64) | (0x4000u128 << 64)) & !(0xc000u128 << 48)
        | (0x8000u128 << 48);
    std::fs::write(&path, format!("{host_id:032x}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((host_id, true))
}

/// The node's tokens: the saved ones, else new ones (saved before use).
pub async fn tokens(
    data_dir: &Path,
    gossip: &GossipHandle,
    num_tokens: u32,
    host_id: u128,
    new_node: bool,
) -> anyhow::Result<Vec<i64>> {
    let path = data_dir.join("tokens");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return gossip::decode_tokens(&text)
            .with_context(|| format!("{} does not hold a token list", path.display()));
    }
    let tokens = if new_node {
        let others = ring_of_others(gossip).await;
        if !others.is_empty() {
            tracing::info!(
                endpoints = others.len(),
                "choosing tokens against the ring gossip shows"
            );
        }
        replication::ring::allocate_tokens(&others, num_tokens as usize, host_id as i64)
    } else {
        // A node from before tokens were saved keeps the ones it had.
        legacy_tokens(host_id, num_tokens)
    };
    std::fs::write(&path, gossip::encode_tokens(&tokens) + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(tokens)
}

/// The tokens of the other endpoints, once gossip has shown every known one
/// with tokens (or after [`RING_WAIT`]). Empty when this node is alone.
async fn ring_of_others(gossip: &GossipHandle) -> Vec<Vec<i64>> {
    let started = Instant::now();
    loop {
        let others: Vec<_> = gossip
            .endpoints()
            .into_iter()
            .filter(|e| !e.is_local)
            .collect();
        // Every live endpoint shows its tokens (one still joining will soon:
        // choosing without its tokens could pick the very same ones).
        let complete = !others.is_empty()
            && others
                .iter()
                .all(|e| !e.up || e.state.value(keys::TOKENS).is_some());
        let alone = others.is_empty() && !gossip.has_other_seeds();
        if complete || alone || started.elapsed() > RING_WAIT {
            return others
                .iter()
                .map(|e| e.state.tokens())
                .filter(|tokens| !tokens.is_empty())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tokens spread evenly, offset by the host id (how nodes chose them before
/// tokens were saved).
fn legacy_tokens(host_id: u128, num_tokens: u32) -> Vec<i64> {
    let step = u64::MAX / u64::from(num_tokens.max(1));
    let offset = (host_id as u64) % step.max(1);
    (0..u64::from(num_tokens))
        .map(|i| (i.wrapping_mul(step).wrapping_add(offset) as i64).wrapping_add(i64::MIN))
        .collect()
}
