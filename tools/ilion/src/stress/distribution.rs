//! Which key each operation touches: sequential, uniform, gaussian or zipf
//! over a key space `0..keys`.

use rand::Rng;
use rand_distr::{Distribution, Normal, Zipf};

/// The shape of the keys a workload draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DistributionKind {
    /// Key `i mod keys` for the i-th operation (a full pass in order).
    Sequential,
    /// Every key equally likely.
    Uniform,
    /// A bell around the middle of the key space (σ = keys / 6).
    Gaussian,
    /// A few hot keys (Zipf with exponent 1.1), hottest first.
    Zipf,
}

/// A key generator.
#[derive(Debug, Clone)]
pub enum KeyDistribution {
    Sequential { keys: u64 },
    Uniform { keys: u64 },
    Gaussian { keys: u64, normal: Normal<f64> },
    Zipf { keys: u64, zipf: Zipf<f64> },
}

/// Why a distribution cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("--keys must be at least 1 (got {0})")]
pub struct EmptyKeySpace(pub u64);

impl KeyDistribution {
    pub fn new(kind: DistributionKind, keys: u64) -> Result<KeyDistribution, EmptyKeySpace> {
        if keys == 0 {
            return Err(EmptyKeySpace(keys));
        }
        let middle = keys as f64 / 2.0;
        Ok(match kind {
            DistributionKind::Sequential => KeyDistribution::Sequential { keys },
            DistributionKind::Uniform => KeyDistribution::Uniform { keys },
            DistributionKind::Gaussian => KeyDistribution::Gaussian {
                keys,
                normal: Normal::new(middle, (keys as f64 / 6.0).max(1.0))
                    .map_err(|_| EmptyKeySpace(keys))?,
            },
            DistributionKind::Zipf => KeyDistribution::Zipf {
                keys,
                zipf: Zipf::new(keys, 1.1).map_err(|_| EmptyKeySpace(keys))?,
            },
        })
    }

    /// The key of operation number `op`.
    pub fn key(&self, op: u64, rng: &mut impl Rng) -> u64 {
        match self {
            KeyDistribution::Sequential { keys } => op % keys,
            KeyDistribution::Uniform { keys } => rng.gen_range(0..*keys),
            KeyDistribution::Gaussian { keys, normal } => {
                (normal.sample(rng).round().max(0.0) as u64).min(keys - 1)
            }
            // Zipf draws 1..=keys, 1 the most likely.
            KeyDistribution::Zipf { keys, zipf } => (zipf.sample(rng) as u64 - 1).min(keys - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn histogram(kind: DistributionKind, keys: u64, draws: u64) -> Vec<u64> {
        let distribution = KeyDistribution::new(kind, keys).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = vec![0u64; keys as usize];
        for op in 0..draws {
            counts[distribution.key(op, &mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn sequential_walks_the_key_space_in_order() {
        let d = KeyDistribution::new(DistributionKind::Sequential, 3).unwrap();
        let mut rng = rand::thread_rng();
        let keys: Vec<u64> = (0..7).map(|op| d.key(op, &mut rng)).collect();
        assert_eq!(keys, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn shapes_differ_as_named() {
        let uniform = histogram(DistributionKind::Uniform, 10, 100_000);
        assert!(
            uniform.iter().all(|&c| (8_000..12_000).contains(&c)),
            "{uniform:?}"
        );
        let gaussian = histogram(DistributionKind::Gaussian, 10, 100_000);
        assert!(gaussian[5] > 3 * gaussian[0], "{gaussian:?}");
        let zipf = histogram(DistributionKind::Zipf, 10, 100_000);
        assert!(zipf[0] > zipf[1] && zipf[1] > zipf[9], "{zipf:?}");
    }

    #[test]
    fn an_empty_key_space_is_refused() {
        assert!(KeyDistribution::new(DistributionKind::Uniform, 0).is_err());
    }
}
