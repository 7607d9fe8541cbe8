//! Campaigns end to end over a real vault on sled: the `threshold` segment
//! plugin builds the segment, the sandboxed `epsilon-greedy` strategy
//! decides, and the host holds out, caps, logs, joins feedback, feeds the
//! strategy and evaluates.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::{DAY_MS, PURPOSE, TENANT, World, arm, consent, marketer, operator};
use serde_json::json;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_segments::SegmentSpec;
use tessera_strategies::{
    Arm, CampaignSpec, CampaignStatus, DecideRequest, DecisionOutcome, FallbackReason,
    FeedbackKind, FeedbackSpec, FrequencyCap, Goal, GoalSource, StrategyError,
};
use tessera_vault::{Actor, IdentityKind, Incoming};

#[test]
fn holdout_assignment_is_stable_across_restarts_and_near_the_configured_share() {
    let dir = tempfile::tempdir().unwrap();
    let people = 1_500;
    let holdout = 0.2;
    let first: Vec<Arm> = {
        let world = World::open(dir.path());
        let subjects = world.people(people);
        world.launch("spring", world.spec(holdout));
        subjects
            .iter()
            .map(|s| arm(&world.decide("spring", s)))
            .collect()
    };
    // A new process over the same data: the same people, the same arms.
    let world = World::open(dir.path());
    let subjects: Vec<String> = (0..people)
        .map(|i| {
            world
                .vault
                .find_subject(
                    TENANT,
                    &IdentityKind::MemberId,
                    &format!("M-{i:05}"),
                    &operator(),
                )
                .unwrap()
                .unwrap()
        })
        .collect();
    let again: Vec<Arm> = subjects
        .iter()
        .map(|s| arm(&world.decide("spring", s)))
        .collect();
    assert_eq!(first, again, "every person keeps their arm");
    let control = first.iter().filter(|a| **a == Arm::Control).count() as f64;
    let share = control / people as f64;
    let se = (holdout * (1.0 - holdout) / people as f64).sqrt();
    assert!(
        (share - holdout).abs() < 4.0 * se,
        "control share {share:.4}, configured {holdout}, 4 standard errors {:.4}",
        4.0 * se
    );
    // Every decision was logged, both arms.
    assert_eq!(
        world.strategies.decisions(TENANT, "spring").unwrap().len(),
        2 * people
    );
}

#[test]
fn a_person_without_the_purposes_consent_gets_the_fallback_and_the_strategy_sees_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(3);
    world.launch("spring", world.spec(0.0));
    let reads_before = world.audited("plugin.read");
    world
        .vault
        .set_consent(
            TENANT,
            &subjects[0],
            &consent(false),
            &Actor::new("subject", &subjects[0]),
        )
        .unwrap();

    let outcome = world.decide("spring", &subjects[0]);

    assert_eq!(
        outcome,
        DecisionOutcome::Fallback {
            reason: FallbackReason::NoConsent,
            action: Some("no_offer".into()),
        }
    );
    assert_eq!(
        world.audited("plugin.read"),
        reads_before,
        "no view of the person was built for the strategy"
    );
    assert!(
        world
            .strategies
            .decisions_of(TENANT, "spring", &subjects[0])
            .unwrap()
            .is_empty(),
        "nothing about the person was logged"
    );
    // Someone who consents is decided for, through a view of them.
    let outcome = world.decide("spring", &subjects[1]);
    let DecisionOutcome::Logged(record) = outcome else {
        panic!("expected a decision, got {outcome:?}");
    };
    assert_eq!(record.arm, Arm::Treatment);
    assert!(record.action.is_some() && record.propensity > 0.0 && record.propensity <= 1.0);
    assert_eq!(record.ranked.len(), 4);
    assert!(!record.explanation.is_empty());
    assert_eq!(world.audited("plugin.read"), reads_before + 1);
    // Outside the segment: the fallback, without a view either.
    let outsider = {
        let (_, outcomes) = world
            .vault
            .ingest_batch(
                TENANT,
                &[Incoming {
                    identities: vec![(IdentityKind::MemberId, "M-poor".into())],
                    traits: BTreeMap::from([("total_spend".to_owned(), json!(5))]),
                    events: Vec::new(),
                    consents: vec![consent(true)],
                }],
                &Actor::new("ingest", "pipeline"),
            )
            .unwrap();
        outcomes[0].subject.clone().unwrap()
    };
    assert!(matches!(
        world.decide("spring", &outsider),
        DecisionOutcome::Fallback {
            reason: FallbackReason::NotInSegment,
            ..
        }
    ));
    assert_eq!(world.audited("plugin.read"), reads_before + 1);
}

