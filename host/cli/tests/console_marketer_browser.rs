//! The console's marketer pages in a real browser: headless Chromium
//! (Debian's `chromium`, driven by `playwright-core` from `tests/browser/`)
//! against `tessera serve` on 127.0.0.1, with a tenant whose customers
//! bought something and consent to email marketing. The script
//! (`tests/browser/console-marketer.mjs`) signs a marketer in with an API
//! token, builds a segment with a typo and reads the positioned error,
//! fixes it, reads the preview count, saves it, runs a campaign through
//! the wizard (draft → simulate → enable with a control group), and reads
//! the uplift chart once decisions and purchases are in; at each step it
//! compares the page with the API. This test then checks through the API,
//! with the marketer's bearer token, what the page did.
//!
//! Without Chromium or the npm packages this test fails and says how to
//! install them: it does not skip.

mod common;

use std::process::Command;

use common::browser::{CHROMIUM, browser_dir, check_picture, repo_dir, require_browser_tools};
use common::{Server, init_keys};
use serde_json::{Value, json};

const TENANT: &str = "acme";
/// Customers; those at an index divisible by 4 live in Lisboa, the others
/// in Porto (the segment the marketer builds).
const PEOPLE: usize = 40;

fn city(index: usize) -> &'static str {
    if index.is_multiple_of(4) {
        "Lisboa"
    } else {
        "Porto"
    }
}

#[test]
fn a_marketer_builds_a_segment_from_a_typo_runs_a_simulated_campaign_and_reads_its_uplift() {
    require_browser_tools(false);
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    // The page and the script together make a few hundred requests in a
    // few seconds; the default tenant limit (200/s) would only slow them.
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "[rate_limit]\nrequests_per_second = 2000\nburst = 4000\n\n\
         [subject_tokens]\nrequests_per_second = 100\nburst = 100\n",
    )
    .unwrap();
    let server = Server::start_with(
        dir.path(),
        TENANT,
        &[("TESSERA_CONFIG", config.to_str().unwrap())],
    );
    let operator = server.operator.clone().expect("an operator token");
    let marketer = server.create_token(&operator, "marketer", "console");

    // Customers as the tenant's own systems send them (trusted), each with
    // a purchase, and each consenting to email marketing on the tenant's
    // site (a subject token, as the tenant's portal would use).
    let batch: Vec<Value> = (0..PEOPLE)
        .flat_map(|i| {
            let member = format!("m-{i}");
            [
                json!({"type": "identify", "userId": member, "traits": {"city": city(i)}}),
                json!({"type": "track", "userId": member, "event": "Purchase",
                       "messageId": format!("seed-{i}"),
                       "properties": {"amount": 10 + i, "currency": "EUR", "order_id": format!("o-{i}")}}),
            ]
        })
        .collect();
    let answer = server.ok_call("POST", "/v1/batch", &operator, json!({ "batch": batch }));
    assert_eq!(answer["accepted"], 2 * PEOPLE, "{answer}");
    for i in 0..PEOPLE {
        let token = server.ok_call(
            "POST",
            "/v1/subject-tokens",
            &operator,
            json!({"identity": {"kind": "member_id", "value": format!("m-{i}")}}),
        )["token"]
            .as_str()
            .expect("a subject token")
            .to_owned();
        server.ok_call(
            "PUT",
            "/v1/me/consents/email_marketing",
            &token,
            json!({"granted": true}),
        );
    }
    let porto = (0..PEOPLE).filter(|&i| city(i) == "Porto").count();

    let shots = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("console-marketer.mjs"))
        .env("TESSERA_URL", &server.url)
        .env("MARKETER_TOKEN", &marketer)
        .env("PEOPLE", PEOPLE.to_string())
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOT_DIR", shots.path())
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

    let get = |path: &str| {
        let (status, answer) = server.call("GET", path, Some(&marketer), None);
        assert_eq!(status, 200, "GET {path}: {answer}");
        answer
    };

    // The positioned error the page showed is where the rule's typo is.
    let typo = result["typo"].as_str().expect("the rule with a typo");
    let shown = &result["error"];
    let (line, column) = (
        shown["line"].as_u64().unwrap(),
        shown["column"].as_u64().unwrap(),
    );
    let marked = shown["marked"].as_str().expect("the marked text");
    assert_eq!(line, 2, "the typo is on the rule's second line: {shown}");
    let typo_line = typo.lines().nth(1).expect("a second line");
    let from: String = typo_line.chars().skip(column as usize - 1).collect();
    assert!(
        from.starts_with(marked) && marked.contains("cty"),
        "the page marks the typo at its column: {shown} in {typo_line:?}"
    );
    assert!(
        shown["message"].as_str().is_some_and(|m| m.contains("cty")),
        "{shown}"
    );

    // The segment the page saved: the fixed rule, and the people it showed.
    let segment = get("/v1/segments/porto-buyers");
    assert_eq!(segment["plugin"], "rules", "{segment}");
    assert_eq!(segment["params"]["rule"], result["rule"], "{segment}");
    assert_eq!(segment["members"], porto, "{segment}");
    assert_eq!(result["preview"], porto, "the preview count: {result}");

    // The campaign the wizard made: simulated, then running with its
    // control group; the evaluation the page drew is the API's.
    let campaign = get("/v1/campaigns/porto-offers");
    assert_eq!(campaign["status"], "running", "{campaign}");
    assert_eq!(campaign["segment"], "porto-buyers");
    assert_eq!(campaign["holdout"], 0.5);
    let to: Vec<&str> = campaign["history"]
        .as_array()
        .expect("a history")
        .iter()
        .filter_map(|t| t["to"].as_str())
        .collect();
    assert_eq!(to, ["draft", "simulated", "running"], "{campaign}");
    assert_eq!(
        campaign["simulation"]["expected_treated"], result["expected_treated"],
        "{campaign}"
    );
    let evaluation = get("/v1/campaigns/porto-offers/evaluation");
    let report = &evaluation["report"];
    assert_same_estimate(&result["uplift"], &report["absolute_uplift"]);
    assert_eq!(
        report["treatment"]["subjects"].as_u64().unwrap()
            + report["control"]["subjects"].as_u64().unwrap(),
        porto as u64,
        "everyone in the segment was decided for: {evaluation}"
    );
    // Treated people bought more often in the script than control people.
    assert!(
        report["absolute_uplift"]["value"].as_f64().unwrap() > 0.0,
        "{evaluation}"
    );
    // The second campaign's forecast: the estimate replayed over the first
    // one's decisions, as drawn.
    let explore = get("/v1/campaigns/porto-offers-explore");
    assert_eq!(explore["status"], "simulated", "{explore}");
    let replayed = &explore["simulation"]["off_policy"];
    assert_eq!(replayed["logs_from"], "porto-offers", "{explore}");
    assert_same_estimate(&result["estimate"], &replayed["estimate"]["snips"]);
    let stopped = server.stop();
    assert!(stopped.success(), "{stopped:?}");
    marketer_pictures(shots.path());
}

