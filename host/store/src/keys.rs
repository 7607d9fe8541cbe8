//! Key encodings of the sled backend (layout in [`crate::sled_store`]): ids are
//! length-prefixed unless last, so one id's prefix never matches another's keys.

use crate::IdentityHash;

/// A 2-byte big-endian length, then the bytes. Callers check the length first
/// (at most [`crate::MAX_ID_LEN`], far below `u16::MAX`).
fn push_part(key: &mut Vec<u8>, part: &str) {
    let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(part.as_bytes());
}

/// Times sort as unsigned big-endian once the sign bit is flipped.
pub(crate) fn time(ms: i64) -> [u8; 8] {
    (ms.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn time_from(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)).cast_signed()
}

/// `part(tenant)`: the prefix of every key of a tenant.
pub(crate) fn tenant(tenant: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + tenant.len() + 48);
    push_part(&mut key, tenant);
    key
}

/// `part(tenant) part(subject)`: the prefix of every per-subject key.
pub(crate) fn subject_scope(tenant_id: &str, subject: &str) -> Vec<u8> {
    let mut key = tenant(tenant_id);
    push_part(&mut key, subject);
    key
}

/// `part(tenant) subject`: the subject id comes last and raw, so that a scan
/// of the tenant prefix lists subjects in id order.
pub(crate) fn subject(tenant_id: &str, subject: &str) -> Vec<u8> {
    let mut key = tenant(tenant_id);
    key.extend_from_slice(subject.as_bytes());
    key
}

/// `part(tenant) hash`.
pub(crate) fn identity(tenant_id: &str, hash: &IdentityHash) -> Vec<u8> {
    let mut key = tenant(tenant_id);
    key.extend_from_slice(hash);
    key
}

/// `part(tenant) part(subject) hash`.
pub(crate) fn identity_of(tenant_id: &str, subject: &str, hash: &IdentityHash) -> Vec<u8> {
    let mut key = subject_scope(tenant_id, subject);
    key.extend_from_slice(hash);
    key
}

/// `part(tenant) part(subject) time(at_ms) seq`: events and consents.
pub(crate) fn timed(tenant_id: &str, subject: &str, at_ms: i64, seq: u64) -> Vec<u8> {
    let mut key = subject_scope(tenant_id, subject);
    key.extend_from_slice(&time(at_ms));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `scope time(at_ms) seq`, for a `scope` from [`subject_scope`].
pub(crate) fn timed_in(scope: &[u8], at_ms: i64, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(scope.len() + 16);
    key.extend_from_slice(scope);
    key.extend_from_slice(&time(at_ms));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `part(tenant) source_id`.
pub(crate) fn source(tenant_id: &str, source_id: &str) -> Vec<u8> {
    let mut key = tenant(tenant_id);
    key.extend_from_slice(source_id.as_bytes());
    key
}

/// `part(tenant) seq`.
pub(crate) fn audit(tenant_id: &str, seq: u64) -> Vec<u8> {
    let mut key = tenant(tenant_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `"audit" part(tenant)` in the counters tree.
pub(crate) fn audit_counter(tenant_id: &str) -> Vec<u8> {
    let mut key = b"audit".to_vec();
    push_part(&mut key, tenant_id);
    key
}

/// `part(tenant) part(plugin)`: the state scope's prefix and its meta key.
pub(crate) fn state_scope(tenant_id: &str, plugin: &str) -> Vec<u8> {
    let mut key = tenant(tenant_id);
    push_part(&mut key, plugin);
    key
}

/// `part(tenant) hash` in the suppressions tree.
pub(crate) fn suppression(tenant_id: &str, hash: &IdentityHash) -> Vec<u8> {
    identity(tenant_id, hash)
}

/// `part(tenant) part(kind)`: the prefix of every document of a kind.
pub(crate) fn document_kind(tenant_id: &str, kind: &str) -> Vec<u8> {
    let mut key = tenant(tenant_id);
    push_part(&mut key, kind);
    key
}

/// `part(tenant) part(kind) id`: the id comes last and raw, so that a scan of
/// the kind's prefix lists documents in id order.
pub(crate) fn document(tenant_id: &str, kind: &str, id: &str) -> Vec<u8> {
    let mut key = document_kind(tenant_id, kind);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The plugin-state key prefix by which a key belongs to a subject.
pub(crate) fn subject_state_prefix(subject: &str) -> String {
    format!("subject/{subject}/")
}

/// `part(kind) time(not_before_ms) id`.
pub(crate) fn job(kind: &str, not_before_ms: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + kind.len() + 8 + id.len());
    push_part(&mut key, kind);
    key.extend_from_slice(&time(not_before_ms));
    key.extend_from_slice(id.as_bytes());
    key
}

/// The prefix of every job of a kind.
pub(crate) fn job_kind(kind: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + kind.len());
    push_part(&mut key, kind);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sort_like_the_numbers_they_encode() {
        let times = [i64::MIN, -1_000, -1, 0, 1, 1_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(time(pair[0]) < time(pair[1]), "{pair:?}");
        }
        for t in times {
            assert_eq!(time_from(time(t)), t);
        }
    }

    #[test]
    fn one_tenants_prefix_never_matches_anothers_keys() {
        assert!(!subject("ab", "c").starts_with(&tenant("a")));
        assert!(!subject_scope("a", "b").starts_with(&subject_scope("a", "bc")));
        assert!(!subject_scope("a", "bc").starts_with(&subject_scope("a", "b")));
        assert!(!document("a", "bc", "d").starts_with(&document_kind("a", "b")));
        assert!(!document("ab", "c", "d").starts_with(&tenant("a")));
    }
}
