//! `tessera token create|list|revoke`, and the client the other commands
//! of a running server share (`--server`, `--token`): HTTP/1.1 on one
//! connection per request, over TLS (rustls, verifying the server's
//! certificate) for an `https://` server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token of the server's tenant (the tenant of --token) and
    /// print it once.
    Create(CreateArgs),
    /// List the tenant's tokens (never their secrets).
    List(ClientArgs),
    /// Revoke a token by its id; it is refused from then on.
    Revoke(RevokeArgs),
}

/// Which server, and the operator token to call it with.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's address, e.g. http://127.0.0.1:8080 or
    /// https://tessera.example.
    #[arg(long, env = "TESSERA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An operator token of the tenant.
    #[arg(long, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub token: String,
    /// For an https:// server: the PEM certificates to trust instead of
    /// Mozilla's roots (e.g. the tls-cert.pem of `tessera keys tls-dev`).
    #[arg(long, env = "TESSERA_CA_FILE", value_name = "FILE.pem")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// operator, marketer, ingest, analyst or portal.
    #[arg(long, value_parser = ["operator", "marketer", "ingest", "analyst", "portal"])]
    role: String,
    /// A label to tell tokens apart (1 to 64 characters).
    #[arg(long)]
    name: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token id (as `tessera token list` shows it).
    id: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match command {
            TokenCommand::Create(args) => {
                let body = json!({ "role": args.role, "name": args.name });
                let (status, answer) =
                    call(&args.client, Method::POST, "/v1/tokens", Some(body)).await?;
                if status != StatusCode::CREATED {
                    return failed(status, &answer);
                }
                eprintln!(
                    "created token {} (role {}, name {:?}); it is shown only now:",
                    answer["id"].as_str().unwrap_or("?"),
                    answer["role"].as_str().unwrap_or("?"),
                    answer["name"].as_str().unwrap_or("?"),
                );
                println!("{}", answer["token"].as_str().unwrap_or_default());
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::List(client) => {
                let (status, answer) = call(&client, Method::GET, "/v1/tokens", None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!(
                    "{:<16}  {:<8}  {:<7}  {:<20}  NAME",
                    "ID", "ROLE", "STATE", "CREATED"
                );
                for token in answer["tokens"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16}  {:<8}  {:<7}  {:<20}  {}",
                        token["id"].as_str().unwrap_or("?"),
                        token["role"].as_str().unwrap_or("?"),
                        if token["revoked"] == true {
                            "revoked"
                        } else {
                            "active"
                        },
                        crate::data::rfc3339(token["created_at_ms"].as_i64().unwrap_or(0)),
                        token["name"].as_str().unwrap_or(""),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::Revoke(args) => {
                let path = format!("/v1/tokens/{}", args.id);
                let (status, answer) = call(&args.client, Method::DELETE, &path, None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!("revoked token {}", args.id);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Prints the server's error and exits 1.
pub(crate) fn failed(status: StatusCode, answer: &Value) -> anyhow::Result<ExitCode> {
    let error = &answer["error"];
    eprintln!(
        "error: the server answered {status}: {} ({})",
        error["message"].as_str().unwrap_or("no message"),
        error["code"].as_str().unwrap_or("no code"),
    );
    Ok(ExitCode::from(1))
}

/// Where a server is: `http[s]://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub tls: bool,
    /// The host name or address, without brackets: the TLS server name.
    pub host: String,
    /// `host:port`, as the `Host` header and for connecting.
    pub authority: String,
    /// A path prefix (`/api`), or empty.
    pub prefix: String,
}

/// `http[s]://host[:port][/prefix]` → the [`Endpoint`].
pub(crate) fn split_server(server: &str) -> anyhow::Result<Endpoint> {
    let (tls, rest) = if let Some(rest) = server.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = server.strip_prefix("http://") {
        (false, rest)
    } else {
        bail!("--server {server} must start with https:// or http://");
    };
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        bail!("--server {server} names no host");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .with_context(|| format!("--server {server}: an IPv6 address lacks its `]`"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        bail!("--server {server} names no host");
    }
    let authority = match port {
        Some(port) if port.parse::<u16>().is_ok() => authority.to_owned(),
        Some(port) => bail!("--server {server}: `{port}` is not a port"),
        None => format!("{authority}:{}", if tls { 443 } else { 80 }),
    };
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    Ok(Endpoint {
        tls,
        host: host.to_owned(),
        authority,
        prefix,
    })
}

/// A connection to a server: TCP, or TLS over it.
pub(crate) trait Connection:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}

/// Connects to the endpoint; over TLS, the server's certificate must chain
/// to `ca_file`'s certificates (or Mozilla's roots) and name the host.
pub(crate) async fn connect(
    client: &ClientArgs,
    endpoint: &Endpoint,
) -> anyhow::Result<Box<dyn Connection>> {
    let stream = tokio::net::TcpStream::connect(&endpoint.authority)
        .await
        .with_context(|| format!("cannot connect to {}", client.server))?;
    let _ = stream.set_nodelay(true);
    if !endpoint.tls {
        return Ok(Box::new(stream));
    }
    let roots = trusted_roots(client.ca_file.as_deref())?;
    #[allow(deprecated)] // ring, as the server's TLS uses (host/api/src/tls.rs)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS cannot be set up")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
        .with_context(|| format!("--server {}: not a TLS server name", client.server))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .with_context(|| {
            format!(
                "the TLS handshake with {} failed (for a server whose certificate no public CA \
                 issued, name its CA with --ca-file or TESSERA_CA_FILE)",
                client.server
            )
        })?;
    Ok(Box::new(tls))
}

fn trusted_roots(ca_file: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let Some(path) = ca_file else {
        return Ok(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate
            .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        roots
            .add(certificate)
            .with_context(|| format!("{} holds an unusable certificate", path.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(roots)
}

/// One request with a JSON body (or none), on its own connection, within
/// 30 seconds.
pub(crate) async fn call(
    client: &ClientArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let body = body.map(|b| (Bytes::from(b.to_string()), "application/json"));
    call_with(client, method, path, body, Duration::from_secs(30)).await
}

/// One request with a body of the given content type, on its own
/// connection, within `limit`.
pub(crate) async fn call_with(
    client: &ClientArgs,
    method: Method,
    path: &str,
    body: Option<(Bytes, &'static str)>,
    limit: Duration,
) -> anyhow::Result<(StatusCode, Value)> {
    let endpoint = split_server(&client.server)?;
    let (authority, prefix) = (&endpoint.authority, &endpoint.prefix);
    let exchange = async {
        let stream = connect(client, &endpoint).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .context("HTTP handshake failed")?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{prefix}{path}"))
            .header(header::HOST, authority)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", client.token.trim()),
            );
        let bytes = match body {
            Some((bytes, content_type)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let response = sender
            .send_request(request.body(Full::new(bytes))?)
            .await
            .context("the request failed")?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("reading the answer failed")?
            .to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        anyhow::Ok((status, value))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .with_context(|| {
            format!(
                "{} did not answer within {} s",
                client.server,
                limit.as_secs()
            )
        })?
}

#[cfg(test)]
mod tests {
    use super::split_server;

    #[test]
    fn server_addresses() {
        let parts = |server: &str| {
            let e = split_server(server).unwrap();
            (e.tls, e.host, e.authority, e.prefix)
        };
        assert_eq!(
            parts("http://127.0.0.1:8080"),
            (
                false,
                "127.0.0.1".into(),
                "127.0.0.1:8080".into(),
                String::new()
            )
        );
        assert_eq!(
            parts("http://tessera.internal/api/"),
            (
                false,
                "tessera.internal".into(),
                "tessera.internal:80".into(),
                "/api".into()
            )
        );
        assert_eq!(
            parts("https://tessera.example"),
            (
                true,
                "tessera.example".into(),
                "tessera.example:443".into(),
                String::new()
            )
        );
        assert_eq!(
            parts("https://[::1]:8443/v"),
            (true, "::1".into(), "[::1]:8443".into(), "/v".into())
        );
        assert!(split_server("ftp://x").is_err());
        assert!(split_server("http://").is_err());
        assert!(split_server("https://:443").is_err());
        assert!(split_server("http://host:http").is_err());
    }
}
