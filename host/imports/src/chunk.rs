//! Cutting an input into chunks at record boundaries, and a chunk back into
//! its records by row number. Never reads more than one chunk (plus the one
//! record that may straddle its end) into memory.

use std::io::Read;

use crate::ImportError;

/// How an input is cut into the chunks a connector parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Chunking {
    /// Delimited text for the `csv` connector: a chunk ends after a `\n`
    /// outside quotes; later chunks get the `header` and `first_row`
    /// parameters (`docs/connectors.md`, Chunks).
    Csv,
    /// One record per line (NDJSON): a chunk ends after a `\n`; `first_row`
    /// is passed if the connector declares it.
    Lines,
    /// The input in one call (a JSON document), up to a cap.
    Whole,
    /// Not an input: a source pulled page by page by the connector
    /// ([`Importer::pull`](crate::Importer::pull)); `run` refuses it.
    Pages,
}

/// Feed a CSV file's bytes in order: `push` is true when a chunk for the
/// `csv` connector may end right after that byte (the connector's contract).
#[derive(Debug, Clone)]
pub(crate) struct Splitter {
    delimiter: u8,
    gb18030: bool,
    state: State,
    trail: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    CellStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl Splitter {
    pub(crate) fn new(delimiter: u8, gb18030: bool) -> Self {
        Splitter {
            delimiter,
            gb18030,
            state: State::CellStart,
            trail: false,
        }
    }

    pub(crate) fn push(&mut self, b: u8) -> bool {
        // The second byte of a two-byte GB18030 character is never
        // structural, even when it equals `|`.
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
            (QuoteInQuoted, b'"') => Quoted, // a doubled quote
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

    /// Whether the scanner is inside a quoted cell (an unclosed quote so far).
    pub(crate) fn in_quotes(&self) -> bool {
        self.state == State::Quoted
    }
}

/// Where records end, for one chunking.
#[derive(Debug, Clone)]
pub(crate) enum Boundaries {
    Csv(Splitter),
    Lines,
}

impl Boundaries {
    fn push(&mut self, b: u8) -> bool {
        match self {
            Boundaries::Csv(splitter) => splitter.push(b),
            Boundaries::Lines => b == b'\n',
        }
    }
}

/// What a CSV chunking needs to know of the connector's parameters.
#[derive(Debug, Clone)]
pub(crate) struct CsvShape {
    pub delimiter: u8,
    pub gb18030: bool,
    pub has_header: bool,
}

/// One chunk of the input.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub index: u32,
    pub bytes: Vec<u8>,
    /// File line number of the chunk's first line.
    pub first_row: u32,
    /// Non-blank records in the chunk, the header not counted.
    pub rows: u64,
}

/// Whether a byte is part of a blank record's content (blank lines and lines
/// of empty cells are skipped by connectors, and are not rows).
fn blank_byte(b: u8, delimiter: Option<u8>) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n') || Some(b) == delimiter
}

/// Reads an input chunk by chunk.
pub(crate) struct Chunker<R> {
    input: R,
    boundaries: Option<Boundaries>,
    delimiter: Option<u8>,
    has_header: bool,
    target: usize,
    max_chunk: usize,
    buf: Vec<u8>,
    /// What each read goes into before it is appended to `buf`.
    block: Vec<u8>,
    eof: bool,
    /// `\n` bytes before the start of `buf`.
    newlines: u64,
    next_index: u32,
    /// The header record's bytes, once read (CSV with a header).
    header: Option<Vec<u8>>,
    pub bytes_read: u64,
}

impl<R: Read> Chunker<R> {
    /// `boundaries` None: the whole input is one chunk of at most `max_chunk`.
    pub(crate) fn new(
        input: R,
        chunking: Chunking,
        csv: Option<&CsvShape>,
        target: usize,
        max_chunk: usize,
    ) -> Self {
        let boundaries = match chunking {
            Chunking::Csv => {
                let shape = csv.expect("a CSV chunking has its shape");
                Some(Boundaries::Csv(Splitter::new(
                    shape.delimiter,
                    shape.gb18030,
                )))
            }
            Chunking::Lines => Some(Boundaries::Lines),
            Chunking::Whole | Chunking::Pages => None,
        };
        Chunker {
            input,
            boundaries,
            delimiter: csv.map(|s| s.delimiter),
            has_header: csv.is_some_and(|s| s.has_header),
            target: target.max(1),
            max_chunk: max_chunk.max(target),
            buf: Vec::new(),
            block: Vec::new(),
            eof: false,
            newlines: 0,
            next_index: 0,
            header: None,
            bytes_read: 0,
        }
    }

