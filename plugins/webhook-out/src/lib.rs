//! `webhook-out`: a destination connector. It POSTs actions as JSON to a
//! receiver's webhook through the host's outbound HTTP and reports, action by
//! action, whether each was delivered or failed, and if it failed whether a
//! retry may help. It keeps no secret and no state: the operator grants the
//! receiver's host, and the host retries, backs off and keeps dead letters.
//!
//! # Parameters
//!
//! | name | kind | default | meaning |
//! |---|---|---|---|
//! | `url` | text | required | the receiver, `https://…` or `http://…` (its host must be granted, plain HTTP only by an `http://` grant) |
//! | `batch_size` | integer 1–1000 | `100` | actions per POST |
//!
//! # The request
//!
//! One POST per `batch_size` actions, `Content-Type: application/json`:
//!
//! ```json
//! {"actions": [{"delivery_id": "d-1", "recipient": "M-1", "action": "coupon",
//!               "attributes": {"amount": 5, "expires_at": 1780272000000}}]}
//! ```
//!
//! Attribute values are JSON as they are (null, booleans, numbers, strings,
//! lists of strings); timestamps are integer milliseconds since the Unix
//! epoch, UTC; a number that is not finite is `null`.
//!
//! `Idempotency-Key` is the lowercase hex SHA-256 of the request's delivery
//! ids, each followed by `\n`, in the order of the body: a request that
//! repeats exactly the same actions carries the same key. Every action also
//! carries its own delivery id, which a receiver keeps to drop duplicates
//! (a retry sends only the actions that failed, so its key differs).
//!
//! # Outcomes
//!
//! | the receiver | each action of the request |
//! |---|---|
//! | answers 2xx | delivered, unless a `results` list says otherwise (below) |
//! | answers 408, 425, 429 or 5xx | failed, retryable |
//! | answers anything else (other 4xx, 1xx, 3xx) | failed, not retryable |
//! | cannot be reached (DNS, connection, TLS, timeout, a response over the host's cap) | failed, retryable |
//! | is refused by the host (not granted) | failed, not retryable |
//!
//! The reason names the status and the URL (without its query string, which
//! may carry a token), with the start of the receiver's error body when it is
//! text (at most 200 characters, whitespace collapsed).
//!
//! A receiver may answer 2xx (207 Multi-Status, or 200) with a result per
//! action: `{"results": [{"delivery_id": "d-1", "status": 422, "error":
//! "unknown recipient"}]}`. A listed action with a status outside 2xx fails as
//! if the whole request had answered that status, with its `error` as the
//! excerpt; actions not listed, or listed with 2xx, are delivered. A body
//! that is not such a list is ignored.

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use tessera_sdk::http::{Header, Request, Response};
use tessera_sdk::prelude::*;

/// Actions per POST unless `batch_size` says otherwise.
const DEFAULT_BATCH: i64 = 100;
const MAX_BATCH: i64 = 1000;
/// Characters of a receiver's error body kept in a failure's reason.
const EXCERPT_CHARS: usize = 200;
/// How the host starts the `unavailable` error of a request its grant does
/// not allow (docs/plugins.md, Outbound HTTP): retrying cannot help.
const REFUSED_BY_HOST: &str = "outbound request refused";

struct WebhookOut;

impl Connector for WebhookOut {
    fn describe() -> Manifest {
        Manifest::new(
            "webhook-out",
            "0.1.0",
            "Delivers actions to a webhook: JSON POSTs with an Idempotency-Key, each action \
             reported delivered, retryable or failed.",
        )
        .param(
            ParamSpec::text(
                "url",
                "The receiver's URL, https:// or http://; its host must be granted",
            )
            .required(),
        )
        .param(
            ParamSpec::integer("batch_size", "Actions per POST")
                .range(1.0, MAX_BATCH as f64)
                .default(Value::Integer(DEFAULT_BATCH)),
        )
    }

    fn modes() -> Modes {
        Modes::DELIVER
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Options::from(params).map(|_| ())
    }

