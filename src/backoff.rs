//! Delays between the attempts of a retry: doubling from a first delay up to a cap, with
//! jitter so that many workers retrying one dependency do not knock in step, and an optional
//! deadline after which no further attempt is made. The clock is a parameter, so that tests
//! drive it.

use std::time::{Duration, Instant};

/// What a retry loop asks of time.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// The machine's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// How a retry spaces its attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    pub first: Duration,
    pub cap: Duration,
    /// Each delay is shortened by up to this fraction (0 to 1), at random.
    pub jitter: f64,
    /// No attempt starts later than this after the first; `None`: retry for ever.
    pub deadline: Option<Duration>,
}

impl BackoffPolicy {
    pub const fn new(first: Duration, cap: Duration) -> Self {
        BackoffPolicy {
            first,
            cap,
            jitter: 0.2,
            deadline: None,
        }
    }

    pub const fn with_deadline(self, deadline: Duration) -> Self {
        BackoffPolicy {
            deadline: Some(deadline),
            ..self
        }
    }

    pub const fn without_jitter(self) -> Self {
        BackoffPolicy { jitter: 0.0, ..self }
    }

    /// A retry that starts now.
    pub fn start<C: Clock>(self, clock: C) -> Backoff<C> {
        let started = clock.now();
        Backoff {
            policy: self,
            clock,
            started,
            next: self.first,
            rng: fastrand::Rng::new(),
        }
    }
}

/// One retry in progress.
#[derive(Debug)]
pub struct Backoff<C: Clock = SystemClock> {
    policy: BackoffPolicy,
    clock: C,
    started: Instant,
    next: Duration,
    rng: fastrand::Rng,
}

impl<C: Clock> Backoff<C> {
    /// The wait before the next attempt, or `None` when that attempt would start past the
    /// deadline (the last wait is shortened to end on it).
    pub fn next_delay(&mut self) -> Option<Duration> {
        let jitter = self.policy.jitter.clamp(0.0, 1.0);
        let delay = self.next.mul_f64(1.0 - jitter * self.rng.f64());
        self.next = (self.next * 2).min(self.policy.cap);
        let Some(deadline) = self.policy.deadline else {
            return Some(delay);
        };
        let elapsed = self.clock.now().saturating_duration_since(self.started);
        let left = deadline.checked_sub(elapsed).filter(|left| !left.is_zero())?;
        Some(delay.min(left))
    }

    /// Back to the first delay (after a success, for a loop that goes on).
    pub fn reset(&mut self) {
        self.next = self.policy.first;
        self.started = self.clock.now();
    }

    /// Time since the retry started (or was reset).
    pub fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.started)
    }

    /// Sleeps for the next delay; false when the deadline has passed.
    pub fn sleep(&mut self) -> bool {
        match self.next_delay() {
            Some(delay) => {
                std::thread::sleep(delay);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A clock that moves only when the test says.
    #[derive(Clone)]
    struct TestClock {
        origin: Instant,
        offset: Rc<Cell<Duration>>,
    }

    impl TestClock {
        fn new() -> Self {
            TestClock {
                origin: Instant::now(),
                offset: Rc::new(Cell::new(Duration::ZERO)),
            }
        }
        fn advance(&self, by: Duration) {
            self.offset.set(self.offset.get() + by);
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> Instant {
            self.origin + self.offset.get()
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut backoff = BackoffPolicy::new(S(1), S(10))
            .without_jitter()
            .start(TestClock::new());
        let delays: Vec<u64> = (0..6).map(|_| backoff.next_delay().unwrap().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Some(S(1)));
    }

    #[test]
    fn jitter_only_shortens_and_stays_within_its_fraction() {
        let mut backoff = BackoffPolicy::new(S(4), S(4)).start(TestClock::new());
        for _ in 0..200 {
            let delay = backoff.next_delay().unwrap();
            assert!(delay <= S(4) && delay >= S(4).mul_f64(0.8), "{delay:?}");
        }
    }

    #[test]
    fn no_attempt_starts_past_the_deadline() {
        let clock = TestClock::new();
        let mut backoff = BackoffPolicy::new(S(1), S(8))
            .without_jitter()
            .with_deadline(S(10))
            .start(clock.clone());
        let mut waited = Vec::new();
        while let Some(delay) = backoff.next_delay() {
            waited.push(delay.as_secs());
            clock.advance(delay);
        }
        assert_eq!(waited, [1, 2, 4, 3], "the last wait ends on the deadline");
        assert_eq!(backoff.elapsed(), S(10));
    }
}
