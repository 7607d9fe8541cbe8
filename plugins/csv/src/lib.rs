//! `csv`: a push connector for offline data — store purchases and loyalty
//! members exported by retail systems — as delimited text in UTF-8 or GB18030.
//!
//! Each import carries a *mapping* (parameter `mapping`, JSON) that says which
//! column is which identity, trait, event property, time and source id. A row
//! becomes an event and/or a trait update, or, when the mapping names only
//! identities, an identity link. A row that breaks a rule is rejected with its
//! file row number, its column and the rule; the other rows are still returned.
//!
//! # Parameters
//!
//! | name | kind | default | meaning |
//! |---|---|---|---|
//! | `mapping` | text | required | the mapping, JSON (below) |
//! | `delimiter` | text | `,` | one of `,` `;` `\t` (or `tab`) `\|` |
//! | `has_header` | boolean | `true` | the file's first record names the columns |
//! | `header` | text | empty | the header record, for chunks after the first (below) |
//! | `first_row` | integer | `1` | file line number of the chunk's first line (below) |
//! | `encoding` | text | `utf-8` | `utf-8`, `gb18030` or `gbk` (read as GB18030, its superset) |
//! | `decimal` | text | `.` | decimal separator, `.` or `,`; `,` needs another delimiter |
//! | `thousands` | text | empty | thousands separator (`,` `.` `'` or a space); empty refuses grouped digits |
//!
//! # The mapping
//!
//! ```json
//! {
//!   "source": "pos-east",
//!   "timezone": "+08:00",
//!   "identities": {"member_no": "member_id", "mobile": {"kind": "phone", "required": true}},
//!   "traits": {"tier": {"name": "loyalty_tier", "type": "string"}},
//!   "event": {
//!     "type": "purchase",
//!     "time": {"column": "purchased_at", "format": "%Y-%m-%d %H:%M:%S"},
//!     "properties": {"amount": "number", "store": {"name": "store_name", "type": "string"}}
//!   },
//!   "source_id": {"column": "receipt_no"}
//! }
//! ```
//!
//! - `source` (required): names the source; every source id starts with it.
//! - `identities` (required, at least one): column → kind (`email`, `phone`,
//!   `member_id`, `device_id`, `external:<system>`), or `{"kind", "required"}`.
//!   A row with no identity at all, or without a required one, is rejected.
//! - `traits`, `event.properties`: column → type, or `{"name", "type",
//!   "format", "timezone", "required"}`; the name defaults to the column's.
//!   Types: `string`, `number`, `integer`, `bool` (`true/false`, `yes/no`,
//!   `y/n`, `t/f`, `1/0`, `是/否`), `date` (format default `%Y-%m-%d`). An
//!   empty cell is a missing value; a missing `required` value rejects the row.
//! - `event`: `type` is a fixed name or `{"column": "…"}`; `time` is
//!   `{"column", "format", "timezone"}` and required.
//! - Time formats: `rfc3339`, `epoch_s`, `epoch_ms`, or a pattern of `%Y`
//!   (4 digits), `%y` (2 digits, 20xx), `%m` `%d` `%H` `%M` `%S` (1 or 2
//!   digits), `%f` (fraction of a second), `%z` (`Z`, `+08:00`, `+0800`),
//!   `%%`, and literal text (`%Y年%m月%d日` works). A pattern needs a year,
//!   month and day; a missing time of day is midnight.
//! - `timezone` (per time column, or once at the top): a fixed offset,
//!   `+08:00`, `-05:00`, `UTC`. Required for patterns without `%z`, so no
//!   local time is silently read as UTC. Zone names (`Asia/Shanghai`) are
//!   refused: the plugin carries no time zone database, and the offset of
//!   the export is what the file means (China has no daylight saving time).
//! - `source_id`: `{"column": "…"}` (the cell, e.g. a receipt number) or
//!   `"derived"` (the default): MurmurHash3 x64 128 (seed 0) of the row's
//!   decoded, trimmed cells, each followed by U+001F (trailing empty cells
//!   dropped), as `h1` then `h2` in 16 hex digits each.
//!   Re-importing a file, or a duplicate row, yields the same ids, whatever the
//!   file's encoding. Ids are `<source>:<key>` for events, `<source>:<key>#traits`
//!   for trait updates and `<source>:<key>#link` for identity links.
//! - `columns`: names for the columns of a file without a header row; without
//!   it such a file's columns are named by position, `"1"`, `"2"`, ….
//!
//! Column names match the header trimmed and case-insensitively; a column
//! of the mapping that is missing from the header, or there twice, fails the
//! whole chunk (`invalid-input`). A mistake in the mapping fails `validate`
//! (`invalid-config`) with the key at fault.
//!
//! # Parsing
//!
//! RFC 4180: cells separated by the delimiter, records by `\n` or `\r\n`; a
//! cell whose first non-blank character is `"` is quoted and may hold
//! delimiters, newlines and doubled quotes (`""`). A quote elsewhere is an
//! ordinary character. Cells are trimmed (inside quotes too); blank lines and
//! lines of empty cells are skipped. A UTF-8 byte order mark is dropped (as
//! is GB18030's); a file whose mark contradicts `encoding` is refused. A row
//! whose bytes are not valid in the encoding, that has cells past the
//! header's last column (empty trailing cells are ignored), or an unclosed
//! quote, is rejected. Rejections carry the row (file
//! line number of the record's first line, the header being line 1), the
//! column's name as the header spells it, and the rule, e.g.
//! `column "purchased_at": "31/02/2024" is not a date in format %d/%m/%Y`.
//! A row is accepted or rejected whole, with its first fault.
//!
//! # Chunks
//!
//! The host may split a large file into chunks and call `parse` once per
//! chunk, with the same parameters plus:
//!
//! - each chunk ends right after a `\n` that is outside quotes (the last may
//!   end anywhere), as [`Splitter`] below finds;
//! - `first_row` = 1 + the number of `\n` bytes in the file before the chunk;
//! - the first chunk (`first_row` = 1) is sent as is, with its byte order
//!   mark and, if `has_header`, its header record, and `header` empty;
//! - every later chunk, if `has_header`, gets `header` = the file's header
//!   record as text (decoded from the file's encoding, without the byte order
//!   mark; a trailing newline is allowed), and is refused without it.
//!   Without `has_header`, `header` stays empty.
//!
//! Then the records and rejections of all chunks equal those of one call
//! with the whole file. A chunk with no safe point within the host's size
//! limit holds a record that long (an unclosed quote does that to the rest
//! of a file): the host sends it as one larger chunk or fails the import
//! there.
//!
//! A call's result is capped by the plugin's `output_bytes` limit (32 MiB by
//! default), counted as the sandbox copies it out: over 300 bytes per
//! record with a few identities and properties. Chunks of about 2 MiB stay
//! well inside every default limit; 100,000 rows in one call do not.
//!
//! ```
//! /// Feed a CSV file's bytes in order: `push` is true when a chunk for the
//! /// `csv` connector may end right after that byte.
//! pub struct Splitter { delimiter: u8, gb18030: bool, state: State, trail: bool }
//!
//! #[derive(Clone, Copy, PartialEq)]
//! enum State { CellStart, Unquoted, Quoted, QuoteInQuoted }
//!
//! impl Splitter {
//!     pub fn new(delimiter: u8, gb18030: bool) -> Self {
//!         Splitter { delimiter, gb18030, state: State::CellStart, trail: false }
//!     }
//!
//!     pub fn push(&mut self, b: u8) -> bool {
//!         // The second byte of a two-byte GB18030 character is never
//!         // structural, even when it equals `|`.
//!         if std::mem::take(&mut self.trail) && matches!(b, 0x40..=0x7E | 0x80..=0xFE) {
//!             return false;
//!         }
//!         if self.gb18030 && (0x81..=0xFE).contains(&b) {
//!             self.trail = true;
//!         }
//!         use State::*;
//!         self.state = match (self.state, b) {
//!             (Quoted, b'"') => QuoteInQuoted,
//!             (Quoted, _) => Quoted,
//!             (QuoteInQuoted, b'"') => Quoted, // a doubled quote
//!             (_, b'\n') => {
//!                 self.state = CellStart;
//!                 return true;
//!             }
//!             (_, d) if d == self.delimiter => CellStart,
//!             (CellStart, b'"') => Quoted,
//!             (CellStart, b' ' | b'\t') => CellStart,
//!             _ => Unquoted,
//!         };
//!         false
//!     }
//! }
//!
//! let mut splitter = Splitter::new(b',', false);
//! let file = b"id,note\n1,\"two\nlines\"\n2,x\n";
//! let cuts: Vec<usize> = (0..file.len()).filter(|&i| splitter.push(file[i])).map(|i| i + 1).collect();
//! assert_eq!(cuts, [8, 22, 26]);
//! ```

