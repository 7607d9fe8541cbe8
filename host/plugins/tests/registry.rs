//! The registry end to end over a real vault and runtime: every way a bundle
//! is refused leaves nothing installed; installs wait for approval; grants
//! are parts of requests; upgrades that ask for more wait with their diff;
//! rollback restores the earlier version and its behaviour; removal deletes
//! state; everything survives a restart.

use std::sync::Arc;

use tessera_bundle::{Bundle, Permissions, PiiClass, PublisherKey, SourceManifest};
use tessera_guests::test_programs::{VERSIONED, VERSIONED_V2};
use tessera_plugins::{Registry, RegistryError, Source};
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{Column, ColumnData, ProfileBatch, TextColumn};
use tessera_runtime::{InstallError, Runtime, RuntimeConfig, StateScope};
use tessera_store::Store;
use tessera_vault::{Actor, TenantSettings, Vault};

const TENANT: &str = "acme";

struct Fixture {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    runtime: Runtime,
    key: PublisherKey,
}

fn operator() -> Actor {
    Actor::new("operator", "tok-ops")
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(
            dir.path().join("data"),
            dir.path().join("keys"),
            MasterKey::generate().unwrap(),
        )
        .unwrap();
        vault
            .create_tenant(TENANT, TenantSettings::default(), &operator())
            .unwrap();
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        Fixture {
            _dir: dir,
            vault: Arc::new(vault),
            runtime,
            key: PublisherKey::generate().unwrap(),
        }
    }

    fn registry(&self, allow_unsigned: bool) -> Registry {
        Registry::new(self.runtime.clone(), self.vault.clone(), allow_unsigned)
    }

    /// A registry that trusts the fixture's publisher key.
    fn trusting(&self) -> Registry {
        let registry = self.registry(false);
        registry
            .trust(
                TENANT,
                &self.key.public().to_string(),
                "Acme Analytics",
                &operator(),
            )
            .unwrap();
        registry
    }

    fn component(&self, path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    fn documents(&self, kind: &str) -> usize {
        self.vault
            .store()
            .documents(TENANT, kind, None, 100)
            .unwrap()
            .len()
    }
}

fn permissions(traits: &[&str], pii: &[&str], state_quota: u64) -> serde_json::Value {
    serde_json::json!({
        "traits": traits,
        "pii": pii,
        "purposes": ["analytics"],
        "state_quota": state_quota,
    })
}

fn source(version: &str, permissions: serde_json::Value) -> SourceManifest {
    serde_json::from_value(serde_json::json!({
        "publisher": "Acme Analytics",
        "version": version,
        "plugins": [{
            "name": "versioned",
            "kind": "segment",
            "wit_version": "0.1.0",
            "description": "lifecycle fixture",
            "component": "versioned.wasm",
            "permissions": permissions,
        }]
    }))
    .unwrap()
}

/// A bundle of the `versioned` plugin, v1 (asks for `country`) or v2 (asks
/// for `country`, `email` and the email PII class).
fn bundle(f: &Fixture, v2: bool, version: &str, sign: bool) -> Vec<u8> {
    let (component, perms) = if v2 {
        (
            f.component(VERSIONED_V2),
            permissions(&["country", "email"], &["email"], 0),
        )
    } else {
        (f.component(VERSIONED), permissions(&["country"], &[], 0))
    };
    let mut bundle = Bundle::build(source(version, perms), vec![component]).unwrap();
    if sign {
        bundle.sign(&f.key);
    }
    bundle.to_bytes()
}

fn batch(rows: u32) -> ProfileBatch {
    let text = |n: usize| Column {
        data: ColumnData::Text(TextColumn {
            dictionary: vec!["DE".into()],
            codes: vec![0; n],
        }),
        present: Vec::new(),
    };
    ProfileBatch {
        rows,
        keys: (0..u64::from(rows)).collect(),
        fields: vec![text(rows as usize), text(rows as usize)],
        aggregates: Vec::new(),
        now: 0,
    }
}

