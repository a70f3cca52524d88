//! Writes one SSTable from partitions given in `(token, key)` order.
//!
//! Components are written under temporary names, fsynced, renamed, and the
//! directory fsynced; the TOC goes last, so the SSTable appears atomically.
//! An unfinished writer removes its temporary files when dropped.

use std::fs::File;
use std::io::{BufWriter, Write};

use crate::codec::Writer;
use crate::error::{Error, Result};
use crate::fs;
use crate::merge::{Atom, AtomSource, PartitionHeader};
use crate::model::{CellValue, ClusteringPosition, DeletionTime, PartitionKey, Row};
use crate::range_tombstones::RangeMarker;
use crate::sstable::bloom::BloomFilter;
use crate::sstable::format::{
    frame_block, Component, Descriptor, IndexBlockCursor, IndexEntry, RowIndexBlock,
    RowIndexBlocks, SSTableStats, CHUNK_SIZE_BYTES, DATA_MAGIC, FORMAT_VERSION, INDEX_BLOCK_BYTES,
    INDEX_MAGIC, ROW_INDEX_BLOCK_BYTES,
};
use crate::sstable::reader::SSTable;

/// The compressed, checksummed data stream of `Data.db`.
struct DataStream {
    file: BufWriter<File>,
    path: std::path::PathBuf,
    pending: Vec<u8>,
    logical_len: u64,
    file_len: u64,
    chunk_offsets: Vec<u64>,
}

impl DataStream {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        self.logical_len += bytes.len() as u64;
        while self.pending.len() >= CHUNK_SIZE_BYTES {
            let rest = self.pending.split_off(CHUNK_SIZE_BYTES);
            let chunk = std::mem::replace(&mut self.pending, rest);
            self.write_chunk(&chunk)?;
        }
        Ok(())
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        let compressed = lz4_flex::block::compress_prepend_size(chunk);
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&(compressed.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
        self.chunk_offsets.push(self.file_len);
        self.file
            .write_all(&header)
            .and_then(|()| self.file.write_all(&compressed))
            .map_err(Error::io(&self.path))?;
        self.file_len += (header.len() + compressed.len()) as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        if !self.pending.is_empty() {
            let chunk = std::mem::take(&mut self.pending);
            self.write_chunk(&chunk)?;
        }
        let offsets_start = self.file_len;
        let mut tail = Vec::with_capacity(self.chunk_offsets.len() * 8 + 32);
        for offset in &self.chunk_offsets {
            tail.extend_from_slice(&offset.to_le_bytes());
        }
        tail.extend_from_slice(&offsets_start.to_le_bytes());
        tail.extend_from_slice(&(self.chunk_offsets.len() as u32).to_le_bytes());
        tail.extend_from_slice(&(CHUNK_SIZE_BYTES as u32).to_le_bytes());
        tail.extend_from_slice(&self.logical_len.to_le_bytes());
        let crc = crc32fast::hash(&tail);
        tail.extend_from_slice(&crc.to_le_bytes());
        tail.extend_from_slice(&DATA_MAGIC.to_le_bytes());
        self.file.write_all(&tail).map_err(Error::io(&self.path))?;
        self.file_len += tail.len() as u64;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io(&self.path)(e.into_error()))?;
        file.sync_all().map_err(Error::io(&self.path))?;
        Ok(self.file_len)
    }
}

/// `Index.db` under construction.
struct IndexStream {
    out: Vec<u8>,
    block: Writer,
    /// The token of the open block's first entry.
    block_first: Option<i64>,
    cursor: IndexBlockCursor,
    /// First token and file offset of every closed block.
    summary: Vec<(i64, u64)>,
}

impl IndexStream {
    fn add(&mut self, entry: &IndexEntry) {
        if self.block_first.is_none() {
            self.block_first = Some(entry.key.token);
        }
        self.cursor.encode(entry, &mut self.block);
        if self.block.buf.len() >= INDEX_BLOCK_BYTES {
            self.close_block();
        }
    }

