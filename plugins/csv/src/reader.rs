//! Records out of raw CSV bytes: RFC 4180 quoting, file line numbers, and
//! decoding to text. Works on the chunk in place; never builds a copy of it.
//!
//! The quoting rules are exactly those of the split scanner in the crate docs
//! (a quote opens a quoted cell only at the start of a cell, after optional
//! spaces), so a chunk the host cuts there always starts a record here.

use memchr::{memchr, memchr2};

/// The character encoding of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// GB18030, a superset of GBK and GB2312.
    Gb18030,
}

impl Encoding {
    /// The byte order mark this encoding may start with.
    pub fn bom(self) -> &'static [u8] {
        match self {
            Encoding::Utf8 => b"\xEF\xBB\xBF",
            Encoding::Gb18030 => b"\x84\x31\x95\x33",
        }
    }
}

/// A problem with the structure of a record, found while splitting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// A quoted cell runs to the end of the data.
    Unclosed,
    /// Something other than spaces follows a cell's closing quote.
    TextAfterQuote,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    /// A quoted cell with doubled quotes to undo.
    escaped: bool,
}

#[derive(Debug, Clone, Copy)]
enum Text {
    /// A slice of the record's own text.
    Record(u32, u32),
    /// A slice of the scratch buffer (unescaped or decoded).
    Scratch(u32, u32),
}

/// One record, reused from row to row so that splitting allocates nothing
/// once the buffers have grown to the widest row.
#[derive(Debug, Default)]
pub struct RowBuf {
    /// File line number of the record's first line.
    pub row: u32,
    /// The first structural flaw and the cell (0-based) it is in.
    pub flaw: Option<(usize, Flaw)>,
    start: usize,
    end: usize,
    spans: Vec<Span>,
    texts: Vec<Text>,
    scratch: String,
    bytes: Vec<u8>,
}

/// Why a record's bytes are not text in the file's encoding: the cell (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable(pub usize);

/// The decoded, trimmed cells of a record.
#[derive(Debug, Clone, Copy)]
pub struct Cells<'a> {
    text: &'a str,
    scratch: &'a str,
    texts: &'a [Text],
}

impl<'a> Cells<'a> {
    /// Number of cells (missing trailing cells are not counted).
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Number of cells up to the last one that is not empty.
    pub fn used(&self) -> usize {
        (0..self.len())
            .rposition(|i| !self.text(i).is_empty())
            .map_or(0, |i| i + 1)
    }

    /// The cell's trimmed text; empty when the cell is empty or missing.
    pub fn text(&self, index: usize) -> &'a str {
        let slice = match self.texts.get(index) {
            Some(Text::Record(s, e)) => self.text.get(*s as usize..*e as usize),
            Some(Text::Scratch(s, e)) => self.scratch.get(*s as usize..*e as usize),
            None => None,
        };
        slice.unwrap_or("")
    }

    /// The cell's text, or `None` when it is empty or missing.
    pub fn get(&self, index: usize) -> Option<&'a str> {
        Some(self.text(index)).filter(|s| !s.is_empty())
    }

    /// Whether every cell is empty (a blank line, or a line of delimiters).
    pub fn is_blank(&self) -> bool {
        self.used() == 0
    }
}

/// Splits a chunk into records.
#[derive(Debug)]
pub struct Reader<'d> {
    data: &'d [u8],
    pos: usize,
    line: u32,
    delimiter: u8,
    encoding: Encoding,
}

impl<'d> Reader<'d> {
    /// A reader over `data` (without its byte order mark) whose first byte
    /// is on file line `first_row`.
    pub fn new(data: &'d [u8], first_row: u32, delimiter: u8, encoding: Encoding) -> Self {
        Reader {
            data,
            pos: 0,
            line: first_row,
            delimiter,
            encoding,
        }
    }

    /// Whether a byte other than the delimiter is blank around a cell.
    fn blank(&self, b: u8) -> bool {
        (b == b' ' || b == b'\t' || b == b'\r') && b != self.delimiter
    }

    /// Reads the next record into `record`; false at the end of the data.
    pub fn next_row(&mut self, record: &mut RowBuf) -> bool {
        let data = self.data;
        let len = data.len();
        if self.pos >= len {
            return false;
        }
        record.row = self.line;
        record.flaw = None;
        record.start = self.pos;
        record.spans.clear();
        let mut i = self.pos;
        loop {
            let mut j = i;
            while j < len && (data[j] == b' ' || (data[j] == b'\t' && self.delimiter != b'\t')) {
                j += 1;
            }
            let after: usize;
            if j < len && data[j] == b'"' {
                let open = j + 1;
                let mut k = open;
                let mut escaped = false;
                let close = loop {
                    match memchr(b'"', &data[k..]) {
                        Some(offset) if data.get(k + offset + 1) == Some(&b'"') => {
                            escaped = true;
                            k += offset + 2;
                        }
                        Some(offset) => break Some(k + offset),
                        None => break None,
                    }
                };
                let Some(close) = close else {
                    self.line = self.line.saturating_add(count_lines(&data[open..]));
                    self.push(record, open, len, escaped);
                    record
                        .flaw
                        .get_or_insert((record.spans.len() - 1, Flaw::Unclosed));
                    i = len;
                    break;
                };
                self.line = self.line.saturating_add(count_lines(&data[open..close]));
                self.push(record, open, close, escaped);
                let mut m = close + 1;
                while m < len && self.blank(data[m]) {
                    m += 1;
                }
                if m < len && data[m] != self.delimiter && data[m] != b'\n' {
                    record
                        .flaw
                        .get_or_insert((record.spans.len() - 1, Flaw::TextAfterQuote));
                    m = self.unquoted_end(m);
                }
                after = m;
            } else {
                let end = self.unquoted_end(i);
                self.push(record, i, end, false);
                after = end;
            }
            if after >= len {
                i = len;
                break;
            }
            if data[after] == self.delimiter {
                i = after + 1;
                if i >= len {
                    // A trailing delimiter at the very end: one more, empty cell.
                    self.push(record, len, len, false);
                    break;
                }
                continue;
            }
            // A newline ends the record.
            i = after + 1;
            self.line = self.line.saturating_add(1);
            break;
        }
        record.end = i;
        self.pos = i;
        true
    }

