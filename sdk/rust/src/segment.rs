//! The `segment` world: decide which subjects of a batch belong to a segment.

use crate::{Batch, Error, FieldValue, Manifest, Needs, Params, ProfileBatch};

pub use crate::bindings::segments::Memberships;

/// A segmentation rule.
pub trait Segment {
    /// Name, version, parameters and the fields the rule reads.
    fn describe() -> Manifest;

    /// Checks parameters once, before the host saves them.
    fn validate(_params: &Params) -> Result<(), Error> {
        Ok(())
    }

    /// The columns the rule reads with these parameters, in the order the
    /// batch carries them; the host sends these instead of the manifest's
    /// fields and aggregates (`tessera:plan/segment-plan`). Override it when
    /// what the rule reads depends on its parameters (a rule given as text,
    /// a window given as a number); the default is the manifest's fields and
    /// aggregates.
    ///
    /// The host has validated `params` first. The answer must depend on the
    /// parameters only (no clock, no state). In [`Segment::evaluate`],
    /// [`Batch::field`] and [`Batch::aggregate`] find columns by the names
    /// planned here.
    fn plan(_params: &Params) -> Result<Needs, Error> {
        Ok(Needs::declared(&Self::describe()))
    }

    /// One membership per row of the batch, in row order.
    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error>;
}

impl Memberships {
    /// Membership computed row by row, with no scores or tiers.
    pub fn from_fn(rows: usize, mut member: impl FnMut(usize) -> bool) -> Self {
        Memberships {
            member: (0..rows).map(|row| u8::from(member(row))).collect(),
            scores: Vec::new(),
            tiers: None,
        }
    }

    /// Membership from one boolean per row.
    pub fn from_bools(member: impl IntoIterator<Item = bool>) -> Self {
        Memberships {
            member: member.into_iter().map(u8::from).collect(),
            scores: Vec::new(),
            tiers: None,
        }
    }

    /// Attaches one score per row.
    pub fn with_scores(mut self, scores: Vec<f64>) -> Self {
        self.scores = scores;
        self
    }

    /// Whether row `row` is a member.
    pub fn is_member(&self, row: usize) -> bool {
        self.member.get(row).is_some_and(|m| *m != 0)
    }
}

#[doc(hidden)]
pub mod __adapter {
    use super::*;

    pub fn validate<T: Segment>(params: Vec<FieldValue>) -> Result<(), Error> {
        T::validate(&Params::new(params))
    }

    pub fn plan<T: Segment>(params: Vec<FieldValue>) -> Result<Needs, Error> {
        T::plan(&Params::new(params))
    }

    /// The batch's columns are the ones planned for these parameters: the
    /// plan is a function of them, so planning again names the columns the
    /// host sent.
    pub fn evaluate<T: Segment>(
        params: Vec<FieldValue>,
        batch: ProfileBatch,
    ) -> Result<Memberships, Error> {
        let params = Params::new(params);
        let batch = Batch::planned(batch, &T::plan(&params)?);
        let out = T::evaluate(&params, &batch)?;
        if out.member.len() != batch.rows() {
            return Err(Error::internal(format!(
                "evaluate returned {} memberships for {} rows",
                out.member.len(),
                batch.rows()
            )));
        }
        Ok(out)
    }
}

/// Exports a [`Segment`] implementation as the component's `segment` world,
/// with the `tessera:plan/segment-plan` interface ([`Segment::plan`]), and
/// embeds the contract version.
#[macro_export]
macro_rules! export_segment {
    ($ty:ty) => {
        const _: () = {
            $crate::__embed_wit_version!();

            struct __TesseraSegment;

            impl $crate::bindings::segment::Guest for __TesseraSegment {
                fn describe() -> $crate::Manifest {
                    <$ty as $crate::Segment>::describe()
                }
                fn validate(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                ) -> ::std::result::Result<(), $crate::Error> {
                    $crate::segment::__adapter::validate::<$ty>(params)
                }
                fn evaluate(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                    batch: $crate::ProfileBatch,
                ) -> ::std::result::Result<$crate::segment::Memberships, $crate::Error> {
                    $crate::segment::__adapter::evaluate::<$ty>(params, batch)
                }
            }

            impl $crate::bindings::plan::Guest for __TesseraSegment {
                fn plan(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                ) -> ::std::result::Result<$crate::Needs, $crate::Error> {
                    $crate::segment::__adapter::plan::<$ty>(params)
                }
            }

            $crate::bindings::segment::export_segment_world!(__TesseraSegment);
        };
    };
}
