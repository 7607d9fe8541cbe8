//! A destination for tests: a loopback HTTP receiver, and the first-party
//! `webhook-out` connector installed from a signed bundle and granted it.
//! Shared by the tests of segment exports and of campaign sends
//! (`host/strategies/tests`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};
use tessera_bundle::{Bundle, PublisherKey, SourceManifest};
use tessera_imports::{Deliverer, DelivererConfig, RetryPolicy};
use tessera_plugins::Registry;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig, StaticResolver};
use tessera_vault::{Actor, Vault};

/// The receiver's host name, which the runtime resolves to 127.0.0.1.
pub const RECEIVER: &str = "audiences.partner.test";

/// Bodies of the requests a loopback receiver got; it answers 200 to all.
#[derive(Default)]
pub struct Received(Mutex<Vec<Json>>);

impl Received {
    /// Every action received, in order.
    pub fn actions(&self) -> Vec<Json> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|body| body["actions"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// A plain HTTP/1.1 receiver on 127.0.0.1 that reads each request's body
/// and answers `200 {}`, on a thread of its own for the test's lifetime.
pub fn receive() -> (u16, Arc<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Received::default());
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                keep.0
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (port, received)
}

/// A registry over `vault` whose plugins' outbound calls to [`RECEIVER`]
/// reach 127.0.0.1, which it allows.
pub fn registry(vault: Arc<Vault>) -> Registry {
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        resolver: Arc::new(StaticResolver::new().with(RECEIVER, [loopback])),
        ..RuntimeConfig::default()
    })
    .unwrap();
    Registry::new(runtime, vault, false)
        .with_outbound_allowance(vec!["127.0.0.1/32".parse().unwrap()])
}

/// `webhook-out` installed in a tenant and granted a receiver of its own.
pub struct Destination {
    /// Tries each action once: a failure is a dead letter at once.
    pub deliverer: Deliverer,
    pub received: Arc<Received>,
    /// The receiver's URL, the connector's `url` parameter.
    pub url: String,
}

impl Destination {
    /// Starts a receiver and installs `webhook-out` in `tenant` of
    /// `registry` (from [`registry`]) from a signed bundle, granted the
    /// receiver, `purposes` and the PII classes `pii`.
    pub fn install(
        registry: &Registry,
        vault: &Arc<Vault>,
        tenant: &str,
        purposes: &[&str],
        pii: &[&str],
    ) -> Self {
        let operator = Actor::new("operator", "ops@acme");
        let (port, received) = receive();
        let key = PublisherKey::generate().unwrap();
        registry
            .trust(tenant, &key.public().to_string(), "Tessera", &operator)
            .unwrap();
        let source: SourceManifest = serde_json::from_value(json!({
            "publisher": "Tessera",
            "version": "0.1.0",
            "plugins": [{
                "name": "webhook-out",
                "kind": "connector",
                "wit_version": "0.1.0",
                "component": "webhook_out.wasm",
                "permissions": {
                    "outbound_hosts": [format!("http://{RECEIVER}:{port}")],
                    "purposes": purposes,
                    "pii": pii,
                },
            }]
        }))
        .unwrap();
        let mut bundle =
            Bundle::build(source, vec![tessera_guests::plugins::WEBHOOK_OUT.to_vec()]).unwrap();
        bundle.sign(&key);
        registry
            .install(tenant, &bundle.to_bytes(), false, &operator)
            .unwrap();
        registry
            .approve(tenant, "webhook-out", None, None, &operator)
            .unwrap();
        let deliverer =
            Deliverer::new(registry.clone(), vault.clone()).with_config(DelivererConfig {
                retry: RetryPolicy {
                    max_attempts: 1,
                    ..RetryPolicy::default()
                },
                ..DelivererConfig::default()
            });
        Destination {
            deliverer,
            received,
            url: format!("http://{RECEIVER}:{port}/audience"),
        }
    }

    /// The connector's parameters: the receiver's URL.
    pub fn params(&self) -> Vec<FieldValue> {
        vec![FieldValue {
            name: "url".into(),
            value: Value::Text(self.url.clone()),
        }]
    }
}
