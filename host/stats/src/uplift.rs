//! Effect evaluation: what a campaign changed, comparing its treatment arm
//! with its held-out control arm. Works from per-arm accumulators (counts,
//! means, co-moments), never from stored subjects.
//!
//! Per arm, each subject contributes whether they converted, their revenue
//! and optionally a pre-period covariate (e.g. revenue in the weeks before
//! the campaign). [`evaluate`] reports conversion rates, the absolute and
//! relative uplift in conversion, the difference in revenue per subject, a
//! sample-ratio-mismatch check and, when every subject has the covariate,
//! CUPED-adjusted uplifts. Intervals are 95% and assume subjects are
//! independent and were assigned at random (see [`crate::assign`]).

use std::collections::BTreeMap;

use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::assign::Arm;
use crate::moments::Moments;
use crate::{Estimate, t_quantile, z_quantile};

/// A sample-ratio mismatch is flagged when the chi-squared test's p-value is
/// below this. Deliberately strict: the check runs on every report, and at
/// 0.001 a correctly split campaign is flagged about once in a thousand,
/// while a real assignment or logging fault at a few thousand subjects
/// gives p-values many orders of magnitude smaller.
pub const SRM_THRESHOLD: f64 = 0.001;

const CONVERTED: usize = 0;
const REVENUE: usize = 1;
const PRE: usize = 2;

/// Why outcomes could not be accumulated or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UpliftError {
    #[error("revenue must be a finite number, got {value}")]
    Revenue { value: f64 },
    #[error("the pre-period covariate must be a finite number, got {value}")]
    Covariate { value: f64 },
    #[error(
        "the expected control share must be strictly between 0 and 1 (the holdout share), got {value}"
    )]
    ExpectedShare { value: f64 },
    #[error("the {arm:?} arm has {subjects} subjects; an evaluation needs at least 2 in each arm")]
    TooFewSubjects { arm: Arm, subjects: u64 },
    #[error("there are no subjects in either arm to compare with the expected split")]
    NoSubjects,
}

/// Streaming summary of one arm: push each subject's outcome once (or merge
/// summaries of shards). Holds a fixed few numbers whatever the number of
/// subjects.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmStats {
    /// Per subject: converted (0 or 1), revenue and the covariate (0 when absent).
    moments: Moments<3>,
    conversions: u64,
    with_covariate: u64,
}

impl ArmStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one subject's outcome: whether they converted, their revenue in
    /// the evaluation period (0 for none) and, if known, the pre-period
    /// covariate. On error the summary is unchanged.
    pub fn push(
        &mut self,
        converted: bool,
        revenue: f64,
        pre: Option<f64>,
    ) -> Result<(), UpliftError> {
        check_outcome(revenue, pre)?;
        self.moments
            .push([f64::from(u8::from(converted)), revenue, pre.unwrap_or(0.0)]);
        self.conversions += u64::from(converted);
        self.with_covariate += u64::from(pre.is_some());
        Ok(())
    }

    /// Adds everything another summary of the same arm saw.
    pub fn merge(&mut self, other: &ArmStats) {
        self.moments.merge(&other.moments);
        self.conversions += other.conversions;
        self.with_covariate += other.with_covariate;
    }

    pub fn subjects(&self) -> u64 {
        self.moments.n()
    }

    pub fn conversions(&self) -> u64 {
        self.conversions
    }

    fn summary(&self) -> ArmSummary {
        ArmSummary {
            subjects: self.subjects(),
            conversions: self.conversions,
            conversion_rate: self.conversions as f64 / self.subjects() as f64,
            revenue_per_subject: self.moments.mean(REVENUE),
        }
    }
}

fn check_outcome(revenue: f64, pre: Option<f64>) -> Result<(), UpliftError> {
    if !revenue.is_finite() {
        return Err(UpliftError::Revenue { value: revenue });
    }
    if let Some(value) = pre.filter(|v| !v.is_finite()) {
        return Err(UpliftError::Covariate { value });
    }
    Ok(())
}

/// One arm's figures.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArmSummary {
    pub subjects: u64,
    pub conversions: u64,
    pub conversion_rate: f64,
    pub revenue_per_subject: f64,
}

