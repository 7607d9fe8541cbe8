//! Campaign sends: a running campaign decided for its whole segment and
//! delivered through the first-party `webhook-out` connector to a loopback
//! receiver. What reaches the receiver is checked against the decision
//! log, and the log against who is in the segment, who consents now, the
//! holdout, the cap and the budget.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::webhook::Destination;
use common::{PURPOSE, TENANT, World, consent, marketer, operator};
use serde_json::{Value as Json, json};
use tessera_plugins::views::batch_digest;
use tessera_strategies::{
    Arm, CampaignSend, CampaignStatus, DecisionOutcome, DecisionRecord, FeedbackKind, FeedbackSpec,
    FrequencyCap, SEND_ACTION, SEND_PAGE, SendSpec, SendStatus, StrategyError,
};
use tessera_vault::{Actor, IdentityKind, Incoming};

/// A fresh world with `webhook-out` granted `purposes` and no PII class.
fn world_with_destination(purposes: &[&str]) -> (tempfile::TempDir, World, Destination) {
    let dir = tempfile::tempdir().unwrap();
    let world = World::open(dir.path());
    let destination = Destination::install(&world.registry, &world.vault, TENANT, purposes, &[]);
    (dir, world, destination)
}

/// Sends `campaign` to the destination, by member id, on the email channel.
fn send(
    world: &World,
    destination: &Destination,
    campaign: &str,
) -> Result<CampaignSend, StrategyError> {
    send_to(world, destination, campaign, IdentityKind::MemberId)
}

fn send_to(
    world: &World,
    destination: &Destination,
    campaign: &str,
    recipient: IdentityKind,
) -> Result<CampaignSend, StrategyError> {
    let (record, params) = world.strategies.start_send(
        &destination.deliverer,
        TENANT,
        campaign,
        spec(destination, recipient),
        &marketer(),
    )?;
    assert_eq!(record.status, SendStatus::Running);
    world
        .strategies
        .run_send(&destination.deliverer, TENANT, record, params)
}

fn spec(destination: &Destination, recipient: IdentityKind) -> SendSpec {
    SendSpec {
        connector: "webhook-out".into(),
        params: destination.params(),
        recipient,
        channel: "email".into(),
    }
}

/// A person in `spenders` who consents, known by `identities`.
fn person(world: &World, identities: &[(IdentityKind, &str)]) -> String {
    let item = Incoming {
        identities: identities
            .iter()
            .map(|(kind, value)| (kind.clone(), (*value).to_owned()))
            .collect(),
        traits: BTreeMap::from([("total_spend".to_owned(), json!(500))]),
        events: Vec::new(),
        consents: vec![consent(true)],
    };
    let (_, outcomes) = world
        .vault
        .ingest_batch(TENANT, &[item], &Actor::new("ingest", "pipeline"))
        .unwrap();
    outcomes[0].subject.clone().unwrap()
}

/// The subject a member id names.
fn member(world: &World, id: &str) -> String {
    world
        .vault
        .find_subject(TENANT, &IdentityKind::MemberId, id, &operator())
        .unwrap()
        .unwrap()
}

fn text<'a>(action: &'a Json, attribute: &str) -> &'a str {
    action["attributes"][attribute].as_str().unwrap_or_else(|| {
        panic!("action without a text attribute {attribute}: {action}");
    })
}

/// The `plugin.read` audit entries of the campaign's strategy after `from`.
fn strategy_reads(world: &World, from: u64) -> Vec<tessera_vault::AuditEntry> {
    world
        .vault
        .audit_entries(TENANT, from, 100_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "plugin.read" && e.plugin.as_deref() == Some("epsilon-greedy"))
        .collect()
}

fn audit_head(world: &World) -> u64 {
    world
        .vault
        .audit_entries(TENANT, 0, 100_000)
        .unwrap()
        .last()
        .map_or(0, |e| e.seq + 1)
}

