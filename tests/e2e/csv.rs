//! The CSV connector through the runtime: store and loyalty exports in UTF-8
//! and GB18030, quoting, decimal commas, rejections by row and column,
//! derived source ids, chunked files, and a large file in default limits.

use tessera_runtime::api::records::{Identity, ParseOutput, Record};
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{CallError, Limits, Plugin, PluginError, PluginKind};
use tessera_tests::{install, param, plugins};

use super::runtime;

const PURCHASES: &str = r#"{
    "source": "pos-east",
    "timezone": "+08:00",
    "identities": {"member_no": "member_id", "mobile": "phone"},
    "traits": {"tier": {"name": "loyalty_tier", "type": "string"}},
    "event": {
        "type": "purchase",
        "time": {"column": "purchased_at", "format": "%Y-%m-%d %H:%M:%S"},
        "properties": {
            "amount": "number",
            "qty": "integer",
            "store": {"name": "store_name", "type": "string"}
        }
    },
    "source_id": {"column": "receipt_no"}
}"#;

fn csv() -> Plugin {
    install(&runtime(), plugins::CSV, PluginKind::Connector)
}

/// Parameters checked by the runtime's schema and the plugin's `validate`.
fn params(plugin: &Plugin, mapping: &str, extra: &[(&str, Value)]) -> Vec<FieldValue> {
    let mut given = vec![param("mapping", Value::Text(mapping.into()))];
    given.extend(extra.iter().map(|(name, value)| param(name, value.clone())));
    plugin
        .validate(&given)
        .unwrap_or_else(|e| panic!("parameters refused: {e}"))
}

fn text(value: &str) -> Value {
    Value::Text(value.into())
}

fn parse(plugin: &Plugin, params: &[FieldValue], data: &[u8]) -> ParseOutput {
    plugin
        .parse(params, data)
        .unwrap_or_else(|e| panic!("parse failed: {e}"))
        .value
}

fn event(record: &Record) -> &tessera_runtime::api::records::Event {
    match record {
        Record::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn property<'a>(properties: &'a [FieldValue], name: &str) -> Option<&'a Value> {
    properties.iter().find(|p| p.name == name).map(|p| &p.value)
}

fn identity(kind: &str, value: &str) -> Identity {
    Identity {
        kind: kind.into(),
        value: value.into(),
    }
}

fn source_id(record: &Record) -> &str {
    match record {
        Record::Event(e) => &e.source_id,
        Record::TraitUpdate(t) => &t.source_id,
        Record::IdentityLink(l) => &l.source_id,
    }
}

fn rejected(out: &ParseOutput) -> Vec<(u32, Option<String>)> {
    out.rejections
        .iter()
        .map(|r| (r.row, r.field.clone()))
        .collect()
}

