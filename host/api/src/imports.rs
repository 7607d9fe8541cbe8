//! Imports over HTTP: create an import (connector, parameters, chunking),
//! stream its data with `PUT /v1/imports/{id}/data`, follow it (status,
//! live progress, the quality report), and work through its dead letters
//! (list, read, fix, replay). The [`Importer`] does the work; these
//! handlers map it onto routes, roles and error codes.
//!
//! An upload streams: the body is handed to the importer in pieces through
//! a bounded channel while the connector parses and the vault stores, so
//! memory stays bounded by the importer's chunk size whatever the file's.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value as JsonValue, json};
use tessera_imports::{
    Chunking, DeadLetterSummary, DeliveryError, Fix, ImportError, ImportItem, ImportRecord,
    ImportReport, ImportSpec, ImportStatus, Importer, LetterContent, ParamValue, Progress,
    ReplayReport, Source, SourceSpec, Started,
};
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_vault::Channel;

use crate::AppState;
use crate::error::{ApiError, ErrorBody, Json, Path, Query, page_limit};
use crate::tokens::Principal;

/// The most imports or dead letters one list answers.
const PAGE_MAX: usize = 1_000;

/// The route that streams an import's data: it has a timeout of its own.
pub(crate) const DATA_ROUTE: &str = "/v1/imports/{id}/data";

/// Imports created and waiting for their data, and the progress of those
/// running in this server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ImportDesk {
    importer: Importer,
    inner: Arc<Mutex<Desk>>,
    /// Uploads being read now.
    uploads: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Default)]
struct Desk {
    /// Created, data not yet started; by import id.
    waiting: HashMap<String, Waiting>,
    /// Reading their data now; by import id.
    running: HashMap<String, Progress>,
}

#[derive(Debug)]
struct Waiting {
    tenant: String,
    /// The token (or system) that created it: only it sends the data.
    creator: String,
    since: Instant,
    started: Started,
}

/// Why an upload cannot start.
enum NotWaiting {
    /// The tenant has no import of that id waiting for data.
    Missing,
    /// It waits for data from the caller that created it.
    OtherCaller,
}

/// The most imports of one tenant that may wait for their data at once.
pub const MAX_WAITING_PER_TENANT: usize = 100;

/// One of the server's upload slots, given back when dropped.
struct UploadSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl ImportDesk {
    pub fn new(importer: Importer) -> Self {
        Self {
            importer,
            inner: Arc::default(),
            uploads: Arc::default(),
        }
    }

    pub fn importer(&self) -> &Importer {
        &self.importer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Desk> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails the imports whose data did not start arriving within `wait`:
    /// returns how many. Blocks (it writes their records).
    pub fn expire_waiting(&self, wait: Duration) -> usize {
        let expired: Vec<Waiting> = {
            let mut desk = self.lock();
            let ids: Vec<String> = desk
                .waiting
                .iter()
                .filter(|(_, w)| w.since.elapsed() >= wait)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| desk.waiting.remove(id))
                .collect()
        };
        let count = expired.len();
        for waiting in expired {
            let reason = format!(
                "no data was uploaded within {} s of the import's creation",
                wait.as_secs()
            );
            if let Err(error) = waiting.started.abandon(&reason) {
                tracing::warn!(tenant = %waiting.tenant, %error, "an abandoned import could not be recorded");
            }
        }
        count
    }

    /// Starts an import of `tenant` (the connector is checked and takes
    /// the parameters) and keeps it waiting for its data. Blocks.
    pub fn create(
        &self,
        tenant: &str,
        spec: ImportSpec,
        actor: &tessera_vault::Actor,
    ) -> Result<ImportRecord, ImportError> {
        let started = self.importer.start(tenant, spec, actor)?;
        let record = started.record().clone();
        self.lock().waiting.insert(
            record.id.clone(),
            Waiting {
                tenant: tenant.to_owned(),
                creator: actor.id.clone(),
                since: Instant::now(),
                started,
            },
        );
        Ok(record)
    }

    /// How many imports of `tenant` wait for their data.
    fn waiting_of(&self, tenant: &str) -> usize {
        self.lock()
            .waiting
            .values()
            .filter(|w| w.tenant == tenant)
            .count()
    }

