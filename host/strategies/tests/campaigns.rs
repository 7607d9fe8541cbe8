//! Campaigns end to end over a real vault on sled: the `threshold` segment
//! plugin builds the segment, the sandboxed `epsilon-greedy` strategy
//! decides, and the host holds out, caps, logs, joins feedback, feeds the
//! strategy and evaluates.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::{DAY_MS, PURPOSE, TENANT, World, arm, consent, marketer, operator};
use serde_json::json;
use tessera_bundle::{Bundle, PublisherKey, SourceManifest};
use tessera_plugins::RegistryError;
use tessera_runtime::StateScope;
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
    // Running, it decides; paused a moment later (the campaign read again,
    // not a copy kept from before), it does not.
    assert!(matches!(
        world.decide("spring", &subjects[0]),
        DecisionOutcome::Logged(_)
    ));
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

/// The state scope of the namespace `namespace` of the installation
/// `installation`.
fn namespace(installation: &str, namespace: &str) -> StateScope {
    StateScope {
        tenant: TENANT.into(),
        plugin: installation.into(),
    }
    .namespace(namespace)
}

/// Writes `n` entries into a state scope.
fn seed(world: &World, scope: &StateScope, n: usize) {
    let store = world.vault.store();
    let version = store.version(scope).unwrap();
    let writes: Vec<_> = (0..n)
        .map(|i| (format!("model/{i:03}"), Some(vec![7u8; 4])))
        .collect();
    store.apply(scope, version, &writes, u64::MAX).unwrap();
}

#[test]
fn a_definition_is_simulated_without_saving_anything_and_checked_as_saving_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    world.people(6);
    let strategies = &world.strategies;
    // Whatever the strategy might write to a what-if's state is not kept.
    let store = world.vault.store();
    let what_if = namespace("builtin-epsilon-greedy", "campaign/(what-if)");
    seed(&world, &what_if, 2);
    let audit_before = world.vault.audit_entries(TENANT, 0, 100_000).unwrap().len();

    let simulation = strategies
        .simulate_spec(TENANT, world.spec(0.5), None)
        .unwrap();

    assert_eq!(simulation.segment_size, 6);
    assert_eq!(simulation.consenting, 6);
    assert_eq!(simulation.expected_treated + simulation.expected_control, 6);
    assert_eq!(simulation.actions.len(), 4);
    assert_eq!(
        simulation.off_policy_note.as_deref(),
        Some("no other campaign on segment spenders has logged decisions to replay")
    );
    assert!(strategies.list(TENANT).unwrap().is_empty(), "nothing saved");
    let added: Vec<String> = world.vault.audit_entries(TENANT, 0, 100_000).unwrap()[audit_before..]
        .iter()
        .map(|e| e.action.clone())
        .collect();
    assert_eq!(
        added,
        ["plugin.read"],
        "only the strategy's read of the segment, as for any forecast"
    );
    assert!(store.keys(&what_if, "", 10).unwrap().is_empty());

    // The forecast is the one simulating a saved campaign of the same
    // definition gives.
    strategies
        .put(TENANT, "spring", world.spec(0.5), &marketer())
        .unwrap();
    let saved = strategies
        .simulate(TENANT, "spring", None, &marketer())
        .unwrap();
    assert_eq!(
        (
            saved.segment_size,
            saved.consenting,
            saved.expected_treated,
            saved.expected_control,
            saved.max_decisions,
        ),
        (
            simulation.segment_size,
            simulation.consenting,
            simulation.expected_treated,
            simulation.expected_control,
            simulation.max_decisions,
        )
    );
    assert_eq!(saved.actions, simulation.actions);
    // A what-if leaves the campaigns as they were.
    let before = strategies.get(TENANT, "spring").unwrap();
    strategies
        .simulate_spec(TENANT, world.spec(0.2), None)
        .unwrap();
    assert_eq!(strategies.get(TENANT, "spring").unwrap(), before);
    assert_eq!(strategies.list(TENANT).unwrap().len(), 1);

    // A definition saving refuses is refused alike, with the same error.
    let mut bad = Vec::new();
    let mut spec = world.spec(0.7);
    bad.push(spec.clone());
    spec.holdout = 0.1;
    spec.fallback = Some("free_car".into());
    bad.push(spec.clone());
    spec.fallback = None;
    spec.segment = "nobody".into();
    bad.push(spec.clone());
    spec.segment = "spenders".into();
    spec.params = vec![FieldValue {
        name: "epsilon".into(),
        value: Value::Number(5.0),
    }];
    bad.push(spec.clone());
    spec.params = Vec::new();
    spec.purpose = Some("analytics".into());
    bad.push(spec.clone());
    spec.purpose = None;
    spec.strategy = "threshold".into();
    bad.push(spec.clone());
    spec.strategy = "nothing-by-that-name".into();
    bad.push(spec);
    for spec in bad {
        let saving = strategies
            .put(TENANT, "autumn", spec.clone(), &marketer())
            .unwrap_err();
        let trying = strategies.simulate_spec(TENANT, spec, None).unwrap_err();
        assert_eq!(trying.to_string(), saving.to_string());
        assert_eq!(
            std::mem::discriminant(&trying),
            std::mem::discriminant(&saving),
            "{trying}"
        );
    }
    assert!(strategies.get(TENANT, "autumn").is_err());
    // Logs to replay over must exist.
    assert!(matches!(
        strategies.simulate_spec(TENANT, world.spec(0.1), Some("nothing")),
        Err(StrategyError::Unknown { .. })
    ));
}

