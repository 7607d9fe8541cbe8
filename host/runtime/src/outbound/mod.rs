//! Outbound HTTP for connectors: the operator's grant ([`Outbound`]), how a
//! request's URL is matched against it, and the `http` host import. A request
//! leaves the host only to a granted host, over the granted scheme, to vetted
//! addresses; it must never reach the host's own network unless allowed.

mod addr;
mod resolve;
mod send;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use ipnet::IpNet;
use url::Url;

pub use resolve::{Resolve, StaticResolver, SystemResolver};
pub(crate) use send::OutboundCall;

/// The outbound HTTP a connector is granted. Linked only into connectors,
/// and only when `hosts` is not empty.
///
/// ```
/// use tessera_runtime::Outbound;
/// let outbound = Outbound {
///     hosts: vec!["api.partner.example".parse().unwrap()],
///     ..Outbound::default()
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The hosts requests may go to, matched exactly (no wildcards).
    pub hosts: Vec<GrantedHost>,
    /// Address ranges the operator allows although they are refused by
    /// default (loopback, private, link-local, …), e.g. `127.0.0.1/32` for a
    /// partner served on this machine. Empty: only public addresses.
    pub allow: Vec<IpNet>,
    /// Wall time of one request (its redirects included), from resolving
    /// the name to the last byte of the body. Also bounded by what is left
    /// of the plugin call's own time.
    pub timeout: Duration,
    /// Largest request body a plugin may send.
    pub max_request_bytes: u64,
    /// Largest response body; reading stops past it and the request fails.
    pub max_response_bytes: u64,
    /// Bytes received (headers and bodies) by all requests of one plugin
    /// call together; requests past it fail.
    pub max_received_per_call: u64,
    /// Redirects followed for one request; each target is checked as the
    /// first request was. 0: a redirect fails the request.
    pub max_redirects: u32,
    /// Linked but not usable: every request is refused before anything is
    /// resolved or sent. For checking a plugin that is not approved yet
    /// (its `describe` runs at install), so that code nobody approved
    /// reaches no host.
    pub paused: bool,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            hosts: Vec::new(),
            allow: Vec::new(),
            timeout: Duration::from_secs(10),
            max_request_bytes: 1 << 20,
            max_response_bytes: 8 << 20,
            max_received_per_call: 64 << 20,
            max_redirects: 5,
            paused: false,
        }
    }
}

impl Outbound {
    /// Whether anything is granted (the `http` import is linked).
    pub fn is_granted(&self) -> bool {
        !self.hosts.is_empty()
    }
}

/// The certificate authorities that connectors' HTTPS requests trust.
/// Whichever it is, every server certificate is verified (chain, name,
/// validity): there is no setting that turns verification off.
#[derive(Debug, Clone, Default)]
pub enum TrustedRoots {
    /// Mozilla's root programme, compiled in (`webpki-roots`).
    #[default]
    Mozilla,
    /// Only these certificate authorities, in place of Mozilla's: an
    /// operator's bundle for partners behind a private CA. To trust both,
    /// the bundle includes the public roots too (e.g. the system's
    /// `/etc/ssl/certs/ca-certificates.crt` followed by the private CA).
    Only(Arc<Vec<ureq::tls::Certificate<'static>>>),
}

impl TrustedRoots {
    /// The certificates of a PEM bundle, in place of Mozilla's roots. The
    /// error says what is wrong with the bundle; `origin` names it.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, String> {
        let mut certificates = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(certificate)) => certificates.push(certificate),
                Ok(_) => {
                    return Err(format!(
                        "{origin} holds a private key; a CA bundle holds only certificates"
                    ));
                }
                Err(e) => return Err(format!("{origin} is not a PEM certificate bundle: {e}")),
            }
        }
        if certificates.is_empty() {
            return Err(format!(
                "{origin} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)"
            ));
        }
        Ok(TrustedRoots::Only(Arc::new(certificates)))
    }

    /// How many certificate authorities an operator's bundle holds (none
    /// for Mozilla's roots).
    pub fn len(&self) -> usize {
        match self {
            TrustedRoots::Mozilla => 0,
            TrustedRoots::Only(certificates) => certificates.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ureq(&self) -> ureq::tls::RootCerts {
        match self {
            TrustedRoots::Mozilla => ureq::tls::RootCerts::WebPki,
            TrustedRoots::Only(certificates) => {
                ureq::tls::RootCerts::Specific(certificates.clone())
            }
        }
    }
}

/// The scheme a host is granted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }
}

