//! TLS to the database: libpq's `sslmode` and `sslrootcert` on rustls (ring,
//! as the rest of the workspace), for every connection a [`crate::PgStore`]
//! opens.
//!
//! The `postgres` client knows only `disable`, `prefer` and `require`, and
//! neither `sslrootcert` nor certificate checks, so both parameters are taken
//! out of the connection string here ([`split`]) and turned into a rustls
//! configuration with a verifier of the mode's strength ([`Tls::new`]):
//!
//! | sslmode | TLS | certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` | if the server offers it, else plain text | not checked; with a CA given, its chain is (as libpq) |
//! | `require` | always | the same |
//! | `verify-ca` | always | chain to a trusted CA |
//! | `verify-full` | always | chain to a trusted CA, and names the host |
//!
//! The trusted CAs are the PEM file given as `ca_file` or `sslrootcert`,
//! otherwise Mozilla's roots compiled in (`webpki-roots`; also
//! `sslrootcert=system`). Without `sslmode` the mode is `verify-full` when a
//! CA is given and `prefer` otherwise. No mode that asks for TLS ever falls
//! back to plain text, and a failed check is never retried without TLS.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use r2d2_postgres::postgres::error::SqlState;
use r2d2_postgres::postgres::{self, config::SslMode as PgSslMode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, the modes this backend implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow (plain text first) is not supported: use disable, \
                            prefer, require, verify-ca or verify-full"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ));
            }
        })
    }

    /// The value as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS parameters taken out of a connection string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

/// Parameters of libpq's that this backend does not implement: refused by
/// name rather than by the client's "unknown option".
const UNSUPPORTED: [&str; 5] = ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

fn unsupported(key: &str) -> String {
    format!(
        "{key} is not supported: client certificates and certificate revocation lists are not \
         built (docs/operations.md, \"TLS to the database\")"
    )
}

/// Splits `sslmode` and `sslrootcert` off a connection string (URL or
/// `key=value` form), leaving the rest as it was. A string that cannot be
/// tokenised is returned whole, for the client's parser to name the fault.
pub(crate) fn split(url: &str) -> Result<(String, TlsParams), String> {
    for prefix in ["postgres://", "postgresql://"] {
        if url.starts_with(prefix) {
            return split_url(url, prefix.len());
        }
    }
    Ok(split_key_values(url))
}

/// The URL form: parameters after the first `?` past the credentials, as
/// the client reads them.
fn split_url(url: &str, prefix: usize) -> Result<(String, TlsParams), String> {
    let after_credentials = url[prefix..].find('@').map_or(prefix, |at| prefix + at + 1);
    let Some(question) = url[after_credentials..].find('?') else {
        return Ok((url.to_owned(), TlsParams::default()));
    };
    let question = after_credentials + question;
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    for pair in url[question + 1..].split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            kept.push(pair);
            continue;
        };
        let key = percent_decode(key)?;
        match key.as_str() {
            "sslmode" => params.sslmode = Some(percent_decode(value)?),
            "sslrootcert" => params.sslrootcert = Some(percent_decode(value)?),
            other if UNSUPPORTED.contains(&other) => return Err(unsupported(other)),
            _ => kept.push(pair),
        }
    }
    let mut rest = url[..question].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, params))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        format!("the connection string's parameter {text:?} is not UTF-8 once percent-decoded")
    })
}

