//! How granted host names become addresses: the [`Resolve`] trait, the
//! system's resolver (the default) and a fixed table for tests and for
//! operators who pin partner hosts. The addresses returned are vetted and then
//! connected to as they are: nothing resolves the name a second time.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

/// Resolves a host name to the addresses a request may connect to.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    /// The addresses of `host`, a normalised DNS name (lowercase ASCII, no
    /// trailing dot; never an IP literal). Must give up after `timeout`.
    fn resolve(&self, host: &str, timeout: Duration) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`). A lookup cannot be
/// cancelled, so it runs on a thread of its own and is abandoned, not
/// awaited, past its timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, timeout: Duration) -> io::Result<Vec<IpAddr>> {
        let (tx, rx) = mpsc::channel();
        let name = (host.to_string(), 0u16);
        std::thread::Builder::new()
            .name("tessera-resolve".into())
            .spawn(move || {
                let found = name
                    .to_socket_addrs()
                    .map(|addrs| addrs.map(|a| a.ip()).collect());
                let _ = tx.send(found);
            })?;
        rx.recv_timeout(timeout).unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("resolving {host} took longer than {timeout:?}"),
            ))
        })
    }
}

/// A fixed table of names and their addresses. Names not in it do not
/// resolve (it never falls back to the system), so tests that use it never
/// depend on the machine's DNS.
///
/// ```
/// use tessera_runtime::StaticResolver;
/// let resolver = StaticResolver::new()
///     .with("api.partner.test", ["127.0.0.1".parse().unwrap()])
///     .with("meta.partner.test", ["169.254.169.254".parse().unwrap()]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticResolver {
    names: BTreeMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        StaticResolver::default()
    }

    /// Adds (or replaces) a name. Matched case-insensitively, without a
    /// trailing dot, as requests are.
    pub fn with(mut self, name: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.insert(name, addrs.into_iter().collect());
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve(&self, host: &str, _timeout: Duration) -> io::Result<Vec<IpAddr>> {
        match self.names.get(host) {
            Some(addrs) if !addrs.is_empty() => Ok(addrs.clone()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} is not in the resolver's table"),
            )),
        }
    }
}
