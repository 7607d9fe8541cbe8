//! TLS to the database: `sslmode` and the trusted CA against a server that
//! accepts only TLS connections (`.ci/postgres start-tls`, whose URL is in
//! `TESSERA_TEST_POSTGRES_TLS_URL`), and against the plain test server
//! (`TESSERA_TEST_POSTGRES_URL`). Without them the tests fail and say how to
//! start the servers, unless `TESSERA_SKIP_POSTGRES=1` skips them.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tessera_privacy::KeyStore;
use tessera_store::{Store, StoreError};
use tessera_store_postgres::{PgOptions, PgStore};

const TLS_URL_VAR: &str = "TESSERA_TEST_POSTGRES_TLS_URL";
const URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";
const SKIP_VAR: &str = "TESSERA_SKIP_POSTGRES";

/// The URL in `var`; `None` when the tests are to be skipped.
fn server_url(var: &str, start: &str) -> Option<String> {
    if let Ok(url) = std::env::var(var)
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! SKIPPED: a TLS test of the PostgreSQL backend did not run ({SKIP_VAR}=1 and \
             no {var})\n"
        );
        return None;
    }
    panic!(
        "{var} is not set, so TLS to PostgreSQL cannot be tested. Start a throwaway server on \
         127.0.0.1 and point the tests at it:\n\n    \
         export {var}=$(.ci/postgres {start} /tmp/tessera-pg-{start})\n    \
         cargo test -p tessera-store-postgres --test tls\n    \
         .ci/postgres stop /tmp/tessera-pg-{start}\n\n\
         To skip these tests instead, set {SKIP_VAR}=1."
    )
}

/// The TLS-only server: its URL without `sslmode` and `sslrootcert`, and
/// the CA file that signed its certificate.
struct TlsServer {
    /// `postgres://tessera:tessera@127.0.0.1:PORT/tessera`
    base: String,
    port: u16,
    ca: PathBuf,
}

fn tls_server() -> Option<TlsServer> {
    let url = server_url(TLS_URL_VAR, "start-tls")?;
    let (base, query) = url
        .split_once('?')
        .unwrap_or_else(|| panic!("{TLS_URL_VAR} has no sslrootcert parameter: {url}"));
    let ca = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sslrootcert="))
        .unwrap_or_else(|| panic!("{TLS_URL_VAR} has no sslrootcert parameter: {url}"));
    let port = base
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("{TLS_URL_VAR} names no port: {url}"));
    Some(TlsServer {
        base: base.to_owned(),
        port,
        ca: PathBuf::from(ca),
    })
}

fn unique_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tessera_tls_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A schema of the test's own on the TLS server, dropped (over TLS) when
/// the guard goes.
struct Scratch<'a> {
    server: &'a TlsServer,
    schema: String,
}

impl<'a> Scratch<'a> {
    fn new(server: &'a TlsServer) -> Self {
        Self {
            server,
            schema: unique_schema(),
        }
    }

