use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Binomial, Distribution, Exp, StandardNormal};
use tessera_stats::assign::Arm;
use tessera_stats::uplift::{
    ArmStats, Experiment, SRM_THRESHOLD, Segments, UpliftError, evaluate, sample_ratio,
};

const REPETITIONS: usize = 200;

#[test]
fn intervals_cover_a_planted_uplift() {
    // Control converts 5%, treatment 6%; a converter spends on average 40
    // in control and 45 in treatment (exponential).
    const SUBJECTS: usize = 10_000;
    let (pc, pt) = (0.05, 0.06);
    let (spend_c, spend_t) = (40.0, 45.0);
    let true_absolute = pt - pc;
    let true_relative = pt / pc - 1.0;
    let true_revenue = pt * spend_t - pc * spend_c;

    let mut rng = StdRng::seed_from_u64(0x5eed_0101);
    let (spend_c_dist, spend_t_dist) = (
        Exp::new(1.0 / spend_c).unwrap(),
        Exp::new(1.0 / spend_t).unwrap(),
    );
    let (mut absolute, mut relative, mut revenue, mut flagged) = (0, 0, 0, 0);
    for _ in 0..REPETITIONS {
        let mut experiment = Experiment::new();
        for _ in 0..SUBJECTS {
            let arm = if rng.random_bool(0.5) {
                Arm::Control
            } else {
                Arm::Treatment
            };
            let (p, spend) = match arm {
                Arm::Control => (pc, &spend_c_dist),
                Arm::Treatment => (pt, &spend_t_dist),
            };
            let converted = rng.random_bool(p);
            let amount = if converted {
                spend.sample(&mut rng)
            } else {
                0.0
            };
            experiment.push(arm, converted, amount, None).unwrap();
        }
        let report = experiment.evaluate(0.5).unwrap();
        absolute += usize::from(report.absolute_uplift.covers(true_absolute));
        relative += usize::from(report.relative_uplift.unwrap().covers(true_relative));
        revenue += usize::from(report.revenue_per_subject.covers(true_revenue));
        flagged += usize::from(report.sample_ratio.mismatch);
        assert!(report.cuped.is_none(), "no subject had a covariate");
    }
    let [absolute, relative, revenue] =
        [absolute, relative, revenue].map(|h| super::share(h, REPETITIONS));
    println!(
        "planted uplift: 95% interval coverage over {REPETITIONS} campaigns of {SUBJECTS}: \
         absolute {absolute:.3}, relative {relative:.3}, revenue per subject {revenue:.3}"
    );
    assert!(absolute >= 0.90, "absolute uplift coverage {absolute}");
    assert!(relative >= 0.90, "relative uplift coverage {relative}");
    assert!(revenue >= 0.90, "revenue coverage {revenue}");
    assert!(
        flagged <= REPETITIONS / 50,
        "a correct split was flagged {flagged} times"
    );
}