#[test]
fn the_lifecycle_is_enforced_and_every_change_audited() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(4);
    let strategies = &world.strategies;
    strategies
        .put(TENANT, "spring", world.spec(0.5), &marketer())
        .unwrap();
    // Not before its forecast was seen.
    let error = strategies
        .transition(TENANT, "spring", CampaignStatus::Running, &marketer())
        .unwrap_err();
    assert!(
        matches!(error, StrategyError::BadTransition { .. }),
        "{error}"
    );
    // A draft decides nothing.
    assert!(matches!(
        world.decide("spring", &subjects[0]),
        DecisionOutcome::Fallback {
            reason: FallbackReason::NotRunning,
            ..
        }
    ));
    let simulation = strategies
        .simulate(TENANT, "spring", None, &marketer())
        .unwrap();
    assert_eq!(simulation.segment_size, 4);
    assert_eq!(simulation.consenting, 4);
    assert_eq!(simulation.expected_treated + simulation.expected_control, 4);
    assert_eq!(simulation.actions.len(), 4);
    strategies
        .transition(TENANT, "spring", CampaignStatus::Running, &marketer())
        .unwrap();
    // A running campaign's definition is frozen.
    let error = strategies
        .put(TENANT, "spring", world.spec(0.1), &marketer())
        .unwrap_err();
    assert!(
        matches!(error, StrategyError::NotEditable { .. }),
        "{error}"
    );
    strategies
        .transition(TENANT, "spring", CampaignStatus::Paused, &marketer())
        .unwrap();
    assert!(matches!(
        world.decide("spring", &subjects[0]),
        DecisionOutcome::Fallback {
            reason: FallbackReason::NotRunning,
            ..
        }
    ));
    strategies
        .transition(TENANT, "spring", CampaignStatus::Running, &marketer())
        .unwrap();
    strategies
        .transition(TENANT, "spring", CampaignStatus::Completed, &marketer())
        .unwrap();
    let error = strategies
        .transition(TENANT, "spring", CampaignStatus::Running, &marketer())
        .unwrap_err();
    assert!(matches!(error, StrategyError::BadTransition { .. }));
    let campaign = strategies.get(TENANT, "spring").unwrap();
    let path: Vec<CampaignStatus> = campaign.history.iter().map(|t| t.to).collect();
    use CampaignStatus::*;
    assert_eq!(
        path,
        vec![Draft, Simulated, Running, Paused, Running, Completed]
    );
    assert_eq!(world.audited("campaign.put"), 1);
    assert_eq!(world.audited("campaign.status"), 5);
    // Names and ids that cannot exist are unknown, whatever their shape.
    for campaign in ["", "Spring!", &"x".repeat(2_000)] {
        let error = strategies
            .decide(
                TENANT,
                &DecideRequest {
                    campaign: campaign.into(),
                    subject: subjects[0].clone(),
                    channel: String::new(),
                    attributes: Vec::new(),
                },
            )
            .unwrap_err();
        assert!(matches!(error, StrategyError::Unknown { .. }), "{error}");
    }
    for decision in ["", "dec-", &"d".repeat(2_000)] {
        let error = strategies
            .feedback(
                TENANT,
                &FeedbackSpec {
                    decision: decision.into(),
                    kind: FeedbackKind::Click,
                    value: None,
                    key: None,
                },
            )
            .unwrap_err();
        assert!(
            matches!(error, StrategyError::UnknownDecision { .. }),
            "{error}"
        );
    }
    // Without logs or results, a strategy is listed without evidence.
    let ranked = strategies.recommend(TENANT, "spenders").unwrap();
    assert_eq!(ranked[0].basis, "none");
    assert!(ranked[0].reasons[0].starts_with("no evidence yet"));
    assert!(matches!(
        strategies.recommend(TENANT, "nobody"),
        Err(StrategyError::UnknownSegment { .. })
    ));
    // Bad definitions are refused with the field named.
    let mut bad = world.spec(0.7);
    let error = strategies
        .put(TENANT, "autumn", bad.clone(), &marketer())
        .unwrap_err();
    assert!(error.to_string().starts_with("holdout:"), "{error}");
    bad.holdout = 0.1;
    bad.fallback = Some("free_car".into());
    let error = strategies
        .put(TENANT, "autumn", bad.clone(), &marketer())
        .unwrap_err();
    assert!(error.to_string().contains("free_car"), "{error}");
    bad.fallback = None;
    bad.segment = "nobody".into();
    let error = strategies
        .put(TENANT, "autumn", bad, &marketer())
        .unwrap_err();
    assert!(
        matches!(error, StrategyError::UnknownSegment { .. }),
        "{error}"
    );
    assert!(strategies.get(TENANT, "autumn").is_err());
}

