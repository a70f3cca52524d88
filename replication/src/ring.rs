//! Token ring arithmetic: which share of the Murmur3 ring each endpoint owns.
//!
//! A token `t` owns the range (previous token, t]; the lowest token also owns
//! the wrap-around range past the highest one. Effective ownership counts a
//! range for every endpoint that replicates it, walking the ring clockwise to
//! the next `replication_factor` distinct endpoints (SimpleStrategy's rule;
//! NetworkTopologyStrategy with one data center and one rack places the same
//! way).
//!
//! Also the range arithmetic of scans: [`segments`] cuts a token range
//! into the ring's ranges, each with the token that owns it.

use std::ops::Bound;

use storage_lsm::TokenRange;

use crate::topology::Ring;

/// Size of the whole token space (2^64) as a float.
const RING_SIZE: f64 = 18_446_744_073_709_551_616.0;

/// `(token, endpoint index)` of every endpoint's tokens, sorted by token.
fn sorted_tokens(tokens_by_endpoint: &[Vec<i64>]) -> Vec<(i64, usize)> {
    let mut ring: Vec<(i64, usize)> = tokens_by_endpoint
        .iter()
        .enumerate()
        .flat_map(|(endpoint, tokens)| tokens.iter().map(move |t| (*t, endpoint)))
        .collect();
    ring.sort_unstable();
    ring
}

/// Width of the range a token owns, given the token before it on a ring of
/// `ring_len` tokens (a lone token owns the whole ring; a token equal to the
/// one before it owns nothing).
fn range_width(previous: i64, token: i64, ring_len: usize) -> f64 {
    if ring_len == 1 {
        RING_SIZE
    } else {
        token.wrapping_sub(previous) as u64 as f64
    }
}

/// Fraction of the ring (0..=1) each endpoint replicates with
/// `replication_factor` replicas per range (1 = primary ownership).
pub fn ownership(tokens_by_endpoint: &[Vec<i64>], replication_factor: usize) -> Vec<f64> {
    let ring = sorted_tokens(tokens_by_endpoint);
    let mut owned = vec![0.0; tokens_by_endpoint.len()];
    let Some(&(last, _)) = ring.last() else {
        return owned;
    };
    let mut previous = last;
    for (position, &(token, _)) in ring.iter().enumerate() {
        let width = range_width(previous, token, ring.len()) / RING_SIZE;
        let mut replicas: Vec<usize> = Vec::with_capacity(replication_factor);
        for &(_, endpoint) in ring.iter().cycle().skip(position).take(ring.len()) {
            if replicas.len() == replication_factor {
                break;
            }
            if !replicas.contains(&endpoint) {
                replicas.push(endpoint);
            }
        }
        for endpoint in replicas {
            if let Some(share) = owned.get_mut(endpoint) {
                *share += width;
            }
        }
        previous = token;
    }
    owned
}

/// Tokens for a node joining a ring where `existing` endpoints own these
/// tokens, so that every endpoint ends with about the same share.
///
/// Each new token takes a piece of the largest range of the endpoint that
/// owns most right now, sized so that the newcomer's tokens add up to
/// 1/(endpoints + 1) of the ring. An empty ring gets `count` evenly spaced
/// tokens starting at `offset`.
pub fn allocate_tokens(existing: &[Vec<i64>], count: usize, offset: i64) -> Vec<i64> {
    let count = count.max(1);
    let mut ring = sorted_tokens(existing);
    if ring.is_empty() {
        let step = (RING_SIZE / count as f64) as u64;
        return (0..count as u64)
            .map(|i| offset.wrapping_add(i.wrapping_mul(step) as i64))
            .collect();
    }
    let newcomer = existing.len();
    let per_token = RING_SIZE / ((existing.len() + 1) * count) as f64;
    let mut owned: Vec<f64> = {
        let mut shares = ownership(existing, 1);
        shares.iter_mut().for_each(|s| *s *= RING_SIZE);
        shares.push(0.0);
        shares
    };
    let mut tokens = Vec::with_capacity(count);
    for _ in 0..count {
        // The endpoint owning most (not the newcomer), then its largest range.
        let Some(richest) = (0..newcomer).max_by(|a, b| owned[*a].total_cmp(&owned[*b])) else {
            break;
        };
        let mut best: Option<(f64, i64)> = None;
        for (position, &(token, endpoint)) in ring.iter().enumerate() {
            if endpoint != richest {
                continue;
            }
            let previous = if position == 0 {
                ring.last().map_or(token, |(t, _)| *t)
            } else {
                ring[position - 1].0
            };
            let width = range_width(previous, token, ring.len());
            if best.is_none_or(|(w, _)| width > w) {
                best = Some((width, previous));
            }
        }
        let Some((width, start)) = best else {
            break;
        };
        // Leave the old owner some of its range even when it is narrow.
        let take = per_token.min(width * 0.9).max(1.0);
        let token = start.wrapping_add(take as u64 as i64);
        if ring.iter().any(|(t, _)| *t == token) {
            continue;
        }
        owned[richest] -= take;
        owned[newcomer] += take;
        tokens.push(token);
        ring.push((token, newcomer));
        ring.sort_unstable();
    }
    tokens.sort_unstable();
    tokens
}

/// Whether `token` is inside `range`.
pub(crate) fn contains(range: &TokenRange, token: i64) -> bool {
    let after_start = match range.start {
        Bound::Unbounded => true,
        Bound::Included(s) => token >= s,
        Bound::Excluded(s) => token > s,
    };
    let before_end = match range.end {
        Bound::Unbounded => true,
        Bound::Included(e) => token <= e,
        Bound::Excluded(e) => token < e,
    };
    after_start && before_end
}