/// How many of 3 rows the running `versioned` plugin puts in its segment
/// (v1: all, v2: none).
fn members(registry: &Registry) -> usize {
    let live = registry.callable(TENANT, "versioned").unwrap();
    let fields = live.plugin.info().manifest.fields.len();
    let mut b = batch(3);
    b.fields.truncate(fields);
    let out = live.plugin.evaluate(&[], &b).unwrap().value;
    out.member.iter().filter(|m| **m == 1).count()
}

fn refusal(result: Result<Vec<tessera_plugins::Entry>, RegistryError>) -> String {
    match result {
        Err(RegistryError::Bundle(error)) => error.reason().to_string(),
        Err(other) => panic!("expected a bundle refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the bundle was installed"),
    }
}

fn assert_nothing_installed(f: &Fixture, registry: &Registry) {
    assert!(registry.entries(TENANT).unwrap().is_empty());
    assert_eq!(f.documents("plugin"), 0);
    assert_eq!(f.documents("plugin_component"), 0);
}

#[test]
fn every_tampered_bundle_is_refused_with_its_reason_and_nothing_is_installed() {
    let f = Fixture::new();
    let registry = f.trusting();
    let good = bundle(&f, false, "1.0.0", true);
    let good_bundle = Bundle::read(&good).unwrap();

    // Unsigned.
    let unsigned = bundle(&f, false, "1.0.0", false);
    assert_eq!(
        refusal(registry.install(TENANT, &unsigned, false, &operator())),
        "unsigned"
    );
    // Unsigned, asking for the development flag the server was not started with.
    match registry.install(TENANT, &unsigned, true, &operator()) {
        Err(RegistryError::UnsignedNotAllowed) => {}
        other => panic!("expected unsigned-not-allowed, got {other:?}"),
    }

    // Tampered: one byte of the component flipped.
    let mut tampered = good.clone();
    let component = f.component(VERSIONED);
    let at = tampered
        .windows(64)
        .position(|w| w == &component[component.len() / 2..component.len() / 2 + 64])
        .unwrap();
    tampered[at] ^= 1;
    assert_eq!(
        refusal(registry.install(TENANT, &tampered, false, &operator())),
        "tampered"
    );

    // Wrong key: the signature is by the trusted key, the block names another.
    let other = PublisherKey::generate().unwrap();
    let mut block = good_bundle.signature().unwrap().clone();
    block.public_key = other.public().to_bytes();
    let wrong_key = Bundle::from_parts(
        good_bundle.manifest_bytes().to_vec(),
        good_bundle.components().to_vec(),
        Some(block),
    );
    assert_eq!(
        refusal(registry.install(TENANT, &wrong_key.to_bytes(), false, &operator())),
        "wrong-key"
    );

    // Unknown publisher: validly signed by a key the tenant does not trust.
    let mut foreign = Bundle::read(&bundle(&f, false, "1.0.0", false)).unwrap();
    foreign.sign(&other);
    assert_eq!(
        refusal(registry.install(TENANT, &foreign.to_bytes(), false, &operator())),
        "unknown-publisher"
    );

    // Truncated.
    assert_eq!(
        refusal(registry.install(TENANT, &good[..good.len() - 100], false, &operator())),
        "truncated"
    );

    // Component swapped: the component of another signed bundle (v2) in
    // place of the one this bundle's manifest lists.
    let theirs = Bundle::read(&bundle(&f, true, "2.0.0", true)).unwrap();
    let swapped = Bundle::from_parts(
        good_bundle.manifest_bytes().to_vec(),
        theirs.components().to_vec(),
        good_bundle.signature().cloned(),
    );
    assert_eq!(
        refusal(registry.install(TENANT, &swapped.to_bytes(), false, &operator())),
        "component-swapped"
    );

    assert_nothing_installed(&f, &registry);
    // The untouched bundle installs.
    registry.install(TENANT, &good, false, &operator()).unwrap();
    assert_eq!(registry.entries(TENANT).unwrap().len(), 1);
}

