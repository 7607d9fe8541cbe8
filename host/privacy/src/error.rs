//! The errors of key handling and envelope encryption, one enum per operation family.
//! A message must never contain key material, plaintext or subject ids; each says what to do.

use std::io;
use std::path::PathBuf;

/// Loading, parsing or writing the master key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    #[error("cannot read the master key file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },

    #[error(
        "the master key file {path} can be read or written by group or others (mode {mode:03o}); \
         run `chmod 600 {path}` and make sure only the tessera user owns it"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },

    #[error(
        "the master key in {origin} is not valid: expected 64 hex characters (32 bytes) and an \
         optional trailing newline, found {found} characters; create a key with `tessera keys init`"
    )]
    WrongLength { origin: String, found: usize },

    #[error(
        "the master key in {origin} is not valid: character {position} is not a hex digit \
         (0-9, a-f); create a key with `tessera keys init`"
    )]
    NotHex { origin: String, position: usize },

    #[error(
        "the environment variable {name} is not set; set it to a 64-character hex master key, \
         or use a key file"
    )]
    EnvMissing { name: String },

    #[error(
        "the environment variable {name} is not valid UTF-8; set it to a 64-character hex \
         master key"
    )]
    EnvNotUnicode { name: String },

    #[error(
        "the master key file {path} already exists; refusing to overwrite a key (data sealed \
         under it would become unreadable); move it away first if you really mean to replace it"
    )]
    AlreadyExists { path: PathBuf },

    #[error(
        "cannot write the master key file {path}: {source}; check that the directory exists, \
         is writable and is on a file system that supports hard links"
    )]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "the master key was written to {path}, but its temporary copy {temporary} could not be \
         removed ({source}); delete that file by hand"
    )]
    LeftoverTemporary {
        path: PathBuf,
        temporary: PathBuf,
        source: io::Error,
    },
}

/// Generating a new key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyGenError {
    #[error(
        "the operating system's random number generator failed ({reason}); no key was created; \
         check that the process can use getrandom or /dev/urandom and try again"
    )]
    Randomness { reason: String },
}

/// Wrapping, unwrapping and rewrapping tenant and subject keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyWrapError {
    #[error(
        "the operating system's random number generator failed ({reason}); nothing was \
         wrapped; check that the process can use getrandom or /dev/urandom and try again"
    )]
    Randomness { reason: String },

    #[error(
        "the key of tenant {tenant} was wrapped with master key {wrapped_with}, but the master \
         key given is {given}; load master key {wrapped_with} (during a rotation, the old one)"
    )]
    WrongMasterKey {
        tenant: String,
        wrapped_with: String,
        given: String,
    },

    #[error(
        "the key of tenant {tenant} cannot be unwrapped: the stored wrapped key belongs to \
         another tenant or was altered; restore it from a backup"
    )]
    TenantKeyRejected { tenant: String },

    #[error(
        "a subject key of tenant {tenant} cannot be unwrapped: it belongs to another subject or \
         tenant, was wrapped under another tenant key, or was altered"
    )]
    SubjectKeyRejected { tenant: String },

    #[error(
        "the AES-GCM implementation refused to wrap a 32-byte key, which it never should; \
         nothing was wrapped; this is a bug in tessera, please report it"
    )]
    Cipher,
}

/// Sealing a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error(
        "the operating system's random number generator failed ({reason}); the record was not \
         sealed; check that the process can use getrandom or /dev/urandom and try again"
    )]
    Randomness { reason: String },

    #[error(
        "the record is {len} bytes, more than AES-GCM can seal at once (64 GiB); split it \
         into smaller records"
    )]
    TooLarge { len: usize },
}

/// Opening a sealed record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(
        "the sealed record is {len} bytes, too short to be one (at least 29); the stored \
         bytes were truncated or are not a sealed record"
    )]
    TooShort { len: usize },

    #[error(
        "the sealed record has format version {found}, but this build only reads version 1; \
         upgrade tessera to read it"
    )]
    UnsupportedVersion { found: u8 },

    #[error(
        "the sealed record cannot be opened: it belongs to another record, subject or tenant, \
         the subject key is not the one it was sealed with (a deleted subject's key is gone \
         for good), or the bytes were altered"
    )]
    Rejected,
}

/// Opening and using the [subject key store](crate::keystore::SubjectKeyStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    #[error(
        "cannot create the subject key store {path}: {source}; check that its directory exists \
         (tessera does not create it), that the tessera user can write to it, and that it is on \
         a file system that supports hard links"
    )]
    Create { path: PathBuf, source: io::Error },

    #[error(
        "cannot open the subject key store {path}: {source}; check that it is a regular file \
         the tessera user can read and write"
    )]
    Open { path: PathBuf, source: io::Error },

    #[error(
        "the subject key store {path} is in use by another process (or is already open in \
         this one), which holds its lock; only one tessera process may use a key store at a \
         time, so stop the other one first"
    )]
    Locked { path: PathBuf },

    #[error(
        "{path} is not a tessera subject key store (it does not start with the key store's \
         magic bytes); check the configured path, or restore the key store from its own backup"
    )]
    NotAKeyStore { path: PathBuf },

    #[error(
        "the subject key store {path} has format version {found}, but this build reads only \
         version 1; upgrade tessera to use it"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },

    #[error(
        "the subject key store {path} is damaged: {problem}; stop tessera and restore the key \
         store from its own backup (it is not part of the data directory's backup)"
    )]
    Damaged { path: PathBuf, problem: String },

    #[error(
        "slot {slot} of the subject key store {path} is damaged (its state byte is {state}, \
         neither free nor used), so the subject key it held cannot be read; restore the key \
         store from its own backup"
    )]
    DamagedSlot { path: PathBuf, slot: u64, state: u8 },

    #[error(
        "cannot {action} the subject key store {path}: {source}; check the disk and its free \
         space, then retry"
    )]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },

    #[error(
        "cannot erase slot {slot} of the subject key store {path}: {source}; the subject's key \
         may still be on disk, so the subject is not erased yet; fix the disk problem and erase \
         it again"
    )]
    Erase {
        path: PathBuf,
        slot: u64,
        source: io::Error,
    },

    #[error(
        "a wrapped subject key has a {len}-byte ciphertext where 48 bytes are expected; nothing \
         was stored; wrap subject keys with SubjectKey::wrap (this is a bug in the caller, \
         please report it)"
    )]
    WrongWrappedKeyLength { len: usize },

    #[error(
        "cannot {action} the subject key store {location}: {detail}; check that the database \
         is reachable and the tessera role may use the table, then retry"
    )]
    Backend {
        location: String,
        action: &'static str,
        detail: String,
    },

    #[error(
        "cannot erase slot {slot} of the subject key store {location}: {detail}; the subject's \
         key may still be stored, so the subject is not erased yet; fix the problem and erase \
         it again"
    )]
    BackendErase {
        location: String,
        slot: u64,
        detail: String,
    },
}
