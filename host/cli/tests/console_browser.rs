//! The console in a real browser: headless Chromium (Debian's `chromium`,
//! driven by `playwright-core` from `tests/browser/`, as the portal's
//! browser test) against `tessera serve` on 127.0.0.1. A plugin is
//! installed from a signed bundle and approved; an upgrade that asks for a
//! new trait and PII class waits. The operator's script
//! (`tests/browser/console-operator.mjs`) approves it on the page; this test
//! then checks through the API that the new version runs with the new
//! grant, and that the audit trail names the operator's token.
//!
//! The same file makes the console's pictures in `docs/screenshots/console/`
//! (`tests/browser/console-screenshots.mjs`): each is checked here, and
//! copied over the committed ones only when `TESSERA_UPDATE_SCREENSHOTS=1`.
//!
//! Without Chromium, the npm packages or a Chinese font these tests fail and
//! say how to install them: they do not skip.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::browser::{CHROMIUM, browser_dir, check_picture, repo_dir, require_browser_tools};
use common::{Server, init_keys, ok, p, tessera, trusted_publisher};
use serde_json::{Value, json};

const TENANT: &str = "acme";
const PLUGIN: &str = "versioned";
/// A signed bundle of the `versioned` test plugin: version 1 reads
/// `country`; version 2 also reads `email`, with the email PII class.
fn bundle(dir: &Path, key: &Path, v2: bool, version: &str) -> PathBuf {
    let (component, traits, pii): (&str, &[&str], &[&str]) = if v2 {
        (
            tessera_guests::test_programs::VERSIONED_V2,
            &["country", "email"],
            &["email"],
        )
    } else {
        (tessera_guests::test_programs::VERSIONED, &["country"], &[])
    };
    let src = dir.join(format!("src-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(component, src.join("versioned.wasm")).unwrap();
    std::fs::write(
        src.join("bundle.toml"),
        format!(
            r#"
publisher = "Acme Analytics"
version = "{version}"

[[plugins]]
name = "{PLUGIN}"
kind = "segment"
wit_version = "0.1.0"
description = "Customers by country"
component = "versioned.wasm"

[plugins.permissions]
traits = {traits:?}
pii = {pii:?}
purposes = ["analytics"]
"#
        ),
    )
    .unwrap();
    let out = dir.join(format!("versioned-{version}.tsb"));
    ok(&tessera(dir)
        .args(["bundle", "build", p(&src), "--out", p(&out)])
        .output()
        .expect("tessera runs"));
    ok(&tessera(dir)
        .args(["bundle", "sign", p(&out), "--key", p(key)])
        .output()
        .expect("tessera runs"));
    out
}

/// Version 1 installed and approved, version 2 uploaded: pending, since it
/// asks for more.
fn plugin_with_pending_upgrade(server: &Server, operator: &str) {
    let key = trusted_publisher(server, operator, "Acme Analytics");
    let v1 = bundle(&server.dir, &key, false, "1.0.0");
    let installed = ok(&server.cli(operator, &["plugin", "install", p(&v1)]));
    assert!(installed.contains("pending approval"), "{installed}");
    ok(&server.cli(operator, &["plugin", "approve", PLUGIN]));
    let v2 = bundle(&server.dir, &key, true, "2.0.0");
    let upgraded = ok(&server.cli(operator, &["plugin", "upgrade", PLUGIN, p(&v2)]));
    assert!(upgraded.contains("pending approval"), "{upgraded}");
}

/// The id of an API token (`tsk_<tenant>_<id>_<secret>`).
fn token_id(token: &str) -> &str {
    token.split('_').nth(2).expect("a token id")
}

/// Runs a script of `tests/browser/` with `env`; its last JSON line.
fn run_script(script: &str, env: &[(&str, String)]) -> Value {
    let out = Command::new("node")
        .arg(browser_dir().join(script))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CHROMIUM", CHROMIUM)
        .output()
        .unwrap_or_else(|error| panic!("node cannot be run ({error}); install Node.js 20+"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no result line from {script}:\n{stdout}\n{stderr}"))
}

#[test]
fn an_operator_approves_a_pending_plugin_upgrade_in_headless_chromium() {
    require_browser_tools(false);
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    let server = Server::start(dir.path(), TENANT);
    let operator = server.operator.clone().expect("an operator token");
    plugin_with_pending_upgrade(&server, &operator);
    let (status, before) = server.call(
        "GET",
        &format!("/v1/plugins/{PLUGIN}"),
        Some(&operator),
        None,
    );
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["version"], "1.0.0");
    assert_eq!(before["pending"]["version"], "2.0.0");

    let result = run_script(
        "console-operator.mjs",
        &[
            ("TESSERA_URL", server.url.clone()),
            ("OPERATOR_TOKEN", operator.clone()),
            ("PLUGIN", PLUGIN.into()),
            ("FROM_VERSION", "1.0.0".into()),
            ("TO_VERSION", "2.0.0".into()),
            (
                "ADDED",
                json!({"traits": ["email"], "pii": ["email"]}).to_string(),
            ),
        ],
    );
    assert_eq!(result["approved"], "2.0.0");

    // What the page showed is what the API says: version 2 runs, with the
    // new trait and PII class granted, and nothing waits.
    let (status, after) = server.call(
        "GET",
        &format!("/v1/plugins/{PLUGIN}"),
        Some(&operator),
        None,
    );
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["version"], "2.0.0", "{after}");
    assert_eq!(after["status"], "active", "{after}");
    assert!(after["pending"].is_null(), "{after}");
    let granted = &after["granted"];
    assert!(
        granted["traits"]
            .as_array()
            .unwrap()
            .contains(&json!("email")),
        "{granted}"
    );
    assert!(
        granted["pii"].as_array().unwrap().contains(&json!("email")),
        "{granted}"
    );
    // The audit trail names the operator's token for the sign-in, the
    // approval and the sign-out; no audit entry names a session as actor.
    let (status, page) = server.call(
        "GET",
        &format!("/v1/audit?actor=token:{}", token_id(&operator)),
        Some(&operator),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    // The install was approved before (by the same token, over the API);
    // the upgrade's approval is the one between signing in and out.
    let signed_in = actions
        .iter()
        .position(|a| *a == "console.sign_in")
        .unwrap_or_else(|| panic!("no console.sign_in by the operator's token: {actions:?}"));
    let in_session = &actions[signed_in..];
    assert_eq!(
        in_session,
        ["console.sign_in", "plugin.approve", "console.sign_out"],
        "{actions:?}"
    );
    let stopped = server.stop();
    assert!(stopped.success(), "{stopped:?}");
}

/// The console's pictures in `docs/screenshots/console/`:
/// `<page>-<width>-<lang>.png`.
const PAGES: [&str; 7] = [
    "sign-in",
    "tenant",
    "tokens",
    "plugin",
    "approvals",
    "audit",
    "deletions",
];
const WIDTHS: [(&str, u32); 2] = [("desktop", 1280), ("phone", 390)];
const LANGUAGES: [&str; 2] = ["en", "zh"];

fn expected_pictures() -> Vec<(String, u32)> {
    let mut names = Vec::new();
    for page in PAGES {
        for (kind, width) in WIDTHS {
            for lang in LANGUAGES {
                names.push((format!("{page}-{kind}-{lang}.png"), width));
            }
        }
    }
    names
}

#[test]
fn the_console_screenshot_script_pictures_the_operator_pages_at_both_widths_in_both_languages() {
    require_browser_tools(true);
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    let server = Server::start(dir.path(), TENANT);
    let operator = server.operator.clone().expect("an operator token");
    plugin_with_pending_upgrade(&server, &operator);
    // Tokens of the tenant's systems, and two people, one of whom asked to
    // be erased, so that the pages have something to show.
    server.create_token(&operator, "ingest", "web shop events");
    server.create_token(&operator, "marketer", "campaign team");
    let mut subject = String::new();
    for (member, email) in [("m-ana", "ana@example.com"), ("m-li", "li@example.com")] {
        let body = json!({"userId": member, "traits": {"email": email, "city": "Porto"}});
        let (status, answer) = server.call(
            "POST",
            "/v1/identify",
            Some(&operator),
            Some(&body.to_string()),
        );
        assert_eq!(status, 200, "{answer}");
        let lookup = json!({"kind": "member_id", "value": member}).to_string();
        let (status, found) = server.call(
            "POST",
            "/v1/subjects/lookup",
            Some(&operator),
            Some(&lookup),
        );
        assert_eq!(status, 200, "{found}");
        subject = found["subject"].as_str().expect("a subject").to_owned();
    }
    let (status, deletion) = server.call(
        "DELETE",
        &format!("/v1/subjects/{subject}"),
        Some(&operator),
        None,
    );
    assert!((200..300).contains(&status), "{deletion}");

    let update = std::env::var("TESSERA_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let out = tempfile::tempdir().unwrap();
    run_script(
        "console-screenshots.mjs",
        &[
            ("TESSERA_URL", server.url.clone()),
            ("OPERATOR_TOKEN", operator.clone()),
            ("PLUGIN", PLUGIN.into()),
            ("OUT_DIR", out.path().to_string_lossy().into_owned()),
        ],
    );
    let stopped = server.stop();
    assert!(stopped.success(), "{stopped:?}");

    let expected = expected_pictures();
    let made: BTreeSet<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let names: BTreeSet<String> = expected.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(made, names, "the script made other pictures than expected");
    for (name, width) in &expected {
        check_picture(&out.path().join(name), *width);
    }

    let committed = repo_dir().join("docs/screenshots/console");
    if update {
        std::fs::create_dir_all(&committed).unwrap();
        for entry in std::fs::read_dir(&committed).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "png") {
                std::fs::remove_file(path).unwrap();
            }
        }
        for name in &names {
            std::fs::copy(out.path().join(name), committed.join(name)).unwrap();
        }
    }
    // The committed pictures are the script's set (not pixel for pixel: a
    // date or a font version changes them), and the docs show every one.
    let doc = std::fs::read_to_string(repo_dir().join("docs/console.md")).unwrap();
    for (name, width) in &expected {
        check_picture(&committed.join(name), *width);
        assert!(
            doc.contains(&format!("screenshots/console/{name}")),
            "docs/console.md does not show screenshots/console/{name}"
        );
    }
}
