//! Crash safety of ingestion: a child process ingests batch after batch and
//! acknowledges each on stdout once [`Vault::ingest_batch`] has returned; the
//! parent kills it with SIGKILL at a pseudo-random moment, reopens the vault
//! and checks that every acknowledged event, identity link and consent is
//! there and readable, then starts the next trial on the same directories.
//!
//! The child is this test binary run again with only the ignored test
//! `crash_child` selected; environment variables tell it where the vault is
//! and which trial it is. Batches are a pure function of (trial, batch
//! number), so the parent knows what every acknowledged batch held.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tessera_privacy::MasterKey;
use tessera_vault::{Channel, Incoming, Vault};

/// Kill-and-reopen trials.
const TRIALS: u64 = 24;
/// Records per batch.
const RECORDS: u64 = 20;
/// Records of each batch that are people never seen before.
const NEW_PER_BATCH: u64 = 3;
/// Records of each batch (after the new people) that join two known people.
const MERGES_PER_BATCH: u64 = 2;
/// The kill comes this long after the child's first acknowledgement, plus
/// up to `KILL_SPREAD_MS`.
const KILL_AFTER_MS: u64 = 50;
const KILL_SPREAD_MS: u64 = 550;
/// Seeds the batches' contents and the kill delays.
const SEED: u64 = 0x7e55_e7a0_c4a5_0001;
/// How long the parent waits for a child's first acknowledgement.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// A child still running after this gives up (its parent must be gone).
const CHILD_LIFETIME: Duration = Duration::from_secs(120);
/// The purpose that new people of record 1 of each batch consent to.
const PURPOSE: &str = "email_marketing";
/// The event property that carries the event's source id, so that the
/// parent can find each event in a subject's access view.
const SOURCE_PROPERTY: &str = "source";

const ENV_CHILD: &str = "TESSERA_CRASH_CHILD";
const ENV_DATA_DIR: &str = "TESSERA_CRASH_DATA_DIR";
const ENV_KEY_DIR: &str = "TESSERA_CRASH_KEY_DIR";
const ENV_MASTER_KEY: &str = "TESSERA_CRASH_MASTER_KEY";
const ENV_TRIAL: &str = "TESSERA_CRASH_TRIAL";

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A pseudo-random number determined by `parts`.
fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(SEED, |acc, &part| splitmix64(acc ^ part))
}

/// How long after its first acknowledgement trial `trial`'s child is killed.
fn kill_delay(trial: u64) -> Duration {
    Duration::from_millis(KILL_AFTER_MS + mix(&[trial, u64::MAX]) % (KILL_SPREAD_MS + 1))
}

/// The email of the person first seen in record `index` of batch `batch` of
/// trial `trial` (`index < NEW_PER_BATCH`).
fn person(trial: u64, batch: u64, index: u64) -> String {
    format!("crash-{trial}-{batch}-{index}@tessera-crash.example")
}

/// A person who exists once the first `NEW_PER_BATCH` records of batch
/// `batch` of trial `trial` are stored: one of this trial's, or, if
/// `other_trials`, sometimes one of the first batch of the trial before,
/// which was acknowledged (the parent kills a child only after an ack).
fn known_person(trial: u64, batch: u64, salt: u64, other_trials: bool) -> String {
    let r = mix(&[trial, batch, salt]);
    let index = r % NEW_PER_BATCH;
    if other_trials && trial > 0 && (r >> 20).is_multiple_of(4) {
        person(trial - 1, 0, index)
    } else {
        person(trial, (r >> 40) % (batch + 1), index)
    }
}