fn gb18030(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

/// The chunk boundary rule of the plugin's docs (`plugins/csv/src/lib.rs`),
/// kept identical so the test proves what the docs promise.
struct Splitter {
    delimiter: u8,
    gb18030: bool,
    state: State,
    trail: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    CellStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl Splitter {
    fn new(delimiter: u8, gb18030: bool) -> Self {
        Splitter {
            delimiter,
            gb18030,
            state: State::CellStart,
            trail: false,
        }
    }

    fn push(&mut self, b: u8) -> bool {
        if std::mem::take(&mut self.trail) && matches!(b, 0x40..=0x7E | 0x80..=0xFE) {
            return false;
        }
        if self.gb18030 && (0x81..=0xFE).contains(&b) {
            self.trail = true;
        }
        use State::*;
        self.state = match (self.state, b) {
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) => Quoted,
            (QuoteInQuoted, b'"') => Quoted,
            (_, b'\n') => {
                self.state = CellStart;
                return true;
            }
            (_, d) if d == self.delimiter => CellStart,
            (CellStart, b'"') => Quoted,
            (CellStart, b' ' | b'\t') => CellStart,
            _ => Unquoted,
        };
        false
    }
}

#[test]
fn csv_maps_store_purchases_to_events_and_trait_updates_past_a_bom() {
    let plugin = csv();
    let params = params(&plugin, PURCHASES, &[]);
    let data = concat!(
        "\u{feff}Receipt_No , MEMBER_NO,mobile,purchased_at,amount,qty,store,tier\r\n",
        "R1,M001, 13800138000 ,2024-03-05 14:30:00,59.90,2,Nanjing Rd,gold\r\n",
        "R2,,13900139000,2024-03-05 15:00:00,12,1,\"Huaihai Rd, 2F\",\r\n",
    );
    let out = parse(&plugin, &params, data.as_bytes());
    assert_eq!(rejected(&out), vec![]);
    assert_eq!(out.records.len(), 3, "{:?}", out.records);

    let first = event(&out.records[0]);
    assert_eq!(first.source_id, "pos-east:R1");
    assert_eq!(first.event_type, "purchase");
    assert_eq!(first.at, 1_709_620_200_000, "14:30 at +08:00 is 06:30 UTC");
    assert_eq!(
        first.identities,
        vec![
            identity("member_id", "M001"),
            identity("phone", "13800138000")
        ]
    );
    assert_eq!(
        property(&first.properties, "amount"),
        Some(&Value::Number(59.9))
    );
    assert_eq!(property(&first.properties, "qty"), Some(&Value::Integer(2)));
    assert_eq!(
        property(&first.properties, "store_name"),
        Some(&text("Nanjing Rd"))
    );
    match &out.records[1] {
        Record::TraitUpdate(t) => {
            assert_eq!(t.source_id, "pos-east:R1#traits");
            assert_eq!(t.traits, vec![param("loyalty_tier", text("gold"))]);
            assert_eq!(t.identities, first.identities);
        }
        other => panic!("expected the row's trait update, got {other:?}"),
    }
    let second = event(&out.records[2]);
    assert_eq!(second.source_id, "pos-east:R2");
    assert_eq!(second.identities, vec![identity("phone", "13900139000")]);
    assert_eq!(
        property(&second.properties, "store_name"),
        Some(&text("Huaihai Rd, 2F")),
        "a quoted delimiter stays in the cell"
    );
}

#[test]
fn csv_reads_gb18030_with_chinese_headers_names_and_stores() {
    let plugin = csv();
    let mapping = r#"{
        "source": "pos-sh",
        "identities": {"会员号": "member_id", "手机": "phone"},
        "traits": {"姓名": {"name": "name", "type": "string"}},
        "event": {
            "type": "purchase",
            "time": {"column": "购买时间", "format": "%Y年%m月%d日 %H:%M", "timezone": "+08:00"},
            "properties": {"门店": {"name": "store", "type": "string"}, "金额": {"name": "amount", "type": "number"}}
        }
    }"#;
    let text_file = concat!(
        "会员号,手机,姓名,门店,金额,购买时间\n",
        "M001,13800138000,张三,上海南京东路店,128.50,2024年3月5日 09:15\n",
        "M002,13900139000,李四,北京王府井店,66,2024年03月05日 09:15\n",
    );
    let gb = gb18030(text_file);
    assert_ne!(gb, text_file.as_bytes(), "the fixture really is GB18030");
    let gb_params = params(&plugin, mapping, &[("encoding", text("gb18030"))]);
    let out = parse(&plugin, &gb_params, &gb);
    assert_eq!(rejected(&out), vec![]);
    assert_eq!(out.records.len(), 4);
    let first = event(&out.records[0]);
    assert_eq!(first.at, 1_709_601_300_000);
    assert_eq!(
        property(&first.properties, "store"),
        Some(&text("上海南京东路店"))
    );
    assert_eq!(
        property(&first.properties, "amount"),
        Some(&Value::Number(128.5))
    );
    match &out.records[1] {
        Record::TraitUpdate(t) => assert_eq!(t.traits, vec![param("name", text("张三"))]),
        other => panic!("expected a trait update, got {other:?}"),
    }
    assert_eq!(
        property(&event(&out.records[2]).properties, "store"),
        Some(&text("北京王府井店"))
    );

    // The same file in UTF-8 gives the same records, ids included.
    let utf8_params = params(&plugin, mapping, &[]);
    assert_eq!(parse(&plugin, &utf8_params, text_file.as_bytes()), out);
    // "gbk" is read as GB18030.
    let gbk_params = params(&plugin, mapping, &[("encoding", text("gbk"))]);
    assert_eq!(parse(&plugin, &gbk_params, &gb), out);

    // Bytes that are not GB18030 reject their row only.
    let mut broken = gb.clone();
    broken.extend_from_slice(b"M003,\x81\x20\x81,x,y,1,2024\xC4\xEA3\xD4\xC25\xC8\xD5 10:00\n");
    broken.extend_from_slice(&gb18030("M004,,王五,广州天河店,9.9,2024年3月5日 10:00\n"));
    let out = parse(&plugin, &gb_params, &broken);
    assert_eq!(out.rejections.len(), 1, "{:?}", out.rejections);
    assert_eq!(out.rejections[0].row, 4);
    assert_eq!(out.rejections[0].field.as_deref(), Some("手机"));
    assert!(out.rejections[0].reason.contains("not valid GB18030"));
    assert_eq!(out.records.len(), 6, "the rows after the bad one are kept");

    // A file whose byte order mark says UTF-8 is not read as GB18030.
    let mut marked = b"\xEF\xBB\xBF".to_vec();
    marked.extend_from_slice(text_file.as_bytes());
    match plugin.parse(&gb_params, &marked) {
        Err(CallError::Plugin {
            error: PluginError::InvalidInput(message),
            ..
        }) => assert!(message.contains("encoding = \"utf-8\""), "{message}"),
        other => panic!("expected the contradiction to be refused, got {other:?}"),
    }
}