#[test]
fn caps_and_budget_bound_what_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(3);
    let mut spec = world.spec(0.0);
    spec.frequency_cap = Some(FrequencyCap { max: 1, days: 7 });
    spec.budget = Some(2);
    world.launch("spring", spec);

    assert_eq!(arm(&world.decide("spring", &subjects[0])), Arm::Treatment);
    assert!(matches!(
        world.decide("spring", &subjects[0]),
        DecisionOutcome::Fallback {
            reason: FallbackReason::Capped,
            ..
        }
    ));
    // A week later the cap allows another.
    world.clock.fetch_add(8 * DAY_MS, Ordering::SeqCst);
    assert_eq!(arm(&world.decide("spring", &subjects[0])), Arm::Treatment);
    // The budget of 2 is spent.
    assert!(matches!(
        world.decide("spring", &subjects[1]),
        DecisionOutcome::Fallback {
            reason: FallbackReason::BudgetExhausted,
            ..
        }
    ));
}

#[test]
fn feedback_is_idempotent_joined_to_its_decision_and_the_strategy_learns_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(40);
    world.launch("spring", world.spec(0.0));
    let mut served = BTreeMap::new();
    for subject in &subjects {
        let DecisionOutcome::Logged(record) = world.decide("spring", subject) else {
            panic!("no decision");
        };
        served.insert(record.id.clone(), record);
    }
    // Impressions for all; a conversion for whoever got double points.
    for (id, record) in &served {
        let impression = FeedbackSpec {
            decision: id.clone(),
            kind: FeedbackKind::Impression,
            value: None,
            key: None,
        };
        assert!(
            !world
                .strategies
                .feedback(TENANT, &impression)
                .unwrap()
                .duplicate
        );
        assert!(
            world
                .strategies
                .feedback(TENANT, &impression)
                .unwrap()
                .duplicate
        );
        if record.action.as_deref() == Some("double_points") {
            world
                .strategies
                .feedback(
                    TENANT,
                    &FeedbackSpec {
                        decision: id.clone(),
                        kind: FeedbackKind::Conversion,
                        value: None,
                        key: None,
                    },
                )
                .unwrap();
        }
    }
    let conversions = served
        .values()
        .filter(|r| r.action.as_deref() == Some("double_points"))
        .count() as u64;

    let report = world.strategies.learn(TENANT).unwrap();
    assert_eq!(report.observed, served.len() as u64 + conversions);
    assert_eq!(report.failed_calls, 0);
    // Learned once: the queue is empty.
    assert_eq!(world.strategies.learn(TENANT).unwrap().observed, 0);
    // More rounds, until every offer had its first chance (epsilon-greedy
    // tries an offer never shown before exploiting): then the strategy
    // exploits the one that converts.
    let mut shown: std::collections::BTreeSet<String> =
        served.values().filter_map(|r| r.action.clone()).collect();
    let mut rounds = 1;
    while shown.len() < 4 && rounds < 20 {
        for subject in &subjects {
            let DecisionOutcome::Logged(record) = world.decide("spring", subject) else {
                panic!("no decision");
            };
            let action = record.action.clone().unwrap();
            let mut kinds = vec![FeedbackKind::Impression];
            if action == "double_points" {
                kinds.push(FeedbackKind::Conversion);
            }
            for kind in kinds {
                world
                    .strategies
                    .feedback(
                        TENANT,
                        &FeedbackSpec {
                            decision: record.id.clone(),
                            kind,
                            value: None,
                            key: None,
                        },
                    )
                    .unwrap();
            }
            shown.insert(action);
        }
        world.strategies.learn(TENANT).unwrap();
        rounds += 1;
    }
    assert_eq!(
        shown.len(),
        4,
        "every offer was shown within {rounds} rounds"
    );
    let exploits = subjects
        .iter()
        .filter_map(|s| match world.decide("spring", s) {
            DecisionOutcome::Logged(r) => r.action,
            _ => None,
        })
        .filter(|a| a == "double_points")
        .count();
    assert!(
        exploits > subjects.len() / 2,
        "{exploits} of {} decisions chose the converting offer",
        subjects.len()
    );
    assert_eq!(world.audited("campaign.learn"), rounds);

    // Feedback names a decision that exists, with a sane value.
    let error = world
        .strategies
        .feedback(
            TENANT,
            &FeedbackSpec {
                decision: "dec-nope".into(),
                kind: FeedbackKind::Click,
                value: None,
                key: None,
            },
        )
        .unwrap_err();
    assert!(matches!(error, StrategyError::UnknownDecision { .. }));
    let any = served.keys().next().unwrap().clone();
    for (kind, value) in [
        (FeedbackKind::Revenue, None),
        (FeedbackKind::Revenue, Some(f64::NAN)),
        (FeedbackKind::Click, Some(-1.0)),
    ] {
        let error = world
            .strategies
            .feedback(
                TENANT,
                &FeedbackSpec {
                    decision: any.clone(),
                    kind,
                    value,
                    key: None,
                },
            )
            .unwrap_err();
        assert!(error.to_string().starts_with("value:"), "{error}");
    }
}