/// Chi-squared goodness-of-fit test of the arm sizes against the configured split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleRatio {
    pub expected_control_share: f64,
    pub observed_control_share: f64,
    /// `Σ (observed − expected)² / expected` over the two arms (1 degree of freedom).
    pub chi_squared: f64,
    pub p_value: f64,
    /// `p_value < SRM_THRESHOLD`: the arms are not the sizes the assignment
    /// should produce, so something between assignment and measurement lost
    /// or added subjects unevenly, and the uplift figures are not to be trusted.
    pub mismatch: bool,
}

/// A CUPED-adjusted uplift of one outcome.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adjusted {
    /// `θ = cov(Y, X) / var(X)` on both arms pooled.
    pub theta: f64,
    /// Difference (treatment − control) of the means of `Y − θ (X − mean X)`;
    /// Welch interval on the adjusted outcomes.
    pub uplift: Estimate,
    /// `1 − Var(adjusted difference) / Var(unadjusted difference)`: the share
    /// of the variance the covariate explained. 0.5 means the same precision
    /// as twice the subjects without adjustment.
    pub variance_reduction: f64,
}

/// CUPED (controlled experiments using pre-experiment data) adjustments.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cuped {
    /// Of the conversion indicator: compare with [`UpliftReport::absolute_uplift`].
    pub conversion: Adjusted,
    /// Of revenue: compare with [`UpliftReport::revenue_per_subject`].
    pub revenue: Adjusted,
}

/// Treatment versus control.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpliftReport {
    pub treatment: ArmSummary,
    pub control: ArmSummary,
    /// `p_t − p_c` (conversion rates). Newcombe's hybrid score interval
    /// (method 10 of Newcombe 1998, from the two Wilson intervals): keeps
    /// good coverage at low rates and small arms and never leaves `[−1, 1]`.
    /// `std_error` is the unpooled Wald one, `√(p_t(1−p_t)/n_t + p_c(1−p_c)/n_c)`.
    pub absolute_uplift: Estimate,
    /// `p_t / p_c − 1`. Interval from the log of the ratio,
    /// `exp(ln(p_t/p_c) ± 1.96 √(1/x_t − 1/n_t + 1/x_c − 1/n_c)) − 1` (delta
    /// method, `x` = conversions); `std_error` is its delta-method SE on the
    /// ratio scale. `None` when either arm has no conversions: the ratio or
    /// its logarithm is then undefined.
    pub relative_uplift: Option<Estimate>,
    /// Difference in mean revenue per subject (treatment − control), Welch's
    /// t interval (unequal variances, Welch–Satterthwaite degrees of freedom).
    pub revenue_per_subject: Estimate,
    pub sample_ratio: SampleRatio,
    /// `None` unless every subject of both arms had the covariate and it varies.
    pub cuped: Option<Cuped>,
}

/// Compares the treatment arm with the control arm. `expected_control_share`
/// is the holdout share the subjects were assigned with, in `(0, 1)`.
///
/// Each arm needs at least 2 subjects (below that no variance can be
/// estimated). Zero or all conversions in an arm are fine: every figure
/// stays finite, and only the relative uplift is absent when an arm has no
/// conversion. Intervals rely on the normal approximation to the sampling
/// distribution (Wilson's score intervals for the rates, Welch's t for
/// revenue), which wants more than a handful of conversions and revenue
/// that is not dominated by a few subjects.
pub fn evaluate(
    treatment: &ArmStats,
    control: &ArmStats,
    expected_control_share: f64,
) -> Result<UpliftReport, UpliftError> {
    for (arm, stats) in [(Arm::Treatment, treatment), (Arm::Control, control)] {
        if stats.subjects() < 2 {
            return Err(UpliftError::TooFewSubjects {
                arm,
                subjects: stats.subjects(),
            });
        }
    }
    let sample_ratio = sample_ratio(
        treatment.subjects(),
        control.subjects(),
        expected_control_share,
    )?;
    Ok(UpliftReport {
        treatment: treatment.summary(),
        control: control.summary(),
        absolute_uplift: newcombe(treatment, control),
        relative_uplift: relative(treatment, control),
        revenue_per_subject: welch(
            treatment.moments.mean(REVENUE) - control.moments.mean(REVENUE),
            [treatment.moments.var(REVENUE), control.moments.var(REVENUE)],
            [treatment.subjects(), control.subjects()],
        ),
        sample_ratio,
        cuped: cuped(treatment, control),
    })
}