/// The `key=value` form, tokenised as the client does (values may be
/// single-quoted; a backslash escapes the next character).
fn split_key_values(text: &str) -> (String, TlsParams) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(text.len(), |&(offset, _)| offset);
    let mut params = TlsParams::default();
    let mut rest = String::new();
    let mut copied = 0;
    let mut i = 0;
    loop {
        while chars.get(i).is_some_and(|(_, c)| c.is_whitespace()) {
            i += 1;
        }
        let start = i;
        while chars
            .get(i)
            .is_some_and(|&(_, c)| !c.is_whitespace() && c != '=')
        {
            i += 1;
        }
        if i == start {
            break;
        }
        let key = &text[at(start)..at(i)];
        while chars.get(i).is_some_and(|(_, c)| c.is_whitespace()) {
            i += 1;
        }
        if chars.get(i).map(|&(_, c)| c) != Some('=') {
            return (text.to_owned(), TlsParams::default());
        }
        i += 1;
        while chars.get(i).is_some_and(|(_, c)| c.is_whitespace()) {
            i += 1;
        }
        let quoted = chars.get(i).map(|&(_, c)| c) == Some('\'');
        if quoted {
            i += 1;
        }
        let mut value = String::new();
        loop {
            match chars.get(i).map(|&(_, c)| c) {
                None if quoted => return (text.to_owned(), TlsParams::default()),
                None => break,
                Some('\'') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if c.is_whitespace() && !quoted => break,
                Some('\\') => {
                    if let Some(&(_, escaped)) = chars.get(i + 1) {
                        value.push(escaped);
                    }
                    i += 2;
                }
                Some(c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        let slot = match key {
            "sslmode" => &mut params.sslmode,
            "sslrootcert" => &mut params.sslrootcert,
            _ => continue,
        };
        *slot = Some(value);
        rest.push_str(&text[copied..at(start)]);
        copied = at(i.min(chars.len()));
    }
    rest.push_str(&text[copied..]);
    (rest, params)
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encryption only: any certificate (the handshake's signatures are
    /// still checked against it).
    Nothing,
    /// The chain must lead to a trusted CA.
    Chain,
    /// The chain, and the certificate must name the host.
    Full,
}

/// Where the trusted CAs came from, for messages.
#[derive(Debug, Clone)]
enum Roots {
    File {
        setting: &'static str,
        path: PathBuf,
    },
    Mozilla,
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::File { setting, path } => write!(f, "{setting} {}", path.display()),
            Roots::Mozilla => f.write_str("Mozilla's roots compiled into tessera"),
        }
    }
}

/// The TLS side of a store's connections.
#[derive(Clone)]
pub(crate) struct Tls {
    pub mode: SslMode,
    pub connector: MakeRustlsConnect,
    check: Check,
    roots: Option<Roots>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Tls {
    /// The configuration for the parameters of a connection string and a
    /// CA file given beside it (`storage.ca_file`).
    pub fn new(params: &TlsParams, ca_file: Option<&Path>) -> Result<Self, String> {
        let explicit = params.sslmode.as_deref().map(SslMode::parse).transpose()?;
        let (roots, store) = match (ca_file, params.sslrootcert.as_deref()) {
            (Some(file), Some(root)) => {
                return Err(format!(
                    "both storage.ca_file ({}) and sslrootcert ({root}) in the URL name the \
                     database's CA: set only one",
                    file.display()
                ));
            }
            (Some(file), None) => {
                let roots = Roots::File {
                    setting: "storage.ca_file",
                    path: file.to_owned(),
                };
                (Some(roots), Some(read_roots(file, "storage.ca_file")?))
            }
            (None, Some("system")) => (Some(Roots::Mozilla), Some(mozilla_roots())),
            (None, Some(root)) => {
                let path = PathBuf::from(root);
                let store = read_roots(&path, "sslrootcert")?;
                let roots = Roots::File {
                    setting: "sslrootcert",
                    path,
                };
                (Some(roots), Some(store))
            }
            (None, None) => (None, None),
        };
        let mode = explicit.unwrap_or(if roots.is_some() {
            SslMode::VerifyFull
        } else {
            SslMode::Prefer
        });
        if params.sslrootcert.as_deref() == Some("system") && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslrootcert=system needs sslmode=verify-full (as libpq), not sslmode={mode}"
            ));
        }
        let check = match mode {
            SslMode::Disable => {
                if let Some(roots) = &roots {
                    return Err(format!(
                        "sslmode=disable turns TLS off, yet {roots} names a CA for it: remove \
                         one of the two"
                    ));
                }
                Check::Nothing
            }
            // libpq checks the chain in these modes when it has a root file.
            SslMode::Prefer | SslMode::Require if roots.is_some() => Check::Chain,
            SslMode::Prefer | SslMode::Require => Check::Nothing,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::Full,
        };
        let (roots, store) = match (check, roots, store) {
            (Check::Nothing, _, _) => (None, None),
            (_, Some(roots), Some(store)) => (Some(roots), Some(store)),
            _ => (Some(Roots::Mozilla), Some(mozilla_roots())),
        };
        let provider = provider();
        let inner = match store {
            Some(store) => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|error| format!("the trusted CAs cannot be used: {error}"))?,
            ),
            None => None,
        };
        let verifier = Verifier {
            inner,
            check_name: check == Check::Full,
            provider: provider.clone(),
        };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|error| format!("TLS cannot be set up: {error}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // What PostgreSQL 17 checks when it is sent; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            mode,
            connector: MakeRustlsConnect::new(config),
            check,
            roots,
        })
    }

    /// The client's own mode: TLS or not, and whether plain text is
    /// acceptable; the checks are the verifier's.
    pub fn client_mode(&self) -> PgSslMode {
        match self.mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        }
    }

    /// Whether the server's certificate is checked at all.
    pub fn checks_certificate(&self) -> bool {
        self.check != Check::Nothing
    }

    /// What the connections do, for the start-up line.
    pub fn describe(&self) -> String {
        let roots = self
            .roots
            .as_ref()
            .map_or_else(String::new, |roots| format!(", trusting {roots}"));
        match (self.mode, self.check) {
            (SslMode::Disable, _) => "sslmode=disable: plain text, no TLS".to_owned(),
            (SslMode::Prefer, Check::Nothing) => {
                "sslmode=prefer: TLS if the server offers it, else plain text; the certificate \
                 is not checked"
                    .to_owned()
            }
            (SslMode::Prefer, _) => format!(
                "sslmode=prefer: TLS if the server offers it, else plain text; the certificate's \
                 CA is checked{roots}"
            ),
            (SslMode::Require, Check::Nothing) => {
                "sslmode=require: TLS; the certificate is not checked".to_owned()
            }
            (SslMode::Require | SslMode::VerifyCa, _) => format!(
                "sslmode={}: TLS; the certificate's CA is checked, not its name{roots}",
                self.mode
            ),
            (SslMode::VerifyFull, _) => format!(
                "sslmode=verify-full: TLS; the certificate's CA and host name are checked{roots}"
            ),
        }
    }

    /// A connection error in words that name the setting and the cause.
    pub fn explain(&self, error: &postgres::Error) -> String {
        if let Some(db) = error.as_db_error() {
            let mut text = crate::error_detail(error);
            if self.mode == SslMode::Disable
                && *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && db.message().contains("no encryption")
            {
                text.push_str(
                    " (sslmode=disable: this server accepts only TLS connections; set sslmode to \
                     verify-full and name its CA with storage.ca_file)",
                );
            }
            return text;
        }
        if let Some(tls) = rustls_error(error) {
            return self.explain_rustls(tls);
        }
        let chain = error_chain(error);
        if chain.contains("server does not support TLS") {
            return format!(
                "the server does not accept TLS connections (its postgresql.conf has ssl = off), \
                 and sslmode={} does not allow plain text: turn TLS on at the server, or set \
                 sslmode=disable on a network that needs no encryption",
                self.mode
            );
        }
        chain
    }

    fn explain_rustls(&self, error: &rustls::Error) -> String {
        let mode = self.mode;
        let roots = self
            .roots
            .as_ref()
            .map_or_else(|| "no CA".to_owned(), ToString::to_string);
        match error {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "sslmode={mode}: the database server's certificate is not signed by a trusted CA \
                 (trusting {roots}); name the CA that signed it with storage.ca_file or \
                 sslrootcert"
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => {
                let detail = match error {
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForNameContext {
                            expected,
                            presented,
                        },
                    ) => format!(
                        "for {:?} (it names {})",
                        server_name(expected),
                        if presented.is_empty() {
                            "no host".to_owned()
                        } else {
                            presented.join(", ")
                        }
                    ),
                    _ => "for the host name in the URL".to_owned(),
                };
                format!(
                    "sslmode={mode}: the database server's certificate is not valid {detail}; \
                     connect by a name the certificate has, or use sslmode=verify-ca to check \
                     only its CA"
                )
            }
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => format!("sslmode={mode}: the database server's certificate has expired"),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            ) => format!(
                "sslmode={mode}: the database server's certificate is not valid yet (is this \
                 machine's clock right?)"
            ),
            rustls::Error::InvalidCertificate(other) => format!(
                "sslmode={mode}: the database server's certificate was refused ({other:?}; \
                 trusting {roots})"
            ),
            other => format!("sslmode={mode}: the TLS handshake with the server failed: {other}"),
        }
    }
}

