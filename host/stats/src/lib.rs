//! Statistics for Tessera's strategy simulation and effect evaluation:
//! holdout assignment ([`assign`]), off-policy estimates of a strategy's value
//! from logged decisions ([`ope`]) and treatment-versus-control evaluation
//! ([`uplift`]).
//!
//! Everything here is a pure function or a small accumulator: no I/O, no
//! clocks, no randomness. Accumulators keep counts, means and co-moments
//! only, so the host can aggregate millions of subjects (or merge shards)
//! without holding them in memory. Intervals are two-sided at 95%; each
//! function's documentation states the method and its assumptions, and
//! `docs/strategies.md` explains them for readers of the reports.

pub mod assign;
mod moments;
pub mod ope;
pub mod uplift;

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Two-sided confidence level of every interval in this crate.
pub const CONFIDENCE: f64 = 0.95;

/// A point estimate with its standard error and 95% confidence interval.
///
/// The interval is not always `value ± 1.96 · std_error`: Newcombe's interval
/// for a difference of proportions and the log-scale interval of a ratio are
/// asymmetric. Each field that holds an `Estimate` says how it was made.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub std_error: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Estimate {
    /// `value ± z · std_error` with the normal quantile of [`CONFIDENCE`].
    pub(crate) fn normal(value: f64, std_error: f64) -> Self {
        let half = z_quantile() * std_error;
        Self {
            value,
            std_error,
            lower: value - half,
            upper: value + half,
        }
    }

    /// Whether `truth` lies in the interval (ends included).
    pub fn covers(&self, truth: f64) -> bool {
        self.lower <= truth && truth <= self.upper
    }

    /// `upper − lower`.
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }
}

/// The standard normal quantile at `1 − (1 − CONFIDENCE) / 2` (about 1.96).
pub(crate) fn z_quantile() -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - CONFIDENCE) / 2.0)
}

/// Student's t quantile at `1 − (1 − CONFIDENCE) / 2` for `freedom` degrees
/// of freedom; the normal quantile when `freedom` is not a positive number
/// or exceeds `1e5`.
pub(crate) fn t_quantile(freedom: f64) -> f64 {
    // Beyond 1e5 degrees of freedom the t and normal quantiles differ by
    // less than 3e-5, while statrs's incomplete-beta inversion loses
    // accuracy (1e-4 off at 1e6, 0.13 at 1e7).
    if freedom.is_nan() || freedom <= 0.0 || freedom > 1e5 {
        return z_quantile();
    }
    match StudentsT::new(0.0, 1.0, freedom) {
        Ok(t) => t.inverse_cdf(1.0 - (1.0 - CONFIDENCE) / 2.0),
        Err(_) => z_quantile(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_published_tables() {
        assert!((z_quantile() - 1.959_963_984_540_054).abs() < 1e-9);
        assert!((t_quantile(1.0) - 12.706_204_736).abs() < 1e-6);
        assert!((t_quantile(10.0) - 2.228_138_852).abs() < 1e-6);
        assert!((t_quantile(100.0) - 1.983_971_519).abs() < 1e-6);
        assert!((t_quantile(1e4) - 1.960_201_2).abs() < 1e-6);
        assert!((t_quantile(1e7) - 1.959_964_2).abs() < 1e-6);
        assert_eq!(t_quantile(f64::NAN), z_quantile());
    }
}