    fn deliver(params: &Params, actions: &[Action]) -> Result<DeliveryReport, Error> {
        let options = Options::from(params)?;
        let mut report = DeliveryReport {
            delivered: 0,
            failed: Vec::new(),
        };
        for batch in actions.chunks(options.batch_size) {
            let outcome = match tessera_sdk::http::send(&request(&options.url, batch)) {
                Ok(response) => from_response(&options.url, batch, &response),
                Err(error) => from_send_error(&options.url, batch, error),
            };
            report.delivered += outcome.delivered;
            report.failed.extend(outcome.failed);
        }
        Ok(report)
    }
}

tessera_sdk::export_connector!(WebhookOut);

#[derive(Debug)]
struct Options {
    url: String,
    batch_size: usize,
}

impl Options {
    fn from(params: &Params) -> Result<Self, Error> {
        let url = params.text("url")?.trim().to_owned();
        check_url(&url).map_err(|why| Error::config(format!("parameter `url`: {why}")))?;
        let batch_size = match params.get("batch_size") {
            None => DEFAULT_BATCH,
            Some(_) => params.integer("batch_size")?,
        };
        if !(1..=MAX_BATCH).contains(&batch_size) {
            return Err(Error::config(format!(
                "parameter `batch_size` is {batch_size}; it must be between 1 and {MAX_BATCH}"
            )));
        }
        Ok(Options {
            url,
            batch_size: batch_size as usize,
        })
    }
}

