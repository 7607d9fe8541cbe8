//! Quarantine: a plugin that traps `max_traps` times within `window` is
//! refused until an operator releases it, so a broken or hostile plugin
//! cannot burn the host's time call after call.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::TrapReason;

/// When a plugin is quarantined.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinePolicy {
    pub max_traps: usize,
    pub window: Duration,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            max_traps: 3,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct HealthState {
    recent: VecDeque<Instant>,
    total_traps: u64,
    last: Option<TrapReason>,
    quarantined: bool,
}

/// A plugin's trap history and quarantine flag.
#[derive(Debug)]
pub(crate) struct Health {
    policy: QuarantinePolicy,
    state: Mutex<HealthState>,
}

/// Why calls are refused.
#[derive(Debug, Clone)]
pub(crate) struct Quarantine {
    pub traps: usize,
    pub last: TrapReason,
}

impl Health {
    pub fn new(policy: QuarantinePolicy) -> Self {
        Health {
            policy,
            state: Mutex::new(HealthState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a trap; returns true if the plugin is now quarantined.
    pub fn record_trap(&self, reason: &TrapReason) -> bool {
        self.record_trap_at(reason, Instant::now())
    }

    fn record_trap_at(&self, reason: &TrapReason, now: Instant) -> bool {
        let mut state = self.lock();
        state.total_traps += 1;
        state.last = Some(reason.clone());
        state.recent.push_back(now);
        while state
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.window)
        {
            state.recent.pop_front();
        }
        if state.recent.len() >= self.policy.max_traps {
            state.quarantined = true;
        }
        state.quarantined
    }

    /// Refuses calls while quarantined.
    pub fn check(&self) -> Result<(), Quarantine> {
        let state = self.lock();
        if state.quarantined {
            return Err(Quarantine {
                traps: state.recent.len(),
                last: state
                    .last
                    .clone()
                    .unwrap_or(TrapReason::Other("unknown".into())),
            });
        }
        Ok(())
    }

    pub fn is_quarantined(&self) -> bool {
        self.lock().quarantined
    }

    pub fn total_traps(&self) -> u64 {
        self.lock().total_traps
    }

    /// Lifts the quarantine and forgets recent traps.
    pub fn release(&self) {
        let mut state = self.lock();
        state.quarantined = false;
        state.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traps_outside_the_window_do_not_count() {
        let health = Health::new(QuarantinePolicy {
            max_traps: 2,
            window: Duration::from_secs(60),
        });
        let start = Instant::now();
        assert!(!health.record_trap_at(&TrapReason::Panic, start));
        let later = start + Duration::from_secs(61);
        assert!(
            !health.record_trap_at(&TrapReason::Panic, later),
            "the first trap has left the window"
        );
        assert!(health.record_trap_at(&TrapReason::StackOverflow, later + Duration::from_secs(1)));
        let q = health.check().unwrap_err();
        assert_eq!((q.traps, q.last), (2, TrapReason::StackOverflow));
        health.release();
        assert!(health.check().is_ok());
        assert_eq!(health.total_traps(), 3);
    }
}