/// The later of two start bounds.
fn max_start(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |bound: &Bound<i64>| match bound {
        Bound::Unbounded => (i128::MIN, 0),
        Bound::Included(t) => (i128::from(*t), 0),
        Bound::Excluded(t) => (i128::from(*t), 1),
    };
    if key(&a) >= key(&b) {
        a
    } else {
        b
    }
}

/// The earlier of two end bounds.
fn min_end(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |bound: &Bound<i64>| match bound {
        Bound::Unbounded => (i128::MAX, 0),
        Bound::Included(t) => (i128::from(*t), 0),
        Bound::Excluded(t) => (i128::from(*t), -1),
    };
    if key(&a) <= key(&b) {
        a
    } else {
        b
    }
}

/// Is the range empty?
fn is_empty(range: &TokenRange) -> bool {
    match (range.start, range.end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e)) | (Bound::Excluded(s), Bound::Included(e)) => {
            s >= e
        }
        (Bound::Excluded(s), Bound::Excluded(e)) => s >= e || s.checked_add(1) == Some(e),
    }
}

/// The ring's ranges that meet `range`, in token order, each with the
/// token that owns it; from the one holding `start_token` when resuming.
pub(crate) fn segments(
    ring: &Ring,
    range: &TokenRange,
    start_token: Option<i64>,
) -> Vec<(TokenRange, i64)> {
    let tokens: Vec<i64> = ring.tokens().iter().map(|(t, _)| *t).collect();
    let (Some(&first), Some(&last)) = (tokens.first(), tokens.last()) else {
        return Vec::new();
    };
    let mut pieces = vec![(Bound::Unbounded, Bound::Included(first), first)];
    for pair in tokens.windows(2) {
        if let [low, high] = pair {
            if low != high {
                pieces.push((Bound::Excluded(*low), Bound::Included(*high), *high));
            }
        }
    }
    pieces.push((Bound::Excluded(last), Bound::Unbounded, first));
    pieces
        .into_iter()
        .map(|(start, end, owner)| {
            (
                TokenRange {
                    start: max_start(start, range.start),
                    end: min_end(end, range.end),
                },
                owner,
            )
        })
        .filter(|(segment, _)| !is_empty(segment))
        .filter(|(segment, _)| {
            start_token.is_none_or(|t| {
                contains(segment, t)
                    || matches!(segment.start, Bound::Included(s) | Bound::Excluded(s) if s >= t)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_nodes_end_balanced() {
        let mut endpoints: Vec<Vec<i64>> = Vec::new();
        for n in 1..=6 {
            let tokens = allocate_tokens(&endpoints, 16, 12_345);
            assert_eq!(tokens.len(), 16, "node {n}");
            endpoints.push(tokens);
            let shares = ownership(&endpoints, 1);
            let fair = 1.0 / n as f64;
            for share in &shares {
                assert!((share - fair).abs() < 0.02, "{n} nodes: {shares:?}");
            }
            let mut all: Vec<i64> = endpoints.iter().flatten().copied().collect();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), 16 * n, "tokens are distinct");
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn one_endpoint_owns_everything() {
        assert_eq!(ownership(&[vec![42]], 1), vec![1.0]);
        assert_eq!(ownership(&[vec![-5, 7, 100]], 3), vec![1.0]);
    }

    #[test]
    fn halves_and_quarters() {
        // Tokens at 0 and i64::MIN split the ring in two equal halves.
        let owned = ownership(&[vec![0], vec![i64::MIN]], 1);
        assert!(close(owned[0], 0.5) && close(owned[1], 0.5), "{owned:?}");
        // a owns (MIN, MIN/2]: a quarter; b owns the other three quarters.
        let owned = ownership(&[vec![i64::MIN / 2], vec![i64::MIN]], 1);
        assert!(close(owned[0], 0.25) && close(owned[1], 0.75), "{owned:?}");
    }

    #[test]
    fn replication_factor_adds_up() {
        let endpoints = vec![vec![-100, 5_000], vec![3, 9_000_000], vec![i64::MAX - 1]];
        let primary = ownership(&endpoints, 1);
        assert!(close(primary.iter().sum::<f64>(), 1.0), "{primary:?}");
        let two = ownership(&endpoints, 2);
        assert!(close(two.iter().sum::<f64>(), 2.0), "{two:?}");
        // More replicas than endpoints: every endpoint holds everything.
        assert_eq!(ownership(&endpoints, 5), vec![1.0, 1.0, 1.0]);
        assert!(ownership(&[], 1).is_empty());
        // A token two endpoints share is owned by one of them, not twice.
        let shared = ownership(&[vec![0, 100], vec![100]], 1);
        assert!(close(shared.iter().sum::<f64>(), 1.0), "{shared:?}");
    }

    #[test]
    fn segments_cover_the_range_once_in_token_order() {
        let ring = crate::topology::tests::two_dc_ring();
        let all = segments(&ring, &TokenRange::all(), None);
        let owners: Vec<i64> = all.iter().map(|(_, o)| *o).collect();
        assert_eq!(owners, vec![0, 100, 200, 0]);
        assert_eq!(all[0].0.end, Bound::Included(0));
        assert_eq!(all[3].0.start, Bound::Excluded(200));
        let part = TokenRange {
            start: Bound::Excluded(50),
            end: Bound::Included(150),
        };
        let some = segments(&ring, &part, None);
        assert_eq!(some.len(), 2);
        assert_eq!(some[0].0.start, Bound::Excluded(50));
        assert_eq!(some[1].0.end, Bound::Included(150));
        let resumed = segments(&ring, &TokenRange::all(), Some(150));
        assert_eq!(
            resumed.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
            vec![200, 0]
        );
    }
}
