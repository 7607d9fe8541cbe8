//! The subject-token parser and verifier on any text. With the first byte
//! even, the rest is the token as a client presents it: it verifies only if
//! it is the token issued here (no other text carries a valid tag). With the
//! first byte odd, the rest is the claims JSON, tagged with the tenant's key
//! as `issue` does, so that the fuzzer reaches the claims checks behind a
//! valid tag: what verifies then is unexpired, of version 1, with a
//! well-formed token id, for the subject the claims name.

#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tessera_api::{SubjectTokenIssued, SubjectTokens};
use tessera_fuzz::{TENANT, fixture};
use tessera_privacy::MacPurpose;
use tessera_vault::Actor;

/// The token format's tag domain (see host/api/src/subject_tokens.rs): the
/// oracle's own copy.
const TAG_DOMAIN: &[u8] = b"tessera subject token v1";

fn tokens() -> &'static (SubjectTokens, SubjectTokenIssued) {
    static TOKENS: OnceLock<(SubjectTokens, SubjectTokenIssued)> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let fixture = fixture();
        let tokens = SubjectTokens::new(fixture.vault.clone(), 3600);
        let issued = tokens
            .issue(
                TENANT,
                &fixture.subject,
                &Actor::new("operator", "fuzz"),
                "fuzz",
            )
            .expect("a token");
        (tokens, issued)
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let (tokens, issued) = tokens();
    if mode & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(Ok(principal)) = tokens.verify(token) {
            assert_eq!(principal.token_id, issued.token_id, "forged: {token:?}");
            assert_eq!(principal.tenant, TENANT);
        }
        return;
    }
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rest);
    let mac = fixture()
        .vault
        .service_mac(TENANT, MacPurpose::SubjectToken)
        .expect("the tenant")
        .expect("a subject-token key");
    let tag = mac.mac(&[TAG_DOMAIN, TENANT.as_bytes(), payload.as_bytes()]);
    let token = format!("tst_{}_{payload}_{}", hex::encode(TENANT), hex::encode(tag));
    if let Ok(Ok(principal)) = tokens.verify(&token) {
        let claims: serde_json::Value =
            serde_json::from_slice(rest).expect("accepted claims are JSON");
        let now = fixture().vault.now_ms();
        let session = principal.subject.expect("a subject session");
        assert_eq!(claims["v"], 1);
        assert_eq!(claims["sub"].as_str(), Some(session.id.as_str()));
        assert!(session.expires_at_ms > now, "expired claims accepted");
        assert_eq!(claims["exp"].as_i64(), Some(session.expires_at_ms));
        let jti = &principal.token_id;
        assert!(
            jti.len() == 32 && jti.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "token id {jti:?} accepted"
        );
    }
});
