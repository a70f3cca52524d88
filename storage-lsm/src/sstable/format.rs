//! SSTable file names and on-disk layouts, shared by the writer and reader.
//!
//! An SSTable is five files in its table's directory, named
//! `ila-<generation>-<Component>`; it exists once its `TOC.txt` exists (the
//! TOC is written last, so a crash mid-write leaves no TOC and the leftovers
//! are removed at open). Every component carries CRC32 checksums.
//!
//! `Data.db` holds a logical byte stream of partitions, cut into chunks of
//! [`CHUNK_SIZE_BYTES`] uncompressed bytes, each LZ4-compressed:
//! `chunk = u32 compressed_len, u32 crc32(compressed), compressed`.
//! After the chunks: the chunk offsets (`u64` LE each) and a footer of
//! [`DATA_FOOTER_BYTES`]: `u64 offsets_start, u32 chunk_count,
//! u32 chunk_size, u64 logical_len, u32 crc32(offsets + footer before crc),
//! u32 magic`.
//!
//! A partition in the logical stream: `partition key, optional deletion,
//! optional static row`, then atoms `u8 tag (1 row, 2 marker), atom`, then
//! `u8 0`.
//!
//! `Index.db` is a sequence of blocks `u32 len, u32 crc32, entries` followed by
//! a summary block (`varint count`, then the first token as a fixed i64 and
//! the varint file offset of every index block) and a footer
//! `u64 summary_offset, u32 magic`. An [`IndexEntry`] locates a partition
//! and its row-index blocks inside the logical data stream. On
//! disk an entry holds no key, only its token, as a delta from the previous
//! entry's (the block's first entry: the whole token); the key is the first
//! thing of the partition in `Data.db`, where a lookup that finds the token
//! compares it. An entry's offset is implied by the one before it
//! (partitions lie back to back), so only a block's first entry stores it:
//! `token (fixed i64 first, then varint delta), [varint offset, first only],
//! varint header_len, varint atoms_len, varint block count, blocks`, where
//! a count of 0 is the one block at offset 0 of a narrow partition.
//!
//! `Statistics.db` is `magic, u32 version, u32 len, rkyv(SSTableStats),
//! u32 crc32`. `Filter.db` is described in [`super::bloom`].

use std::path::{Path, PathBuf};

use crate::codec::{DecodeError, Reader, Writer};
use crate::model::{ClusteringPosition, DeletionTime, PartitionKey};

/// Version of the file formats below; bumped on any layout change.
pub const FORMAT_VERSION: u32 = 2;
/// Uncompressed bytes per compressed chunk of `Data.db`.
pub const CHUNK_SIZE_BYTES: usize = 4 * 1024;
/// Serialized atoms per row-index block inside a wide partition.
pub const ROW_INDEX_BLOCK_BYTES: u64 = 32 * 1024;
/// Target payload of one `Index.db` block (about 25 narrow partitions).
pub const INDEX_BLOCK_BYTES: usize = 256;
/// Largest chunk or index block a reader accepts (guards corrupt lengths).
pub const BLOCK_BYTES_MAX: u32 = 64 * 1024 * 1024;
pub const DATA_FOOTER_BYTES: usize = 32;
pub const DATA_MAGIC: u32 = 0x494c_4441; // "ILDA"
pub const INDEX_MAGIC: u32 = 0x494c_4958; // "ILIX"
pub const STATS_MAGIC: u32 = 0x494c_5354; // "ILST"

/// The components of an SSTable, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Data,
    Index,
    Filter,
    Statistics,
    Toc,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Data,
        Component::Index,
        Component::Filter,
        Component::Statistics,
        Component::Toc,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            Component::Data => "Data.db",
            Component::Index => "Index.db",
            Component::Filter => "Filter.db",
            Component::Statistics => "Statistics.db",
            Component::Toc => "TOC.txt",
        }
    }
}

/// Where an SSTable's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub dir: PathBuf,
    pub generation: u64,
}

impl Descriptor {
    pub fn path(&self, component: Component) -> PathBuf {
        self.dir
            .join(format!("ila-{}-{}", self.generation, component.suffix()))
    }

    pub fn tmp_path(&self, component: Component) -> PathBuf {
        self.dir.join(format!(
            "tmp-ila-{}-{}",
            self.generation,
            component.suffix()
        ))
    }

    /// Parses `ila-<generation>-<Component>`; returns the generation and
    /// whether it is the TOC.
    pub fn parse_file_name(name: &str) -> Option<(u64, Component)> {
        let rest = name.strip_prefix("ila-")?;
        let (generation, suffix) = rest.split_once('-')?;
        let generation = generation.parse().ok()?;
        let component = Component::ALL.into_iter().find(|c| c.suffix() == suffix)?;
        Some((generation, component))
    }