/// One granted host: `api.partner.example`, `api.partner.example:8443`,
/// `https://…` (the same) or `http://legacy.partner.example[:port]`.
///
/// - A host without a scheme, or with `https://`, is reached over HTTPS only.
///   Plain HTTP is allowed only to a host granted with an explicit `http://`
///   (which also allows HTTPS to it).
/// - Without a port, only the scheme's default port (443, or 80 for plain
///   HTTP); with one, only that port.
/// - Names are compared case-insensitively, without a trailing dot, after
///   IDNA (a Unicode name is granted and matched as its `xn--` form). An IP
///   literal may be granted; its address is vetted like any other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantedHost {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
}

impl GrantedHost {
    /// The scheme it was granted over.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The normalised host name or IP literal (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The granted port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    fn admits(&self, target: &Target) -> bool {
        let scheme = match (self.scheme, target.scheme) {
            (Scheme::Https, Scheme::Https) | (Scheme::Http, _) => true,
            (Scheme::Https, Scheme::Http) => false,
        };
        let port = self.port.unwrap_or(target.scheme.default_port());
        scheme && self.host == target.host && port == target.port
    }
}

impl FromStr for GrantedHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let invalid = |why: &str| format!("`{s}` is not a grantable host: {why}");
        if s.contains('*') {
            return Err(invalid("wildcards are not supported, grant each host"));
        }
        let lower = s.to_ascii_lowercase();
        let full = if lower.starts_with("https://") || lower.starts_with("http://") {
            s.to_string()
        } else if s.contains("://") {
            return Err(invalid("only http:// and https:// may be given"));
        } else {
            format!("https://{s}")
        };
        let url = Url::parse(&full).map_err(|e| invalid(&e.to_string()))?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("give a host and an optional port, not a path"));
        }
        let target = Target::from_url(url).map_err(|e| invalid(&e))?;
        let explicit_port = (target.port != target.scheme.default_port()).then_some(target.port);
        Ok(GrantedHost {
            scheme: target.scheme,
            host: target.host,
            port: explicit_port,
        })
    }
}

impl fmt::Display for GrantedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == Scheme::Http {
            f.write_str("http://")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Where a request goes, normalised: the URL to send, its scheme, host
/// (lowercase ASCII name without trailing dot, or an IP literal) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub url: Url,
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// Set when the host is an IP literal: nothing to resolve.
    pub ip: Option<IpAddr>,
}

impl Target {
    /// Parses and normalises a request URL. The error says what is wrong
    /// with it, in words for the plugin's author.
    pub fn parse(url: &str) -> Result<Target, String> {
        // The URL itself is not repeated: its path and query may carry
        // personal data, and errors are logged.
        let parsed = Url::parse(url).map_err(|e| format!("the URL is not valid: {e}"))?;
        Target::from_url(parsed)
    }

    pub fn from_url(mut url: Url) -> Result<Target, String> {
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => {
                return Err(format!(
                    "the `{other}` scheme is refused: only http and https"
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials (user@host) are refused; send an \
                        Authorization header instead"
                .into());
        }
        let (host, ip) = match url.host() {
            Some(url::Host::Domain(name)) => (dns_name(name)?, None),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (format!("[{ip}]"), Some(IpAddr::V6(ip))),
            None => return Err("the URL has no host".into()),
        };
        if ip.is_none() && url.host_str() != Some(host.as_str()) {
            url.set_host(Some(&host))
                .map_err(|e| format!("the host `{host}` cannot be used: {e}"))?;
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| "the URL has no port".to_string())?;
        // Fragments never leave the client.
        url.set_fragment(None);
        Ok(Target {
            url,
            scheme,
            host,
            port,
            ip,
        })
    }

    /// Scheme, host and port: what a browser would call the origin.
    pub fn origin(&self) -> (Scheme, &str, u16) {
        (self.scheme, &self.host, self.port)
    }
}

/// A DNS name as the url crate gives it (lowercased, IDNA-mapped), checked
/// to be plain letters, digits, hyphens and underscores in dot-separated
/// labels, with one trailing dot removed.
fn dns_name(name: &str) -> Result<String, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if trimmed.is_empty() || trimmed.len() > 253 || !trimmed.split('.').all(valid_label) {
        return Err(format!("`{name}` is not a valid host name"));
    }
    Ok(trimmed.to_string())
}