mod mapping;
mod reader;
mod values;

use tessera_sdk::prelude::*;

use mapping::{FieldMap, Kind, Mapping, Plan};
use reader::{Cells, Encoding, Flaw, Reader, RowBuf};
use values::{NumberError, NumberStyle};

/// The connector; public so that the fuzz targets (`fuzz/`) reach
/// [`Connector::parse`] natively.
pub struct Csv;

impl Connector for Csv {
    fn describe() -> Manifest {
        Manifest::new(
            "csv",
            "0.1.0",
            "Parses delimited text exports (store purchases, loyalty members) in UTF-8 or \
             GB18030 into events, trait updates and identity links, by a per-import mapping.",
        )
        .param(
            ParamSpec::text(
                "mapping",
                "JSON: which column is which identity, trait, event property, time and source id",
            )
            .required(),
        )
        .param(
            ParamSpec::text("delimiter", "The cell delimiter")
                .choices(&[",", ";", "\t", "tab", "|"])
                .default(Value::Text(",".into())),
        )
        .param(
            ParamSpec::boolean("has_header", "The file's first record names the columns")
                .default(Value::Boolean(true)),
        )
        .param(
            ParamSpec::text(
                "header",
                "The file's header record, for chunks after the first; empty when the chunk \
                 starts with it (or the file has none)",
            )
            .default(Value::Text(String::new())),
        )
        .param(
            ParamSpec::integer(
                "first_row",
                "File line number of the chunk's first line (1 for the first chunk)",
            )
            .range(1.0, f64::from(u32::MAX))
            .default(Value::Integer(1)),
        )
        .param(
            ParamSpec::text(
                "encoding",
                "The file's encoding; gbk is read as GB18030, its superset",
            )
            .choices(&["utf-8", "gb18030", "gbk"])
            .default(Value::Text("utf-8".into())),
        )
        .param(
            ParamSpec::text("decimal", "The decimal separator of numbers")
                .choices(&[".", ","])
                .default(Value::Text(".".into())),
        )
        .param(
            ParamSpec::text(
                "thousands",
                "The thousands separator of numbers; empty refuses grouped digits",
            )
            .choices(&["", ",", ".", "'", " "])
            .default(Value::Text(String::new())),
        )
    }

