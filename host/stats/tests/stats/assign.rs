use tessera_stats::assign::{Arm, arm, in_control, position};

const SALT: &[u8] = b"spring-sale-2025";
const IDS: usize = 100_000;

fn subject(i: usize) -> String {
    format!("subject-{i}")
}

#[test]
fn assignments_are_the_same_as_when_the_hash_was_pinned() {
    // Computed once, independently, from the documented construction
    // (SHA-256 of domain ‖ salt length ‖ salt ‖ subject, top 53 bits). If
    // this fails, every running campaign's holdout has been reshuffled.
    let pinned = [
        ("alice", 0.041_750_704_734_593_19),
        ("bob", 0.309_292_737_978_552_06),
        ("carol", 0.066_763_426_057_866),
        ("dave", 0.803_705_000_762_292_7),
        ("erin", 0.063_277_709_836_076_5),
        ("subject-42", 0.365_782_555_560_244_2),
    ];
    for (id, expected) in pinned {
        assert_eq!(position(SALT, id), expected, "{id}");
    }
    assert_eq!(position(b"", ""), 0.224_229_612_639_196_83);
    let held_out: Vec<&str> = pinned
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| in_control(SALT, id, 0.1))
        .collect();
    assert_eq!(held_out, ["alice", "carol", "erin"]);
    assert_eq!(arm(SALT, "alice", 0.05), Arm::Control);
    assert_eq!(arm(SALT, "carol", 0.05), Arm::Treatment);
}

#[test]
fn salt_and_subject_are_not_confused_at_their_boundary() {
    assert_eq!(position(b"ab", "c"), 0.112_558_738_299_955_11);
    assert_eq!(position(b"a", "bc"), 0.848_158_191_295_000_9);
}

#[test]
fn control_share_matches_the_configured_holdout() {
    for holdout in [0.05, 0.1, 0.5] {
        let control = (0..IDS)
            .filter(|&i| in_control(SALT, &subject(i), holdout))
            .count();
        let observed = super::share(control, IDS);
        let se = (holdout * (1.0 - holdout) / IDS as f64).sqrt();
        println!(
            "holdout {holdout}: control share {observed:.4} ({:.2} SE off)",
            (observed - holdout) / se
        );
        assert!(
            (observed - holdout).abs() <= 4.0 * se,
            "holdout {holdout}: observed {observed}"
        );
    }
}

#[test]
fn different_campaigns_hold_out_independent_subjects() {
    let holdout = 0.5;
    let both = (0..IDS)
        .filter(|&i| {
            let id = subject(i);
            in_control(b"campaign-a", &id, holdout) && in_control(b"campaign-b", &id, holdout)
        })
        .count();
    let expected = holdout * holdout;
    let se = (expected * (1.0 - expected) / IDS as f64).sqrt();
    let observed = super::share(both, IDS);
    assert!(
        (observed - expected).abs() <= 4.0 * se,
        "held out of both: {observed}, independent assignment gives {expected}"
    );
}

#[test]
fn growing_the_holdout_only_moves_subjects_into_control() {
    for i in 0..10_000 {
        let id = subject(i);
        if in_control(SALT, &id, 0.1) {
            assert!(
                in_control(SALT, &id, 0.2),
                "{id} left control when the holdout grew"
            );
        }
    }
}

#[test]
fn holdouts_outside_zero_to_one_are_total() {
    for i in 0..1_000 {
        let id = subject(i);
        assert!(!in_control(SALT, &id, 0.0));
        assert!(!in_control(SALT, &id, -1.0));
        assert!(!in_control(SALT, &id, f64::NAN));
        assert!(in_control(SALT, &id, 1.0));
        assert!(in_control(SALT, &id, 7.0));
    }
}