/// A person who is not yet known by member id: only by email.
fn newcomer(world: &World, email: &str) -> String {
    let (_, outcomes) = world
        .vault
        .ingest_batch(
            TENANT,
            &[Incoming {
                identities: vec![(IdentityKind::Email, email.into())],
                traits: BTreeMap::from([("total_spend".to_owned(), json!(500))]),
                events: Vec::new(),
                consents: vec![consent(true)],
            }],
            &Actor::new("ingest", "pipeline"),
        )
        .unwrap();
    world.segments.recompute(TENANT, "spenders").unwrap();
    outcomes[0].subject.clone().unwrap()
}

#[test]
fn a_person_sees_the_decisions_made_about_them_and_no_one_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(40);
    world.launch("spring", world.spec(0.5));
    let mut logged = BTreeMap::new();
    for subject in &subjects {
        let DecisionOutcome::Logged(record) = world.decide("spring", subject) else {
            panic!("no decision");
        };
        logged.insert(subject.clone(), record);
    }
    let treated = logged
        .values()
        .find(|r| r.arm == Arm::Treatment)
        .expect("someone treated");
    let held = logged
        .values()
        .find(|r| r.arm == Arm::Control)
        .expect("someone held out");

    let view = world
        .vault
        .access(TENANT, &treated.subject, &operator())
        .unwrap();
    assert_eq!(view.decisions.len(), 1);
    let seen = &view.decisions[0];
    assert_eq!(seen.id, treated.id);
    assert_eq!(seen.campaign, "spring");
    assert_eq!(seen.at_ms, treated.at_ms);
    assert_eq!(seen.channel, "web");
    assert!(!seen.control_group);
    assert_eq!(seen.shown, treated.action);
    assert!(seen.shown.is_some());
    assert_eq!(seen.explanation, treated.explanation);
    // In plain words: not what the strategy weighed.
    let shown = serde_json::to_value(seen).unwrap();
    let keys: Vec<&str> = shown
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "at_ms",
            "campaign",
            "channel",
            "control_group",
            "explanation",
            "id",
            "shown"
        ]
    );

    let view = world
        .vault
        .access(TENANT, &held.subject, &operator())
        .unwrap();
    assert_eq!(view.decisions.len(), 1);
    assert_eq!(view.decisions[0].id, held.id);
    assert!(view.decisions[0].control_group);
    assert_eq!(view.decisions[0].shown.as_deref(), Some("no_offer"));
    assert!(
        view.decisions[0].explanation.contains("holdout"),
        "{:?}",
        view.decisions[0]
    );

    // The exports hold them too, and someone else's hold none of theirs.
    let json = world
        .vault
        .export_json(TENANT, &treated.subject, &operator())
        .unwrap();
    assert!(json.contains(&treated.id));
    assert!(!json.contains(&held.id));
    let tables = world
        .vault
        .export_csv(TENANT, &treated.subject, &operator())
        .unwrap();
    let csv = &tables["decisions.csv"];
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("at_ms,campaign,channel,control_group,shown,explanation,decision")
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(&format!("{},spring,web,false,", treated.at_ms)));
    assert!(row.ends_with(&treated.id), "{row}");
    assert_eq!(lines.next(), None);

    // Someone never decided for sees no decision.
    let stranger = newcomer(&world, "stranger@example.com");
    assert!(
        world
            .vault
            .access(TENANT, &stranger, &operator())
            .unwrap()
            .decisions
            .is_empty()
    );
}

