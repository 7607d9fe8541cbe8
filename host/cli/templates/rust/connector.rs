//! `{{name}}`: a Tessera push connector. Parses lines of
//! `email,event_type,amount` (a header line is skipped) into events.
//!
//! Every record carries a source id, so the host stores the same line once
//! however often the file is imported; a bad line is rejected with its row
//! number and reason while the good lines of the same file are kept.
//!
//! The host may cut a large file into chunks of whole lines and call `parse`
//! once per chunk, passing `first_row`, the file line number of the chunk's
//! first line: rows, and the source ids made from them, are the file's line
//! numbers wherever the chunks were cut.

use tessera_sdk::prelude::*;

struct Lines;

impl Connector for Lines {
    fn describe() -> Manifest {
        Manifest::new(
            "{{name}}",
            "0.1.0",
            "Parses `email,event_type,amount` lines into events",
        )
        .param(
            ParamSpec::integer("first_row", "File line number of the chunk's first line (set by the host)")
                .range(1.0, f64::from(u32::MAX))
                .default(Value::Integer(1)),
        )
    }

    fn modes() -> Modes {
        Modes::PUSH
    }

    fn parse(params: &Params, data: &[u8]) -> Result<ParseOutput, Error> {
        let text = std::str::from_utf8(data).map_err(|e| Error::input(format!("not UTF-8: {e}")))?;
        // Absent when the whole file is one call.
        let first_row = match params.get("first_row") {
            Some(Value::Integer(row)) => *row,
            _ => 1,
        };
        let now = host::now();
        let mut out = ParseOutput {
            records: Vec::new(),
            rejections: Vec::new(),
        };
        for (index, line) in text.lines().enumerate() {
            let row = u32::try_from(first_row.saturating_add(index as i64)).unwrap_or(u32::MAX);
            let line = line.trim();
            if line.is_empty() || line.starts_with("email,") {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [email, event_type, amount] = fields[..] else {
                out.rejections.push(Rejection::new(row, None, "expected 3 fields: email,event_type,amount"));
                continue;
            };
            let Ok(amount) = amount.parse::<f64>() else {
                out.rejections.push(Rejection::new(row, Some("amount"), format!("`{amount}` is not a number")));
                continue;
            };
            out.records.push(Record::Event(Event {
                source_id: format!("{{name}}:{row}:{email}:{event_type}"),
                event_type: event_type.into(),
                at: now,
                identities: vec![Identity::new("email", email)],
                properties: vec![FieldValue {
                    name: "amount".into(),
                    value: Value::Number(amount),
                }],
            }));
        }
        Ok(out)
    }
}

tessera_sdk::export_connector!(Lines);
