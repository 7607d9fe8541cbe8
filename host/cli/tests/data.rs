//! The operator's data commands (`tenant`, `audit`, `subject`, `jobs`,
//! `keys rotate`), run as the real binary on a data directory seeded through
//! the vault.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tessera_privacy::MasterKey;
use tessera_vault::{
    Actor, Channel, ConsentChange, IdentityKind, Incoming, NewEvent, Receipt, TenantSettings, Vault,
};

const TENANT: &str = "acme";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The binary, with no deployment settings inherited from the environment.
fn tessera<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_MASTER_KEY_FILE")
        .env_remove("TESSERA_DATA_DIR")
        .env_remove("TESSERA_KEY_DIR")
        .output()
        .expect("tessera runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails with both output streams.
fn check(out: &Output, code: i32) -> String {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    stdout
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// A deployment in a temporary directory: data dir, key dir, master key file.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let deployment = Self { dir };
        MasterKey::generate()
            .expect("master key")
            .write_new(deployment.key_file())
            .expect("write master key");
        deployment
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn key_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn master(&self) -> MasterKey {
        MasterKey::from_file(self.key_file()).expect("master key")
    }

    /// Runs a data command with this deployment's locations.
    fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let (data, keys, key_file) = (self.data_dir(), self.key_dir(), self.key_file());
        all.extend([
            OsStr::new("--data-dir"),
            data.as_os_str(),
            OsStr::new("--key-dir"),
            keys.as_os_str(),
            OsStr::new("--key-file"),
            key_file.as_os_str(),
        ]);
        tessera(&all)
    }

    fn rotate(&self) -> Output {
        tessera(&[
            OsStr::new("keys"),
            OsStr::new("rotate"),
            OsStr::new("--key-file"),
            self.key_file().as_os_str(),
            OsStr::new("--data-dir"),
            self.data_dir().as_os_str(),
        ])
    }

    fn vault(&self) -> Vault {
        // The binary may have exited a moment ago; the store waits for its lock.
        Vault::open(self.data_dir(), self.key_dir(), self.master()).expect("open vault")
    }

    /// Creates the tenant and three people with identities, traits, five
    /// events and a consent each, and reads one of them; returns their ids.
    fn seed(&self) -> [String; 3] {
        let vault = self.vault();
        let operator = Actor::new("operator", "test");
        vault
            .create_tenant(TENANT, TenantSettings::default(), &operator)
            .expect("create tenant");
        let now = now_ms();
        let mut ids = Vec::new();
        for name in ["ana", "bo", "cy"] {
            let outcome = vault
                .ingest(
                    TENANT,
                    &Incoming {
                        identities: vec![
                            (IdentityKind::Email, format!("{name}@example.com")),
                            (IdentityKind::MemberId, format!("M-{name}")),
                        ],
                        traits: BTreeMap::from([
                            ("name".to_owned(), json!(name)),
                            ("city".to_owned(), json!("Shanghai")),
                        ]),
                        events: (0..5)
                            .map(|e| NewEvent {
                                source_id: Some(format!("{name}-{e}")),
                                event_type: "purchase".into(),
                                at_ms: now - e * DAY_MS,
                                channel: Channel::Online,
                                properties: BTreeMap::from([("amount".to_owned(), json!(20.0))]),
                            })
                            .collect(),
                        consents: vec![ConsentChange {
                            purpose: "email_marketing".into(),
                            granted: true,
                            method: "store_signup".into(),
                            given_at_ms: None,
                        }],
                    },
                    &Actor::new("ingest", "test"),
                )
                .expect("ingest");
            ids.push(outcome.subject.expect("a subject"));
        }
        // Audited: three reads, a rectification and a consent change.
        for id in &ids {
            vault.access(TENANT, id, &operator).expect("access");
        }
        vault
            .rectify(
                TENANT,
                &ids[1],
                &BTreeMap::from([("city".to_owned(), Some(json!("Hangzhou")))]),
                &operator,
            )
            .expect("rectify");
        vault
            .set_consent(
                TENANT,
                &ids[2],
                &ConsentChange {
                    purpose: "analytics".into(),
                    granted: true,
                    method: "portal".into(),
                    given_at_ms: None,
                },
                &operator,
            )
            .expect("consent");
        vault.flush().expect("flush");
        ids.try_into().expect("three ids")
    }
}

