//! The deployment the decide and soak benchmarks run against: a seeded
//! population, a rules segment of buyers and a running Thompson-sampling
//! campaign on it, all set up the way an operator would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_privacy::MasterKey;
use tessera_vault::{
    Actor, Channel, ConsentChange, IdentityKind, Incoming, NewEvent, TenantSettings, Vault,
};

use crate::common::Connection;

pub const TENANT: &str = "bench";
pub const SEGMENT: &str = "buyers";
pub const CAMPAIGN: &str = "bench-offers";
pub const PURPOSE: &str = "personalization";
const DAY_MS: i64 = 86_400_000;

/// A pseudo-random 64-bit mix of `n` (splitmix64).
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Person `i` of the seeded population.
fn person(i: u64, now: i64) -> Incoming {
    let mut traits = BTreeMap::new();
    traits.insert(
        "tier".to_owned(),
        json!(["bronze", "silver", "gold"][(mix(i) % 3) as usize]),
    );
    traits.insert(
        "lifetime_value".to_owned(),
        json!((mix(i + 1) % 2_000) as f64),
    );
    // Nine in ten bought something, one to three times in the last 60 days.
    let purchases = if i % 10 == 9 { 0 } else { 1 + mix(i + 2) % 3 };
    let events = (0..purchases)
        .map(|k| NewEvent {
            source_id: Some(format!("order-{i}-{k}")),
            event_type: "purchase".into(),
            at_ms: now - (1 + (mix(i * 7 + k) % 60) as i64) * DAY_MS,
            channel: if k % 2 == 0 {
                Channel::Online
            } else {
                Channel::Offline
            },
            properties: [("amount".to_owned(), json!(10 + mix(i + k) % 190))].into(),
        })
        .collect();
    // Nine in ten consent to personalization, independently of buying.
    let consents = if i % 10 == 7 {
        Vec::new()
    } else {
        vec![ConsentChange {
            purpose: PURPOSE.into(),
            granted: true,
            method: "web_form".into(),
            given_at_ms: None,
        }]
    };
    Incoming {
        identities: vec![
            (IdentityKind::MemberId, format!("m-{i}")),
            (IdentityKind::Email, format!("p{i}@example.com")),
        ],
        traits,
        events,
        consents,
    }
}

/// Seeds the deployment in `dir` (the server's layout) before it starts.
pub fn seed(dir: &Path, key_file: &Path, people: u64) -> Result<(), String> {
    let master = MasterKey::from_file(key_file).map_err(|e| e.to_string())?;
    let vault =
        Vault::open(dir.join("data"), dir.join("keys"), master).map_err(|e| e.to_string())?;
    let actor = Actor::new("operator", "bench");
    vault
        .create_tenant(TENANT, TenantSettings::default(), &actor)
        .map_err(|e| e.to_string())?;
    let now = now_ms();
    let all: Vec<u64> = (0..people).collect();
    for chunk in all.chunks(500) {
        let items: Vec<Incoming> = chunk.iter().map(|&i| person(i, now)).collect();
        vault
            .ingest_batch(TENANT, &items, &actor)
            .map_err(|e| e.to_string())?;
    }
    vault.flush().map_err(|e| e.to_string())
}

/// A JSON call that must answer `expected`.
pub async fn call(
    connection: &mut Connection,
    method: Method,
    path: &str,
    authorization: &str,
    body: Option<Value>,
    expected: StatusCode,
) -> Result<Value, String> {
    let (status, answer) = connection
        .send(
            method.clone(),
            path,
            Some(authorization),
            body.map(|b| b.to_string()),
        )
        .await?;
    if status != expected {
        return Err(format!(
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    serde_json::from_slice(&answer).map_err(|e| format!("{method} {path}: {e}"))
}

/// A new `ingest` token (the write key) named `name`, as an Authorization
/// header value.
pub async fn write_key(
    connection: &mut Connection,
    operator: &str,
    name: &str,
) -> Result<String, String> {
    let created = call(
        connection,
        Method::POST,
        "/v1/tokens",
        operator,
        Some(json!({"role": "ingest", "name": name})),
        StatusCode::CREATED,
    )
    .await?;
    let token = created["token"].as_str().ok_or("no token was created")?;
    Ok(format!("Bearer {token}"))
}

/// The segment and the running campaign, over the API.
pub async fn set_up(address: &str, authorization: &str) -> Result<(), String> {
    let mut admin = Connection::open(address).await?;
    call(
        &mut admin,
        Method::PUT,
        &format!("/v1/segments/{SEGMENT}"),
        authorization,
        Some(json!({
            "plugin": "rules",
            "params": {"rule": "count(purchase) >= 1"},
            "purpose": PURPOSE,
            "description": "bought at least once",
        })),
        StatusCode::OK,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let segment = call(
            &mut admin,
            Method::GET,
            &format!("/v1/segments/{SEGMENT}"),
            authorization,
            None,
            StatusCode::OK,
        )
        .await?;
        if !segment["last_recompute"].is_null() {
            println!(
                "segment {SEGMENT}: {} members",
                segment["members"].as_u64().unwrap_or(0)
            );
            break;
        }
        if Instant::now() > deadline {
            return Err("the segment's recompute did not finish within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    call(
        &mut admin,
        Method::PUT,
        &format!("/v1/campaigns/{CAMPAIGN}"),
        authorization,
        Some(json!({
            "strategy": "thompson",
            "params": {},
            "segment": SEGMENT,
            "purpose": PURPOSE,
            "holdout": 0.1,
            "frequency_cap": {"max": 100, "days": 1},
            "goal": {"source": "feedback"},
            "fallback": "no_offer",
            "description": "decide benchmark",
        })),
        StatusCode::OK,
    )
    .await?;
    call(
        &mut admin,
        Method::POST,
        &format!("/v1/campaigns/{CAMPAIGN}/simulate"),
        authorization,
        None,
        StatusCode::OK,
    )
    .await?;
    call(
        &mut admin,
        Method::POST,
        &format!("/v1/campaigns/{CAMPAIGN}/status"),
        authorization,
        Some(json!({"status": "running"})),
        StatusCode::OK,
    )
    .await?;
    Ok(())
}