/// A CJK character whose GB18030 form is two bytes, the second being `|`.
fn char_with_pipe_byte() -> char {
    ('\u{4E00}'..='\u{9FA5}')
        .find(|c| {
            let bytes = gb18030(&c.to_string());
            bytes.len() == 2 && bytes[1] == b'|'
        })
        .expect("GB18030 has two-byte characters ending in 0x7C")
}

#[test]
fn gb18030_pipe_delimited_file_keeps_characters_whose_second_byte_is_a_pipe() {
    let plugin = csv();
    let c = char_with_pipe_byte();
    let mapping = r#"{"source": "pos", "identities": {"member_no": "member_id"},
        "traits": {"store": "string", "note": "string"}}"#;
    let params = params(
        &plugin,
        mapping,
        &[("encoding", text("gb18030")), ("delimiter", text("|"))],
    );
    let file = format!("member_no|store|note\nM1|{c}店|\"{c}\"\nM2|店{c}|x\n");
    let out = parse(&plugin, &params, &gb18030(&file));
    assert_eq!(rejected(&out), vec![]);
    let traits: Vec<_> = out
        .records
        .iter()
        .map(|r| match r {
            Record::TraitUpdate(t) => t.traits.clone(),
            other => panic!("expected trait updates, got {other:?}"),
        })
        .collect();
    assert_eq!(
        traits,
        vec![
            vec![
                param("note", text(&c.to_string())),
                param("store", text(&format!("{c}店")))
            ],
            vec![
                param("note", text("x")),
                param("store", text(&format!("店{c}")))
            ],
        ]
    );
}

#[test]
fn csv_reads_decimal_commas_and_grouped_thousands_with_semicolons() {
    let plugin = csv();
    let mapping = r#"{
        "source": "pos-de",
        "identities": {"member_no": "member_id"},
        "event": {
            "type": {"column": "kind"},
            "time": {"column": "date", "format": "%d.%m.%Y", "timezone": "+01:00"},
            "properties": {"amount": "number", "paid": "bool"}
        },
        "source_id": {"column": "receipt"}
    }"#;
    let params = params(
        &plugin,
        mapping,
        &[
            ("delimiter", text(";")),
            ("decimal", text(",")),
            ("thousands", text(".")),
        ],
    );
    let data = concat!(
        "receipt;member_no;kind;date;amount;paid\n",
        "R1;M1;purchase;05.03.2024;1.234,50;ja\n",
        "R2;M1;refund;05.03.2024;-59,9;yes\n",
        "R3;M2;purchase;05.03.2024;12.50;no\n",
        "R4;M2;purchase;05.03.2024;1234,5;no\n",
    );
    let out = parse(&plugin, &params, data.as_bytes());
    assert_eq!(
        rejected(&out),
        vec![(2, Some("paid".into())), (4, Some("amount".into())),]
    );
    assert!(out.rejections[0].reason.contains("\"ja\" is not a boolean"));
    assert!(
        out.rejections[1]
            .reason
            .contains("\"12.50\" is not a number"),
        "{}",
        out.rejections[1].reason
    );
    assert_eq!(out.records.len(), 2);
    let refund = event(&out.records[0]);
    assert_eq!(refund.event_type, "refund");
    assert_eq!(refund.at, 1_709_593_200_000);
    assert_eq!(
        property(&refund.properties, "amount"),
        Some(&Value::Number(-59.9))
    );
    assert_eq!(
        property(&event(&out.records[1]).properties, "amount"),
        Some(&Value::Number(1234.5))
    );

    // Without `thousands`, grouped digits are refused, not misread.
    let strict = self::params(
        &plugin,
        mapping,
        &[("delimiter", text(";")), ("decimal", text(","))],
    );
    let out = parse(&plugin, &strict, data.as_bytes());
    assert_eq!(out.rejections[0].row, 2);
    assert!(
        out.rejections[0]
            .reason
            .contains("need parameter `thousands`"),
        "{}",
        out.rejections[0].reason
    );

    // Decimal commas in comma-delimited cells are refused up front.
    let refused = plugin.validate(&[param("mapping", text(mapping)), param("decimal", text(","))]);
    match refused {
        Err(CallError::Plugin {
            error: PluginError::InvalidConfig(message),
            ..
        }) => assert!(message.contains("delimited by \";\""), "{message}"),
        other => panic!("expected the decimal comma to be refused, got {other:?}"),
    }
}

