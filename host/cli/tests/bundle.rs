//! `tessera keys publisher new` → `bundle build` → `inspect` → `sign` →
//! `verify`, end to end with a first-party plugin, and the refusals an
//! operator sees.

use std::path::Path;
use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_LOG", "warn")
        .output()
        .expect("tessera runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    stdout
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const MANIFEST: &str = r#"
publisher = "Acme Analytics"
version = "1.0.0"

[[plugins]]
name = "threshold"
kind = "segment"
wit_version = "0.1.0"
description = "Profiles whose total spend is at least a threshold."
component = "threshold.wasm"

[plugins.permissions]
traits = ["total_spend"]
purposes = ["marketing"]
pii = ["email"]

[plugins.limits]
memory_bytes = 16777216

[[plugins.parameters]]
name = "threshold"
kind = "number"
required = true
"#;

#[test]
fn a_bundle_is_built_signed_inspected_and_verified_and_refused_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("threshold.wasm"),
        tessera_guests::plugins::THRESHOLD,
    )
    .unwrap();
    std::fs::write(src.join("bundle.toml"), MANIFEST).unwrap();
    let keys = dir.path().join("keys");
    let other = dir.path().join("other");
    let bundle = dir.path().join("acme.tsb");

    let out = ok(&tessera(&["keys", "publisher", "new", "--out", p(&keys)]));
    assert!(out.contains("key id: "), "{out}");
    let public = std::fs::read_to_string(keys.join("publisher.pub")).unwrap();
    assert!(out.contains(public.trim()), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(keys.join("publisher.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A key is never overwritten.
    let again = tessera(&["keys", "publisher", "new", "--out", p(&keys)]);
    assert_eq!(again.status.code(), Some(2));
    ok(&tessera(&["keys", "publisher", "new", "--out", p(&other)]));

    ok(&tessera(&[
        "bundle",
        "build",
        p(&src),
        "--manifest",
        p(&src.join("bundle.toml")),
        "--out",
        p(&bundle),
    ]));
    let shown = ok(&tessera(&["bundle", "inspect", p(&bundle)]));
    for line in [
        "signature: NONE (unsigned)",
        "publisher: Acme Analytics",
        "plugin threshold (segment · tessera:plugin@0.1.0)",
        "traits: total_spend",
        "PII classes: email",
        "purposes: marketing",
        "limits: memory_bytes = 16777216",
        "parameter threshold (number; required)",
    ] {
        assert!(shown.contains(line), "{line}\n{shown}");
    }

    let trust = keys.join("publisher.pub");
    // Unsigned: refused, unless the development flag says otherwise, loudly.
    let out = tessera(&["bundle", "verify", p(&bundle), "--trust", p(&trust)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("refused (unsigned)"));
    let out = tessera(&["bundle", "verify", p(&bundle), "--allow-unsigned"]);
    assert!(ok(&out).contains("UNSIGNED"));
    assert!(text(&out.stderr).contains("WARNING"));

    let signed = ok(&tessera(&[
        "bundle",
        "sign",
        p(&bundle),
        "--key",
        p(&keys.join("publisher.key")),
    ]));
    let key_id = out_key_id(&keys);
    assert!(signed.contains(&key_id), "{signed}");
    let shown = ok(&tessera(&["bundle", "inspect", p(&bundle)]));
    assert!(
        shown.contains(&format!("by publisher key {key_id}")),
        "{shown}"
    );

    // The right key, as a file or as the key itself.
    let out = ok(&tessera(&[
        "bundle",
        "verify",
        p(&bundle),
        "--trust",
        p(&trust),
    ]));
    assert!(
        out.contains(&format!("trusted publisher key {key_id}")),
        "{out}"
    );
    ok(&tessera(&[
        "bundle",
        "verify",
        p(&bundle),
        "--trust",
        public.trim(),
    ]));

    // Another publisher's key: refused, naming the reason.
    let out = tessera(&[
        "bundle",
        "verify",
        p(&bundle),
        "--trust",
        p(&other.join("publisher.pub")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused (unknown-publisher)"),
        "{}",
        text(&out.stderr)
    );

    // One flipped byte in the component: refused.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes.len() - 128 - 5 - 1000;
    bytes[at] ^= 0x40;
    let flipped = dir.path().join("flipped.tsb");
    std::fs::write(&flipped, &bytes).unwrap();
    let out = tessera(&["bundle", "verify", p(&flipped), "--trust", p(&trust)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused (tampered)"),
        "{}",
        text(&out.stderr)
    );

    // Cut short: refused as truncated.
    let cut = dir.path().join("cut.tsb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = tessera(&["bundle", "verify", p(&cut), "--trust", p(&trust)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("refused (truncated)"));

    // Bad input is not a refusal: exit 2.
    let out = tessera(&["bundle", "verify", p(&bundle), "--trust", "not-a-key"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn build_refuses_a_manifest_that_claims_another_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("threshold.wasm"),
        tessera_guests::plugins::THRESHOLD,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bundle.toml"),
        MANIFEST.replace("kind = \"segment\"", "kind = \"strategy\""),
    )
    .unwrap();
    let out = tessera(&[
        "bundle",
        "build",
        p(dir.path()),
        "--out",
        p(&dir.path().join("x.tsb")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the manifest says strategy, the component is a segment"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("x.tsb").exists());
}

/// The short id of the public key in `keys/publisher.pub`.
fn out_key_id(keys: &Path) -> String {
    let public = std::fs::read_to_string(keys.join("publisher.pub")).unwrap();
    tessera_bundle::PublicKey::parse(&public).unwrap().key_id()
}
