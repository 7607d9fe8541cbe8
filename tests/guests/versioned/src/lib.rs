//! Honest, for lifecycle tests: version 1.0.0 of the segment plugin
//! `versioned`. It reads `country` for analytics, and every subject is a
//! member. Version 2.0.0 (`versioned-v2`) behaves differently and asks for
//! more, so an upgrade, its approval and a rollback can be told apart.
use tessera_sdk::prelude::*;

struct Versioned;

impl Segment for Versioned {
    fn describe() -> Manifest {
        Manifest::new("versioned", "1.0.0", "everyone is a member")
            .field("country", ValueKind::Text, FieldClass::Standard)
            .purpose("analytics")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        Ok(Memberships::from_fn(batch.rows(), |_| true))
    }
}

tessera_sdk::export_segment!(Versioned);
