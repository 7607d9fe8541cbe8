//! Deliveries end to end: the first-party `webhook-out` connector installed
//! from a signed bundle through the registry and granted one receiver, a
//! loopback HTTP receiver (axum on 127.0.0.1) that answers as each test
//! scripts it, a real vault on sled, and a sleeper that records the backoff
//! waits instead of sleeping.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use tessera_bundle::{Bundle, PublisherKey, SourceManifest};
use tessera_imports::{
    Deliverer, DelivererConfig, DeliveryError, DeliveryRun, DeliverySpec, DeliveryStatus,
    LetterState, ParamValue, RetryPolicy, Sleeper,
};
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::records::Action;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig, StaticResolver};
use tessera_vault::{Actor, TenantSettings, Vault};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
const NOW_MS: i64 = 1_780_272_000_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// The receiver's name, and a name the connector is not granted; both
/// resolve to the loopback receiver, so only the grant tells them apart.
const GRANTED: &str = "hooks.partner.test";
const UNGRANTED: &str = "evil.partner.test";

fn operator() -> Actor {
    Actor::new("operator", "tok-ops")
}

/// Records the backoff waits instead of sleeping.
#[derive(Debug, Default)]
struct Waits(Mutex<Vec<Duration>>);

impl Sleeper for Waits {
    fn sleep(&self, delay: Duration) {
        self.0.lock().unwrap().push(delay);
    }
}

impl Waits {
    fn recorded(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

/// The loopback webhook receiver.
#[derive(Debug, Default)]
struct Receiver {
    /// Statuses to answer first, in order; then `then`.
    script: Mutex<VecDeque<u16>>,
    then: AtomicU16,
    requests: AtomicUsize,
    /// Delivery ids of requests answered 2xx, with how often each came.
    accepted: Mutex<BTreeMap<String, u32>>,
    /// The Idempotency-Key of every request.
    keys: Mutex<Vec<String>>,
}

impl Receiver {
    fn answering(script: &[u16], then: u16) -> Arc<Self> {
        let receiver = Receiver::default();
        receiver.script.lock().unwrap().extend(script);
        receiver.then.store(then, Ordering::SeqCst);
        Arc::new(receiver)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn accepted(&self) -> BTreeMap<String, u32> {
        self.accepted.lock().unwrap().clone()
    }
}

async fn hook(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    receiver.requests.fetch_add(1, Ordering::SeqCst);
    let status = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| receiver.then.load(Ordering::SeqCst));
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        receiver.keys.lock().unwrap().push(key.to_string());
    }
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let ids: Vec<String> = payload["actions"]
        .as_array()
        .map(|actions| {
            actions
                .iter()
                .filter_map(|a| a["delivery_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if (200..300).contains(&status) {
        let mut accepted = receiver.accepted.lock().unwrap();
        for id in ids {
            *accepted.entry(id).or_default() += 1;
        }
    }
    let reply = match status {
        400 => r#"{"error": "unknown action \"coupon\""}"#,
        500 => r#"{"error": "database unavailable"}"#,
        _ => "{}",
    };
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        reply.to_string(),
    )
}

/// The receiver, served on 127.0.0.1 until dropped.
struct Server {
    _runtime: tokio::runtime::Runtime,
    port: u16,
    receiver: Arc<Receiver>,
}

fn serve(receiver: Arc<Receiver>) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });
    Server {
        _runtime: runtime,
        port,
        receiver,
    }
}

/// A port nothing listens on.
/// A loopback port that refuses connections and stays refused for as long
/// as the returned socket lives: it is bound, so no other test's server can
/// take the port, but it never listens.
fn closed_port() -> (socket2::Socket, u16) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}

struct Fixture {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    deliverer: Deliverer,
    waits: Arc<Waits>,
    /// Added to the vault's clock.
    skew: Arc<AtomicI64>,
}

const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_millis(500),
};