// ---- audit -------------------------------------------------------------

/// The sled key of a tenant's audit entry: `part(tenant) seq`.
fn audit_key(tenant: &str, seq: u64) -> Vec<u8> {
    let mut key = u16::try_from(tenant.len())
        .expect("short id")
        .to_be_bytes()
        .to_vec();
    key.extend_from_slice(tenant.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Opens the data directory's `audit` tree directly, as someone with disk
/// access would, and flushes and closes it afterwards.
fn with_audit_tree<R>(data_dir: &Path, change: impl FnOnce(&sled::Tree) -> R) -> R {
    let deadline = Instant::now() + Duration::from_secs(5);
    let db = loop {
        match sled::open(data_dir) {
            Ok(db) => break db,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("cannot open the data directory with sled: {error}"),
        }
    };
    let tree = db.open_tree("audit").expect("audit tree");
    let result = change(&tree);
    tree.flush().expect("flush tree");
    db.flush().expect("flush db");
    drop(tree);
    drop(db);
    result
}

#[test]
fn editing_or_removing_one_audit_entry_is_detected_by_tessera_audit_verify() {
    let deployment = Deployment::new();
    deployment.seed();
    let verify = ["audit", "verify", "--tenant", TENANT];

    let stdout = check(&deployment.run(&verify), 0);
    let entries = with_audit_tree(&deployment.data_dir(), |tree| {
        tree.scan_prefix(&audit_key(TENANT, 0)[..2 + TENANT.len()])
            .count() as u64
    });
    assert!(entries >= 5, "the seed made {entries} entries");
    let intact_line = format!(
        "audit trail of tenant {TENANT}: {entries} entries, intact (head {entries}, head tag "
    );
    assert!(stdout.contains(&intact_line), "{stdout}");
    let middle = entries / 2;
    let middle_key = audit_key(TENANT, middle);
    let last_key = audit_key(TENANT, entries);

    // (a) One byte of a middle entry's JSON body changed.
    let original = with_audit_tree(&deployment.data_dir(), |tree| {
        let original = tree.get(&middle_key).expect("read").expect("middle entry");
        let mut edited = original.to_vec();
        let marker = b"\"action\":\"";
        let at = edited
            .windows(marker.len())
            .position(|w| w == marker)
            .expect("the body holds the action")
            + marker.len();
        edited[at] = if edited[at] == b'a' { b'b' } else { b'a' };
        tree.insert(&middle_key, edited).expect("edit");
        original
    });
    let stdout = check(&deployment.run(&verify), 1);
    assert!(
        stdout.contains(&format!(
            "entry {middle}: the entry was edited (its tag does not match its contents)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("NOT intact, 1 problem:"), "{stdout}");
    let json = check(&deployment.run(&[&verify[..], &["--json"]].concat()), 1);
    let report: Value = serde_json::from_str(&json).expect("the report is JSON");
    assert_eq!(report["intact"], json!(false), "{json}");
    assert_eq!(report["entries"], json!(entries), "{json}");
    assert_eq!(report["problems"][0]["seq"], json!(middle), "{json}");
    with_audit_tree(&deployment.data_dir(), |tree| {
        tree.insert(&middle_key, original.clone()).expect("restore");
    });
    check(&deployment.run(&verify), 0);

    // (b) A middle entry removed.
    with_audit_tree(&deployment.data_dir(), |tree| {
        tree.remove(&middle_key).expect("remove");
    });
    let stdout = check(&deployment.run(&verify), 1);
    assert!(
        stdout.contains(&format!("entry {middle}: entry {middle} was removed")),
        "{stdout}"
    );
    with_audit_tree(&deployment.data_dir(), |tree| {
        tree.insert(&middle_key, original).expect("restore");
    });
    check(&deployment.run(&verify), 0);

    // (c) The newest entry removed.
    with_audit_tree(&deployment.data_dir(), |tree| {
        tree.remove(&last_key).expect("remove").expect("last entry");
    });
    let stdout = check(&deployment.run(&verify), 1);
    assert!(
        stdout.contains(&format!(
            "entry {entries}: entries {entries} to {entries} were removed from the end of the trail"
        )),
        "{stdout}"
    );

    // With the newest entry gone, audited writes are refused until an
    // operator restarts the chain; verify keeps reporting both.
    let refused = deployment.run(&[
        "audit",
        "restart",
        "--tenant",
        TENANT,
        "--operator",
        "ops@acme",
    ]);
    let stdout = check(&refused, 0);
    assert!(
        stdout.contains(&format!("restarted at entry {}", entries + 1)),
        "{stdout}"
    );
    let again = deployment.run(&[
        "audit",
        "restart",
        "--tenant",
        TENANT,
        "--operator",
        "ops@acme",
    ]);
    assert_ne!(
        again.status.code(),
        Some(0),
        "nothing to restart once the chain is whole"
    );
    let stdout = check(&deployment.run(&verify), 1);
    assert!(
        stdout.contains(&format!("entry {entries}: entry {entries} was removed")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "entry {}: the chain was restarted here",
            entries + 1
        )),
        "{stdout}"
    );
}

#[test]
fn audit_list_prints_the_entries_as_json_lines() {
    let deployment = Deployment::new();
    let [ana, ..] = deployment.seed();
    let stdout = check(&deployment.run(&["audit", "list", "--tenant", TENANT]), 0);
    let entries: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(entries.len() >= 5, "{stdout}");
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(entry["seq"], json!(index + 1), "{stdout}");
    }
    assert_eq!(entries[0]["action"], json!("tenant.create"), "{stdout}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == json!("subject.access") && e["subject"] == json!(ana)),
        "{stdout}"
    );
    assert!(!stdout.contains("ana@example.com"), "no personal data");

    let stdout = check(
        &deployment.run(&[
            "audit", "list", "--tenant", TENANT, "--from", "2", "--limit", "2",
        ]),
        0,
    );
    let seqs: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON")["seq"].clone())
        .collect();
    assert_eq!(seqs, vec![json!(2), json!(3)]);
}

#[test]
fn data_commands_name_a_missing_data_dir_and_a_tenant_that_does_not_exist() {
    let deployment = Deployment::new();
    let out = deployment.run(&["audit", "verify", "--tenant", TENANT]);
    check(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the data directory {} does not exist",
            deployment.data_dir().display()
        )),
        "{stderr}"
    );
    assert!(
        !deployment.data_dir().exists(),
        "a read command creates nothing"
    );

    deployment.seed();
    let out = deployment.run(&["audit", "verify", "--tenant", "globex"]);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("tenant \"globex\" does not exist"),
        "{}",
        text(&out.stderr)
    );

    // A key directory inside the data directory is refused.
    let inside = deployment.data_dir().join("keys");
    let out = tessera(&[
        OsStr::new("audit"),
        OsStr::new("verify"),
        OsStr::new("--tenant"),
        OsStr::new(TENANT),
        OsStr::new("--data-dir"),
        deployment.data_dir().as_os_str(),
        OsStr::new("--key-dir"),
        inside.as_os_str(),
        OsStr::new("--key-file"),
        deployment.key_file().as_os_str(),
    ]);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("is inside the data directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_data_dir_held_by_another_process_is_refused_with_the_reason() {
    let deployment = Deployment::new();
    deployment.seed();
    let held = deployment.vault();
    let out = deployment.run(&["audit", "verify", "--tenant", TENANT]);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("no other Tessera process has it open"),
        "{}",
        text(&out.stderr)
    );
    drop(held);
}

