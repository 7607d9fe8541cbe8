//! Round trips, and one refusal per way a bundle can be wrong.

use proptest::prelude::*;
use tessera_guests::plugins::{EPSILON_GREEDY, THRESHOLD};

use super::*;

fn source(plugins: &[(&str, Kind)]) -> SourceManifest {
    serde_json::from_value(serde_json::json!({
        "publisher": "Acme Analytics",
        "version": "1.2.0",
        "plugins": plugins.iter().map(|(name, kind)| serde_json::json!({
            "name": name,
            "kind": kind,
            "wit_version": "0.1.0",
            "description": "a first-party plugin",
            "component": format!("{name}.wasm"),
            "permissions": {
                "traits": ["total_spend"],
                "events": ["order_completed"],
                "pii": ["email"],
                "purposes": ["marketing"],
                "state_quota": 0
            },
            "limits": { "memory_bytes": 16777216 },
            "parameters": [{ "name": "threshold", "kind": "number", "required": true }]
        })).collect::<Vec<_>>()
    }))
    .unwrap()
}

fn unsigned() -> Bundle {
    Bundle::build(
        source(&[("threshold", Kind::Segment), ("greedy", Kind::Strategy)]),
        vec![THRESHOLD.to_vec(), EPSILON_GREEDY.to_vec()],
    )
    .unwrap()
}

fn signed(key: &PublisherKey) -> Vec<u8> {
    let mut bundle = unsigned();
    bundle.sign(key);
    bundle.to_bytes()
}

/// The threshold component with a custom section appended: still a valid
/// segment component of the same contract, but other bytes (another build).
fn rebuilt_threshold() -> Vec<u8> {
    let mut bytes = THRESHOLD.to_vec();
    let name = b"build-note";
    let data = b"another build";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + data.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(data);
    bytes
}

