//! The Segment-spec ingest on any body: a one-message endpoint (`/v1/track`,
//! `/v1/identify`, …, `/v1/events`) or `/v1/batch`, decoded and converted
//! exactly as the handlers do, then checked by the vault as it would before
//! writing. A bad body is refused with a code; a batch accounts for every
//! message it received; nothing panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_api::segment::{Defaults, Kind, convert};
use tessera_api::{decode_batch, parse_message};
use tessera_fuzz::{TENANT, fixture};

/// The server's defaults (`limits.max_batch_messages`, `max_message_bytes`).
const MAX_MESSAGES: usize = 2_500;
const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// 2026-01-01T00:00:00Z: messages are timed against a fixed clock.
const NOW_MS: i64 = 1_767_225_600_000;

const KINDS: [Option<Kind>; 7] = [
    None,
    Some(Kind::Identify),
    Some(Kind::Track),
    Some(Kind::Page),
    Some(Kind::Screen),
    Some(Kind::Group),
    Some(Kind::Alias),
];

// The first byte picks the endpoint: 0-6 one message (none: `/v1/events`,
// the message's own `type`), anything else `/v1/batch`.
fuzz_target!(|input: &[u8]| {
    let Some((&endpoint, body)) = input.split_first() else {
        return;
    };
    let fixture = fixture();
    let settings = fixture.vault.settings(TENANT).expect("settings");
    let check = |item| {
        // Any answer but a panic: a refusal names the record's fault.
        let _ = fixture.vault.check_incoming(TENANT, item);
    };
    match KINDS.get(usize::from(endpoint)) {
        Some(&kind) => match parse_message(body) {
            Ok(message) => {
                if let Ok(item) = convert(message, kind, &Defaults::default(), &settings, NOW_MS) {
                    check(&item);
                }
            }
            Err(error) => assert!(error.status.is_client_error(), "{error:?}"),
        },
        None => match decode_batch(body, MAX_MESSAGES, MAX_MESSAGE_BYTES, &settings, NOW_MS) {
            Ok(decoded) => {
                let report = &decoded.report;
                assert_eq!(decoded.indexes.len(), decoded.items.len());
                assert_eq!(
                    decoded.items.len() + report.errors.len(),
                    report.received,
                    "every message is converted or listed as an error"
                );
                assert!(
                    decoded.indexes.windows(2).all(|w| w[0] < w[1]),
                    "items keep batch order"
                );
                assert!(decoded.indexes.iter().all(|i| *i < report.received));
                for item in &decoded.items {
                    check(item);
                }
            }
            Err(error) => assert!(error.status.is_client_error(), "{error:?}"),
        },
    }
});