    /// The header record, as read from the file (CSV with a header).
    pub(crate) fn header(&self) -> Option<&[u8]> {
        self.header.as_deref()
    }

    /// Reads into the buffer until it holds `want` bytes or the input
    /// ends, through a scratch block zeroed once: a stream of tiny pieces
    /// costs no more than their bytes.
    fn fill(&mut self, want: usize) -> Result<(), ImportError> {
        if self.block.is_empty() {
            self.block = vec![0u8; 64 << 10];
        }
        while !self.eof && self.buf.len() < want {
            let n = match self.input.read(&mut self.block) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ImportError::Input(e.to_string())),
            };
            if n == 0 {
                self.eof = true;
            }
            self.buf.extend_from_slice(&self.block[..n]);
            self.bytes_read += n as u64;
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the input.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Chunk>, ImportError> {
        let Some(mut boundaries) = self.boundaries.clone() else {
            return self.whole();
        };
        let mut pos = 0;
        let mut rows = 0u64;
        let mut newlines = 0u64;
        let mut nonblank = false;
        let mut cut = None;
        let first = self.next_index == 0;
        let mut header_pending = first && self.has_header;
        let mut record_start = 0;
        loop {
            if pos == self.buf.len() {
                if self.eof {
                    break;
                }
                // One read: what the input has now (a stream is parsed as
                // it arrives, not after 64 KiB more came).
                self.fill(self.buf.len() + 1)?;
                if pos == self.buf.len() {
                    break;
                }
            }
            let b = self.buf[pos];
            pos += 1;
            if b == b'\n' {
                newlines += 1;
            }
            let bom = first && pos <= 4 && is_bom_byte(b);
            if !nonblank && !bom && !blank_byte(b, self.delimiter) {
                nonblank = true;
            }
            if boundaries.push(b) {
                if nonblank {
                    if header_pending {
                        header_pending = false;
                        self.header = Some(self.buf[record_start..pos].to_vec());
                    } else {
                        rows += 1;
                    }
                }
                nonblank = false;
                record_start = pos;
                if pos >= self.target && !header_pending {
                    cut = Some(pos);
                    break;
                }
            }
            if pos > self.max_chunk {
                let row = 1 + self.newlines + newlines;
                return Err(ImportError::RecordTooLong {
                    row,
                    limit: self.max_chunk,
                    unclosed_quote: matches!(&boundaries, Boundaries::Csv(s) if s.in_quotes()),
                });
            }
        }
        let end = match cut {
            Some(end) => end,
            None => {
                // The end of the input: the last record may lack its newline.
                if nonblank {
                    if header_pending {
                        self.header = Some(self.buf[record_start..pos].to_vec());
                    } else {
                        rows += 1;
                    }
                }
                pos
            }
        };
        if end == 0 {
            return Ok(None);
        }
        if let Some(b) = self.boundaries.as_mut() {
            *b = boundaries;
        }
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        let chunk = Chunk {
            index: self.next_index,
            bytes,
            first_row: u32::try_from(1 + self.newlines).unwrap_or(u32::MAX),
            rows,
        };
        self.newlines += newlines;
        self.next_index += 1;
        Ok(Some(chunk))
    }

    fn whole(&mut self) -> Result<Option<Chunk>, ImportError> {
        if self.next_index > 0 {
            return Ok(None);
        }
        self.fill(self.max_chunk + 1)?;
        if self.buf.len() > self.max_chunk {
            return Err(ImportError::TooLarge {
                limit: self.max_chunk,
            });
        }
        self.next_index = 1;
        if self.buf.is_empty() {
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.buf);
        let rows = bytes
            .split(|b| *b == b'\n')
            .filter(|line| line.iter().any(|b| !blank_byte(*b, None)))
            .count() as u64;
        Ok(Some(Chunk {
            index: 0,
            bytes,
            first_row: 1,
            rows,
        }))
    }
}

/// UTF-8's and GB18030's byte order marks start a file; they are not content.
fn is_bom_byte(b: u8) -> bool {
    matches!(b, 0xEF | 0xBB | 0xBF | 0x84 | 0x31 | 0x95 | 0x33)
}

/// One record of a chunk: its file line number and its bytes' range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordSpan {
    pub row: u32,
    pub start: usize,
    pub end: usize,
    pub blank: bool,
}

