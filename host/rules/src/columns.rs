//! A batch's columns, borrowed as slices in the layout the host sends a
//! segment plugin, read as the rows of a [`Program`]. Nothing here copies a
//! column or allocates per row.

use crate::compile::{ListRef, Program, Row, ValueRef};

/// One column: one entry per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column<'a> {
    pub data: ColumnData<'a>,
    /// Empty when every row has a value, else one byte per row (0: the row
    /// has none, whatever its data entry holds).
    pub present: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnData<'a> {
    /// 0 is false, anything else true.
    Boolean(&'a [u8]),
    Integer(&'a [i64]),
    Number(&'a [f64]),
    /// Milliseconds since the Unix epoch.
    Timestamp(&'a [i64]),
    /// Each row an index into `dictionary`.
    Text {
        dictionary: &'a [String],
        codes: &'a [u32],
    },
    /// Row `i`'s list is `codes[offsets[i]..offsets[i + 1]]`, indices into
    /// `dictionary`.
    TextList {
        dictionary: &'a [String],
        offsets: &'a [u32],
        codes: &'a [u32],
    },
}

/// The columns of one event query: how many events matched, when the
/// first and the last happened, and one column per sum (in the order of
/// [`crate::Query::sums`]).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryColumns<'a> {
    pub count: Column<'a>,
    pub first: Column<'a>,
    pub last: Column<'a>,
    pub sums: Vec<Column<'a>>,
}

/// A batch's columns in the slot order of a [`Program`].
#[derive(Debug, Clone, PartialEq)]
pub struct Columns<'a> {
    rows: usize,
    traits: Vec<Column<'a>>,
    queries: Vec<QueryColumns<'a>>,
    segments: Vec<Column<'a>>,
}

/// Why columns do not fit a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnsError {
    #[error("{what}: {found} columns for a rule that reads {expected}")]
    Count {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{what} {slot}: {found} values for {rows} rows")]
    Length {
        what: &'static str,
        slot: usize,
        found: usize,
        rows: usize,
    },
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self.data {
            ColumnData::Boolean(v) => v.len(),
            ColumnData::Integer(v) | ColumnData::Timestamp(v) => v.len(),
            ColumnData::Number(v) => v.len(),
            ColumnData::Text { codes, .. } => codes.len(),
            ColumnData::TextList { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    fn fits(&self, rows: usize) -> Result<(), usize> {
        let len = self.len();
        if len == rows && (self.present.is_empty() || self.present.len() == rows) {
            Ok(())
        } else if len == rows {
            Err(self.present.len())
        } else {
            Err(len)
        }
    }

    #[inline(always)]
    fn is_present(&self, row: usize) -> bool {
        self.present.is_empty() || self.present[row] != 0
    }

    /// An integer or timestamp.
    #[inline(always)]
    fn integer(&self, row: usize) -> Option<i64> {
        match self.data {
            ColumnData::Integer(v) | ColumnData::Timestamp(v) if self.is_present(row) => {
                Some(v[row])
            }
            _ => None,
        }
    }

    /// A number; integers and timestamps widened, booleans as 1 and 0.
    #[inline(always)]
    fn number(&self, row: usize) -> Option<f64> {
        if !self.is_present(row) {
            return None;
        }
        match self.data {
            ColumnData::Number(v) => Some(v[row]),
            ColumnData::Integer(v) | ColumnData::Timestamp(v) => Some(v[row] as f64),
            ColumnData::Boolean(v) => Some(if v[row] != 0 { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    #[inline]
    fn value(&self, row: usize) -> Option<ValueRef<'_>> {
        if !self.is_present(row) {
            return None;
        }
        Some(match self.data {
            ColumnData::Boolean(v) => ValueRef::Boolean(v[row] != 0),
            // Integers compare as numbers in rules.
            ColumnData::Integer(v) => ValueRef::Number(v[row] as f64),
            ColumnData::Number(v) => ValueRef::Number(v[row]),
            ColumnData::Timestamp(v) => ValueRef::Date(v[row]),
            ColumnData::Text { dictionary, codes } => {
                ValueRef::String(dictionary.get(codes[row] as usize)?)
            }
            ColumnData::TextList {
                dictionary,
                offsets,
                codes,
            } => ValueRef::List(ListRef::Coded {
                dictionary,
                codes: codes.get(offsets[row] as usize..offsets[row + 1] as usize)?,
            }),
        })
    }
}

impl<'a> Columns<'a> {
    /// `rows` rows of the columns, one per slot of `program`; every column
    /// must have one entry per row.
    pub fn new(
        program: &Program,
        rows: usize,
        traits: Vec<Column<'a>>,
        queries: Vec<QueryColumns<'a>>,
        segments: Vec<Column<'a>>,
    ) -> Result<Self, ColumnsError> {
        let count = |what, found, expected| {
            if found == expected {
                Ok(())
            } else {
                Err(ColumnsError::Count {
                    what,
                    found,
                    expected,
                })
            }
        };
        count("traits", traits.len(), program.traits().len())?;
        count("queries", queries.len(), program.queries().len())?;
        count("segments", segments.len(), program.segments().len())?;
        for (query, expected) in queries.iter().zip(program.queries()) {
            count("sums", query.sums.len(), expected.sums.len())?;
        }
        let fits = |what, slot, column: &Column<'_>| {
            column.fits(rows).map_err(|found| ColumnsError::Length {
                what,
                slot,
                found,
                rows,
            })
        };
        for (slot, column) in traits.iter().enumerate() {
            fits("trait", slot, column)?;
        }
        for (slot, query) in queries.iter().enumerate() {
            for column in [&query.count, &query.first, &query.last]
                .into_iter()
                .chain(&query.sums)
            {
                fits("query", slot, column)?;
            }
        }
        for (slot, column) in segments.iter().enumerate() {
            fits("segment", slot, column)?;
        }
        Ok(Columns {
            rows,
            traits,
            queries,
            segments,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `row` (below [`Columns::rows`]).
    #[inline(always)]
    pub fn row(&self, row: usize) -> ColumnRow<'_> {
        assert!(row < self.rows, "row {row} of {}", self.rows);
        ColumnRow { columns: self, row }
    }
}

/// One row of [`Columns`]. A query whose count is 0 (or missing) has no
/// facts: its sums are 0 and its first and last times not set, whatever
/// those columns hold.
#[derive(Debug, Clone, Copy)]
pub struct ColumnRow<'a> {
    columns: &'a Columns<'a>,
    row: usize,
}

impl Row for ColumnRow<'_> {
    #[inline(always)]
    fn trait_value(&self, slot: usize) -> Option<ValueRef<'_>> {
        self.columns.traits[slot].value(self.row)
    }

    #[inline(always)]
    fn count(&self, query: usize) -> u64 {
        self.columns.queries[query]
            .count
            .integer(self.row)
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    }

    #[inline(always)]
    fn sum(&self, query: usize, sum: usize) -> f64 {
        if self.count(query) == 0 {
            return 0.0;
        }
        self.columns.queries[query].sums[sum]
            .number(self.row)
            .unwrap_or(0.0)
    }

    #[inline(always)]
    fn first_ms(&self, query: usize) -> Option<i64> {
        if self.count(query) == 0 {
            return None;
        }
        self.columns.queries[query].first.integer(self.row)
    }

    #[inline(always)]
    fn last_ms(&self, query: usize) -> Option<i64> {
        if self.count(query) == 0 {
            return None;
        }
        self.columns.queries[query].last.integer(self.row)
    }

    #[inline(always)]
    fn in_segment(&self, segment: usize) -> bool {
        let column = &self.columns.segments[segment];
        matches!(column.data, ColumnData::Boolean(v) if column.is_present(self.row) && v[self.row] != 0)
    }
}