impl Fixture {
    /// The `webhook-out` connector, installed from a signed bundle that asks
    /// for plain HTTP to `hooks.partner.test` on `port`, approved as asked.
    fn new(port: u16, policy: RetryPolicy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let skew = Arc::new(AtomicI64::new(0));
        let vault = Arc::new(
            Vault::open(
                dir.path().join("data"),
                dir.path().join("keys"),
                MasterKey::generate().unwrap(),
            )
            .unwrap()
            .with_clock({
                let ticks = Arc::new(AtomicI64::new(0));
                let skew = skew.clone();
                Arc::new(move || {
                    NOW_MS + skew.load(Ordering::SeqCst) + ticks.fetch_add(1, Ordering::SeqCst)
                })
            }),
        );
        vault
            .create_tenant(TENANT, TenantSettings::default(), &operator())
            .unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let runtime = Runtime::new(RuntimeConfig {
            resolver: Arc::new(
                StaticResolver::new()
                    .with(GRANTED, [loopback])
                    .with(UNGRANTED, [loopback]),
            ),
            ..RuntimeConfig::default()
        })
        .unwrap();
        let registry = Registry::new(runtime, vault.clone(), false)
            .with_outbound_allowance(vec!["127.0.0.1/32".parse().unwrap()]);
        let key = PublisherKey::generate().unwrap();
        registry
            .trust(TENANT, &key.public().to_string(), "Tessera", &operator())
            .unwrap();
        let source: SourceManifest = serde_json::from_value(serde_json::json!({
            "publisher": "Tessera",
            "version": "0.1.0",
            "plugins": [{
                "name": "webhook-out",
                "kind": "connector",
                "wit_version": "0.1.0",
                "component": "webhook_out.wasm",
                "permissions": { "outbound_hosts": [format!("http://{GRANTED}:{port}")] },
            }]
        }))
        .unwrap();
        let mut bundle =
            Bundle::build(source, vec![tessera_guests::plugins::WEBHOOK_OUT.to_vec()]).unwrap();
        bundle.sign(&key);
        registry
            .install(TENANT, &bundle.to_bytes(), false, &operator())
            .unwrap();
        registry
            .approve(TENANT, "webhook-out", None, None, &operator())
            .unwrap();
        let waits = Arc::new(Waits::default());
        let deliverer = Deliverer::new(registry, vault.clone())
            .with_config(DelivererConfig {
                retry: policy,
                ..DelivererConfig::default()
            })
            .with_sleeper(waits.clone());
        Fixture {
            _dir: dir,
            vault,
            deliverer,
            waits,
            skew,
        }
    }

    fn deliver(&self, url: &str, actions: Vec<Action>) -> DeliveryRun {
        self.deliverer
            .deliver(TENANT, spec(url), actions, &operator())
            .unwrap_or_else(|e| panic!("the delivery failed: {e}"))
    }

    fn letter_ids(&self, run: &str) -> Vec<String> {
        self.deliverer
            .dead_letters(TENANT, run, None, 1000)
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect()
    }

    fn audited(&self, action: &str) -> Vec<String> {
        self.vault
            .audit_entries(TENANT, 0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action)
            .map(|e| e.detail.unwrap_or_default())
            .collect()
    }
}

fn spec(url: &str) -> DeliverySpec {
    DeliverySpec {
        connector: "webhook-out".into(),
        params: vec![
            FieldValue {
                name: "url".into(),
                value: Value::Text(url.into()),
            },
            FieldValue {
                name: "batch_size".into(),
                value: Value::Integer(2),
            },
        ],
        source: "spring-coupons".into(),
    }
}

fn url(host: &str, port: u16) -> String {
    format!("http://{host}:{port}/hook?token=s3cret")
}

/// `n` coupon actions for members M-0…, delivery ids `d-0`….
fn actions(n: usize) -> Vec<Action> {
    (0..n)
        .map(|i| Action {
            delivery_id: format!("d-{i}"),
            recipient: format!("M-{i:04}"),
            action: "coupon".into(),
            attributes: vec![FieldValue {
                name: "amount".into(),
                value: Value::Number(5.0),
            }],
        })
        .collect()
}

fn ids(n: usize) -> BTreeMap<String, u32> {
    (0..n).map(|i| (format!("d-{i}"), 1)).collect()
}

/// Every wait is at most its retry's ceiling, min(max, base × 2^(n−1)).
fn assert_within_policy(waits: &[Duration], policy: RetryPolicy) {
    for (i, wait) in waits.iter().enumerate() {
        let ceiling = policy
            .base_delay
            .saturating_mul(1 << i)
            .min(policy.max_delay);
        assert!(
            *wait <= ceiling,
            "wait {} of {wait:?} is over {ceiling:?}",
            i + 1
        );
    }
}