#[test]
fn csv_quoted_newlines_and_quotes_keep_later_row_numbers_right() {
    let plugin = csv();
    let mapping = r#"{
        "source": "pos",
        "timezone": "+08:00",
        "identities": {"member_no": "member_id"},
        "event": {
            "type": "purchase",
            "time": {"column": "purchased_at", "format": "%Y-%m-%d %H:%M:%S"},
            "properties": {"note": "string"}
        },
        "source_id": {"column": "receipt_no"}
    }"#;
    let params = params(&plugin, mapping, &[]);
    let data = concat!(
        "receipt_no,member_no,purchased_at,note\n",
        "R1,M1,2024-03-05 14:30:00,\"first line\nsecond, with \"\"quotes\"\"\"\n",
        "\n",
        "R2,M2,2024-03-05 14:30:00,plain\n",
        "R3,M3,yesterday,x\n",
        " \"R4\" ,\"M4\",\"2024-03-05 14:30:00\",\"a\r\nb\"\r\n",
        "R5,M5,2024-03-05 14:30:00,\"closed\"then text\n",
        "R6,M6,2024-03-05 14:30:00,x,extra\n",
        "R7,M7,2024-03-05 14:30:00,\"never closed\nR8,M8,2024-03-05 14:30:00,x\n",
    );
    let out = parse(&plugin, &params, data.as_bytes());
    assert_eq!(
        rejected(&out),
        vec![
            (6, Some("purchased_at".into())),
            (9, Some("note".into())),
            (10, None),
            (11, Some("note".into())),
        ]
    );
    assert!(
        out.rejections[1]
            .reason
            .contains("text follows the closing quote")
    );
    assert!(
        out.rejections[2]
            .reason
            .contains("the row has 5 cells, the header 4")
    );
    assert!(out.rejections[3].reason.contains("not closed"));
    let ids: Vec<_> = out.records.iter().map(source_id).collect();
    assert_eq!(ids, vec!["pos:R1", "pos:R2", "pos:R4"]);
    assert_eq!(
        property(&event(&out.records[0]).properties, "note"),
        Some(&text("first line\nsecond, with \"quotes\""))
    );
    assert_eq!(
        property(&event(&out.records[2]).properties, "note"),
        Some(&text("a\r\nb"))
    );
}

#[test]
fn csv_bad_date_is_rejected_naming_row_and_column_and_the_good_rows_are_kept() {
    let plugin = csv();
    let mapping = r#"{
        "source": "loyalty",
        "timezone": "+08:00",
        "identities": {"member_no": "member_id"},
        "traits": {"joined": {"name": "member_since", "type": "date", "format": "%d/%m/%Y"}},
        "event": {
            "type": "purchase",
            "time": {"column": "purchased_at", "format": "%d/%m/%Y"}
        }
    }"#;
    let params = params(&plugin, mapping, &[]);
    let data = concat!(
        "member_no,purchased_at,joined\n",
        "M1,29/02/2024,01/06/2019\n",
        "M2,31/02/2024,01/06/2019\n",
        "M3,01/03/2024,2019-06-01\n",
        "M4,01/03/2024,\n",
    );
    let out = parse(&plugin, &params, data.as_bytes());
    assert_eq!(
        rejected(&out),
        vec![(3, Some("purchased_at".into())), (4, Some("joined".into()))]
    );
    assert_eq!(
        out.rejections[0].reason,
        "column \"purchased_at\": \"31/02/2024\" is not a date in format %d/%m/%Y"
    );
    assert_eq!(
        out.rejections[1].reason,
        "column \"joined\": \"2019-06-01\" is not a date in format %d/%m/%Y"
    );
    match &out.records[1] {
        Record::TraitUpdate(t) => assert_eq!(
            t.traits,
            vec![param("member_since", Value::Timestamp(1_559_318_400_000))]
        ),
        other => panic!("expected a trait update, got {other:?}"),
    }
    assert_eq!(out.records.len(), 3, "M1's event and traits, M4's event");
}