#[test]
fn unsigned_bundles_install_only_under_the_development_flag_and_say_so() {
    let f = Fixture::new();
    let registry = f.registry(true);
    let unsigned = bundle(&f, false, "1.0.0", false);
    // The flag is not implied: the install must ask for it too.
    assert_eq!(
        refusal(registry.install(TENANT, &unsigned, false, &operator())),
        "unsigned"
    );
    registry
        .install(TENANT, &unsigned, true, &operator())
        .unwrap();
    registry
        .approve(TENANT, "versioned", None, None, &operator())
        .unwrap();
    let live = registry.callable(TENANT, "versioned").unwrap();
    match live.source {
        Source::Bundle { key_id: None, .. } => {}
        other => panic!("expected an unsigned bundle source, got {other:?}"),
    }
    let audit = f.vault.audit_entries(TENANT, 1, 100).unwrap();
    let install = audit.iter().find(|e| e.action == "plugin.install").unwrap();
    assert!(
        install.detail.as_deref().unwrap().contains("UNSIGNED"),
        "{install:?}"
    );
}

#[test]
fn an_install_waits_for_approval_and_a_grant_is_part_of_the_request() {
    let f = Fixture::new();
    let registry = f.trusting();
    let entries = registry
        .install(TENANT, &bundle(&f, true, "2.0.0", true), false, &operator())
        .unwrap();
    let (pending, diff) = entries[0].pending().unwrap();
    assert_eq!(pending.version, "2.0.0");
    assert_eq!(diff.traits.added, ["country", "email"]);
    assert_eq!(diff.pii.added, ["email"]);
    assert!(entries[0].live.is_none());
    // Not approved: not callable.
    assert!(matches!(
        registry.callable(TENANT, "versioned"),
        Err(RegistryError::UnknownPlugin { .. })
    ));
    // Nor is a name no plugin can have (regression: an empty or over-long
    // name reached the store and came back as a store error, a 500).
    for name in [String::new(), "x".repeat(2000)] {
        assert!(
            matches!(
                registry.callable(TENANT, &name),
                Err(RegistryError::UnknownPlugin { .. })
            ),
            "{} bytes",
            name.len()
        );
    }

    // A grant with something not asked for is refused; the plugin stays pending.
    let too_much = Permissions {
        traits: vec!["country".into(), "city".into()],
        purposes: vec!["analytics".into()],
        ..Permissions::default()
    };
    match registry.approve(TENANT, "versioned", Some(too_much), None, &operator()) {
        Err(RegistryError::Grant(detail)) => assert!(detail.contains("`city`"), "{detail}"),
        other => panic!("expected a grant refusal, got {other:?}"),
    }
    assert!(
        registry
            .entry(TENANT, "versioned")
            .unwrap()
            .pending()
            .is_some()
    );

    // Part of it: country, not email.
    let part = Permissions {
        traits: vec!["country".into()],
        purposes: vec!["analytics".into()],
        ..Permissions::default()
    };
    let entry = registry
        .approve(TENANT, "versioned", Some(part.clone()), None, &operator())
        .unwrap();
    assert!(entry.pending().is_none());
    let live = registry.callable(TENANT, "versioned").unwrap();
    assert_eq!(live.granted, part);
    assert!(!live.granted.pii.contains(&PiiClass::Email));
    let audit = f.vault.audit_entries(TENANT, 1, 100).unwrap();
    let approve = audit.iter().find(|e| e.action == "plugin.approve").unwrap();
    assert_eq!(approve.fields, ["country"]);
    assert!(approve.detail.as_deref().unwrap().contains("part"));
}

