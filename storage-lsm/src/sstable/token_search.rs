//! Finds a token in a sorted array of tokens (an SSTable's summary) by
//! interpolation: Murmur3 tokens are spread evenly over the `i64` range, so
//! the array's first and last tokens predict where any token sits to within
//! a few hundred places. From the guess, a gallop brackets the answer and a
//! binary search finds it: a handful of nearby cache lines are read where a
//! plain binary search reads one far-apart line per halving. The answer is
//! exactly [`slice::partition_point`]'s, whatever the tokens' spread; an
//! uneven spread only makes the gallop longer.

/// The index of the first token not less than `token` (`tokens.len()` if
/// there is none), as `tokens.partition_point(|&t| t < token)`. `tokens`
/// must be sorted.
pub fn first_not_less(tokens: &[i64], token: i64) -> usize {
    let (Some(&low), Some(&high)) = (tokens.first(), tokens.last()) else {
        return 0;
    };
    if token <= low {
        return 0;
    }
    if token > high {
        return tokens.len();
    }
    // low < token <= high, so high > low and the guess is within bounds.
    let last = (tokens.len() - 1) as i128;
    let offset = i128::from(token) - i128::from(low);
    let span = i128::from(high) - i128::from(low);
    let guess = usize::try_from(offset * last / span).unwrap_or(0);
    let below = |i: usize| tokens.get(i).is_some_and(|&t| t < token);
    // Gallop to a bracket [lo, hi) with tokens[lo - 1] < token (or lo = 0)
    // and tokens[hi] >= token (or hi = len).
    let (mut lo, mut hi);
    if below(guess) {
        lo = guess + 1;
        let mut step = 1;
        hi = lo;
        while hi < tokens.len() && below(hi) {
            lo = hi + 1;
            hi = (hi + step).min(tokens.len());
            step *= 2;
        }
    } else {
        hi = guess;
        let mut step = 1;
        lo = hi;
        while lo > 0 && !below(lo - 1) {
            hi = lo - 1;
            lo = lo.saturating_sub(step);
            step *= 2;
        }
    }
    lo + tokens
        .get(lo..hi)
        .map_or(0, |bracket| bracket.partition_point(|&t| t < token))
}

#[cfg(test)]
mod tests {
    use super::first_not_less;
    use proptest::prelude::*;

    fn check(tokens: &[i64], token: i64) -> std::result::Result<(), TestCaseError> {
        prop_assert_eq!(
            first_not_less(tokens, token),
            tokens.partition_point(|&t| t < token),
            "tokens {:?}, token {}",
            tokens,
            token
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn agrees_with_partition_point_on_any_tokens(
            mut tokens in proptest::collection::vec(any::<i64>(), 0..200),
            probes in proptest::collection::vec(any::<i64>(), 1..20),
        ) {
            tokens.sort_unstable();
            for probe in probes {
                check(&tokens, probe)?;
            }
            // Every token present, and its neighbours.
            for &t in &tokens {
                check(&tokens, t)?;
                check(&tokens, t.saturating_add(1))?;
                check(&tokens, t.saturating_sub(1))?;
            }
        }

        #[test]
        fn agrees_with_partition_point_on_crowded_tokens(
            mut tokens in proptest::collection::vec(-5i64..5, 1..300),
            probe in -7i64..7,
        ) {
            tokens.sort_unstable();
            check(&tokens, probe)?;
        }
    }

    #[test]
    fn extremes_of_the_token_range() -> std::result::Result<(), TestCaseError> {
        let tokens = [i64::MIN, i64::MIN, -1, 0, 0, 1, i64::MAX, i64::MAX];
        for probe in [i64::MIN, i64::MIN + 1, -1, 0, 1, 2, i64::MAX - 1, i64::MAX] {
            check(&tokens, probe)?;
        }
        check(&[], 5)?;
        check(&[7], 7)?;
        check(&[7], 8)?;
        check(&[7], 6)
    }
}
