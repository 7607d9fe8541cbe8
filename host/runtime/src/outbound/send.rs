//! Sends one plugin request: checks it against the grant, resolves and vets
//! the host's addresses, connects to exactly those (no second lookup), and
//! follows redirects by hand, checking each target as the first. Never logs
//! bodies, paths or header values.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::config::AutoHeaderValue;
use ureq::http::{self as h, HeaderName, HeaderValue};
use ureq::tls::{TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use ureq::{Agent, SendBody};

use super::{Outbound, Resolve, Scheme, SendError, Target, TrustedRoots};
use crate::api::http::{Header, Request, Response};

/// Methods a plugin may use. CONNECT and TRACE are not among them.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers the host sets itself or that change how the connection is used:
/// a plugin-chosen `Host` could reach another site served from a granted
/// host's address, and framing headers could smuggle a second request.
const HOST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "proxy-authorization",
    "proxy-connection",
];

/// Headers that carry credentials for one origin, dropped when a redirect
/// leads to another.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie"];

/// A plugin call's outbound HTTP: the grant, the resolver, the call's
/// deadline and what its requests have received so far.
#[derive(Debug)]
pub(crate) struct OutboundCall {
    policy: Outbound,
    resolver: Arc<dyn Resolve>,
    roots: TrustedRoots,
    deadline: Instant,
    received: u64,
}

/// One request as it goes out (after a redirect, the next one).
struct Hop {
    target: Target,
    method: h::Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

impl OutboundCall {
    /// `deadline` is when the plugin call's own time runs out: no request
    /// outlives it.
    pub fn new(
        policy: Outbound,
        resolver: Arc<dyn Resolve>,
        roots: TrustedRoots,
        deadline: Instant,
    ) -> Self {
        OutboundCall {
            policy,
            resolver,
            roots,
            deadline,
            received: 0,
        }
    }

    /// Bytes received (headers and bodies) by this call's requests.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Sends a request and follows its redirects. `plugin` names the plugin
    /// in the host's log.
    pub fn send(&mut self, request: Request, plugin: &str) -> Result<Response, SendError> {
        let started = Instant::now();
        let mut hop = self.prepare(request)?;
        let mut redirects = 0;
        loop {
            self.policy.check(&hop.target)?;
            let response = self.exchange(&hop, started, plugin)?;
            let Some(location) = redirect_location(&response) else {
                return Ok(response);
            };
            if redirects == self.policy.max_redirects {
                return Err(SendError::Failed(format!(
                    "{} redirected more than {} times",
                    hop.target.host, self.policy.max_redirects
                )));
            }
            redirects += 1;
            hop = self.follow(hop, response.status, &location)?;
        }
    }

