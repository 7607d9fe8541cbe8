use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tessera_stats::Estimate;
use tessera_stats::ope::{Direct, Logged, OffPolicy, OpeError, PerActionMean, evaluate};

const ACTIONS: usize = 4;
const REPETITIONS: usize = 200;
const ROWS: usize = 3_000;

/// Conversion rate of each action in each of three equally likely contexts.
const RATES: [[f64; ACTIONS]; 3] = [
    [0.10, 0.30, 0.05, 0.20],
    [0.40, 0.10, 0.25, 0.15],
    [0.05, 0.20, 0.35, 0.50],
];

/// The exact value of `policy`: `Σ_x P(x) Σ_a π(a|x) rate(x, a)`.
fn true_value(policy: &[[f64; ACTIONS]; 3]) -> f64 {
    policy
        .iter()
        .zip(&RATES)
        .map(|(pi, rates)| pi.iter().zip(rates).map(|(p, r)| p * r).sum::<f64>() / 3.0)
        .sum()
}

struct Coverage {
    ips: usize,
    snips: usize,
    dr: usize,
    ips_width: f64,
    dr_width: f64,
}

/// Logs of a uniform logging policy over `ACTIONS`, evaluated for `policy`
/// with DR's reward model fitted on the same logs, `REPETITIONS` times.
fn coverage(policy: &[[f64; ACTIONS]; 3], seed: u64) -> Coverage {
    let truth = true_value(policy);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Coverage {
        ips: 0,
        snips: 0,
        dr: 0,
        ips_width: 0.0,
        dr_width: 0.0,
    };
    for _ in 0..REPETITIONS {
        let logs: Vec<(usize, usize, f64)> = (0..ROWS)
            .map(|_| {
                let x = rng.random_range(0..3);
                let a = rng.random_range(0..ACTIONS);
                let r = f64::from(u8::from(rng.random_bool(RATES[x][a])));
                (x, a, r)
            })
            .collect();
        let row = |&(x, a, r): &(usize, usize, f64)| Logged {
            action: a,
            reward: r,
            logging_propensity: 1.0 / ACTIONS as f64,
            target_propensity: policy[x][a],
            direct: None,
        };
        let plain: Vec<Logged> = logs.iter().map(row).collect();
        let model = PerActionMean::fit(ACTIONS, &plain).unwrap().predictions();
        let rows: Vec<Logged> = logs
            .iter()
            .map(|l| Logged {
                direct: Some(Direct {
                    target_policy: &policy[l.0],
                    predicted_rewards: &model,
                }),
                ..row(l)
            })
            .collect();
        let report = evaluate(&rows).unwrap();
        let dr = report.dr.expect("every row carries the direct part");
        c.ips += usize::from(report.ips.covers(truth));
        c.snips += usize::from(report.snips.covers(truth));
        c.dr += usize::from(dr.covers(truth));
        c.ips_width += report.ips.width() / REPETITIONS as f64;
        c.dr_width += dr.width() / REPETITIONS as f64;
    }
    c
}

fn assert_coverage(name: &str, c: &Coverage) {
    let [ips, snips, dr] = [c.ips, c.snips, c.dr].map(|h| super::share(h, REPETITIONS));
    println!(
        "{name}: 95% interval coverage over {REPETITIONS} logs of {ROWS} rows: \
         IPS {ips:.3}, SNIPS {snips:.3}, DR {dr:.3}; mean width IPS {:.4}, DR {:.4}",
        c.ips_width, c.dr_width
    );
    assert!(ips >= 0.90, "{name}: IPS coverage {ips}");
    assert!(snips >= 0.90, "{name}: SNIPS coverage {snips}");
    assert!(dr >= 0.90, "{name}: DR coverage {dr}");
    assert!(
        c.dr_width < c.ips_width,
        "{name}: a reward model that explains part of the reward narrows DR's interval"
    );
}

#[test]
fn intervals_cover_a_stochastic_target_policys_true_value() {
    let policy = [
        [0.1, 0.6, 0.1, 0.2],
        [0.7, 0.1, 0.1, 0.1],
        [0.0, 0.1, 0.2, 0.7],
    ];
    assert_coverage("stochastic target", &coverage(&policy, 0x5eed_0001));
}