#[test]
fn a_receiver_that_recovers_gets_every_action_after_increasing_backoff_waits() {
    let server = serve(Receiver::answering(&[503, 503], 200));
    // A fixed jitter fraction makes the full-jitter waits comparable: each
    // is the same share of its ceiling, which doubles until the cap.
    let policy = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
    };
    let mut f = Fixture::new(server.port, policy);
    f.deliverer = f.deliverer.clone().with_jitter(|| 0.75);

    // One action: one request per attempt.
    let run = f.deliver(&url(GRANTED, server.port), actions(1));
    assert_eq!(run.status, DeliveryStatus::Completed);
    let r = &run.report;
    assert_eq!((r.actions, r.delivered, r.attempts), (1, 1, 3));
    assert_eq!(r.retried, 2);
    assert_eq!(
        (r.failed_retryable, r.failed_permanent, r.dead_letters),
        (0, 0, 0)
    );
    assert_eq!(r.connector.calls, 3);
    assert_eq!(server.receiver.requests(), 3);
    assert_eq!(server.receiver.accepted(), ids(1));

    let waits = f.waits.recorded();
    assert_eq!(
        waits,
        [Duration::from_millis(75), Duration::from_millis(150)]
    );
    assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
    assert_within_policy(&waits, policy);
    // The same request each time, so the same key.
    let keys = server.receiver.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| k == &keys[0] && k.len() == 64),
        "{keys:?}"
    );

    assert!(f.letter_ids(&run.id).is_empty());
    assert_eq!(
        f.deliverer.runs(TENANT).unwrap(),
        std::slice::from_ref(&run)
    );
    let audited = f.audited("delivery.run");
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].contains("1 delivered in 3 attempts (2 retried)"),
        "{}",
        audited[0]
    );
}

#[test]
fn actions_a_failing_receiver_never_takes_are_dead_letters_and_a_replay_delivers_each_once() {
    let server = serve(Receiver::answering(&[], 500));
    let f = Fixture::new(server.port, POLICY);

    // Five actions, two per request: three requests per attempt.
    let run = f.deliver(&url(GRANTED, server.port), actions(5));
    assert_eq!(run.status, DeliveryStatus::Completed);
    let r = &run.report;
    assert_eq!((r.delivered, r.attempts, r.retried), (0, 4, 15));
    assert_eq!(
        (r.failed_retryable, r.failed_permanent, r.dead_letters),
        (5, 0, 5)
    );
    assert_eq!(server.receiver.requests(), 12);
    assert!(server.receiver.accepted().is_empty());
    let waits = f.waits.recorded();
    assert_eq!(waits.len(), 3, "one wait before each retry");
    assert_within_policy(&waits, POLICY);

    let letters = f
        .deliverer
        .dead_letters(TENANT, &run.id, None, 100)
        .unwrap();
    assert_eq!(letters.len(), 5);
    for (i, letter) in letters.iter().enumerate() {
        assert_eq!(letter.id, format!("{}:{i:08}", run.id));
        assert_eq!(letter.delivery_id, format!("d-{i}"));
        assert_eq!((letter.state, letter.attempts), (LetterState::Open, 4));
        assert!(letter.retryable);
        assert_eq!(
            letter.reason,
            format!(
                "the receiver at http://{GRANTED}:{}/hook answered HTTP 500: {{\"error\": \
                 \"database unavailable\"}}",
                server.port
            )
        );
        assert!(letter.expires_at_ms >= NOW_MS + 30 * DAY_MS);
    }

    // The content is the operator's to read, and the read is audited.
    let letter = f
        .deliverer
        .dead_letter(TENANT, &run.id, &letters[3].id, &operator())
        .unwrap();
    assert_eq!(letter.action.recipient, "M-0003");
    assert_eq!(
        letter.action.attributes,
        [("amount".to_string(), ParamValue::Number(5.0))]
    );
    assert_eq!(letter.connector, "webhook-out");
    assert!(
        letter
            .params
            .contains(&("url".into(), ParamValue::Text(url(GRANTED, server.port))))
    );
    assert_eq!(f.audited("delivery.dead_letter.read").len(), 1);
    // Sealed: the store holds no recipient in clear.
    let stored = f
        .vault
        .store()
        .documents(TENANT, "delivery_letter", None, 100)
        .unwrap();
    assert_eq!(stored.len(), 5);
    assert!(
        stored
            .iter()
            .all(|(_, bytes)| !bytes.windows(6).any(|w| w == b"M-0003"))
    );

    // The receiver recovers; replaying delivers every letter once.
    server.receiver.then.store(200, Ordering::SeqCst);
    let all = f.letter_ids(&run.id);
    let mut asked = all.clone();
    asked.push(all[0].clone());
    asked.push(format!("{}:99999999", run.id));
    let replayed = f
        .deliverer
        .replay(TENANT, &run.id, &asked, &operator())
        .unwrap();
    assert_eq!(
        (replayed.delivered, replayed.failed, replayed.unknown),
        (5, 0, 1)
    );
    assert_eq!(server.receiver.accepted(), ids(5));
    let requests = server.receiver.requests();
    for letter in f
        .deliverer
        .dead_letters(TENANT, &run.id, None, 100)
        .unwrap()
    {
        assert_eq!((letter.state, letter.attempts), (LetterState::Replayed, 5));
    }

    // A second replay sends nothing.
    let again = f
        .deliverer
        .replay(TENANT, &run.id, &all, &operator())
        .unwrap();
    assert_eq!((again.delivered, again.already_replayed), (0, 5));
    assert_eq!(again.connector.calls, 0);
    assert_eq!(server.receiver.requests(), requests);
    assert_eq!(server.receiver.accepted(), ids(5));
    assert_eq!(f.audited("delivery.replay").len(), 2);

    // Letters expire: the purge removes them after 30 days, not before.
    assert_eq!(f.deliverer.purge_dead_letters(TENANT).unwrap().expired, 0);
    f.skew.store(31 * DAY_MS, Ordering::SeqCst);
    assert_eq!(f.deliverer.purge_dead_letters(TENANT).unwrap().expired, 5);
    assert!(f.letter_ids(&run.id).is_empty());
    assert_eq!(f.audited("delivery.dead_letter.purge").len(), 1);
}