#[test]
fn csv_row_missing_a_required_identity_is_rejected() {
    let plugin = csv();
    let any = r#"{"source": "loyalty", "identities": {"member_no": "member_id", "mobile": "phone"},
        "traits": {"tier": "string"}}"#;
    let data = concat!(
        "member_no,mobile,tier\n",
        "M1,,gold\n",
        ",,silver\n",
        ",13800138000,bronze\n",
    );
    let out = parse(&plugin, &params(&plugin, any, &[]), data.as_bytes());
    assert_eq!(rejected(&out), vec![(3, Some("member_no".into()))]);
    assert!(
        out.rejections[0]
            .reason
            .contains("no identity: \"member_no\", \"mobile\" are empty"),
        "{}",
        out.rejections[0].reason
    );
    assert_eq!(out.records.len(), 2);

    let required = r#"{"source": "loyalty",
        "identities": {"member_no": {"kind": "member_id", "required": true}, "mobile": "phone"},
        "traits": {"tier": "string"}}"#;
    let out = parse(&plugin, &params(&plugin, required, &[]), data.as_bytes());
    assert_eq!(
        rejected(&out),
        vec![(3, Some("member_no".into())), (4, Some("member_no".into()))]
    );
    assert_eq!(
        out.rejections[1].reason,
        "column \"member_no\": the member_id is missing and is required"
    );

    // With only identities mapped, a row is a link, which needs two.
    let link = r#"{"source": "crm", "identities": {"member_no": "member_id", "mobile": "phone"}}"#;
    let out = parse(&plugin, &params(&plugin, link, &[]), data.as_bytes());
    assert_eq!(
        rejected(&out).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    let both = "member_no,mobile\nM1,13800138000\n";
    let out = parse(&plugin, &params(&plugin, link, &[]), both.as_bytes());
    match &out.records[..] {
        [Record::IdentityLink(l)] => assert_eq!(
            l.identities,
            vec![
                identity("member_id", "M1"),
                identity("phone", "13800138000")
            ]
        ),
        other => panic!("expected one identity link, got {other:?}"),
    }
}

#[test]
fn csv_duplicate_rows_and_reimports_get_the_same_derived_source_ids() {
    let plugin = csv();
    let mapping = r#"{
        "source": "pos-east",
        "timezone": "+08:00",
        "identities": {"member_no": "member_id"},
        "event": {"type": "purchase", "time": {"column": "at", "format": "%Y-%m-%d %H:%M"},
                  "properties": {"amount": "number"}}
    }"#;
    let params = params(&plugin, mapping, &[]);
    let data = concat!(
        "member_no,at,amount,till\n",
        "M1,2024-03-05 10:00,59.9,3\n",
        "M1,2024-03-05 10:00,59.9,4\n",
        " M1 ,2024-03-05 10:00,\"59.9\",3,\n",
        "M2,2024-03-05 10:00,59.9,3\n",
    );
    let out = parse(&plugin, &params, data.as_bytes());
    assert_eq!(rejected(&out), vec![]);
    let ids: Vec<_> = out.records.iter().map(source_id).collect();
    assert_eq!(
        ids[0], ids[2],
        "the same row, padded and quoted, is a duplicate"
    );
    assert_ne!(ids[0], ids[1], "an unmapped column still tells rows apart");
    assert_ne!(ids[0], ids[3]);
    assert_eq!(
        ids[0], "pos-east:9672c3a54d605bbdc1abb819a5b05d95",
        "MurmurHash3 x64 128 of the cells, as the docs say (computed with the mmh3 package)"
    );
    for id in &ids {
        let hash = id
            .strip_prefix("pos-east:")
            .expect("ids start with the source");
        assert_eq!(hash.len(), 32);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let again = parse(&plugin, &params, data.as_bytes());
    assert_eq!(again, out, "re-importing the file yields the same records");
}

