//! `tessera serve` over HTTPS as an operator runs it: the certificate of
//! `tessera keys tls-dev`, plain HTTP refused on the TLS port, a renewed
//! certificate served without a restart, and client certificates for the
//! ingest role. Clients are ureq with rustls, trusting only what each test
//! names; everything is on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

/// The binary with the deployment in `dir` and nothing from the environment.
fn tessera(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for name in [
        "TESSERA_MASTER_KEY",
        "TESSERA_CONFIG",
        "TESSERA_LISTEN",
        "TESSERA_SERVER",
        "TESSERA_TOKEN",
        "TESSERA_TLS_CERT_FILE",
        "TESSERA_TLS_KEY_FILE",
        "TESSERA_TLS_CLIENT_CA_FILE",
        "TESSERA_TLS_REQUIRED",
        "TESSERA_OUTBOUND_CA_FILE",
    ] {
        command.env_remove(name);
    }
    command
        .env("TESSERA_DATA_DIR", dir.join("data"))
        .env("TESSERA_KEY_DIR", dir.join("keys"))
        .env("TESSERA_MASTER_KEY_FILE", dir.join("master.key"));
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("tessera runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running server, the lines it printed up to "listening on", its port
/// and the operator token `--init` printed.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    operator: String,
}

impl Server {
    /// Creates the deployment's master key and starts the server with
    /// `--init --tenant acme` and the environment `env`.
    fn start(dir: &Path, env: &[(&str, &Path)]) -> Self {
        let key_file = dir.join("master.key");
        let out = run(tessera(dir)
            .args(["keys", "init", "--key-file"])
            .arg(&key_file));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut command = tessera(dir);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--init",
                "--tenant",
                "acme",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("tessera serve starts");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let listening = loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains("listening on ") => break line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("the server did not start: {seen:?}"),
            }
        };
        let url = listening.split("listening on ").nth(1).unwrap().trim();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let port = url.rsplit(':').next().unwrap().parse().expect("a port");
        let at = seen
            .iter()
            .position(|l| l.contains("shown once"))
            .unwrap_or_else(|| panic!("no token printed: {seen:?}"));
        let operator = seen[at + 1].trim().to_owned();
        Self {
            child,
            lines,
            port,
            operator,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// SIGTERM, then the exit status within 30 s and the last lines.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.lines.try_iter().collect());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("tessera serve did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client that trusts only `ca` (PEM), presenting `identity`
/// (certificate and key, PEM) if given. Statuses are answers, not errors.
fn client(ca: &str, identity: Option<(&str, &str)>) -> ureq::Agent {
    let roots = RootCerts::Specific(Arc::new(vec![
        Certificate::from_pem(ca.as_bytes()).expect("a CA certificate"),
    ]));
    let identity = identity.map(|(cert, key)| {
        ClientCert::new_with_certs(
            &[Certificate::from_pem(cert.as_bytes()).expect("a client certificate")],
            PrivateKey::from_pem(key.as_bytes()).expect("a client key"),
        )
    });
    ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .root_certs(roots)
                .client_cert(identity)
                .build(),
        )
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// `tessera keys tls-dev --dir D`: the certificate and key it wrote.
fn tls_dev(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out_dir = dir.join(name);
    let out = run(tessera(dir)
        .args(["keys", "tls-dev", "--dir"])
        .arg(&out_dir));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("TESSERA_TLS_CERT_FILE") && said.contains("--cacert"),
        "how to use them: {said}"
    );
    let (cert, key) = (out_dir.join("tls-cert.pem"), out_dir.join("tls-key.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is the owner's only");
    }
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    (cert, key)
}

/// Replaces `to` with `from` in one rename, as certificate renewal tools do.
fn swap_in(from: &Path, to: &Path) {
    let next = to.with_extension("next");
    std::fs::copy(from, &next).unwrap();
    std::fs::rename(&next, to).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn https_with_the_dev_certificate_refuses_plain_http_and_serves_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (first_cert, first_key) = tls_dev(dir.path(), "first");
    let (second_cert, second_key) = tls_dev(dir.path(), "second");
    // tls-dev never overwrites a certificate.
    let again = run(tessera(dir.path())
        .args(["keys", "tls-dev", "--dir"])
        .arg(dir.path().join("first")));
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("never overwritten"),
        "{}",
        text(&again.stderr)
    );

    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    swap_in(&first_cert, &cert);
    swap_in(&first_key, &key);
    let server = Server::start(
        dir.path(),
        &[
            ("TESSERA_TLS_CERT_FILE", &cert),
            ("TESSERA_TLS_KEY_FILE", &key),
        ],
    );

    let first = client(&read(&first_cert), None);
    let second = client(&read(&second_cert), None);
    let answer = first
        .get(server.url("/healthz"))
        .call()
        .expect("HTTPS works");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000")
    );

    // Plain HTTP on the TLS port gets no answer from the API, only a
    // refusal that says to use https.
    let plain_url = format!("http://127.0.0.1:{}/healthz", server.port);
    let mut plain = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
        .get(&plain_url)
        .call()
        .expect("an answer in plain HTTP");
    assert_eq!(plain.status(), 400);
    assert!(
        plain.headers().get("x-request-id").is_none(),
        "no handler ran"
    );
    let body = plain.body_mut().read_to_string().unwrap();
    assert!(
        body.contains("https_required") && body.contains("https://"),
        "{body}"
    );

    // Hostile openings: a handshake record of garbage, bytes that are
    // neither TLS nor HTTP, and a connection that says nothing. None of
    // them stops the next honest client.
    {
        use std::io::{Read as _, Write as _};
        let address = format!("127.0.0.1:{}", server.port);
        let silent = std::net::TcpStream::connect(&address).unwrap();
        for opening in [&b"\x16\x03\x01\xff\xffgarbage"[..], b"\x00\x01\x02\x03"] {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            stream.write_all(opening).unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            assert!(
                !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
                "{answer:?}"
            );
        }
        let answer = first
            .get(server.url("/healthz"))
            .call()
            .expect("still served");
        assert_eq!(answer.status(), 200);
        drop(silent);
    }

    // The command line's client speaks HTTPS, trusting what --ca-file
    // names; without it (Mozilla's roots) the handshake fails, and over
    // plain HTTP it relays the server's refusal.
    let token_list = |server_url: &str, ca: Option<&Path>| {
        let mut command = tessera(dir.path());
        command.args([
            "token",
            "list",
            "--server",
            server_url,
            "--token",
            &server.operator,
        ]);
        if let Some(ca) = ca {
            command.arg("--ca-file").arg(ca);
        }
        run(&mut command)
    };
    let https_url = server.url("");
    let listed = token_list(&https_url, Some(&first_cert));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains("bootstrap"),
        "{}",
        text(&listed.stdout)
    );
    let untrusted = token_list(&https_url, None);
    assert!(!untrusted.status.success());
    assert!(
        text(&untrusted.stderr).contains("TLS handshake"),
        "{}",
        text(&untrusted.stderr)
    );
    let plain = token_list(&format!("http://127.0.0.1:{}", server.port), None);
    assert!(!plain.status.success());
    assert!(
        text(&plain.stderr).contains("https_required"),
        "{}",
        text(&plain.stderr)
    );

    // A client that trusts only the next certificate is refused until the
    // files are swapped, then served without a restart; the old one is
    // no longer served.
    let refused = second.get(server.url("/healthz")).call().unwrap_err();
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
    swap_in(&second_key, &key);
    swap_in(&second_cert, &cert);
    let answer = second
        .get(server.url("/healthz"))
        .call()
        .expect("the swapped certificate is served");
    assert_eq!(answer.status(), 200);
    let stale = first.get(server.url("/healthz")).call().unwrap_err();
    assert!(stale.to_string().contains("UnknownIssuer"), "{stale}");

    // A broken swap keeps the certificate being served.
    std::fs::write(&cert, "not a certificate").unwrap();
    let answer = second
        .get(server.url("/healthz"))
        .call()
        .expect("the previous certificate is still served");
    assert_eq!(answer.status(), 200);

    let (status, rest) = server.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(rest.iter().any(|l| l.contains("store flushed")), "{rest:?}");
}