#[test]
fn a_refusal_by_the_receiver_is_not_retried_and_is_dead_lettered_with_its_reason() {
    let server = serve(Receiver::answering(&[], 400));
    let f = Fixture::new(server.port, POLICY);

    let run = f.deliver(&url(GRANTED, server.port), actions(3));
    let r = &run.report;
    assert_eq!((r.delivered, r.attempts, r.retried), (0, 1, 0));
    assert_eq!(
        (r.failed_retryable, r.failed_permanent, r.dead_letters),
        (0, 3, 3)
    );
    assert_eq!(server.receiver.requests(), 2, "one attempt, two requests");
    assert!(f.waits.recorded().is_empty(), "nothing waited for a retry");

    let letters = f
        .deliverer
        .dead_letters(TENANT, &run.id, None, 100)
        .unwrap();
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert!(!letter.retryable);
        assert_eq!(letter.attempts, 1);
        assert_eq!(
            letter.reason,
            format!(
                "the receiver at http://{GRANTED}:{}/hook answered HTTP 400: {{\"error\": \
                 \"unknown action \\\"coupon\\\"\"}}",
                server.port
            )
        );
        assert!(!letter.reason.contains("s3cret"), "the query stays out");
    }
}

#[test]
fn a_receiver_that_is_down_is_retried_then_dead_lettered() {
    let (_reserved, port) = closed_port();
    let f = Fixture::new(port, POLICY);

    let run = f.deliver(&url(GRANTED, port), actions(2));
    let r = &run.report;
    assert_eq!((r.delivered, r.attempts, r.retried), (0, 4, 6));
    assert_eq!((r.failed_retryable, r.dead_letters), (2, 2));
    let waits = f.waits.recorded();
    assert_eq!(waits.len(), 3);
    assert_within_policy(&waits, POLICY);
    for letter in f
        .deliverer
        .dead_letters(TENANT, &run.id, None, 100)
        .unwrap()
    {
        assert!(letter.retryable);
        assert_eq!(letter.attempts, 4);
        assert!(
            letter.reason.starts_with(&format!(
                "the request to http://{GRANTED}:{port}/hook failed: request to {GRANTED} failed"
            )),
            "{}",
            letter.reason
        );
    }
}