/// Parses `file` in chunks cut by [`Splitter`] near every `size` bytes, with
/// `header` and `first_row` as the chunk contract says.
fn parse_in_chunks(
    plugin: &Plugin,
    params: &[FieldValue],
    file: &[u8],
    gb: bool,
    delimiter: u8,
    size: usize,
) -> (ParseOutput, usize) {
    let mut splitter = Splitter::new(delimiter, gb);
    let mut cuts = Vec::new();
    let mut last = 0;
    for (i, b) in file.iter().enumerate() {
        if splitter.push(*b) && i + 1 - last >= size {
            cuts.push(i + 1);
            last = i + 1;
        }
    }
    if last < file.len() {
        cuts.push(file.len());
    }
    let header_end = {
        let mut first = Splitter::new(delimiter, gb);
        file.iter()
            .position(|b| first.push(*b))
            .expect("a header line")
            + 1
    };
    let header = if gb {
        encoding_rs::GB18030
            .decode_without_bom_handling(&file[..header_end])
            .0
            .into_owned()
    } else {
        String::from_utf8(file[..header_end].to_vec()).unwrap()
    };
    let mut out = ParseOutput {
        records: Vec::new(),
        rejections: Vec::new(),
    };
    let mut start = 0;
    for &end in &cuts {
        let first_row = 1 + file[..start].iter().filter(|b| **b == b'\n').count() as i64;
        let mut chunk_params = params.to_vec();
        chunk_params.retain(|p| p.name != "first_row" && p.name != "header");
        chunk_params.push(param("first_row", Value::Integer(first_row)));
        if start > 0 {
            chunk_params.push(param("header", text(header.trim_start_matches('\u{feff}'))));
        }
        let part = parse(plugin, &chunk_params, &file[start..end]);
        out.records.extend(part.records);
        out.rejections.extend(part.rejections);
        start = end;
    }
    (out, cuts.len())
}

#[test]
fn csv_chunks_with_header_and_first_row_give_the_records_of_one_whole_file_call() {
    let plugin = csv();
    let c = char_with_pipe_byte();
    let mapping = r#"{
        "source": "pos",
        "timezone": "+08:00",
        "identities": {"会员号": "member_id"},
        "event": {"type": "purchase", "time": {"column": "时间", "format": "%Y-%m-%d %H:%M"},
                  "properties": {"备注": {"name": "note", "type": "string"}, "金额": {"name": "amount", "type": "number"}}}
    }"#;
    let cases = [("utf-8", ','), ("gb18030", ','), ("gb18030", '|')];
    for (encoding, d) in cases {
        let mut text_file = format!("\u{feff}会员号{d}时间{d}金额{d}备注\n");
        for i in 0..40 {
            let row = match i % 8 {
                0 => format!(
                    "M{i}{d}2024-03-05 10:00{d}{i}.5{d}\"多行\n备注 {c}{d} \"\"引号\"\"\"\n"
                ),
                1 => format!("M{i}{d}2024-03-05 10:00{d}{i}{d} \"{c}|\"\n"),
                2 => format!("M{i}{d}2024-02-30 10:00{d}{i}{d}坏日期\n"),
                3 => "\n".to_string(),
                4 => format!("{d}2024-03-05 10:00{d}{i}{d}无身份\n"),
                5 => format!("M{i}{d}2024-03-05 10:00{d}\"{i}{d}5\"{d}引号里的分隔符\n"),
                _ => format!("M{i}{d}2024-03-05 10:00{d}{i}{d}{c}店\r\n"),
            };
            text_file.push_str(&row);
        }
        text_file.push_str(&format!(
            "M99{d}2024-03-05 10:00{d}1{d}no newline at the end"
        ));
        let file = if encoding == "utf-8" {
            text_file.into_bytes()
        } else {
            gb18030(&text_file)
        };
        let delimiter = d as u8;
        let extra = [
            ("encoding", text(encoding)),
            ("delimiter", text(&d.to_string())),
        ];
        let params = params(&plugin, mapping, &extra);
        let whole = parse(&plugin, &params, &file);
        assert!(
            whole.records.len() >= 20,
            "{encoding} {delimiter}: {whole:?}"
        );
        assert!(
            rejected(&whole).contains(&(23, Some("时间".into()))),
            "{encoding} {}: {:?}",
            delimiter as char,
            whole.rejections
        );
        let mut headless = params.clone();
        headless.retain(|p| p.name != "first_row");
        headless.push(param("first_row", Value::Integer(5)));
        assert!(
            matches!(
                plugin.parse(&headless, &file),
                Err(CallError::Plugin {
                    error: PluginError::InvalidConfig(_),
                    ..
                })
            ),
            "a later chunk without `header` is refused"
        );
        for size in [1, 10, 97, 400] {
            let (chunked, chunks) = parse_in_chunks(
                &plugin,
                &params,
                &file,
                encoding != "utf-8",
                delimiter,
                size,
            );
            assert!(chunks > 1 || size == 400);
            assert_eq!(
                chunked, whole,
                "{encoding} {} in chunks of about {size} bytes",
                delimiter as char
            );
        }
    }
}