#[test]
fn a_plugin_that_imports_state_is_refused_by_a_grant_without_a_quota() {
    let f = Fixture::new();
    let registry = f.trusting();
    let source: SourceManifest = serde_json::from_value(serde_json::json!({
        "publisher": "Acme Analytics",
        "version": "1.0.0",
        "plugins": [{
            "name": "epsilon-greedy",
            "kind": "strategy",
            "wit_version": "0.1.0",
            "component": "greedy.wasm",
            "permissions": { "purposes": ["personalization", "email_marketing"], "state_quota": 65536 },
        }]
    }))
    .unwrap();
    let mut b = Bundle::build(
        source,
        vec![tessera_guests::plugins::EPSILON_GREEDY.to_vec()],
    )
    .unwrap();
    b.sign(&f.key);
    registry
        .install(TENANT, &b.to_bytes(), false, &operator())
        .unwrap();
    let no_state = Permissions {
        purposes: vec!["personalization".into(), "email_marketing".into()],
        ..Permissions::default()
    };
    match registry.approve(TENANT, "epsilon-greedy", Some(no_state), None, &operator()) {
        Err(RegistryError::Install {
            error: InstallError::UngrantedImport { why, .. },
            ..
        }) => assert!(why.contains("state quota"), "{why}"),
        other => panic!("expected an ungranted import, got {other:?}"),
    }
    assert!(
        registry
            .entry(TENANT, "epsilon-greedy")
            .unwrap()
            .pending()
            .is_some()
    );
    assert!(registry.callable(TENANT, "epsilon-greedy").is_err());
    registry
        .approve(TENANT, "epsilon-greedy", None, None, &operator())
        .unwrap();
    assert!(registry.callable(TENANT, "epsilon-greedy").is_ok());
}

#[test]
fn a_bundle_that_reads_more_than_it_asks_for_is_refused() {
    let f = Fixture::new();
    let registry = f.trusting();
    // v2 reads `email` but this bundle asks only for `country`.
    let mut b = Bundle::build(
        source("2.0.0", permissions(&["country"], &[], 0)),
        vec![f.component(VERSIONED_V2)],
    )
    .unwrap();
    b.sign(&f.key);
    match registry.install(TENANT, &b.to_bytes(), false, &operator()) {
        Err(RegistryError::Inconsistent { detail, .. }) => {
            assert!(detail.contains("`email`"), "{detail}")
        }
        other => panic!("expected an inconsistency, got {other:?}"),
    }
    assert_nothing_installed(&f, &registry);
}