#[test]
fn tls_settings_that_do_not_go_together_stop_the_server_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = tls_dev(dir.path(), "dev");
    for (env, expected) in [
        (vec![("TESSERA_TLS_REQUIRED", "true")], "tls.required"),
        (
            vec![("TESSERA_TLS_CERT_FILE", cert.to_str().unwrap())],
            "tls.key_file",
        ),
        (
            vec![
                ("TESSERA_TLS_CERT_FILE", cert.to_str().unwrap()),
                ("TESSERA_TLS_KEY_FILE", cert.to_str().unwrap()),
            ],
            "no PEM private key",
        ),
    ] {
        let mut command = tessera(dir.path());
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        for (name, value) in &env {
            command.env(name, value);
        }
        let out = run(&mut command);
        assert!(!out.status.success(), "{env:?}");
        let said = text(&out.stderr);
        assert!(said.contains(expected), "{env:?}: {said}");
    }
}

/// A CA of partner systems and a client certificate it issued: (CA
/// certificate, client certificate, client key), PEM.
fn partner_ca(name: &str) -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec![format!("{name}.example")]).unwrap();
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();
    (ca_cert.pem(), client_cert.pem(), client_key.serialize_pem())
}

#[test]
fn an_ingest_token_needs_a_client_certificate_from_the_client_ca_and_staff_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = tls_dev(dir.path(), "dev");
    let (ca, partner_cert, partner_key) = partner_ca("partner");
    let (_, stranger_cert, stranger_key) = partner_ca("stranger");
    let ca_file = dir.path().join("partners-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("TESSERA_TLS_CERT_FILE", &cert),
            ("TESSERA_TLS_KEY_FILE", &key),
            ("TESSERA_TLS_CLIENT_CA_FILE", &ca_file),
        ],
    );
    let server_ca = read(&cert);
    let anonymous = client(&server_ca, None);
    let partner = client(&server_ca, Some((&partner_cert, &partner_key)));
    let stranger = client(&server_ca, Some((&stranger_cert, &stranger_key)));

    // The operator needs no client certificate.
    let mut created = anonymous
        .post(server.url("/v1/tokens"))
        .header("authorization", format!("Bearer {}", server.operator))
        .header("content-type", "application/json")
        .send(r#"{"role": "ingest", "name": "partner feed"}"#)
        .expect("an answer");
    assert_eq!(created.status(), 201);
    let created: serde_json::Value =
        serde_json::from_str(&created.body_mut().read_to_string().unwrap()).unwrap();
    let ingest = created["token"].as_str().expect("a token").to_owned();

    let track = |agent: &ureq::Agent, user: &str| {
        agent
            .post(server.url("/v1/track"))
            .header("authorization", format!("Bearer {ingest}"))
            .header("content-type", "application/json")
            .send(format!(
                r#"{{"userId": "{user}", "event": "Order Completed"}}"#
            ))
    };
    let mut refused = track(&anonymous, "u1").expect("an answer");
    assert_eq!(refused.status(), 403);
    let body = refused.body_mut().read_to_string().unwrap();
    assert!(body.contains("client_certificate_required"), "{body}");

    // A certificate from another CA does not get past the handshake.
    let error = track(&stranger, "u2").unwrap_err();
    assert!(
        !matches!(error, ureq::Error::StatusCode(_)),
        "the handshake must fail: {error}"
    );

    let mut accepted = track(&partner, "u3").expect("an answer");
    let body = accepted.body_mut().read_to_string().unwrap();
    assert_eq!(accepted.status(), 200, "{body}");
    assert!(body.contains("\"accepted\":1"), "{body}");

    // The refusals cost the partner nothing: the anonymous connection
    // still serves the operator.
    let answer = anonymous
        .get(server.url("/v1/tokens"))
        .header("authorization", format!("Bearer {}", server.operator))
        .call()
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    let (status, rest) = server.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
}