    fn modes() -> Modes {
        Modes::PUSH
    }

    fn validate(params: &Params) -> Result<(), Error> {
        let options = Options::from(params)?;
        if !options.header.is_empty() {
            header_names(&options).map_err(Error::config)?;
        }
        Ok(())
    }

    fn parse(params: &Params, data: &[u8]) -> Result<ParseOutput, Error> {
        let options = Options::from(params)?;
        let data = strip_bom(data, options.encoding)?;
        let mut out = ParseOutput {
            records: Vec::new(),
            rejections: Vec::new(),
        };
        let mut reader = Reader::new(data, options.first_row, options.delimiter, options.encoding);
        let mut row = RowBuf::default();
        let names = if !options.header.is_empty() {
            header_names(&options).map_err(Error::input)?
        } else if options.has_header {
            loop {
                if !reader.next_row(&mut row) {
                    return Ok(out);
                }
                let line = row.row;
                let flaw = row.flaw;
                let cells = reader.cells(&mut row).map_err(|_| {
                    Error::input(format!(
                        "the header (row {line}) is not valid {}",
                        options.encoding_name()
                    ))
                })?;
                if cells.is_blank() {
                    continue;
                }
                if flaw.is_some() {
                    return Err(Error::input(format!(
                        "the header (row {line}) has an unclosed quote or text after a quote"
                    )));
                }
                break (0..cells.len()).map(|i| cells.text(i).to_owned()).collect();
            }
        } else {
            options.mapping.columns.clone().unwrap_or_default()
        };
        let plan = Plan::bind(&options.mapping, names).map_err(Error::input)?;
        let converter = Converter {
            options: &options,
            plan: &plan,
            joined: Default::default(),
        };

        while reader.next_row(&mut row) {
            let line = row.row;
            let flaw = row.flaw;
            let cells = match reader.cells(&mut row) {
                Ok(cells) => cells,
                Err(reader::Undecodable(column)) => {
                    let name = plan.name(column);
                    out.rejections.push(Rejection::new(
                        line,
                        Some(&name),
                        format!(
                            "column \"{name}\": the bytes are not valid {}",
                            options.encoding_name()
                        ),
                    ));
                    continue;
                }
            };
            if cells.is_blank() {
                continue;
            }
            let verdict = match flaw {
                Some((column, Flaw::Unclosed)) => Err(Fault::column(
                    column,
                    "a quoted cell is not closed before the end of the data".into(),
                )),
                Some((column, Flaw::TextAfterQuote)) => Err(Fault::column(
                    column,
                    "text follows the closing quote (quotes inside a quoted cell are doubled: \"\")"
                        .into(),
                )),
                None if !plan.names.is_empty() && cells.used() > plan.names.len() => Err(Fault {
                    column: None,
                    reason: format!(
                        "the row has {} cells, the header {} (an unquoted delimiter inside a \
                         value?)",
                        cells.used(),
                        plan.names.len()
                    ),
                }),
                None => converter.convert(&cells, &mut out.records),
            };
            if let Err(fault) = verdict {
                let name = fault.column.map(|c| plan.name(c));
                let reason = match &name {
                    Some(name) => format!("column \"{name}\": {}", fault.reason),
                    None => fault.reason,
                };
                out.rejections
                    .push(Rejection::new(line, name.as_deref(), reason));
            }
        }
        Ok(out)
    }
}