#[test]
fn upgrades_asking_for_more_wait_with_their_diff_and_rollback_restores_behaviour() {
    let f = Fixture::new();
    let registry = f.trusting();
    registry
        .install(
            TENANT,
            &bundle(&f, false, "1.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    registry
        .approve(TENANT, "versioned", None, None, &operator())
        .unwrap();
    assert_eq!(members(&registry), 3, "v1 puts everyone in");

    // The same component in a new bundle, asking for the same: live at once.
    let entry = registry
        .upgrade(
            TENANT,
            "versioned",
            &bundle(&f, false, "1.1.0", true),
            false,
            &operator(),
        )
        .unwrap();
    assert!(entry.pending().is_none());
    match &registry.callable(TENANT, "versioned").unwrap().source {
        Source::Bundle { bundle_version, .. } => assert_eq!(bundle_version, "1.1.0"),
        other => panic!("{other:?}"),
    }

    // v2 asks for email and the email PII class: pending, v1 keeps running.
    let entry = registry
        .upgrade(
            TENANT,
            "versioned",
            &bundle(&f, true, "2.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    let (pending, diff) = entry.pending().expect("pending upgrade");
    assert_eq!(pending.version, "2.0.0");
    assert_eq!(diff.traits.added, ["email"]);
    assert!(diff.traits.removed.is_empty());
    assert_eq!(diff.pii.added, ["email"]);
    assert!(diff.asks_for_more());
    assert_eq!(members(&registry), 3, "v1 still runs while v2 waits");

    registry
        .approve(TENANT, "versioned", None, None, &operator())
        .unwrap();
    assert_eq!(members(&registry), 0, "v2 puts nobody in");
    let live = registry.callable(TENANT, "versioned").unwrap();
    assert_eq!(live.plugin.info().manifest.version, "2.0.0");
    assert!(live.granted.pii.contains(&PiiClass::Email));

    registry.rollback(TENANT, "versioned", &operator()).unwrap();
    assert_eq!(members(&registry), 3, "rolled back to v1's behaviour");
    let live = registry.callable(TENANT, "versioned").unwrap();
    assert_eq!(live.plugin.info().manifest.version, "1.0.0");
    assert_eq!(live.granted.traits, ["country"], "and to v1's grant");
    assert!(live.granted.pii.is_empty());

    // A restart loads the version that runs now, with its grant.
    let restarted = f.trusting();
    assert_eq!(restarted.load_all().unwrap(), (1, 0));
    assert_eq!(members(&restarted), 3);
    let actions: Vec<String> = f
        .vault
        .audit_entries(TENANT, 1, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("plugin."))
        .collect();
    assert_eq!(
        actions,
        [
            "plugin.install",
            "plugin.approve",
            "plugin.upgrade",
            "plugin.upgrade",
            "plugin.approve",
            "plugin.rollback"
        ]
    );
}

#[test]
fn quarantine_refuses_calls_until_released_and_removal_deletes_state() {
    let f = Fixture::new();
    let registry = f.trusting();
    registry
        .install(
            TENANT,
            &bundle(&f, false, "1.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    registry
        .approve(TENANT, "versioned", None, None, &operator())
        .unwrap();
    registry
        .quarantine(TENANT, "versioned", "investigating", &operator())
        .unwrap();
    match registry.callable(TENANT, "versioned") {
        Err(RegistryError::Quarantined { reason, .. }) => assert_eq!(reason, "investigating"),
        other => panic!("expected quarantined, got {other:?}"),
    }
    // It stays quarantined across a restart.
    let restarted = f.trusting();
    restarted.load_all().unwrap();
    assert!(restarted.callable(TENANT, "versioned").is_err());
    registry.release(TENANT, "versioned", &operator()).unwrap();
    assert_eq!(members(&registry), 3);

    // State the plugin kept, in its installation's scope.
    let installation = registry.callable(TENANT, "versioned").unwrap().installation;
    let state: Arc<dyn Store> = f.vault.store().clone();
    let scope = StateScope {
        tenant: TENANT.into(),
        plugin: installation,
    };
    let writes: Vec<_> = (0..700)
        .map(|i| (format!("model/{i:04}"), Some(vec![1u8; 8])))
        .collect();
    state.apply(&scope, 0, &writes, u64::MAX).unwrap();
    // And the parts of it kept for others (a campaign's, within its
    // strategy's state); another installation's parts are not its.
    let campaign = scope.namespace("campaign/spring");
    let other = StateScope {
        tenant: TENANT.into(),
        plugin: format!("{}0", scope.plugin),
    }
    .namespace("campaign/spring");
    for part in [&campaign, &other] {
        state.apply(part, 0, &writes[..5], u64::MAX).unwrap();
    }
    assert_eq!(
        registry.remove(TENANT, "versioned", &operator()).unwrap(),
        705
    );
    for gone in [&scope, &campaign] {
        assert!(state.keys(gone, "", 10).unwrap().is_empty());
        assert_eq!(state.usage(gone).unwrap(), 0);
        assert!(matches!(
            state.apply(gone, 0, &writes[..1], u64::MAX),
            Err(tessera_runtime::StateError::Retired)
        ));
    }
    assert_eq!(state.keys(&other, "", 10).unwrap().len(), 5);
    assert_nothing_installed(&f, &registry);
    assert!(registry.callable(TENANT, "versioned").is_err());
    // Its audit trail is kept, and says it was removed.
    let audit = f.vault.audit_entries(TENANT, 1, 100).unwrap();
    assert!(audit.iter().any(|e| e.action == "plugin.approve"));
    assert!(audit.iter().any(|e| e.action == "plugin.remove"));
    // A removed plugin can be installed again, from scratch.
    registry
        .install(
            TENANT,
            &bundle(&f, false, "1.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
}

#[test]
fn distrusting_a_key_refuses_its_new_bundles() {
    let f = Fixture::new();
    let registry = f.trusting();
    let key_id = f.key.public().key_id();
    assert_eq!(registry.publishers(TENANT).unwrap()[0].key_id, key_id);
    registry.distrust(TENANT, &key_id, &operator()).unwrap();
    assert_eq!(
        refusal(registry.install(
            TENANT,
            &bundle(&f, false, "1.0.0", true),
            false,
            &operator()
        )),
        "unknown-publisher"
    );
    assert!(matches!(
        registry.distrust(TENANT, &key_id, &operator()),
        Err(RegistryError::UnknownKey { .. })
    ));
}

fn consent(granted: bool) -> tessera_vault::ConsentChange {
    tessera_vault::ConsentChange {
        purpose: "analytics".into(),
        granted,
        method: "portal".into(),
        given_at_ms: None,
    }
}

#[test]
fn calls_through_the_registry_see_only_consenting_subjects_and_stop_under_quarantine() {
    let f = Fixture::new();
    let registry = f.trusting();
    registry
        .install(
            TENANT,
            &bundle(&f, false, "1.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    registry
        .approve(TENANT, "versioned", None, None, &operator())
        .unwrap();
    let mut people = Vec::new();
    for (member, consents) in [("m-1", true), ("m-2", true), ("m-3", false)] {
        let item = tessera_vault::Incoming {
            identities: vec![(tessera_vault::IdentityKind::MemberId, member.into())],
            traits: [("country".to_owned(), serde_json::json!("DE"))].into(),
            consents: if consents {
                vec![consent(true)]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let outcome = f.vault.ingest(TENANT, &item, &operator()).unwrap();
        people.push(outcome.subject.unwrap());
    }
    let all = tessera_plugins::Subjects::Ids(&people);
    let members = registry
        .evaluate(TENANT, "versioned", &[], "analytics", all)
        .unwrap();
    let seen: Vec<&str> = members.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(seen, [people[0].as_str(), people[1].as_str()]);
    assert!(members.iter().all(|(_, member)| *member));

    // A revocation applies to the very next call.
    f.vault
        .set_consent(TENANT, &people[1], &consent(false), &operator())
        .unwrap();
    let members = registry
        .evaluate(TENANT, "versioned", &[], "analytics", all)
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].0, people[0]);

    // A purpose the plugin was not granted is refused before anything is read.
    let refused = registry.evaluate(TENANT, "versioned", &[], "personalization", all);
    assert!(
        matches!(refused, Err(RegistryError::View(_))),
        "{refused:?}"
    );

    // A walk over the people in progress stops at its next page.
    let mut walk = registry
        .evaluation(TENANT, "versioned", &[], "analytics")
        .unwrap();
    let page = walk.page(None, None, 10).unwrap();
    assert_eq!(page.memberships.len(), 1);
    registry
        .quarantine(TENANT, "versioned", "investigating", &operator())
        .unwrap();
    assert!(matches!(
        walk.page(None, None, 10),
        Err(RegistryError::Quarantined { .. })
    ));
    assert!(matches!(
        registry.evaluate(TENANT, "versioned", &[], "analytics", all),
        Err(RegistryError::Quarantined { .. })
    ));
}

/// The `http-fetch` test connector asking to call `api.partner.test`.
fn connector_bundle(f: &Fixture) -> Vec<u8> {
    let source: SourceManifest = serde_json::from_value(serde_json::json!({
        "publisher": "Acme Analytics",
        "version": "1.0.0",
        "plugins": [{
            "name": "http-fetch",
            "kind": "connector",
            "wit_version": "0.1.0",
            "component": "fetch.wasm",
            "permissions": { "outbound_hosts": ["api.partner.test", "other.partner.test"] },
        }]
    }))
    .unwrap();
    let component = f.component(tessera_guests::test_programs::HTTP_FETCH);
    let mut b = Bundle::build(source, vec![component]).unwrap();
    b.sign(&f.key);
    b.to_bytes()
}

/// What the connector's request to `url` came to: the error text.
fn fetch_error(registry: &Registry, url: &str) -> String {
    let live = registry.callable(TENANT, "http-fetch").unwrap();
    let params = live.plugin.validate(&[]).unwrap();
    match live.plugin.parse(&params, url.as_bytes()) {
        Err(error) => error.to_string(),
        Ok(out) => panic!("{url} was served: {:?}", out.value.records),
    }
}

#[test]
fn a_connector_reaches_only_the_hosts_its_approval_granted() {
    let mut f = Fixture::new();
    f.runtime = Runtime::new(RuntimeConfig {
        resolver: Arc::new(
            tessera_runtime::StaticResolver::new()
                .with("api.partner.test", ["127.0.0.1".parse().unwrap()])
                .with("other.partner.test", ["127.0.0.1".parse().unwrap()])
                .with("meta.partner.test", ["169.254.169.254".parse().unwrap()]),
        ),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let registry = f
        .registry(false)
        .with_outbound_allowance(vec!["127.0.0.1/32".parse().unwrap()]);
    registry
        .trust(
            TENANT,
            &f.key.public().to_string(),
            "Acme Analytics",
            &operator(),
        )
        .unwrap();
    registry
        .install(TENANT, &connector_bundle(&f), false, &operator())
        .unwrap();

    // Granted no host: the component imports `http`, so it cannot be linked.
    match registry.approve(
        TENANT,
        "http-fetch",
        Some(Permissions::default()),
        None,
        &operator(),
    ) {
        Err(RegistryError::Install {
            error: InstallError::UngrantedImport { why, .. },
            ..
        }) => assert!(why.contains("no outbound hosts"), "{why}"),
        other => panic!("expected an ungranted import, got {other:?}"),
    }

    // Granted one of the two hosts it asked for.
    let one = Permissions {
        outbound_hosts: vec!["api.partner.test".into()],
        ..Permissions::default()
    };
    registry
        .approve(TENANT, "http-fetch", Some(one), None, &operator())
        .unwrap();
    // The granted host passes the guard (nothing listens on 127.0.0.1:443,
    // so the connection itself fails); the other is refused before any
    // connection, as is any host not granted.
    let granted = fetch_error(&registry, "https://api.partner.test/orders");
    assert!(!granted.contains("outbound request refused"), "{granted}");
    assert!(granted.contains("api.partner.test"), "{granted}");
    for url in [
        "https://other.partner.test/orders",
        "https://meta.partner.test/latest/meta-data",
    ] {
        let error = fetch_error(&registry, url);
        assert!(error.contains("outbound request refused"), "{url}: {error}");
        assert!(error.contains("not granted"), "{url}: {error}");
    }
}

#[test]
fn upgrades_come_from_the_same_key_and_approval_takes_only_the_version_reviewed() {
    let f = Fixture::new();
    let registry = f.trusting();
    registry
        .install(
            TENANT,
            &bundle(&f, false, "1.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    registry
        .approve(TENANT, "versioned", None, None, &operator())
        .unwrap();

    // Another trusted publisher cannot take the plugin over, even asking
    // for no more: it would inherit its grant and its state.
    let other = PublisherKey::generate().unwrap();
    registry
        .trust(TENANT, &other.public().to_string(), "Other", &operator())
        .unwrap();
    let mut theirs = Bundle::read(&bundle(&f, false, "1.1.0", false)).unwrap();
    theirs.sign(&other);
    match registry.upgrade(TENANT, "versioned", &theirs.to_bytes(), false, &operator()) {
        Err(RegistryError::PublisherChanged {
            installed, offered, ..
        }) => {
            assert!(installed.contains(&f.key.public().key_id()), "{installed}");
            assert!(offered.contains(&other.public().key_id()), "{offered}");
        }
        other => panic!("expected a publisher change refusal, got {other:?}"),
    }
    match &registry.callable(TENANT, "versioned").unwrap().source {
        Source::Bundle { bundle_version, .. } => assert_eq!(bundle_version, "1.0.0"),
        other => panic!("{other:?}"),
    }

    // v2 waits; the operator reviews it (its digest), then v3 replaces it.
    let v2 = registry
        .upgrade(
            TENANT,
            "versioned",
            &bundle(&f, true, "2.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    let reviewed = v2.pending().unwrap().0.bundle_digest.clone();
    let v3 = registry
        .upgrade(
            TENANT,
            "versioned",
            &bundle(&f, true, "3.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    assert_ne!(v3.pending().unwrap().0.bundle_digest, reviewed);
    match registry.approve_reviewed(
        TENANT,
        "versioned",
        Some(&reviewed),
        None,
        None,
        &operator(),
    ) {
        Err(RegistryError::PendingChanged { pending, .. }) => assert_eq!(pending, "2.0.0"),
        other => panic!("expected a pending-changed refusal, got {other:?}"),
    }
    assert_eq!(members(&registry), 3, "v1 still runs");
    let current = v3.pending().unwrap().0.bundle_digest.clone();
    registry
        .approve_reviewed(TENANT, "versioned", Some(&current), None, None, &operator())
        .unwrap();
    assert_eq!(members(&registry), 0, "the reviewed version runs");
}

#[test]
fn a_rejected_upgrade_is_discarded_and_the_running_version_serves_on() {
    let f = Fixture::new();
    let registry = f.trusting();
    registry
        .install(
            TENANT,
            &bundle(&f, false, "1.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    // An install with no approved version cannot be rejected: nothing
    // would be left to run; it is removed instead.
    match registry.reject(TENANT, "versioned", None, "no", &operator()) {
        Err(RegistryError::NothingToKeep { name }) => assert_eq!(name, "versioned"),
        other => panic!("expected nothing-to-keep, got {other:?}"),
    }
    registry
        .approve(TENANT, "versioned", None, None, &operator())
        .unwrap();
    match registry.reject(TENANT, "versioned", None, "no", &operator()) {
        Err(RegistryError::NothingPending { .. }) => {}
        other => panic!("expected nothing-pending, got {other:?}"),
    }

    let v2 = registry
        .upgrade(
            TENANT,
            "versioned",
            &bundle(&f, true, "2.0.0", true),
            false,
            &operator(),
        )
        .unwrap();
    let reviewed = v2.pending().unwrap().0.bundle_digest.clone();
    match registry.reject(TENANT, "versioned", Some("00ff"), "no", &operator()) {
        Err(RegistryError::PendingChanged { pending, .. }) => assert_eq!(pending, "2.0.0"),
        other => panic!("expected a pending-changed refusal, got {other:?}"),
    }
    let entry = registry
        .reject(
            TENANT,
            "versioned",
            Some(&reviewed),
            "asks for email addresses it does not need",
            &operator(),
        )
        .unwrap();
    assert!(entry.pending().is_none());
    assert_eq!(members(&registry), 3, "v1 still runs, with its grant");
    let live = registry.callable(TENANT, "versioned").unwrap();
    assert_eq!(live.plugin.info().manifest.version, "1.0.0");
    assert!(live.granted.pii.is_empty());
    // Nothing is pending any more, and approving has nothing to take.
    match registry.approve(TENANT, "versioned", None, None, &operator()) {
        Err(RegistryError::NothingPending { .. }) => {}
        other => panic!("expected nothing-pending, got {other:?}"),
    }
    let audit = f.vault.audit_entries(TENANT, 1, 100).unwrap();
    let rejected = audit
        .iter()
        .find(|e| e.action == "plugin.reject")
        .expect("the rejection is audited");
    assert_eq!(rejected.plugin_version.as_deref(), Some("2.0.0"));
    assert!(
        rejected
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("does not need")),
        "{rejected:?}"
    );
    // A restart keeps the decision.
    let restarted = f.trusting();
    restarted.load_all().unwrap();
    assert!(
        restarted
            .entry(TENANT, "versioned")
            .unwrap()
            .pending()
            .is_none()
    );
    assert_eq!(members(&restarted), 3);
}
