//! Reconnect delays: exponential backoff from 1 s doubling to 60 s, with
//! jitter so that many forwarders do not reconnect in lockstep.

use std::time::Duration;

/// First delay.
pub const INITIAL: Duration = Duration::from_secs(1);
/// Largest delay.
pub const MAX: Duration = Duration::from_secs(60);

/// Backoff state: the nominal delay of the next attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    /// Fresh backoff; `seed` feeds the jitter (any value, e.g. the time).
    pub fn new(seed: u64) -> Self {
        Self {
            next: INITIAL,
            seed: seed | 1,
        }
    }

    /// Forget failures after a successful connection.
    pub fn reset(&mut self) {
        self.next = INITIAL;
    }

    /// The delay before the next attempt: the nominal delay scaled by a
    /// random factor in [0.5, 1.0]; the nominal delay then doubles, up to
    /// [`MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(MAX);
        let fraction = 0.5 + 0.5 * self.random_unit();
        nominal.mul_f64(fraction)
    }

    /// xorshift64*: a uniform value in [0, 1).
    fn random_unit(&mut self) -> f64 {
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        let x = self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(42);
        let mut nominal = INITIAL;
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            nominal = (nominal * 2).min(MAX);
        }
        assert!(b.next_delay() >= MAX / 2);
        b.reset();
        assert!(b.next_delay() <= INITIAL);
    }

    #[test]
    fn jitter_varies() {
        let mut b = Backoff::new(7);
        let a: Vec<Duration> = (0..5)
            .map(|_| {
                b.reset();
                b.next_delay()
            })
            .collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }
}