/// Sample-ratio-mismatch check: Pearson's chi-squared goodness-of-fit test
/// of the observed arm sizes against `expected_control_share` (1 degree of
/// freedom), flagged below [`SRM_THRESHOLD`]. Assumes each subject was
/// assigned independently with that share, as [`crate::assign`] does.
pub fn sample_ratio(
    treatment: u64,
    control: u64,
    expected_control_share: f64,
) -> Result<SampleRatio, UpliftError> {
    let share = expected_control_share;
    if !(share > 0.0 && share < 1.0) {
        return Err(UpliftError::ExpectedShare { value: share });
    }
    let total = treatment + control;
    if total == 0 {
        return Err(UpliftError::NoSubjects);
    }
    let n = total as f64;
    let (expected_c, expected_t) = (n * share, n * (1.0 - share));
    let chi_squared = (control as f64 - expected_c).powi(2) / expected_c
        + (treatment as f64 - expected_t).powi(2) / expected_t;
    let p_value = ChiSquared::new(1.0)
        .map(|d| d.sf(chi_squared))
        .unwrap_or(f64::NAN);
    Ok(SampleRatio {
        expected_control_share: share,
        observed_control_share: control as f64 / n,
        chi_squared,
        p_value,
        mismatch: p_value < SRM_THRESHOLD,
    })
}

/// Wilson's score interval for `successes / n`.
fn wilson(successes: u64, n: u64) -> (f64, f64) {
    let z = z_quantile();
    let (x, n) = (successes as f64, n as f64);
    let p = x / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn newcombe(treatment: &ArmStats, control: &ArmStats) -> Estimate {
    let (nt, nc) = (treatment.subjects(), control.subjects());
    let pt = treatment.conversions as f64 / nt as f64;
    let pc = control.conversions as f64 / nc as f64;
    let (lt, ut) = wilson(treatment.conversions, nt);
    let (lc, uc) = wilson(control.conversions, nc);
    let d = pt - pc;
    Estimate {
        value: d,
        std_error: (pt * (1.0 - pt) / nt as f64 + pc * (1.0 - pc) / nc as f64).sqrt(),
        lower: d - ((pt - lt).powi(2) + (uc - pc).powi(2)).sqrt(),
        upper: d + ((ut - pt).powi(2) + (pc - lc).powi(2)).sqrt(),
    }
}

fn relative(treatment: &ArmStats, control: &ArmStats) -> Option<Estimate> {
    let (xt, xc) = (treatment.conversions, control.conversions);
    if xt == 0 || xc == 0 {
        return None;
    }
    let (nt, nc) = (treatment.subjects() as f64, control.subjects() as f64);
    let ratio = (xt as f64 / nt) / (xc as f64 / nc);
    let se_log = (1.0 / xt as f64 - 1.0 / nt + 1.0 / xc as f64 - 1.0 / nc)
        .max(0.0)
        .sqrt();
    let half = z_quantile() * se_log;
    Some(Estimate {
        value: ratio - 1.0,
        std_error: ratio * se_log,
        lower: ratio * (-half).exp() - 1.0,
        upper: ratio * half.exp() - 1.0,
    })
}

/// Welch's interval for a difference of means with per-arm sample variances
/// `var` and sizes `n` (each at least 2).
fn welch(difference: f64, var: [f64; 2], n: [u64; 2]) -> Estimate {
    let a = var[0] / n[0] as f64;
    let b = var[1] / n[1] as f64;
    let se = (a + b).sqrt();
    if se == 0.0 {
        // No spread in either arm: the difference is what it is.
        return Estimate {
            value: difference,
            std_error: 0.0,
            lower: difference,
            upper: difference,
        };
    }
    let freedom = (a + b).powi(2) / (a * a / (n[0] - 1) as f64 + b * b / (n[1] - 1) as f64);
    let half = t_quantile(freedom) * se;
    Estimate {
        value: difference,
        std_error: se,
        lower: difference - half,
        upper: difference + half,
    }
}

fn cuped(treatment: &ArmStats, control: &ArmStats) -> Option<Cuped> {
    if treatment.with_covariate != treatment.subjects()
        || control.with_covariate != control.subjects()
    {
        return None;
    }
    let mut pooled = treatment.moments;
    pooled.merge(&control.moments);
    let var_x = pooled.var(PRE);
    if var_x.is_nan() || var_x <= 0.0 {
        return None;
    }
    let adjust = |outcome: usize| {
        let theta = pooled.cov(outcome, PRE) / var_x;
        let arms = [&treatment.moments, &control.moments];
        let adjusted_var = arms.map(|m| {
            (m.var(outcome) - 2.0 * theta * m.cov(outcome, PRE) + theta * theta * m.var(PRE))
                .max(0.0)
        });
        let n = arms.map(|m| m.n());
        // Subtracting θ(X − mean X) shifts each arm by θ(arm's mean X − pooled mean X).
        let difference = (arms[0].mean(outcome) - arms[1].mean(outcome))
            - theta * (arms[0].mean(PRE) - arms[1].mean(PRE));
        let uplift = welch(difference, adjusted_var, n);
        let unadjusted = arms[0].var(outcome) / n[0] as f64 + arms[1].var(outcome) / n[1] as f64;
        let variance_reduction = if unadjusted > 0.0 {
            1.0 - uplift.std_error.powi(2) / unadjusted
        } else {
            0.0
        };
        Adjusted {
            theta,
            uplift,
            variance_reduction,
        }
    };
    Some(Cuped {
        conversion: adjust(CONVERTED),
        revenue: adjust(REVENUE),
    })
}

/// Both arms of one campaign (or of one segment of it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Experiment {
    pub treatment: ArmStats,
    pub control: ArmStats,
}