/// Why a request did not get a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The request is malformed (URL, method, headers, body size): the plugin's bug.
    Invalid(String),
    /// The grant does not allow it.
    Refused(String),
    /// The network or the partner failed: DNS, connect, TLS, timeout, size.
    Failed(String),
}

impl Outbound {
    /// Checks a target against the granted hosts.
    pub(crate) fn check(&self, target: &Target) -> Result<(), SendError> {
        if self.paused {
            return Err(SendError::Refused(
                "outbound HTTP is not available until an operator approves this plugin".into(),
            ));
        }
        if self.hosts.iter().any(|granted| granted.admits(target)) {
            return Ok(());
        }
        let host_granted = self.hosts.iter().any(|g| g.host == target.host);
        let secure_only = self
            .hosts
            .iter()
            .any(|g| g.host == target.host && g.scheme == Scheme::Https);
        Err(SendError::Refused(
            if target.scheme == Scheme::Http && secure_only {
                format!(
                    "host {} is granted over https only; plain http is refused",
                    target.host
                )
            } else if host_granted {
                format!(
                    "port {} of host {} is not granted",
                    target.port, target.host
                )
            } else {
                format!("host {} is not granted", target.host)
            },
        ))
    }

    /// Checks resolved addresses against the refused ranges and allowances.
    pub(crate) fn vet(&self, host: &str, addrs: &[IpAddr]) -> Result<(), SendError> {
        addr::vet(addrs, &self.allow).map_err(|(ip, why)| {
            SendError::Refused(format!(
                "host {host} resolves to {ip}, {why}, which is not allowed"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hosts: &[&str]) -> Outbound {
        Outbound {
            hosts: hosts
                .iter()
                .map(|h| h.parse().expect("grantable"))
                .collect(),
            ..Outbound::default()
        }
    }

    fn check(outbound: &Outbound, url: &str) -> Result<(), String> {
        let target = Target::parse(url)?;
        outbound.check(&target).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn granted_hosts_are_normalised() {
        let parsed = |s: &str| s.parse::<GrantedHost>().expect(s).to_string();
        assert_eq!(parsed("API.Partner.Example"), "api.partner.example");
        assert_eq!(parsed("api.partner.example."), "api.partner.example");
        assert_eq!(
            parsed("https://api.partner.example:443/"),
            "api.partner.example"
        );
        assert_eq!(
            parsed("api.partner.example:8443"),
            "api.partner.example:8443"
        );
        assert_eq!(
            parsed("HTTP://legacy.partner.example"),
            "http://legacy.partner.example"
        );
        assert_eq!(
            parsed("http://legacy.partner.example:80"),
            "http://legacy.partner.example"
        );
        assert_eq!(parsed("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(parsed("203.0.113.9"), "203.0.113.9");
        assert_eq!(parsed("[2001:db8::1]:8443"), "[2001:db8::1]:8443");
    }

    #[test]
    fn ungrantable_hosts_are_refused() {
        for bad in [
            "",
            "*.partner.example",
            "ftp://files.partner.example",
            "user@api.partner.example",
            "api.partner.example/path",
            "api.partner.example?x=1",
            "api..partner.example",
            "api.partner.example:99999",
        ] {
            assert!(bad.parse::<GrantedHost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_granted_hosts_match() {
        let outbound = grant(&["api.partner.example"]);
        assert_eq!(
            check(&outbound, "https://api.partner.example/v1?page=2"),
            Ok(())
        );
        assert_eq!(check(&outbound, "HTTPS://API.PARTNER.EXAMPLE/"), Ok(()));
        assert_eq!(check(&outbound, "https://api.partner.example./"), Ok(()));
        assert_eq!(check(&outbound, "https://api.partner.example:443/"), Ok(()));
        for refused in [
            "https://evil.example/",
            "https://api.partner.example.evil.example/",
            "https://evilapi.partner.example/",
            "https://partner.example/",
            "https://api.partner.example:8443/",
        ] {
            assert!(check(&outbound, refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn credentials_in_urls_are_refused_so_the_host_cannot_be_disguised() {
        let outbound = grant(&["api.partner.example"]);
        let err = check(&outbound, "https://api.partner.example@evil.example/").unwrap_err();
        assert!(err.contains("credentials"), "{err}");
        assert!(check(&outbound, "https://user:pw@api.partner.example/").is_err());
        // Backslashes and percent-encoding do not smuggle another host in.
        assert!(check(&outbound, "https://evil.example\\@api.partner.example/").is_err());
        assert!(check(&outbound, "https://evil%2eexample/").is_err());
        let encoded = Target::parse("https://api%2Epartner%2Eexample/").expect("a URL");
        assert_eq!(encoded.host, "api.partner.example");
    }

    #[test]
    fn plain_http_needs_an_explicit_http_grant() {
        let secure = grant(&["api.partner.example"]);
        let err = check(&secure, "http://api.partner.example/").unwrap_err();
        assert!(err.contains("https only"), "{err}");
        assert!(check(&secure, "http://api.partner.example:443/").is_err());

        let legacy = grant(&["http://legacy.partner.example:8080"]);
        assert_eq!(
            check(&legacy, "http://legacy.partner.example:8080/"),
            Ok(())
        );
        assert_eq!(
            check(&legacy, "https://legacy.partner.example:8080/"),
            Ok(())
        );
        assert!(check(&legacy, "http://legacy.partner.example/").is_err());
    }

    #[test]
    fn ip_literals_match_only_the_same_address_and_odd_forms_are_normalised() {
        let outbound = grant(&["203.0.113.9", "[2001:db8::1]"]);
        assert_eq!(check(&outbound, "https://203.0.113.9/"), Ok(()));
        // Decimal, hexadecimal and short forms are the same IPv4 address.
        assert_eq!(check(&outbound, "https://3405803785/"), Ok(()));
        assert_eq!(check(&outbound, "https://0xcb.0.113.9/"), Ok(()));
        assert_eq!(check(&outbound, "https://[2001:DB8:0:0::1]/"), Ok(()));
        assert!(check(&outbound, "https://203.0.113.10/").is_err());
        assert!(check(&outbound, "https://2130706433/").is_err());
        let target = Target::parse("https://0x7f.1/").expect("a URL");
        assert_eq!(target.ip, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn unicode_hosts_match_their_idna_form() {
        let outbound = grant(&["xn--bcher-kva.example"]);
        assert_eq!(check(&outbound, "https://BÜCHER.example/"), Ok(()));
        assert!(check(&outbound, "https://bucher.example/").is_err());
    }

    #[test]
    fn other_schemes_are_refused() {
        let outbound = grant(&["api.partner.example"]);
        for url in [
            "ftp://api.partner.example/",
            "file:///etc/passwd",
            "gopher://api.partner.example/",
            "data:text/plain,hi",
            "not a url",
        ] {
            assert!(check(&outbound, url).is_err(), "{url}");
        }
    }

    #[test]
    fn a_refused_address_names_the_host_and_the_reason() {
        let outbound = grant(&["meta.partner.test"]);
        let err = outbound
            .vet("meta.partner.test", &["169.254.169.254".parse().unwrap()])
            .unwrap_err();
        let SendError::Refused(message) = err else {
            panic!("a refusal")
        };
        assert!(message.contains("meta.partner.test"), "{message}");
        assert!(message.contains("metadata"), "{message}");
    }
}
