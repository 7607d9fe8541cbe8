//! Outbound HTTP from connectors: a real server on 127.0.0.1, partner names
//! pinned by a static resolver, and one connector (`http-fetch`) that sends
//! whatever the test asks. Each refusal is proven twice: the plugin gets the
//! error, and the server never saw the request.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tessera_runtime::api::records::Record;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{
    CallError, InstallError, Limits, Outbound, Plugin, PluginError, PluginKind, Resolve, Runtime,
    RuntimeConfig, StaticResolver, TrapReason, TrustedRoots,
};
use tessera_tests::{param, program, request, test_programs as guests};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// Partner names as the tests' resolver answers them.
fn partner_names() -> StaticResolver {
    StaticResolver::new()
        .with("api.partner.test", [ip("127.0.0.1")])
        .with("other.partner.test", [ip("127.0.0.1")])
        .with("meta.partner.test", [ip("169.254.169.254")])
        .with("internal.partner.test", [ip("10.0.0.7")])
        .with("split.partner.test", [ip("127.0.0.1"), ip("10.0.0.7")])
        // Ungranted, yet it would reach the test server: only the grant stops it.
        .with("evil.example", [ip("127.0.0.1")])
}

fn runtime() -> Runtime {
    runtime_trusting(TrustedRoots::default())
}