    /// Where an unquoted cell starting at `from` ends: at the delimiter, the
    /// newline or the end of the data.
    fn unquoted_end(&self, from: usize) -> usize {
        let data = self.data;
        if self.encoding == Encoding::Gb18030 && self.delimiter >= 0x40 {
            // The second byte of a two-byte GB18030 character may equal the
            // delimiter (`|` is 0x7C): skip whole characters.
            let mut i = from;
            while i < data.len() {
                let b = data[i];
                if b == self.delimiter || b == b'\n' {
                    return i;
                }
                if (0x81..=0xFE).contains(&b) && data.get(i + 1).is_some_and(|t| is_trail(*t)) {
                    i += 2;
                } else {
                    i += 1;
                }
            }
            return data.len();
        }
        memchr2(self.delimiter, b'\n', &data[from..]).map_or(data.len(), |at| from + at)
    }

    fn push(&self, record: &mut RowBuf, start: usize, end: usize, escaped: bool) {
        record.spans.push(Span {
            start: start as u32,
            end: end as u32,
            escaped,
        });
    }

    /// Decodes and trims the record's cells.
    pub fn cells<'r>(&'r self, record: &'r mut RowBuf) -> Result<Cells<'r>, Undecodable> {
        let raw = &self.data[record.start..record.end];
        let base = record.start as u32;
        record.texts.clear();
        record.scratch.clear();
        match self.encoding {
            Encoding::Utf8 => {
                let Ok(text) = std::str::from_utf8(raw) else {
                    let bad = record
                        .spans
                        .iter()
                        .position(|s| {
                            std::str::from_utf8(&self.data[s.start as usize..s.end as usize])
                                .is_err()
                        })
                        .unwrap_or(0);
                    return Err(Undecodable(bad));
                };
                for span in &record.spans {
                    let (s, e) = ((span.start - base) as usize, (span.end - base) as usize);
                    let Some(cell) = text.get(s..e) else {
                        return Err(Undecodable(record.texts.len()));
                    };
                    if span.escaped {
                        let at = record.scratch.len();
                        unescape_into(cell, &mut record.scratch);
                        let (ts, te) = trimmed(&record.scratch[at..]);
                        record
                            .texts
                            .push(Text::Scratch((at + ts) as u32, (at + te) as u32));
                    } else {
                        let (ts, te) = trimmed(cell);
                        record
                            .texts
                            .push(Text::Record((s + ts) as u32, (s + te) as u32));
                    }
                }
                Ok(Cells {
                    text,
                    scratch: &record.scratch,
                    texts: &record.texts,
                })
            }
            Encoding::Gb18030 => {
                for (index, span) in record.spans.iter().enumerate() {
                    let mut cell = &self.data[span.start as usize..span.end as usize];
                    if span.escaped {
                        record.bytes.clear();
                        record.bytes.extend_from_slice(cell);
                        unescape_bytes(&mut record.bytes);
                        cell = &record.bytes;
                    }
                    let at = record.scratch.len();
                    if cell.is_ascii() {
                        // ASCII is the same in GB18030.
                        record
                            .scratch
                            .push_str(std::str::from_utf8(cell).map_err(|_| Undecodable(index))?);
                    } else {
                        decode_gb18030(cell, &mut record.scratch).ok_or(Undecodable(index))?;
                    }
                    let (ts, te) = trimmed(&record.scratch[at..]);
                    record
                        .texts
                        .push(Text::Scratch((at + ts) as u32, (at + te) as u32));
                }
                Ok(Cells {
                    text: "",
                    scratch: &record.scratch,
                    texts: &record.texts,
                })
            }
        }
    }
}

/// Whether a byte may be the second byte of a two-byte GB18030 character.
fn is_trail(b: u8) -> bool {
    matches!(b, 0x40..=0x7E | 0x80..=0xFE)
}

fn count_lines(bytes: &[u8]) -> u32 {
    memchr::memchr_iter(b'\n', bytes).count() as u32
}

/// Offsets of the text without surrounding white space.
fn trimmed(s: &str) -> (usize, usize) {
    let start = s.len() - s.trim_start().len();
    let end = s.trim_end().len().max(start);
    (start, end)
}

fn unescape_into(cell: &str, out: &mut String) {
    let mut rest = cell;
    while let Some(at) = rest.find("\"\"") {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
}

fn unescape_bytes(bytes: &mut Vec<u8>) {
    let mut write = 0;
    let mut read = 0;
    while read < bytes.len() {
        bytes[write] = bytes[read];
        if bytes[read] == b'"' && bytes.get(read + 1) == Some(&b'"') {
            read += 1;
        }
        read += 1;
        write += 1;
    }
    bytes.truncate(write);
}

/// Appends the GB18030 bytes decoded; `None` if they are malformed.
fn decode_gb18030(bytes: &[u8], out: &mut String) -> Option<()> {
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let needed = decoder.max_utf8_buffer_length_without_replacement(bytes.len())?;
    out.reserve(needed);
    let (result, _read) = decoder.decode_to_string_without_replacement(bytes, out, true);
    match result {
        encoding_rs::DecoderResult::InputEmpty => Some(()),
        _ => None,
    }
}