    fn close_block(&mut self) {
        if let Some(first) = self.block_first.take() {
            self.summary.push((first, self.out.len() as u64));
            frame_block(&self.block.buf, &mut self.out);
            self.block.buf.clear();
            self.cursor = IndexBlockCursor::default();
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.close_block();
        let summary_offset = self.out.len() as u64;
        let mut summary = Writer::new();
        summary.varint(self.summary.len() as u64);
        for (first_token, offset) in &self.summary {
            summary.fixed_i64(*first_token);
            summary.varint(*offset);
        }
        frame_block(&summary.buf, &mut self.out);
        self.out.extend_from_slice(&summary_offset.to_le_bytes());
        self.out.extend_from_slice(&INDEX_MAGIC.to_le_bytes());
        self.out
    }
}

/// One atom as the writer encodes it, borrowed.
#[derive(Debug, Clone, Copy)]
enum AtomRef<'a> {
    Row(&'a Row),
    Marker(&'a RangeMarker),
}

impl AtomRef<'_> {
    fn position(&self) -> ClusteringPosition {
        match self {
            AtomRef::Row(row) => ClusteringPosition::at(row.clustering.clone()),
            AtomRef::Marker(marker) => marker.position.clone(),
        }
    }
}

/// The partition being written: its place in the data stream, the bytes
/// not yet handed to the data stream, and its row index so far.
struct PartitionInProgress {
    offset: u64,
    header_len: u64,
    atoms_len: u64,
    block_start: u64,
    blocks: RowIndexBlocks,
    open_deletion: Option<DeletionTime>,
    pending: Vec<u8>,
}

/// Builds one SSTable.
pub struct SSTableWriter {
    descriptor: Descriptor,
    data: Option<DataStream>,
    index: Option<IndexStream>,
    /// The filter hash of every partition written, for the filter built at
    /// the end.
    filter_hashes: Vec<u64>,
    /// The encoding buffer of the partition being written, kept between
    /// partitions.
    scratch: Vec<u8>,
    stats: SSTableStats,
    last_key: Option<PartitionKey>,
    finished: bool,
}

impl SSTableWriter {
    pub fn create(descriptor: Descriptor, level: u32, now_s: i64) -> Result<SSTableWriter> {
        let path = descriptor.tmp_path(Component::Data);
        let file = File::create(&path).map_err(Error::io(&path))?;
        Ok(SSTableWriter {
            stats: SSTableStats {
                format_version: FORMAT_VERSION,
                generation: descriptor.generation,
                level,
                partition_count: 0,
                row_count: 0,
                tombstone_count: 0,
                min_timestamp: i64::MAX,
                max_timestamp: i64::MIN,
                max_local_deletion_time_s: i64::MIN,
                first_token: 0,
                first_key: Vec::new(),
                last_token: 0,
                last_key: Vec::new(),
                data_size_bytes: 0,
                uncompressed_size_bytes: 0,
                created_at_s: now_s,
            },
            descriptor,
            data: Some(DataStream {
                file: BufWriter::with_capacity(256 * 1024, file),
                path,
                pending: Vec::with_capacity(CHUNK_SIZE_BYTES * 2),
                logical_len: 0,
                file_len: 0,
                chunk_offsets: Vec::new(),
            }),
            index: Some(IndexStream {
                out: Vec::new(),
                block: Writer::new(),
                block_first: None,
                cursor: IndexBlockCursor::default(),
                summary: Vec::new(),
            }),
            filter_hashes: Vec::new(),
            scratch: Vec::new(),
            last_key: None,
            finished: false,
        })
    }

    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// Bytes of uncompressed data written so far (to cut output SSTables by size).
    pub fn uncompressed_len(&self) -> u64 {
        self.data.as_ref().map_or(0, |d| d.logical_len)
    }

    pub fn partition_count(&self) -> u64 {
        self.stats.partition_count
    }

    fn note_timestamp(&mut self, timestamp: i64) {
        self.stats.min_timestamp = self.stats.min_timestamp.min(timestamp);
        self.stats.max_timestamp = self.stats.max_timestamp.max(timestamp);
    }

    fn note_deletion(&mut self, deletion: &DeletionTime) {
        self.stats.tombstone_count += 1;
        self.note_timestamp(deletion.timestamp);
        self.stats.max_local_deletion_time_s = self
            .stats
            .max_local_deletion_time_s
            .max(deletion.local_deletion_time_s);
    }

    fn note_row(&mut self, row: &Row) {
        if let Some(deletion) = &row.deletion {
            self.note_deletion(deletion);
        }
        for cell in &row.cells {
            self.note_timestamp(cell.timestamp);
            match cell.value {
                CellValue::Tombstone { deleted_at_s } => {
                    self.stats.tombstone_count += 1;
                    self.stats.max_local_deletion_time_s =
                        self.stats.max_local_deletion_time_s.max(deleted_at_s);
                }
                CellValue::Expiring { expires_at_s, .. } => {
                    self.stats.max_local_deletion_time_s =
                        self.stats.max_local_deletion_time_s.max(expires_at_s);
                }
                CellValue::Live(_) => {}
            }
        }
    }