/// The runtime whose connectors' HTTPS trusts `roots`.
fn runtime_trusting(outbound_roots: TrustedRoots) -> Runtime {
    Runtime::new(RuntimeConfig {
        concurrent_calls: 8,
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        resolver: Arc::new(partner_names()),
        outbound_roots,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// An outbound grant of `hosts`, with the given allowances.
fn grant(hosts: &[String], allow: &[&str]) -> Outbound {
    Outbound {
        hosts: hosts
            .iter()
            .map(|h| h.parse().expect("grantable"))
            .collect(),
        allow: allow.iter().map(|a| a.parse().expect("a range")).collect(),
        ..Outbound::default()
    }
}

/// The test's loopback server, allowed: what most tests grant besides the
/// host under test, so they can show the plugin is still served.
const LOOPBACK: &str = "127.0.0.1/32";

fn connector(runtime: &Runtime, outbound: Outbound) -> Plugin {
    let mut req = request(PluginKind::Connector, Limits::default());
    req.grants.outbound = Some(outbound);
    runtime
        .install(&program(guests::HTTP_FETCH), req)
        .unwrap_or_else(|e| panic!("install failed: {e}"))
}

/// A served request: status and body as the plugin saw them.
#[derive(Debug, PartialEq)]
struct Fetched {
    status: i64,
    body: String,
}

fn fetch(plugin: &Plugin, url: &str, params: &[FieldValue]) -> Result<Fetched, CallError> {
    let called = plugin.parse(params, url.as_bytes())?;
    let Some(Record::Event(event)) = called.value.records.first() else {
        panic!("the connector returns one event per response");
    };
    let property = |name: &str| {
        event
            .properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.clone())
    };
    match (property("status"), property("body")) {
        (Some(Value::Integer(status)), Some(Value::Text(body))) => Ok(Fetched { status, body }),
        other => panic!("unexpected properties {other:?}"),
    }
}

/// The message of the `unavailable` error the plugin passed through.
fn unavailable(result: Result<Fetched, CallError>) -> String {
    match result {
        Err(CallError::Plugin {
            error: PluginError::Unavailable(message),
            ..
        }) => message,
        other => panic!("expected the request to be unavailable, got {other:?}"),
    }
}

/// Runs `f` on a thread and fails the test if it does not return within a
/// minute: a request that hangs must fail the test, not stall the suite.
fn returns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the call returns instead of hanging")
}

/// What the test server does with a request.
#[derive(Debug, Clone)]
enum Reply {
    Body(&'static str),
    /// This many bytes without a Content-Length: only reading shows the size.
    Unsized(usize),
    Redirect(String),
    /// Reads the request and never answers.
    Stall,
}

/// A request the server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that records what it receives. It
/// stops when dropped, and by itself after a minute.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(route: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Server {
        Server::start_with(None, route)
    }

    /// The server speaking TLS with `tls`. A connection that does not open
    /// with a TLS handshake is recorded as a request whose method is
    /// `PLAIN`, and not answered.
    fn start_tls(
        tls: Arc<rustls::ServerConfig>,
        route: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Server::start_with(Some(tls), route)
    }

    fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        route: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let route = Arc::new(route);
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (seen, stop, route) = (seen.clone(), stop.clone(), route.clone());
                            let tls = tls.clone();
                            std::thread::spawn(move || match tls {
                                Some(tls) => serve_tls(stream, tls, &seen, &stop, &*route),
                                None => serve(stream, &seen, &stop, &*route),
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Server {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
    route: &(dyn Fn(&Seen) -> Reply + Send + Sync),
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    answer(stream, seen, stop, route);
}

fn serve_tls(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
    route: &(dyn Fn(&Seen) -> Reply + Send + Sync),
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut first = [0u8; 1];
    match stream.peek(&mut first) {
        // A TLS connection opens with a handshake record (type 22).
        Ok(1) if first[0] == 0x16 => {}
        Ok(1) => {
            seen.lock().expect("lock").push(Seen {
                method: "PLAIN".into(),
                path: String::new(),
                headers: Vec::new(),
                body: Vec::new(),
            });
            return;
        }
        _ => return,
    }
    let Ok(connection) = rustls::ServerConnection::new(tls) else {
        return;
    };
    // A failed handshake fails the first read: nothing is recorded.
    answer(
        rustls::StreamOwned::new(connection, stream),
        seen,
        stop,
        route,
    );
}

fn answer(
    mut stream: impl Read + Write,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
    route: &(dyn Fn(&Seen) -> Reply + Send + Sync),
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 && buf.len() < 64 << 10 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
        // Not HTTP (a TLS handshake): answer with something no client accepts.
        if !buf[0].is_ascii_uppercase() {
            let _ = stream.write_all(b"not TLS\r\n");
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let (method, path) = (
        request_line.next().unwrap_or("").to_string(),
        request_line.next().unwrap_or("").to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut request = Seen {
        method,
        path,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => request.body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let reply = route(&request);
    seen.lock().expect("lock").push(request);
    let _ = match reply {
        Reply::Body(body) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Reply::Unsized(size) => stream
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .and_then(|()| stream.write_all(&vec![b'x'; size])),
        Reply::Redirect(location) => write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Stall => {
            let until = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
    };
    let _ = stream.flush();
}

fn hello(_: &Seen) -> Reply {
    Reply::Body("hello from the partner")
}

/// `http://name:port`, granting plain HTTP to the test server's port.
fn plain(name: &str, server: &Server) -> String {
    format!("http://{name}:{}", server.port)
}

fn url(name: &str, server: &Server, path: &str) -> String {
    format!("http://{name}:{}{path}", server.port)
}

fn served(plugin: &Plugin, server: &Server) {
    assert_eq!(
        fetch(plugin, &url("api.partner.test", server, "/ok"), &[]).expect("served"),
        Fetched {
            status: 200,
            body: "hello from the partner".into()
        }
    );
}

#[test]
fn granted_host_on_an_allowed_address_is_served() {
    let server = Server::start(hello);
    let runtime = runtime();
    let plugin = connector(
        &runtime,
        grant(&[plain("api.partner.test", &server)], &[LOOPBACK]),
    );
    let params = [
        param("method", Value::Text("POST".into())),
        param(
            "headers",
            Value::TextList(vec!["Authorization: Bearer partner-token".into()]),
        ),
        param("body", Value::Text("{\"page\":1}".into())),
    ];
    let url = url("api.partner.test", &server, "/v1/events?page=1");
    let called = plugin.parse(&params, url.as_bytes()).expect("served");
    assert!(called.value.records.len() == 1);
    assert!(called.cost.http_bytes >= "hello from the partner".len() as u64);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/v1/events?page=1")
    );
    assert_eq!(seen[0].body, b"{\"page\":1}");
    assert_eq!(
        seen[0].header("host"),
        Some(format!("api.partner.test:{}", server.port).as_str())
    );
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer partner-token")
    );
}

#[test]
fn request_to_an_ungranted_host_is_refused_before_anything_is_sent() {
    let server = Server::start(hello);
    let runtime = runtime();
    let plugin = connector(
        &runtime,
        grant(&[plain("api.partner.test", &server)], &[LOOPBACK]),
    );
    for target in [
        url("evil.example", &server, "/steal"),
        // The right name on a port that was not granted.
        "http://api.partner.test:1/steal".to_string(),
        format!("http://127.0.0.1:{}/steal", server.port),
        format!("http://evil.example.:{}/steal", server.port),
    ] {
        let message = unavailable(fetch(&plugin, &target, &[]));
        assert!(message.contains("refused"), "{target}: {message}");
    }
    // The granted name as user info, with the request going to evil.example.
    let disguised = format!("http://api.partner.test@evil.example:{}/steal", server.port);
    match fetch(&plugin, &disguised, &[]) {
        Err(CallError::Plugin {
            error: PluginError::InvalidInput(message),
            ..
        }) => assert!(message.contains("credentials"), "{message}"),
        other => panic!("expected the disguised URL to be refused, got {other:?}"),
    }
    let message = unavailable(fetch(&plugin, &url("evil.example", &server, "/"), &[]));
    assert!(
        message.contains("host evil.example is not granted"),
        "{message}"
    );
    assert!(server.seen().is_empty(), "nothing reached the server");
    served(&plugin, &server);
}

#[test]
fn granted_host_resolving_to_the_metadata_address_is_refused() {
    let server = Server::start(hello);
    let runtime = runtime();
    let plugin = connector(
        &runtime,
        grant(
            &[
                plain("meta.partner.test", &server),
                plain("api.partner.test", &server),
            ],
            &[LOOPBACK],
        ),
    );
    let message = unavailable(fetch(
        &plugin,
        &url("meta.partner.test", &server, "/latest/meta-data/"),
        &[],
    ));
    assert!(message.contains("169.254.169.254"), "{message}");
    assert!(message.contains("metadata"), "{message}");
    served(&plugin, &server);
}

#[test]
fn granted_host_resolving_to_a_private_address_is_refused() {
    let server = Server::start(hello);
    let runtime = runtime();
    let plugin = connector(
        &runtime,
        grant(
            &[
                plain("internal.partner.test", &server),
                plain("split.partner.test", &server),
                plain("api.partner.test", &server),
            ],
            &[LOOPBACK],
        ),
    );
    let message = unavailable(fetch(
        &plugin,
        &url("internal.partner.test", &server, "/"),
        &[],
    ));
    assert!(message.contains("10.0.0.7"), "{message}");
    assert!(message.contains("private"), "{message}");
    // One internal address among allowed ones refuses the whole answer.
    let message = unavailable(fetch(
        &plugin,
        &url("split.partner.test", &server, "/"),
        &[],
    ));
    assert!(message.contains("10.0.0.7"), "{message}");
    assert!(server.seen().is_empty());
    served(&plugin, &server);
}

#[test]
fn loopback_is_refused_without_an_allowance_and_served_with_one() {
    let server = Server::start(hello);
    let runtime = runtime();
    let hosts = [plain("api.partner.test", &server)];
    let refused = connector(&runtime, grant(&hosts, &[]));
    let message = unavailable(fetch(&refused, &url("api.partner.test", &server, "/"), &[]));
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("loopback"), "{message}");
    // An allowance for another address does not cover this one.
    let elsewhere = connector(&runtime, grant(&hosts, &["127.0.0.2/32"]));
    unavailable(fetch(
        &elsewhere,
        &url("api.partner.test", &server, "/"),
        &[],
    ));
    assert!(server.seen().is_empty());

    let allowed = connector(&runtime, grant(&hosts, &[LOOPBACK]));
    served(&allowed, &server);
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn a_paused_grant_links_http_but_sends_nothing() {
    // What the host links for a plugin it is only checking (its `describe`
    // runs at install, before any approval): the import exists, and every
    // request is refused before a name is resolved or a byte sent.
    let server = Server::start(hello);
    let runtime = runtime();
    let hosts = [plain("api.partner.test", &server)];
    let paused = Outbound {
        paused: true,
        ..grant(&hosts, &[LOOPBACK])
    };
    let checking = connector(&runtime, paused);
    let message = unavailable(fetch(
        &checking,
        &url("api.partner.test", &server, "/"),
        &[],
    ));
    assert!(message.contains("until an operator approves"), "{message}");
    assert!(server.seen().is_empty());
    // The same grant, approved, is served.
    let approved = connector(&runtime, grant(&hosts, &[LOOPBACK]));
    served(&approved, &server);
}

/// A name whose answer changes after the first lookup, from the allowed
/// test server to an internal address: DNS rebinding.
#[derive(Debug, Default)]
struct Rebinding {
    lookups: AtomicUsize,
}

impl Resolve for Rebinding {
    fn resolve(&self, _host: &str, _timeout: Duration) -> std::io::Result<Vec<IpAddr>> {
        Ok(match self.lookups.fetch_add(1, Ordering::SeqCst) {
            0 => vec![ip("127.0.0.1")],
            _ => vec![ip("10.0.0.7")],
        })
    }
}

#[test]
fn the_vetted_address_is_the_one_connected_to_without_a_second_lookup() {
    let server = Server::start(hello);
    let resolver = Arc::new(Rebinding::default());
    let runtime = Runtime::new(RuntimeConfig {
        concurrent_calls: 8,
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        resolver: resolver.clone(),
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let plugin = connector(
        &runtime,
        grant(&[plain("api.partner.test", &server)], &[LOOPBACK]),
    );
    served(&plugin, &server);
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
    // The next request looks the name up again, and is refused.
    let message = unavailable(fetch(&plugin, &url("api.partner.test", &server, "/"), &[]));
    assert!(message.contains("10.0.0.7"), "{message}");
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn redirect_to_an_ungranted_host_is_refused() {
    let port = Arc::new(Mutex::new(0u16));
    let target_port = port.clone();
    let server = Server::start(move |seen| match seen.path.as_str() {
        "/ok" => Reply::Body("hello from the partner"),
        _ => Reply::Redirect(format!(
            "http://evil.example:{}/steal",
            target_port.lock().expect("lock")
        )),
    });
    *port.lock().expect("lock") = server.port;
    let runtime = runtime();
    let plugin = connector(
        &runtime,
        grant(&[plain("api.partner.test", &server)], &[LOOPBACK]),
    );
    let message = unavailable(fetch(
        &plugin,
        &url("api.partner.test", &server, "/start"),
        &[],
    ));
    assert!(
        message.contains("host evil.example is not granted"),
        "{message}"
    );
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/start"], "the redirect was not followed");
    served(&plugin, &server);
}

#[test]
fn redirect_to_a_granted_host_is_followed_without_the_first_hosts_credentials() {
    let port = Arc::new(Mutex::new(0u16));
    let target_port = port.clone();
    let server = Server::start(move |seen| match seen.path.as_str() {
        "/start" => Reply::Redirect(format!(
            "http://other.partner.test:{}/next",
            target_port.lock().expect("lock")
        )),
        _ => Reply::Body("hello from the other partner"),
    });
    *port.lock().expect("lock") = server.port;
    let runtime = runtime();
    let plugin = connector(
        &runtime,
        grant(
            &[
                plain("api.partner.test", &server),
                plain("other.partner.test", &server),
            ],
            &[LOOPBACK],
        ),
    );
    let params = [param(
        "headers",
        Value::TextList(vec!["Authorization: Bearer for-api-only".into()]),
    )];
    let fetched = fetch(
        &plugin,
        &url("api.partner.test", &server, "/start"),
        &params,
    )
    .expect("the redirect is followed");
    assert_eq!(
        fetched,
        Fetched {
            status: 200,
            body: "hello from the other partner".into()
        }
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("authorization"), Some("Bearer for-api-only"));
    assert_eq!(
        seen[1].header("host"),
        Some(format!("other.partner.test:{}", server.port).as_str())
    );
    assert_eq!(seen[1].header("authorization"), None);
}

#[test]
fn redirect_loops_stop_at_the_granted_number_of_redirects() {
    let server = Server::start(|seen| Reply::Redirect(format!("{}x", seen.path)));
    let runtime = runtime();
    let mut outbound = grant(&[plain("api.partner.test", &server)], &[LOOPBACK]);
    outbound.max_redirects = 3;
    let plugin = connector(&runtime, outbound);
    let message = unavailable(fetch(&plugin, &url("api.partner.test", &server, "/"), &[]));
    assert!(message.contains("more than 3"), "{message}");
    assert_eq!(
        server.seen().len(),
        4,
        "the first request and three redirects"
    );
}

#[test]
fn response_larger_than_the_cap_fails() {
    let server = Server::start(|seen| match seen.path.as_str() {
        "/ok" => Reply::Body("hello from the partner"),
        _ => Reply::Unsized(64 << 10),
    });
    let runtime = runtime();
    let mut outbound = grant(&[plain("api.partner.test", &server)], &[LOOPBACK]);
    outbound.max_response_bytes = 1024;
    let plugin = connector(&runtime, outbound);
    let message = unavailable(fetch(
        &plugin,
        &url("api.partner.test", &server, "/big"),
        &[],
    ));
    assert!(
        message.contains("larger than the granted 1024"),
        "{message}"
    );
    served(&plugin, &server);
}

#[test]
fn stalled_server_times_out_within_the_grant() {
    let server = Server::start(|seen| match seen.path.as_str() {
        "/ok" => Reply::Body("hello from the partner"),
        _ => Reply::Stall,
    });
    let runtime = runtime();
    let mut outbound = grant(&[plain("api.partner.test", &server)], &[LOOPBACK]);
    outbound.timeout = Duration::from_millis(300);
    let plugin = connector(&runtime, outbound);
    let stalled = url("api.partner.test", &server, "/stall");
    let message = returns({
        let plugin = plugin.clone();
        move || unavailable(fetch(&plugin, &stalled, &[]))
    });
    assert!(message.contains("timeout"), "{message}");
    served(&plugin, &server);
}

#[test]
fn stalled_request_ends_with_the_plugin_calls_own_time_limit() {
    let server = Server::start(|_| Reply::Stall);
    let runtime = runtime();
    // The grant would wait ten seconds; the call has half a second.
    let outbound = grant(&[plain("api.partner.test", &server)], &[LOOPBACK]);
    let mut req = request(
        PluginKind::Connector,
        Limits {
            time_base: Duration::from_millis(500),
            ..Limits::default()
        },
    );
    req.grants.outbound = Some(outbound);
    let plugin = runtime
        .install(&program(guests::HTTP_FETCH), req)
        .expect("installs");
    let stalled = url("api.partner.test", &server, "/stall");
    let result = returns(move || fetch(&plugin, &stalled, &[]));
    // The request fails when the call's time is up, and the guest is stopped
    // when it resumes past its deadline.
    match result {
        Err(CallError::Trap {
            reason: TrapReason::Timeout { .. },
            ..
        }) => {}
        Err(CallError::Plugin {
            error: PluginError::Unavailable(message),
            ..
        }) => assert!(message.contains("timeout"), "{message}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn plain_http_to_a_host_granted_over_https_is_refused() {
    let server = Server::start(hello);
    let runtime = runtime();
    let secure = format!("api.partner.test:{}", server.port);
    let plugin = connector(&runtime, grant(&[secure], &[LOOPBACK]));
    let message = unavailable(fetch(&plugin, &url("api.partner.test", &server, "/"), &[]));
    assert!(message.contains("https only"), "{message}");
    assert!(server.seen().is_empty());
}

#[test]
fn https_requires_a_verified_tls_server() {
    let server = Server::start(hello);
    let runtime = runtime();
    let secure = format!("api.partner.test:{}", server.port);
    let plugin = connector(&runtime, grant(&[secure], &[LOOPBACK]));
    // The test server speaks plain HTTP: the TLS handshake cannot succeed,
    // and nothing falls back to plain HTTP.
    let target = format!("https://api.partner.test:{}/", server.port);
    let message = unavailable(fetch(&plugin, &target, &[]));
    assert!(message.contains("api.partner.test"), "{message}");
    assert!(
        !message.contains("refused"),
        "the request was allowed: {message}"
    );
    assert!(
        server.seen().is_empty(),
        "no HTTP request was sent in clear"
    );
}

/// A partner's private CA and a TLS server configuration whose certificate
/// it issued for `api.partner.test`: (CA certificate PEM, configuration).
fn partner_tls() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Partner private CA");
    let ca_cert = ca.self_signed(&ca_key).expect("a CA");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("a key");
    let leaf = CertificateParams::new(vec!["api.partner.test".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("a certificate");
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("a key");
    #[allow(deprecated)] // ring, as the host uses; see host/api/src/tls.rs
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("a server configuration");
    (ca_cert.pem(), Arc::new(config))
}

fn secure_hello(seen: &Seen) -> Reply {
    match seen.path.as_str() {
        "/downgrade" => Reply::Redirect(seen.header("x-to").unwrap_or("").to_string()),
        _ => Reply::Body("hello over TLS"),
    }
}

#[test]
fn https_to_a_certificate_of_an_untrusted_ca_fails_by_name_and_never_falls_back_to_plain_http() {
    let (ca, tls) = partner_tls();
    let server = Server::start_tls(tls, secure_hello);
    let target = format!("https://api.partner.test:{}/", server.port);
    let granted = || grant(&[format!("api.partner.test:{}", server.port)], &[LOOPBACK]);

    // Mozilla's roots: the partner's private CA is unknown.
    let runtime = runtime();
    let plugin = connector(&runtime, granted());
    let message = unavailable(fetch(&plugin, &target, &[]));
    assert!(
        message.contains("api.partner.test")
            && message.contains("certificate was rejected")
            && message.contains("UnknownIssuer")
            && message.contains("outbound_ca_file"),
        "{message}"
    );
    assert!(
        server.seen().is_empty(),
        "nothing was sent, in TLS or in clear: {:?}",
        server.seen()
    );

    // The operator's bundle names the CA: the same request is served.
    let roots = TrustedRoots::from_pem(ca.as_bytes(), "the test CA").expect("a bundle");
    let runtime = runtime_trusting(roots);
    let plugin = connector(&runtime, granted());
    assert_eq!(
        fetch(&plugin, &target, &[]).expect("served"),
        Fetched {
            status: 200,
            body: "hello over TLS".into()
        }
    );
    assert_eq!(server.seen().len(), 1);

    // Trusting the CA does not trust the certificate for another name.
    let other = format!("other.partner.test:{}", server.port);
    let plugin = connector(&runtime, grant(std::slice::from_ref(&other), &[LOOPBACK]));
    let message = unavailable(fetch(&plugin, &format!("https://{other}/"), &[]));
    assert!(
        message.contains("certificate was rejected") && message.contains("not valid for name"),
        "{message}"
    );

    // A granted https host that redirects to plain http is not followed,
    // even to a host that speaks it: the plain server gets nothing.
    let plain_server = Server::start(hello);
    let plugin = connector(&runtime, granted());
    let downgrade = format!("http://api.partner.test:{}/", plain_server.port);
    let params = [param(
        "headers",
        Value::TextList(vec![format!("x-to: {downgrade}")]),
    )];
    let message = unavailable(fetch(
        &plugin,
        &format!("https://api.partner.test:{}/downgrade", server.port),
        &params,
    ));
    assert!(message.contains("plain http"), "{message}");
    assert!(plain_server.seen().is_empty(), "{:?}", plain_server.seen());
    assert!(
        server.seen().iter().all(|s| s.method != "PLAIN"),
        "no plain HTTP reached the TLS port: {:?}",
        server.seen()
    );
}

#[test]
fn an_outbound_ca_bundle_without_certificates_is_refused_by_name() {
    for (bundle, expected) in [
        ("", "holds no PEM certificate"),
        ("just text", "holds no PEM certificate"),
        (
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBGHFTUuZL3Y2W0n2M6yqK5FmYwNv7q0bFDOOq4QKj2A\n-----END PRIVATE KEY-----\n",
            "private key",
        ),
    ] {
        let error = TrustedRoots::from_pem(bundle.as_bytes(), "ca.pem").unwrap_err();
        assert!(
            error.contains("ca.pem") && error.contains(expected),
            "{error}"
        );
    }
}

#[test]
fn headers_the_host_owns_are_refused() {
    let server = Server::start(hello);
    let runtime = runtime();
    let plugin = connector(
        &runtime,
        grant(&[plain("api.partner.test", &server)], &[LOOPBACK]),
    );
    for header in ["Host: evil.example", "Transfer-Encoding: chunked"] {
        let params = [param("headers", Value::TextList(vec![header.into()]))];
        match fetch(&plugin, &url("api.partner.test", &server, "/"), &params) {
            Err(CallError::Plugin {
                error: PluginError::InvalidInput(message),
                ..
            }) => assert!(message.contains("set by the host"), "{message}"),
            other => panic!("expected {header} to be refused, got {other:?}"),
        }
    }
    assert!(server.seen().is_empty());
    served(&plugin, &server);
}

#[test]
fn connector_importing_http_without_an_outbound_grant_is_refused_at_install() {
    let runtime = runtime();
    for outbound in [None, Some(Outbound::default())] {
        let mut req = request(PluginKind::Connector, Limits::default());
        req.grants.outbound = outbound;
        match runtime.install(&program(guests::HTTP_FETCH), req) {
            Err(error @ InstallError::UngrantedImport { .. }) => {
                let message = error.to_string();
                assert!(message.contains("tessera:plugin/http@0.1.0"), "{message}");
                assert!(
                    message.contains("no outbound hosts were granted"),
                    "{message}"
                );
            }
            other => panic!("expected the http import to be refused, got {other:?}"),
        }
    }
}

#[test]
fn segment_importing_http_is_refused_even_with_an_outbound_grant() {
    let runtime = runtime();
    let mut req = request(PluginKind::Segment, Limits::default());
    req.grants.outbound = Some(grant(&["api.partner.test".into()], &[]));
    match runtime.install(&program(guests::HTTP_IMPORT), req) {
        Err(error @ InstallError::UngrantedImport { .. }) => {
            let message = error.to_string();
            assert!(message.contains("only for connectors"), "{message}");
        }
        other => panic!("expected the http import to be refused, got {other:?}"),
    }
}