/// What the child ingests as batch `batch` of trial `trial`: new people
/// (new subjects, so new key-store slots), merges of known people, known
/// people coming back, some with a new phone, each record with one to three
/// events whose source ids name (trial, batch, record, event).
fn batch(trial: u64, batch: u64) -> Vec<Incoming> {
    (0..RECORDS)
        .map(|record| {
            let r = mix(&[trial, batch, record, 1]);
            let mut item = Incoming::default();
            if record < NEW_PER_BATCH {
                item.identities.push(email(&person(trial, batch, record)));
                if record == 0 {
                    item.identities
                        .push(member(&format!("crash-member-{trial}-{batch}")));
                }
                if record == 1 {
                    item.consents.push(consent(PURPOSE));
                }
            } else if record < NEW_PER_BATCH + MERGES_PER_BATCH {
                // Merges stay within a trial, which keeps merge chains short.
                for salt in [2 * record, 2 * record + 1] {
                    item.identities
                        .push(email(&known_person(trial, batch, salt, false)));
                }
            } else {
                item.identities
                    .push(email(&known_person(trial, batch, record, true)));
                if r.is_multiple_of(5) {
                    let number = format!("139{:02}{:04}{record:02}", trial % 100, batch % 10_000);
                    item.identities.push(phone(&number));
                }
            }
            for index in 0..1 + (r >> 8) % 3 {
                let source = format!("crash-{trial}-{batch}-{record}-{index}");
                let e = mix(&[trial, batch, record, index, 2]);
                let (kind, channel) = if e.is_multiple_of(2) {
                    ("purchase", Channel::Offline)
                } else {
                    ("page_view", Channel::Online)
                };
                let at = NOW - i64::try_from((e >> 8) % 30).expect("small") * DAY_MS;
                let amount = ((e >> 16) % 10_000) as f64 / 100.0;
                let mut new = event(&source, kind, at, channel, amount);
                new.properties
                    .insert(SOURCE_PROPERTY.to_owned(), json!(source));
                item.events.push(new);
            }
            item
        })
        .collect()
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{ENV_CHILD} is set, so the parent must also set {name}"))
}

#[test]
#[ignore = "run by the crash test as its child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV_CHILD) else {
        panic!(
            "crash_child is the child process of every_acknowledged_event_survives_sigkill, \
             which sets {ENV_CHILD}; it is not a test on its own"
        );
    };
    let trial: u64 = env(ENV_TRIAL).parse().expect("trial number");
    let master = MasterKey::from_hex(env(ENV_MASTER_KEY).trim()).expect("master key");
    let vault = Vault::open(env(ENV_DATA_DIR), env(ENV_KEY_DIR), master)
        .unwrap_or_else(|e| panic!("trial {trial}: open the vault in {dir:?}: {e}"));
    vault
        .settings(TENANT)
        .expect("the parent creates the tenant before the first trial");
    let actor = ingest_actor();
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();
    for number in 0u64.. {
        assert!(
            started.elapsed() < CHILD_LIFETIME,
            "trial {trial}: still running after {CHILD_LIFETIME:?}; is the parent gone?"
        );
        vault
            .ingest_batch(TENANT, &batch(trial, number), &actor)
            .unwrap_or_else(|e| panic!("trial {trial}: ingest batch {number}: {e}"));
        // Durable now: acknowledge.
        writeln!(stdout, "ack {trial} {number}").expect("write an ack");
        stdout.flush().expect("flush an ack");
    }
}

/// Runs trial `trial`'s child, kills it with SIGKILL `delay` after its first
/// acknowledgement, and returns the batch numbers it acknowledged (every ack
/// it wrote before it died).
fn run_child(exe: &Path, fixture: &Fixture, trial: u64, delay: Duration) -> Vec<u64> {
    let mut child = Command::new(exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_CHILD, fixture.dir.path())
        .env(ENV_DATA_DIR, fixture.data_dir())
        .env(ENV_KEY_DIR, fixture.key_dir())
        .env(ENV_MASTER_KEY, fixture.master_hex.trim())
        .env(ENV_TRIAL, trial.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("the child's stdout");
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The first ack shares its line with libtest's "test crash_child ... ".
            if let Some(at) = line.find("ack ")
                && sender.send(line[at..].to_owned()).is_err()
            {
                break;
            }
        }
    });
    let first = match receiver.recv_timeout(FIRST_ACK_TIMEOUT) {
        Ok(line) => line,
        Err(RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trial {trial}: no acknowledgement within {FIRST_ACK_TIMEOUT:?}");
        }
        Err(RecvTimeoutError::Disconnected) => {
            let status = child.wait().expect("wait for the child");
            panic!("trial {trial}: the child exited ({status}) without acknowledging a batch");
        }
    };
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait().expect("poll the child") {
        panic!("trial {trial}: the child exited ({status}) before it was killed");
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait for the child");
    assert_eq!(
        status.signal(),
        Some(9),
        "trial {trial}: the child should have died of SIGKILL: {status}"
    );
    reader.join().expect("the stdout reader");
    std::iter::once(first)
        .chain(receiver.try_iter())
        .map(|line| {
            let parsed: Option<(u64, u64)> = line
                .strip_prefix("ack ")
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(t, b)| Some((t.parse().ok()?, b.parse().ok()?)));
            match parsed {
                Some((t, b)) if t == trial => b,
                _ => panic!("trial {trial}: unexpected line from the child: {line:?}"),
            }
        })
        .collect()
}

