//! Honest: a segment built against the plain `tessera:plugin/segment@0.1.0`
//! world, without the SDK, so it does not export `tessera:plan` (as a
//! component built before the plan interface existed, or by a toolchain
//! that does not offer it). It declares the `country` field and a
//! `purchases` count; a row is a member with at least 2 purchases, its
//! score is the count (-1 when missing) and its tier its country.

// Generated ABI glue takes one argument per flattened WIT value.
#![allow(clippy::too_many_arguments)]
wit_bindgen::generate!({
    path: "../../../wit/v0.1",
    world: "segment",
    generate_all,
});

use tessera::plugin::types::{
    AggregateFn, AggregateSpec, ColumnData, FieldClass, FieldSpec, TextColumn, ValueKind,
};

/// The contract version, where the host reads it (the SDKs embed the same).
#[used]
#[unsafe(link_section = "tessera:wit-version")]
static WIT_VERSION: [u8; 5] = *b"0.1.0";

struct PlainSegment;

impl Guest for PlainSegment {
    fn describe() -> Manifest {
        Manifest {
            name: "plain-segment".into(),
            version: "0.1.0".into(),
            description: "at least 2 purchases, without a plan".into(),
            parameters: Vec::new(),
            fields: vec![FieldSpec {
                name: "country".into(),
                kind: ValueKind::Text,
                class: FieldClass::Standard,
            }],
            aggregates: vec![AggregateSpec {
                name: "purchases".into(),
                event_type: "purchase".into(),
                function: AggregateFn::Count,
                property: None,
                window_days: None,
            }],
            purposes: vec!["analytics".into()],
        }
    }

    fn validate(_: Vec<FieldValue>) -> Result<(), Error> {
        Ok(())
    }

    fn evaluate(_: Vec<FieldValue>, batch: ProfileBatch) -> Result<Memberships, Error> {
        let rows = batch.rows as usize;
        let (Some(country), Some(purchases)) = (batch.fields.first(), batch.aggregates.first())
        else {
            return Err(Error::InvalidInput(format!(
                "expected 1 field and 1 aggregate, got {} and {}",
                batch.fields.len(),
                batch.aggregates.len()
            )));
        };
        let present = |present: &[u8], row: usize| present.is_empty() || present[row] == 1;
        let counts: Vec<Option<i64>> = match &purchases.data {
            ColumnData::Integer(values) => (0..rows)
                .map(|row| present(&purchases.present, row).then(|| values[row]))
                .collect(),
            _ => {
                return Err(Error::InvalidInput(
                    "`purchases` is not an integer column".into(),
                ));
            }
        };
        let ColumnData::Text(countries) = &country.data else {
            return Err(Error::InvalidInput("`country` is not a text column".into()));
        };
        let mut dictionary = countries.dictionary.clone();
        dictionary.push(String::new());
        let missing = (dictionary.len() - 1) as u32;
        let codes = (0..rows)
            .map(|row| {
                if present(&country.present, row) {
                    countries.codes[row]
                } else {
                    missing
                }
            })
            .collect();
        Ok(Memberships {
            member: counts
                .iter()
                .map(|n| u8::from(n.is_some_and(|n| n >= 2)))
                .collect(),
            scores: counts
                .iter()
                .map(|n| n.map_or(-1.0, |n| n as f64))
                .collect(),
            tiers: Some(TextColumn { dictionary, codes }),
        })
    }
}

export!(PlainSegment);