#[test]
fn decisions_logged_before_a_merge_are_the_merged_persons_and_go_with_their_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(2);
    world.launch("spring", world.spec(0.0));
    // Known by email only, then found to be member M-00000.
    let late = newcomer(&world, "late@example.com");
    let before = arm(&world.decide("spring", &late));
    assert_eq!(before, Arm::Treatment);
    world.decide("spring", &subjects[0]);
    let (_, outcomes) = world
        .vault
        .ingest_batch(
            TENANT,
            &[Incoming {
                identities: vec![
                    (IdentityKind::MemberId, "M-00000".into()),
                    (IdentityKind::Email, "late@example.com".into()),
                ],
                traits: BTreeMap::new(),
                events: Vec::new(),
                consents: Vec::new(),
            }],
            &Actor::new("ingest", "pipeline"),
        )
        .unwrap();
    assert_eq!(outcomes[0].merged, std::slice::from_ref(&late));
    let root = outcomes[0].subject.clone().unwrap();
    assert_eq!(root, subjects[0]);
    // A decision after the merge is logged under the root.
    world.decide("spring", &late);

    let view = world.vault.access(TENANT, &late, &operator()).unwrap();
    assert_eq!(view.subject, root);
    assert_eq!(view.decisions.len(), 3, "{:?}", view.decisions);
    let mut by_subject: Vec<String> = view
        .decisions
        .iter()
        .map(|d| world.strategies.decision(TENANT, &d.id).unwrap().subject)
        .collect();
    by_subject.sort();
    let mut expected = vec![root.clone(), root.clone(), late.clone()];
    expected.sort();
    assert_eq!(by_subject, expected);
    assert!(
        view.decisions.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "oldest first"
    );
    // The other person sees none of them.
    assert!(
        world
            .vault
            .access(TENANT, &subjects[1], &operator())
            .unwrap()
            .decisions
            .is_empty()
    );

    world
        .vault
        .request_deletion(TENANT, &root, "asked to", &operator())
        .unwrap();
    assert!(
        world
            .strategies
            .decisions_about(TENANT, &[root, late])
            .unwrap()
            .is_empty(),
        "nothing of theirs remains in the decision log"
    );
    assert!(
        world
            .strategies
            .decisions(TENANT, "spring")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn removing_a_campaign_removes_what_its_strategies_kept_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    world.people(3);
    let mut spec = world.spec(0.1);
    spec.shadow = Some(("epsilon-greedy".into(), Vec::new()));
    world
        .strategies
        .put(TENANT, "spring", spec.clone(), &marketer())
        .unwrap();
    let store = world.vault.store();
    let own = namespace("builtin-epsilon-greedy", "campaign/spring");
    let shadow = namespace("builtin-epsilon-greedy", "campaign/spring/shadow");
    let neighbour = namespace("builtin-epsilon-greedy", "campaign/spring-2");
    for scope in [&own, &shadow, &neighbour] {
        seed(&world, scope, 3);
    }

    world
        .strategies
        .delete(TENANT, "spring", &marketer())
        .unwrap();

    assert!(store.keys(&own, "", 10).unwrap().is_empty());
    assert!(store.keys(&shadow, "", 10).unwrap().is_empty());
    assert_eq!(store.usage(&own).unwrap(), 0);
    assert_eq!(
        store.keys(&neighbour, "", 10).unwrap().len(),
        3,
        "another campaign's state is its own"
    );
    // The name can be used again, and its state kept again.
    world
        .strategies
        .put(TENANT, "spring", spec, &marketer())
        .unwrap();
    seed(&world, &own, 1);
    assert_eq!(store.keys(&own, "", 10).unwrap().len(), 1);
}

