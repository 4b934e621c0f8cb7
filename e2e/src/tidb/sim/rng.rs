//! A small seeded random generator (SplitMix64) for the simulator's workload decisions.
//!
//! The same seed must give the same DDL sequence on every machine and every run, so the
//! generator is ours: fixed algorithm, no global state, independent streams derived from
//! `(seed, stream)`.

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

/// SplitMix64's output function, also used to spread `(seed, stream)` pairs apart.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    /// An independent stream for `stream` under `seed` (e.g. one per workload step).
    pub fn derive(seed: u64, stream: u64) -> SimRng {
        SimRng::new(mix(seed ^ mix(stream.wrapping_add(GOLDEN_GAMMA))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift keeps the bias below 2^-64 per draw, plenty for a workload.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a collection of `len` items; 0 when `len` is 0.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..=hi` (i128 so every integer column type fits).
    pub fn range_i128(&mut self, lo: i128, hi: i128) -> i128 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u128 + 1;
        let draw = (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())) % span;
        lo + draw as i128
    }

    /// Uniform in `lo..=hi`.
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        self.range_i128(i128::from(lo), i128::from(hi)) as i64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.index(items.len()))
    }

    /// An index chosen with the given weights (0 when all weights are 0).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut draw = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if draw < w {
                return i;
            }
            draw -= w;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = (0..5).map(|_| SimRng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = SimRng::derive(7, 1);
        let mut y = SimRng::derive(7, 2);
        assert_ne!(x.next_u64(), y.next_u64());
        let mut r1 = SimRng::derive(42, 9);
        let mut r2 = SimRng::derive(42, 9);
        for _ in 0..100 {
            assert_eq!(r1.next_u64(), r2.next_u64());
        }
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = SimRng::new(1);
        for _ in 0..1000 {
            let v = r.range_i128(-3, 3);
            assert!((-3..=3).contains(&v));
            assert!(r.below(10) < 10);
            let full = r.range_i128(i128::from(i64::MIN), i128::from(u64::MAX));
            assert!(full >= i128::from(i64::MIN) && full <= i128::from(u64::MAX));
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.weighted(&[0, 0, 5]), 2);
        assert!(r.pick::<u8>(&[]).is_none());
    }
}
