//! Segment-compatible ingest: `/v1/track`, `/v1/identify`, `/v1/page`,
//! `/v1/screen`, `/v1/group`, `/v1/alias` (one message, the call's kind),
//! `/v1/events` (one message with its `type`) and `/v1/batch` (many).
//!
//! A batch is accepted in part: each message is checked and converted
//! ([`crate::segment`]); the valid ones go to the vault in one
//! `ingest_batch`, and the answer lists the others with their index, code
//! and message. The vault refuses a whole batch for one record it finds
//! invalid (nothing written); then the batch is split in halves until the
//! offending records are alone, so that k bad records cost about
//! k·log₂(n) vault calls and the rest is still stored.

use axum::Extension;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tessera_vault::{Actor, Incoming, IngestOutcome, Refusal, TenantSettings, Vault, VaultError};

use crate::auth::Role;
use crate::error::{
    ApiError, ErrorBody, Json, JsonBytes, body_error, is_item_error, json_error_reason,
};
use crate::metrics::IngestCounts;
use crate::segment::{self, Context, Defaults, ItemError, Kind, Message};
use crate::tokens::{Principal, now_ms};
use crate::{AppState, blocking};

/// What an ingest request did. `success` is true whenever the request was
/// taken (Segment clients look at the status and this field); messages that
/// were not stored are listed in `errors`.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    pub success: bool,
    /// Messages in the request.
    pub received: usize,
    /// Messages stored (their events may be duplicates of stored ones).
    pub accepted: u64,
    pub events_inserted: u64,
    /// Events whose `messageId` was stored before: not stored again.
    pub duplicates: u64,
    /// Events older than the person's retention period: not stored.
    pub expired: u64,
    /// Messages refused because they name an erased person.
    pub suppressed: u64,
    pub errors: Vec<ItemReport>,
}

/// One message that was not stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemReport {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Why an untrusted message that would join two known people is refused.
fn untrusted_merge() -> ItemError {
    ItemError {
        code: "untrusted_merge",
        message: "the message names identities of two people the tenant knows; a write key may \
                  not join them (anyone can send any address with it): send it with a server-side \
                  token (operator or marketer) if they are one person"
            .into(),
        field: None,
    }
}

impl IngestReport {
    /// What the vault did with the message at `index`.
    fn outcome(&mut self, index: usize, outcome: &IngestOutcome) {
        match &outcome.refused {
            Some(Refusal::UntrustedMerge) => return self.error(index, untrusted_merge()),
            Some(Refusal::SchemaChanged { name }) => {
                return self.error(
                    index,
                    ItemError {
                        code: "invalid_trait",
                        message: format!(
                            "trait {name:?} no longer fits the tenant's schema, which changed \
                             while the message was being stored; nothing of it was stored"
                        ),
                        field: Some(format!("traits.{name}")),
                    },
                );
            }
            Some(Refusal::EventSchemaChanged { event, property }) => {
                let (code, field, what) = match property {
                    Some(property) => (
                        "invalid_property",
                        format!("properties.{property}"),
                        format!("property {event}.{property}"),
                    ),
                    None => (
                        "invalid_event",
                        "event".to_owned(),
                        format!("event type {event:?}"),
                    ),
                };
                return self.error(
                    index,
                    ItemError {
                        code,
                        message: format!(
                            "{what} no longer fits the tenant's event schema, which changed \
                             while the message was being stored; nothing of it was stored"
                        ),
                        field: Some(field),
                    },
                );
            }
            Some(_) => self.suppressed += 1,
            None => self.accepted += 1,
        }
        self.events_inserted += outcome.events_inserted;
        self.duplicates += outcome.duplicates;
        self.expired += outcome.expired;
    }

    fn error(&mut self, index: usize, error: ItemError) {
        self.errors.push(ItemReport {
            index,
            code: error.code,
            message: error.message,
            details: error.field.map(|field| json!({ "field": field })),
        });
    }

    fn counts(&self) -> IngestCounts {
        IngestCounts {
            accepted: self.accepted,
            invalid: self.errors.len() as u64,
            suppressed: self.suppressed,
            inserted: self.events_inserted,
            duplicates: self.duplicates,
        }
    }
}

/// A vault refusal as the API answers it, without the vault's record
/// number: the vault numbers records within its call, and the request's own
/// index (of a batch) says which message it was.
fn vault_error(error: VaultError) -> ApiError {
    let mut api = ApiError::from(error);
    if let Some((head, rest)) = api.message.split_once(": record ")
        && let Some((n, tail)) = rest.split_once(": ")
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        api.message = format!("{head}: {tail}");
    }
    api
}

