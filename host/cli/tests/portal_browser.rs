//! The subject portal in a real browser: headless Chromium (Debian's
//! `chromium`, driven by `playwright-core` from `tests/browser/`, both
//! installed by `.ci/run`) against `tessera serve` on 127.0.0.1. The script
//! (`tests/browser/portal.mjs`) signs a person in with the code from the
//! file sender and goes through every section, asserting the page; this
//! test then checks through the API that what the page showed happened.
//!
//! Without Chromium or the npm packages this test fails and says how to
//! install them: it does not skip.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, init_keys};
use serde_json::{Value, json};

const TENANT: &str = "acme";
const EMAIL: &str = "ana@example.com";
const CHROMIUM: &str = "/usr/bin/chromium";
/// A first name that is markup with a script: the page must show it as text.
const MARKUP: &str = "<img src=x onerror=\"window.pwned=1\">Ana";
const INSTALL: &str = "apt-get install chromium chromium-driver && npm ci --prefix tests/browser";

fn browser_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser"))
}

#[test]
fn a_person_uses_the_portal_in_headless_chromium_from_sign_in_to_the_deletion_receipt() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; install the browser test tools with: {INSTALL}"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing; install the browser test tools with: {INSTALL}"
    );
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    let codes = dir.path().join("codes.jsonl");
    // Purges every second, so that the receipt comes while the page waits.
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs]\ninterval_s = 1\n\n[subject_login]\nsender = \"file\"\nfile = {}\n\n\
             [subject_tokens]\nrequests_per_second = 100\nburst = 100\n",
            toml_string(&codes.to_string_lossy())
        ),
    )
    .unwrap();
    let server = Server::start_with(
        dir.path(),
        TENANT,
        &[("TESSERA_CONFIG", config.to_str().unwrap())],
    );
    let operator = server.operator.clone().expect("an operator token");

    // A customer, as the tenant's own systems send them (trusted: an
    // operator token, not a write key).
    for (path, body) in [
        (
            "/v1/identify",
            json!({"userId": "m-ana", "traits": {"email": EMAIL, "first_name": MARKUP, "city": "Porto"}}),
        ),
        (
            "/v1/track",
            json!({"userId": "m-ana", "event": "Order Completed",
                   "properties": {"amount": 42.5, "currency": "EUR", "order_id": "o-1"}}),
        ),
    ] {
        let (status, answer) = server.call("POST", path, Some(&operator), Some(&body.to_string()));
        assert_eq!(status, 200, "{path}: {answer}");
    }

    let out = Command::new("node")
        .arg(browser_dir().join("portal.mjs"))
        .env("TESSERA_URL", &server.url)
        .env("CODES_FILE", &codes)
        .env("SUBJECT_EMAIL", EMAIL)
        .env("SUBJECT_FIRST_NAME", MARKUP)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .unwrap_or_else(|error| panic!("node cannot be run ({error}); install Node.js 20+"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no result line from the script:\n{stdout}\n{stderr}"));
    let deletion = result["deletion"].as_str().expect("a deletion id");

    // What the page showed is what the API says.
    let (status, request) = server.call(
        "GET",
        &format!("/v1/deletions/{deletion}"),
        Some(&operator),
        None,
    );
    assert_eq!(status, 200, "{request}");
    assert_eq!(request["status"], "completed", "{request}");
    assert_eq!(request["reason"], "subject_request");
    assert_eq!(request["actor"]["role"], "subject");
    assert_eq!(request["receipt"]["met_deadline"], true);
    let subject = request["subject"].as_str().expect("a subject").to_owned();
    let (status, page) = server.call("GET", "/v1/audit?limit=1000", Some(&operator), None);
    assert_eq!(status, 200);
    let by_the_person: Vec<String> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["actor"]["role"] == "subject" && e["subject"] == subject.as_str())
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    for action in [
        "subject.access",
        "subject.rectify",
        "consent.grant",
        "consent.revoke",
        "subject.retention",
        "subject.export",
        "subject.delete",
    ] {
        assert!(
            by_the_person.iter().any(|a| a == action),
            "no {action} by the person in the audit trail: {by_the_person:?}"
        );
    }
    // The person is gone: no new session for their address.
    let (status, _) = server.call(
        "POST",
        "/v1/subject-tokens",
        Some(&operator),
        Some(&json!({"identity": {"kind": "email", "value": EMAIL}}).to_string()),
    );
    assert_eq!(status, 404, "an erased person's address names nobody");
    let stopped = server.stop();
    assert!(stopped.success(), "{stopped:?}");
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}