    /// An upload slot, if fewer than `max` uploads are read now.
    fn upload_slot(&self, max: usize) -> Option<UploadSlot> {
        use std::sync::atomic::Ordering;
        self.uploads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| UploadSlot(self.uploads.clone()))
    }

    fn take_waiting(&self, tenant: &str, caller: &str, id: &str) -> Result<Started, NotWaiting> {
        let mut desk = self.lock();
        match desk.waiting.get(id) {
            Some(w) if w.tenant == tenant && w.creator == caller => {
                let waiting = desk.waiting.remove(id).expect("present");
                desk.running.insert(id.to_owned(), Progress::default());
                Ok(waiting.started)
            }
            Some(w) if w.tenant == tenant => Err(NotWaiting::OtherCaller),
            _ => Err(NotWaiting::Missing),
        }
    }

    fn live(&self, id: &str) -> (bool, Option<Progress>) {
        let desk = self.lock();
        (desk.waiting.contains_key(id), desk.running.get(id).copied())
    }

    fn progress(&self, id: &str, progress: Progress) {
        if let Some(slot) = self.lock().running.get_mut(id) {
            *slot = progress;
        }
    }

    fn finished(&self, id: &str) {
        self.lock().running.remove(id);
    }
}

/// An import as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    pub id: String,
    /// The connector plugin, and the version that ran.
    pub connector: String,
    pub connector_version: String,
    /// What was imported, as the creator named it.
    pub source: String,
    pub chunking: Chunking,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// `running` from creation until its data is read, then `completed` or
    /// `failed` (see `error`).
    pub status: ImportStatus,
    /// Created, waiting for `PUT /v1/imports/{id}/data`.
    pub awaiting_data: bool,
    pub started_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The token (or system job) that created it.
    pub started_by: String,
    /// The quality report (complete once the import ended).
    pub report: ImportReport,
    /// While its data is read: how far it has come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The connector's parameters as resolved (without `header` and
    /// `first_row`, which the importer sets per chunk).
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, JsonValue>,
}

impl ImportView {
    fn of(record: &ImportRecord, desk: &ImportDesk) -> Self {
        let (awaiting_data, progress) = if record.status == ImportStatus::Running {
            desk.live(&record.id)
        } else {
            (false, None)
        };
        Self {
            id: record.id.clone(),
            connector: record.connector.clone(),
            connector_version: record.connector_version.clone(),
            source: record.source.clone(),
            chunking: record.chunking,
            channel: record.channel,
            status: record.status,
            awaiting_data,
            started_at_ms: record.started_at_ms,
            finished_at_ms: record.finished_at_ms,
            started_by: record.started_by.id.clone(),
            report: record.report.clone(),
            progress,
            error: record.error.clone(),
            params: shown_params(&record.params),
        }
    }
}

/// Whether a parameter's name says it holds a credential.
fn secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "secret",
        "token",
        "password",
        "api_key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Parameters as the API shows them: a credential's value hidden, and a
/// URL without its query string (which may carry a key).
pub(crate) fn shown_params(params: &[(String, ParamValue)]) -> BTreeMap<String, JsonValue> {
    params
        .iter()
        .map(|(name, value)| {
            let shown = match value {
                _ if secret(name) => json!("(hidden)"),
                ParamValue::Text(text)
                    if (text.starts_with("http://") || text.starts_with("https://"))
                        && text.contains('?') =>
                {
                    let base = text.split('?').next().unwrap_or_default();
                    json!(format!("{base}?(query hidden)"))
                }
                other => param_json(other),
            };
            (name.clone(), shown)
        })
        .collect()
}

pub(crate) fn param_json(value: &ParamValue) -> JsonValue {
    match value {
        ParamValue::Null => JsonValue::Null,
        ParamValue::Boolean(b) => json!(b),
        ParamValue::Integer(i) | ParamValue::Timestamp(i) => json!(i),
        ParamValue::Number(n) => json!(n),
        ParamValue::Text(t) => json!(t),
        ParamValue::TextList(l) => json!(l),
    }
}

/// Parameters from a JSON object (see [`param_value`]).
pub(crate) fn params_of(params: &BTreeMap<String, JsonValue>) -> Vec<FieldValue> {
    params
        .iter()
        .map(|(name, value)| FieldValue {
            name: name.clone(),
            value: param_value(name, value),
        })
        .collect()
}

