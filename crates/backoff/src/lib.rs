//! Reconnect and retry delays: exponential backoff with jitter, written once
//! for every driver that reconnects or retries (the browser MQTT client,
//! SpecClient's re-reads and re-subscribes, `ttf`, and mqttspec-server's
//! link to an external broker).
//!
//! The n-th delay after a success is `first * 2^n`, capped at `max`, scaled
//! by a jitter factor in [0.5, 1.0] so that many clients cut off together do
//! not come back in lockstep ("equal jitter"). Like the other cores here it
//! reads no clock and owns no random generator: the driver passes a uniform
//! random number in [0, 1) (`Math.random()` in the browser, [`random_unit`]
//! natively) to [`Backoff::next_delay`].

#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// A uniform number in [0, 1) for jitter, from std's randomly keyed hasher
/// (fresh keys per call on platforms with an OS random source): enough to
/// spread reconnections, not for secrets. Browsers use `Math.random()`.
pub fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Backoff state: the nominal delay of the next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `first`, doubling per failure up to `max` (at least `first`).
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max: max.max(first),
            next: first,
        }
    }

    /// [`Backoff::new`] with milliseconds (the unit of browser timers).
    pub fn from_millis(first: u32, max: u32) -> Self {
        Self::new(
            Duration::from_millis(u64::from(first)),
            Duration::from_millis(u64::from(max)),
        )
    }

    /// Forget the failures: the next delay is `first` again (call after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The delay before the next attempt: the nominal delay scaled by
    /// `0.5 + 0.5 * random` (`random` in [0, 1), clamped); the nominal delay
    /// then doubles, up to `max`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let nominal = self.next;
        self.next = nominal.saturating_mul(2).min(self.max);
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Not `mul_f64`: its panic path (and message) would be linked into
        // the browser client's wasm; `as` saturates and the factor is <= 1.
        let nanos = nominal.as_nanos() as f64 * (0.5 + 0.5 * random);
        Duration::from_nanos(nanos as u64)
    }

    /// [`Backoff::next_delay`] in whole milliseconds, saturating at `u32::MAX`.
    pub fn next_delay_ms(&mut self, random: f64) -> u32 {
        u32::try_from(self.next_delay(random).as_millis()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::from_millis(100, 1_000);
        let top: Vec<u32> = (0..6).map(|_| b.next_delay_ms(1.0)).collect();
        assert_eq!(top, [100, 200, 400, 800, 1_000, 1_000]);
        b.reset();
        assert_eq!(b.next_delay_ms(0.0), 50, "half the first delay at jitter 0");
    }

    #[test]
    fn a_cap_below_the_first_delay_is_the_first_delay() {
        let mut b = Backoff::from_millis(500, 10);
        assert_eq!(b.next_delay_ms(1.0), 500);
        assert_eq!(b.next_delay_ms(1.0), 500);
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|r| (0.0..1.0).contains(r)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn out_of_range_random_numbers_are_clamped() {
        let mut b = Backoff::from_millis(1_000, 1_000);
        assert_eq!(b.next_delay_ms(f64::NAN), 500);
        assert_eq!(b.next_delay_ms(-3.0), 500);
        assert_eq!(b.next_delay_ms(7.0), 1_000);
    }

    proptest! {
        /// Every delay lies in [nominal / 2, nominal], the nominal delay
        /// doubles up to the cap, and huge values saturate instead of panicking.
        #[test]
        fn delays_stay_within_half_and_whole_of_the_nominal(
            first in 0u64..=u64::MAX / 4,
            max in 0u64..=u64::MAX / 4,
            randoms in proptest::collection::vec(0.0f64..1.0, 1..80),
        ) {
            let (first, max) = (Duration::from_nanos(first), Duration::from_nanos(max));
            let mut b = Backoff::new(first, max);
            let mut nominal = first;
            for r in randoms {
                let d = b.next_delay(r);
                prop_assert!(d <= nominal && d >= nominal / 2, "{d:?} vs {nominal:?}");
                nominal = nominal.saturating_mul(2).min(max.max(first));
            }
        }
    }
}
