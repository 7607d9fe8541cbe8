//! A real server on 127.0.0.1:0: requests over TCP, and a graceful
//! shutdown that finishes the request in flight and leaves its events
//! durable.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{ACME, Fixture, open_vault};
use serde_json::{Value, json};
use tessera_api::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The head of an HTTP/1.1 request that closes its connection.
fn head(method: &str, path: &str, token: Option<&str>, length: usize) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n"
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads a whole answer: its status and JSON body.
async fn answer(mut stream: TcpStream) -> (u16, Value) {
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut bytes))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&bytes);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("{}{body}", head(method, path, token, body.len())).as_bytes())
        .await
        .expect("write");
    answer(stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_loopback_serves_and_finishes_in_flight_requests_on_shutdown() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera_api::serve(listener, f.state.clone(), async move {
        let _ = stopped.await;
    }));

    let (status, body) = http(addr, "GET", "/healthz", None, "").await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    let batch = json!({"batch": (0..50).map(|i| json!({
        "type": "track", "userId": format!("e2e-{}", i % 5), "event": "Served", "messageId": format!("e2e-{i}")
    })).collect::<Vec<_>>()})
    .to_string();
    let (status, body) = http(addr, "POST", "/v1/batch", Some(&key), &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events_inserted"], 50);

    // A request in flight: its head and half its body are sent, then the
    // server is told to stop, then the rest of the body follows.
    let late = json!({"batch": (0..30).map(|i| json!({
        "type": "track", "userId": "late", "event": "In Flight", "messageId": format!("late-{i}")
    })).collect::<Vec<_>>()})
    .to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let (first, rest) = late.split_at(late.len() / 2);
    stream
        .write_all(
            format!(
                "{}{first}",
                head("POST", "/v1/batch", Some(&key), late.len())
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let (status, body) = answer(stream).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events_inserted"], 30);

    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops")
        .expect("joined")
        .expect("served");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );

    // Acknowledged events are on disk: reopen the data directory.
    let Fixture {
        dir, state, app, ..
    } = f;
    drop(app);
    drop(state);
    let vault = open_vault(dir.path());
    let (people, _) = vault.people(ACME, None, 100).unwrap();
    assert_eq!(people.len(), 6);
    let events: u64 = people
        .iter()
        .flat_map(|p| p.aggregates.values())
        .map(|a| a.count)
        .sum();
    assert_eq!(events, 80);
}