/// The parameters of a call, checked.
struct Options {
    mapping: Mapping,
    delimiter: u8,
    has_header: bool,
    header: String,
    first_row: u32,
    encoding: Encoding,
    style: NumberStyle,
}

fn text_param<'p>(params: &'p Params, name: &str, default: &'p str) -> Result<&'p str, Error> {
    match params.get(name) {
        None => Ok(default),
        Some(_) => params.text(name),
    }
}

impl Options {
    fn from(params: &Params) -> Result<Self, Error> {
        let mapping = Mapping::parse(params.text("mapping")?)
            .map_err(|e| Error::config(format!("parameter `mapping`: {e}")))?;
        let delimiter = match text_param(params, "delimiter", ",")? {
            "," => b',',
            ";" => b';',
            "\t" | "tab" => b'\t',
            "|" => b'|',
            other => {
                return Err(Error::config(format!(
                    "parameter `delimiter`: \"{other}\" is not one of , ; tab |"
                )));
            }
        };
        let one_byte = |name: &str, value: &str| -> Result<Option<u8>, Error> {
            match value.as_bytes() {
                [] => Ok(None),
                [b @ (b'.' | b',' | b'\'' | b' ')] => Ok(Some(*b)),
                _ => Err(Error::config(format!(
                    "parameter `{name}`: \"{value}\" is not a separator this plugin knows"
                ))),
            }
        };
        let decimal = one_byte("decimal", text_param(params, "decimal", ".")?)?
            .filter(|b| matches!(b, b'.' | b','))
            .ok_or_else(|| Error::config("parameter `decimal` must be \".\" or \",\""))?;
        let thousands = one_byte("thousands", text_param(params, "thousands", "")?)?;
        if decimal == delimiter {
            return Err(Error::config(
                "parameter `decimal` is \",\" and so is `delimiter`: with decimal commas the \
                 cells must be delimited by \";\", tab or \"|\"",
            ));
        }
        if thousands == Some(decimal) {
            return Err(Error::config(
                "parameters `decimal` and `thousands` must differ",
            ));
        }
        let has_header = match params.get("has_header") {
            None => true,
            Some(_) => params.boolean("has_header")?,
        };
        let header = text_param(params, "header", "")?;
        let header = header.strip_prefix('\u{feff}').unwrap_or(header).to_owned();
        if !has_header && !header.is_empty() {
            return Err(Error::config(
                "parameter `header` is given but `has_header` is false",
            ));
        }
        let first_row = match params.get("first_row") {
            None => 1,
            Some(_) => params.integer("first_row")?,
        };
        let first_row = u32::try_from(first_row)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Error::config("parameter `first_row` must be between 1 and 2^32 - 1"))?;
        if has_header && header.is_empty() && first_row > 1 {
            return Err(Error::config(format!(
                "parameter `first_row` is {first_row}, so this is not the file's first chunk, \
                 and it needs parameter `header` (the file's header record)"
            )));
        }
        let encoding = match text_param(params, "encoding", "utf-8")? {
            "utf-8" => Encoding::Utf8,
            "gb18030" | "gbk" => Encoding::Gb18030,
            other => {
                return Err(Error::config(format!(
                    "parameter `encoding`: \"{other}\" is not supported (utf-8, gb18030, gbk)"
                )));
            }
        };
        Ok(Options {
            mapping,
            delimiter,
            has_header,
            header,
            first_row,
            encoding,
            style: NumberStyle { decimal, thousands },
        })
    }

    fn encoding_name(&self) -> &'static str {
        match self.encoding {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gb18030 => "GB18030",
        }
    }
}

