//! Reads an SSTable through memory maps: point lookups through the bloom
//! filter and the partition index, partition slices in either direction, and
//! ordered scans of index entries for range scans and compaction.
//!
//! Every block read is checksummed; damage becomes [`Error::ChecksumMismatch`]
//! or [`Error::Corrupt`] naming the file and offset, never a panic and never
//! wrong data.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::codec::{DecodeError, Reader};
use crate::error::{Error, Result};
use crate::merge::{Atom, AtomSource, PartitionHeader};
use crate::model::{ClusteringPosition, DeletionTime, PartitionKey};
use crate::range_tombstones::RangeMarker;
use crate::sstable::bloom::BloomFilter;
use crate::sstable::chunk_cache::{next_sstable_id, Chunk, ChunkCache};
use crate::sstable::format::{
    read_framed_block, Component, Descriptor, EntryHead, IndexBlockCursor, IndexEntry,
    SSTableStats, BLOCK_BYTES_MAX, DATA_FOOTER_BYTES, DATA_MAGIC, INDEX_MAGIC,
};
use crate::sstable::token_search::first_not_less;

/// Chunk sizes a reader accepts (the writer's is [`crate::sstable::format::CHUNK_SIZE_BYTES`];
/// older files may use another power of two in this range).
const CHUNK_SIZES: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(Error::io(path))?;
    map(&file).map_err(Error::io(path))
}

#[allow(unsafe_code)]
fn map(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: SSTable files are immutable once published: the engine never
    // writes to or truncates them, and deletion only unlinks the name, so the
    // mapping stays valid for as long as it lives.
    unsafe { Mmap::map(file) }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_owned(),
        offset,
        reason: reason.into(),
    }
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// What an index walk does with an entry (see [`SSTable::walk_entries`]).
pub(super) enum Visit {
    /// Pass over it.
    Skip,
    /// Take it, with this key.
    Take(PartitionKey),
    /// End the walk.
    Stop,
}

/// Where a key stands against a walk's bounds.
pub(super) enum Placement {
    Before,
    Within,
    After,
}

/// Where `key` stands against `lo` and `hi`.
pub(super) fn place(
    key: &PartitionKey,
    lo: Bound<&PartitionKey>,
    hi: Bound<&PartitionKey>,
) -> Placement {
    let before_hi = match hi {
        Bound::Unbounded => true,
        Bound::Included(k) => key <= k,
        Bound::Excluded(k) => key < k,
    };
    let after_lo = match lo {
        Bound::Unbounded => true,
        Bound::Included(k) => key >= k,
        Bound::Excluded(k) => key > k,
    };
    match (after_lo, before_hi) {
        (_, false) => Placement::After,
        (true, true) => Placement::Within,
        (false, true) => Placement::Before,
    }
}

/// Bytes of the logical data stream (see [`SSTable::read_logical`]).
pub enum LogicalBytes {
    InChunk(Chunk, std::ops::Range<usize>),
    Copied(Vec<u8>),
}

impl LogicalBytes {
    /// These bytes as shared bytes (a slice of their chunk when they lie
    /// in one, no copy).
    pub fn to_shared(&self) -> bytes::Bytes {
        match self {
            LogicalBytes::InChunk(chunk, range) => {
                if range.end <= chunk.len() && range.start <= range.end {
                    chunk.slice(range.clone())
                } else {
                    bytes::Bytes::new()
                }
            }
            LogicalBytes::Copied(bytes) => bytes::Bytes::copy_from_slice(bytes),
        }
    }
}

impl std::ops::Deref for LogicalBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            LogicalBytes::InChunk(chunk, range) => chunk.get(range.clone()).unwrap_or_default(),
            LogicalBytes::Copied(bytes) => bytes,
        }
    }
}

/// How a partition key read from the data holds its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBytes {
    /// A slice of the decompressed chunk, no copy: it keeps the whole
    /// chunk alive, so only for keys on their way to a client.
    Shared,
    /// Copied out: for keys that may be kept (written to a memtable,
    /// held in a cache).
    Copied,
}