#[test]
fn cuped_narrows_the_interval_and_still_covers_the_truth() {
    // A latent customer value u drives both the pre-period spend X and the
    // outcomes: revenue Y = 100 + 20u + 10ε + 2·treated, X = 100 + 20u + 10ε'
    // (correlation 0.8, so CUPED should remove about 64% of the variance);
    // conversion when u + ε'' > c, with c = 1.5√2 in control and 1.4√2 in
    // treatment, i.e. rates 1 − Φ(1.5) and 1 − Φ(1.4).
    const SUBJECTS: usize = 4_000;
    let true_revenue = 2.0;
    let true_conversion = 0.080_756_659_233_771_2 - 0.066_807_201_268_858_1;
    let mut rng = StdRng::seed_from_u64(0x5eed_0202);
    let mut normal = move || -> f64 { StandardNormal.sample(&mut rng) };
    let (mut covered_revenue, mut covered_conversion, mut covered_plain) = (0, 0, 0);
    let (mut narrower_conversion, mut reduction_revenue, mut reduction_conversion) = (0, 0.0, 0.0);
    for _ in 0..REPETITIONS {
        let mut experiment = Experiment::new();
        for i in 0..SUBJECTS {
            let treated = i % 2 == 0;
            let u = normal();
            let pre = 100.0 + 20.0 * u + 10.0 * normal();
            let revenue = 100.0 + 20.0 * u + 10.0 * normal() + if treated { 2.0 } else { 0.0 };
            let threshold = if treated { 1.4 } else { 1.5 } * std::f64::consts::SQRT_2;
            let converted = u + normal() > threshold;
            let arm = if treated {
                Arm::Treatment
            } else {
                Arm::Control
            };
            experiment.push(arm, converted, revenue, Some(pre)).unwrap();
        }
        let report = experiment.evaluate(0.5).unwrap();
        let cuped = report.cuped.expect("every subject has a covariate");
        assert!(
            cuped.revenue.uplift.width() < report.revenue_per_subject.width(),
            "CUPED widened the revenue interval"
        );
        narrower_conversion +=
            usize::from(cuped.conversion.uplift.width() < report.absolute_uplift.width());
        covered_revenue += usize::from(cuped.revenue.uplift.covers(true_revenue));
        covered_conversion += usize::from(cuped.conversion.uplift.covers(true_conversion));
        covered_plain += usize::from(report.revenue_per_subject.covers(true_revenue));
        reduction_revenue += cuped.revenue.variance_reduction / REPETITIONS as f64;
        reduction_conversion += cuped.conversion.variance_reduction / REPETITIONS as f64;
    }
    let [revenue, conversion, plain] =
        [covered_revenue, covered_conversion, covered_plain].map(|h| super::share(h, REPETITIONS));
    println!(
        "CUPED over {REPETITIONS} campaigns of {SUBJECTS}: coverage revenue {revenue:.3} \
         (unadjusted {plain:.3}), conversion {conversion:.3}; mean variance reduction \
         revenue {reduction_revenue:.3}, conversion {reduction_conversion:.3}"
    );
    assert!(revenue >= 0.90, "adjusted revenue coverage {revenue}");
    assert!(
        conversion >= 0.90,
        "adjusted conversion coverage {conversion}"
    );
    assert!(
        (0.55..0.72).contains(&reduction_revenue),
        "{reduction_revenue}"
    );
    assert!(reduction_conversion > 0.05, "{reduction_conversion}");
    assert!(
        narrower_conversion >= REPETITIONS * 9 / 10,
        "{narrower_conversion}"
    );
}

#[test]
fn a_55_45_split_is_flagged_and_a_true_50_50_split_rarely() {
    const SUBJECTS: u64 = 4_000;
    const RUNS: usize = 1_000;
    let mut rng = StdRng::seed_from_u64(0x5eed_0303);
    let flags = |control_share: f64, rng: &mut StdRng| {
        let split = Binomial::new(SUBJECTS, control_share).unwrap();
        let (mut flagged, mut below_5_percent) = (0, 0);
        for _ in 0..RUNS {
            let control = split.sample(rng);
            let srm = sample_ratio(SUBJECTS - control, control, 0.5).unwrap();
            flagged += usize::from(srm.mismatch);
            below_5_percent += usize::from(srm.p_value < 0.05);
        }
        (flagged, below_5_percent)
    };
    let (planted, _) = flags(0.45, &mut rng);
    let (fair, fair_at_5_percent) = flags(0.5, &mut rng);
    println!(
        "SRM at p < {SRM_THRESHOLD}: 55/45 flagged in {planted} of {RUNS}, \
         50/50 flagged in {fair} of {RUNS} ({fair_at_5_percent} below p = 0.05)"
    );
    // At 4,000 subjects a 55/45 split is 6.3 standard errors from 50/50;
    // it goes unflagged only when chance brings it back below 3.3 (p ≈ 0.001).
    assert!(planted >= RUNS * 99 / 100, "{planted}");
    assert!(fair <= RUNS / 50, "{fair}");
    // The p-value is calibrated, not merely conservative: about 5% fall below 0.05.
    assert!(
        (25..=75).contains(&fair_at_5_percent),
        "{fair_at_5_percent}"
    );
}

#[test]
fn sample_ratio_matches_a_hand_computation() {
    // 5050 / 4950 against 50/50: χ² = 2 · 50² / 5000 = 1, p = P(χ²₁ > 1) = 0.3173.
    let srm = sample_ratio(5050, 4950, 0.5).unwrap();
    assert!((srm.chi_squared - 1.0).abs() < 1e-12);
    assert!((srm.p_value - 0.317_310_507_862_914).abs() < 1e-9);
    assert!(!srm.mismatch);
    assert!((srm.observed_control_share - 0.495).abs() < 1e-12);
    // A 10% holdout that came out at 20% of 1000 subjects.
    assert!(sample_ratio(800, 200, 0.1).unwrap().mismatch);
    assert!(!sample_ratio(900, 100, 0.1).unwrap().mismatch);
    for share in [0.0, 1.0, -0.2, f64::NAN] {
        assert!(matches!(
            sample_ratio(10, 10, share),
            Err(UpliftError::ExpectedShare { .. })
        ));
    }
    assert_eq!(sample_ratio(0, 0, 0.5), Err(UpliftError::NoSubjects));
}