fn offset_of(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn a_signed_bundle_round_trips_and_verifies_under_its_trusted_key() {
    let key = PublisherKey::generate().unwrap();
    let bytes = signed(&key);
    let bundle = Bundle::read(&bytes).unwrap();
    assert_eq!(bundle.to_bytes(), bytes);
    let verified = bundle.verify(&[key.public()]).unwrap();
    assert_eq!(verified.publisher_key, Some(key.public()));
    assert!(!verified.is_unsigned());
    let manifest = verified.manifest;
    assert_eq!(manifest.publisher, "Acme Analytics");
    assert_eq!(manifest.plugins[0].kind, Kind::Segment);
    assert_eq!(manifest.plugins[1].kind, Kind::Strategy);
    assert_eq!(manifest.plugins[0].component.size, THRESHOLD.len() as u64);
    assert_eq!(
        manifest.plugins[0].component.sha256,
        hex::encode(Sha256::digest(THRESHOLD))
    );
    assert_eq!(manifest.plugins[0].permissions.pii, vec![PiiClass::Email]);
    assert_eq!(bundle.components()[1].bytes, EPSILON_GREEDY);
}

#[test]
fn keys_round_trip_through_their_text_forms() {
    let key = PublisherKey::generate().unwrap();
    let again = PublisherKey::parse(&key.to_secret_text()).unwrap();
    assert_eq!(again.public(), key.public());
    let public = key.public();
    assert_eq!(PublicKey::parse(&public.to_string()).unwrap(), public);
    assert_eq!(
        PublicKey::parse(&hex::encode(public.to_bytes())).unwrap(),
        public
    );
    assert_eq!(public.key_id().len(), 16);
    assert!(!format!("{key:?}").contains(&hex::encode(public.to_bytes())[..20]));
    // A secret key is never mistaken for a public one.
    let err = PublicKey::parse(&key.to_secret_text()).unwrap_err();
    assert_eq!(err.reason(), "bad-key");
}

#[test]
fn unsigned_is_refused_unless_development_allows_it() {
    let bytes = unsigned().to_bytes();
    let bundle = Bundle::read(&bytes).unwrap();
    let key = PublisherKey::generate().unwrap();
    let err = bundle.verify(&[key.public()]).unwrap_err();
    assert!(matches!(err, BundleError::Unsigned), "{err}");
    let verified = bundle.verify_allowing_unsigned(&[]).unwrap();
    assert!(verified.is_unsigned());
}

#[test]
fn the_development_flag_never_weakens_a_signed_bundle() {
    let key = PublisherKey::generate().unwrap();
    let bundle = Bundle::read(&signed(&key)).unwrap();
    let err = bundle.verify_allowing_unsigned(&[]).unwrap_err();
    assert!(matches!(err, BundleError::UnknownPublisher { .. }), "{err}");
}

#[test]
fn a_changed_manifest_is_tampered() {
    let key = PublisherKey::generate().unwrap();
    let mut bytes = signed(&key);
    let at = offset_of(&bytes, b"a first-party plugin");
    bytes[at] = b'A';
    let err = Bundle::read(&bytes)
        .unwrap()
        .verify(&[key.public()])
        .unwrap_err();
    assert!(matches!(err, BundleError::Tampered(_)), "{err}");
    assert!(err.to_string().contains("manifest"), "{err}");
}

#[test]
fn a_changed_component_byte_is_tampered() {
    let key = PublisherKey::generate().unwrap();
    let mut bytes = signed(&key);
    let at = offset_of(&bytes, EPSILON_GREEDY) + EPSILON_GREEDY.len() / 2;
    bytes[at] ^= 0x01;
    let err = Bundle::read(&bytes)
        .unwrap()
        .verify(&[key.public()])
        .unwrap_err();
    assert!(matches!(err, BundleError::Tampered(_)), "{err}");
    assert!(err.to_string().contains("`greedy`"), "{err}");
}

#[test]
fn a_component_from_another_bundle_is_swapped() {
    let key = PublisherKey::generate().unwrap();
    let mut ours = Bundle::read(&signed(&key)).unwrap();
    // Another signed bundle of the same publisher, with another build of a
    // plugin of the same name.
    let mut theirs = Bundle::build(
        source(&[("threshold", Kind::Segment)]),
        vec![rebuilt_threshold()],
    )
    .unwrap();
    theirs.sign(&key);
    assert!(theirs.verify(&[key.public()]).is_ok());
    ours.components[0] = theirs.components[0].clone();
    let spliced = Bundle::read(&ours.to_bytes()).unwrap();
    let err = spliced.verify(&[key.public()]).unwrap_err();
    match &err {
        BundleError::ComponentSwapped {
            plugin,
            expected,
            found,
        } => {
            assert_eq!(plugin, "threshold");
            assert_eq!(expected, &hex::encode(Sha256::digest(THRESHOLD)));
            assert_eq!(found, &hex::encode(Sha256::digest(rebuilt_threshold())));
        }
        other => panic!("expected component-swapped, got {other}"),
    }
    // Unsigned (development) bundles are held to their manifest just the same.
    ours.signature = None;
    let err = Bundle::read(&ours.to_bytes())
        .unwrap()
        .verify_allowing_unsigned(&[])
        .unwrap_err();
    assert!(matches!(err, BundleError::ComponentSwapped { .. }), "{err}");
}

#[test]
fn a_signature_under_another_key_than_named_is_wrong_key() {
    let signer = PublisherKey::generate().unwrap();
    let named = PublisherKey::generate().unwrap();
    let mut bundle = Bundle::read(&signed(&signer)).unwrap();
    bundle.signature.as_mut().unwrap().public_key = named.public().to_bytes();
    let err = Bundle::read(&bundle.to_bytes())
        .unwrap()
        .verify(&[signer.public(), named.public()])
        .unwrap_err();
    match err {
        BundleError::WrongKey { key_id } => assert_eq!(key_id, named.public().key_id()),
        other => panic!("expected wrong-key, got {other}"),
    }
}

#[test]
fn a_valid_signature_by_an_untrusted_key_is_unknown_publisher() {
    let signer = PublisherKey::generate().unwrap();
    let trusted = PublisherKey::generate().unwrap();
    let bundle = Bundle::read(&signed(&signer)).unwrap();
    for keys in [vec![], vec![trusted.public()]] {
        match bundle.verify(&keys).unwrap_err() {
            BundleError::UnknownPublisher { key_id } => {
                assert_eq!(key_id, signer.public().key_id())
            }
            other => panic!("expected unknown-publisher, got {other}"),
        }
    }
}

#[test]
fn every_truncation_is_refused_as_truncated() {
    let key = PublisherKey::generate().unwrap();
    let bytes = signed(&key);
    let len = bytes.len();
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((1..97).map(|i| len * i / 97));
    cuts.extend(len - 200..len);
    for cut in cuts {
        match Bundle::read(&bytes[..cut]) {
            Err(BundleError::Truncated(_)) => {}
            other => panic!("cut at {cut} of {len}: {other:?}"),
        }
    }
}

/// A header declaring `total` bytes followed by `body`, padded to `total`.
fn framed(body: &[u8], total: u64) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(total as usize, 0);
    out
}