    pub fn in_dir(dir: &Path, generation: u64) -> Descriptor {
        Descriptor {
            dir: dir.to_owned(),
            generation,
        }
    }
}

/// Statistics of one SSTable, stored in `Statistics.db` with rkyv.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SSTableStats {
    pub format_version: u32,
    pub generation: u64,
    /// Leveled compaction's level (0 for flushes and other strategies).
    pub level: u32,
    pub partition_count: u64,
    pub row_count: u64,
    /// Tombstones of every kind written (partition, range marker, row, cell).
    pub tombstone_count: u64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Latest local deletion or expiry time of any tombstone or expiring cell.
    pub max_local_deletion_time_s: i64,
    pub first_token: i64,
    pub first_key: Vec<u8>,
    pub last_token: i64,
    pub last_key: Vec<u8>,
    pub data_size_bytes: u64,
    pub uncompressed_size_bytes: u64,
    pub created_at_s: i64,
}

impl SSTableStats {
    pub fn first(&self) -> PartitionKey {
        PartitionKey::new(self.first_token, self.first_key.clone())
    }

    pub fn last(&self) -> PartitionKey {
        PartitionKey::new(self.last_token, self.last_key.clone())
    }

    /// Holds no tombstone of any kind and no expiring cell: nothing in it
    /// can ever be purged, expire or shadow, so a partition only this
    /// SSTable holds is the same after a compaction as before.
    pub fn is_plain(&self) -> bool {
        self.tombstone_count == 0 && self.max_local_deletion_time_s == i64::MIN
    }

    /// Plain and of this format: a partition only this SSTable holds may be
    /// copied byte for byte by a compaction.
    pub fn partitions_copy_whole(&self) -> bool {
        self.is_plain() && self.format_version == FORMAT_VERSION
    }

    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let archived = rkyv::to_bytes::<rkyv::rancor::Error>(self).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(archived.len() + 16);
        out.extend_from_slice(&STATS_MAGIC.to_le_bytes());
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(archived.len() as u32).to_le_bytes());
        out.extend_from_slice(&archived);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<SSTableStats, (u64, String)> {
        if bytes.len() < 16 {
            return Err((0, "statistics shorter than their header".into()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes(crc.try_into().unwrap_or([0; 4]));
        let actual = crc32fast::hash(body);
        if stored != actual {
            return Err((
                body.len() as u64,
                format!("checksum mismatch: expected {stored:#010x}, found {actual:#010x}"),
            ));
        }
        let word = |at: usize| {
            body.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
                .unwrap_or(0)
        };
        if word(0) != STATS_MAGIC {
            return Err((0, "not a statistics file (bad magic)".into()));
        }
        if word(4) != FORMAT_VERSION {
            return Err((4, format!("unsupported format version {}", word(4))));
        }
        let len = word(8) as usize;
        let payload = body
            .get(12..12 + len)
            .ok_or((8, "length runs past the end".to_string()))?;
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(len);
        aligned.extend_from_slice(payload);
        rkyv::from_bytes::<SSTableStats, rkyv::rancor::Error>(&aligned)
            .map_err(|e| (12, format!("statistics do not decode: {e}")))
    }
}

/// Where a wide partition's row-index block starts, and the range deletion
/// open at that point (so a read can start there without scanning before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIndexBlock {
    /// Offset of the block's first atom, relative to the partition's atoms.
    pub offset: u64,
    pub first_position: ClusteringPosition,
    pub open_deletion: Option<DeletionTime>,
}

/// Where one partition is in the logical data stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: PartitionKey,
    /// Logical offset of the partition (its key).
    pub offset: u64,
    /// Bytes of key and header; atoms start at `offset + header_len`.
    pub header_len: u64,
    /// Bytes of atoms, end tag included.
    pub atoms_len: u64,
    /// At least one block; the first starts at offset 0.
    pub blocks: RowIndexBlocks,
}

/// A partition's row-index blocks: one, inline, for a narrow partition
/// (most of them), so that listing narrow partitions allocates nothing.
pub type RowIndexBlocks = smallvec::SmallVec<[RowIndexBlock; 1]>;

impl IndexEntry {
    pub fn atoms_offset(&self) -> u64 {
        self.offset + self.header_len
    }

    /// The end (relative to the atoms) of block `i`.
    pub fn block_end(&self, i: usize) -> u64 {
        self.blocks
            .get(i + 1)
            .map_or(self.atoms_len, |next| next.offset)
    }
}

/// Where one partition is, as its index entry says before the key is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHead {
    pub token: i64,
    pub offset: u64,
    pub header_len: u64,
    pub atoms_len: u64,
}

impl EntryHead {
    /// The index entry of `key`, with its row-index blocks.
    pub fn with_key(self, key: PartitionKey, blocks: RowIndexBlocks) -> IndexEntry {
        IndexEntry {
            key,
            offset: self.offset,
            header_len: self.header_len,
            atoms_len: self.atoms_len,
            blocks,
        }
    }
}