// ---- keys rotate -------------------------------------------------------

fn key_id(path: &Path) -> String {
    MasterKey::from_file(path)
        .expect("key file")
        .id()
        .to_owned()
}

#[test]
fn keys_rotate_rewraps_the_tenant_keys_and_retires_the_old_key_file() {
    let deployment = Deployment::new();
    let [ana, ..] = deployment.seed();
    let old_id = key_id(&deployment.key_file());
    let old_bytes = std::fs::read(deployment.key_file()).unwrap();

    let stdout = check(&deployment.rotate(), 0);
    let new_id = key_id(&deployment.key_file());
    assert_ne!(new_id, old_id);
    assert!(stdout.contains("rewrapped 1 tenant key"), "{stdout}");
    assert!(
        stdout.contains(&format!("rotated the master key: {old_id} → {new_id}")),
        "{stdout}"
    );
    let retired = deployment.path(&format!("master.key.retired-{old_id}"));
    assert!(
        stdout.contains(&format!("was kept as {}", retired.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "still needed to read backups of the data directory made before this rotation"
        ),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(&retired).unwrap(),
        old_bytes,
        "the old key is kept"
    );
    assert!(!deployment.path("master.key.new").exists());
    let secret = std::fs::read_to_string(deployment.key_file()).unwrap();
    assert!(!stdout.contains(secret.trim()), "no key is printed");

    // The data reads with the new key file, and no longer with the old one.
    let view = check(
        &deployment.run(&["subject", "show", "--tenant", TENANT, &ana]),
        0,
    );
    let view: Value = serde_json::from_str(&view).expect("JSON");
    assert_eq!(view["events"].as_array().map(Vec::len), Some(5));
    check(&deployment.run(&["audit", "verify", "--tenant", TENANT]), 0);
    let out = tessera(&[
        OsStr::new("audit"),
        OsStr::new("verify"),
        OsStr::new("--tenant"),
        OsStr::new(TENANT),
        OsStr::new("--data-dir"),
        deployment.data_dir().as_os_str(),
        OsStr::new("--key-dir"),
        deployment.key_dir().as_os_str(),
        OsStr::new("--key-file"),
        retired.as_os_str(),
    ]);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains(&format!("was wrapped with master key {new_id}")),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn keys_rotate_finishes_a_rotation_interrupted_at_any_point() {
    let deployment = Deployment::new();
    let [ana, ..] = deployment.seed();
    let new_file = deployment.path("master.key.new");

    // Stopped after writing the new key file: its key is used.
    let old_id = key_id(&deployment.key_file());
    let pending = MasterKey::generate().unwrap();
    pending.write_new(&new_file).unwrap();
    let stdout = check(&deployment.rotate(), 0);
    assert!(
        stdout.contains(&format!(
            "resuming an interrupted rotation with the new key {}",
            pending.id()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("rewrapped 1 tenant key"), "{stdout}");
    assert_eq!(key_id(&deployment.key_file()), pending.id());
    assert!(!new_file.exists());
    assert_eq!(
        key_id(&deployment.path(&format!("master.key.retired-{old_id}"))),
        old_id
    );
    check(
        &deployment.run(&["subject", "show", "--tenant", TENANT, &ana]),
        0,
    );

    // Stopped after rewrapping every tenant key and keeping the old key file,
    // before the new key file replaced it.
    let old = deployment.master();
    let new = MasterKey::generate().unwrap();
    new.write_new(&new_file).unwrap();
    {
        let store = tessera_store::SledStore::open(deployment.data_dir()).unwrap();
        assert_eq!(
            tessera_vault::rotate_master_key(&store, &old, &new).unwrap(),
            1
        );
    }
    let retired = deployment.path(&format!("master.key.retired-{}", old.id()));
    std::fs::hard_link(deployment.key_file(), &retired).unwrap();
    let stdout = check(&deployment.rotate(), 0);
    assert!(
        stdout.contains("rewrapped 0 tenant keys (1 tenant now under the new key)"),
        "{stdout}"
    );
    assert_eq!(key_id(&deployment.key_file()), new.id());
    assert_eq!(key_id(&retired), old.id());
    assert!(!new_file.exists());
    check(
        &deployment.run(&["subject", "show", "--tenant", TENANT, &ana]),
        0,
    );
    check(&deployment.run(&["audit", "verify", "--tenant", TENANT]), 0);
}

// ---- subjects ----------------------------------------------------------

#[test]
fn subject_delete_prints_the_receipt_and_the_subject_is_gone() {
    let deployment = Deployment::new();
    let [ana, bo, _] = deployment.seed();
    let stdout = check(
        &deployment.run(&[
            "subject",
            "delete",
            "--tenant",
            TENANT,
            &ana,
            "--reason",
            "erasure request 42",
        ]),
        0,
    );
    let id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("deletion request "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the request id")
        .to_owned();
    let deadline = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("deadline:"))
        .expect("the deadline")
        .trim()
        .to_owned();
    let bytes = deadline.as_bytes();
    assert!(
        bytes.len() == 20 && bytes[4] == b'-' && bytes[10] == b'T' && bytes[19] == b'Z',
        "an RFC 3339 UTC time: {deadline}"
    );
    assert!(
        stdout.contains("removed:               1 subject records, 2 identities, 5 events, 1 consent records, 0 plugin state entries"),
        "{stdout}"
    );
    assert!(stdout.contains("identities suppressed: 2"), "{stdout}");
    let receipt_json = &stdout[stdout.find("receipt").expect("a receipt")..];
    let receipt_json = &receipt_json[receipt_json.find('{').expect("receipt JSON")..];
    let receipt: Receipt = serde_json::from_str(receipt_json).expect("the receipt parses");
    assert_eq!(receipt.request, id);
    assert_eq!(receipt.subjects, vec![ana.clone()]);
    assert_eq!(receipt.removed.events, 5);
    assert_eq!(receipt.removed.subjects, 1);
    assert_eq!(receipt.removed.identities, 2);
    assert_eq!(receipt.removed.consents, 1);
    assert!(receipt.met_deadline);
    assert_eq!(
        receipt.deadline_ms - receipt.requested_at_ms,
        30 * DAY_MS,
        "the default deadline is 30 days"
    );

    let out = deployment.run(&["subject", "show", "--tenant", TENANT, &ana]);
    check(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "subject {ana:?} of tenant \"acme\" was erased by deletion request {id}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("records purged"), "{stderr}");

    let out = deployment.run(&["subject", "delete", "--tenant", TENANT, &ana]);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("was erased"),
        "{}",
        text(&out.stderr)
    );

    // The receipt printed is the one the tenant's receipt key signed; the
    // others are untouched.
    let vault = deployment.vault();
    assert!(vault.verify_receipt(&receipt).expect("verify"));
    let view = vault
        .access(TENANT, &bo, &Actor::new("operator", "test"))
        .expect("bo is intact");
    assert_eq!(view.events.len(), 5);
}

#[test]
fn subject_export_writes_csv_tables_and_json() {
    let deployment = Deployment::new();
    let [ana, ..] = deployment.seed();
    let csv_dir = deployment.path("export-csv");
    let stdout = check(
        &deployment.run(&[
            "subject",
            "export",
            "--tenant",
            TENANT,
            &ana,
            "--format",
            "csv",
            "--out",
            csv_dir.to_str().unwrap(),
        ]),
        0,
    );
    assert!(stdout.contains("as 9 CSV files"), "{stdout}");
    let mut names: Vec<String> = std::fs::read_dir(&csv_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "access_log.csv",
            "consents.csv",
            "decisions.csv",
            "events.csv",
            "identities.csv",
            "linked_apps.csv",
            "plugin_state.csv",
            "segments.csv",
            "traits.csv"
        ]
    );
    let events = std::fs::read_to_string(csv_dir.join("events.csv")).unwrap();
    assert_eq!(events.lines().count(), 6, "a header and 5 events: {events}");
    assert!(
        events
            .lines()
            .next()
            .unwrap()
            .starts_with("at_ms,type,channel"),
        "{events}"
    );
    let traits = std::fs::read_to_string(csv_dir.join("traits.csv")).unwrap();
    assert!(traits.contains("city,Shanghai,standard"), "{traits}");
    assert!(traits.contains("name,ana,pii"), "{traits}");
    let identities = std::fs::read_to_string(csv_dir.join("identities.csv")).unwrap();
    assert!(identities.contains("ana@example.com"), "{identities}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(csv_dir.join("traits.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "personal data is private to its owner");
    }

    let json_file = deployment.path("ana.json");
    let json_args = [
        "subject",
        "export",
        "--tenant",
        TENANT,
        &ana,
        "--format",
        "json",
        "--out",
        json_file.to_str().unwrap(),
    ];
    check(&deployment.run(&json_args), 0);
    let view: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).expect("JSON");
    assert_eq!(view["subject"], json!(ana));
    assert_eq!(view["events"].as_array().map(Vec::len), Some(5));

    // Never overwrites.
    let out = deployment.run(&json_args);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("already exists; refusing to overwrite it"),
        "{}",
        text(&out.stderr)
    );

    // Both exports are in the trail.
    let list = check(&deployment.run(&["audit", "list", "--tenant", TENANT]), 0);
    assert_eq!(list.matches("\"subject.export\"").count(), 2, "{list}");
}