    /// Appends one partition; keys must arrive in strictly increasing order.
    /// Returns false (writing nothing) if the partition turned out empty.
    pub fn add_partition(
        &mut self,
        key: &PartitionKey,
        header: &PartitionHeader,
        atoms: &mut dyn AtomSource,
    ) -> Result<bool> {
        let mut partition = self.begin_partition(key, header)?;
        while let Some(atom) = atoms.next_atom()? {
            let atom = match &atom {
                Atom::Row(row) => AtomRef::Row(row),
                Atom::Marker(marker) => AtomRef::Marker(marker),
            };
            self.push_atom(&mut partition, atom)?;
        }
        self.end_partition(key, header, partition)
    }

    /// Appends one partition of rows only, borrowed (a flush writes a
    /// memtable's rows without copying them); the rows must be in
    /// clustering order and already reconciled and shadowed.
    pub fn add_rows<'a>(
        &mut self,
        key: &PartitionKey,
        header: &PartitionHeader,
        rows: impl IntoIterator<Item = &'a Row>,
    ) -> Result<bool> {
        let mut partition = self.begin_partition(key, header)?;
        for row in rows {
            self.push_atom(&mut partition, AtomRef::Row(row))?;
        }
        self.end_partition(key, header, partition)
    }

    /// Appends a partition of `source` byte for byte, without decoding it
    /// (compaction's path for a partition only one input holds). `source`
    /// must be plain ([`SSTableStats::is_plain`]) and of this format, so
    /// that the copy is what decoding and re-encoding would write. Its row
    /// count is not known without decoding: the statistics count the
    /// source's average rows per partition.
    pub fn copy_partition(&mut self, source: &SSTable, entry: &IndexEntry) -> Result<()> {
        let from = &source.stats;
        assert!(
            from.partitions_copy_whole(),
            "only a plain SSTable of this format has partitions to copy whole"
        );
        let offset = self.next_offset(&entry.key)?;
        let bytes = source.read_logical(entry.offset, entry.header_len + entry.atoms_len)?;
        if let Some(data) = self.data.as_mut() {
            data.write(&bytes)?;
        }
        self.note_timestamp(from.min_timestamp);
        self.note_timestamp(from.max_timestamp);
        self.stats.row_count += from.row_count.div_ceil(from.partition_count.max(1));
        self.file_partition(IndexEntry {
            key: entry.key.clone(),
            offset,
            header_len: entry.header_len,
            atoms_len: entry.atoms_len,
            blocks: entry.blocks.clone(),
        });
        Ok(())
    }

    /// Where partition `key` starts in the data stream; checks that `key`
    /// may come next (an error once the writer is finished).
    fn next_offset(&self, key: &PartitionKey) -> Result<u64> {
        if let Some(last) = &self.last_key {
            assert!(
                last < key,
                "SSTable partitions must be written in key order"
            );
        }
        match (self.data.as_ref(), self.index.as_ref()) {
            (Some(data), Some(_)) => Ok(data.logical_len),
            _ => Err(Error::InvalidArgument(
                "SSTable writer already finished".into(),
            )),
        }
    }

    fn begin_partition(
        &mut self,
        key: &PartitionKey,
        header: &PartitionHeader,
    ) -> Result<PartitionInProgress> {
        let offset = self.next_offset(key)?;
        let mut buf = Writer {
            buf: std::mem::take(&mut self.scratch),
        };
        buf.buf.clear();
        buf.partition_key(key);
        buf.opt_deletion(&header.deletion);
        match &header.static_row {
            None => buf.u8(0),
            Some(row) => {
                buf.u8(1);
                buf.row(row);
            }
        }
        Ok(PartitionInProgress {
            offset,
            header_len: buf.buf.len() as u64,
            atoms_len: 0,
            block_start: 0,
            blocks: RowIndexBlocks::new(),
            open_deletion: None,
            pending: buf.buf,
        })
    }