/// A signed bundle of the `thompson` strategy.
fn thompson_bundle(key: &PublisherKey) -> Vec<u8> {
    let source: SourceManifest = serde_json::from_value(json!({
        "publisher": "Acme Analytics",
        "version": "1.0.0",
        "plugins": [{
            "name": "thompson",
            "kind": "strategy",
            "wit_version": "0.1.0",
            "component": "thompson.wasm",
            "permissions": {"purposes": [PURPOSE, "email_marketing"], "state_quota": 65_536},
        }]
    }))
    .unwrap();
    let mut bundle =
        Bundle::build(source, vec![tessera_guests::plugins::THOMPSON.to_vec()]).unwrap();
    bundle.sign(key);
    bundle.to_bytes()
}

#[test]
fn a_strategy_is_not_removed_while_unfinished_campaigns_use_it_and_their_state_goes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let subjects = world.people(20);
    let key = PublisherKey::generate().unwrap();
    world
        .registry
        .trust(
            TENANT,
            &key.public().to_string(),
            "Acme Analytics",
            &operator(),
        )
        .unwrap();
    world
        .registry
        .install(TENANT, &thompson_bundle(&key), false, &operator())
        .unwrap();
    world
        .registry
        .approve(TENANT, "thompson", None, None, &operator())
        .unwrap();
    let installation = world
        .registry
        .callable(TENANT, "thompson")
        .unwrap()
        .installation;
    let mut spec = world.spec(0.0);
    spec.strategy = "thompson".into();
    spec.params = Vec::new();
    spec.fallback = None;
    world.launch("spring", spec);
    let mut shadowed = world.spec(0.1);
    shadowed.shadow = Some(("thompson".into(), Vec::new()));
    world
        .strategies
        .put(TENANT, "autumn", shadowed, &marketer())
        .unwrap();
    // Spring learns: thompson keeps its model in spring's part of its state.
    for subject in &subjects {
        let DecisionOutcome::Logged(record) = world.decide("spring", subject) else {
            panic!("no decision");
        };
        world.feedback(&record.id, FeedbackKind::Impression);
        world.feedback(&record.id, FeedbackKind::Click);
    }
    assert_eq!(world.strategies.learn(TENANT).unwrap().observed, 40);
    let store = world.vault.store();
    let spring = namespace(&installation, "campaign/spring");
    let learned = store.keys(&spring, "", 1_000).unwrap().len();
    assert!(learned > 0, "thompson learned for spring");
    let autumn = namespace(&installation, "campaign/autumn/shadow");
    seed(&world, &autumn, 2);

    let refused = world
        .registry
        .remove(TENANT, "thompson", &operator())
        .unwrap_err();
    match &refused {
        RegistryError::InUse { name, by, .. } => {
            assert_eq!(name, "thompson");
            assert_eq!(
                by,
                &[
                    "campaign autumn (draft, as its shadow)",
                    "campaign spring (running)"
                ]
            );
        }
        other => panic!("expected in use, got {other}"),
    }
    assert!(
        refused.to_string().contains("complete the running"),
        "{refused}"
    );
    // Nothing of it happened.
    assert!(world.registry.callable(TENANT, "thompson").is_ok());
    assert_eq!(store.keys(&spring, "", 1_000).unwrap().len(), learned);
    assert!(arm(&world.decide("spring", &subjects[0])) == Arm::Treatment);

    // Paused is still in use; completed is not, and a draft that no
    // longer uses it does not hold it either.
    world
        .strategies
        .transition(TENANT, "spring", CampaignStatus::Paused, &marketer())
        .unwrap();
    assert!(matches!(
        world.registry.remove(TENANT, "thompson", &operator()),
        Err(RegistryError::InUse { .. })
    ));
    world
        .strategies
        .transition(TENANT, "spring", CampaignStatus::Completed, &marketer())
        .unwrap();
    world
        .strategies
        .put(TENANT, "autumn", world.spec(0.1), &marketer())
        .unwrap();
    let removed = world
        .registry
        .remove(TENANT, "thompson", &operator())
        .unwrap();

    assert!(removed >= (learned + 2) as u64, "{removed}");
    for scope in [&spring, &autumn] {
        assert!(store.keys(scope, "", 10).unwrap().is_empty());
        assert!(
            matches!(
                store.apply(scope, 0, &[("k".into(), Some(vec![1]))], u64::MAX),
                Err(tessera_runtime::StateError::Retired)
            ),
            "a call still running cannot write back into {}",
            scope.plugin
        );
    }
    // The completed campaign stays as the track record.
    assert_eq!(
        world.strategies.get(TENANT, "spring").unwrap().status,
        CampaignStatus::Completed
    );
}
