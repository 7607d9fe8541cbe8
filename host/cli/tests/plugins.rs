//! The operator's plugin loop against a real `tessera serve`, all through
//! the CLI: publisher key → bundle → trust → install (pending) → approve a
//! part → upgrade asking for more (pending, with its diff) → approve →
//! rollback → quarantine and release → restart → remove; and the refusals
//! an operator sees for a tampered or unsigned bundle.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Server, init_keys, install_bundle, plugin_test, tessera, trusted_publisher};

const TENANT: &str = "acme";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `tessera ARGS` against the server, with its operator token.
fn run(server: &Server, token: &str, args: &[&str]) -> Output {
    tessera(&server.dir)
        .args(args)
        .env("TESSERA_SERVER", &server.url)
        .env("TESSERA_TOKEN", token)
        .output()
        .expect("tessera runs")
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

fn refused(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn manifest(version: &str, traits: &[&str], pii: &[&str]) -> String {
    format!(
        r#"
publisher = "Acme Analytics"
version = "{version}"

[[plugins]]
name = "versioned"
kind = "segment"
wit_version = "0.1.0"
description = "lifecycle fixture"
component = "versioned.wasm"

[plugins.permissions]
traits = {traits:?}
pii = {pii:?}
purposes = ["analytics"]
"#
    )
}

/// Builds (and signs, with `key`) a bundle of the `versioned` plugin.
fn bundle(dir: &Path, name: &str, v2: bool, version: &str, key: Option<&Path>) -> String {
    let src = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(&src).unwrap();
    let (component, traits, pii): (&str, &[&str], &[&str]) = if v2 {
        (
            tessera_guests::test_programs::VERSIONED_V2,
            &["country", "email"],
            &["email"],
        )
    } else {
        (tessera_guests::test_programs::VERSIONED, &["country"], &[])
    };
    std::fs::copy(component, src.join("versioned.wasm")).unwrap();
    std::fs::write(src.join("bundle.toml"), manifest(version, traits, pii)).unwrap();
    let out = dir.join(format!("{name}.tsb"));
    let built = tessera(dir)
        .args(["bundle", "build", p(&src), "--out", p(&out)])
        .output()
        .unwrap();
    ok(&built);
    if let Some(key) = key {
        let signed = tessera(dir)
            .args(["bundle", "sign", p(&out), "--key", p(key)])
            .output()
            .unwrap();
        ok(&signed);
    }
    out.to_str().unwrap().to_owned()
}

#[test]
fn an_operator_installs_approves_upgrades_rolls_back_and_removes_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_keys(root);
    let server = Server::start_with_args(root, TENANT, &[], &["--allow-unsigned-bundles"]);
    let operator = server.operator.clone().expect("an operator token");
    let keys = root.join("publisher");
    ok(&tessera(root)
        .args(["keys", "publisher", "new", "--out", p(&keys)])
        .output()
        .unwrap());
    let key = keys.join("publisher.key");
    let v1 = bundle(root, "v1", false, "1.0.0", Some(&key));
    let v2 = bundle(root, "v2", true, "2.0.0", Some(&key));

    // Not trusted yet: refused, and nothing is installed.
    let error = refused(&run(&server, &operator, &["plugin", "install", &v1]));
    assert!(error.contains("unknown-publisher"), "{error}");
    let trusted = ok(&run(
        &server,
        &operator,
        &[
            "keys",
            "publisher",
            "trust",
            p(&keys.join("publisher.pub")),
            "--name",
            "Acme Analytics",
        ],
    ));
    assert!(trusted.contains("trusted publisher key"), "{trusted}");
    let listed = ok(&run(&server, &operator, &["keys", "publisher", "trusted"]));
    assert!(listed.contains("Acme Analytics"), "{listed}");

    // A tampered bundle: refused with its reason.
    let mut bytes = std::fs::read(&v1).unwrap();
    let at = bytes.len() - 200;
    bytes[at] ^= 1;
    let tampered = root.join("tampered.tsb");
    std::fs::write(&tampered, &bytes).unwrap();
    let error = refused(&run(
        &server,
        &operator,
        &["plugin", "install", p(&tampered)],
    ));
    assert!(error.contains("bundle_refused"), "{error}");

    // Installed: pending, with what it asks for.
    let installed = ok(&run(&server, &operator, &["plugin", "install", &v1]));
    assert!(installed.contains("pending approval"), "{installed}");
    assert!(
        installed.contains("asks for: traits country"),
        "{installed}"
    );
    let list = ok(&run(&server, &operator, &["plugin", "list"]));
    let row = list.lines().find(|l| l.starts_with("versioned")).unwrap();
    assert!(row.contains("pending"), "{list}");

    // Approved with a part of the request: no purpose, no data reaches it.
    let approved = ok(&run(
        &server,
        &operator,
        &["plugin", "approve", "versioned", "--purposes", ""],
    ));
    assert!(approved.contains("granted traits country"), "{approved}");
    assert!(!approved.contains("purposes"), "{approved}");

    // v2 asks for email and the email PII class: pending with the diff.
    let upgraded = ok(&run(
        &server,
        &operator,
        &["plugin", "upgrade", "versioned", &v2],
    ));
    assert!(upgraded.contains("pending approval"), "{upgraded}");
    assert!(upgraded.contains("+ traits: email"), "{upgraded}");
    assert!(upgraded.contains("+ PII classes: email"), "{upgraded}");
    assert!(upgraded.contains("+ purposes: analytics"), "{upgraded}");
    let shown = ok(&run(&server, &operator, &["plugin", "show", "versioned"]));
    assert!(
        shown.contains("versioned 1.0.0 (segment), active"),
        "{shown}"
    );
    assert!(shown.contains("pending: 2.0.0"), "{shown}");

    ok(&run(
        &server,
        &operator,
        &["plugin", "approve", "versioned"],
    ));
    let shown = ok(&run(&server, &operator, &["plugin", "show", "versioned"]));
    assert!(shown.contains("versioned 2.0.0"), "{shown}");
    assert!(shown.contains("pii email"), "{shown}");

    let rolled = ok(&run(
        &server,
        &operator,
        &["plugin", "rollback", "versioned"],
    ));
    assert!(rolled.contains("back to 1.0.0"), "{rolled}");
    assert!(rolled.contains("granted traits country"), "{rolled}");

    ok(&run(
        &server,
        &operator,
        &["plugin", "quarantine", "versioned", "--reason", "audit"],
    ));
    let list = ok(&run(&server, &operator, &["plugin", "list"]));
    let row = list.lines().find(|l| l.starts_with("versioned")).unwrap();
    assert!(row.contains("quarantined"), "{list}");

    // An unsigned bundle: refused unless asked for on a development server,
    // and then marked.
    let unsigned_src = bundle(root, "dev", false, "1.0.0", None);
    let error = refused(&run(
        &server,
        &operator,
        &["plugin", "install", &unsigned_src],
    ));
    assert!(error.contains("unsigned"), "{error}");
    // (Another plugin name would be needed to install it beside
    // `versioned`; the refusal says the name is taken, after verification.)
    let taken = refused(&run(
        &server,
        &operator,
        &["plugin", "install", "--allow-unsigned", &unsigned_src],
    ));
    assert!(taken.contains("plugin_exists"), "{taken}");

    // A restart keeps everything: the version, its grant, the quarantine.
    assert!(server.stop().success());
    let server = Server::start(root, TENANT);
    let shown = ok(&run(&server, &operator, &["plugin", "show", "versioned"]));
    assert!(
        shown.contains("versioned 1.0.0 (segment), quarantined"),
        "{shown}"
    );
    assert!(shown.contains("quarantined by"), "{shown}");
    ok(&run(
        &server,
        &operator,
        &["plugin", "release", "versioned"],
    ));
    let shown = ok(&run(&server, &operator, &["plugin", "show", "versioned"]));
    assert!(shown.contains("active"), "{shown}");

    let removed = ok(&run(&server, &operator, &["plugin", "remove", "versioned"]));
    assert!(removed.contains("removed versioned"), "{removed}");
    let error = refused(&run(&server, &operator, &["plugin", "show", "versioned"]));
    assert!(error.contains("unknown_plugin"), "{error}");
    // The built-in plugins are still there.
    let list = ok(&run(&server, &operator, &["plugin", "list"]));
    assert!(list.contains("threshold"), "{list}");
    assert!(list.contains("built_in"), "{list}");
    assert!(server.stop().success());
}

#[test]
fn an_unsigned_bundle_installs_only_on_a_development_server_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_keys(root);
    let unsigned = bundle(root, "dev", false, "1.0.0", None);

    let server = Server::start(root, TENANT);
    let operator = server.operator.clone().expect("an operator token");
    let error = refused(&run(
        &server,
        &operator,
        &["plugin", "install", "--allow-unsigned", &unsigned],
    ));
    assert!(error.contains("unsigned_not_allowed"), "{error}");
    assert!(server.stop().success());

    let server = Server::start_with_args(root, TENANT, &[], &["--allow-unsigned-bundles"]);
    ok(&run(
        &server,
        &operator,
        &["plugin", "install", "--allow-unsigned", &unsigned],
    ));
    ok(&run(
        &server,
        &operator,
        &["plugin", "approve", "versioned"],
    ));
    let shown = ok(&run(&server, &operator, &["plugin", "show", "versioned"]));
    assert!(shown.contains("UNSIGNED BUNDLE"), "{shown}");
    let list = ok(&run(&server, &operator, &["plugin", "list"]));
    let row = list.lines().find(|l| l.starts_with("versioned")).unwrap();
    assert!(row.contains("unsigned_development"), "{list}");
    assert!(server.stop().success());
}

