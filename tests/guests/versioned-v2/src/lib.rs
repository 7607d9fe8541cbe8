//! Honest, for lifecycle tests: version 2.0.0 of the segment plugin
//! `versioned` (see `versioned`). It also reads `email`, a PII field, so
//! upgrading to it asks for more; nobody is a member.
use tessera_sdk::prelude::*;

struct Versioned;

impl Segment for Versioned {
    fn describe() -> Manifest {
        Manifest::new("versioned", "2.0.0", "nobody is a member")
            .field("country", ValueKind::Text, FieldClass::Standard)
            .field("email", ValueKind::Text, FieldClass::Pii)
            .purpose("analytics")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        Ok(Memberships::from_fn(batch.rows(), |_| false))
    }
}

tessera_sdk::export_segment!(Versioned);