/// What checking one trial's acknowledged batches found.
#[derive(Debug, Default)]
struct Checked {
    events: u64,
    /// Merges that re-ingesting acknowledged batches did (a merge the crash
    /// cut short, finished by resolution).
    merges: u64,
    /// Subjects whose access views were checked.
    viewed: usize,
}

/// Re-ingests the first `acked` batches of trial `trial` (without their
/// consents): every event must come back as a duplicate (it is stored) and
/// no subject may be created (every identity link is stored). Each subject
/// the records resolve to is then read with the access right: every
/// acknowledged event of its records must be in the person's view, and the
/// consent where one was given.
fn check_trial(vault: &Vault, trial: u64, acked: u64) -> Checked {
    let actor = ingest_actor();
    let mut checked = Checked::default();
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut consented = BTreeSet::new();
    for number in 0..acked {
        let mut items = batch(trial, number);
        let gave_consent: Vec<bool> = items.iter().map(|i| !i.consents.is_empty()).collect();
        for item in &mut items {
            item.consents.clear();
        }
        let events: u64 = items.iter().map(|i| i.events.len() as u64).sum();
        let (total, outcomes) = vault
            .ingest_batch(TENANT, &items, &actor)
            .unwrap_or_else(|e| {
                panic!("trial {trial}: re-ingest acknowledged batch {number}: {e}")
            });
        assert_eq!(
            (total.events_inserted, total.duplicates),
            (0, events),
            "trial {trial}: acknowledged batch {number} lost events (re-ingesting it stored \
             them again): {total:?}"
        );
        assert_eq!(
            total.subjects_created, 0,
            "trial {trial}: acknowledged batch {number} lost identity links (re-ingesting it \
             created subjects): {total:?}"
        );
        checked.events += events;
        checked.merges += total.merges;
        for ((item, outcome), consent) in items.iter().zip(&outcomes).zip(gave_consent) {
            let subject = outcome.subject.clone().unwrap_or_else(|| {
                panic!("trial {trial}: a record of batch {number} was refused: {outcome:?}")
            });
            if consent {
                consented.insert(subject.clone());
            }
            expected.entry(subject).or_default().extend(
                item.events
                    .iter()
                    .map(|e| e.source_id.clone().expect("source id")),
            );
        }
    }
    for (subject, sources) in &expected {
        let view = vault
            .access(TENANT, subject, &operator())
            .unwrap_or_else(|e| panic!("trial {trial}: access subject {subject}: {e}"));
        let seen: BTreeSet<&str> = view
            .events
            .iter()
            .filter_map(|e| e.properties.get(SOURCE_PROPERTY)?.as_str())
            .collect();
        let missing: Vec<&String> = sources
            .iter()
            .filter(|s| !seen.contains(s.as_str()))
            .collect();
        if !missing.is_empty() {
            panic!(
                "trial {trial}: the person of subject {subject} (root {}) is missing {} \
                 acknowledged events from its access view, although re-ingesting them found \
                 them stored: {missing:?}. They are stored under (subject, that subject's \
                 root): {:?}. Batches 0 to {} were acknowledged; batch {acked} was in flight \
                 when the child was killed.",
                view.subject,
                missing.len(),
                holders(vault, &missing),
                acked - 1,
            );
        }
        if consented.contains(subject) {
            assert!(
                view.consents
                    .iter()
                    .any(|c| c.purpose == PURPOSE && c.granted),
                "trial {trial}: subject {subject} lost an acknowledged consent: {:?}",
                view.consents
            );
        }
    }
    checked.viewed = expected.len();
    checked
}

/// The subjects that hold events with the `sources` (by the event property),
/// with the root each resolves to: for failure messages (it reads every
/// subject with the access right).
fn holders(vault: &Vault, sources: &[&String]) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = vault
            .store()
            .subjects(TENANT, after.as_deref(), 256)
            .expect("list subjects");
        let Some(last) = page.last() else { break };
        for record in &page {
            let Ok(view) = vault.access(TENANT, &record.id, &operator()) else {
                continue;
            };
            for event in &view.events {
                let source = event
                    .properties
                    .get(SOURCE_PROPERTY)
                    .and_then(|v| v.as_str());
                if source.is_some_and(|s| sources.iter().any(|m| m.as_str() == s)) {
                    found.insert((event.subject.clone(), view.subject.clone()));
                }
            }
        }
        after = Some(last.id.clone());
    }
    found
}