/// Each Python example, built from source with the Python SDK, signed as a
/// bundle, installed into a running server, approved, and called the way
/// the server calls plugins: the connector imports a file, the segment
/// previews its members, the strategy forecasts a what-if campaign.
#[test]
fn python_examples_install_as_signed_bundles_and_answer_through_the_server() {
    use tessera_guests::python;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_keys(root);
    // Python components compile to ~40 MB each: cached in the target
    // directory (by content hash, so across runs), not in the user's cache.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-components");
    let compiled = cache.join("compiled");
    let server = Server::start_with(
        root,
        TENANT,
        &[("TESSERA_CACHE_DIR", compiled.to_str().unwrap())],
    );
    let operator = server.operator.clone().expect("an operator token");
    let key = trusted_publisher(&server, &operator, "Example Partner");
    for example in python::EXAMPLES {
        let component = python::component(&example, &cache)
            .unwrap_or_else(|why| panic!("{} could not be built: {why}", example.name));
        // The partner's loop first: its fixtures, under its requested view.
        let project = python::root().join(example.dir);
        let tested = plugin_test(root, &component, &project.join("fixtures.json"), &compiled);
        let expected = match example.world {
            "connector" => "2 events, 0 trait updates, 0 identity links, 3 rejected",
            "segment" => "row 1: member, score 99.09, tier hot",
            _ => "row 1: vip_preview",
        };
        assert!(tested.contains(expected), "{}: {tested}", example.name);
        install_bundle(
            &server,
            &operator,
            &key,
            example.name,
            &component,
            &project.join("bundle.toml"),
        );
    }

    // The connector: an import of its sample file, bad lines reported by row.
    let sample = python::root()
        .join(python::ORDERS_JSONL.dir)
        .join("sample.jsonl");
    let imported = ok(&run(
        &server,
        &operator,
        &[
            "import",
            p(&sample),
            "--connector",
            "orders-jsonl",
            "--json",
        ],
    ));
    let imported: serde_json::Value = serde_json::from_str(&imported).expect("JSON");
    assert_eq!(imported["status"], "completed", "{imported}");
    assert_eq!(imported["report"]["accepted"], 2, "{imported}");
    assert_eq!(imported["report"]["rows_read"], 5, "{imported}");

    // Ann consents to analytics and personalization, through the portal flow.
    let body = r#"{"identity": {"kind": "member_id", "value": "u-1"}}"#;
    let (status, answer) = server.call("POST", "/v1/subject-tokens", Some(&operator), Some(body));
    assert_eq!(status, 201, "{answer}");
    let ann = answer["token"].as_str().unwrap().to_owned();
    for purpose in ["analytics", "personalization"] {
        let (status, answer) = server.call(
            "PUT",
            &format!("/v1/me/consents/{purpose}"),
            Some(&ann),
            Some(r#"{"granted": true}"#),
        );
        assert_eq!(status, 200, "{purpose}: {answer}");
    }

    // The segment: her only purchase is months old, so she is cold, not hot.
    let preview = |tier: &str| {
        let body = format!(r#"{{"plugin": "engagement-tiers", "params": {{"tier": "{tier}"}}}}"#);
        let (status, answer) =
            server.call("POST", "/v1/segments/preview", Some(&operator), Some(&body));
        assert_eq!(status, 200, "{answer}");
        answer
    };
    let cold = preview("cold");
    assert_eq!(cold["evaluated"], 1, "{cold}");
    assert_eq!(cold["members"], 1, "{cold}");
    assert_eq!(preview("hot")["members"], 0);

    // The strategy: a what-if campaign on the cold customers, forecast by
    // the plugin's own `simulate`.
    let body = r#"{"plugin": "engagement-tiers", "params": {"tier": "cold"}}"#;
    let (status, answer) = server.call(
        "PUT",
        "/v1/segments/cold-customers",
        Some(&operator),
        Some(body),
    );
    assert_eq!(status, 200, "{answer}");
    let mut recomputed = false;
    for _ in 0..300 {
        let (_, segment) = server.call("GET", "/v1/segments/cold-customers", Some(&operator), None);
        if !segment["last_recompute"].is_null() {
            assert_eq!(segment["members"], 1, "{segment}");
            recomputed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(recomputed, "the segment was never recomputed");
    let body = r#"{"strategy": "propensity-offers", "segment": "cold-customers",
                   "purpose": "personalization", "holdout": 0.0, "goal": {"event": "purchase"}}"#;
    let (status, forecast) = server.call("POST", "/v1/simulate", Some(&operator), Some(body));
    assert_eq!(status, 200, "{forecast}");
    assert_eq!(forecast["consenting"], 1, "{forecast}");
    assert!(
        forecast["notes"]
            .as_str()
            .is_some_and(|n| n.contains("expected margin per subject")),
        "{forecast}"
    );
    let actions = forecast["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 4, "{forecast}");
    assert!(server.stop().success());
}
