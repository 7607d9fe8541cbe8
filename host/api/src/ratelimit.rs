//! A token bucket per key (a tenant, a person, a tenant name asked for at
//! login), in memory (per server process), for a bounded number of keys.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::RateLimit;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How many keys a limiter remembers by default.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// Refills `rate` tokens a second up to `burst`; each request takes one.
///
/// At most `max_keys` buckets are kept. When a new key finds the map full,
/// buckets that have refilled to `burst` are dropped first (a fresh bucket
/// is the same); if none has, the least recently used one is. So memory is
/// bounded whoever picks the keys, and evicting a bucket can only give its
/// key a fresh burst, never refuse another key.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(config: &RateLimit) -> Self {
        Self::with_max_keys(config, DEFAULT_MAX_KEYS)
    }

    /// A limiter that remembers at most `max_keys` keys (at least 1).
    pub fn with_max_keys(config: &RateLimit, max_keys: usize) -> Self {
        Self {
            rate: f64::from(config.requests_per_second),
            burst: f64::from(config.burst.max(1)),
            max_keys: max_keys.max(1),
            buckets: Mutex::default(),
        }
    }

    /// How many keys are remembered now.
    pub fn keys(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= self.max_keys {
                let oldest = buckets
                    .iter()
                    .min_by_key(|(_, b)| b.at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    buckets.remove(&oldest);
                }
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_tenant() {
        let limiter = RateLimiter::new(&RateLimit {
            requests_per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1));
        assert!(
            limiter.check("b").is_ok(),
            "another tenant has its own bucket"
        );
        let off = RateLimiter::new(&RateLimit {
            requests_per_second: 0,
            burst: 0,
        });
        for _ in 0..1000 {
            assert!(off.check("a").is_ok());
        }
    }

    #[test]
    fn keys_are_bounded_and_a_full_map_never_refuses_a_new_key() {
        let limiter = RateLimiter::with_max_keys(
            &RateLimit {
                requests_per_second: 1,
                burst: 2,
            },
            3,
        );
        for key in 0..100 {
            for _ in 0..2 {
                assert!(limiter.check(&key.to_string()).is_ok(), "{key}");
            }
            assert!(limiter.keys() <= 3);
        }
        // The most recent keys are still remembered, and still limited.
        assert!(limiter.check("99").is_err());
    }
}
