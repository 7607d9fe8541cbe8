//! Columnar profile batches: the host sends one typed column per declared
//! (or, for a segment, planned) field and aggregate, and for a planned
//! segment the columns of its event queries and other segments; these
//! helpers read them by name and row.

use crate::{Column, ColumnData, Error, Manifest, Needs, ProfileBatch, Timestamp};

/// A batch of profile views with its columns addressable by the names the
/// plugin declared in its manifest, or planned for the call's parameters.
#[derive(Debug)]
pub struct Batch {
    inner: ProfileBatch,
    field_names: Vec<String>,
    aggregate_names: Vec<String>,
    /// Planned queries: name and sums, in order.
    queries: Vec<(String, Vec<String>)>,
    segment_names: Vec<String>,
}

impl Batch {
    /// Wraps a batch; `manifest` gives the names of its columns.
    pub fn new(inner: ProfileBatch, manifest: &Manifest) -> Self {
        Batch {
            inner,
            field_names: manifest.fields.iter().map(|f| f.name.clone()).collect(),
            aggregate_names: manifest.aggregates.iter().map(|a| a.name.clone()).collect(),
            queries: Vec::new(),
            segment_names: Vec::new(),
        }
    }

    /// Wraps a batch whose columns were planned: `needs` gives their names.
    pub fn planned(inner: ProfileBatch, needs: &Needs) -> Self {
        Batch {
            inner,
            field_names: needs.fields.iter().map(|f| f.name.clone()).collect(),
            aggregate_names: needs.aggregates.iter().map(|a| a.name.clone()).collect(),
            queries: needs
                .queries
                .iter()
                .map(|q| (q.name.clone(), q.sums.clone()))
                .collect(),
            segment_names: needs.segments.clone(),
        }
    }

    /// Number of rows (subjects).
    pub fn rows(&self) -> usize {
        self.inner.rows as usize
    }

    /// "Now" for this batch, in milliseconds since the epoch.
    pub fn now(&self) -> Timestamp {
        self.inner.now
    }

    /// The pseudonymous key of each row: stable per subject for this plugin.
    pub fn keys(&self) -> &[u64] {
        &self.inner.keys
    }

    /// The column of a declared (or planned) field.
    pub fn field(&self, name: &str) -> Result<ColumnRef<'_>, Error> {
        let index = self
            .field_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| {
                Error::internal(format!(
                    "field `{name}` is not declared in the manifest or planned for these parameters"
                ))
            })?;
        self.column(&self.inner.fields, index, name)
    }

    /// The column of a declared (or planned) event aggregate.
    pub fn aggregate(&self, name: &str) -> Result<ColumnRef<'_>, Error> {
        let index = self
            .aggregate_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| {
                Error::internal(format!(
                    "aggregate `{name}` is not declared in the manifest or planned for these \
                     parameters"
                ))
            })?;
        self.column(&self.inner.aggregates, index, name)
    }

    /// The columns of a planned event query, by its name: they follow the
    /// aggregates, `count`, `first`, `last`, then one per sum.
    pub fn query(&self, name: &str) -> Result<QueryColumns<'_>, Error> {
        let mut index = self.aggregate_names.len();
        let mut found = None;
        for (query, sums) in &self.queries {
            if query == name {
                found = Some(sums);
                break;
            }
            index += 3 + sums.len();
        }
        let sums = found.ok_or_else(|| {
            Error::internal(format!(
                "query `{name}` is not planned for these parameters"
            ))
        })?;
        let columns = &self.inner.aggregates;
        let at = |offset: usize, what: &str| {
            self.column(columns, index + offset, &format!("{name} ({what})"))
        };
        Ok(QueryColumns {
            count: at(0, "count")?,
            first: at(1, "first")?,
            last: at(2, "last")?,
            sums: sums
                .iter()
                .enumerate()
                .map(|(i, property)| Ok((property.as_str(), at(3 + i, property)?)))
                .collect::<Result<_, Error>>()?,
        })
    }

    /// The membership column (boolean, 1: member now) of another segment
    /// the plan reads, by the segment's name: they follow the fields.
    pub fn segment(&self, name: &str) -> Result<ColumnRef<'_>, Error> {
        let index = self
            .segment_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| {
                Error::internal(format!(
                    "segment `{name}` is not planned for these parameters"
                ))
            })?;
        self.column(
            &self.inner.fields,
            self.field_names.len() + index,
            &format!("segment {name}"),
        )
    }

    fn column<'a>(
        &'a self,
        columns: &'a [Column],
        index: usize,
        name: &str,
    ) -> Result<ColumnRef<'a>, Error> {
        let column = columns
            .get(index)
            .ok_or_else(|| Error::input(format!("the host sent no column for `{name}`")))?;
        ColumnRef::new(column, self.rows(), name)
    }

    /// The raw batch, for plugins that read columns by position.
    pub fn raw(&self) -> &ProfileBatch {
        &self.inner
    }
}

/// The columns of one planned event query ([`Batch::query`]).
#[derive(Debug, Clone)]
pub struct QueryColumns<'a> {
    count: ColumnRef<'a>,
    first: ColumnRef<'a>,
    last: ColumnRef<'a>,
    sums: Vec<(&'a str, ColumnRef<'a>)>,
}

