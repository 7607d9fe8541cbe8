//! The bundle reader and signature check on any bytes. A file that reads
//! writes back to the same bytes; whatever `verify` accepts carries a
//! signature by the trusted key over exactly its contents (checked here
//! with ed25519 directly); an unsigned bundle is accepted only by
//! `verify_allowing_unsigned`. With the first byte odd, the bundle is
//! re-signed by the trusted key first, so that the fuzzer also reaches the
//! manifest and component checks behind a valid signature: then only
//! content faults may refuse it, never the signature.

#![no_main]

use ed25519_dalek::{Signature, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use tessera_bundle::{Bundle, BundleError, PublicKey, PublisherKey, Verified};

/// A fixed publisher key (ed25519 signing is deterministic, so a re-signed
/// input is the same bytes on every run).
const SECRET: &str =
    "tessera-publisher-secret:0f0e0d0c0b0a09080706050403020100f0e1d2c3b4a5968778695a4b3c2d1e0f";
/// The format's signature domain (docs/plugins.md): the oracle's own copy.
const SIGNATURE_DOMAIN: &[u8] = b"tessera-bundle/v1 signature\0";

/// What `verify` accepted is signed by `trusted` over the bundle's digest.
fn assert_signed(bundle: &Bundle, verified: &Verified, trusted: &PublicKey) {
    assert_eq!(verified.publisher_key.as_ref(), Some(trusted));
    let block = bundle.signature().expect("a verified bundle is signed");
    assert_eq!(block.public_key, trusted.to_bytes());
    assert_eq!(
        block.digest,
        bundle.digest(),
        "the signature covers the contents"
    );
    let mut message = SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(&block.digest);
    VerifyingKey::from_bytes(&block.public_key)
        .expect("a trusted key")
        .verify_strict(&message, &Signature::from_bytes(&block.signature))
        .expect("the signature of an accepted bundle verifies");
    let manifest = bundle
        .manifest()
        .expect("an accepted bundle's manifest is valid");
    assert_eq!(verified.manifest, manifest);
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, bytes)) = input.split_first() else {
        return;
    };
    let key = PublisherKey::parse(SECRET).expect("the fixed key");
    let trusted = key.public();
    let Ok(mut bundle) = Bundle::read(bytes) else {
        return;
    };
    assert_eq!(
        bundle.to_bytes(),
        bytes,
        "a bundle that reads writes back the same"
    );
    let _ = bundle.manifest();
    if mode & 1 == 1 {
        bundle.sign(&key);
        let signed = bundle.to_bytes();
        bundle = Bundle::read(&signed).expect("a signed bundle reads");
    }
    match bundle.verify(&[trusted]) {
        Ok(verified) => assert_signed(&bundle, &verified, &trusted),
        Err(
            error @ (BundleError::Unsigned
            | BundleError::WrongKey { .. }
            | BundleError::UnknownPublisher { .. }),
        ) if mode & 1 == 1 => panic!("re-signed by the trusted key, refused: {error}"),
        Err(_) => {}
    }
    match bundle.verify_allowing_unsigned(&[trusted]) {
        Ok(verified) if verified.is_unsigned() => assert!(bundle.signature().is_none()),
        Ok(verified) => assert_signed(&bundle, &verified, &trusted),
        Err(_) => {}
    }
});