fn arm(subjects: u64, conversions: u64, revenue: impl Fn(u64) -> f64) -> ArmStats {
    let mut stats = ArmStats::new();
    for i in 0..subjects {
        stats.push(i < conversions, revenue(i), None).unwrap();
    }
    stats
}

#[test]
fn newcombes_interval_matches_the_published_example() {
    // Newcombe (1998), example (a): 56/70 against 48/80, method 10 gives
    // 0.0524 to 0.3339.
    let report = evaluate(&arm(70, 56, |_| 0.0), &arm(80, 48, |_| 0.0), 80.0 / 150.0).unwrap();
    let d = report.absolute_uplift;
    assert!((d.value - 0.2).abs() < 1e-12);
    assert!((d.lower - 0.0524).abs() < 5e-5, "{}", d.lower);
    assert!((d.upper - 0.3339).abs() < 5e-5, "{}", d.upper);
}

#[test]
fn welch_interval_uses_the_satterthwaite_degrees_of_freedom() {
    // Revenues 1..4 against 2, 4, …, 10: difference −3.5, SE √(5/12 + 2),
    // about 5.5 degrees of freedom, so the t quantile lies between t₆ and t₅.
    let mut t = ArmStats::new();
    let mut c = ArmStats::new();
    for r in [1.0, 2.0, 3.0, 4.0] {
        t.push(false, r, None).unwrap();
    }
    for r in [2.0, 4.0, 6.0, 8.0, 10.0] {
        c.push(false, r, None).unwrap();
    }
    let d = evaluate(&t, &c, 0.5).unwrap().revenue_per_subject;
    assert!((d.value + 3.5).abs() < 1e-12);
    assert!((d.std_error - (5.0_f64 / 12.0 + 2.0).sqrt()).abs() < 1e-12);
    let quantile = (d.upper - d.value) / d.std_error;
    assert!(quantile > 2.447 && quantile < 2.571, "{quantile}");
}

fn finite(report: &tessera_stats::uplift::UpliftReport) -> bool {
    let e = [report.absolute_uplift, report.revenue_per_subject];
    e.iter().chain(report.relative_uplift.iter()).all(|e| {
        [e.value, e.std_error, e.lower, e.upper]
            .iter()
            .all(|v| v.is_finite())
    })
}

#[test]
fn zero_conversions_in_an_arm_give_finite_figures_and_no_relative_uplift() {
    let report = evaluate(&arm(500, 10, |_| 1.0), &arm(500, 0, |_| 0.0), 0.5).unwrap();
    assert!(finite(&report));
    assert_eq!(report.relative_uplift, None);
    let d = report.absolute_uplift;
    assert!(d.lower > 0.0 && d.upper < 1.0, "{d:?}");
    let none_anywhere = evaluate(&arm(50, 0, |_| 0.0), &arm(50, 0, |_| 0.0), 0.5).unwrap();
    assert!(finite(&none_anywhere));
    assert_eq!(none_anywhere.absolute_uplift.value, 0.0);
    assert!(none_anywhere.absolute_uplift.lower < 0.0 && none_anywhere.absolute_uplift.upper > 0.0);
    assert_eq!(none_anywhere.revenue_per_subject.width(), 0.0);
}

#[test]
fn everyone_converting_gives_finite_figures() {
    let report = evaluate(&arm(40, 40, |i| i as f64), &arm(30, 30, |i| i as f64), 0.5).unwrap();
    assert!(finite(&report));
    let d = report.absolute_uplift;
    assert_eq!(d.value, 0.0);
    assert!(d.lower >= -1.0 && d.lower < 0.0 && d.upper > 0.0 && d.upper <= 1.0);
    assert_eq!(report.relative_uplift.unwrap().value, 0.0);
}