/// The marketer pages the script pictures (its `PICTURES`), each at a
/// desktop's and a phone's width, in English.
const PICTURES: [&str; 6] = [
    "mk-segments",
    "mk-segment",
    "mk-builder",
    "mk-catalog",
    "mk-results",
    "mk-imports",
];

/// Checks the pictures the script made in `made`; with
/// `TESSERA_UPDATE_SCREENSHOTS=1` copies them over
/// `docs/screenshots/console/marketer/`. The committed set must be the
/// script's (not pixel for pixel: dates and fonts change them), and
/// `docs/console.md` must show every one.
fn marketer_pictures(made: &std::path::Path) {
    let expected: Vec<(String, u32)> = PICTURES
        .iter()
        .flat_map(|page| {
            [("desktop", 1280), ("phone", 390)]
                .map(|(kind, width)| (format!("{page}-{kind}-en.png"), width))
        })
        .collect();
    for (name, width) in &expected {
        check_picture(&made.join(name), *width);
    }
    let committed = repo_dir().join("docs/screenshots/console/marketer");
    if std::env::var("TESSERA_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&committed).unwrap();
        for entry in std::fs::read_dir(&committed).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "png") {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (name, _) in &expected {
            std::fs::copy(made.join(name), committed.join(name)).unwrap();
        }
    }
    let doc = std::fs::read_to_string(repo_dir().join("docs/console.md")).unwrap();
    for (name, width) in &expected {
        check_picture(&committed.join(name), *width);
        assert!(
            doc.contains(&format!("screenshots/console/marketer/{name}")),
            "docs/console.md does not show screenshots/console/marketer/{name}"
        );
    }
}

/// The page drew `drawn` ({value, lower, upper}) for the API's `estimate`:
/// the same numbers, up to the last bits of a float stored and read back.
fn assert_same_estimate(drawn: &Value, estimate: &Value) {
    for bound in ["value", "lower", "upper"] {
        let (page, api) = (drawn[bound].as_f64(), estimate[bound].as_f64());
        assert!(
            page.zip(api)
                .is_some_and(|(p, a)| (p - a).abs() <= 1e-12 * a.abs().max(1.0)),
            "the chart's {bound}: {drawn} against {estimate}"
        );
    }
}