impl<'a> QueryColumns<'a> {
    /// How many matching events the row's person has (0 also when the
    /// query was not granted, which leaves the column missing).
    pub fn count(&self, row: usize) -> u64 {
        self.count
            .integer(row)
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    }

    /// When the first matching event happened (`None`: no such event).
    pub fn first(&self, row: usize) -> Option<i64> {
        self.first.integer(row)
    }

    /// When the last matching event happened (`None`: no such event).
    pub fn last(&self, row: usize) -> Option<i64> {
        self.last.integer(row)
    }

    /// The sum of `property` over the matching events (0 without any, and
    /// for a property the query does not sum).
    pub fn sum(&self, property: &str, row: usize) -> f64 {
        self.sums
            .iter()
            .find(|(p, _)| *p == property)
            .and_then(|(_, column)| column.number(row))
            .unwrap_or(0.0)
    }

    /// Whether the row has the query's facts at all: `false` when the query
    /// was not granted (every row missing).
    pub fn is_present(&self, row: usize) -> bool {
        self.count.is_present(row)
    }

    /// The count column, for plugins that read the columns whole.
    pub fn count_column(&self) -> ColumnRef<'a> {
        self.count
    }

    /// The column of first times.
    pub fn first_column(&self) -> ColumnRef<'a> {
        self.first
    }

    /// The column of last times.
    pub fn last_column(&self) -> ColumnRef<'a> {
        self.last
    }

    /// The column of the sums of `property`, if the query sums it.
    pub fn sum_column(&self, property: &str) -> Option<ColumnRef<'a>> {
        self.sums
            .iter()
            .find(|(p, _)| *p == property)
            .map(|(_, column)| *column)
    }
}

/// One column of a batch, checked to have one entry per row.
#[derive(Debug, Clone, Copy)]
pub struct ColumnRef<'a> {
    column: &'a Column,
}

impl<'a> ColumnRef<'a> {
    /// Checks the column's shape against the row count.
    pub fn new(column: &'a Column, rows: usize, name: &str) -> Result<Self, Error> {
        let len = match &column.data {
            ColumnData::Boolean(v) => v.len(),
            ColumnData::Integer(v) => v.len(),
            ColumnData::Number(v) => v.len(),
            ColumnData::Timestamp(v) => v.len(),
            ColumnData::Text(t) => t.codes.len(),
            ColumnData::TextList(t) => t.offsets.len().saturating_sub(1),
        };
        if len != rows || !(column.present.is_empty() || column.present.len() == rows) {
            return Err(Error::input(format!(
                "column `{name}` has {len} values for {rows} rows"
            )));
        }
        Ok(ColumnRef { column })
    }

    /// Whether the row has a value.
    pub fn is_present(&self, row: usize) -> bool {
        self.column.present.is_empty() || self.column.present[row] != 0
    }

    /// The row's value as a number (integers and timestamps are widened).
    pub fn number(&self, row: usize) -> Option<f64> {
        if !self.is_present(row) {
            return None;
        }
        match &self.column.data {
            ColumnData::Number(v) => Some(v[row]),
            ColumnData::Integer(v) | ColumnData::Timestamp(v) => Some(v[row] as f64),
            ColumnData::Boolean(v) => Some(if v[row] != 0 { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// The row's value as an integer or timestamp.
    pub fn integer(&self, row: usize) -> Option<i64> {
        if !self.is_present(row) {
            return None;
        }
        match &self.column.data {
            ColumnData::Integer(v) | ColumnData::Timestamp(v) => Some(v[row]),
            _ => None,
        }
    }

    /// The row's value as a boolean.
    pub fn boolean(&self, row: usize) -> Option<bool> {
        if !self.is_present(row) {
            return None;
        }
        match &self.column.data {
            ColumnData::Boolean(v) => Some(v[row] != 0),
            _ => None,
        }
    }

    /// The row's value as text.
    pub fn text(&self, row: usize) -> Option<&'a str> {
        if !self.is_present(row) {
            return None;
        }
        match &self.column.data {
            ColumnData::Text(t) => t.dictionary.get(t.codes[row] as usize).map(String::as_str),
            _ => None,
        }
    }

    /// The row's list of texts.
    pub fn text_list(&self, row: usize) -> Option<impl Iterator<Item = &'a str> + 'a> {
        if !self.is_present(row) {
            return None;
        }
        match &self.column.data {
            ColumnData::TextList(t) => {
                let start = t.offsets[row] as usize;
                let end = t.offsets[row + 1] as usize;
                let codes = t.codes.get(start..end)?;
                Some(
                    codes
                        .iter()
                        .filter_map(move |c| t.dictionary.get(*c as usize).map(String::as_str)),
                )
            }
            _ => None,
        }
    }

    /// The whole column as numbers, when it is a number column with no gaps:
    /// the fast path for plugins that scan a column.
    pub fn numbers(&self) -> Option<&'a [f64]> {
        match &self.column.data {
            ColumnData::Number(v) if self.column.present.is_empty() => Some(v),
            _ => None,
        }
    }

    /// The raw column.
    pub fn raw(&self) -> &'a Column {
        self.column
    }
}
