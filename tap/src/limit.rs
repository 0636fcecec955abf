//! New requests per second over all of a stream's pods (`--max-rps`).

use std::time::Instant;

/// A token bucket: `rate` tokens a second, holding at most one second's worth (at least one).
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            at: now,
        }
    }

    /// Whether one more request may be shown at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn admits_the_rate_and_no_more() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, t0);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10);
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // Idle time does not bank more than a second's worth.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..50).filter(|_| b.take(later)).count(), 10);
    }

    #[test]
    fn a_fraction_of_one_per_second_still_admits_one() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0.5, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0 + Duration::from_secs(1)));
        assert!(b.take(t0 + Duration::from_secs(2)));
    }
}