    /// Checks the plugin's request and turns it into the first hop.
    fn prepare(&self, request: Request) -> Result<Hop, SendError> {
        let invalid = SendError::Invalid;
        let method = request.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(invalid(format!(
                "the method `{}` is not allowed; use one of {}",
                request.method,
                METHODS.join(", ")
            )));
        }
        let max = self.policy.max_request_bytes;
        if request.body.len() as u64 > max {
            return Err(invalid(format!(
                "the request body of {} bytes is larger than the granted {max}",
                request.body.len()
            )));
        }
        let mut headers = Vec::with_capacity(request.headers.len());
        for Header { name, value } in request.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
            if HOST_HEADERS.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "the `{name}` header is set by the host, not by plugins"
                )));
            }
            let value = HeaderValue::try_from(value)
                .map_err(|_| invalid(format!("the value of the `{name}` header is not valid")))?;
            headers.push((name, value));
        }
        Ok(Hop {
            target: Target::parse(&request.url).map_err(invalid)?,
            method: h::Method::from_bytes(method.as_bytes()).map_err(|e| invalid(e.to_string()))?,
            headers,
            body: request.body,
        })
    }

    /// The next hop of a redirect, checked before anything is sent.
    fn follow(&self, hop: Hop, status: u16, location: &str) -> Result<Hop, SendError> {
        let url = hop.target.url.join(location).map_err(|e| {
            SendError::Failed(format!(
                "{} redirected to an invalid location: {e}",
                hop.target.host
            ))
        })?;
        let target = Target::from_url(url).map_err(|why| {
            SendError::Refused(format!("redirect from {} refused: {why}", hop.target.host))
        })?;
        if hop.target.scheme == Scheme::Https && target.scheme == Scheme::Http {
            return Err(SendError::Refused(format!(
                "redirect from https://{} to plain http://{} refused",
                hop.target.host, target.host
            )));
        }
        // 303, and 301/302 after a POST, continue as a GET without a body,
        // as browsers do; 307 and 308 repeat the request as it was.
        let (method, mut body, mut headers) = (hop.method, hop.body, hop.headers);
        let method = match status {
            303 if method != h::Method::HEAD => h::Method::GET,
            301 | 302 if method == h::Method::POST => h::Method::GET,
            _ => method,
        };
        if method == h::Method::GET && !body.is_empty() {
            body.clear();
            headers.retain(|(name, _)| name != h::header::CONTENT_TYPE);
        }
        if target.origin() != hop.target.origin() {
            headers.retain(|(name, _)| !CREDENTIAL_HEADERS.contains(&name.as_str()));
        }
        Ok(Hop {
            target,
            method,
            headers,
            body,
        })
    }

    /// What is left of this request's time (redirects included): the
    /// grant's per-request timeout, cut to what remains of the plugin call.
    fn budget(&self, started: Instant) -> Result<Duration, SendError> {
        let per_request = self.policy.timeout.saturating_sub(started.elapsed());
        let call = self.deadline.saturating_duration_since(Instant::now());
        let budget = per_request.min(call);
        if budget.is_zero() {
            return Err(SendError::Failed(
                "no time is left for the request within the plugin call's time limit".into(),
            ));
        }
        Ok(budget)
    }

    /// Resolves, vets, connects and reads one response, within what is
    /// left of the time of the request that `started`.
    fn exchange(
        &mut self,
        hop: &Hop,
        started: Instant,
        plugin: &str,
    ) -> Result<Response, SendError> {
        let hop_started = Instant::now();
        let target = &hop.target;
        let addrs = match target.ip {
            Some(ip) => vec![ip],
            None => self
                .resolver
                .resolve(&target.host, self.budget(started)?)
                .map_err(|e| SendError::Failed(format!("cannot resolve {}: {e}", target.host)))?,
        };
        if addrs.is_empty() {
            return Err(SendError::Failed(format!(
                "{} resolves to no address",
                target.host
            )));
        }
        self.policy.vet(&target.host, &addrs)?;

        let budget = self.budget(started)?;
        let agent = Agent::with_parts(
            agent_config(budget, &self.roots),
            DefaultConnector::new(),
            Vetted {
                host: target.host.clone(),
                addrs: addrs
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, target.port))
                    .collect(),
            },
        );
        let mut request = h::Request::builder()
            .method(hop.method.clone())
            .uri(target.url.as_str());
        for (name, value) in &hop.headers {
            request = request.header(name, value);
        }
        let failed = |e: &dyn std::fmt::Display| {
            SendError::Failed(format!("request to {} failed: {e}", target.host))
        };
        let refused_certificate = |e: &ureq::Error| {
            let reason = e.to_string();
            if target.scheme == Scheme::Https && reason.contains("certificate") {
                let hint = if reason.contains("UnknownIssuer") {
                    ". If a private CA issued it, an operator names that CA in [plugins] \
                     outbound_ca_file"
                } else {
                    ""
                };
                SendError::Failed(format!(
                    "request to {} failed: its TLS certificate was rejected ({reason}); nothing \
                     was sent{hint}",
                    target.host
                ))
            } else {
                failed(e)
            }
        };
        let sent = if hop.body.is_empty() {
            let request = request
                .body(SendBody::none())
                .map_err(|e| SendError::Invalid(format!("the request cannot be sent: {e}")))?;
            agent.run(request)
        } else {
            let request = request
                .body(hop.body.as_slice())
                .map_err(|e| SendError::Invalid(format!("the request cannot be sent: {e}")))?;
            agent.run(request)
        };
        let mut response = sent.map_err(|e| refused_certificate(&e))?;

        let status = response.status().as_u16();
        let headers: Vec<Header> = response
            .headers()
            .iter()
            .map(|(name, value)| Header {
                name: name.as_str().to_string(),
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })
            .collect();
        let header_bytes: u64 = headers
            .iter()
            .map(|h| (h.name.len() + h.value.len() + 4) as u64)
            .sum();
        self.received = self.received.saturating_add(header_bytes);
        let left = self
            .policy
            .max_received_per_call
            .saturating_sub(self.received);
        let cap = self.policy.max_response_bytes.min(left);
        let too_large = |size: Option<u64>| {
            let why = if cap < self.policy.max_response_bytes {
                format!(
                    "the call's requests received more than the granted {} bytes",
                    self.policy.max_received_per_call
                )
            } else {
                let size = size.map(|n| format!(" of {n} bytes")).unwrap_or_default();
                format!(
                    "the response body{size} is larger than the granted {} bytes",
                    self.policy.max_response_bytes
                )
            };
            tracing::warn!(plugin, host = %target.host, status, "outbound response too large");
            SendError::Failed(format!("response from {}: {why}", target.host))
        };
        if let Some(length) = response.body().content_length()
            && length > cap
        {
            return Err(too_large(Some(length)));
        }
        let mut body = Vec::new();
        let read = response
            .body_mut()
            .with_config()
            .reader()
            .take(cap.saturating_add(1))
            .read_to_end(&mut body);
        self.received = self.received.saturating_add(body.len() as u64);
        read.map_err(|e| failed(&e))?;
        if body.len() as u64 > cap {
            return Err(too_large(None));
        }
        tracing::info!(
            plugin,
            method = %hop.method,
            host = %target.host,
            status,
            sent = hop.body.len(),
            received = body.len(),
            elapsed_ms = hop_started.elapsed().as_millis() as u64,
            "outbound request"
        );
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// The `Location` of a redirect response, if it is one.
fn redirect_location(response: &Response) -> Option<String> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location"))
        .map(|h| h.value.clone())
}