#[test]
fn csv_without_a_header_reads_columns_by_position_or_by_the_mappings_names() {
    let plugin = csv();
    let data = "M1,gold\nM2,silver\n";
    let by_position =
        r#"{"source": "s", "identities": {"1": "member_id"}, "traits": {"2": {"name": "tier"}}}"#;
    let named = r#"{"source": "s", "columns": ["member_no", "tier"],
        "identities": {"member_no": "member_id"}, "traits": {"TIER": "string"}}"#;
    let mut outs = Vec::new();
    for mapping in [by_position, named] {
        let params = params(&plugin, mapping, &[("has_header", Value::Boolean(false))]);
        let out = parse(&plugin, &params, data.as_bytes());
        assert_eq!(rejected(&out), vec![]);
        assert_eq!(out.records.len(), 2);
        outs.push(out);
    }
    match (&outs[0].records[1], &outs[1].records[1]) {
        (Record::TraitUpdate(a), Record::TraitUpdate(b)) => {
            assert_eq!(a.traits, vec![param("tier", text("silver"))]);
            assert_eq!(b.traits, vec![param("TIER", text("silver"))]);
            assert_eq!(a.identities, vec![identity("member_id", "M2")]);
        }
        other => panic!("expected trait updates, got {other:?}"),
    }
}

#[test]
fn csv_mapping_errors_are_refused_by_validate_with_the_key_at_fault() {
    let plugin = csv();
    let cases = [
        ("{", "not valid JSON"),
        (
            r#"{"identities": {"m": "member_id"}, "traits": {"t": "string"}}"#,
            "\"source\" is required",
        ),
        (
            r#"{"source": "s", "identites": {"m": "member_id"}}"#,
            "unknown key \"identites\"",
        ),
        (
            r#"{"source": "s", "identities": {"m": "memberid"}, "traits": {"t": "string"}}"#,
            "identities.\"m\": unknown identity kind \"memberid\"",
        ),
        (
            r#"{"source": "s", "identities": {}, "traits": {"t": "string"}}"#,
            "identities must map at least one column",
        ),
        (
            r#"{"source": "s", "identities": {"m": "email"}, "traits": {"t": "money"}}"#,
            "traits.\"t\": unknown type \"money\"",
        ),
        (
            r#"{"source": "s", "identities": {"m": "email"}}"#,
            "makes nothing of a row",
        ),
        (
            r#"{"source": "s", "identities": {"m": "email"},
               "event": {"type": "purchase", "time": {"column": "at", "format": "%Y-%m-%d"}}}"#,
            "event.time: the format \"%Y-%m-%d\" has no offset (%z), so a \"timezone\" is needed",
        ),
        (
            r#"{"source": "s", "identities": {"m": "email"},
               "event": {"type": "purchase", "time": {"column": "at", "format": "%Y-%m-%d",
                         "timezone": "Asia/Shanghai"}}}"#,
            "time zone names such as \"Asia/Shanghai\" are not supported",
        ),
        (
            r#"{"source": "s", "identities": {"m": "email"},
               "event": {"type": "purchase", "time": {"column": "at", "format": "%d.%b.%Y", "timezone": "UTC"}}}"#,
            "event.time.format \"%d.%b.%Y\": %b is not supported",
        ),
        (
            r#"{"source": "s", "identities": {"m": "email"}, "event": {"type": "purchase"}}"#,
            "event.time is required",
        ),
        (
            r#"{"source": "s", "identities": {"m": "email"}, "traits": {"t": {"type": "number", "format": "%Y"}}}"#,
            "format and timezone apply only to type \"date\"",
        ),
        (
            r#"{"source": "s", "columns": ["a"], "identities": {"m": "email"}, "traits": {"a": "string"}}"#,
            "column \"m\" is not one of the names in columns",
        ),
    ];
    for (mapping, expected) in cases {
        match plugin.validate(&[param("mapping", text(mapping))]) {
            Err(CallError::Plugin {
                error: PluginError::InvalidConfig(message),
                ..
            }) => {
                assert!(message.starts_with("parameter `mapping`: "), "{message}");
                assert!(
                    message.contains(expected),
                    "for {mapping}: expected `{expected}` in `{message}`"
                );
            }
            other => panic!("expected {mapping} to be refused, got {other:?}"),
        }
    }
    // The schema itself refuses what the plugin never sees.
    assert!(matches!(
        plugin.validate(&[
            param("mapping", text(PURCHASES)),
            param("encoding", text("latin-1"))
        ]),
        Err(CallError::InvalidParams { .. })
    ));
    assert!(matches!(
        plugin.validate(&[]),
        Err(CallError::InvalidParams { .. })
    ));
    // A mapping column missing from the file's header fails the chunk, naming it.
    let params = params(&plugin, PURCHASES, &[]);
    match plugin.parse(
        &params,
        b"receipt_no,member_no,mobile,tier,amount\nR1,M1,1,gold,2\n",
    ) {
        Err(CallError::Plugin {
            error: PluginError::InvalidInput(message),
            ..
        }) => assert!(
            message.contains("column \"purchased_at\" of the mapping is not in the header"),
            "{message}"
        ),
        other => panic!("expected the header to be refused, got {other:?}"),
    }
}