/// What the plugin can tell about a URL before the host checks it against
/// the grant (which it alone can do).
fn check_url(url: &str) -> Result<(), String> {
    let rest = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))
        .ok_or_else(|| format!("{url:?} must start with https:// or http://"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL must not contain spaces or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if authority.contains('@') {
        return Err(
            "URLs with credentials (user@host) are refused by the host; the receiver's host \
             must be in the URL itself"
                .into(),
        );
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The URL as reasons show it: without its query string and fragment, which
/// may carry a token.
fn shown(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

fn request(url: &str, batch: &[Action]) -> Request {
    let header = |name: &str, value: String| Header {
        name: name.into(),
        value,
    };
    Request {
        method: "POST".into(),
        url: url.into(),
        headers: vec![
            header("content-type", "application/json".into()),
            header(
                "accept",
                "application/json, text/plain;q=0.9, */*;q=0.1".into(),
            ),
            header("idempotency-key", idempotency_key(batch)),
        ],
        body: body(batch),
    }
}

/// `{"actions": [...]}`, as the module docs describe it.
fn body(batch: &[Action]) -> Vec<u8> {
    let actions: Vec<Json> = batch
        .iter()
        .map(|a| {
            let attributes: Map<String, Json> = a
                .attributes
                .iter()
                .map(|f| (f.name.clone(), json_value(&f.value)))
                .collect();
            json!({
                "delivery_id": a.delivery_id,
                "recipient": a.recipient,
                "action": a.action,
                "attributes": attributes,
            })
        })
        .collect();
    json!({ "actions": actions }).to_string().into_bytes()
}

fn json_value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Value::Text(t) => Json::String(t.clone()),
        Value::Timestamp(ms) => Json::from(*ms),
        Value::TextList(list) => Json::from(list.clone()),
    }
}

/// Lowercase hex SHA-256 of the delivery ids, each followed by `\n`.
fn idempotency_key(batch: &[Action]) -> String {
    let mut hasher = Sha256::new();
    for action in batch {
        hasher.update(action.delivery_id.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a retry may succeed where this status failed.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

fn success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The report for one request the receiver answered.
fn from_response(url: &str, batch: &[Action], response: &Response) -> DeliveryReport {
    let status = response.status;
    if !success(status) {
        let reason = format!(
            "the receiver at {} answered HTTP {status}{}",
            shown(url),
            error_excerpt(response)
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        return all_failed(batch, &reason, retryable_status(status));
    }
    let items = item_results(&response.body);
    let mut report = DeliveryReport {
        delivered: 0,
        failed: Vec::new(),
    };
    for action in batch {
        match items.get(action.delivery_id.as_str()) {
            Some(item) if !success(item.status) => report.failed.push(DeliveryFailure {
                delivery_id: action.delivery_id.clone(),
                reason: format!(
                    "the receiver at {} answered HTTP {status} but reported status {} for this \
                     action{}",
                    shown(url),
                    item.status,
                    item.error
                        .as_deref()
                        .and_then(excerpt)
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                retryable: retryable_status(item.status),
            }),
            _ => report.delivered += 1,
        }
    }
    report
}

/// The report for one request that got no response.
fn from_send_error(url: &str, batch: &[Action], error: Error) -> DeliveryReport {
    let url = shown(url);
    let (reason, retryable) = match error {
        Error::Unavailable(message) if message.starts_with(REFUSED_BY_HOST) => (
            format!("the host refused the request to {url}: {message}"),
            false,
        ),
        Error::Unavailable(message) => (format!("the request to {url} failed: {message}"), true),
        Error::InvalidInput(message) => (
            format!("the request to {url} cannot be sent: {message}"),
            false,
        ),
        Error::InvalidConfig(message) | Error::Internal(message) => {
            (format!("the request to {url} failed: {message}"), true)
        }
    };
    all_failed(batch, &reason, retryable)
}

fn all_failed(batch: &[Action], reason: &str, retryable: bool) -> DeliveryReport {
    DeliveryReport {
        delivered: 0,
        failed: batch
            .iter()
            .map(|a| DeliveryFailure {
                delivery_id: a.delivery_id.clone(),
                reason: reason.to_owned(),
                retryable,
            })
            .collect(),
    }
}

/// One entry of a receiver's `results` list.
#[derive(Debug, PartialEq)]
struct ItemResult {
    status: u16,
    error: Option<String>,
}

/// The receiver's per-action results, by delivery id (the first entry for
/// an id counts); empty when the body is not such a list.
fn item_results(body: &[u8]) -> HashMap<String, ItemResult> {
    let mut out = HashMap::new();
    let Ok(Json::Object(mut root)) = serde_json::from_slice::<Json>(body) else {
        return out;
    };
    let Some(Json::Array(results)) = root.remove("results") else {
        return out;
    };
    for entry in results {
        let (Some(id), Some(status)) = (
            entry.get("delivery_id").and_then(Json::as_str),
            entry
                .get("status")
                .and_then(Json::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..600).contains(s)),
        ) else {
            continue;
        };
        let error = entry.get("error").and_then(Json::as_str).map(str::to_owned);
        out.entry(id.to_owned())
            .or_insert(ItemResult { status, error });
    }
    out
}

/// The start of a receiver's error body, if it is text.
fn error_excerpt(response: &Response) -> Option<String> {
    let content_type = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| h.value.to_ascii_lowercase());
    let textual = content_type
        .as_deref()
        .is_none_or(|t| t.starts_with("text/") || t.contains("json") || t.contains("xml"));
    if !textual {
        return None;
    }
    // Enough bytes for the excerpt; a character cut at the end is dropped
    // with the rest.
    let head = &response.body[..response.body.len().min(EXCERPT_CHARS * 4)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text.into(),
        // Only the last character was cut.
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&head[..e.valid_up_to()]),
        // Declared text in another encoding: what can be read of it.
        Err(_) if content_type.is_some() => String::from_utf8_lossy(head),
        // Undeclared bytes that are not UTF-8: not text.
        Err(_) => return None,
    };
    excerpt(&text)
}

/// Whitespace collapsed, control characters dropped, at most
/// [`EXCERPT_CHARS`] characters (then `…`); `None` when nothing is left.
fn excerpt(text: &str) -> Option<String> {
    let collapsed = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(|c: char| c.is_control(), "");
    if collapsed.is_empty() {
        return None;
    }
    let mut chars = collapsed.char_indices();
    match chars.nth(EXCERPT_CHARS) {
        Some((cut, _)) => Some(format!("{}…", &collapsed[..cut])),
        None => Some(collapsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str) -> Action {
        Action {
            delivery_id: id.into(),
            recipient: format!("member-{id}"),
            action: "coupon".into(),
            attributes: vec![
                FieldValue {
                    name: "amount".into(),
                    value: Value::Number(5.5),
                },
                FieldValue {
                    name: "expires_at".into(),
                    value: Value::Timestamp(1_780_272_000_000),
                },
                FieldValue {
                    name: "tags".into(),
                    value: Value::TextList(vec!["spring".into()]),
                },
                FieldValue {
                    name: "ratio".into(),
                    value: Value::Number(f64::NAN),
                },
            ],
        }
    }

    fn response(status: u16, content_type: Option<&str>, body: &str) -> Response {
        Response {
            status,
            headers: content_type
                .map(|t| Header {
                    name: "Content-Type".into(),
                    value: t.into(),
                })
                .into_iter()
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn params(url: &str, batch_size: Option<i64>) -> Params {
        let mut values = vec![FieldValue {
            name: "url".into(),
            value: Value::Text(url.into()),
        }];
        if let Some(size) = batch_size {
            values.push(FieldValue {
                name: "batch_size".into(),
                value: Value::Integer(size),
            });
        }
        Params::new(values)
    }

    const URL: &str = "https://hooks.partner.example/tessera?token=s3cret";

    #[test]
    fn the_body_holds_every_action_with_its_attributes_as_json() {
        let body: Json = serde_json::from_slice(&body(&[action("d-1"), action("d-2")])).unwrap();
        assert_eq!(
            body["actions"][0],
            json!({
                "delivery_id": "d-1",
                "recipient": "member-d-1",
                "action": "coupon",
                "attributes": {
                    "amount": 5.5,
                    "expires_at": 1_780_272_000_000_i64,
                    "tags": ["spring"],
                    "ratio": null,
                },
            })
        );
        assert_eq!(body["actions"][1]["delivery_id"], "d-2");
    }

    #[test]
    fn the_idempotency_key_is_the_sha256_of_the_delivery_ids() {
        // printf 'd-1\nd-2\n' | sha256sum
        assert_eq!(
            idempotency_key(&[action("d-1"), action("d-2")]),
            "e157ce03cc0854e440831062726dc7a16e5b74e2b3982e010453debd28ef6326"
        );
        let key = idempotency_key(&[action("d-1"), action("d-2")]);
        assert_eq!(key.len(), 64);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(key, idempotency_key(&[action("d-2"), action("d-1")]));
        assert_ne!(key, idempotency_key(&[action("d-1")]));
        let request = request(URL, &[action("d-1"), action("d-2")]);
        assert!(
            request
                .headers
                .iter()
                .any(|h| h.name == "idempotency-key" && h.value == key)
        );
        assert_eq!(request.method, "POST");
    }

    #[test]
    fn success_delivers_every_action() {
        let batch = [action("d-1"), action("d-2")];
        let report = from_response(URL, &batch, &response(200, None, ""));
        assert_eq!(report.delivered, 2);
        assert!(report.failed.is_empty());
    }

    #[test]
    fn throttling_timeouts_and_server_errors_are_retryable_other_statuses_are_not() {
        for (status, retryable) in [
            (408, true),
            (425, true),
            (429, true),
            (500, true),
            (503, true),
            (599, true),
            (400, false),
            (401, false),
            (404, false),
            (409, false),
            (422, false),
            (304, false),
        ] {
            let report = from_response(URL, &[action("d-1")], &response(status, None, ""));
            assert_eq!(report.delivered, 0, "{status}");
            let failure = &report.failed[0];
            assert_eq!(failure.retryable, retryable, "{status}");
            assert!(
                failure.reason.contains(&format!("HTTP {status}")),
                "{}",
                failure.reason
            );
        }
    }

    #[test]
    fn a_refusal_names_the_status_the_url_without_its_query_and_the_start_of_a_text_body() {
        let long = format!(
            "{{\"error\": \"unknown action\",\n  \"detail\": \"{}\"}}",
            "x".repeat(500)
        );
        let report = from_response(
            URL,
            &[action("d-1")],
            &response(400, Some("application/json"), &long),
        );
        let reason = &report.failed[0].reason;
        assert!(
            reason.starts_with(
                "the receiver at https://hooks.partner.example/tessera answered HTTP 400: \
                 {\"error\": \"unknown action\", \"detail\""
            ),
            "{reason}"
        );
        assert!(!reason.contains("s3cret"), "{reason}");
        assert!(reason.ends_with('…'), "{reason}");
        assert!(reason.chars().count() < 300, "{reason}");

        let binary = from_response(
            URL,
            &[action("d-1")],
            &response(400, Some("application/octet-stream"), "\u{1}\u{2}"),
        );
        assert_eq!(
            binary.failed[0].reason,
            "the receiver at https://hooks.partner.example/tessera answered HTTP 400"
        );
        let mut undeclared = response(500, None, "");
        undeclared.body = vec![0xff, 0xfe, 0x00, 0x41];
        let report = from_response(URL, &[action("d-1")], &undeclared);
        assert!(report.failed[0].reason.ends_with("answered HTTP 500"));
    }

    #[test]
    fn a_results_list_fails_only_the_actions_it_reports_failed() {
        let batch = [action("d-1"), action("d-2"), action("d-3"), action("d-4")];
        let body = r#"{"results": [
            {"delivery_id": "d-1", "status": 200},
            {"delivery_id": "d-2", "status": 422, "error": "unknown recipient"},
            {"delivery_id": "d-3", "status": 503},
            {"delivery_id": "d-2", "status": 200}
        ]}"#;
        let report = from_response(URL, &batch, &response(207, Some("application/json"), body));
        assert_eq!(report.delivered, 2, "d-1 and d-4 (not listed)");
        assert_eq!(report.failed.len(), 2);
        assert_eq!(report.failed[0].delivery_id, "d-2");
        assert!(!report.failed[0].retryable);
        assert!(
            report.failed[0]
                .reason
                .ends_with("reported status 422 for this action: unknown recipient"),
            "{}",
            report.failed[0].reason
        );
        assert_eq!(report.failed[1].delivery_id, "d-3");
        assert!(report.failed[1].retryable);

        let not_a_list = from_response(URL, &batch, &response(200, None, "OK"));
        assert_eq!(not_a_list.delivered, 4);
    }

    #[test]
    fn transport_failures_are_retryable_and_host_refusals_are_not() {
        let batch = [action("d-1"), action("d-2")];
        let failed = from_send_error(
            URL,
            &batch,
            Error::unavailable("request to hooks.partner.example failed: Connection refused"),
        );
        assert_eq!(failed.failed.len(), 2);
        assert!(failed.failed.iter().all(|f| f.retryable));
        assert!(
            failed.failed[0]
                .reason
                .starts_with("the request to https://hooks.partner.example/tessera failed"),
            "{}",
            failed.failed[0].reason
        );

        let refused = from_send_error(
            URL,
            &batch,
            Error::unavailable(
                "outbound request refused: host hooks.partner.example is not granted",
            ),
        );
        assert!(refused.failed.iter().all(|f| !f.retryable));
        assert!(refused.failed[0].reason.contains("is not granted"));

        let invalid = from_send_error(
            URL,
            &batch,
            Error::input("the request body of 2000000 bytes is larger than the granted 1048576"),
        );
        assert!(invalid.failed.iter().all(|f| !f.retryable));
    }

    #[test]
    fn parameters_are_checked() {
        let options = Options::from(&params("HTTPS://hooks.partner.example/x", None)).unwrap();
        assert_eq!(options.batch_size, 100);
        assert!(Options::from(&params("http://127.0.0.1:8080/hook", Some(5))).is_ok());
        for (url, batch, needle) in [
            ("ftp://hooks.partner.example/", None, "must start with"),
            ("hooks.partner.example/x", None, "must start with"),
            ("https:///x", None, "no host"),
            (
                "https://user:pw@hooks.partner.example/",
                None,
                "credentials",
            ),
            ("https://hooks.partner.example/a b", None, "spaces"),
            ("https://hooks.partner.example/", Some(0), "batch_size"),
            ("https://hooks.partner.example/", Some(1001), "batch_size"),
        ] {
            match Options::from(&params(url, batch)) {
                Err(Error::InvalidConfig(message)) => {
                    assert!(message.contains(needle), "{url}: {message}")
                }
                other => panic!("{url}: expected invalid-config, got {other:?}"),
            }
        }
    }

    #[test]
    fn excerpts_are_short_single_line_text() {
        assert_eq!(excerpt("  a\n\tb  "), Some("a b".into()));
        assert_eq!(excerpt(" \n "), None);
        let long = "é".repeat(300);
        let cut = excerpt(&long).unwrap();
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