/// One request's client: no proxy (it would connect elsewhere than the
/// vetted address), no automatic redirects, no connection pool, certificate
/// verification with `roots`, and the request's whole time budget.
fn agent_config(budget: Duration, roots: &TrustedRoots) -> ureq::config::Config {
    Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .user_agent(AutoHeaderValue::Provided(Arc::new("tessera".into())))
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(roots.ureq())
                .disable_verification(false)
                .build(),
        )
        .timeout_global(Some(budget))
        .timeout_connect(Some(budget))
        .build()
}

/// Hands ureq the addresses that were already vetted, so it connects to
/// exactly those and never looks the name up again.
#[derive(Debug)]
struct Vetted {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl Resolver for Vetted {
    fn resolve(
        &self,
        uri: &h::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        // The agent serves one request; any other host would be a bug here.
        let host = uri.host().unwrap_or("").trim_end_matches('.');
        if !host.eq_ignore_ascii_case(&self.host) && !self.addrs.iter().any(|a| same_ip(a, host)) {
            return Err(ureq::Error::HostNotFound);
        }
        let mut out = self.empty();
        for addr in &self.addrs {
            if out.try_push(*addr).is_err() {
                break;
            }
        }
        Ok(out)
    }
}

fn same_ip(addr: &SocketAddr, host: &str) -> bool {
    host.trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip == addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::StaticResolver;

    fn call(hosts: &[&str]) -> OutboundCall {
        let policy = Outbound {
            hosts: hosts
                .iter()
                .map(|h| h.parse().expect("grantable"))
                .collect(),
            ..Outbound::default()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        OutboundCall::new(
            policy,
            Arc::new(StaticResolver::new()),
            TrustedRoots::default(),
            deadline,
        )
    }

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(name, value)| Header {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            body: body.to_vec(),
        }
    }

    fn header_names(hop: &Hop) -> Vec<&str> {
        hop.headers.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn a_redirect_from_https_to_plain_http_is_refused_even_to_a_host_granted_http() {
        let call = call(&["api.partner.example", "http://legacy.partner.example"]);
        let hop = call
            .prepare(request("GET", "https://api.partner.example/a", &[], b""))
            .expect("valid");
        let refused = call.follow(hop, 302, "http://legacy.partner.example/b");
        let Err(SendError::Refused(message)) = refused else {
            panic!("expected a refusal, got {:?}", refused.map(|h| h.target));
        };
        assert!(message.contains("plain http"), "{message}");
    }

    #[test]
    fn a_redirect_location_is_resolved_against_the_request_and_checked_afresh() {
        let call = call(&["api.partner.example"]);
        let hop = call
            .prepare(request(
                "GET",
                "https://api.partner.example/v1/a?x=1",
                &[],
                b"",
            ))
            .expect("valid");
        let next = call.follow(hop, 302, "../b?page=2").expect("followed");
        assert_eq!(
            next.target.url.as_str(),
            "https://api.partner.example/b?page=2"
        );

        let hop = call
            .prepare(request("GET", "https://api.partner.example/", &[], b""))
            .expect("valid");
        let disguised = call.follow(hop, 302, "https://api.partner.example@evil.example/");
        assert!(matches!(disguised, Err(SendError::Refused(_))));
    }

    #[test]
    fn see_other_turns_a_post_into_a_get_and_307_repeats_it() {
        let call = call(&["api.partner.example"]);
        let post = || {
            call.prepare(request(
                "POST",
                "https://api.partner.example/submit",
                &[("content-type", "application/json")],
                b"{}",
            ))
            .expect("valid")
        };
        let next = call.follow(post(), 303, "/done").expect("followed");
        assert_eq!((next.method.as_str(), next.body.len()), ("GET", 0));
        assert!(header_names(&next).is_empty());
        let next = call.follow(post(), 307, "/again").expect("followed");
        assert_eq!(
            (next.method.as_str(), next.body.as_slice()),
            ("POST", &b"{}"[..])
        );
        assert_eq!(header_names(&next), ["content-type"]);
    }

    #[test]
    fn credentials_follow_a_redirect_only_within_the_same_origin() {
        let call = call(&["api.partner.example", "cdn.partner.example"]);
        let headers = [
            ("authorization", "Bearer t"),
            ("cookie", "s=1"),
            ("accept", "application/json"),
        ];
        let hop = || {
            call.prepare(request(
                "GET",
                "https://api.partner.example/",
                &headers,
                b"",
            ))
            .expect("valid")
        };
        let same = call.follow(hop(), 302, "/elsewhere").expect("followed");
        assert_eq!(header_names(&same), ["authorization", "cookie", "accept"]);
        let other = call
            .follow(hop(), 302, "https://cdn.partner.example/file")
            .expect("followed");
        assert_eq!(header_names(&other), ["accept"]);
    }

    #[test]
    fn methods_headers_and_bodies_are_checked_before_anything_is_sent() {
        let call = call(&["api.partner.example"]);
        let url = "https://api.partner.example/";
        for bad in [
            request("CONNECT", url, &[], b""),
            request("TRACE", url, &[], b""),
            request("GET", url, &[("bad header", "x")], b""),
            request("GET", url, &[("x-ok", "line\r\nbreak")], b""),
            request("GET", url, &[("Content-Length", "0")], b""),
            request("POST", url, &[], &vec![0; (1 << 20) + 1]),
            request("GET", "ftp://api.partner.example/", &[], b""),
        ] {
            let method = bad.method.clone();
            assert!(
                matches!(call.prepare(bad), Err(SendError::Invalid(_))),
                "{method}"
            );
        }
        let hop = call.prepare(request("get", url, &[], b"")).expect("valid");
        assert_eq!(hop.method, h::Method::GET);
    }
}