#[test]
fn oversized_lengths_are_refused_before_anything_is_allocated() {
    // A header declaring more than the cap: refused from 18 bytes.
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Bundle::read(&header),
        Err(BundleError::TooLarge(_))
    ));
    // A manifest section declaring 4 GiB in a small file.
    let mut body = vec![TAG_MANIFEST];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Bundle::read(&framed(&body, 64)),
        Err(BundleError::TooLarge(_))
    ));
    // A manifest section longer than what is left.
    let mut body = vec![TAG_MANIFEST];
    body.extend_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        Bundle::read(&framed(&body, 64)),
        Err(BundleError::Malformed(_))
    ));
    // A component section declaring 4 GiB.
    let mut body = vec![TAG_MANIFEST, 2, 0, 0, 0, b'{', b'}', TAG_COMPONENT];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Bundle::read(&framed(&body, 64)),
        Err(BundleError::TooLarge(_))
    ));
    // More components than a bundle may hold.
    let mut body = vec![TAG_MANIFEST, 2, 0, 0, 0, b'{', b'}'];
    for _ in 0..=MAX_PLUGINS {
        body.extend_from_slice(&[TAG_COMPONENT, 34, 0, 0, 0, 1, b'a']);
        body.extend_from_slice(&[0; 32]);
    }
    let total = (HEADER_LEN + body.len()) as u64;
    assert!(matches!(
        Bundle::read(&framed(&body, total)),
        Err(BundleError::TooLarge(_))
    ));
}