    fn options(&self, url: &str) -> PgOptions {
        PgOptions::new(url).schema(&self.schema)
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if let Ok(mut client) = admin(self.server) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// A client of the test's own on the TLS server, checking its certificate.
fn admin(server: &TlsServer) -> Result<postgres::Client, postgres::Error> {
    let pem = std::fs::read(&server.ca).expect("the test server's CA file");
    let mut roots = rustls::RootCertStore::empty();
    for certificate in pem_certificates(&pem) {
        roots.add(certificate).expect("a CA certificate");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut config_pg: postgres::Config = server.base.parse().unwrap();
    config_pg.ssl_mode(postgres::config::SslMode::Require);
    config_pg.connect(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn pem_certificates(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

/// Reads and writes records and keys through `store`, from several threads
/// at once, so that the pool opens more connections than the first.
fn exercise(store: &PgStore) {
    std::thread::scope(|threads| {
        for n in 0..4 {
            let store = store.clone();
            threads.spawn(move || {
                let tenant = format!("t{n}");
                store.append_audit(&tenant, 1, b"over TLS").unwrap();
                assert_eq!(store.audit_head(&tenant).unwrap(), 1);
                let keys = store.key_store();
                let wrapped = tessera_privacy::WrappedSubjectKey {
                    nonce: [n as u8; 12],
                    ciphertext: vec![n as u8; 48],
                };
                let slot = keys.insert(&wrapped).unwrap();
                assert_eq!(keys.get(slot).unwrap(), Some(wrapped));
            });
        }
    });
}

fn open_error(options: &PgOptions) -> String {
    let error = PgStore::open_with(options).expect_err("the connection is refused");
    assert!(matches!(error, StoreError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(!message.contains("tessera:tessera"), "{message}");
    message
}

#[test]
fn verify_full_with_the_servers_ca_connects_and_the_store_works() {
    let Some(server) = tls_server() else { return };
    let scratch = Scratch::new(&server);
    // The CA named in the URL (libpq's sslrootcert), by IP address.
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.base,
        server.ca.display()
    );
    let store = PgStore::open_with(&scratch.options(&url)).unwrap();
    assert!(
        store.tls().starts_with("sslmode=verify-full"),
        "{}",
        store.tls()
    );
    assert!(store.tls().contains("sslrootcert"), "{}", store.tls());
    assert_eq!(store.tls_warning(), None, "the server is on loopback");
    exercise(&store);
    drop(store);
    // The CA as storage.ca_file, by host name: verify-full is the default
    // when a CA is given, and the data written above is there.
    let by_name = server.base.replace("127.0.0.1", "localhost");
    let mut options = scratch.options(&by_name);
    options.ca_file = Some(server.ca.clone());
    let store = PgStore::open_with(&options).unwrap();
    assert!(
        store.tls().starts_with("sslmode=verify-full"),
        "{}",
        store.tls()
    );
    assert!(store.tls().contains("storage.ca_file"), "{}", store.tls());
    assert_eq!(store.audit_head("t0").unwrap(), 1);
    // The schema's tables are where an admin client over TLS finds them.
    let mut admin = admin(&server).unwrap();
    let rows = admin
        .query(
            &format!("SELECT count(*) FROM {}.subject_keys", scratch.schema),
            &[],
        )
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 4);
}

#[test]
fn a_wrong_ca_is_refused_naming_the_setting_the_file_and_the_cause() {
    let Some(server) = tls_server() else { return };
    let scratch = Scratch::new(&server);
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Some other CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let other = params.self_signed(&key).unwrap();
    let dir = tempdir();
    let wrong = dir.join("other-ca.pem");
    std::fs::write(&wrong, other.pem()).unwrap();

    let mut options = scratch.options(&server.base);
    options.ca_file = Some(wrong.clone());
    let message = open_error(&options);
    assert!(message.contains("sslmode=verify-full"), "{message}");
    assert!(message.contains("not signed by a trusted CA"), "{message}");
    assert!(
        message.contains(&format!("storage.ca_file {}", wrong.display())),
        "{message}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    // Mozilla's roots (verify-full, no CA given) do not know it either.
    let message = open_error(&scratch.options(&format!("{}?sslmode=verify-full", server.base)));
    assert!(message.contains("Mozilla's roots"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_name_the_certificate_lacks_fails_verify_full_and_passes_verify_ca() {
    let Some(server) = tls_server() else { return };
    let scratch = Scratch::new(&server);
    // Connect to 127.0.0.1, but call the server by a name its certificate
    // does not have.
    let url = |mode: &str| {
        format!(
            "{}?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            server.base.replace("@127.0.0.1:", "@db.invalid:"),
            server.ca.display()
        )
    };
    let message = open_error(&scratch.options(&url("verify-full")));
    assert!(
        message.contains("not valid for \"db.invalid\""),
        "{message}"
    );
    assert!(message.contains("localhost"), "the names it has: {message}");
    assert!(message.contains("verify-ca"), "the way out: {message}");
    let store = PgStore::open_with(&scratch.options(&url("verify-ca"))).unwrap();
    assert!(
        store.tls().starts_with("sslmode=verify-ca"),
        "{}",
        store.tls()
    );
    exercise(&store);
}

#[test]
fn require_and_prefer_encrypt_without_a_ca_and_check_it_when_given() {
    let Some(server) = tls_server() else { return };
    let scratch = Scratch::new(&server);
    // The server takes TCP clients over TLS only: a store that works is
    // encrypted, every pooled connection included.
    for mode in ["require", "prefer"] {
        let store =
            PgStore::open_with(&scratch.options(&format!("{}?sslmode={mode}", server.base)))
                .unwrap();
        assert!(
            store.tls().contains("the certificate is not checked"),
            "{}",
            store.tls()
        );
        exercise(&store);
        drop(store);
        let _ = admin(&server)
            .unwrap()
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", scratch.schema));
    }
    // With a CA (libpq: a root certificate file), require checks the chain.
    let dir = tempdir();
    let wrong = dir.join("other-ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&wrong, params.self_signed(&key).unwrap().pem()).unwrap();
    let message = open_error(&scratch.options(&format!(
        "{}?sslmode=require&sslrootcert={}",
        server.base,
        wrong.display()
    )));
    assert!(message.contains("sslmode=require"), "{message}");
    assert!(message.contains("not signed by a trusted CA"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn disable_against_a_tls_only_server_is_refused_by_the_server_and_explained() {
    let Some(server) = tls_server() else { return };
    let scratch = Scratch::new(&server);
    let message = open_error(&scratch.options(&format!("{}?sslmode=disable", server.base)));
    assert!(
        message.contains("no encryption"),
        "the server's own reason: {message}"
    );
    assert!(
        message.contains("sslmode=disable: this server accepts only TLS connections"),
        "{message}"
    );
}

#[test]
fn require_against_a_server_without_tls_fails_and_never_falls_back() {
    let Some(plain) = server_url(URL_VAR, "start") else {
        return;
    };
    let schema = unique_schema();
    let with = |mode: &str| {
        let separator = if plain.contains('?') { '&' } else { '?' };
        PgOptions::new(format!("{plain}{separator}sslmode={mode}")).schema(&schema)
    };
    for mode in ["require", "verify-ca", "verify-full"] {
        let message = open_error(&with(mode));
        assert!(
            message.contains("the server does not accept TLS connections"),
            "{message}"
        );
        assert!(message.contains(&format!("sslmode={mode}")), "{message}");
    }
    // prefer (the default) and disable use plain text there.
    for mode in ["prefer", "disable"] {
        let store = PgStore::open_with(&with(mode)).unwrap();
        store.append_audit("acme", 1, b"plain").unwrap();
        assert!(store.tls().starts_with(&format!("sslmode={mode}")));
        drop(store);
        let mut admin = postgres::Client::connect(&plain, postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
    }
}

fn tempdir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tessera-tls-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
