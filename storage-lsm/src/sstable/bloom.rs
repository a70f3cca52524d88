//! A bloom filter over partition keys, so a read skips SSTables that cannot
//! hold its partition.
//!
//! The hash is the partition's Murmur3 token, mixed once more (tokens a
//! caller chose need not be well spread). The filter is blocked: the hash
//! picks one 512-bit block (a cache line), and all `k` probes of a key fall
//! in it by double hashing, so a lookup costs one cache miss per SSTable
//! instead of one per probe. About 10 bits per key and 7 probes give ~1%
//! false positives.
//!
//! File layout (`Filter.db`): `u32 probes, u64 bits (a multiple of 512),
//! bit words (u64 LE)..., u32 crc32 of everything before it`.

use crate::model::PartitionKey;

/// Bits spent per key.
pub const BITS_PER_KEY: u64 = 10;
/// Probes per key.
pub const PROBES: u32 = 7;
/// Words per block: 512 bits, one cache line.
const BLOCK_WORDS: usize = 8;
const BLOCK_BITS: u32 = 64 * BLOCK_WORDS as u32;

/// Murmur3's 64-bit finalizer: spreads every input bit over the output.
fn mix(value: u64) -> u64 {
    let mut h = value;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A bloom filter sized when it is built.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    probes: u32,
    words: Vec<u64>,
}

impl BloomFilter {
    pub fn with_capacity(keys: u64) -> BloomFilter {
        let blocks = (keys.max(1) * BITS_PER_KEY).div_ceil(u64::from(BLOCK_BITS));
        BloomFilter {
            probes: PROBES,
            words: vec![0; blocks as usize * BLOCK_WORDS],
        }
    }

    /// A filter that answers "maybe" for every key (stands in for a damaged one).
    pub fn pass_all() -> BloomFilter {
        BloomFilter {
            probes: 1,
            words: vec![u64::MAX; BLOCK_WORDS],
        }
    }

    fn bit_count(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    /// The hash a key is filed under (a writer keeps these, not the keys,
    /// until it builds the filter).
    pub fn hash(key: &PartitionKey) -> u64 {
        mix(key.token as u64)
    }

    /// The block (its first word) and the probes' bits within it of a key
    /// with hash `h`.
    fn positions(&self, h: u64) -> (usize, impl Iterator<Item = u32>) {
        let blocks = (self.words.len() / BLOCK_WORDS) as u128;
        let block = ((u128::from(h) * blocks) >> 64) as usize;
        // The block took the hash's high bits; the probes take a second
        // mix, independent of the block.
        let inner = mix(h ^ 0x9e37_79b9_7f4a_7c15);
        let h1 = inner as u32;
        let h2 = (inner >> 32) as u32 | 1;
        let bits = (0..self.probes).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % BLOCK_BITS);
        (block * BLOCK_WORDS, bits)
    }

    pub fn insert(&mut self, key: &PartitionKey) {
        self.insert_hash(BloomFilter::hash(key));
    }

    /// Files a key by its [`BloomFilter::hash`].
    pub fn insert_hash(&mut self, h: u64) {
        let (first, bits) = self.positions(h);
        for bit in bits {
            if let Some(word) = self.words.get_mut(first + (bit / 64) as usize) {
                *word |= 1 << (bit % 64);
            }
        }
    }

    /// False means the key is certainly absent.
    pub fn may_contain(&self, key: &PartitionKey) -> bool {
        let (first, mut bits) = self.positions(BloomFilter::hash(key));
        let Some(block) = self.words.get(first..first + BLOCK_WORDS) else {
            return true;
        };
        bits.all(|bit| block[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.words.len() * 8);
        out.extend_from_slice(&self.probes.to_le_bytes());
        out.extend_from_slice(&self.bit_count().to_le_bytes());
        for word in &self.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a filter; `Err` carries the offset and reason of the damage.
    pub fn decode(bytes: &[u8]) -> Result<BloomFilter, (u64, String)> {
        if bytes.len() < 16 {
            return Err((0, "filter shorter than its header".into()));
        }
        let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes(crc_bytes.try_into().map_err(|_| (0, "crc".to_string()))?);
        let actual = crc32fast::hash(body);
        if stored != actual {
            return Err((
                body.len() as u64,
                format!("checksum mismatch: expected {stored:#010x}, found {actual:#010x}"),
            ));
        }
        let (probes, rest) = body.split_at(4);
        let (bits, words) = rest.split_at(8);
        let probes = u32::from_le_bytes(probes.try_into().map_err(|_| (0, "probes".to_string()))?);
        let bits = u64::from_le_bytes(bits.try_into().map_err(|_| (4, "bits".to_string()))?);
        if bits == 0
            || bits % u64::from(BLOCK_BITS) != 0
            || words.len() as u64 != bits / 8
            || probes == 0
            || probes > 32
        {
            return Err((4, "filter header does not match its size".into()));
        }
        let words = words
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
            .collect();
        Ok(BloomFilter { probes, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn no_false_negatives_and_few_false_positives() -> TestResult {
        let mut filter = BloomFilter::with_capacity(10_000);
        let key = |i: u64| {
            PartitionKey::new(
                (i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as i64,
                i.to_be_bytes().to_vec(),
            )
        };
        for i in 0..10_000 {
            filter.insert(&key(i));
        }
        let decoded = BloomFilter::decode(&filter.encode())
            .map_err(|(offset, reason)| format!("{reason} at {offset}"))?;
        assert!((0..10_000).all(|i| decoded.may_contain(&key(i))));
        let false_positives = (10_000..110_000)
            .filter(|&i| decoded.may_contain(&key(i)))
            .count();
        assert!(
            false_positives < 2_000,
            "{false_positives} false positives in 100k"
        );
        Ok(())
    }

    #[test]
    fn flipped_byte_is_detected() {
        let mut bytes = BloomFilter::with_capacity(100).encode();
        bytes[20] ^= 0x40;
        assert!(BloomFilter::decode(&bytes).is_err());
    }
}