// ---- tenants and jobs --------------------------------------------------

#[test]
fn tenant_create_takes_settings_and_jobs_run_sweeps_every_tenant() {
    let deployment = Deployment::new();
    let settings = deployment.path("settings.json");
    std::fs::write(
        &settings,
        r#"{ "deletion_deadline_days": 7, "purposes": ["analytics"] }"#,
    )
    .unwrap();
    let create = |tenant: &str, settings: &Path| {
        deployment.run(&[
            "tenant",
            "create",
            tenant,
            "--settings",
            settings.to_str().unwrap(),
        ])
    };
    let stdout = check(&create(TENANT, &settings), 0);
    assert!(
        stdout.contains(&format!(
            "created tenant {TENANT} in {} (tenant key wrapped under master key {})",
            deployment.data_dir().display(),
            deployment.master().id()
        )),
        "{stdout}"
    );
    let out = create(TENANT, &settings);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("tenant \"acme\" already exists"),
        "{}",
        text(&out.stderr)
    );
    let bad = deployment.path("bad.json");
    std::fs::write(&bad, r#"{ "deletion_deadline_days": 0 }"#).unwrap();
    let out = create("globex", &bad);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("deletion_deadline_days (0) must be 1 to 90"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&bad, r#"{ "deletion_deadline_days": "soon" }"#).unwrap();
    let out = create("globex", &bad);
    check(&out, 2);
    assert!(
        text(&out.stderr).contains("is not valid tenant settings JSON"),
        "{}",
        text(&out.stderr)
    );
    check(&deployment.run(&["tenant", "create", "globex"]), 0);

    let stdout = check(&deployment.run(&["jobs", "run"]), 0);
    assert!(
        stdout.contains("tenant acme: retention sweep scanned 0 subjects"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tenant globex: retention sweep scanned 0 subjects"),
        "{stdout}"
    );
    assert!(stdout.contains("purges completed: 0"), "{stdout}");

    let vault = deployment.vault();
    let acme = vault.settings(TENANT).unwrap();
    assert_eq!(acme.deletion_deadline_days, 7);
    assert_eq!(acme.purposes, vec!["analytics".to_owned()]);
    assert_eq!(vault.settings("globex").unwrap(), TenantSettings::default());
}