/// The column names of the `header` parameter: exactly one record.
fn header_names(options: &Options) -> Result<Vec<String>, String> {
    let mut reader = Reader::new(
        options.header.as_bytes(),
        1,
        options.delimiter,
        Encoding::Utf8,
    );
    let mut row = RowBuf::default();
    let mut names: Option<Vec<String>> = None;
    while reader.next_row(&mut row) {
        let flaw = row.flaw;
        let cells = reader
            .cells(&mut row)
            .map_err(|_| "parameter `header` is not valid text".to_owned())?;
        if cells.is_blank() {
            continue;
        }
        if flaw.is_some() || names.is_some() {
            return Err(
                "parameter `header` must be one header record (an unclosed quote, or more \
                 than one line?)"
                    .into(),
            );
        }
        names = Some((0..cells.len()).map(|i| cells.text(i).to_owned()).collect());
    }
    names.ok_or_else(|| "parameter `header` holds no column names".into())
}

/// Drops a byte order mark; refuses one that contradicts the encoding.
fn strip_bom(data: &[u8], encoding: Encoding) -> Result<&[u8], Error> {
    if let Some(rest) = data.strip_prefix(encoding.bom()) {
        return Ok(rest);
    }
    let other = match encoding {
        Encoding::Utf8 => Encoding::Gb18030,
        Encoding::Gb18030 => Encoding::Utf8,
    };
    if data.starts_with(other.bom()) {
        let (found, param) = match other {
            Encoding::Utf8 => ("UTF-8", "utf-8"),
            Encoding::Gb18030 => ("GB18030", "gb18030"),
        };
        return Err(Error::input(format!(
            "the data starts with a {found} byte order mark but parameter `encoding` says \
             otherwise; import it with encoding = \"{param}\""
        )));
    }
    Ok(data)
}

/// Why a row was rejected: the column (if one) and the rule it broke.
struct Fault {
    column: Option<usize>,
    reason: String,
}

impl Fault {
    fn column(column: usize, reason: String) -> Self {
        Fault {
            column: Some(column),
            reason,
        }
    }
}

/// A cell's text, shortened for a message.
fn shown(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("\"{}…\"", &text[..at]),
        None => format!("\"{text}\""),
    }
}

struct Converter<'a> {
    options: &'a Options,
    plan: &'a Plan,
    /// The row's cells joined, for derived ids; reused from row to row.
    joined: std::cell::RefCell<Vec<u8>>,
}