/// A vault refusal of one record as an item error.
fn vault_item_error(error: VaultError) -> ItemError {
    let api = vault_error(error);
    ItemError {
        code: api.code,
        message: api.message,
        field: api
            .details
            .as_ref()
            .and_then(|d| d.get("field"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// Who sends a request's messages, and whether the vault may trust the
/// identities they name: an `ingest` token is a write key, which may sit
/// in a web page, so anyone can send any address with it.
struct Sender<'a> {
    vault: &'a Vault,
    tenant: &'a str,
    actor: Actor,
    trusted: bool,
}

impl<'a> Sender<'a> {
    fn new(vault: &'a Vault, principal: &'a Principal) -> Self {
        Self {
            vault,
            tenant: &principal.tenant,
            actor: principal.actor(),
            trusted: principal.role != Role::Ingest,
        }
    }

    fn ingest(&self, items: &[Incoming]) -> Result<Vec<IngestOutcome>, VaultError> {
        let (_, outcomes) = if self.trusted {
            self.vault.ingest_batch(self.tenant, items, &self.actor)?
        } else {
            self.vault
                .ingest_batch_untrusted(self.tenant, items, &self.actor)?
        };
        Ok(outcomes)
    }
}

/// Ingests `items` (with their indexes in the request), splitting on
/// per-record refusals; any other failure is the request's.
fn ingest_split(
    sender: &Sender<'_>,
    indexes: &[usize],
    items: &[Incoming],
    report: &mut IngestReport,
) -> Result<(), VaultError> {
    if items.is_empty() {
        return Ok(());
    }
    match sender.ingest(items) {
        Ok(outcomes) => {
            for (index, outcome) in indexes.iter().zip(&outcomes) {
                report.outcome(*index, outcome);
            }
            Ok(())
        }
        Err(error) if is_item_error(&error) => {
            if items.len() == 1 {
                report.error(indexes[0], vault_item_error(error));
                return Ok(());
            }
            let mid = items.len() / 2;
            ingest_split(sender, &indexes[..mid], &items[..mid], report)?;
            ingest_split(sender, &indexes[mid..], &items[mid..], report)
        }
        Err(error) => Err(error),
    }
}

fn message_too_large(limit: usize) -> ItemError {
    ItemError {
        code: "message_too_large",
        message: format!("the message is larger than {limit} bytes (limits.max_message_bytes)"),
        field: None,
    }
}

/// One message of the endpoint's kind (`None`: the message's `type`).
async fn single(
    state: AppState,
    principal: Principal,
    body: JsonBytes,
    kind: Option<Kind>,
) -> Result<Json<IngestReport>, ApiError> {
    let limit = state.config.limits.max_message_bytes;
    let item_error = |error: ItemError, status| {
        let mut api = ApiError::new(status, error.code, error.message);
        if let Some(field) = error.field {
            api = api.with_details(json!({ "field": field }));
        }
        api
    };
    if body.0.len() > limit {
        return Err(item_error(
            message_too_large(limit),
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    let message = parse_message(&body.0)?;
    let metrics = state.metrics.clone();
    let report = blocking(move || {
        let settings = state.vault.settings(&principal.tenant)?;
        let incoming =
            segment::convert(message, kind, &Defaults::default(), &settings, now_ms())
                .map_err(|error| item_error(error, axum::http::StatusCode::UNPROCESSABLE_ENTITY))?;
        let mut report = IngestReport {
            success: true,
            received: 1,
            ..IngestReport::default()
        };
        let outcomes = Sender::new(&state.vault, &principal)
            .ingest(std::slice::from_ref(&incoming))
            .map_err(vault_error)?;
        if let Some(outcome) = outcomes.first() {
            if outcome.refused == Some(Refusal::UntrustedMerge) {
                return Err(item_error(
                    untrusted_merge(),
                    axum::http::StatusCode::CONFLICT,
                ));
            }
            report.outcome(0, outcome);
        }
        Ok(report)
    })
    .await;
    match &report {
        Ok(report) => metrics.ingest(report.counts()),
        Err(error) if error.status.is_client_error() => metrics.ingest(IngestCounts {
            invalid: 1,
            ..IngestCounts::default()
        }),
        Err(_) => {}
    }
    Ok(Json(report?))
}

macro_rules! single_endpoint {
    ($name:ident, $kind:expr, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "ingest", description = $doc,
            request_body(content = Message, content_type = "application/json"),
            responses(
                (status = 200, description = "Stored (or a duplicate, expired, or refused for \
                    an erased person: see the counts).", body = IngestReport),
                (status = 409, description = "Sent with a write key, the message would join two \
                    people the tenant knows (`untrusted_merge`).", body = ErrorBody),
            ))]
        pub(crate) async fn $name(
            State(state): State<AppState>,
            Extension(principal): Extension<Principal>,
            body: JsonBytes,
        ) -> Result<Json<IngestReport>, ApiError> {
            single(state, principal, body, $kind).await
        }
    };
}

single_endpoint!(
    track,
    Some(Kind::Track),
    "/v1/track",
    "One `track` message: an event the person did."
);
single_endpoint!(
    identify,
    Some(Kind::Identify),
    "/v1/identify",
    "One `identify` message: who the person is, and their traits."
);
single_endpoint!(
    page,
    Some(Kind::Page),
    "/v1/page",
    "One `page` message: a page view."
);
single_endpoint!(
    screen,
    Some(Kind::Screen),
    "/v1/screen",
    "One `screen` message: an app screen view."
);
single_endpoint!(
    group,
    Some(Kind::Group),
    "/v1/group",
    "One `group` message: the person belongs to a group (company, household)."
);
single_endpoint!(
    alias,
    Some(Kind::Alias),
    "/v1/alias",
    "One `alias` message: two ids of one person."
);
single_endpoint!(
    events,
    None,
    "/v1/events",
    "One message of any kind, named by its `type`."
);

/// Parses the body of a one-message endpoint: a JSON error is
/// `invalid_json`, valid JSON that is not a message `invalid_message`.
pub fn parse_message(body: &[u8]) -> Result<Message, ApiError> {
    serde_json::from_slice(body).map_err(|error| match body_error(&error) {
        e if e.code == "invalid_json" => e,
        _ => ApiError::unprocessable(
            "invalid_message",
            format!(
                "the message is not a Segment message: {}",
                json_error_reason(&error)
            ),
        ),
    })
}

/// A `/v1/batch` body as [`decode_batch`] leaves it for the vault.
#[derive(Debug)]
pub struct DecodedBatch {
    /// `received`, and in `errors` the messages refused while decoding.
    pub report: IngestReport,
    /// The index in the batch of each of `items`.
    pub indexes: Vec<usize>,
    /// The messages that decoded, converted, in batch order.
    pub items: Vec<Incoming>,
}

/// Decodes a `/v1/batch` body and converts each message with the tenant's
/// settings: everything the endpoint does before the vault. The body as a
/// whole is refused (bad JSON, too many messages); a bad message is listed
/// in the report and the others still decode.
pub fn decode_batch(
    bytes: &[u8],
    max_messages: usize,
    max_message_bytes: usize,
    settings: &TenantSettings,
    now: i64,
) -> Result<DecodedBatch, ApiError> {
    let parsed: BatchBody<'_> = serde_json::from_slice(bytes).map_err(|e| body_error(&e))?;
    if parsed.batch.len() > max_messages {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_messages",
            format!(
                "the batch has {} messages, more than the {max_messages} one request may carry (limits.max_batch_messages); split it",
                parsed.batch.len()
            ),
        ));
    }
    let defaults = Defaults {
        context: parsed.context,
        sent_at: parsed.sent_at,
    };
    let mut report = IngestReport {
        success: true,
        received: parsed.batch.len(),
        ..IngestReport::default()
    };
    let mut indexes = Vec::with_capacity(parsed.batch.len());
    let mut items = Vec::with_capacity(parsed.batch.len());
    for (index, raw) in parsed.batch.iter().enumerate() {
        let converted = if raw.get().len() > max_message_bytes {
            Err(message_too_large(max_message_bytes))
        } else {
            segment::parse(raw.get())
                .and_then(|m| segment::convert(m, None, &defaults, settings, now))
        };
        match converted {
            Ok(incoming) => {
                indexes.push(index);
                items.push(incoming);
            }
            Err(error) => report.error(index, error),
        }
    }
    Ok(DecodedBatch {
        report,
        indexes,
        items,
    })
}

/// The body of `/v1/batch`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(default)]
    context: Option<Context>,
    #[serde(default)]
    sent_at: Option<String>,
}

/// The body of `/v1/batch`, as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[schema(as = Batch)]
#[allow(dead_code)] // only described, never built: `BatchBody` is parsed
pub(crate) struct BatchDoc {
    /// The messages, each with its `type`; at most `limits.max_batch_messages`.
    batch: Vec<Message>,
    /// Applies to every message that has none.
    context: Option<Context>,
    /// ISO 8601; when the client sent the batch.
    #[schema(rename = "sentAt")]
    sent_at: Option<String>,
}

/// Many messages, each with its `type`, stored in part: the answer lists
/// those that were not, with their index, code and message.
#[utoipa::path(post, path = "/v1/batch", tag = "ingest",
    request_body(content = BatchDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Taken; messages that were not stored are in `errors`.",
            body = IngestReport),
    ))]
pub(crate) async fn batch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBytes,
) -> Result<Json<IngestReport>, ApiError> {
    let max_messages = state.config.limits.max_batch_messages;
    // Parsed on the blocking pool too: a 512 KiB body is a few milliseconds.
    let metrics = state.metrics.clone();
    let report = blocking(move || {
        let settings = state.vault.settings(&principal.tenant)?;
        let DecodedBatch {
            mut report,
            indexes,
            items,
        } = decode_batch(
            &body.0,
            max_messages,
            state.config.limits.max_message_bytes,
            &settings,
            now_ms(),
        )?;
        ingest_split(
            &Sender::new(&state.vault, &principal),
            &indexes,
            &items,
            &mut report,
        )?;
        report.errors.sort_by_key(|e| e.index);
        Ok(report)
    })
    .await?;
    metrics.ingest(report.counts());
    if !report.errors.is_empty() {
        tracing::info!(
            received = report.received,
            refused = report.errors.len(),
            "batch accepted in part"
        );
    }
    Ok(Json(report))
}