#[test]
fn evaluation_compares_the_arms_on_the_goal_after_each_first_decision() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(400);
    world.launch("spring", world.spec(0.5));
    // A purchase before the campaign: the pre-period, not an outcome.
    world.purchase(0, 10.0);
    world.clock.fetch_add(DAY_MS, Ordering::SeqCst);
    let mut arms = BTreeMap::new();
    for subject in &subjects {
        arms.insert(subject.clone(), arm(&world.decide("spring", subject)));
    }
    world.clock.fetch_add(DAY_MS, Ordering::SeqCst);
    // Every treated person with an even index buys; one in four of control.
    let mut expected = (0u64, 0u64, 0.0f64, 0u64, 0u64);
    for (i, subject) in subjects.iter().enumerate() {
        let buys = match arms[subject] {
            Arm::Treatment => i % 2 == 0,
            Arm::Control => i % 4 == 0,
        };
        if buys {
            world.purchase(i, 50.0);
        }
        match arms[subject] {
            Arm::Treatment => {
                expected.0 += 1;
                expected.1 += u64::from(buys);
                expected.2 += if buys { 50.0 } else { 0.0 };
            }
            Arm::Control => {
                expected.3 += 1;
                expected.4 += u64::from(buys);
            }
        }
    }
    // After the window: not an outcome.
    world.clock.fetch_add(10 * DAY_MS, Ordering::SeqCst);
    world.purchase(1, 999.0);

    let evaluation = world.strategies.evaluate(TENANT, "spring", &[]).unwrap();

    assert_eq!(evaluation.treatment_subjects, expected.0);
    assert_eq!(evaluation.control_subjects, expected.3);
    let report = evaluation.report.expect("both arms are large enough");
    assert_eq!(report.treatment.conversions, expected.1);
    assert_eq!(report.control.conversions, expected.4);
    let revenue = expected.2 / expected.0 as f64;
    assert!((report.treatment.revenue_per_subject - revenue).abs() < 1e-9);
    assert!(
        report.absolute_uplift.lower > 0.0,
        "a planted uplift of about 25 points is found: {:?}",
        report.absolute_uplift
    );
    assert!(!report.sample_ratio.mismatch);
    let kept = world
        .strategies
        .last_evaluation(TENANT, "spring")
        .unwrap()
        .expect("kept");
    assert_eq!(kept.computed_at_ms, evaluation.computed_at_ms);
    assert_eq!(kept.treatment_subjects, evaluation.treatment_subjects);
    // The campaign's result is the strategy's track record: on a segment
    // with the same members and no logs of its own, it ranks by it.
    world
        .segments
        .put(
            TENANT,
            "also-spenders",
            SegmentSpec {
                plugin: "threshold".into(),
                params: vec![FieldValue {
                    name: "threshold".into(),
                    value: Value::Number(200.0),
                }],
                purpose: Some(PURPOSE.into()),
                description: String::new(),
            },
            &operator(),
        )
        .unwrap();
    world.segments.recompute(TENANT, "also-spenders").unwrap();
    let ranked = world.strategies.recommend(TENANT, "also-spenders").unwrap();
    assert_eq!(ranked.len(), 1);
    assert_eq!(ranked[0].basis, "track_record");
    assert!((ranked[0].score - report.absolute_uplift.lower).abs() < 1e-9);
    assert!(
        ranked[0].reasons[0].contains("campaign spring on spenders (100% similar"),
        "{:?}",
        ranked[0].reasons
    );
    assert!(world.registry.callable(TENANT, "epsilon-greedy").is_ok());
}

