//! Honest: a segment that plans event queries, other segments and fields
//! typed by the tenant's schema from its parameters, and reports what it
//! was sent. Everyone is a member; each row's tier spells out the row's
//! columns, so a test can read them back:
//! `<query>:count=N,first=T|-,last=T|-,<sum>=X;…;seg:<name>=1|0|-;…`.
//!
//! Parameters: `queries`, one entry per query,
//! `name|event type|filter|window ms|sum,sum` (empty parts: none);
//! `segments`, names of segments to read; `kinds-of`, trait names planned
//! as fields of the kind `tessera:plan/schema` answers (left out when it
//! answers none).
use tessera_sdk::TextColumn;
use tessera_sdk::prelude::*;

struct QueryProbe;

fn queries(params: &Params) -> Result<Vec<EventQuery>, Error> {
    let Some(_) = params.get("queries") else {
        return Ok(Vec::new());
    };
    params
        .text_list("queries")?
        .iter()
        .map(|entry| {
            let parts: Vec<&str> = entry.split('|').collect();
            let [name, event, filter, window, sums] = parts[..] else {
                return Err(Error::config(format!(
                    "query `{entry}` must have five parts separated by `|`"
                )));
            };
            let window_ms = match window {
                "" => None,
                ms => Some(
                    ms.parse::<i64>()
                        .map_err(|_| Error::config(format!("window `{ms}` is not a number")))?,
                ),
            };
            Ok(EventQuery {
                name: name.into(),
                event_type: event.into(),
                filter: (!filter.is_empty()).then(|| filter.into()),
                window_ms,
                sums: sums
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(Into::into)
                    .collect(),
            })
        })
        .collect()
}

fn list<'a>(params: &'a Params, name: &str) -> Result<&'a [String], Error> {
    match params.get(name) {
        None => Ok(&[]),
        Some(_) => params.text_list(name),
    }
}

impl Segment for QueryProbe {
    fn describe() -> Manifest {
        Manifest::new(
            "query-probe",
            "0.1.0",
            "reports the planned queries, segments and typed fields it was sent",
        )
        .param(ParamSpec::text_list(
            "queries",
            "name|event|filter|window ms|sums",
        ))
        .param(ParamSpec::text_list(
            "segments",
            "segments whose membership to read",
        ))
        .param(ParamSpec::text_list(
            "kinds-of",
            "traits planned with the kind the schema gives them",
        ))
        .purpose("analytics")
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        let mut needs = Needs::new();
        for name in list(params, "kinds-of")? {
            if let Some(kind) = tessera_sdk::schema::trait_kind(name) {
                needs = needs.field(name, kind, FieldClass::Standard);
            }
        }
        for query in queries(params)? {
            needs = needs.query(query);
        }
        for segment in list(params, "segments")? {
            needs = needs.segment(segment);
        }
        Ok(needs)
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let rows = batch.rows();
        let planned = queries(params)?;
        let mut dictionary: Vec<String> = Vec::new();
        let mut codes = Vec::with_capacity(rows);
        let time = |t: Option<i64>| t.map_or("-".to_owned(), |t| t.to_string());
        for row in 0..rows {
            let mut parts = Vec::new();
            for query in &planned {
                let columns = batch.query(&query.name)?;
                if !columns.is_present(row) {
                    parts.push(format!("{}:missing", query.name));
                    continue;
                }
                let mut part = format!(
                    "{}:count={},first={},last={}",
                    query.name,
                    columns.count(row),
                    time(columns.first(row)),
                    time(columns.last(row)),
                );
                for sum in &query.sums {
                    part.push_str(&format!(",{sum}={}", columns.sum(sum, row)));
                }
                parts.push(part);
            }
            for segment in list(params, "segments")? {
                let member = batch.segment(segment)?.boolean(row);
                parts.push(format!(
                    "seg:{segment}={}",
                    member.map_or("-", |m| if m { "1" } else { "0" })
                ));
            }
            let text = parts.join(";");
            let code = match dictionary.iter().position(|d| *d == text) {
                Some(code) => code,
                None => {
                    dictionary.push(text);
                    dictionary.len() - 1
                }
            };
            codes.push(code as u32);
        }
        Ok(Memberships {
            member: vec![1; rows],
            scores: Vec::new(),
            tiers: Some(TextColumn { dictionary, codes }),
        })
    }
}

tessera_sdk::export_segment!(QueryProbe);
