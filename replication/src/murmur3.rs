//! Cassandra's `Murmur3Partitioner`: the token of a partition key.
//!
//! This is MurmurHash3 x64 128-bit with seed 0, of which Cassandra keeps the
//! first 64-bit half as the token. Cassandra's Java implementation reads the
//! tail bytes as *signed* bytes and sign-extends them before shifting; drivers
//! copy that quirk, and so do we, or token-aware routing would send requests
//! to the wrong replica. A hash equal to `i64::MIN` becomes `i64::MAX`, since
//! `i64::MIN` is reserved as the ring's minimum token.
//!
//! Checked against every vector in `shared/data/murmur3_tokens.tsv`, computed
//! by the Python driver.

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

/// The token Cassandra's Murmur3Partitioner gives a partition key. An empty
/// key gets the minimum token, as in Cassandra.
pub fn token_of(key: &[u8]) -> i64 {
    if key.is_empty() {
        return i64::MIN;
    }
    murmur3_hash(key)
}

/// The raw 64-bit hash (first half of MurmurHash3 x64 128), normalised so
/// that it is never `i64::MIN`. The hash of empty input is 0.
pub fn murmur3_hash(key: &[u8]) -> i64 {
    let (h1, _h2) = hash3_x64_128(key);
    let token = h1 as i64;
    if token == i64::MIN {
        i64::MAX
    } else {
        token
    }
}

fn hash3_x64_128(key: &[u8]) -> (u64, u64) {
    let mut h1: u64 = 0;
    let mut h2: u64 = 0;
    let mut blocks = key.chunks_exact(16);
    for block in &mut blocks {
        let (lo, hi) = block.split_at(8);
        let k1 = u64::from_le_bytes(lo.try_into().unwrap_or([0; 8]));
        let k2 = u64::from_le_bytes(hi.try_into().unwrap_or([0; 8]));
        h1 ^= mix_k1(k1);
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(k2);
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, &byte) in tail.iter().enumerate() {
        // Java's `(long) byte` sign-extends: Cassandra's quirk, kept on purpose.
        let extended = i64::from(byte as i8) as u64;
        if i < 8 {
            k1 ^= extended << (8 * i);
        } else {
            k2 ^= extended << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= mix_k2(k2);
    }
    if !tail.is_empty() {
        h1 ^= mix_k1(k1);
    }
    let len = key.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn unhex(text: &str) -> Result<Vec<u8>, std::num::ParseIntError> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect()
    }

    /// Goal: our tokens equal a real driver's for every shared test vector.
    #[test]
    fn matches_every_driver_vector() -> TestResult {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/murmur3_tokens.tsv"
        );
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: {e} (shared/data must sit beside the repo)"))?;
        let mut checked = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "malformed vector line {line:?}");
            let expected: i64 = fields[3].parse()?;
            assert_eq!(
                murmur3_hash(&unhex(fields[2])?),
                expected,
                "vector {line:?}"
            );
            checked += 1;
        }
        assert!(checked >= 300, "only {checked} vectors read");
        Ok(())
    }

    #[test]
    fn empty_key_gets_minimum_token() {
        assert_eq!(token_of(b""), i64::MIN);
        assert_eq!(murmur3_hash(b""), 0);
    }
}