/// Loads every subject of the tenant not in `checked` with its key (a subject
/// whose key-store slot was lost fails here) and adds it to `checked`.
fn subjects_are_readable(vault: &Vault, trial: u64, checked: &mut BTreeSet<String>) {
    let mut after: Option<String> = None;
    loop {
        let page = vault
            .store()
            .subjects(TENANT, after.as_deref(), 256)
            .expect("list subjects");
        let Some(last) = page.last() else { break };
        for record in &page {
            if checked.contains(&record.id) {
                continue;
            }
            vault
                .has_consent(TENANT, &record.id, PURPOSE)
                .unwrap_or_else(|e| {
                    panic!(
                        "after trial {trial}: subject {} is unreadable: {e}",
                        record.id
                    )
                });
            checked.insert(record.id.clone());
        }
        after = Some(last.id.clone());
    }
}

/// Re-ingests every acknowledged batch of trial `trial` at once: every event
/// must still be stored, and every identity link. Returns how many events.
fn still_stored(vault: &Vault, trial: u64, acked: u64) -> u64 {
    let items: Vec<Incoming> = (0..acked)
        .flat_map(|number| batch(trial, number))
        .map(|item| Incoming {
            consents: Vec::new(),
            ..item
        })
        .collect();
    let events: u64 = items.iter().map(|i| i.events.len() as u64).sum();
    let (total, _) = vault
        .ingest_batch(TENANT, &items, &ingest_actor())
        .unwrap_or_else(|e| panic!("re-ingest trial {trial}'s acknowledged batches: {e}"));
    assert_eq!(
        (
            total.events_inserted,
            total.duplicates,
            total.subjects_created
        ),
        (0, events, 0),
        "trial {trial}'s acknowledged batches lost events or identity links after later \
         crashes: {total:?}"
    );
    events
}

fn audit_is_intact(vault: &Vault, trial: u64) -> u64 {
    let report = vault.verify_audit(TENANT).expect("verify the audit trail");
    assert!(
        report.intact(),
        "after trial {trial}: the audit trail is broken: {:?}",
        report.problems
    );
    report.entries
}

#[test]
fn every_acknowledged_event_survives_sigkill() {
    let started = Instant::now();
    let fixture = Fixture::new();
    drop(fixture.create());
    let exe = std::env::current_exe().expect("the test binary");
    let mut acked = Vec::new();
    let mut readable = BTreeSet::new();
    for trial in 0..TRIALS {
        let delay = kill_delay(trial);
        let acks = run_child(&exe, &fixture, trial, delay);
        assert!(
            acks.iter().copied().eq(0..acks.len() as u64),
            "trial {trial}: acknowledgements out of order: {acks:?}"
        );
        let count = acks.len() as u64;
        // The child is dead, so its locks are free.
        let vault = fixture.open();
        let audit = audit_is_intact(&vault, trial);
        let checked = check_trial(&vault, trial, count);
        subjects_are_readable(&vault, trial, &mut readable);
        drop(vault);
        eprintln!(
            "crash trial {trial:2}: SIGKILL {:3} ms after the first ack, {count:2} batches \
             acknowledged ({} events), all present; {} subjects viewed, {} readable, {} merges \
             on re-ingest, audit intact ({audit} entries); {:.1} s",
            delay.as_millis(),
            checked.events,
            checked.viewed,
            readable.len(),
            checked.merges,
            started.elapsed().as_secs_f64(),
        );
        acked.push(count);
    }
    // Nothing acknowledged was lost to a later crash, and every subject
    // still opens.
    let vault = fixture.open();
    let mut events = 0;
    for (trial, &count) in (0..).zip(&acked) {
        events += still_stored(&vault, trial, count);
    }
    readable.clear();
    subjects_are_readable(&vault, TRIALS, &mut readable);
    let audit = audit_is_intact(&vault, TRIALS);
    eprintln!(
        "crash test: {TRIALS} SIGKILLs, {} batches and {events} events acknowledged, all \
         present at the end; {} subjects readable, audit intact ({audit} entries); {:.1} s",
        acked.iter().sum::<u64>(),
        readable.len(),
        started.elapsed().as_secs_f64(),
    );
}

#[test]
fn the_checks_pass_without_a_crash() {
    // The same batches and checks in one process, nothing killed: a failure
    // here is resolution's, not a crash's.
    let fixture = Fixture::new();
    let vault = fixture.create();
    let actor = ingest_actor();
    for trial in 0..3 {
        for number in 0..8 {
            fixture.advance(1000);
            vault
                .ingest_batch(TENANT, &batch(trial, number), &actor)
                .expect("ingest");
        }
        check_trial(&vault, trial, 8);
    }
}