/// Encodes or decodes the entries of one index block in order: each entry's
/// token and offset follow from the one before.
#[derive(Debug, Default)]
pub struct IndexBlockCursor {
    /// The previous entry's token and the offset just past its partition.
    previous: Option<(i64, u64)>,
}

impl IndexBlockCursor {
    /// Appends `entry`; entries come in key order, back to back in the data.
    pub fn encode(&mut self, entry: &IndexEntry, w: &mut Writer) {
        let token = entry.key.token;
        match self.previous {
            None => {
                w.fixed_i64(token);
                w.varint(entry.offset);
            }
            Some((previous_token, next_offset)) => {
                assert!(token >= previous_token, "index entries out of token order");
                assert_eq!(
                    entry.offset, next_offset,
                    "partitions must lie back to back in the data"
                );
                w.varint(token.wrapping_sub(previous_token) as u64);
            }
        }
        w.varint(entry.header_len);
        w.varint(entry.atoms_len);
        let narrow = matches!(entry.blocks.as_slice(),
            [only] if only.offset == 0 && only.open_deletion.is_none());
        if narrow {
            w.varint(0);
        } else {
            w.varint(entry.blocks.len() as u64);
            for block in &entry.blocks {
                w.varint(block.offset);
                w.position(&block.first_position);
                w.opt_deletion(&block.open_deletion);
            }
        }
        self.previous = Some((token, entry.offset + entry.header_len + entry.atoms_len));
    }

    /// Reads the next entry up to its row-index blocks; follow with
    /// [`Self::blocks`] or [`Self::skip_blocks`].
    pub fn head(&mut self, r: &mut Reader<'_>) -> Result<EntryHead, DecodeError> {
        let (token, offset) = match self.previous {
            None => (r.fixed_i64()?, r.varint()?),
            Some((previous_token, next_offset)) => {
                let delta = r.varint()?;
                let token = previous_token.wrapping_add(delta as i64);
                if token < previous_token {
                    return Err(DecodeError {
                        offset: r.offset(),
                        reason: "index entries out of token order",
                    });
                }
                (token, next_offset)
            }
        };
        let header_len = r.varint()?;
        let atoms_len = r.varint()?;
        let end = offset
            .checked_add(header_len)
            .and_then(|e| e.checked_add(atoms_len))
            .ok_or(DecodeError {
                offset: r.offset(),
                reason: "index entry lengths overflow",
            })?;
        self.previous = Some((token, end));
        Ok(EntryHead {
            token,
            offset,
            header_len,
            atoms_len,
        })
    }

    /// The row-index blocks of the entry whose head was just read.
    pub fn blocks(r: &mut Reader<'_>) -> Result<RowIndexBlocks, DecodeError> {
        let count = r.u32_len(1 << 24, "too many row-index blocks")?;
        if count == 0 {
            return Ok(smallvec::smallvec![RowIndexBlock {
                offset: 0,
                first_position: ClusteringPosition::top(),
                open_deletion: None,
            }]);
        }
        let mut blocks = RowIndexBlocks::with_capacity(count.min(1024));
        for _ in 0..count {
            blocks.push(RowIndexBlock {
                offset: r.varint()?,
                first_position: r.position()?,
                open_deletion: r.opt_deletion()?,
            });
        }
        Ok(blocks)
    }

    /// Moves past the row-index blocks of the entry whose head was just
    /// read, copying nothing (a lookup passes over most entries).
    pub fn skip_blocks(r: &mut Reader<'_>) -> Result<(), DecodeError> {
        let count = r.u32_len(1 << 24, "too many row-index blocks")?;
        for _ in 0..count {
            r.varint()?;
            r.skip_position()?;
            r.opt_deletion()?;
        }
        Ok(())
    }
}

/// Frames a block as `u32 len, u32 crc32, payload`.
pub fn frame_block(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads a framed block at `offset` of `file`, checking its checksum when
/// `verify` (a reader may skip a block it verified before); errors say
/// where and why.
pub fn read_framed_block(file: &[u8], offset: u64, verify: bool) -> Result<&[u8], (u64, String)> {
    let at = usize::try_from(offset).map_err(|_| (offset, "offset too large".to_string()))?;
    let header = file
        .get(at..at + 8)
        .ok_or((offset, "block header past the end of the file".to_string()))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > BLOCK_BYTES_MAX {
        return Err((offset, format!("block length {len} is implausible")));
    }
    let payload = file
        .get(at + 8..at + 8 + len as usize)
        .ok_or((offset, "block runs past the end of the file".to_string()))?;
    if verify {
        let actual = crc32fast::hash(payload);
        if actual != stored {
            return Err((
                offset,
                format!("checksum mismatch: expected {stored:#010x}, found {actual:#010x}"),
            ));
        }
    }
    Ok(payload)
}
