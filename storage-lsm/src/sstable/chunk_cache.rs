//! Decompressed data chunks, shared by every SSTable of an engine and
//! bounded in bytes (Cassandra's chunk cache).
//!
//! A chunk enters only after its checksum matched and it decompressed, so a
//! hit needs neither again. Keys are a process-wide SSTable id (never reused,
//! so a deleted SSTable's chunks cannot be mistaken for a new one's; they
//! age out) and the chunk's index. The eviction policy (quick_cache's
//! CLOCK-Pro) keeps chunks read more than once over chunks a scan reads
//! once.
//!
//! A thread that streams whole SSTables (the compactor) reads each chunk
//! many times in a row and then never again; it calls
//! [`stream_on_this_thread`], after which the chunks it decompresses stay
//! out of the shared cache, held instead in a per-thread memo of the last
//! chunk of each SSTable it reads (RocksDB's `fill_cache = false`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::Weighter;

/// The smallest cache an engine gets, whatever it is configured to: a
/// sequential read must find the chunk it is in the middle of.
pub const CHUNK_CACHE_BYTES_MIN: usize = 1024 * 1024;

/// A decompressed chunk (shared: a clone or a slice counts a reference).
pub type Chunk = bytes::Bytes;

static NEXT_SSTABLE_ID: AtomicU64 = AtomicU64::new(1);

/// SSTables whose last chunk a streaming thread keeps (more than a
/// compaction reads at once).
const STREAM_MEMO_SSTABLES: usize = 64;

thread_local! {
    /// On a streaming thread: the last chunk read of each SSTable, as
    /// `(sstable, chunk index, bytes)`; `None` on other threads.
    static STREAM_MEMO: RefCell<Option<Vec<(u64, u32, Chunk)>>> = const { RefCell::new(None) };
}

/// Marks the calling thread as one that streams whole SSTables: from now
/// on the chunks it reads do not enter the shared cache.
pub fn stream_on_this_thread() {
    STREAM_MEMO.with(|memo| *memo.borrow_mut() = Some(Vec::new()));
}

/// The calling streaming thread's memo of `sstable`'s chunk `chunk`.
fn memo_get(sstable: u64, chunk: u32) -> Option<Chunk> {
    STREAM_MEMO.with(|memo| {
        memo.borrow().as_ref().and_then(|held| {
            held.iter()
                .find(|(s, c, _)| *s == sstable && *c == chunk)
                .map(|(_, _, bytes)| bytes.clone())
        })
    })
}

/// Keeps `bytes` as `sstable`'s last chunk if the calling thread streams;
/// returns whether it does.
fn memo_keep(sstable: u64, chunk: u32, bytes: &Chunk) -> bool {
    STREAM_MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        let Some(held) = memo.as_mut() else {
            return false;
        };
        match held.iter_mut().find(|(s, _, _)| *s == sstable) {
            Some(slot) => *slot = (sstable, chunk, bytes.clone()),
            None => {
                if held.len() >= STREAM_MEMO_SSTABLES {
                    held.remove(0);
                }
                held.push((sstable, chunk, bytes.clone()));
            }
        }
        true
    })
}

/// A fresh id for an SSTable being opened.
pub fn next_sstable_id() -> u64 {
    NEXT_SSTABLE_ID.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy)]
struct ChunkBytes;

impl Weighter<(u64, u32), Chunk> for ChunkBytes {
    fn weight(&self, _key: &(u64, u32), chunk: &Chunk) -> u64 {
        chunk.len().max(1) as u64
    }
}

/// The engine's chunk cache.
pub struct ChunkCache {
    /// Keys are our own ids, so a fast hash is safe (no one can choose them).
    chunks: Cache<(u64, u32), Chunk, ChunkBytes, foldhash::fast::RandomState>,
    capacity_bytes: usize,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("held_bytes", &self.chunks.weight())
            .finish()
    }
}

impl ChunkCache {
    /// A cache of at most `capacity_bytes` (at least
    /// [`CHUNK_CACHE_BYTES_MIN`]) of decompressed chunks.
    pub fn new(capacity_bytes: usize) -> Arc<ChunkCache> {
        let capacity_bytes = capacity_bytes.max(CHUNK_CACHE_BYTES_MIN);
        let typical_chunk = crate::sstable::format::CHUNK_SIZE_BYTES;
        Arc::new(ChunkCache {
            chunks: Cache::with(
                capacity_bytes / typical_chunk,
                capacity_bytes as u64,
                ChunkBytes,
                foldhash::fast::RandomState::default(),
                DefaultLifecycle::default(),
            ),
            capacity_bytes,
        })
    }

    pub fn get(&self, sstable: u64, chunk: u32) -> Option<Chunk> {
        if let Some(held) = memo_get(sstable, chunk) {
            return Some(held);
        }
        let found = self.chunks.get(&(sstable, chunk));
        if let Some(bytes) = &found {
            memo_keep(sstable, chunk, bytes);
        }
        found
    }

    /// Caches a chunk just decompressed (on a streaming thread: keeps it in
    /// the thread's memo instead).
    pub fn insert(&self, sstable: u64, chunk: u32, bytes: Chunk) {
        if memo_keep(sstable, chunk, &bytes) {
            return;
        }
        self.chunks.insert((sstable, chunk), bytes);
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.chunks.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_keys_by_sstable_and_chunk() {
        let cache = ChunkCache::new(0);
        let a = next_sstable_id();
        let b = next_sstable_id();
        assert_ne!(a, b);
        cache.insert(a, 0, Chunk::from(vec![1u8; 4096]));
        cache.insert(b, 0, Chunk::from(vec![2u8; 4096]));
        assert_eq!(cache.get(a, 0).map(|c| c[0]), Some(1));
        assert_eq!(cache.get(b, 0).map(|c| c[0]), Some(2));
        assert!(cache.get(a, 1).is_none());
        for i in 0..1000 {
            cache.insert(a, i, Chunk::from(vec![0u8; 4096]));
        }
        assert!(cache.held_bytes() <= CHUNK_CACHE_BYTES_MIN as u64);
    }
}