/// The records of a chunk, for cutting rejected rows out of it.
pub(crate) fn records(
    chunk: &[u8],
    first_row: u32,
    boundaries: Boundaries,
    delimiter: Option<u8>,
) -> Vec<RecordSpan> {
    let mut boundaries = boundaries;
    let mut out = Vec::new();
    let mut start = 0;
    let mut row = first_row;
    let mut lines = 0u32;
    for (i, b) in chunk.iter().enumerate() {
        if *b == b'\n' {
            lines += 1;
        }
        if boundaries.push(*b) {
            out.push(span(chunk, row, start, i + 1, delimiter));
            row = first_row.saturating_add(lines);
            start = i + 1;
        }
    }
    if start < chunk.len() {
        out.push(span(chunk, row, start, chunk.len(), delimiter));
    }
    out
}

fn span(chunk: &[u8], row: u32, start: usize, end: usize, delimiter: Option<u8>) -> RecordSpan {
    RecordSpan {
        row,
        start,
        end,
        blank: chunk[start..end].iter().all(|b| blank_byte(*b, delimiter)),
    }
}

/// Boundaries of a chunking, fresh (a chunk always starts outside quotes).
pub(crate) fn fresh_boundaries(chunking: Chunking, csv: Option<&CsvShape>) -> Option<Boundaries> {
    match chunking {
        Chunking::Csv => csv.map(|s| Boundaries::Csv(Splitter::new(s.delimiter, s.gb18030))),
        Chunking::Lines => Some(Boundaries::Lines),
        Chunking::Whole | Chunking::Pages => None,
    }
}

/// The header record as the `header` parameter wants it: decoded text,
/// without a byte order mark.
pub(crate) fn header_text(header: &[u8], gb18030: bool) -> Result<String, ImportError> {
    let text = if gb18030 {
        let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(header);
        if had_errors {
            return Err(ImportError::BadHeader("it is not valid GB18030".into()));
        }
        text.into_owned()
    } else {
        String::from_utf8(header.to_vec())
            .map_err(|_| ImportError::BadHeader("it is not valid UTF-8".into()))?
    };
    Ok(text.trim_start_matches('\u{feff}').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], chunking: Chunking, target: usize) -> Vec<Chunk> {
        let shape = CsvShape {
            delimiter: b',',
            gb18030: false,
            has_header: true,
        };
        let mut chunker = Chunker::new(data, chunking, Some(&shape), target, 1 << 20);
        let mut out = Vec::new();
        while let Some(chunk) = chunker.next_chunk().unwrap() {
            out.push(chunk);
        }
        out
    }

    #[test]
    fn chunks_end_after_newlines_outside_quotes_and_count_their_rows() {
        let data = b"a,b\n1,\"x\ny\"\n\n2,z\n3,w";
        let out = chunks(data, Chunking::Csv, 1);
        let cut: Vec<&[u8]> = out.iter().map(|c| c.bytes.as_slice()).collect();
        assert_eq!(
            cut,
            [&b"a,b\n"[..], b"1,\"x\ny\"\n", b"\n", b"2,z\n", b"3,w"]
        );
        let firsts: Vec<u32> = out.iter().map(|c| c.first_row).collect();
        assert_eq!(firsts, [1, 2, 4, 5, 6]);
        let rows: Vec<u64> = out.iter().map(|c| c.rows).collect();
        assert_eq!(rows, [0, 1, 0, 1, 1]);
    }

    #[test]
    fn a_record_is_cut_out_of_its_chunk_by_row() {
        let data = b"1,\"x\ny\"\n2,z\n3,w";
        let spans = records(
            data,
            7,
            Boundaries::Csv(Splitter::new(b',', false)),
            Some(b','),
        );
        let rows: Vec<(u32, &[u8])> = spans
            .iter()
            .map(|s| (s.row, &data[s.start..s.end]))
            .collect();
        assert_eq!(
            rows,
            [(7, &b"1,\"x\ny\"\n"[..]), (9, b"2,z\n"), (10, b"3,w")]
        );
    }

    #[test]
    fn an_unclosed_quote_longer_than_the_limit_fails_at_its_row() {
        let mut data = b"a,b\n1,2\n3,\"".to_vec();
        data.extend(std::iter::repeat_n(b'x', 5000));
        let shape = CsvShape {
            delimiter: b',',
            gb18030: false,
            has_header: true,
        };
        let mut chunker = Chunker::new(&data[..], Chunking::Csv, Some(&shape), 16, 1000);
        let error = loop {
            match chunker.next_chunk() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(
                error,
                ImportError::RecordTooLong {
                    row: 3,
                    unclosed_quote: true,
                    ..
                }
            ),
            "{error}"
        );
    }
}