#[test]
fn a_host_not_granted_is_refused_by_the_host_and_no_request_reaches_it() {
    let server = serve(Receiver::answering(&[], 200));
    let f = Fixture::new(server.port, POLICY);

    // The ungranted name resolves to the very same receiver.
    let run = f.deliver(&url(UNGRANTED, server.port), actions(3));
    let r = &run.report;
    assert_eq!((r.delivered, r.attempts), (0, 1));
    assert_eq!((r.failed_permanent, r.dead_letters), (3, 3));
    assert_eq!(server.receiver.requests(), 0);
    assert!(f.waits.recorded().is_empty());
    for letter in f
        .deliverer
        .dead_letters(TENANT, &run.id, None, 100)
        .unwrap()
    {
        assert!(!letter.retryable);
        assert!(
            letter.reason.contains(&format!(
                "outbound request refused: host {UNGRANTED} is not granted"
            )),
            "{}",
            letter.reason
        );
    }

    // The granted name is served by the same deliverer.
    let served = f.deliver(&url(GRANTED, server.port), actions(3));
    assert_eq!(served.report.delivered, 3);
    assert_eq!(server.receiver.accepted(), ids(3));
}

#[test]
fn a_delivery_is_refused_before_anything_is_sent_when_its_input_is_wrong() {
    let server = serve(Receiver::answering(&[], 200));
    let f = Fixture::new(server.port, POLICY);
    let deliver = |url: &str, actions: Vec<Action>| {
        f.deliverer
            .deliver(TENANT, spec(url), actions, &operator())
            .unwrap_err()
    };

    let mut twice = actions(3);
    twice[2].delivery_id = "d-0".into();
    match deliver(&url(GRANTED, server.port), twice) {
        DeliveryError::InvalidAction { index: 2, reason } => {
            assert!(reason.contains("\"d-0\""), "{reason}")
        }
        other => panic!("expected a refused action, got {other}"),
    }
    match deliver("ftp://hooks.partner.test/", actions(1)) {
        DeliveryError::Params(message) => assert!(message.contains("`url`"), "{message}"),
        other => panic!("expected refused parameters, got {other}"),
    }
    match f.deliverer.deliver(
        TENANT,
        DeliverySpec {
            connector: "missing".into(),
            ..spec(&url(GRANTED, server.port))
        },
        actions(1),
        &operator(),
    ) {
        Err(DeliveryError::Connector(_)) => {}
        other => panic!("expected an unknown connector, got {other:?}"),
    }
    assert_eq!(server.receiver.requests(), 0);
    assert!(f.deliverer.runs(TENANT).unwrap().is_empty());
}

/// A process that dies in the middle of a run: the first backoff wait
/// never returns.
#[derive(Debug)]
struct Crash;

impl Sleeper for Crash {
    fn sleep(&self, _: Duration) {
        panic!("the process stopped");
    }
}

#[test]
fn a_run_a_crash_cut_off_leaves_its_actions_as_dead_letters_to_replay() {
    let server = serve(Receiver::answering(&[], 503));
    let f = Fixture::new(server.port, POLICY);
    let dying = f.deliverer.clone().with_sleeper(Arc::new(Crash));
    let address = url(GRANTED, server.port);
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dying.deliver(TENANT, spec(&address), actions(3), &operator())
    }));
    assert!(crashed.is_err(), "the run stopped in its backoff wait");
    let runs = f.deliverer.runs(TENANT).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, DeliveryStatus::Running);
    assert_eq!(runs[0].pending.len(), 3, "the actions were stored first");

    // The next start ends the run; its actions are dead letters.
    assert_eq!(f.deliverer.fail_interrupted(TENANT).unwrap(), 1);
    let run = f.deliverer.run(TENANT, &runs[0].id).unwrap();
    assert_eq!(run.status, DeliveryStatus::Failed);
    assert!(run.pending.is_empty());
    assert_eq!(run.report.dead_letters, 3);
    let letters = f.letter_ids(&run.id);
    assert_eq!(letters.len(), 3);
    assert_eq!(f.deliverer.fail_interrupted(TENANT).unwrap(), 0, "once");

    // The receiver recovers: a replay delivers each action once.
    server.receiver.then.store(200, Ordering::SeqCst);
    let replay = f
        .deliverer
        .replay(TENANT, &run.id, &letters, &operator())
        .unwrap();
    assert_eq!(replay.delivered, 3);
    assert_eq!(server.receiver.accepted(), ids(3));
}
