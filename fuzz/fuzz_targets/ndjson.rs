//! The `ndjson` connector's parser on any bytes: every line that is not
//! blank becomes exactly one record or one rejection that names its line;
//! nothing is dropped silently, nothing panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_plugin_ndjson::Ndjson;
use tessera_sdk::prelude::*;

fuzz_target!(|data: &[u8]| {
    // The example export's own parameters, and a small line limit so that
    // the fuzzer reaches the "line too long" rejection too.
    let params = Params::new(vec![
        FieldValue {
            name: "id_prefix".into(),
            value: Value::Text("halden-web:".into()),
        },
        FieldValue {
            name: "max_line_bytes".into(),
            value: Value::Integer(4096),
        },
    ]);
    let out = Ndjson::parse(&params, data).expect("valid parameters never fail a chunk");
    let body = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let lines = body.split(|b| *b == b'\n').count();
    let filled = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(
        out.records.len() + out.rejections.len(),
        filled,
        "one record or one rejection per line that is not blank"
    );
    for rejection in &out.rejections {
        assert!(
            (1..=lines).contains(&(rejection.row as usize)),
            "rejected line {} of {lines}",
            rejection.row
        );
        assert!(!rejection.reason.is_empty(), "a rejection says why");
    }
});
