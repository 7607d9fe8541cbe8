//! `tessera token create|list|revoke`: HTTP clients of a running server
//! (`--server`, `--token`). Plain HTTP/1.1 over TCP: for a remote server,
//! put a TLS-terminating proxy in front and reach it through a tunnel, or
//! run the command on the server's host.

use std::process::ExitCode;
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
    /// The server's address, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "TESSERA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An operator token of the tenant.
    #[arg(long, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub token: String,
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

/// `http://host:port[/prefix]` → (`host:port`, `/prefix`).
pub(crate) fn split_server(server: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = server.strip_prefix("http://") else {
        if server.starts_with("https://") {
            bail!(
                "--server {server}: this client speaks plain HTTP only; reach a TLS server \
                 through a local tunnel or run the command on the server's host"
            );
        }
        bail!("--server {server} must start with http://");
    };
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        bail!("--server {server} names no host");
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    Ok((authority, prefix))
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
    let (authority, prefix) = split_server(&client.server)?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .with_context(|| format!("cannot connect to {}", client.server))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .context("HTTP handshake failed")?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{prefix}{path}"))
            .header(header::HOST, &authority)
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
        assert_eq!(
            split_server("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1:8080".into(), String::new())
        );
        assert_eq!(
            split_server("http://tessera.internal/api/").unwrap(),
            ("tessera.internal:80".into(), "/api".into())
        );
        assert!(split_server("https://x").is_err());
        assert!(split_server("ftp://x").is_err());
        assert!(split_server("http://").is_err());
    }
}