impl Experiment {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one subject's outcome to its arm.
    pub fn push(
        &mut self,
        arm: Arm,
        converted: bool,
        revenue: f64,
        pre: Option<f64>,
    ) -> Result<(), UpliftError> {
        match arm {
            Arm::Treatment => self.treatment.push(converted, revenue, pre),
            Arm::Control => self.control.push(converted, revenue, pre),
        }
    }

    pub fn merge(&mut self, other: &Experiment) {
        self.treatment.merge(&other.treatment);
        self.control.merge(&other.control);
    }

    /// [`evaluate`] on the two arms.
    pub fn evaluate(&self, expected_control_share: f64) -> Result<UpliftReport, UpliftError> {
        evaluate(&self.treatment, &self.control, expected_control_share)
    }
}

/// One [`Experiment`] per segment (country, channel, …), for breakdowns.
/// Each segment is evaluated on its own; with many segments some intervals
/// will miss by chance (about one in twenty at 95%).
#[derive(Debug, Clone, PartialEq)]
pub struct Segments<K> {
    groups: BTreeMap<K, Experiment>,
}

impl<K: Ord> Default for Segments<K> {
    fn default() -> Self {
        Self {
            groups: BTreeMap::new(),
        }
    }
}

impl<K: Ord> Segments<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one subject's outcome to its segment and arm.
    pub fn push(
        &mut self,
        segment: K,
        arm: Arm,
        converted: bool,
        revenue: f64,
        pre: Option<f64>,
    ) -> Result<(), UpliftError> {
        // Checked first so that a bad outcome does not leave an empty segment behind.
        check_outcome(revenue, pre)?;
        self.groups
            .entry(segment)
            .or_default()
            .push(arm, converted, revenue, pre)
    }

    pub fn get(&self, segment: &K) -> Option<&Experiment> {
        self.groups.get(segment)
    }

    /// Every segment's evaluation, in segment order; a segment too small to
    /// evaluate gets its error, not a hole.
    pub fn evaluate(
        &self,
        expected_control_share: f64,
    ) -> BTreeMap<&K, Result<UpliftReport, UpliftError>> {
        self.groups
            .iter()
            .map(|(k, e)| (k, e.evaluate(expected_control_share)))
            .collect()
    }
}