#[test]
fn csv_parses_100000_rows_in_chunks_within_the_default_limits() {
    let plugin = csv();
    let params = params(&plugin, PURCHASES, &[]);
    let mut data = String::from("receipt_no,member_no,mobile,purchased_at,amount,qty,store,tier\n");
    for i in 0..100_000u32 {
        use std::fmt::Write as _;
        writeln!(
            data,
            "R{i},M{:05},138{:08},2024-03-{:02} {:02}:{:02}:00,{}.{:02},{},\"Store {}\",{}",
            i % 20_000,
            i % 20_000,
            1 + i % 28,
            i % 24,
            i % 60,
            i % 500,
            i % 100,
            1 + i % 5,
            i % 40,
            if i % 10 == 0 { "gold" } else { "" },
        )
        .unwrap();
    }
    let data = data.as_bytes();
    // Chunks of about 2 MiB, cut where the docs say the host cuts.
    let mut splitter = Splitter::new(b',', false);
    let mut start = 0;
    let mut header = String::new();
    let (mut records, mut fuel, mut peak, mut output, mut calls) = (0, 0, 0, 0, 0);
    let mut last_id = String::new();
    for (i, b) in data.iter().enumerate() {
        let end = i + 1;
        let cut = splitter.push(*b);
        if header.is_empty() && cut {
            header = String::from_utf8(data[..end].to_vec()).unwrap();
        }
        if !((cut && end - start >= 2 << 20) || end == data.len()) {
            continue;
        }
        let first_row = 1 + data[..start].iter().filter(|b| **b == b'\n').count() as i64;
        let mut chunk_params = params.clone();
        chunk_params.retain(|p| p.name != "first_row" && p.name != "header");
        chunk_params.push(param("first_row", Value::Integer(first_row)));
        if start > 0 {
            chunk_params.push(param("header", text(&header)));
        }
        let called = plugin
            .parse(&chunk_params, &data[start..end])
            .unwrap_or_else(|e| panic!("a 2 MiB chunk in default limits: {e}"));
        assert_eq!(called.value.rejections, vec![]);
        records += called.value.records.len();
        last_id = source_id(called.value.records.last().unwrap()).to_owned();
        fuel += called.cost.fuel;
        assert!(
            called.cost.fuel < called.cost.fuel_budget / 2,
            "{:?}",
            called.cost
        );
        peak = peak.max(called.cost.peak_memory);
        output = output.max(called.cost.output_bytes);
        calls += 1;
        start = end;
    }
    assert_eq!(records, 110_000, "100,000 events and 10,000 trait updates");
    assert_eq!(last_id, "pos-east:R99999");
    let limits = Limits::default();
    assert!(peak <= limits.memory_bytes);
    assert!(output <= limits.output_bytes);
    eprintln!(
        "csv, 100,000 rows ({} bytes) in {calls} calls: fuel {fuel} in all, largest peak memory \
         {peak} bytes, largest output {output} bytes",
        data.len()
    );
}