#[test]
fn erasing_a_person_erases_their_decisions_and_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(2);
    world.launch("spring", world.spec(0.0));
    let mut decisions = Vec::new();
    for subject in &subjects {
        let DecisionOutcome::Logged(record) = world.decide("spring", subject) else {
            panic!("no decision");
        };
        world
            .strategies
            .feedback(
                TENANT,
                &FeedbackSpec {
                    decision: record.id.clone(),
                    kind: FeedbackKind::Impression,
                    value: None,
                    key: None,
                },
            )
            .unwrap();
        decisions.push(record.id);
    }

    world
        .vault
        .request_deletion(TENANT, &subjects[0], "asked to", &operator())
        .unwrap();

    assert!(
        world
            .strategies
            .decisions_of(TENANT, "spring", &subjects[0])
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        world.strategies.decision(TENANT, &decisions[0]),
        Err(StrategyError::UnknownDecision { .. })
    ));
    // Feedback on the erased person's decision is gone with it: learning
    // gives the strategy only the other person's.
    assert_eq!(world.strategies.learn(TENANT).unwrap().observed, 1);
    // The other person is untouched.
    assert_eq!(
        world
            .strategies
            .decision(TENANT, &decisions[1])
            .unwrap()
            .subject,
        subjects[1]
    );
}

/// `epsilon-greedy` with this epsilon.
fn epsilon(world: &World, value: f64) -> CampaignSpec {
    let mut spec = world.spec(0.0);
    spec.params = vec![FieldValue {
        name: "epsilon".into(),
        value: Value::Number(value),
    }];
    spec
}

/// Decides for everyone in `campaign`; those served `double_points`
/// convert. Returns the decisions served.
fn serve_and_convert(world: &World, campaign: &str, subjects: &[String]) -> usize {
    let mut served = 0;
    for subject in subjects {
        let DecisionOutcome::Logged(record) = world.decide(campaign, subject) else {
            panic!("no decision");
        };
        served += 1;
        let mut kinds = vec![FeedbackKind::Impression];
        if record.action.as_deref() == Some("double_points") {
            kinds.push(FeedbackKind::Conversion);
        }
        for kind in kinds {
            world
                .strategies
                .feedback(
                    TENANT,
                    &FeedbackSpec {
                        decision: record.id.clone(),
                        kind,
                        value: None,
                        key: None,
                    },
                )
                .unwrap();
        }
    }
    served
}

