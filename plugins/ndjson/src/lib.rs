//! `ndjson`: a push connector for newline-delimited JSON event exports from
//! web and app analytics. One object per line, in the shape of
//! `tessera-json-records`:
//!
//! ```json
//! {"id":"e-1","type":"track","event":"page_view","at":"2026-11-01T10:00:00Z",
//!  "identities":{"email":"a@example.com","device_id":"d-9"},
//!  "properties":{"path":"/shoes","price":59.9}}
//! {"id":"t-1","type":"identify","identities":{"member_id":"M-1"},"traits":{"tier":"gold"}}
//! {"id":"l-1","type":"alias","identities":{"email":"a@example.com","member_id":"M-1"}}
//! ```
//!
//! Bad lines are rejected with the line number, the field and the reason; the
//! good lines of the same chunk are still returned.

use serde_json::Value as Json;
use tessera_json_records::Invalid;
use tessera_sdk::prelude::*;

/// The connector; public so that the fuzz targets (`fuzz/`) reach
/// [`Connector::parse`] natively.
pub struct Ndjson;

impl Connector for Ndjson {
    fn describe() -> Manifest {
        Manifest::new(
            "ndjson",
            "0.1.0",
            "Parses newline-delimited JSON exports (track, identify, alias) into events, \
             trait updates and identity links.",
        )
        .param(
            ParamSpec::text("id_prefix", "Prepended to every record's source id")
                .default(Value::Text(String::new())),
        )
        .param(
            ParamSpec::integer("max_line_bytes", "Lines longer than this are rejected")
                .range(64.0, 16_777_216.0)
                .default(Value::Integer(1_048_576)),
        )
    }

    fn modes() -> Modes {
        Modes::PUSH
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Options::from(params).map(|_| ())
    }

    fn parse(params: &Params, data: &[u8]) -> Result<ParseOutput, Error> {
        let options = Options::from(params)?;
        let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        let mut out = ParseOutput {
            records: Vec::new(),
            rejections: Vec::new(),
        };
        for (index, line) in data.split(|b| *b == b'\n').enumerate() {
            let row = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(&options, line) {
                Ok(record) => out.records.push(record),
                Err(invalid) => out.rejections.push(invalid.rejection(row)),
            }
        }
        Ok(out)
    }
}

struct Options {
    id_prefix: String,
    max_line_bytes: usize,
}

impl Options {
    fn from(params: &Params) -> Result<Self, Error> {
        let id_prefix = match params.get("id_prefix") {
            None => String::new(),
            Some(_) => params.text("id_prefix")?.to_owned(),
        };
        let max_line_bytes = match params.get("max_line_bytes") {
            None => 1_048_576,
            Some(_) => params.integer("max_line_bytes")?,
        };
        let max_line_bytes = usize::try_from(max_line_bytes)
            .ok()
            .filter(|n| *n >= 64)
            .ok_or_else(|| Error::config("parameter `max_line_bytes` must be at least 64"))?;
        Ok(Options {
            id_prefix,
            max_line_bytes,
        })
    }
}

fn parse_line(options: &Options, line: &[u8]) -> Result<Record, Invalid> {
    if line.len() > options.max_line_bytes {
        return Err(Invalid {
            field: None,
            reason: format!(
                "line is {} bytes, over the limit of {}",
                line.len(),
                options.max_line_bytes
            ),
        });
    }
    let json: Json = serde_json::from_slice(line).map_err(|e| Invalid {
        field: None,
        reason: format!("not valid JSON: {e}"),
    })?;
    tessera_json_records::record(&json, &options.id_prefix)
}

tessera_sdk::export_connector!(Ndjson);
