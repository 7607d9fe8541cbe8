//! The Tessera plugin SDK for Rust: implement one trait per world
//! ([`Connector`], [`Segment`], [`Strategy`]) and export it with one macro.
//!
//! The SDK's version is the WIT contract version ([`WIT_VERSION`]); the export
//! macros embed it in the component so the host picks matching bindings
//! before it instantiates anything.
//!
//! ```ignore
//! use tessera_sdk::prelude::*;
//!
//! struct BigSpenders;
//!
//! impl Segment for BigSpenders {
//!     fn describe() -> Manifest {
//!         Manifest::new("big-spenders", "1.0.0", "Subjects who spent more than a threshold")
//!             .field("total_spend", ValueKind::Number, FieldClass::Standard)
//!             .param(ParamSpec::number("threshold", "Minimum spend").required())
//!     }
//!
//!     fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
//!         let threshold = params.number("threshold")?;
//!         let spend = batch.field("total_spend")?;
//!         Ok(Memberships::from_fn(batch.rows(), |row| {
//!             spend.number(row).is_some_and(|v| v >= threshold)
//!         }))
//!     }
//! }
//!
//! tessera_sdk::export_segment!(BigSpenders);
//! ```

mod batch;
mod manifest;
mod params;

#[doc(hidden)]
pub mod bindings;

pub mod connector;
pub mod segment;
pub mod strategy;

pub use batch::{Batch, ColumnRef, QueryColumns};
pub use params::Params;

/// The columns a segment or a strategy reads for one set of parameters
/// ([`Segment::plan`], `tessera:plan/segment-plan@0.1.0`;
/// [`Strategy::plan`], `tessera:strategy/campaign-plan@0.1.0`).
pub use bindings::plan::Needs;

/// Facts about a person's events of one type that a segment plans
/// ([`Needs::query`]), read back with [`Batch::query`].
pub use bindings::plan::EventQuery;

pub use bindings::types::{
    AggregateFn, AggregateSpec, Column, ColumnData, Error, FieldClass, FieldSpec, FieldValue,
    Manifest, ParamSpec, ProfileBatch, TextColumn, TextListColumn, Timestamp, Value, ValueKind,
};
pub use connector::Connector;
pub use segment::Segment;
pub use strategy::Strategy;

/// The WIT contract version this SDK implements (`tessera:plugin@0.1.0`).
pub const WIT_VERSION: &str = "0.1.0";

/// [`WIT_VERSION`] as the bytes of the `tessera:wit-version` custom section.
#[doc(hidden)]
pub const WIT_VERSION_BYTES: [u8; 5] = *b"0.1.0";

/// The custom section the host reads the contract version from.
pub const WIT_VERSION_SECTION: &str = "tessera:wit-version";

/// Logging and the host clock (always available).
pub mod host {
    pub use crate::bindings::host::{Level, now};

    /// Writes a line to the host log. The host keeps a per-call budget of lines
    /// and drops the rest, so log what helps an operator, not every row.
    pub fn log(level: Level, message: &str) {
        crate::bindings::host::log(level, message);
    }
}

/// The tenant's schema, as far as the operator granted it: for segments, to
/// plan columns of the right kind (`tessera:plan/schema@0.1.0`).
pub mod schema {
    use crate::ValueKind;

    /// The kind of the tenant's trait `name` as its schema declares it
    /// (string: `Text`, number: `Number`, bool: `Boolean`, date:
    /// `Timestamp`, any: `Text`), if this plugin may read it; `None` if the
    /// trait is unknown or not granted. Answers in [`crate::Segment::plan`]
    /// and [`crate::Segment::evaluate`]; only segment plugins may call it
    /// (the host refuses to install another plugin that does).
    pub fn trait_kind(name: &str) -> Option<ValueKind> {
        crate::bindings::segment::tessera::plan::schema::trait_kind(name)
    }
}

/// Plugin-scoped state (available when the operator granted a state quota).
pub mod state {
    pub use crate::bindings::state::{delete, get, keys, put};
}

/// Outbound HTTP, for connectors whose operator granted outbound hosts.
/// Requests to any other host, to internal addresses, or over plain HTTP to a
/// host granted over HTTPS fail with an `unavailable` error naming the reason.
pub mod http {
    pub use crate::bindings::http::{Header, Request, Response, send};
}

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::connector::{
        Action, Connector, DeliveryFailure, DeliveryReport, Event, Identity, IdentityLink, Modes,
        Page, ParseOutput, Record, Rejection, TraitUpdate,
    };
    pub use crate::segment::{Memberships, Segment};
    pub use crate::strategy::{
        ActionForecast, ActionSpec, Context, Decision, Feedback, FeedbackBatch, FeedbackKind,
        Forecast, RankedAction, Strategy,
    };
    pub use crate::{
        AggregateFn, AggregateSpec, Batch, ColumnRef, Error, EventQuery, FieldClass, FieldSpec,
        FieldValue, Manifest, Needs, ParamSpec, Params, QueryColumns, Value, ValueKind, host,
    };
}

impl Error {
    /// The input data was wrong.
    pub fn input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
    /// The parameters were wrong.
    pub fn config(message: impl Into<String>) -> Self {
        Error::InvalidConfig(message.into())
    }
    /// A dependency is unavailable; the host may retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable(message.into())
    }
    /// A bug in the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }
}

/// Embeds the contract version in the component. Used by the export macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __embed_wit_version {
    () => {
        #[used]
        #[unsafe(link_section = "tessera:wit-version")]
        static __TESSERA_WIT_VERSION: [u8; 5] = $crate::WIT_VERSION_BYTES;
    };
}