#[test]
fn intervals_cover_a_deterministic_target_policys_true_value() {
    // The best action in each context: value (0.30 + 0.40 + 0.50) / 3 = 0.4.
    let policy = [
        [0.0, 1.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert!((true_value(&policy) - 0.4).abs() < 1e-12);
    assert_coverage("deterministic target", &coverage(&policy, 0x5eed_0002));
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn logged(action: usize, reward: f64, mu: f64, pi: f64) -> Logged<'static> {
    Logged {
        action,
        reward,
        logging_propensity: mu,
        target_propensity: pi,
        direct: None,
    }
}

#[test]
fn estimates_match_a_hand_computation() {
    // Weights 2, 0.5, 1; rewards 1, 0, 3.
    let policy = [[0.8, 0.2], [0.25, 0.75], [0.5, 0.5]];
    let predicted = [0.5, 2.0];
    let rows: Vec<Logged> = [(0, 1.0, 0.4, 0), (0, 0.0, 0.5, 1), (1, 3.0, 0.5, 2)]
        .into_iter()
        .map(|(a, r, mu, x)| Logged {
            direct: Some(Direct {
                target_policy: &policy[x],
                predicted_rewards: &predicted,
            }),
            ..logged(a, r, mu, policy[x][a])
        })
        .collect();
    let report = evaluate(&rows).unwrap();
    // IPS: (2 + 0 + 3) / 3.
    assert!(close(report.ips.value, 5.0 / 3.0));
    let wr = [2.0, 0.0, 3.0];
    let var = wr.iter().map(|v| (v - 5.0 / 3.0_f64).powi(2)).sum::<f64>() / 2.0;
    assert!(close(report.ips.std_error, (var / 3.0).sqrt()));
    // SNIPS: 5 / 3.5.
    assert!(close(report.snips.value, 5.0 / 3.5));
    // DR terms: direct part Σ π r̂ plus w (r − r̂(a)):
    //   0.8·0.5 + 0.2·2 + 2 (1 − 0.5) = 1.8
    //   0.25·0.5 + 0.75·2 + 0.5 (0 − 0.5) = 1.375
    //   0.5·0.5 + 0.5·2 + 1 (3 − 2) = 2.25
    let dr = report.dr.unwrap();
    assert!(close(dr.value, (1.8 + 1.375 + 2.25) / 3.0));
    // Kish: 3.5² / (4 + 0.25 + 1).
    assert!(close(report.effective_sample_size, 12.25 / 5.25));
    assert!(close(report.max_weight, 2.0));
    assert_eq!(report.rows, 3);
}

#[test]
fn on_policy_logs_have_full_effective_sample_size_and_agreeing_estimators() {
    let rows: Vec<Logged> = (0..10)
        .map(|i| logged(i % 2, f64::from(u8::from(i % 3 == 0)), 0.5, 0.5))
        .collect();
    let report = evaluate(&rows).unwrap();
    assert!(close(report.effective_sample_size, 10.0));
    assert!(close(report.max_weight, 1.0));
    assert!(close(report.ips.value, 0.4) && close(report.snips.value, 0.4));
    assert!(report.dr.is_none(), "no row carried a reward model");
}

#[test]
fn merged_shards_report_what_one_accumulator_reports() {
    let rows: Vec<Logged> = (0..40)
        .map(|i| logged(i % 4, (i % 5) as f64, 0.25, [0.1, 0.2, 0.3, 0.4][i % 4]))
        .collect();
    let mut whole = OffPolicy::new();
    let (mut a, mut b) = (OffPolicy::new(), OffPolicy::new());
    for (i, row) in rows.iter().enumerate() {
        whole.push(row).unwrap();
        if i < 13 { a.push(row) } else { b.push(row) }.unwrap();
    }
    a.merge(&b);
    let (x, y) = (a.report().unwrap(), whole.report().unwrap());
    let near = |p: Estimate, q: Estimate| {
        (p.value - q.value).abs() < 1e-12 && (p.std_error - q.std_error).abs() < 1e-12
    };
    assert!(near(x.ips, y.ips) && near(x.snips, y.snips));
    assert!((x.effective_sample_size - y.effective_sample_size).abs() < 1e-9);
}

#[test]
fn doubly_robust_is_left_out_when_some_rows_lack_a_reward_model() {
    let policy = [0.5, 0.5];
    let predicted = [0.0, 1.0];
    let with = Logged {
        direct: Some(Direct {
            target_policy: &policy,
            predicted_rewards: &predicted,
        }),
        ..logged(0, 1.0, 0.5, 0.5)
    };
    let report = evaluate(&[with, logged(1, 0.0, 0.5, 0.5)]).unwrap();
    assert!(report.dr.is_none());
    assert!(evaluate(&[with, with]).unwrap().dr.is_some());
}

#[test]
fn bad_rows_are_refused_with_the_row_and_the_reason() {
    let good = logged(0, 1.0, 0.5, 0.5);
    for (mu, expect_refusal) in [
        (0.0, true),
        (-0.1, true),
        (1.5, true),
        (f64::NAN, true),
        (1.0, false),
    ] {
        let mut acc = OffPolicy::new();
        acc.push(&good).unwrap();
        let result = acc.push(&logged(0, 1.0, mu, 0.5));
        if expect_refusal {
            assert!(
                matches!(result, Err(OpeError::LoggingPropensity { row: 1, .. })),
                "μ = {mu}: {result:?}"
            );
            assert_eq!(
                acc.rows(),
                1,
                "a refused row leaves the accumulator unchanged"
            );
        } else {
            assert_eq!(result, Ok(()));
        }
    }
    let mut acc = OffPolicy::new();
    for pi in [-0.5, 1.01, f64::NAN] {
        assert!(matches!(
            acc.push(&logged(0, 1.0, 0.5, pi)),
            Err(OpeError::TargetPropensity { row: 0, .. })
        ));
    }
    for r in [f64::NAN, f64::INFINITY] {
        assert!(matches!(
            acc.push(&logged(0, r, 0.5, 0.5)),
            Err(OpeError::Reward { row: 0, .. })
        ));
    }
    assert_eq!(acc.rows(), 0);
}

#[test]
fn inconsistent_reward_model_inputs_are_refused() {
    const TWO: &[f64] = &[0.5, 0.5];
    const THREE: &[f64] = &[0.2, 0.3, 0.5];
    const NOT_A_DISTRIBUTION: &[f64] = &[0.5, 0.7];
    const NAN: &[f64] = &[0.0, f64::NAN];
    let with = |policy: &'static [f64], predicted: &'static [f64], action: usize, pi: f64| Logged {
        direct: Some(Direct {
            target_policy: policy,
            predicted_rewards: predicted,
        }),
        ..logged(action, 1.0, 0.5, pi)
    };
    let mut acc = OffPolicy::new();
    type Expectation = fn(&OpeError) -> bool;
    let cases: [(Logged, Expectation); 5] = [
        (with(TWO, THREE, 0, 0.5), |e| {
            matches!(e, OpeError::ActionCount { .. })
        }),
        (with(TWO, TWO, 2, 0.5), |e| {
            matches!(e, OpeError::Action { action: 2, .. })
        }),
        (with(NOT_A_DISTRIBUTION, TWO, 0, 0.5), |e| {
            matches!(e, OpeError::TargetPolicy { .. })
        }),
        (with(TWO, TWO, 0, 0.4), |e| {
            matches!(e, OpeError::TargetMismatch { .. })
        }),
        (with(TWO, NAN, 0, 0.5), |e| {
            matches!(e, OpeError::Prediction { .. })
        }),
    ];
    for (row, is_expected) in cases {
        let error = acc.push(&row).unwrap_err();
        assert!(is_expected(&error), "{error}");
    }
}

#[test]
fn too_few_rows_and_no_overlap_are_errors_not_numbers() {
    assert_eq!(evaluate(&[]), Err(OpeError::TooFewRows { rows: 0 }));
    assert_eq!(
        evaluate(&[logged(0, 1.0, 0.5, 0.5)]),
        Err(OpeError::TooFewRows { rows: 1 })
    );
    // The target never takes an action the logging policy took.
    let rows = [logged(0, 1.0, 0.5, 0.0), logged(1, 0.0, 0.5, 0.0)];
    assert_eq!(evaluate(&rows), Err(OpeError::NoOverlap));
}

#[test]
fn per_action_mean_predicts_unseen_actions_with_the_overall_mean() {
    let rows = [
        logged(0, 1.0, 0.5, 0.5),
        logged(0, 0.0, 0.5, 0.5),
        logged(1, 4.0, 0.5, 0.5),
    ];
    let model = PerActionMean::fit(3, &rows).unwrap();
    assert_eq!(model.predictions(), vec![0.5, 4.0, 5.0 / 3.0]);
    assert_eq!(PerActionMean::new(2).predictions(), vec![0.0, 0.0]);
    assert!(matches!(
        PerActionMean::fit(1, &rows),
        Err(OpeError::Action {
            row: 2,
            action: 1,
            actions: 1
        })
    ));
}