    fn push_atom(&mut self, p: &mut PartitionInProgress, atom: AtomRef<'_>) -> Result<()> {
        if p.blocks.is_empty() || p.atoms_len - p.block_start >= ROW_INDEX_BLOCK_BYTES {
            p.block_start = p.atoms_len;
            p.blocks.push(RowIndexBlock {
                offset: p.atoms_len,
                first_position: atom.position(),
                open_deletion: p.open_deletion,
            });
        }
        let before = p.pending.len();
        let mut w = Writer {
            buf: std::mem::take(&mut p.pending),
        };
        match atom {
            AtomRef::Row(row) => {
                w.u8(1);
                w.row(row);
                self.stats.row_count += 1;
                self.note_row(row);
            }
            AtomRef::Marker(marker) => {
                w.u8(2);
                w.position(&marker.position);
                w.opt_deletion(&marker.before);
                w.opt_deletion(&marker.after);
                p.open_deletion = marker.after;
                if let Some(d) = &marker.after {
                    self.note_deletion(d);
                }
            }
        }
        p.pending = w.buf;
        p.atoms_len += (p.pending.len() - before) as u64;
        if p.pending.len() >= CHUNK_SIZE_BYTES {
            if let Some(data) = self.data.as_mut() {
                data.write(&p.pending)?;
            }
            p.pending.clear();
        }
        Ok(())
    }

    fn end_partition(
        &mut self,
        key: &PartitionKey,
        header: &PartitionHeader,
        mut p: PartitionInProgress,
    ) -> Result<bool> {
        if p.blocks.is_empty() && header.deletion.is_none() && header.static_row.is_none() {
            self.scratch = p.pending;
            return Ok(false);
        }
        p.pending.push(0);
        p.atoms_len += 1;
        if p.blocks.is_empty() {
            p.blocks.push(RowIndexBlock {
                offset: 0,
                first_position: ClusteringPosition::top(),
                open_deletion: None,
            });
        }
        if let Some(data) = self.data.as_mut() {
            data.write(&p.pending)?;
        }
        self.scratch = p.pending;
        if let Some(d) = &header.deletion {
            self.note_deletion(d);
        }
        if let Some(row) = &header.static_row {
            self.note_row(row);
        }
        self.file_partition(IndexEntry {
            key: key.clone(),
            offset: p.offset,
            header_len: p.header_len,
            atoms_len: p.atoms_len,
            blocks: p.blocks,
        });
        Ok(true)
    }

    /// Files a partition whose bytes are written: its index entry, filter
    /// hash and key statistics.
    fn file_partition(&mut self, entry: IndexEntry) {
        if let Some(index) = self.index.as_mut() {
            index.add(&entry);
        }
        if self.stats.partition_count == 0 {
            self.stats.first_token = entry.key.token;
            self.stats.first_key = entry.key.key.to_vec();
        }
        self.stats.partition_count += 1;
        self.filter_hashes.push(BloomFilter::hash(&entry.key));
        self.last_key = Some(entry.key);
    }

    /// Writes the remaining components and publishes the SSTable.
    /// Returns its statistics; `None` if no partition was added (nothing is published).
    pub fn finish(mut self) -> Result<Option<SSTableStats>> {
        self.finished = true;
        let (Some(data), Some(index)) = (self.data.take(), self.index.take()) else {
            return Err(Error::InvalidArgument(
                "SSTable writer already finished".into(),
            ));
        };
        if self.stats.partition_count == 0 {
            drop(data);
            self.remove_tmp_files();
            return Ok(None);
        }
        if let Some(last) = &self.last_key {
            self.stats.last_token = last.token;
            self.stats.last_key = last.key.to_vec();
        }
        self.stats.uncompressed_size_bytes = data.logical_len;
        self.stats.data_size_bytes = data.finish()?;
        let mut filter = BloomFilter::with_capacity(self.filter_hashes.len() as u64);
        for hash in &self.filter_hashes {
            filter.insert_hash(*hash);
        }
        let stats_bytes = self
            .stats
            .encode()
            .map_err(|e| Error::InvalidArgument(format!("cannot encode statistics: {e}")))?;
        let toc: String = Component::ALL
            .iter()
            .map(|c| format!("{}\n", c.suffix()))
            .collect();
        let d = &self.descriptor;
        fs::write_synced(&d.tmp_path(Component::Index), &index.finish())?;
        fs::write_synced(&d.tmp_path(Component::Filter), &filter.encode())?;
        fs::write_synced(&d.tmp_path(Component::Statistics), &stats_bytes)?;
        fs::write_synced(&d.tmp_path(Component::Toc), toc.as_bytes())?;
        for component in Component::ALL {
            fs::rename(&d.tmp_path(component), &d.path(component))?;
        }
        fs::sync_dir(&d.dir)?;
        Ok(Some(self.stats.clone()))
    }

    fn remove_tmp_files(&self) {
        for component in Component::ALL {
            let _ = std::fs::remove_file(self.descriptor.tmp_path(component));
        }
    }
}

impl Drop for SSTableWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.remove_tmp_files();
        }
    }
}
