//! Sealing records under a subject key with AES-256-GCM, bound to tenant, subject, kind and id.
//! It must never open a record under another name, return unauthenticated plaintext, or panic.
//!
//! A sealed record is `version (1 byte, = 1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
//! Random 96-bit nonces are safe here because each key seals one subject's
//! records only, far fewer than the 2³² messages per key that random nonces allow.

use crate::crypto::KeyBytes;
use crate::crypto::{self, NONCE_LEN, TAG_LEN};
use crate::error::{OpenError, SealError};
use crate::keys::{DocumentKey, SubjectKey};

/// The format version byte that starts every sealed record.
pub const VERSION: u8 = 1;
/// Bytes a sealed record adds to its plaintext: version, nonce, tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// AES-GCM's limit on one plaintext (64 GiB).
const MAX_PLAINTEXT: u64 = 1 << 36;
/// Associated-data label of a sealed record; changes with the format version.
const RECORD_LABEL: &[u8] = b"tessera:record:v1";
/// Associated-data label of a sealed tenant-level document.
const DOCUMENT_LABEL: &[u8] = b"tessera:document:v1";

/// Names the record a ciphertext belongs to. Every field is authenticated: a
/// sealed record opens only with exactly the same four values.
///
/// The fields are encoded with length prefixes, so no two different names
/// produce the same associated data (tenant `ab` + subject `c` differs from
/// tenant `a` + subject `bc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordAad<'a> {
    pub tenant: &'a str,
    pub subject: &'a str,
    /// The record kind, e.g. `trait`, `event`, `consent`.
    pub kind: &'a str,
    /// The record's id within its kind and subject.
    pub id: &'a str,
}

impl RecordAad<'_> {
    /// The associated data given to AES-GCM: a label, then each field with its length.
    pub fn encode(&self) -> Vec<u8> {
        crypto::encode_fields(&[
            RECORD_LABEL,
            self.tenant.as_bytes(),
            self.subject.as_bytes(),
            self.kind.as_bytes(),
            self.id.as_bytes(),
        ])
    }
}

/// Names a tenant-level document a ciphertext belongs to (sealed with the
/// tenant's [`DocumentKey`]): it opens only under the same tenant, kind and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocumentAad<'a> {
    pub tenant: &'a str,
    /// The document kind, e.g. `dead_letter`.
    pub kind: &'a str,
    pub id: &'a str,
}

impl DocumentAad<'_> {
    /// The associated data given to AES-GCM: a label, then each field with its length.
    pub fn encode(&self) -> Vec<u8> {
        crypto::encode_fields(&[
            DOCUMENT_LABEL,
            self.tenant.as_bytes(),
            self.kind.as_bytes(),
            self.id.as_bytes(),
        ])
    }
}

/// Seals `plaintext` under the subject's key for the record named by `aad`.
pub fn seal(key: &SubjectKey, aad: &RecordAad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    seal_with(key.bytes(), &aad.encode(), plaintext)
}

/// Opens a record sealed by [`seal`]; fails unless `key` and `aad` are the ones
/// it was sealed with and the bytes are unaltered.
pub fn open(key: &SubjectKey, aad: &RecordAad<'_>, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    open_with(key.bytes(), &aad.encode(), sealed)
}

/// Seals a tenant-level document under the tenant's document key, in the
/// same format as a record.
pub fn seal_document(
    key: &DocumentKey,
    aad: &DocumentAad<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    seal_with(key.bytes(), &aad.encode(), plaintext)
}

/// Opens a document sealed by [`seal_document`].
pub fn open_document(
    key: &DocumentKey,
    aad: &DocumentAad<'_>,
    sealed: &[u8],
) -> Result<Vec<u8>, OpenError> {
    open_with(key.bytes(), &aad.encode(), sealed)
}

fn seal_with(key: &KeyBytes, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    if plaintext.len() as u64 > MAX_PLAINTEXT {
        return Err(SealError::TooLarge {
            len: plaintext.len(),
        });
    }
    let nonce = crypto::random_nonce().map_err(|reason| SealError::Randomness { reason })?;
    let header = 1 + NONCE_LEN;
    let mut sealed = Vec::with_capacity(plaintext.len() + OVERHEAD);
    sealed.push(VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let tag = crypto::encrypt(key, &nonce, aad, &mut sealed[header..]).map_err(|_| {
        SealError::TooLarge {
            len: plaintext.len(),
        }
    })?;
    sealed.extend_from_slice(&tag);
    Ok(sealed)
}

fn open_with(key: &KeyBytes, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let too_short = || OpenError::TooShort { len: sealed.len() };
    let (&version, rest) = sealed.split_first().ok_or_else(too_short)?;
    if version != VERSION {
        return Err(OpenError::UnsupportedVersion { found: version });
    }
    let (nonce, rest) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or_else(too_short)?;
    let (ciphertext, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or_else(too_short)?;
    let mut plaintext = ciphertext.to_vec();
    crypto::decrypt(key, nonce, aad, &mut plaintext, tag).map_err(|_| OpenError::Rejected)?;
    Ok(plaintext)
}