#[test]
fn a_new_strategy_is_replayed_over_logged_decisions_and_a_shadow_is_weighed_beside_the_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(300);
    // Logged by a uniformly random policy: every offer with probability
    // 1/4; double points converts every time, the others never.
    world.launch("explore", epsilon(&world, 1.0));
    serve_and_convert(&world, "explore", &subjects);
    world.strategies.learn(TENANT).unwrap();

    // The same random policy, replayed: every weight is 1, and the
    // estimate is what the logs earned.
    world
        .strategies
        .put(TENANT, "random", epsilon(&world, 1.0), &marketer())
        .unwrap();
    let simulation = world
        .strategies
        .simulate(TENANT, "random", None, &marketer())
        .unwrap();
    let replay = simulation
        .off_policy
        .expect("the logs of explore are replayed");
    assert_eq!(replay.logs_from, "explore");
    assert_eq!(replay.rows, 300);
    assert!(
        (replay.logged_value - 0.25).abs() < 0.1,
        "the logging policy converts about a quarter: {}",
        replay.logged_value
    );
    let estimate = replay.estimate;
    assert!(
        (estimate.ips.value - replay.logged_value).abs() < 1e-9,
        "{estimate:?}"
    );
    assert!((estimate.snips.value - replay.logged_value).abs() < 1e-9);
    assert!((estimate.effective_sample_size - 300.0).abs() < 1e-6);

    // A greedy campaign starts with a state of its own (the explore
    // campaign's learning is not its): it exploits the first offer, never
    // tried by it, which never converted in the logs: its rate is 0.
    world
        .strategies
        .put(TENANT, "greedy", epsilon(&world, 0.0), &marketer())
        .unwrap();
    let replay = world
        .strategies
        .simulate(TENANT, "greedy", Some("explore"), &marketer())
        .unwrap()
        .off_policy
        .unwrap();
    let first = &replay.actions[0];
    assert_eq!(first.action, "discount_10");
    assert!((first.target_share - 1.0).abs() < 1e-9, "{replay:?}");
    assert!(first.logged_reward.abs() < 1e-9);
    assert!(replay.estimate.snips.value.abs() < 1e-9);
    assert!(replay.estimate.ips.covers(0.0));
    assert!(replay.estimate.dr.expect("with a reward model").covers(0.0));

    // For the segment, epsilon-greedy is recommended on what it would
    // earn on the decisions logged there.
    let ranked = world.strategies.recommend(TENANT, "spenders").unwrap();
    assert_eq!(ranked[0].strategy, "epsilon-greedy");
    assert_eq!(ranked[0].basis, "off_policy");
    assert!(
        ranked[0].reasons[0].starts_with("replayed over"),
        "{ranked:?}"
    );
    assert!(ranked[0].score < 0.25, "{ranked:?}");

    // The greedy strategy as the shadow of a random live one: its answers
    // are logged beside every live decision and weighed the same way.
    let mut live = epsilon(&world, 1.0);
    live.shadow = Some((
        "epsilon-greedy".into(),
        vec![FieldValue {
            name: "epsilon".into(),
            value: Value::Number(0.0),
        }],
    ));
    world.launch("with-shadow", live);
    serve_and_convert(&world, "with-shadow", &subjects);
    let decisions = world.strategies.decisions(TENANT, "with-shadow").unwrap();
    assert!(decisions.iter().all(|d| d.shadow.is_some()));
    assert!(
        decisions
            .iter()
            .all(|d| d.shadow.as_ref().unwrap().action.as_deref() == Some("discount_10"))
    );
    let campaign = world.strategies.get(TENANT, "with-shadow").unwrap();
    let shadow = world.strategies.shadow_estimate(TENANT, &campaign).unwrap();
    assert!(shadow.logged_value > 0.1);
    assert!(shadow.estimate.snips.value.abs() < 1e-9, "{shadow:?}");
}

#[test]
fn evaluation_can_read_conversions_from_feedback_on_both_arms() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(200);
    let mut spec = world.spec(0.5);
    spec.goal = Goal {
        event: String::new(),
        value: None,
        window_days: 7,
        source: GoalSource::Feedback,
    };
    world.launch("spring", spec);
    let (mut treated, mut held, mut expected) = (0u64, 0u64, (0u64, 0u64, 0.0f64));
    for (i, subject) in subjects.iter().enumerate() {
        let DecisionOutcome::Logged(record) = world.decide("spring", subject) else {
            panic!("no decision");
        };
        let converts = match record.arm {
            Arm::Treatment => {
                treated += 1;
                i % 2 == 0
            }
            Arm::Control => {
                held += 1;
                i % 5 == 0
            }
        };
        if converts {
            for (kind, value) in [
                (FeedbackKind::Conversion, None),
                (FeedbackKind::Revenue, Some(30.0)),
            ] {
                world
                    .strategies
                    .feedback(
                        TENANT,
                        &FeedbackSpec {
                            decision: record.id.clone(),
                            kind,
                            value,
                            key: None,
                        },
                    )
                    .unwrap();
            }
            match record.arm {
                Arm::Treatment => {
                    expected.0 += 1;
                    expected.2 += 30.0;
                }
                Arm::Control => expected.1 += 1,
            }
        }
    }

    let evaluation = world.strategies.evaluate(TENANT, "spring", &[]).unwrap();

    assert_eq!(
        (evaluation.treatment_subjects, evaluation.control_subjects),
        (treated, held)
    );
    let report = evaluation.report.unwrap();
    assert_eq!(report.treatment.conversions, expected.0);
    assert_eq!(report.control.conversions, expected.1);
    assert!((report.treatment.revenue_per_subject - expected.2 / treated as f64).abs() < 1e-9);
    assert!(report.cuped.is_none(), "feedback has no pre-period");
}
