//! A circuit breaker per node: stop calling a node that keeps failing, probe it now and then.
//!
//! Per-row backoff alone would still send every due row of a dead node its own doomed call
//! (thousands after an outage), each waiting for the deadline. The breaker turns "the node
//! is down" into one decision (docs/reliability.md E7):
//!
//! - **closed**: calls go through; `failure_threshold` consecutive *node* failures
//!   (transport errors, deadlines, 5xx) open it. An answer that blames the request (401,
//!   400, 409) proves the node is up and resets the count;
//! - **open**: no calls for `cooldown`; the node's rows are not even claimed, so they keep
//!   their place and attempts count;
//! - **half-open**: after the cooldown, one probe call; success closes the breaker, failure
//!   opens it for another cooldown.
//!
//! Each provisioning worker owns the breaker of its node, so the state is bounded by the
//! catalog's node count and needs no lock. Time is passed in, which keeps it testable.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call as much as there is work.
    Call,
    /// Half-open: make exactly one call and report it.
    Probe,
    /// Open (or a probe is out): no calls for this long.
    Wait(Duration),
}

/// How a call went, as far as the node's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallHealth {
    /// The node answered (success, or an error about the request itself).
    Answered,
    /// The node did not answer properly: transport error, deadline, 5xx.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                cooldown: config.cooldown,
            },
            state: State::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// True unless fully closed (for the `nodes_breaker_open` gauge).
    pub fn is_tripped(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Call,
            State::Open { until } if now < until => Admission::Wait(until - now),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
            State::HalfOpen { probing: true } => Admission::Wait(self.config.cooldown),
        }
    }

    /// The probe found no work, so nothing was learnt: the next admit may probe again.
    pub fn probe_unused(&mut self) {
        if self.state == (State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }

    pub fn record(&mut self, health: CallHealth, now: Instant) {
        self.state = match (health, self.state) {
            (CallHealth::Answered, _) => State::Closed { failures: 0 },
            (CallHealth::Failed, State::Closed { failures }) => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    State::Open {
                        until: now + self.config.cooldown,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            (CallHealth::Failed, State::HalfOpen { .. } | State::Open { .. }) => State::Open {
                until: now + self.config.cooldown,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_waits_out_the_cooldown() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..2 {
            assert_eq!(b.admit(t0), Admission::Call);
            b.record(CallHealth::Failed, t0);
        }
        assert!(!b.is_tripped(), "two failures are below the threshold");
        b.record(CallHealth::Failed, t0);
        assert!(b.is_tripped());
        assert_eq!(b.admit(t0), Admission::Wait(Duration::from_secs(10)));
        assert_eq!(
            b.admit(t0 + Duration::from_secs(4)),
            Admission::Wait(Duration::from_secs(6))
        );
    }

    #[test]
    fn an_answer_resets_the_count() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.record(CallHealth::Failed, t0);
        b.record(CallHealth::Failed, t0);
        b.record(CallHealth::Answered, t0);
        b.record(CallHealth::Failed, t0);
        b.record(CallHealth::Failed, t0);
        assert_eq!(b.state(), State::Closed { failures: 2 });
    }

    #[test]
    fn a_successful_probe_closes_it() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record(CallHealth::Failed, t0);
        }
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(later), Admission::Probe);
        // Only one probe at a time.
        assert!(matches!(b.admit(later), Admission::Wait(_)));
        b.record(CallHealth::Answered, later);
        assert_eq!(b.state(), State::Closed { failures: 0 });
        assert_eq!(b.admit(later), Admission::Call);
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_full_cooldown() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record(CallHealth::Failed, t0);
        }
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.admit(later), Admission::Probe);
        b.record(CallHealth::Failed, later);
        assert_eq!(
            b.state(),
            State::Open {
                until: later + Duration::from_secs(10)
            }
        );
        assert!(matches!(
            b.admit(later + Duration::from_secs(9)),
            Admission::Wait(_)
        ));
        assert_eq!(b.admit(later + Duration::from_secs(10)), Admission::Probe);
    }

    #[test]
    fn an_unused_probe_is_offered_again() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record(CallHealth::Failed, t0);
        }
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(later), Admission::Probe);
        b.probe_unused();
        assert_eq!(b.admit(later), Admission::Probe);
    }
}
