//! A log-linear latency histogram over microseconds: exact below 64 µs, then 32 buckets per
//! power of two (about 3% wide), so percentiles are cheap and memory is fixed.

use super::{Latency, round};
use std::time::Duration;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this are their own bucket.
const LINEAR: u64 = 2 * SUB as u64;
const BUCKETS: usize = (65 - SUB_BITS as usize) * SUB;

/// Latencies counted in buckets.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

impl Histogram {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(us)] += 1;
        self.count += 1;
        self.sum_us += u128::from(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// The value (µs) at quantile `q` (0..=1): the middle of its bucket, within min and max.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bounds(i);
                return (low + width / 2).clamp(self.min_us, self.max_us);
            }
        }
        self.max_us
    }

    /// The non-empty buckets as `(middle µs, count)`, lowest first: enough to merge
    /// histograms of several windows and take their quantiles ([`quantile_of_buckets`]).
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, &n)| {
                let (low, width) = bounds(i);
                ((low + width / 2).clamp(self.min_us, self.max_us), n)
            })
            .collect()
    }

    /// The summary in milliseconds.
    pub fn latency(&self) -> Latency {
        if self.count == 0 {
            return Latency::default();
        }
        let ms = |us: u64| round(us as f64 / 1e3, 3);
        Latency {
            count: self.count,
            min: ms(self.min_us),
            mean: round(self.sum_us as f64 / self.count as f64 / 1e3, 3),
            p50: ms(self.quantile_us(0.50)),
            p95: ms(self.quantile_us(0.95)),
            p99: ms(self.quantile_us(0.99)),
            max: ms(self.max_us),
        }
    }
}

/// The value (µs) at quantile `q` of `(value, count)` pairs sorted by value, as
/// [`Histogram::buckets`] gives them (merged from several, still sorted); 0 when empty.
pub fn quantile_of_buckets(buckets: &[(u64, u64)], q: f64) -> u64 {
    let count: u64 = buckets.iter().map(|(_, n)| n).sum();
    if count == 0 {
        return 0;
    }
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    for &(value, n) in buckets {
        seen += n;
        if seen >= rank {
            return value;
        }
    }
    buckets.last().map_or(0, |(v, _)| *v)
}

/// The bucket of a value.
fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    // The top SUB_BITS + 1 bits: the leading one and the sub-bucket.
    let shift = 63 - us.leading_zeros() - SUB_BITS;
    shift as usize * SUB + (us >> shift) as usize
}

/// A bucket's lowest value and width.
fn bounds(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, 1);
    }
    let shift = (i / SUB - 1) as u32;
    let mantissa = (i % SUB + SUB) as u64;
    (mantissa << shift, 1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        for us in (0..100_000).chain([u64::MAX / 2, u64::MAX]) {
            let (low, width) = bounds(bucket(us));
            assert!(
                low <= us && us - low < width,
                "{us} not in [{low}, +{width})"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for i in 1..BUCKETS {
            let (low, width) = bounds(i - 1);
            assert_eq!(bounds(i).0, low + width, "gap after bucket {}", i - 1);
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let l = h.latency();
        assert_eq!((l.count, l.min, l.max), (100, 1.0, 100.0));
        assert!((l.mean - 50.5).abs() < 1e-9);
        for (got, want) in [(l.p50, 50.0), (l.p95, 95.0), (l.p99, 99.0)] {
            assert!((got - want).abs() / want < 0.035, "{got} vs {want}");
        }
        assert_eq!(Histogram::default().latency(), Latency::default());
    }

    #[test]
    fn buckets_give_the_same_quantiles() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let buckets = h.buckets();
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 100);
        assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        for q in [0.5, 0.95, 0.99, 1.0] {
            assert_eq!(quantile_of_buckets(&buckets, q), h.quantile_us(q), "q={q}");
        }
        assert_eq!(quantile_of_buckets(&[], 0.99), 0);
    }
}
