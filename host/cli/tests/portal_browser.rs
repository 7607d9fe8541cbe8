//! The subject portal in a real browser: headless Chromium (Debian's
//! `chromium`, driven by `playwright-core` from `tests/browser/`, both
//! installed by `.ci/run`) against `tessera serve` on 127.0.0.1. The script
//! (`tests/browser/portal.mjs`) signs a person in with the code from the
//! file sender and goes through every section, asserting the page; this
//! test then checks through the API that what the page showed happened.
//!
//! The same file makes the pictures of `docs/screenshots/`
//! (`tests/browser/screenshots.mjs`): each is checked here, and copied over
//! the committed ones only when `TESSERA_UPDATE_SCREENSHOTS=1`.
//!
//! Without Chromium, the npm packages or a Chinese font these tests fail and
//! say how to install them: they do not skip.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::browser::{CHROMIUM, browser_dir, check_picture, repo_dir, require_browser_tools};
use common::{Server, init_keys, open_vault};
use serde_json::{Value, json};
use tessera_vault::{Actor, IdentityKind, Incoming, LinkedApp, TenantSettings};

const TENANT: &str = "acme";
const EMAIL: &str = "ana@example.com";
/// A first name that is markup with a script: the page must show it as text.
const MARKUP: &str = "<img src=x onerror=\"window.pwned=1\">Ana";

#[test]
fn a_person_uses_the_portal_in_headless_chromium_from_sign_in_to_the_deletion_receipt() {
    require_browser_tools(false);
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

/// The portal's pictures in `docs/screenshots/`: `<page>-<width>-<lang>.png`.
const PAGES: [&str; 6] = [
    "sign-in",
    "data",
    "consents",
    "apps",
    "retention",
    "receipt",
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
fn the_screenshot_script_pictures_every_main_page_at_both_widths_in_both_languages() {
    require_browser_tools(true);
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    // Two people, one per language (each is erased to show the receipt),
    // each with an app they linked: the tenant's own systems link apps, not
    // the API, so before the server starts.
    let people = [
        ("en", "m-ana", "ana@example.com"),
        ("zh", "m-li", "li@example.com"),
    ];
    {
        let vault = open_vault(dir.path());
        let actor = Actor::new("operator", "screenshots");
        vault
            .create_tenant(TENANT, TenantSettings::default(), &actor)
            .expect("create the tenant");
        for (_, member, email) in people {
            let record = Incoming {
                identities: vec![
                    (IdentityKind::MemberId, member.into()),
                    (IdentityKind::Email, email.into()),
                ],
                ..Incoming::default()
            };
            let subject = vault
                .ingest(TENANT, &record, &actor)
                .expect("ingest")
                .subject
                .expect("a subject");
            let app = LinkedApp {
                app: "fitness-sync".into(),
                name: "Fitness Sync".into(),
                scopes: vec!["purchases:read".into(), "profile:read".into()],
                granted_at_ms: 1_764_900_000_000,
            };
            vault
                .link_app(TENANT, &subject, &app, &actor)
                .expect("link an app");
        }
    }
    let codes = dir.path().join("codes.jsonl");
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
    let call = |method: &str, path: &str, token: &str, body: Value| {
        let body = body.to_string();
        let (status, answer) = server.call(method, path, Some(token), Some(&body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    };
    for ((_, member, _), (first_name, city, amount, currency)) in people.iter().zip([
        ("Ana", "Porto", 42.5, "EUR"),
        ("李华", "杭州", 268.0, "CNY"),
    ]) {
        call(
            "POST",
            "/v1/identify",
            &operator,
            json!({"userId": member, "traits": {"first_name": first_name, "city": city}}),
        );
        call(
            "POST",
            "/v1/track",
            &operator,
            json!({"userId": member, "event": "Purchase",
                   "properties": {"amount": amount, "currency": currency, "order_id": "o-1"}}),
        );
        call(
            "POST",
            "/v1/page",
            &operator,
            json!({"userId": member, "name": "Running shoes",
                   "properties": {"path": "/shoes/running"}}),
        );
        // A consent given through the tenant's own site, so the page has a
        // history to show and the segment below its members.
        let token = call(
            "POST",
            "/v1/subject-tokens",
            &operator,
            json!({"identity": {"kind": "member_id", "value": member}}),
        )["token"]
            .as_str()
            .expect("a subject token")
            .to_owned();
        call(
            "PUT",
            "/v1/me/consents/email_marketing",
            &token,
            json!({"granted": true}),
        );
    }
    call(
        "PUT",
        "/v1/segments/recent-buyers",
        &operator,
        json!({"plugin": "rules", "params": {"rule": "did(purchase, last 90 days)"},
               "description": "bought something in the last 90 days"}),
    );
    let mut members = 0;
    for _ in 0..300 {
        let (_, segment) = server.call("GET", "/v1/segments/recent-buyers", Some(&operator), None);
        if segment.get("last_recompute").is_some_and(|r| !r.is_null()) {
            members = segment["members"].as_u64().unwrap_or_default();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(members, 2, "both people are in the segment the pages show");

    let update = std::env::var("TESSERA_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("node")
        .arg(browser_dir().join("screenshots.mjs"))
        .env("TESSERA_URL", &server.url)
        .env("CODES_FILE", &codes)
        .env("OUT_DIR", out.path())
        .env(
            "PEOPLE",
            json!({"en": people[0].2, "zh-CN": people[1].2}).to_string(),
        )
        .env("CHROMIUM", CHROMIUM)
        .output()
        .unwrap_or_else(|error| panic!("node cannot be run ({error}); install Node.js 20+"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the screenshot script failed ({}):\n{stdout}\n{stderr}",
        run.status
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

    let committed = repo_dir().join("docs/screenshots");
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
    let portal_doc = std::fs::read_to_string(repo_dir().join("docs/portal.md")).unwrap();
    for (name, width) in &expected {
        check_picture(&committed.join(name), *width);
        assert!(
            portal_doc.contains(&format!("screenshots/{name}")),
            "docs/portal.md does not show screenshots/{name}"
        );
    }
}

/// The picture check is not vacuous: a blank page, a page of the wrong
/// width and a file that is not a PNG are each refused.
#[test]
fn the_picture_check_refuses_a_blank_picture_the_wrong_width_and_not_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, width: u32, height: u32, pixel: &dyn Fn(u32, u32) -> [u8; 3]| {
        let path = dir.path().join(name);
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut encoder = png::Encoder::new(file, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                data.extend(pixel(x, y));
            }
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
        path
    };
    // Bands of 32 greys over a fifth of the picture: passes as a page.
    let page = write("page.png", 390, 400, &|x, y| {
        if y % 5 == 0 {
            [(x % 32 * 8) as u8; 3]
        } else {
            [255; 3]
        }
    });
    check_picture(&page, 390);
    let blank = write("blank.png", 390, 400, &|_, _| [255; 3]);
    let not_png = dir.path().join("page.jpg");
    std::fs::write(&not_png, b"\xff\xd8\xff\xe0 not a png").unwrap();
    for (path, width) in [(&blank, 390), (&page, 1280), (&not_png, 390)] {
        let checked = std::panic::catch_unwind(|| check_picture(path, width));
        assert!(
            checked.is_err(),
            "{} passed as a {width} px page",
            path.display()
        );
    }
}
