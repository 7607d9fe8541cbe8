//! Honest: reports what its view showed it. Declares `email` (pii) and
//! `country` fields and a `purchases` count; a row is a member when its
//! email is present, its tier is its country (empty when missing) and its
//! score depends on `mode`:
//!
//! - `plain`: the purchase count (-1 when missing);
//! - `remember`: writes `subject/<key>/seen` for every row, score 1;
//! - `recall`: 1 if `subject/<key>/seen` is there (and listed), else 0;
//! - `foreign`: writes state for a key that is not a row (must be refused);
//! - `fill`: writes 4 KiB under `subject/<key>/blob` for every row.
use tessera_sdk::prelude::*;
use tessera_sdk::{TextColumn, state};

struct ViewProbe;

fn seen_key(key: u64) -> String {
    format!("subject/{key:016x}/seen")
}

impl Segment for ViewProbe {
    fn describe() -> Manifest {
        Manifest::new("view-probe", "0.3.1", "reports what its view showed it")
            .field("email", ValueKind::Text, FieldClass::Pii)
            .field("country", ValueKind::Text, FieldClass::Standard)
            .aggregate("purchases", "purchase", AggregateFn::Count, None, None)
            .purpose("analytics")
            .param(
                ParamSpec::text("mode", "what to do with state")
                    .choices(&["plain", "remember", "recall", "foreign", "fill"])
                    .default(Value::Text("plain".into())),
            )
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let mode = params.text("mode")?;
        let email = batch.field("email")?;
        let country = batch.field("country")?;
        let purchases = batch.aggregate("purchases")?;
        let rows = batch.rows();
        let mut scores = Vec::with_capacity(rows);
        for (row, key) in batch.keys().iter().enumerate() {
            let score = match mode {
                "remember" => {
                    state::put(&seen_key(*key), b"1")?;
                    1.0
                }
                "recall" => {
                    let stored = state::get(&seen_key(*key)).is_some();
                    let listed =
                        state::keys(&format!("subject/{key:016x}/"), 10).contains(&seen_key(*key));
                    let everywhere = state::keys("", 10_000).contains(&seen_key(*key));
                    if stored && listed && everywhere {
                        1.0
                    } else {
                        0.0
                    }
                }
                "foreign" => {
                    state::put(&seen_key(key.wrapping_add(1)), b"1")?;
                    1.0
                }
                "fill" => {
                    state::put(&format!("subject/{key:016x}/blob"), &[7u8; 4096])?;
                    1.0
                }
                _ => purchases.integer(row).map_or(-1.0, |n| n as f64),
            };
            scores.push(score);
        }
        let mut dictionary: Vec<String> = Vec::new();
        let codes = (0..rows)
            .map(|row| {
                let text = country.text(row).unwrap_or("");
                let code = match dictionary.iter().position(|d| d == text) {
                    Some(code) => code,
                    None => {
                        dictionary.push(text.to_owned());
                        dictionary.len() - 1
                    }
                };
                code as u32
            })
            .collect();
        let mut out = Memberships::from_fn(rows, |row| email.is_present(row)).with_scores(scores);
        out.tiers = Some(TextColumn { dictionary, codes });
        Ok(out)
    }
}

tessera_sdk::export_segment!(ViewProbe);