/// A parameter from JSON: strings, numbers, booleans and lists of strings
/// as they are; an object or any other list as its JSON text (a connector
/// takes structured parameters, such as the CSV `mapping`, as JSON text).
fn param_value(name: &str, value: &JsonValue) -> Value {
    match value {
        JsonValue::Null => Value::Null,
        JsonValue::Bool(b) => Value::Boolean(*b),
        JsonValue::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        JsonValue::String(s) => Value::Text(s.clone()),
        JsonValue::Array(items) if items.iter().all(JsonValue::is_string) => Value::TextList(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        other => {
            tracing::debug!(param = name, "structured parameter passed as JSON text");
            Value::Text(other.to_string())
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(error: ImportError) -> Self {
        use ImportError as E;
        let message = error.to_string();
        match error {
            E::Connector(tessera_plugins::RegistryError::UnknownPlugin { .. }) => {
                ApiError::unprocessable("unknown_connector", message)
                    .with_field("connector", "no plugin of the tenant has that name")
            }
            E::Connector(inner) => inner.into(),
            E::Params(_) => ApiError::unprocessable("invalid_params", message),
            E::NotAConnector { .. } => ApiError::unprocessable("not_a_connector", message),
            E::Input(_) => ApiError::unprocessable("unreadable_input", message),
            E::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "import_too_large", message)
            }
            E::RecordTooLong { .. } => ApiError::unprocessable("record_too_long", message),
            E::BadHeader(_) => ApiError::unprocessable("bad_header", message),
            E::UnknownImport { .. } => ApiError::not_found("unknown_import", message),
            E::UnknownSource { .. } => ApiError::not_found("unknown_source", message),
            E::NotAPullSource { .. } => ApiError::unprocessable("not_a_pull_source", message),
            E::BadSource(_) => ApiError::unprocessable("invalid_source", message),
            E::PullRunning { .. } => ApiError::new(StatusCode::CONFLICT, "pull_running", message),
            E::PageFailed { .. } => ApiError::unprocessable("page_failed", message),
            E::BadCursor { .. } => ApiError::unprocessable("bad_cursor", message),
            E::BadSourceName { .. } => ApiError::unprocessable("invalid_source_name", message)
                .with_field("name", "1 to 64 of a-z, 0-9, `-` and `_`"),
            E::UnknownDeadLetter { .. } => ApiError::not_found("unknown_dead_letter", message),
            E::BadFix { .. } => ApiError::new(StatusCode::CONFLICT, "bad_fix", message),
            E::HeldElsewhere { .. } => {
                ApiError::new(StatusCode::CONFLICT, "import_held_elsewhere", message)
            }
            E::Vault(inner) => inner.into(),
            E::Failed { import, error } => {
                let inner = ApiError::from(*error);
                ApiError::new(inner.status, "import_failed", message).with_details(json!({
                    "import": import,
                    "cause": inner.code,
                }))
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<DeliveryError> for ApiError {
    fn from(error: DeliveryError) -> Self {
        use DeliveryError as E;
        let message = error.to_string();
        match error {
            E::Connector(inner) => inner.into(),
            E::NotAConnector { .. } | E::NotADestination { .. } => {
                ApiError::unprocessable("not_a_destination", message).with_field("connector", "")
            }
            E::Params(_) => {
                ApiError::unprocessable("invalid_params", message).with_field("params", "")
            }
            E::Vault(inner) => inner.into(),
            other => ApiError::internal(&other),
        }
    }
}

fn desk(state: &AppState) -> Result<ImportDesk, ApiError> {
    state.imports.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_plugin_runtime",
            "this server runs without a plugin runtime, so it has no connectors to import with",
        )
    })
}

/// Runs importer work (it calls plugins and the store, which blocks) on
/// the blocking pool.
async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(ImportDesk) -> Result<T, ImportError> + Send + 'static,
) -> Result<T, ApiError> {
    let desk = desk(state)?;
    crate::blocking(move || work(desk).map_err(ApiError::from)).await
}

/// `POST /v1/imports`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewImport {
    /// The installed connector plugin that parses the data (`csv`, `ndjson`, …).
    connector: String,
    /// The connector's parameters, by name. An object (such as the CSV
    /// `mapping`) is passed as its JSON text.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: BTreeMap<String, JsonValue>,
    /// How the data is cut into the chunks the connector parses: `csv`
    /// (records may hold quoted newlines), `lines` (NDJSON), `whole` (one
    /// JSON document, up to 16 MiB).
    chunking: Chunking,
    /// What is imported, for the record (a file name); default `upload`.
    #[serde(default)]
    source: Option<String>,
    /// The channel of its events; absent: events keyed by a member id and
    /// no web identity are offline, others online.
    #[serde(default)]
    channel: Option<Channel>,
}