/// The chunk a sequential reader used last (see [`SSTable::read_logical_in`]).
#[derive(Debug, Default)]
pub struct ChunkMemo(Option<(usize, Chunk)>);

/// A partition of an SSTable, found: where it is, its header, and, for a
/// point read, its first bytes as the lookup read them.
pub struct FoundPartition {
    pub entry: IndexEntry,
    pub header: PartitionHeader,
    /// The partition's bytes from its start, as far as the lookup read.
    preread: Option<LogicalBytes>,
}

/// An open, immutable SSTable.
#[derive(Debug)]
pub struct SSTable {
    pub descriptor: Descriptor,
    pub stats: SSTableStats,
    data: Mmap,
    index: Mmap,
    chunk_offsets: Vec<u64>,
    chunk_size: usize,
    logical_len: u64,
    /// The first token of every index block, in order.
    summary_tokens: Vec<i64>,
    /// The file offset of every index block.
    summary_offsets: Vec<u64>,
    /// Index blocks whose checksum matched once (the file never changes
    /// while it is open), by summary position.
    index_verified: Vec<std::sync::atomic::AtomicBool>,
    filter: BloomFilter,
    data_path: PathBuf,
    index_path: PathBuf,
    cache: Arc<ChunkCache>,
    /// This SSTable's key in the chunk cache.
    cache_id: u64,
}

impl SSTable {
    /// Opens and verifies the metadata of every component; data chunks are
    /// cached in `cache`.
    pub fn open(descriptor: Descriptor, cache: Arc<ChunkCache>) -> Result<SSTable> {
        let stats_path = descriptor.path(Component::Statistics);
        let stats_bytes = std::fs::read(&stats_path).map_err(Error::io(&stats_path))?;
        let stats = SSTableStats::decode(&stats_bytes)
            .map_err(|(offset, reason)| corrupt(&stats_path, offset, reason))?;
        let filter_path = descriptor.path(Component::Filter);
        let filter_bytes = std::fs::read(&filter_path).map_err(Error::io(&filter_path))?;
        let filter = match BloomFilter::decode(&filter_bytes) {
            Ok(filter) => filter,
            Err((offset, reason)) => {
                // Reads stay correct without a filter, only slower.
                tracing::error!(path = %filter_path.display(), offset, %reason,
                    "damaged bloom filter ignored; every lookup will consult the index");
                BloomFilter::pass_all()
            }
        };
        let data_path = descriptor.path(Component::Data);
        let data = map_file(&data_path)?;
        let DataFooter {
            chunk_offsets,
            chunk_size,
            logical_len,
        } = read_data_footer(&data, &data_path)?;
        let index_path = descriptor.path(Component::Index);
        let index = map_file(&index_path)?;
        let (summary_tokens, summary_offsets) = read_summary(&index, &index_path)?;
        let index_verified = summary_offsets
            .iter()
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect();
        Ok(SSTable {
            descriptor,
            stats,
            data,
            index,
            chunk_offsets,
            chunk_size,
            logical_len,
            summary_tokens,
            summary_offsets,
            index_verified,
            filter,
            data_path,
            index_path,
            cache,
            cache_id: next_sstable_id(),
        })
    }

    pub fn generation(&self) -> u64 {
        self.descriptor.generation
    }