#[test]
fn malformed_files_are_refused() {
    let key = PublisherKey::generate().unwrap();
    let bytes = signed(&key);
    for (what, file) in [
        ("not a bundle", b"\0asm\x01\0\0\0 and more bytes".to_vec()),
        ("trailing bytes", [bytes.clone(), vec![0]].concat()),
        ("unknown section", framed(&[9, 0, 0, 0, 0], 23)),
        ("no manifest", framed(&[], 18)),
        ("bad signature length", {
            let mut body = vec![TAG_MANIFEST, 0, 0, 0, 0, TAG_SIGNATURE, 1, 0, 0, 0, 0];
            body.truncate(11);
            framed(&body, 29)
        }),
    ] {
        match Bundle::read(&file) {
            Err(BundleError::Malformed(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn build_refuses_a_component_that_is_not_what_the_manifest_says() {
    let wrong_kind = Bundle::build(
        source(&[("threshold", Kind::Strategy)]),
        vec![THRESHOLD.to_vec()],
    )
    .unwrap_err();
    assert!(
        matches!(wrong_kind, BundleError::ComponentMismatch(_)),
        "{wrong_kind}"
    );
    assert!(wrong_kind.to_string().contains("segment"), "{wrong_kind}");

    let mut other_version = source(&[("threshold", Kind::Segment)]);
    other_version.plugins[0].wit_version = "0.2.0".into();
    let err = Bundle::build(other_version, vec![THRESHOLD.to_vec()]).unwrap_err();
    assert!(matches!(err, BundleError::ComponentMismatch(_)), "{err}");

    let err = Bundle::build(
        source(&[("threshold", Kind::Segment)]),
        vec![b"\0asm\x01\0\0\0".to_vec()],
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::ComponentMismatch(_)), "{err}");
}

#[test]
fn build_refuses_invalid_manifests() {
    let mut hosts = source(&[("threshold", Kind::Segment)]);
    hosts.plugins[0].permissions.outbound_hosts = vec!["api.example.com".into()];
    let err = Bundle::build(hosts, vec![THRESHOLD.to_vec()]).unwrap_err();
    assert!(err.to_string().contains("only connectors"), "{err}");

    // A connector's hosts: exact names with an optional port, and plain
    // HTTP only by an explicit `http://`; never a wildcard, another scheme,
    // a path or a bad port.
    for (host, ok) in [
        ("api.example.com", true),
        ("api.example.com:8443", true),
        ("http://hooks.example.com", true),
        ("http://127.0.0.1:8080", true),
        ("*.example.com", false),
        ("https://api.example.com", false),
        ("HTTP://hooks.example.com", false),
        ("http://", false),
        ("http://hooks.example.com/in", false),
        ("ftp://api.example.com", false),
        ("api.example.com/v1", false),
        ("API.example.com", false),
        ("api.example.com:0", false),
        ("api.example.com:65536", false),
        ("api.example.com:", false),
    ] {
        let mut s = source(&[("ndjson", Kind::Connector)]);
        s.plugins[0].permissions.outbound_hosts = vec![host.into()];
        s.plugins[0].permissions.traits.clear();
        let built = Bundle::build(s, vec![tessera_guests::plugins::NDJSON.to_vec()]);
        match (ok, built) {
            (true, Ok(_)) => {}
            (false, Err(BundleError::InvalidManifest(m))) => {
                assert!(m.contains("outbound host"), "{host}: {m}")
            }
            (_, other) => panic!("{host}: {other:?}"),
        }
    }

    let twice = source(&[("a", Kind::Segment), ("a", Kind::Segment)]);
    let err = Bundle::build(twice, vec![THRESHOLD.to_vec(), THRESHOLD.to_vec()]).unwrap_err();
    assert!(matches!(err, BundleError::InvalidManifest(_)), "{err}");

    for (field, value) in [("version", "1.2"), ("version", "01.2.3"), ("publisher", "")] {
        let mut s = source(&[("threshold", Kind::Segment)]);
        match field {
            "version" => s.version = value.into(),
            _ => s.publisher = value.into(),
        }
        let err = Bundle::build(s, vec![THRESHOLD.to_vec()]).unwrap_err();
        assert!(
            matches!(err, BundleError::InvalidManifest(_)),
            "{field}={value}: {err}"
        );
    }
    for name in ["Threshold", "1rule", "a b", "../x", ""] {
        let mut s = source(&[("threshold", Kind::Segment)]);
        s.plugins[0].name = name.into();
        assert!(
            Bundle::build(s, vec![THRESHOLD.to_vec()]).is_err(),
            "{name}"
        );
    }
    let unknown: Result<SourceManifest, _> = serde_json::from_str(
        r#"{"publisher":"p","version":"1.0.0","plugins":[],"signed_by":"me"}"#,
    );
    assert!(unknown.is_err());
    let unknown_kind: Result<SourceManifest, _> = serde_json::from_str(
        r#"{"publisher":"p","version":"1.0.0","plugins":[{"name":"x","kind":"miner","wit_version":"0.1.0","component":"x.wasm"}]}"#,
    );
    assert!(unknown_kind.is_err());
}

/// Every byte outside the component bodies (header, manifest, section
/// headers, stored digests, signature block), flipped one at a time.
#[test]
fn no_change_to_any_byte_of_the_framing_manifest_or_signature_verifies() {
    let key = signing_key();
    let bytes = signed_bytes();
    let bodies = [THRESHOLD, EPSILON_GREEDY].map(|c| {
        let at = offset_of(bytes, c);
        at..at + c.len()
    });
    for i in (0..bytes.len()).filter(|i| !bodies.iter().any(|r| r.contains(i))) {
        let mut changed = bytes.clone();
        changed[i] ^= 0x01;
        let result = Bundle::read(&changed).and_then(|b| b.verify(&[key.public()]));
        assert!(result.is_err(), "byte {i} changed and verified");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// No single changed byte anywhere in a signed bundle verifies.
    #[test]
    fn no_single_byte_change_verifies(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let key = signing_key();
        let mut bytes = signed_bytes().clone();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        let result = Bundle::read(&bytes).and_then(|b| b.verify(&[key.public()]));
        prop_assert!(result.is_err(), "byte {} ^ {:#x} verified", i, xor);
    }
}

fn signing_key() -> &'static PublisherKey {
    static KEY: std::sync::OnceLock<PublisherKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| PublisherKey::generate().unwrap())
}

fn signed_bytes() -> &'static Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| signed(signing_key()))
}