/// `POST /v1/imports`: creates an import. The connector must be running
/// and take the parameters; then the import waits (`awaiting_data`) for
/// `PUT /v1/imports/{id}/data`, for at most `limits.import_wait_ms`.
#[utoipa::path(post, path = "/v1/imports", tag = "imports",
    request_body = NewImport,
    responses(
        (status = 201, description = "Created, waiting for its data.", body = ImportView),
        (status = 409, description = "The connector is quarantined.", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<NewImport>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    let source = body.source.unwrap_or_else(|| "upload".into());
    if source.is_empty() || source.chars().count() > 256 || source.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_source",
            "`source` must be 1 to 256 characters without control characters",
        )
        .with_field("source", "1 to 256 printable characters"));
    }
    let spec = ImportSpec {
        connector: body.connector,
        params: params_of(&body.params),
        chunking: body.chunking,
        source,
        channel: body.channel,
    };
    if desk(&state)?.waiting_of(&principal.tenant) >= MAX_WAITING_PER_TENANT {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_waiting_imports",
            format!(
                "the tenant has {MAX_WAITING_PER_TENANT} imports waiting for their data; upload \
                 to them first, or let them expire (limits.import_wait_ms)"
            ),
        );
        error.retry_after = Some(60);
        return Err(error);
    }
    let wait = Duration::from_millis(state.config.limits.import_wait_ms);
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let view = run(&state, move |desk| {
        desk.expire_waiting(wait);
        let record = desk.create(&tenant, spec, &actor)?;
        Ok(ImportView {
            awaiting_data: true,
            ..ImportView::of(&record, &desk)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One piece of an upload on its way to the importer.
enum Piece {
    Data(Bytes),
    /// The body ended: the input is complete.
    End,
    /// The upload stopped before its end, for this reason.
    Cut(String),
}

/// The importer's side of an upload: a blocking reader over the pieces.
struct Upload {
    pieces: tokio::sync::mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.pieces.blocking_recv() {
                Some(Piece::Data(bytes)) => self.current = bytes,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Cut(reason)) => return Err(std::io::Error::other(reason)),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the upload stopped before its end",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `PUT /v1/imports/{id}/data`: the import's data, streamed as the request
/// body (any content type). Answers when the import has ended, with its
/// quality report. An upload cut short, or larger than
/// `limits.max_import_bytes`, fails the import: what was stored stays
/// stored, and importing the data again adds only what is missing.
#[utoipa::path(put, path = "/v1/imports/{id}/data", tag = "imports",
    params(("id" = String, Path, description = "The import's id.")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The data, in the connector's format and the parameters' encoding."),
    responses(
        (status = 200, description = "Completed, with its quality report.", body = ImportView),
        (status = 404, description = "The tenant has no import with that id.", body = ErrorBody),
        (status = 409, description = "The import is not waiting for data (it ran already, or its data is being uploaded).", body = ErrorBody),
        (status = 413, description = "Larger than `limits.max_import_bytes`; the import failed.", body = ErrorBody),
    ))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<ImportView>, ApiError> {
    let desk = desk(&state)?;
    let Some(slot) = desk.upload_slot(state.config.limits.max_concurrent_uploads) else {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            format!(
                "the server reads {} uploads already (limits.max_concurrent_uploads); the \
                 import still waits for its data, so retry shortly",
                state.config.limits.max_concurrent_uploads
            ),
        );
        error.retry_after = Some(5);
        return Err(error);
    };
    let started = match desk.take_waiting(&principal.tenant, &principal.actor().id, &id) {
        Ok(started) => started,
        Err(NotWaiting::OtherCaller) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "import_not_waiting",
                format!("import {id} waits for its data from the token that created it"),
            ));
        }
        Err(NotWaiting::Missing) => {
            let tenant = principal.tenant.clone();
            let lookup = id.clone();
            let record = run(&state, move |desk| desk.importer.import(&tenant, &lookup)).await?;
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "import_not_waiting",
                format!(
                    "import {id} is not waiting for data: it is {}; create a new import to upload \
                     again",
                    match (record.status, desk.live(&id).1) {
                        (ImportStatus::Running, Some(_)) => "reading its data now",
                        (ImportStatus::Running, None) => "running in another process",
                        (ImportStatus::Completed, _) => "completed",
                        (ImportStatus::Failed, _) => "failed",
                    }
                ),
            ));
        }
    };
    let (sender, pieces) = tokio::sync::mpsc::channel::<Piece>(8);
    // A thread of its own, not the blocking pool that every other request
    // needs: uploads last as long as their data takes (and are capped).
    let (done, finished) = tokio::sync::oneshot::channel();
    {
        let desk = desk.clone();
        let id = id.clone();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("tessera-upload".into())
            .spawn(move || {
                let _entered = span.enter();
                let _slot = slot;
                let upload = Upload {
                    pieces,
                    current: Bytes::new(),
                    ended: false,
                };
                let result = started.run(upload, |p| desk.progress(&id, *p));
                desk.finished(&id);
                let _ = done.send(result);
            })
            .map_err(|e| ApiError::internal(&e))?;
    }
    let limit = state.config.limits.max_import_bytes;
    let idle = Duration::from_millis(state.config.limits.import_idle_ms);
    let mut body = body;
    let mut received: u64 = 0;
    let mut too_large = false;
    loop {
        let Ok(frame) = tokio::time::timeout(idle, body.frame()).await else {
            let _ = sender
                .send(Piece::Cut(format!(
                    "no data arrived for {} s (limits.import_idle_ms)",
                    idle.as_secs()
                )))
                .await;
            break;
        };
        let piece = match frame {
            None => Piece::End,
            Some(Err(error)) => Piece::Cut(format!("the upload stopped before its end: {error}")),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    received += data.len() as u64;
                    if received > limit {
                        too_large = true;
                        Piece::Cut(format!(
                            "the upload is larger than {limit} bytes (limits.max_import_bytes); \
                             split it"
                        ))
                    } else {
                        Piece::Data(data)
                    }
                }
                Err(_) => continue, // trailers
            },
        };
        let last = !matches!(piece, Piece::Data(_));
        // An error here: the importer stopped reading (the import failed);
        // its answer says why.
        if sender.send(piece).await.is_err() || last {
            break;
        }
    }
    drop(sender);
    let result = finished.await.map_err(|e| ApiError::internal(&e))?;
    match result {
        Ok(record) => Ok(Json(ImportView::of(&record, &desk))),
        Err(error) if too_large => {
            let message = error.to_string();
            Err(
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "import_too_large", message)
                    .with_details(json!({ "import": id })),
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// Query of `GET /v1/imports`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only imports in this status.
    #[serde(default)]
    status: Option<ImportStatus>,
    /// The most to return, newest first (1 to 1000, default 100).
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/imports`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportList {
    /// Newest first.
    pub imports: Vec<ImportView>,
}

/// `GET /v1/imports`: the tenant's imports, newest first, with their
/// quality reports. Records are kept for `import_days` after they end.
#[utoipa::path(get, path = "/v1/imports", tag = "imports",
    params(ListQuery),
    responses((status = 200, description = "The tenant's imports.", body = ImportList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ImportList>, ApiError> {
    let limit = page_limit(query.limit, 100, PAGE_MAX)?;
    let tenant = principal.tenant.clone();
    let imports = run(&state, move |desk| {
        let records = desk.importer.imports(&tenant)?;
        Ok(records
            .iter()
            .rev()
            .filter(|r| query.status.is_none_or(|s| s == r.status))
            .take(limit)
            .map(|r| ImportView::of(r, &desk))
            .collect())
    })
    .await?;
    Ok(Json(ImportList { imports }))
}

/// `GET /v1/imports/{id}`: one import: its status, its progress while it
/// reads, its quality report.
#[utoipa::path(get, path = "/v1/imports/{id}", tag = "imports",
    params(("id" = String, Path, description = "The import's id.")),
    responses(
        (status = 200, description = "The import.", body = ImportView),
        (status = 404, description = "The tenant has no import with that id.", body = ErrorBody),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ImportView>, ApiError> {
    let tenant = principal.tenant.clone();
    let view = run(&state, move |desk| {
        let record = desk.importer.import(&tenant, &id)?;
        Ok(ImportView::of(&record, &desk))
    })
    .await?;
    Ok(Json(view))
}

/// Query of `GET /v1/imports/{id}/dead-letters`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct LettersQuery {
    /// The `next` of the previous page.
    #[serde(default)]
    after: Option<String>,
    /// The most to return (1 to 1000, default 100).
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/imports/{id}/dead-letters`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetterList {
    pub letters: Vec<DeadLetterSummary>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/imports/{id}/dead-letters`: what the import set aside, in
/// input order: row, field, reason and state, never the content.
#[utoipa::path(get, path = "/v1/imports/{id}/dead-letters", tag = "imports",
    params(("id" = String, Path, description = "The import's id."), LettersQuery),
    responses(
        (status = 200, description = "A page of dead letters.", body = DeadLetterList),
        (status = 404, description = "The tenant has no import with that id.", body = ErrorBody),
    ))]
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(query): Query<LettersQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let limit = page_limit(query.limit, 100, PAGE_MAX)?;
    let tenant = principal.tenant.clone();
    let letters = run(&state, move |desk| {
        desk.importer
            .dead_letters(&tenant, &id, query.after.as_deref(), limit)
    })
    .await?;
    let next = (letters.len() == limit)
        .then(|| letters.last().map(|l| l.id.clone()))
        .flatten();
    Ok(Json(DeadLetterList { letters, next }))
}

/// A dead letter with what it keeps: personal data, for operators.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    #[serde(flatten)]
    pub letter: DeadLetterSummary,
    /// The row's bytes, base64 (in the input's encoding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// The row as text, when its bytes are UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The CSV header record the row is read with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The connector's record the vault refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub item: Option<JsonValue>,
}

/// `GET /v1/imports/{id}/dead-letters/{letter}`: one dead letter with its
/// content (the row's bytes or the refused record). The read is audited.
#[utoipa::path(get, path = "/v1/imports/{id}/dead-letters/{letter}", tag = "imports",
    params(("id" = String, Path, description = "The import's id."),
        ("letter" = String, Path, description = "The dead letter's id.")),
    responses(
        (status = 200, description = "The dead letter.", body = DeadLetterView),
        (status = 404, description = "No such import or dead letter.", body = ErrorBody),
    ))]
pub(crate) async fn dead_letter(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, letter)): Path<(String, String)>,
) -> Result<Json<DeadLetterView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let letter = run(&state, move |desk| {
        desk.importer.dead_letter(&tenant, &id, &letter, &actor)
    })
    .await?;
    let mut view = DeadLetterView {
        letter: DeadLetterSummary::from(&letter),
        raw_base64: None,
        raw: None,
        header: None,
        item: None,
    };
    match letter.content {
        LetterContent::Raw { bytes, header } => {
            view.raw_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
            view.raw = String::from_utf8(bytes).ok();
            view.header = header;
        }
        LetterContent::Item { item } => {
            view.item = Some(serde_json::to_value(&item).map_err(|e| ApiError::internal(&e))?);
        }
        LetterContent::None => {}
    }
    Ok(Json(view))
}

/// `PUT /v1/imports/{id}/dead-letters/{letter}`: exactly one of the fields.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FixBody {
    /// The row's new text (sent in UTF-8; for an input in another encoding
    /// use `raw_base64`).
    #[serde(default)]
    raw: Option<String>,
    /// The row's new bytes, base64, in the input's encoding.
    #[serde(default)]
    raw_base64: Option<String>,
    /// A new record for a refused one, in the shape the letter shows.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    item: Option<JsonValue>,
}

/// `PUT /v1/imports/{id}/dead-letters/{letter}`: replaces a dead letter's
/// content, to be replayed. A replayed letter cannot be changed.
#[utoipa::path(put, path = "/v1/imports/{id}/dead-letters/{letter}", tag = "imports",
    params(("id" = String, Path, description = "The import's id."),
        ("letter" = String, Path, description = "The dead letter's id.")),
    request_body = FixBody,
    responses(
        (status = 200, description = "Fixed; replay it to store it.", body = DeadLetterSummary),
        (status = 404, description = "No such import or dead letter.", body = ErrorBody),
        (status = 409, description = "It was replayed already, or the fix is of the wrong kind.", body = ErrorBody),
    ))]
pub(crate) async fn fix(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, letter)): Path<(String, String)>,
    Json(body): Json<FixBody>,
) -> Result<Json<DeadLetterSummary>, ApiError> {
    let one_of = || {
        ApiError::unprocessable(
            "invalid_fix",
            "give exactly one of `raw`, `raw_base64` and `item`",
        )
    };
    let fix = match (body.raw, body.raw_base64, body.item) {
        (Some(text), None, None) => Fix::Raw(text.into_bytes()),
        (None, Some(b64), None) => Fix::Raw(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    ApiError::unprocessable("invalid_fix", format!("`raw_base64`: {e}"))
                        .with_field("raw_base64", "standard base64")
                })?,
        ),
        (None, None, Some(item)) => {
            Fix::Item(serde_json::from_value::<ImportItem>(item).map_err(|e| {
                ApiError::unprocessable("invalid_fix", format!("`item`: {e}"))
                    .with_field("item", e.to_string())
            })?)
        }
        _ => return Err(one_of()),
    };
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let summary = run(&state, move |desk| {
        desk.importer
            .fix_dead_letter(&tenant, &id, &letter, fix, &actor)
    })
    .await?;
    Ok(Json(summary))
}

/// The most dead letters one replay takes (a replay of all takes the
/// first this many not replayed; call it again for the rest).
const MAX_REPLAY: usize = 10_000;

/// `POST /v1/imports/{id}/replay`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    /// The dead letters to replay; absent: every letter of the import not
    /// replayed yet.
    #[serde(default)]
    letters: Option<Vec<String>>,
}

/// `POST /v1/imports/{id}/replay`: replays dead letters: a row is parsed
/// again with the import's connector and parameters, a refused record is
/// stored again. A letter stored once is never stored twice.
#[utoipa::path(post, path = "/v1/imports/{id}/replay", tag = "imports",
    params(("id" = String, Path, description = "The import's id.")),
    request_body = ReplayBody,
    responses(
        (status = 200, description = "What the replay did.", body = ReplayReport),
        (status = 404, description = "The tenant has no import with that id.", body = ErrorBody),
    ))]
pub(crate) async fn replay(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<ReplayBody>,
) -> Result<Json<ReplayReport>, ApiError> {
    if body.letters.as_ref().is_some_and(|l| l.len() > MAX_REPLAY) {
        return Err(
            ApiError::unprocessable("invalid_replay", "at most 10,000 letters per replay")
                .with_field("letters", "at most 10,000"),
        );
    }
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let report = run(&state, move |desk| {
        let ids = match body.letters {
            Some(ids) => ids,
            None => {
                let mut ids = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let page = desk
                        .importer
                        .dead_letters(&tenant, &id, after.as_deref(), 1000)?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id.clone());
                    ids.extend(
                        page.iter()
                            .filter(|l| l.state != tessera_imports::LetterState::Replayed)
                            .map(|l| l.id.clone()),
                    );
                    if ids.len() >= MAX_REPLAY {
                        ids.truncate(MAX_REPLAY);
                        break;
                    }
                }
                ids
            }
        };
        desk.importer.replay(&tenant, &id, &ids, &actor)
    })
    .await?;
    Ok(Json(report))
}

/// A webhook source as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub name: String,
    pub connector: String,
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, JsonValue>,
    pub chunking: Chunking,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub updated_at_ms: i64,
    pub updated_by: String,
    /// Where partner systems post: `POST` with an ingest token.
    pub push_url: String,
}

impl From<&Source> for SourceView {
    fn from(source: &Source) -> Self {
        Self {
            name: source.name.clone(),
            connector: source.connector.clone(),
            params: shown_params(&source.params),
            chunking: source.chunking,
            channel: source.channel,
            updated_at_ms: source.updated_at_ms,
            updated_by: source.updated_by.clone(),
            push_url: format!("/v1/sources/{}/push", source.name),
        }
    }
}

/// `GET /v1/sources`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceList {
    pub sources: Vec<SourceView>,
}

/// `GET /v1/sources`: the tenant's webhook sources, by name.
#[utoipa::path(get, path = "/v1/sources", tag = "imports",
    responses((status = 200, description = "The tenant's webhook sources.", body = SourceList)))]
pub(crate) async fn sources(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<SourceList>, ApiError> {
    let tenant = principal.tenant.clone();
    let sources = run(&state, move |desk| desk.importer.sources(&tenant)).await?;
    Ok(Json(SourceList {
        sources: sources.iter().map(SourceView::from).collect(),
    }))
}

/// `PUT /v1/sources/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSource {
    /// The connector that parses each post.
    connector: String,
    /// Its parameters, by name (an object is passed as its JSON text).
    #[serde(default)]
    #[schema(value_type = Object)]
    params: BTreeMap<String, JsonValue>,
    /// How each post is cut: `whole` (the default: one JSON document),
    /// `lines` (NDJSON) or `csv`.
    #[serde(default)]
    chunking: Option<Chunking>,
    #[serde(default)]
    channel: Option<Channel>,
}

/// `PUT /v1/sources/{name}`: saves a webhook source (replacing one of the
/// same name): the connector must be running and take the parameters.
#[utoipa::path(put, path = "/v1/sources/{name}", tag = "imports",
    params(("name" = String, Path, description = "1 to 64 of a-z, 0-9, `-` and `_`.")),
    request_body = NewSource,
    responses((status = 200, description = "Saved.", body = SourceView)))]
pub(crate) async fn put_source(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<NewSource>,
) -> Result<Json<SourceView>, ApiError> {
    let spec = SourceSpec {
        connector: body.connector,
        params: params_of(&body.params),
        chunking: body.chunking.unwrap_or(Chunking::Whole),
        channel: body.channel,
    };
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let source = run(&state, move |desk| {
        desk.importer.put_source(&tenant, &name, spec, &actor)
    })
    .await?;
    Ok(Json(SourceView::from(&source)))
}

/// `DELETE /v1/sources/{name}`: removes a webhook source; posts to it are
/// refused from then on, and its past imports stay.
#[utoipa::path(delete, path = "/v1/sources/{name}", tag = "imports",
    params(("name" = String, Path, description = "The source's name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "The tenant has no source of that name.", body = ErrorBody),
    ))]
