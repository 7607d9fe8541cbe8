//! The `csv` connector's parser on any bytes, with the mapping and options
//! of each retail example export (examples/retail/large/mappings), as a
//! first chunk or as a later one (header given, `first_row` > 1). It must
//! answer records, rejections or an error, never panic, and number every
//! rejected row from the chunk's first row on.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_plugin_csv::Csv;
use tessera_sdk::prelude::*;

/// (mapping, delimiter, encoding, decimal, header record) of each example.
const EXPORTS: [(&str, &str, &str, &str, &str); 4] = [
    (
        include_str!("../../examples/retail/large/mappings/loyalty_members.json"),
        ",",
        "utf-8",
        ".",
        "member_id,phone,email,name,tier,birthday,city,member_since",
    ),
    (
        include_str!("../../examples/retail/large/mappings/stores_cn.json"),
        ",",
        "gb18030",
        ".",
        "小票号,门店编号,门店名称,会员号,手机号,交易时间,金额,币种,件数,品类,支付方式",
    ),
    (
        include_str!("../../examples/retail/large/mappings/stores_eu.json"),
        ";",
        "utf-8",
        ",",
        "receipt_no;store_code;store;country;member_card;phone;date;total;currency;items;category",
    ),
    (
        include_str!("../../examples/retail/large/mappings/stores_us.json"),
        ",",
        "utf-8",
        ".",
        "Receipt #,Store,Store Address,Loyalty #,Phone,Purchased At,Total,Currency,Items,Category,Notes",
    ),
];

fn text(name: &str, value: &str) -> FieldValue {
    FieldValue {
        name: name.into(),
        value: Value::Text(value.into()),
    }
}

// The first byte picks the export (bits 0-1) and whether the data is a
// later chunk (bit 2, with `first_row` from the second byte); the rest is
// the chunk.
fuzz_target!(|input: &[u8]| {
    let Some((&options, data)) = input.split_first() else {
        return;
    };
    let (mapping, delimiter, encoding, decimal, header) = EXPORTS[usize::from(options & 3)];
    let mut params = vec![
        text("mapping", mapping),
        text("delimiter", delimiter),
        text("encoding", encoding),
        text("decimal", decimal),
    ];
    let mut first_row = 1;
    let data = if options & 4 != 0 {
        let Some((&row, rest)) = data.split_first() else {
            return;
        };
        first_row = 2 + i64::from(row);
        params.push(text("header", header));
        params.push(FieldValue {
            name: "first_row".into(),
            value: Value::Integer(first_row),
        });
        rest
    } else {
        data
    };
    let params = Params::new(params);
    assert!(
        Csv::validate(&params).is_ok(),
        "an example's options are valid"
    );
    match Csv::parse(&params, data) {
        Ok(out) => {
            for rejection in &out.rejections {
                assert!(
                    i64::from(rejection.row) >= first_row,
                    "row {} rejected in a chunk that starts at row {first_row}",
                    rejection.row
                );
                assert!(!rejection.reason.is_empty(), "a rejection says why");
            }
        }
        Err(error) => assert!(!format!("{error:?}").is_empty()),
    }
});