fn server_name(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// The rustls error behind a client error, if the handshake failed.
fn rustls_error(error: &postgres::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // `io::Error::source` skips the error it wraps.
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// An error and its causes, joined (the client's own message names only
/// the kind: "error connecting to server").
pub(crate) fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

#[allow(deprecated)] // ring, as host/api/src/tls.rs says why
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Every certificate of a PEM file, at least one.
fn read_roots(path: &Path, setting: &str) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path)
        .map_err(|error| format!("{setting} {}: cannot read it: {error}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| {
            format!(
                "{setting} {}: not a PEM certificate file ({error})",
                path.display()
            )
        })?;
        roots.add(certificate).map_err(|error| {
            format!(
                "{setting} {}: holds a certificate that cannot be a CA ({error})",
                path.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{setting} {}: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(roots)
}

/// The mode's check of the server's certificate; the handshake's
/// signatures are always checked.
#[derive(Debug)]
struct Verifier {
    /// `None`: any certificate.
    inner: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name: a name error means the
        // chain was good.
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: Option<&str>, root: Option<&str>) -> TlsParams {
        TlsParams {
            sslmode: mode.map(str::to_owned),
            sslrootcert: root.map(str::to_owned),
        }
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, found) = split(
            "postgres://u:p%3F@db:5432/tessera?application_name=x&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca%201.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%3F@db:5432/tessera?application_name=x&connect_timeout=3"
        );
        assert_eq!(found, params(Some("verify-full"), Some("/etc/ca 1.pem")));
        let (rest, found) = split("postgresql://db/t?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://db/t");
        assert_eq!(found, params(Some("require"), None));
        // A `?` in the password is not the start of the parameters.
        let (rest, found) = split("postgres://u:a?b@db/t").unwrap();
        assert_eq!(rest, "postgres://u:a?b@db/t");
        assert_eq!(found, TlsParams::default());
        assert!(
            split("postgres://db/t?sslcert=/c.pem")
                .unwrap_err()
                .contains("sslcert is not supported")
        );
    }

    #[test]
    fn key_value_parameters_are_taken_out_with_quotes_and_escapes() {
        let (rest, found) =
            split("host=db sslmode = verify-ca  sslrootcert='/etc/my ca\\'s.pem' dbname=tessera")
                .unwrap();
        assert_eq!(rest, "host=db    dbname=tessera");
        assert_eq!(found, params(Some("verify-ca"), Some("/etc/my ca's.pem")));
        let parsed: postgres::Config = rest.parse().unwrap();
        assert_eq!(parsed.get_dbname(), Some("tessera"));
        // Unterminated: left whole for the client to refuse.
        let (rest, found) = split("host=db sslmode='verify-full").unwrap();
        assert_eq!(rest, "host=db sslmode='verify-full");
        assert_eq!(found, TlsParams::default());
    }

    #[test]
    fn the_default_mode_is_prefer_or_verify_full_with_a_ca() {
        let tls = Tls::new(&params(None, None), None).unwrap();
        assert_eq!(tls.mode, SslMode::Prefer);
        assert!(!tls.checks_certificate());
        let tls = Tls::new(&params(None, Some("system")), None).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert!(tls.describe().contains("Mozilla"), "{}", tls.describe());
        // verify-* without a CA trusts Mozilla's roots.
        let tls = Tls::new(&params(Some("verify-ca"), None), None).unwrap();
        assert_eq!(tls.client_mode(), PgSslMode::Require);
        assert!(tls.checks_certificate());
    }

    #[test]
    fn contradictions_and_bad_files_are_refused_naming_the_setting() {
        let file = Path::new("/nonexistent/ca.pem");
        let error = Tls::new(&params(None, Some("/x.pem")), Some(file)).unwrap_err();
        assert!(error.contains("storage.ca_file") && error.contains("sslrootcert"));
        let error = Tls::new(&params(Some("disable"), None), Some(file)).unwrap_err();
        assert!(error.contains("cannot read"), "{error}");
        let error = Tls::new(&params(Some("require"), Some("system")), None).unwrap_err();
        assert!(error.contains("verify-full"), "{error}");
        let error = Tls::new(&params(Some("verify-fll"), None), None).unwrap_err();
        assert!(error.contains("\"verify-fll\""), "{error}");
        let error = Tls::new(&params(Some("allow"), None), None).unwrap_err();
        assert!(error.contains("allow"), "{error}");
        let dir = std::env::temp_dir().join(format!("tessera-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let error = Tls::new(&params(None, None), Some(&empty)).unwrap_err();
        assert!(
            error.contains("storage.ca_file") && error.contains("no PEM certificate"),
            "{error}"
        );
        let error = Tls::new(&params(None, empty.to_str()), None).unwrap_err();
        assert!(error.starts_with("sslrootcert"), "{error}");
        // A good CA file, and sslmode=disable beside it.
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, ca.self_signed(&key).unwrap().pem()).unwrap();
        let tls = Tls::new(&params(None, None), Some(&good)).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        let tls = Tls::new(&params(Some("require"), None), Some(&good)).unwrap();
        assert!(
            tls.checks_certificate(),
            "require checks the chain of a given CA"
        );
        let error = Tls::new(&params(Some("disable"), None), Some(&good)).unwrap_err();
        assert!(
            error.contains("sslmode=disable") && error.contains("storage.ca_file"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