pub(crate) async fn delete_source(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    run(&state, move |desk| {
        desk.importer.delete_source(&tenant, &name, &actor)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/sources/{name}/push`: one post of a partner system (the
/// request body, at most `limits.max_body_bytes`), parsed by the source's
/// connector and stored as an import of source `webhook:<name>`, with its
/// quality report. Posting the same records again adds nothing.
#[utoipa::path(post, path = "/v1/sources/{name}/push", tag = "imports",
    params(("name" = String, Path, description = "The source's name.")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The data, in the connector's format."),
    responses(
        (status = 200, description = "Stored, with its quality report.", body = ImportView),
        (status = 404, description = "The tenant has no source of that name.", body = ErrorBody),
    ))]
pub(crate) async fn push(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<ImportView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    // An ingest token may sit in a web page: what it pushes is untrusted.
    let trusted = principal.role != crate::Role::Ingest;
    let view = run(&state, move |desk| {
        let record = desk.importer.push(&tenant, &name, &body, &actor, trusted)?;
        Ok(ImportView::of(&record, &desk))
    })
    .await?;
    Ok(Json(view))
}

/// `POST /v1/sources/{name}/pull`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullBody {
    /// The most pages to fetch (absent: until the source is exhausted).
    #[serde(default)]
    max_pages: Option<u32>,
}

/// `POST /v1/sources/{name}/pull`: pulls the source through its connector
/// (one that declares `pull`, such as `rest-pull`) from its stored cursor,
/// in the background: answers at once with the import, which
/// `GET /v1/imports/{id}` follows. A page that fails ends the pull as
/// `failed` with the cursor left at that page; the next pull fetches it
/// again, and records already stored are not stored twice.
#[utoipa::path(post, path = "/v1/sources/{name}/pull", tag = "imports",
    params(("name" = String, Path, description = "The source's name.")),
    request_body = PullBody,
    responses(
        (status = 202, description = "Started; follow it at /v1/imports/{id}.", body = ImportView),
        (status = 404, description = "The tenant has no source of that name.", body = ErrorBody),
        (status = 409, description = "The source is being pulled already.", body = ErrorBody),
    ))]
pub(crate) async fn pull(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<PullBody>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let view = run(&state, move |desk| {
        let started = desk
            .importer
            .start_source_pull(&tenant, &name, body.max_pages, &actor)?;
        let id = started.id().to_owned();
        desk.lock().running.insert(id.clone(), Progress::default());
        let view = ImportView::of(started.record(), &desk);
        let worker = desk.clone();
        std::thread::Builder::new()
            .name("tessera-pull".into())
            .spawn(move || {
                if let Err(error) = started.run(|p| worker.progress(&id, *p)) {
                    tracing::warn!(import = %id, %error, "a pull failed");
                }
                worker.finished(&id);
            })
            .map_err(|e| ImportError::Input(format!("cannot start the pull: {e}")))?;
        Ok(view)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// `DELETE /v1/sources/{name}/cursor`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CursorReset {
    /// Whether the source had a stored cursor.
    pub reset: bool,
}

/// `DELETE /v1/sources/{name}/cursor`: forgets a pull source's stored
/// cursor, so that its next pull starts from the source's start (what is
/// stored stays stored, and counts as duplicates when pulled again).
/// Refused while the source is being pulled. Audited.
#[utoipa::path(delete, path = "/v1/sources/{name}/cursor", tag = "imports",
    params(("name" = String, Path, description = "The source's name.")),
    responses(
        (status = 200, description = "Reset.", body = CursorReset),
        (status = 404, description = "The tenant has no source of that name.", body = ErrorBody),
        (status = 409, description = "The source is being pulled.", body = ErrorBody),
    ))]
pub(crate) async fn reset_cursor(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<CursorReset>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let reset = run(&state, move |desk| {
        desk.importer.reset_source_cursor(&tenant, &name, &actor)
    })
    .await?;
    Ok(Json(CursorReset { reset }))
}
