//! A token bucket per tenant, in memory (per server process).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::RateLimit;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Refills `rate` tokens a second up to `burst`; each request takes one.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(config: &RateLimit) -> Self {
        Self {
            rate: f64::from(config.requests_per_second),
            burst: f64::from(config.burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes a token for `tenant`, or says how long until one is available.
    pub fn check(&self, tenant: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
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
}