    /// Bytes on disk of every component.
    pub fn size_on_disk_bytes(&self) -> u64 {
        Component::ALL
            .iter()
            .filter_map(|c| std::fs::metadata(self.descriptor.path(*c)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Could this SSTable hold `key`? (key range and bloom filter)
    pub fn may_contain(&self, key: &PartitionKey) -> bool {
        let wanted = (key.token, key.key.as_ref());
        wanted >= (self.stats.first_token, self.stats.first_key.as_slice())
            && wanted <= (self.stats.last_token, self.stats.last_key.as_slice())
            && self.filter.may_contain(key)
    }

    fn decode_error(&self, path: &Path, base: u64, e: DecodeError) -> Error {
        corrupt(path, base + e.offset as u64, e.reason)
    }

    /// Index block `block` (a summary position) and its file offset; its
    /// checksum is computed the first time only.
    fn index_block(&self, block: usize) -> Result<(&[u8], u64)> {
        let (offset, verified) = match (
            self.summary_offsets.get(block),
            self.index_verified.get(block),
        ) {
            (Some(offset), Some(verified)) => (*offset, verified),
            _ => {
                return Err(corrupt(
                    &self.index_path,
                    0,
                    format!("no index block {block}"),
                ))
            }
        };
        let check = !verified.load(std::sync::atomic::Ordering::Relaxed);
        let payload = read_framed_block(&self.index, offset, check)
            .map_err(|(offset, reason)| corrupt(&self.index_path, offset, reason))?;
        if check {
            verified.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((payload, offset))
    }

    /// The key of the partition an index entry points at; with
    /// [`KeyBytes::Shared`], sharing the data chunk it lies in.
    pub(super) fn key_of(
        &self,
        head: &EntryHead,
        memo: &mut ChunkMemo,
        key_bytes: KeyBytes,
    ) -> Result<PartitionKey> {
        let bytes = self.read_logical_in(head.offset, head.header_len, memo)?;
        let shared;
        let mut reader = match key_bytes {
            KeyBytes::Shared => {
                shared = bytes.to_shared();
                Reader::over_shared(&shared)
            }
            KeyBytes::Copied => Reader::new(&bytes),
        };
        let key = reader
            .partition_key()
            .map_err(|e| self.decode_error(&self.data_path, head.offset, e))?;
        if key.token != head.token {
            return Err(corrupt(
                &self.data_path,
                head.offset,
                "partition token differs from its index entry",
            ));
        }
        Ok(key)
    }

    /// The first index block that may hold a partition of `token` (an
    /// earlier block holds only smaller tokens).
    pub(super) fn first_block_for(&self, token: i64) -> usize {
        first_not_less(&self.summary_tokens, token).saturating_sub(1)
    }

    /// Walks index entries from block `first` on, in order: `visit` judges
    /// each entry by its head; a taken entry's row-index blocks are read
    /// and handed to `take` with its key, which says whether to stop.
    fn walk_entries(
        &self,
        first: usize,
        mut visit: impl FnMut(&EntryHead) -> Result<Visit>,
        mut take: impl FnMut(IndexEntry) -> bool,
    ) -> Result<()> {
        for block in first..self.summary_offsets.len() {
            if self.walk_block(block, &mut visit, &mut take)?.is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Index blocks (summary positions) this SSTable has.
    pub(super) fn index_block_count(&self) -> usize {
        self.summary_offsets.len()
    }

    /// [`SSTable::walk_entries`] over one index block; breaks when the walk
    /// is to end.
    pub(super) fn walk_block(
        &self,
        block: usize,
        visit: &mut impl FnMut(&EntryHead) -> Result<Visit>,
        take: &mut impl FnMut(IndexEntry) -> bool,
    ) -> Result<ControlFlow<()>> {
        let (payload, offset) = self.index_block(block)?;
        let decode_error = |e| self.decode_error(&self.index_path, offset + 8, e);
        let mut reader = Reader::new(payload);
        let mut cursor = IndexBlockCursor::default();
        while !reader.is_empty() {
            let head = cursor.head(&mut reader).map_err(decode_error)?;
            match visit(&head)? {
                Visit::Skip => IndexBlockCursor::skip_blocks(&mut reader).map_err(decode_error)?,
                Visit::Stop => return Ok(ControlFlow::Break(())),
                Visit::Take(key) => {
                    let blocks = IndexBlockCursor::blocks(&mut reader).map_err(decode_error)?;
                    if take(head.with_key(key, blocks)) {
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The partition `key`, if this SSTable holds it: its index entry, its
    /// header, and the bytes read to check its key (the whole partition
    /// when it is no longer than a chunk, so that a narrow partition is
    /// read once).
    pub fn find_partition(&self, key: &PartitionKey) -> Result<Option<FoundPartition>> {
        if !self.may_contain(key) {
            return Ok(None);
        }
        let mut matched = None;
        let mut found = None;
        self.walk_entries(
            self.first_block_for(key.token),
            |head| {
                Ok(match head.token.cmp(&key.token) {
                    std::cmp::Ordering::Less => Visit::Skip,
                    std::cmp::Ordering::Greater => Visit::Stop,
                    std::cmp::Ordering::Equal => {
                        let whole = head.header_len.saturating_add(head.atoms_len);
                        let len = if whole <= self.chunk_size as u64 {
                            whole
                        } else {
                            head.header_len
                        };
                        let bytes = self.read_logical(head.offset, len)?;
                        match self.header_if_key(head, &bytes, Some(key))? {
                            Some(header) => {
                                matched = Some((header, bytes));
                                Visit::Take(key.clone())
                            }
                            None => Visit::Skip,
                        }
                    }
                })
            },
            |entry| {
                found = Some(entry);
                true
            },
        )?;
        Ok(found
            .zip(matched)
            .map(|(entry, (header, bytes))| FoundPartition {
                entry,
                header,
                preread: Some(bytes),
            }))
    }

    /// The partition an index entry points at, its header read (how scans
    /// and compactions come to a partition).
    pub fn partition_at(&self, entry: IndexEntry) -> Result<FoundPartition> {
        let bytes = self.read_logical(entry.offset, entry.header_len)?;
        let head = EntryHead {
            token: entry.key.token,
            offset: entry.offset,
            header_len: entry.header_len,
            atoms_len: entry.atoms_len,
        };
        match self.header_if_key(&head, &bytes, Some(&entry.key))? {
            Some(header) => Ok(FoundPartition {
                entry,
                header,
                preread: None,
            }),
            None => Err(corrupt(
                &self.data_path,
                head.offset,
                "partition key differs from its index entry",
            )),
        }
    }

    /// A narrow partition's header, and every atom into `atoms` (emptied
    /// first), decoded in one read; `None` for a partition of more than one
    /// row-index block. With [`KeyBytes::Shared`] the atoms share the chunk.
    pub(super) fn read_narrow(
        &self,
        entry: &IndexEntry,
        memo: &mut ChunkMemo,
        key_bytes: KeyBytes,
        atoms: &mut Vec<Atom>,
    ) -> Result<Option<PartitionHeader>> {
        if entry.blocks.len() != 1 {
            return Ok(None);
        }
        let len = entry.header_len.saturating_add(entry.atoms_len);
        let bytes = self.read_logical_in(entry.offset, len, memo)?;
        let head = EntryHead {
            token: entry.key.token,
            offset: entry.offset,
            header_len: entry.header_len,
            atoms_len: entry.atoms_len,
        };
        let Some(header) = self.header_if_key(&head, &bytes, Some(&entry.key))? else {
            return Err(corrupt(
                &self.data_path,
                entry.offset,
                "partition key differs from its index entry",
            ));
        };
        let atoms_at = usize::try_from(entry.header_len).unwrap_or(usize::MAX);
        let Some(atom_bytes) = bytes.get(atoms_at..) else {
            return Err(corrupt(
                &self.data_path,
                entry.offset,
                "partition shorter than its header",
            ));
        };
        atoms.clear();
        match key_bytes {
            KeyBytes::Shared => {
                let shared = bytes.to_shared().slice(atoms_at..);
                self.decode_atoms_from(Reader::over_shared(&shared), entry.atoms_offset(), atoms)?
            }
            KeyBytes::Copied => self.decode_atoms(atom_bytes, entry.atoms_offset(), atoms)?,
        }
        Ok(Some(header))
    }

    /// Index entries with keys within bounds, in order, at most `max` of
    /// them.
    pub fn entries_in(
        &self,
        lo: Bound<&PartitionKey>,
        hi: Bound<&PartitionKey>,
        max: usize,
    ) -> Result<Vec<IndexEntry>> {
        let (first, lo_token) = match lo {
            Bound::Unbounded => (0, i64::MIN),
            Bound::Included(k) | Bound::Excluded(k) => (self.first_block_for(k.token), k.token),
        };
        let mut out = Vec::new();
        let mut memo = ChunkMemo::default();
        self.walk_entries(
            first,
            |head| {
                if head.token < lo_token {
                    return Ok(Visit::Skip);
                }
                let key = self.key_of(head, &mut memo, KeyBytes::Copied)?;
                Ok(match place(&key, lo, hi) {
                    Placement::After => Visit::Stop,
                    Placement::Within => Visit::Take(key),
                    Placement::Before => Visit::Skip,
                })
            },
            |entry| {
                out.push(entry);
                out.len() >= max
            },
        )?;
        Ok(out)
    }

    /// Logical bytes `[offset, offset + len)` of the data stream: borrowed
    /// from their chunk when they lie in one (most partitions), copied
    /// together otherwise.
    pub fn read_logical(&self, offset: u64, len: u64) -> Result<LogicalBytes> {
        self.read_logical_in(offset, len, &mut ChunkMemo::default())
    }

    /// [`SSTable::read_logical`] for a reader that goes through the data in
    /// order: the chunk it read last is in `memo`, not looked up again.
    pub fn read_logical_in(
        &self,
        offset: u64,
        len: u64,
        memo: &mut ChunkMemo,
    ) -> Result<LogicalBytes> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.logical_len)
            .ok_or_else(|| corrupt(&self.index_path, 0, "index points past the end of the data"))?;
        let chunk_size = self.chunk_size as u64;
        if len > 0 && offset / chunk_size == (end - 1) / chunk_size {
            let chunk = self.chunk_in((offset / chunk_size) as usize, memo)?;
            let within = (offset % chunk_size) as usize;
            let range = within..within + len as usize;
            if chunk.get(range.clone()).is_none() {
                return Err(corrupt(&self.data_path, 0, "chunk shorter than expected"));
            }
            return Ok(LogicalBytes::InChunk(chunk, range));
        }
        let mut out = Vec::with_capacity(len as usize);
        let mut at = offset;
        while at < end {
            let chunk_index = (at / chunk_size) as usize;
            let chunk = self.chunk_in(chunk_index, memo)?;
            let within = (at % chunk_size) as usize;
            let take = ((end - at) as usize).min(chunk.len().saturating_sub(within));
            let slice = chunk
                .get(within..within + take)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| corrupt(&self.data_path, 0, "chunk shorter than expected"))?;
            out.extend_from_slice(slice);
            at += take as u64;
        }
        Ok(LogicalBytes::Copied(out))
    }

    /// [`SSTable::chunk`], from `memo` when it holds it.
    fn chunk_in(&self, index: usize, memo: &mut ChunkMemo) -> Result<Chunk> {
        if let Some((held, chunk)) = &memo.0 {
            if *held == index {
                return Ok(chunk.clone());
            }
        }
        let chunk = self.chunk(index)?;
        memo.0 = Some((index, chunk.clone()));
        Ok(chunk)
    }

    /// One decompressed chunk, from the chunk cache if it is there.
    fn chunk(&self, index: usize) -> Result<Chunk> {
        let cache_index = u32::try_from(index)
            .map_err(|_| corrupt(&self.data_path, 0, format!("no chunk {index}")))?;
        if let Some(hit) = self.cache.get(self.cache_id, cache_index) {
            return Ok(hit);
        }
        let offset = *self
            .chunk_offsets
            .get(index)
            .ok_or_else(|| corrupt(&self.data_path, 0, format!("no chunk {index}")))?;
        let at = offset as usize;
        let len = le_u32(&self.data, at)
            .ok_or_else(|| corrupt(&self.data_path, offset, "chunk header past the end"))?;
        let stored = le_u32(&self.data, at + 4)
            .ok_or_else(|| corrupt(&self.data_path, offset, "chunk header past the end"))?;
        if len > BLOCK_BYTES_MAX {
            return Err(corrupt(&self.data_path, offset, "implausible chunk length"));
        }
        let compressed = self
            .data
            .get(at + 8..at + 8 + len as usize)
            .ok_or_else(|| corrupt(&self.data_path, offset, "chunk runs past the end"))?;
        let found = crc32fast::hash(compressed);
        if found != stored {
            return Err(Error::ChecksumMismatch {
                path: self.data_path.clone(),
                offset,
                expected: stored,
                found,
            });
        }
        let (size, compressed) = compressed
            .split_first_chunk::<4>()
            .map(|(size, rest)| (u32::from_le_bytes(*size) as usize, rest))
            .filter(|(size, _)| *size <= self.chunk_size)
            .ok_or_else(|| corrupt(&self.data_path, offset, "chunk larger than the chunk size"))?;
        let bytes = lz4_flex::block::decompress(compressed, size).map_err(|e| {
            corrupt(
                &self.data_path,
                offset,
                format!("chunk does not decompress: {e}"),
            )
        })?;
        let bytes = Chunk::from(bytes);
        self.cache.insert(self.cache_id, cache_index, bytes.clone());
        Ok(bytes)
    }

    /// Decodes the partition at `head` from `bytes` (its first bytes): if
    /// its key is `wanted` (or whatever it is, for `None`), its header. The
    /// key must have the entry's token, else the file is damaged.
    fn header_if_key(
        &self,
        head: &EntryHead,
        bytes: &[u8],
        wanted: Option<&PartitionKey>,
    ) -> Result<Option<PartitionHeader>> {
        let mut r = Reader::new(bytes);
        let decode_error = |e| self.decode_error(&self.data_path, head.offset, e);
        let (token, key) = r.partition_key_ref().map_err(decode_error)?;
        if token != head.token {
            return Err(corrupt(
                &self.data_path,
                head.offset,
                "partition token differs from its index entry",
            ));
        }
        if wanted.is_some_and(|wanted| wanted.token != token || wanted.key.as_ref() != key) {
            return Ok(None);
        }
        let decode = |r: &mut Reader<'_>| -> std::result::Result<PartitionHeader, DecodeError> {
            let deletion = r.opt_deletion()?;
            let static_row = match r.u8()? {
                0 => None,
                1 => Some(r.row()?),
                _ => {
                    return Err(DecodeError {
                        offset: r.offset(),
                        reason: "bad static row flag",
                    })
                }
            };
            Ok(PartitionHeader {
                deletion,
                static_row,
            })
        };
        decode(&mut r).map(Some).map_err(decode_error)
    }

    /// Decodes the atoms of one row-index block (`bytes`, at logical
    /// offset `base`) into `atoms`, in forward order.
    pub(super) fn decode_atoms(
        &self,
        bytes: &[u8],
        base: u64,
        atoms: &mut Vec<Atom>,
    ) -> Result<()> {
        self.decode_atoms_from(Reader::new(bytes), base, atoms)
    }

    /// [`SSTable::decode_atoms`] with the reader given (one over shared
    /// bytes decodes without copying).
    fn decode_atoms_from(&self, mut r: Reader<'_>, base: u64, atoms: &mut Vec<Atom>) -> Result<()> {
        loop {
            if r.is_empty() {
                break;
            }
            let tag = r
                .u8()
                .map_err(|e| self.decode_error(&self.data_path, base, e))?;
            let atom = match tag {
                0 => break,
                1 => Atom::Row(
                    r.row()
                        .map_err(|e| self.decode_error(&self.data_path, base, e))?,
                ),
                2 => {
                    let decode =
                        |r: &mut Reader<'_>| -> std::result::Result<RangeMarker, DecodeError> {
                            Ok(RangeMarker {
                                position: r.position()?,
                                before: r.opt_deletion()?,
                                after: r.opt_deletion()?,
                            })
                        };
                    Atom::Marker(
                        decode(&mut r).map_err(|e| self.decode_error(&self.data_path, base, e))?,
                    )
                }
                _ => {
                    return Err(corrupt(
                        &self.data_path,
                        base + r.offset() as u64,
                        format!("unknown atom tag {tag}"),
                    ))
                }
            };
            atoms.push(atom);
        }
        Ok(())
    }
}

/// What a data file's footer says.
struct DataFooter {
    chunk_offsets: Vec<u64>,
    chunk_size: usize,
    logical_len: u64,
}

fn read_data_footer(data: &[u8], path: &Path) -> Result<DataFooter> {
    let len = data.len();
    if len < DATA_FOOTER_BYTES {
        return Err(corrupt(path, 0, "file shorter than its footer"));
    }
    let footer_at = len - DATA_FOOTER_BYTES;
    let bad = |reason: &str| corrupt(path, footer_at as u64, reason.to_owned());
    let offsets_start = le_u64(data, footer_at).ok_or_else(|| bad("footer"))?;
    let count = le_u32(data, footer_at + 8).ok_or_else(|| bad("footer"))? as usize;
    let chunk_size = le_u32(data, footer_at + 12).ok_or_else(|| bad("footer"))? as usize;
    let logical_len = le_u64(data, footer_at + 16).ok_or_else(|| bad("footer"))?;
    let stored = le_u32(data, footer_at + 24).ok_or_else(|| bad("footer"))?;
    let magic = le_u32(data, footer_at + 28).ok_or_else(|| bad("footer"))?;
    if magic != DATA_MAGIC {
        return Err(bad("not a data file (bad magic)"));
    }
    let start = usize::try_from(offsets_start).map_err(|_| bad("offsets start"))?;
    let checked = data
        .get(start..footer_at + 24)
        .ok_or_else(|| bad("chunk offsets out of range"))?;
    let found = crc32fast::hash(checked);
    if found != stored {
        return Err(Error::ChecksumMismatch {
            path: path.to_owned(),
            offset: offsets_start,
            expected: stored,
            found,
        });
    }
    if !chunk_size.is_power_of_two() || !CHUNK_SIZES.contains(&chunk_size) {
        return Err(bad("implausible chunk size"));
    }
    if count.saturating_mul(8) + start != footer_at {
        return Err(bad("chunk table does not match the footer"));
    }
    let chunk_offsets = (0..count)
        .map(|i| le_u64(data, start + i * 8).ok_or_else(|| bad("chunk offset")))
        .collect::<Result<Vec<u64>>>()?;
    Ok(DataFooter {
        chunk_offsets,
        chunk_size,
        logical_len,
    })
}

/// The first token and file offset of every index block.
fn read_summary(index: &[u8], path: &Path) -> Result<(Vec<i64>, Vec<u64>)> {
    let len = index.len();
    if len < 12 {
        return Err(corrupt(path, 0, "file shorter than its footer"));
    }
    let footer_at = len - 12;
    let summary_offset = le_u64(index, footer_at).unwrap_or(u64::MAX);
    if le_u32(index, footer_at + 8) != Some(INDEX_MAGIC) {
        return Err(corrupt(
            path,
            footer_at as u64,
            "not an index file (bad magic)",
        ));
    }
    let payload = read_framed_block(index, summary_offset, true)
        .map_err(|(offset, reason)| corrupt(path, offset, reason))?;
    let mut r = Reader::new(payload);
    let decode = |r: &mut Reader<'_>| -> std::result::Result<(Vec<i64>, Vec<u64>), DecodeError> {
        let count = r.u32_len(1 << 28, "too many summary entries")?;
        let mut tokens = Vec::with_capacity(count.min(1 << 16));
        let mut offsets = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            tokens.push(r.fixed_i64()?);
            offsets.push(r.varint()?);
        }
        Ok((tokens, offsets))
    };
    decode(&mut r).map_err(|e| corrupt(path, summary_offset + 8 + e.offset as u64, e.reason))
}

/// Streams one SSTable partition's atoms in `[start, end)`, in stream order.
pub struct SSTablePartitionSource {
    sstable: Arc<SSTable>,
    entry: IndexEntry,
    /// The partition's first bytes, if the lookup read them (see
    /// [`FoundPartition`]).
    preread: Option<LogicalBytes>,
    start: ClusteringPosition,
    end: ClusteringPosition,
    reversed: bool,
    /// The next block to read, in stream order.
    next_block: Option<usize>,
    first_block: usize,
    last_block: usize,
    /// The atoms of the block being read, decoded.
    decoded: Vec<Atom>,
    buffer: VecDeque<Atom>,
}

impl SSTablePartitionSource {
    pub fn new(
        sstable: Arc<SSTable>,
        found: FoundPartition,
        start: ClusteringPosition,
        end: ClusteringPosition,
        reversed: bool,
    ) -> SSTablePartitionSource {
        let entry = found.entry;
        let first_block = entry
            .blocks
            .partition_point(|b| b.first_position <= start)
            .saturating_sub(1);
        let last_block = entry
            .blocks
            .partition_point(|b| b.first_position < end)
            .saturating_sub(1)
            .max(first_block);
        let next_block = match (start < end, reversed) {
            (false, _) => None,
            (true, false) => Some(first_block),
            (true, true) => Some(last_block),
        };
        SSTablePartitionSource {
            sstable,
            entry,
            preread: found.preread,
            start,
            end,
            reversed,
            next_block,
            first_block,
            last_block,
            decoded: Vec::new(),
            buffer: VecDeque::new(),
        }
    }

    /// Decodes block `block` into `decoded`, from the pre-read bytes when
    /// they hold it.
    fn decode_block(&mut self, block: usize) -> Result<()> {
        let start = self.entry.blocks.get(block).map_or(0, |b| b.offset);
        let end = self.entry.block_end(block);
        let base = self.entry.atoms_offset() + start;
        let len = end.saturating_sub(start);
        let within = (base - self.entry.offset) as usize..(base - self.entry.offset + len) as usize;
        self.decoded.clear();
        match self.preread.as_deref().and_then(|bytes| bytes.get(within)) {
            Some(bytes) => self.sstable.decode_atoms(bytes, base, &mut self.decoded),
            None => {
                let bytes = self.sstable.read_logical(base, len)?;
                self.sstable.decode_atoms(&bytes, base, &mut self.decoded)
            }
        }
    }

    fn load_block(&mut self, block: usize) -> Result<()> {
        self.decode_block(block)?;
        let mut at_start: Option<DeletionTime> =
            self.entry.blocks.get(block).and_then(|b| b.open_deletion);
        let mut before_end = at_start;
        let opening = |position: &ClusteringPosition, value: Option<DeletionTime>| {
            value.map(|v| {
                Atom::Marker(RangeMarker {
                    position: position.clone(),
                    before: None,
                    after: Some(v),
                })
            })
        };
        let closing = |position: &ClusteringPosition, value: Option<DeletionTime>| {
            value.map(|v| {
                Atom::Marker(RangeMarker {
                    position: position.clone(),
                    before: Some(v),
                    after: None,
                })
            })
        };
        // The range deletions open at the slice's edges follow from the
        // markers before them; they are known once the block is scanned.
        for atom in &self.decoded {
            if let Atom::Marker(marker) = atom {
                if marker.position <= self.start {
                    at_start = marker.after;
                }
                if marker.position < self.end {
                    before_end = marker.after;
                }
            }
        }
        let (start, end) = (&self.start, &self.end);
        let interior = self.decoded.drain(..).filter(|atom| {
            atom.cmp_position(start) == std::cmp::Ordering::Greater
                && atom.cmp_position(end) == std::cmp::Ordering::Less
        });
        if self.reversed {
            if block == self.last_block {
                self.buffer.extend(opening(end, before_end));
            }
            let mark = self.buffer.len();
            self.buffer.extend(interior.map(|atom| match atom {
                Atom::Marker(m) => Atom::Marker(m.reversed()),
                row => row,
            }));
            if let Some(added) = self.buffer.make_contiguous().get_mut(mark..) {
                added.reverse();
            }
            if block == self.first_block {
                self.buffer.extend(closing(start, at_start));
            }
        } else {
            if block == self.first_block {
                self.buffer.extend(opening(start, at_start));
            }
            self.buffer.extend(interior);
            if block == self.last_block {
                self.buffer.extend(closing(end, before_end));
            }
        }
        Ok(())
    }
}

impl AtomSource for SSTablePartitionSource {
    fn next_atom(&mut self) -> Result<Option<Atom>> {
        while self.buffer.is_empty() {
            let Some(block) = self.next_block else {
                return Ok(None);
            };
            self.next_block = if self.reversed {
                block.checked_sub(1).filter(|b| *b >= self.first_block)
            } else {
                Some(block + 1).filter(|b| *b <= self.last_block)
            };
            self.load_block(block)?;
        }
        Ok(self.buffer.pop_front())
    }
}