impl Converter<'_> {
    /// Turns one row into its records, appended to `out` only if all is well.
    fn convert(&self, cells: &Cells<'_>, out: &mut Vec<Record>) -> Result<(), Fault> {
        let mapping = &self.options.mapping;
        let plan = self.plan;

        let mut identities = Vec::with_capacity(mapping.identities.len());
        for (spec, &column) in mapping.identities.iter().zip(&plan.identities) {
            match cells.get(column) {
                Some(value) => identities.push(Identity::new(&spec.kind, value)),
                None if spec.required => {
                    return Err(Fault::column(
                        column,
                        format!("the {} is missing and is required", spec.kind),
                    ));
                }
                None => {}
            }
        }
        if identities.is_empty() {
            return Err(Fault {
                column: plan.identities.first().copied(),
                reason: format!(
                    "no identity: {} {} empty, so the row cannot be matched to a person",
                    plan.identities
                        .iter()
                        .map(|c| format!("\"{}\"", plan.name(*c)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if plan.identities.len() == 1 {
                        "is"
                    } else {
                        "are"
                    }
                ),
            });
        }

        let key = match plan.source_id {
            Some(column) => cells
                .get(column)
                .ok_or_else(|| Fault::column(column, "the source id is empty".into()))?
                .to_owned(),
            None => derived_key(cells, &mut self.joined.borrow_mut()),
        };
        let id = |suffix: &str| {
            let mut id = String::with_capacity(mapping.source.len() + 1 + key.len() + suffix.len());
            id.push_str(&mapping.source);
            id.push(':');
            id.push_str(&key);
            id.push_str(suffix);
            id
        };

        let event = match &mapping.event {
            Some(spec) => {
                let event_type = match &plan.event_type {
                    mapping::EventTypeAt::Column(column) => cells
                        .get(*column)
                        .ok_or_else(|| Fault::column(*column, "the event type is empty".into()))?
                        .to_owned(),
                    mapping::EventTypeAt::Fixed(name) => name.clone(),
                };
                let column = plan.time;
                let text = cells
                    .get(column)
                    .ok_or_else(|| Fault::column(column, "the event time is empty".into()))?;
                let at = spec
                    .time_format
                    .timestamp(text, spec.time_offset)
                    .ok_or_else(|| {
                        Fault::column(
                            column,
                            format!(
                                "{} is not a date in format {}",
                                shown(text),
                                spec.time_format_text
                            ),
                        )
                    })?;
                let properties = self.values(cells, &spec.properties, &plan.properties)?;
                Some((event_type, at, properties))
            }
            None => None,
        };
        let traits = self.values(cells, &mapping.traits, &plan.traits)?;

        let produced = event.is_some() || !traits.is_empty();
        if !produced && identities.len() < 2 {
            return Err(Fault {
                column: None,
                reason: if mapping.traits.is_empty() {
                    "only one identity is present, and a link needs two".into()
                } else {
                    "no trait has a value, and only one identity is present to link".into()
                },
            });
        }
        match (event, traits.is_empty()) {
            (Some((event_type, at, properties)), true) => out.push(Record::Event(Event {
                source_id: id(""),
                event_type,
                at,
                identities,
                properties,
            })),
            (Some((event_type, at, properties)), false) => {
                out.push(Record::Event(Event {
                    source_id: id(""),
                    event_type,
                    at,
                    identities: identities.clone(),
                    properties,
                }));
                out.push(Record::TraitUpdate(TraitUpdate {
                    source_id: id("#traits"),
                    identities,
                    traits,
                }));
            }
            (None, false) => out.push(Record::TraitUpdate(TraitUpdate {
                source_id: id("#traits"),
                identities,
                traits,
            })),
            (None, true) => out.push(Record::IdentityLink(IdentityLink {
                source_id: id("#link"),
                identities,
            })),
        }
        Ok(())
    }

    /// The typed values of trait or property columns; missing cells are left out.
    fn values(
        &self,
        cells: &Cells<'_>,
        specs: &[FieldMap],
        columns: &[usize],
    ) -> Result<Vec<FieldValue>, Fault> {
        let mut out = Vec::with_capacity(specs.len());
        for (spec, &column) in specs.iter().zip(columns) {
            let Some(text) = cells.get(column) else {
                if spec.required {
                    return Err(Fault::column(
                        column,
                        "the value is missing and is required".into(),
                    ));
                }
                continue;
            };
            let value = self
                .value(&spec.kind, text)
                .map_err(|reason| Fault::column(column, reason))?;
            out.push(FieldValue {
                name: spec.name.clone(),
                value,
            });
        }
        Ok(out)
    }

    fn value(&self, kind: &Kind, text: &str) -> Result<Value, String> {
        let style = self.options.style;
        let number_error = |error: NumberError, what: &str| -> String {
            let decimal = char::from(style.decimal);
            match error {
                NumberError::Malformed => {
                    format!(
                        "{} is not {what} (decimal separator \"{decimal}\")",
                        shown(text)
                    )
                }
                NumberError::Grouped => format!(
                    "{} is not {what}: the decimal separator is \"{decimal}\", and grouped \
                     digits need parameter `thousands`",
                    shown(text)
                ),
                NumberError::Fraction => format!("{} is not a whole number", shown(text)),
                NumberError::OutOfRange => format!("{} is out of range", shown(text)),
            }
        };
        Ok(match kind {
            Kind::String => Value::Text(text.to_owned()),
            Kind::Number => {
                Value::Number(values::number(text, style).map_err(|e| number_error(e, "a number"))?)
            }
            Kind::Integer => Value::Integer(
                values::integer(text, style).map_err(|e| number_error(e, "a whole number"))?,
            ),
            Kind::Boolean => Value::Boolean(values::boolean(text).ok_or_else(|| {
                format!(
                    "{} is not a boolean (true/false, yes/no, y/n, 1/0, 是/否)",
                    shown(text)
                )
            })?),
            Kind::Date(format, written, offset) => Value::Timestamp(
                format
                    .timestamp(text, *offset)
                    .ok_or_else(|| format!("{} is not a date in format {written}", shown(text)))?,
            ),
        })
    }
}

/// The derived source key: MurmurHash3 x64 128 (seed 0) of the row's
/// trimmed cells, each followed by U+001F, trailing empty cells dropped;
/// `h1` then `h2` as 16 hex digits each.
fn derived_key(cells: &Cells<'_>, joined: &mut Vec<u8>) -> String {
    joined.clear();
    for i in 0..cells.used() {
        joined.extend_from_slice(cells.text(i).as_bytes());
        joined.push(0x1f);
    }
    let (h1, h2) = murmur3_x64_128(joined);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = [0u8; 32];
    for (i, digit) in key.iter_mut().enumerate() {
        let word = if i < 16 { h1 } else { h2 };
        *digit = HEX[((word >> (60 - 4 * (i % 16))) & 0xf) as usize];
    }
    String::from_utf8_lossy(&key).into_owned()
}

/// MurmurHash3, x64 128-bit variant, seed 0: fast on 64-bit words, stable
/// and implemented the same in every language, so any tool can recompute a
/// row's id.
fn murmur3_x64_128(data: &[u8]) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    fn fmix(mut k: u64) -> u64 {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
    fn word(bytes: &[u8]) -> u64 {
        let mut buf = [0u8; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(buf)
    }
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let k1 = word(&block[..8])
            .wrapping_mul(C1)
            .rotate_left(31)
            .wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(27).wrapping_add(h2);
        h1 = h1.wrapping_mul(5).wrapping_add(0x52dc_e729);
        let k2 = word(&block[8..])
            .wrapping_mul(C2)
            .rotate_left(33)
            .wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2.rotate_left(31).wrapping_add(h1);
        h2 = h2.wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        h2 ^= word(&tail[8..])
            .wrapping_mul(C2)
            .rotate_left(33)
            .wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= word(&tail[..tail.len().min(8)])
            .wrapping_mul(C1)
            .rotate_left(31)
            .wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

tessera_sdk::export_connector!(Csv);