#[test]
fn every_consenting_member_with_an_address_gets_exactly_the_action_logged_for_them() {
    let (_dir, world, destination) = world_with_destination(&[PURPOSE]);
    let subjects = world.people(40);
    // A member known by an email address only: no member id to send to.
    let unreachable = person(&world, &[(IdentityKind::Email, "ann@example.com")]);
    world.segments.recompute(TENANT, "spenders").unwrap();
    world.launch("spring", world.spec(0.5));
    // She withdraws her consent after the segment was computed: the send
    // reads it now.
    let withdrawn = subjects[0].clone();
    world
        .vault
        .set_consent(
            TENANT,
            &withdrawn,
            &consent(false),
            &Actor::new("subject", &withdrawn),
        )
        .unwrap();
    let before = audit_head(&world);

    let sent = send(&world, &destination, "spring").unwrap();

    assert_eq!(sent.status, SendStatus::Completed, "{:?}", sent.error);
    assert_eq!(sent.members, 41);
    assert_eq!(sent.fallback.no_consent, 1);
    assert_eq!(sent.without_address, 1);
    assert_eq!((sent.fallback.not_in_segment, sent.fallback.capped), (0, 0));
    assert_eq!(
        (sent.strategy_failed, sent.without_action, sent.gone),
        (0, 0, 0)
    );
    assert_eq!(
        sent.decided + sent.control,
        39,
        "everyone else is decided for"
    );
    assert!(
        sent.decided > 0 && sent.control > 0,
        "both arms of a 50% holdout: {sent:?}"
    );
    // The log holds one decision per person decided for, as decide logs
    // them, and nothing of the two left out.
    let logged = world.strategies.decisions(TENANT, "spring").unwrap();
    assert_eq!(logged.len(), 39);
    let people: BTreeSet<&str> = logged.iter().map(|d| d.subject.as_str()).collect();
    assert_eq!(people.len(), 39, "one decision per person");
    assert!(!people.contains(withdrawn.as_str()));
    assert!(!people.contains(unreachable.as_str()));
    let by_id: BTreeMap<&str, &DecisionRecord> =
        logged.iter().map(|d| (d.id.as_str(), d)).collect();
    // Every person gets one action: the strategy's choice in treatment,
    // the fallback in control, each naming its logged decision.
    let actions = destination.received.actions();
    assert_eq!(actions.len(), 39);
    assert_eq!((sent.sent, sent.delivered, sent.dead_letters), (39, 39, 0));
    assert_eq!(sent.runs.len(), 1);
    for action in &actions {
        assert_eq!(action["action"], SEND_ACTION);
        let decision = text(action, "decision");
        assert_eq!(action["delivery_id"], decision);
        let record = by_id[decision];
        assert_eq!(
            member(&world, action["recipient"].as_str().unwrap()),
            record.subject
        );
        assert_eq!(Some(text(action, "action")), record.action.as_deref());
        assert_eq!(text(action, "campaign"), "spring");
        assert_eq!(text(action, "send"), sent.id);
        match record.arm {
            Arm::Treatment => {
                assert_eq!(text(action, "arm"), "treatment");
                assert_eq!(record.ranked.len(), 4, "the strategy ranked the offers");
            }
            Arm::Control => {
                assert_eq!(text(action, "arm"), "control");
                assert_eq!(
                    text(action, "action"),
                    "no_offer",
                    "control gets the fallback"
                );
                assert!(record.ranked.is_empty());
                assert_eq!(record.propensity, 1.0);
            }
        }
        assert_eq!(record.channel, "email");
    }
    let recipients: BTreeSet<&str> = actions
        .iter()
        .map(|a| a["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(recipients.len(), 39, "each person once");
    let control = logged.iter().filter(|d| d.arm == Arm::Control).count();
    assert_eq!(control as u64, sent.control);
    // One strategy call for the page, over exactly the people in
    // treatment: nobody withdrawn, nobody held out.
    let reads = strategy_reads(&world, before);
    assert_eq!(reads.len(), 1, "{reads:?}");
    let treated: Vec<String> = logged
        .iter()
        .filter(|d| d.arm == Arm::Treatment)
        .map(|d| d.subject.clone())
        .collect();
    assert_eq!(reads[0].batch, Some(treated.len() as u64));
    assert_eq!(
        reads[0].detail.as_deref(),
        Some(format!("subjects sha256:{}", batch_digest(&treated)).as_str())
    );
    // The record is stored as returned and audited, with no address.
    assert_eq!(
        world.strategies.send(TENANT, "spring", &sent.id).unwrap(),
        sent
    );
    assert_eq!(
        world.strategies.sends(TENANT, "spring").unwrap(),
        vec![sent.clone()]
    );
    let audited: Vec<String> = world
        .vault
        .audit_entries(TENANT, before, 100_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "campaign.send")
        .filter_map(|e| e.detail)
        .collect();
    assert_eq!(audited.len(), 1);
    assert!(audited[0].contains(&sent.id), "{audited:?}");
    assert!(audited[0].contains("39 sent"), "{audited:?}");
    assert!(!audited[0].contains("M-0"), "no address is audited");

    // The receiver posts feedback on the decision ids it got: accepted,
    // joined to the decision, and learned from (treatment only).
    let mut queued = 0;
    for action in &actions {
        let decision = text(action, "decision");
        let outcome = world
            .strategies
            .feedback(
                TENANT,
                &FeedbackSpec {
                    decision: decision.to_owned(),
                    kind: FeedbackKind::Impression,
                    value: None,
                    key: None,
                },
            )
            .unwrap();
        assert_eq!(outcome.decision, decision);
        assert_eq!(outcome.campaign, "spring");
        assert!(!outcome.duplicate);
        assert_eq!(outcome.queued, text(action, "arm") == "treatment");
        queued += u64::from(outcome.queued);
    }
    assert_eq!(queued, sent.decided);
    assert_eq!(world.strategies.learn(TENANT).unwrap().observed, queued);
    // A second send decides again, for the same people, in the same arms.
    let again = send(&world, &destination, "spring").unwrap();
    assert_eq!((again.decided, again.control), (sent.decided, sent.control));
    assert_eq!(world.strategies.sends(TENANT, "spring").unwrap().len(), 2);
}

#[test]
fn without_a_fallback_the_holdout_is_logged_and_sent_nothing() {
    let (_dir, world, destination) = world_with_destination(&[PURPOSE]);
    world.people(30);
    let mut spec = world.spec(0.5);
    spec.fallback = None;
    world.launch("spring", spec);

    let sent = send(&world, &destination, "spring").unwrap();

    assert!(sent.control > 0 && sent.decided > 0, "{sent:?}");
    assert_eq!(sent.decided + sent.control, 30);
    assert_eq!(sent.without_action, sent.control);
    assert_eq!(sent.sent, sent.decided);
    let actions = destination.received.actions();
    assert_eq!(actions.len() as u64, sent.decided);
    assert!(actions.iter().all(|a| text(a, "arm") == "treatment"));
    // The control people are part of the experiment all the same.
    let logged = world.strategies.decisions(TENANT, "spring").unwrap();
    let control: Vec<&DecisionRecord> = logged.iter().filter(|d| d.arm == Arm::Control).collect();
    assert_eq!(control.len() as u64, sent.control);
    assert!(control.iter().all(|d| d.action.is_none()));
}

#[test]
fn the_cap_and_the_budget_skip_people_and_say_so() {
    let (_dir, world, destination) = world_with_destination(&[PURPOSE]);
    let subjects = world.people(10);
    let mut spec = world.spec(0.0);
    spec.frequency_cap = Some(FrequencyCap { max: 1, days: 7 });
    world.launch("capped", spec);
    // Served once already, by a single decision.
    let DecisionOutcome::Logged(first) = world.decide("capped", &subjects[3]) else {
        panic!("no decision");
    };
    assert_eq!(first.arm, Arm::Treatment);

    let sent = send(&world, &destination, "capped").unwrap();

    assert_eq!(sent.fallback.capped, 1);
    assert_eq!(sent.decided, 9);
    let capped_member = format!("M-{:05}", 3);
    let actions = destination.received.actions();
    assert_eq!(actions.len(), 9);
    assert!(
        actions
            .iter()
            .all(|a| a["recipient"] != capped_member.as_str())
    );
    assert_eq!(
        world
            .strategies
            .decisions_of(TENANT, "capped", &subjects[3])
            .unwrap()
            .len(),
        1,
        "nothing more was logged for them"
    );
    // The same send again: everyone is capped now.
    let again = send(&world, &destination, "capped").unwrap();
    assert_eq!(
        (again.decided, again.fallback.capped, again.sent),
        (0, 10, 0)
    );
    assert!(again.runs.is_empty(), "nothing to deliver, no run");

    // A budget of 4 decisions serves 4 people of the page, not the page.
    let mut spec = world.spec(0.0);
    spec.budget = Some(4);
    world.launch("budget", spec);
    let sent = send(&world, &destination, "budget").unwrap();
    assert_eq!((sent.decided, sent.fallback.budget_exhausted), (4, 6));
    assert_eq!(
        world.strategies.decisions(TENANT, "budget").unwrap().len(),
        4
    );
}

#[test]
fn members_are_decided_a_page_at_a_time_one_strategy_call_and_one_run_per_page() {
    let (_dir, world, destination) = world_with_destination(&[PURPOSE]);
    let people = SEND_PAGE + 5;
    world.people(people);
    world.launch("spring", world.spec(0.1));
    let before = audit_head(&world);

    let sent = send(&world, &destination, "spring").unwrap();

    assert_eq!(sent.members, people as u64);
    assert_eq!(sent.decided + sent.control, people as u64);
    assert_eq!(sent.runs.len(), 2, "one delivery run per page");
    assert_eq!(strategy_reads(&world, before).len(), 2, "one call per page");
    let actions = destination.received.actions();
    let ids: BTreeSet<&str> = actions
        .iter()
        .map(|a| a["delivery_id"].as_str().unwrap())
        .collect();
    let recipients: BTreeSet<&str> = actions
        .iter()
        .map(|a| a["recipient"].as_str().unwrap())
        .collect();
    assert_eq!((ids.len(), recipients.len()), (people, people));
}

#[test]
fn a_send_needs_a_running_campaign_and_a_destination_granted_what_it_receives() {
    // Granted another purpose, and no PII class.
    let (_dir, world, destination) = world_with_destination(&["analytics"]);
    world.people(5);
    world.launch("spring", world.spec(0.2));

    let error = send(&world, &destination, "spring").unwrap_err();
    assert!(
        matches!(&error, StrategyError::SendNotGranted { what, .. } if what.contains(PURPOSE)),
        "{error}"
    );
    assert!(error.to_string().contains("an operator must grant it"));
    // Refused before anything was stored, decided or sent.
    assert!(world.strategies.sends(TENANT, "spring").unwrap().is_empty());
    assert!(
        world
            .strategies
            .decisions(TENANT, "spring")
            .unwrap()
            .is_empty()
    );
    assert!(destination.received.actions().is_empty());

    // Granted the purpose but not the class of email addresses.
    let (_dir, world, destination) = world_with_destination(&[PURPOSE]);
    world.people(5);
    world.launch("spring", world.spec(0.2));
    let error = send_to(&world, &destination, "spring", IdentityKind::Email).unwrap_err();
    assert!(
        matches!(&error, StrategyError::SendNotGranted { what, .. } if what.contains("email")),
        "{error}"
    );
    assert!(world.strategies.sends(TENANT, "spring").unwrap().is_empty());

    // Only a running campaign is sent.
    world
        .strategies
        .transition(TENANT, "spring", CampaignStatus::Paused, &marketer())
        .unwrap();
    let error = send(&world, &destination, "spring").unwrap_err();
    assert!(
        matches!(&error, StrategyError::NotRunning { why, .. } if why == "is paused"),
        "{error}"
    );
    world
        .strategies
        .put(TENANT, "draft", world.spec(0.2), &marketer())
        .unwrap();
    let error = send(&world, &destination, "draft").unwrap_err();
    assert!(matches!(error, StrategyError::NotRunning { .. }), "{error}");
    assert!(world.strategies.sends(TENANT, "spring").unwrap().is_empty());
    assert!(destination.received.actions().is_empty());

    // Unknown names and ids, whatever their shape, are unknown.
    for name in ["nobody", "", "Spring!", &"x".repeat(2_000)] {
        let error = send(&world, &destination, name).unwrap_err();
        assert!(matches!(error, StrategyError::Unknown { .. }), "{error}");
        assert!(matches!(
            world.strategies.sends(TENANT, name),
            Err(StrategyError::Unknown { .. })
        ));
    }
    for id in ["", "snd-", "snd-0000000000000-00000000", &"s".repeat(2_000)] {
        let error = world.strategies.send(TENANT, "spring", id).unwrap_err();
        assert!(
            matches!(error, StrategyError::UnknownSend { .. }),
            "{error}"
        );
    }
}

#[test]
fn a_send_a_stop_cut_off_is_marked_failed() {
    let (_dir, world, destination) = world_with_destination(&[PURPOSE]);
    world.people(3);
    world.launch("spring", world.spec(0.2));
    let (started, _) = world
        .strategies
        .start_send(
            &destination.deliverer,
            TENANT,
            "spring",
            spec(&destination, IdentityKind::MemberId),
            &marketer(),
        )
        .unwrap();

    assert_eq!(world.strategies.fail_interrupted_sends(TENANT).unwrap(), 1);
    assert_eq!(world.strategies.fail_interrupted_sends(TENANT).unwrap(), 0);

    let failed = world
        .strategies
        .send(TENANT, "spring", &started.id)
        .unwrap();
    assert_eq!(failed.status, SendStatus::Failed);
    assert!(failed.error.unwrap().contains("send again"));
    assert!(failed.finished_at_ms.is_some());
}