#[test]
fn an_empty_or_single_subject_arm_is_an_error() {
    let some = arm(100, 5, |_| 1.0);
    assert_eq!(
        evaluate(&some, &ArmStats::new(), 0.5),
        Err(UpliftError::TooFewSubjects {
            arm: Arm::Control,
            subjects: 0
        })
    );
    assert_eq!(
        evaluate(&arm(1, 1, |_| 3.0), &some, 0.5),
        Err(UpliftError::TooFewSubjects {
            arm: Arm::Treatment,
            subjects: 1
        })
    );
}

#[test]
fn tiny_arms_are_evaluated_without_nans() {
    let report = evaluate(&arm(2, 1, |i| i as f64), &arm(3, 1, |_| 5.0), 0.5).unwrap();
    assert!(finite(&report));
    assert!(report.absolute_uplift.lower >= -1.0 && report.absolute_uplift.upper <= 1.0);
    assert!(!report.sample_ratio.mismatch);
}

#[test]
fn bad_outcomes_are_refused_and_leave_the_arm_unchanged() {
    let mut stats = arm(3, 1, |_| 1.0);
    let before = stats;
    assert!(matches!(
        stats.push(true, f64::NAN, None),
        Err(UpliftError::Revenue { .. })
    ));
    assert!(matches!(
        stats.push(true, 1.0, Some(f64::INFINITY)),
        Err(UpliftError::Covariate { .. })
    ));
    assert_eq!(stats, before);
    let mut segments = Segments::new();
    assert!(
        segments
            .push("fr", Arm::Control, false, f64::NAN, None)
            .is_err()
    );
    assert!(
        segments.get(&"fr").is_none(),
        "a refused outcome creates no segment"
    );
}

#[test]
fn cuped_is_absent_without_a_covariate_for_everyone_or_with_a_constant_one() {
    let mut partial = Experiment::new();
    let mut constant = Experiment::new();
    for i in 0..20 {
        let arm = if i % 2 == 0 {
            Arm::Treatment
        } else {
            Arm::Control
        };
        let pre = (i != 7).then_some(f64::from(i));
        partial.push(arm, i % 3 == 0, f64::from(i), pre).unwrap();
        constant
            .push(arm, i % 3 == 0, f64::from(i), Some(4.0))
            .unwrap();
    }
    assert!(partial.evaluate(0.5).unwrap().cuped.is_none());
    assert!(constant.evaluate(0.5).unwrap().cuped.is_none());
}

#[test]
fn merged_shards_and_segments_evaluate_like_their_parts() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0404);
    let mut whole = Experiment::new();
    let mut shards = [Experiment::new(), Experiment::new()];
    let mut segments = Segments::new();
    for i in 0..2_000 {
        let arm = if rng.random_bool(0.2) {
            Arm::Control
        } else {
            Arm::Treatment
        };
        let converted = rng.random_bool(0.1);
        let revenue = if converted {
            rng.random_range(5.0..50.0)
        } else {
            0.0
        };
        let pre = rng.random_range(0.0..30.0);
        whole.push(arm, converted, revenue, Some(pre)).unwrap();
        shards[i % 2]
            .push(arm, converted, revenue, Some(pre))
            .unwrap();
        segments
            .push(
                if i < 300 { "small" } else { "large" },
                arm,
                converted,
                revenue,
                Some(pre),
            )
            .unwrap();
    }
    let mut merged = shards[0];
    merged.merge(&shards[1]);
    let (a, b) = (merged.evaluate(0.2).unwrap(), whole.evaluate(0.2).unwrap());
    assert_eq!(a.treatment.subjects, b.treatment.subjects);
    assert_eq!(a.control.conversions, b.control.conversions);
    assert!((a.revenue_per_subject.upper - b.revenue_per_subject.upper).abs() < 1e-9);
    let (ca, cb) = (a.cuped.unwrap(), b.cuped.unwrap());
    assert!((ca.revenue.theta - cb.revenue.theta).abs() < 1e-9);
    assert!((ca.revenue.uplift.lower - cb.revenue.uplift.lower).abs() < 1e-9);

    let by_segment = segments.evaluate(0.2);
    assert_eq!(
        by_segment.keys().copied().collect::<Vec<_>>(),
        [&"large", &"small"]
    );
    let small = segments.get(&"small").unwrap().evaluate(0.2);
    assert_eq!(by_segment[&"small"], small);
    let total: u64 = by_segment
        .values()
        .map(|r| {
            r.as_ref()
                .map(|r| r.treatment.subjects + r.control.subjects)
                .unwrap()
        })
        .sum();
    assert_eq!(total, 2_000);
}
