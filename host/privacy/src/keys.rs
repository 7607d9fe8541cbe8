//! The key hierarchy: the master key (file or env), tenant keys and subject keys wrapped under it.
//! It must never expose unwrapped key bytes (no Debug, Clone, Serialize) or leave them unzeroized.
//!
//! Wrapping is AES-256-GCM with a fresh random nonce and associated data that
//! binds the wrapped key to where it belongs (the tenant, or the tenant and
//! subject), so a wrapped key copied to another tenant or subject fails to
//! unwrap. Destroying a subject's [`WrappedSubjectKey`] is crypto-shredding:
//! see the crate documentation.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, KeyBytes, NONCE_LEN, TAG_LEN};
use crate::error::{KeyGenError, KeyWrapError, MasterKeyError};

/// Prefix of the hash that names a master key.
const KEY_ID_LABEL: &[u8] = b"tessera:master-key-id:v1\0";
/// Associated-data label of a tenant key wrapped by the master key.
const TENANT_KEY_LABEL: &[u8] = b"tessera:tenant-key:v1";
/// Associated-data label of a subject key wrapped by a tenant key.
const SUBJECT_KEY_LABEL: &[u8] = b"tessera:subject-key:v1";
/// HKDF info deriving a tenant's document key from its tenant key.
const DOCUMENT_KEY_INFO: &[u8] = b"tessera:tenant-document-key:v1";
/// Number of hex digits in a master key file or variable.
const HEX_LEN: usize = KEY_LEN * 2;
/// Longest key file worth reading: anything longer is rejected unread.
const MAX_FILE_LEN: usize = 128;

/// The deployment's root key. It only wraps [`TenantKey`]s.
///
/// Its `Debug` shows only its [id](MasterKey::id).
pub struct MasterKey {
    bytes: KeyBytes,
    id: String,
}

impl MasterKey {
    /// A new master key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyGenError> {
        let bytes = KeyBytes::random().map_err(|reason| KeyGenError::Randomness { reason })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Loads the key from a file holding 64 hex digits and an optional
    /// trailing newline, as [`write_new`](Self::write_new) writes it.
    ///
    /// On unix the file must not be readable or writable by group or others
    /// (mode 0600 or stricter); otherwise the key is refused unread.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, MasterKeyError> {
        let path = path.as_ref();
        let read_error = |source| MasterKeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(read_error)?;
        let metadata = file.metadata().map_err(read_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(MasterKeyError::InsecurePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let origin = || format!("the file {}", path.display());
        if metadata.len() > MAX_FILE_LEN as u64 {
            return Err(MasterKeyError::WrongLength {
                origin: origin(),
                found: usize::try_from(metadata.len()).unwrap_or(usize::MAX),
            });
        }
        // A fixed buffer: growing a Vec would leave unzeroized copies behind.
        let mut buf = Zeroizing::new([0u8; MAX_FILE_LEN]);
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(read) => len += read,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        }
        Self::parse(&buf[..len], origin)
    }

    /// Loads the key from the environment variable `name` (64 hex digits and
    /// an optional trailing newline).
    ///
    /// The process environment keeps its own copy of the value, which this
    /// crate cannot erase; a key file is the better choice where possible.
    pub fn from_env(name: &str) -> Result<Self, MasterKeyError> {
        let value = std::env::var_os(name).ok_or_else(|| MasterKeyError::EnvMissing {
            name: name.to_owned(),
        })?;
        let value = Zeroizing::new(value.into_encoded_bytes());
        Self::parse(&value, || format!("the environment variable {name}"))
    }

    /// Parses a key from 64 hex digits and an optional trailing newline, for
    /// callers that obtained the text themselves.
    pub fn from_hex(text: &str) -> Result<Self, MasterKeyError> {
        Self::parse(text.as_bytes(), || "the given value".to_owned())
    }

    /// Writes the key to a new file at `path`, as 64 hex digits and a newline,
    /// with mode 0600 on unix; refuses to replace an existing file.
    ///
    /// The file appears whole or not at all: the key is written and flushed to
    /// a temporary file in the same directory, which is then hard-linked to
    /// `path` (an operation that fails if `path` exists) and removed.
    pub fn write_new(&self, path: impl AsRef<Path>) -> Result<(), MasterKeyError> {
        let path = path.as_ref();
        let write_error = |source| MasterKeyError::Write {
            path: path.to_owned(),
            source,
        };
        if path.symlink_metadata().is_ok() {
            return Err(MasterKeyError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let file_name = path.file_name().ok_or_else(|| {
            write_error(io::Error::new(
                ErrorKind::InvalidInput,
                "the path does not name a file",
            ))
        })?;
        let dir = parent_dir(path);
        let temporary = temporary_path(dir, file_name);

        let mut text = Zeroizing::new([0u8; HEX_LEN + 1]);
        hex::encode_to_slice(self.bytes.get(), &mut text[..HEX_LEN])
            .map_err(|e| write_error(io::Error::other(e)))?;
        text[HEX_LEN] = b'\n';

        let file = create_private(&temporary).map_err(write_error)?;
        let linked = write_and_link(file, &text[..], &temporary, path);
        let removed = fs::remove_file(&temporary);
        match linked {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(MasterKeyError::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(write_error(e)),
            Ok(()) => {}
        }
        removed.map_err(|source| MasterKeyError::LeftoverTemporary {
            path: path.to_owned(),
            temporary: temporary.clone(),
            source,
        })?;
        sync_dir(dir).map_err(write_error)
    }

    /// A name for this key that operators can compare without revealing it:
    /// 16 hex digits, the first 8 bytes of SHA-256 over a fixed label and the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn from_bytes(bytes: KeyBytes) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_LABEL)
            .chain_update(bytes.get())
            .finalize();
        let id = hex::encode(&digest[..8]);
        Self { bytes, id }
    }

    fn parse(text: &[u8], origin: impl FnOnce() -> String) -> Result<Self, MasterKeyError> {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if let Some(position) = text.iter().position(|b| !b.is_ascii_hexdigit()) {
            return Err(MasterKeyError::NotHex {
                origin: origin(),
                position: position + 1,
            });
        }
        if text.len() != HEX_LEN {
            return Err(MasterKeyError::WrongLength {
                origin: origin(),
                found: text.len(),
            });
        }
        let mut bytes = KeyBytes::zeroed();
        hex::decode_to_slice(text, bytes.get_mut()).map_err(|_| MasterKeyError::WrongLength {
            origin: origin(),
            found: text.len(),
        })?;
        Ok(Self::from_bytes(bytes))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A hidden name in `dir` for a temporary copy of `file_name`, unique to
/// this process and moment.
pub(crate) fn temporary_path(dir: &Path, file_name: &OsStr) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut temporary = OsString::from(".");
    temporary.push(file_name);
    temporary.push(format!(".{}-{nanos}.tmp", std::process::id()));
    dir.join(temporary)
}

/// Creates `path`, which must not exist, readable and writable by its owner only.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        // The umask may have taken bits away; make the mode exactly 0600.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Writes `text` to `file` (at `temporary`), flushes it to disk, and links
/// it to `path`; fails with `AlreadyExists` if `path` exists.
pub(crate) fn write_and_link(
    mut file: File,
    text: &[u8],
    temporary: &Path,
    path: &Path,
) -> io::Result<()> {
    file.write_all(text)?;
    file.sync_all()?;
    drop(file);
    fs::hard_link(temporary, path)
}

/// Makes the new directory entry durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A master key's wrapping of one tenant's key: what is stored for the tenant.
///
/// `ciphertext` is the 32-byte key encrypted with AES-256-GCM followed by the
/// 16-byte tag; the associated data binds it to the tenant id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The [id](MasterKey::id) of the master key that wrapped it.
    pub master_key_id: String,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// Master key rotation for one tenant: unwraps with `old`, wraps with `new`.
    /// The tenant key itself, and so every key and record under it, is unchanged.
    pub fn rewrap(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        tenant: &str,
    ) -> Result<WrappedKey, KeyWrapError> {
        TenantKey::unwrap(self, old, tenant)?.wrap(new, tenant)
    }
}

/// One tenant's key: it wraps the tenant's [`SubjectKey`]s and derives its
/// [`IdentityHasher`](crate::IdentityHasher). Stored only as a [`WrappedKey`].
pub struct TenantKey {
    bytes: KeyBytes,
}

impl TenantKey {
    /// A new tenant key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyGenError> {
        let bytes = KeyBytes::random().map_err(|reason| KeyGenError::Randomness { reason })?;
        Ok(Self { bytes })
    }

    /// Wraps this key under `master` for storage, bound to `tenant`.
    pub fn wrap(&self, master: &MasterKey, tenant: &str) -> Result<WrappedKey, KeyWrapError> {
        let (nonce, ciphertext) = wrap_key(&master.bytes, &tenant_ad(tenant), &self.bytes)?;
        Ok(WrappedKey {
            master_key_id: master.id.clone(),
            nonce,
            ciphertext,
        })
    }

    /// Unwraps `tenant`'s key; fails if `master` did not wrap it or it was
    /// wrapped for another tenant or altered.
    pub fn unwrap(
        wrapped: &WrappedKey,
        master: &MasterKey,
        tenant: &str,
    ) -> Result<TenantKey, KeyWrapError> {
        if wrapped.master_key_id != master.id {
            return Err(KeyWrapError::WrongMasterKey {
                tenant: tenant.to_owned(),
                wrapped_with: wrapped.master_key_id.clone(),
                given: master.id.clone(),
            });
        }
        let bytes = unwrap_key(
            &master.bytes,
            &tenant_ad(tenant),
            &wrapped.nonce,
            &wrapped.ciphertext,
        )
        .ok_or_else(|| KeyWrapError::TenantKeyRejected {
            tenant: tenant.to_owned(),
        })?;
        Ok(Self { bytes })
    }

    pub(crate) fn bytes(&self) -> &KeyBytes {
        &self.bytes
    }
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKey { .. }")
    }
}

/// A tenant's key for sealing tenant-level documents that hold personal data
/// but belong to no one subject (dead letters of imports, import reports):
/// derived from the tenant key with HKDF, so it needs no storage of its own
/// and survives master key rotation. Records sealed with it are not
/// crypto-shredded by a subject's erasure; whoever keeps them must expire
/// or purge them.
pub struct DocumentKey {
    bytes: KeyBytes,
}

impl DocumentKey {
    /// The document key of `tenant_key`.
    pub fn new(tenant_key: &TenantKey) -> Self {
        Self {
            bytes: crypto::derive_key(&tenant_key.bytes, DOCUMENT_KEY_INFO),
        }
    }

    pub(crate) fn bytes(&self) -> &KeyBytes {
        &self.bytes
    }
}

impl fmt::Debug for DocumentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DocumentKey { .. }")
    }
}

/// A tenant key's wrapping of one subject's key: what is stored for the subject.
/// Deleting every copy of it is crypto-shredding the subject.
///
/// `ciphertext` is the 32-byte key encrypted with AES-256-GCM followed by the
/// 16-byte tag; the associated data binds it to the tenant and subject ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedSubjectKey {
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

/// One subject's data key: it seals every record about the subject
/// ([`envelope::seal`](crate::envelope::seal)). Stored only as a [`WrappedSubjectKey`].
pub struct SubjectKey {
    bytes: KeyBytes,
}

impl SubjectKey {
    /// A new subject key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyGenError> {
        let bytes = KeyBytes::random().map_err(|reason| KeyGenError::Randomness { reason })?;
        Ok(Self { bytes })
    }

    /// Wraps this key under `tenant_key` for storage, bound to `tenant` and `subject`.
    pub fn wrap(
        &self,
        tenant_key: &TenantKey,
        tenant: &str,
        subject: &str,
    ) -> Result<WrappedSubjectKey, KeyWrapError> {
        let ad = subject_ad(tenant, subject);
        let (nonce, ciphertext) = wrap_key(&tenant_key.bytes, &ad, &self.bytes)?;
        Ok(WrappedSubjectKey { nonce, ciphertext })
    }

    /// Unwraps `subject`'s key; fails if it was wrapped under another tenant
    /// key, for another tenant or subject, or altered.
    pub fn unwrap(
        wrapped: &WrappedSubjectKey,
        tenant_key: &TenantKey,
        tenant: &str,
        subject: &str,
    ) -> Result<SubjectKey, KeyWrapError> {
        let ad = subject_ad(tenant, subject);
        let bytes = unwrap_key(&tenant_key.bytes, &ad, &wrapped.nonce, &wrapped.ciphertext)
            .ok_or_else(|| KeyWrapError::SubjectKeyRejected {
                tenant: tenant.to_owned(),
            })?;
        Ok(Self { bytes })
    }

    pub(crate) fn bytes(&self) -> &KeyBytes {
        &self.bytes
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey { .. }")
    }
}

fn tenant_ad(tenant: &str) -> Vec<u8> {
    crypto::encode_fields(&[TENANT_KEY_LABEL, tenant.as_bytes()])
}

fn subject_ad(tenant: &str, subject: &str) -> Vec<u8> {
    crypto::encode_fields(&[SUBJECT_KEY_LABEL, tenant.as_bytes(), subject.as_bytes()])
}

/// Encrypts `key` under `wrapping`; returns the nonce and ciphertext-then-tag.
fn wrap_key(
    wrapping: &KeyBytes,
    ad: &[u8],
    key: &KeyBytes,
) -> Result<([u8; NONCE_LEN], Vec<u8>), KeyWrapError> {
    let nonce = crypto::random_nonce().map_err(|reason| KeyWrapError::Randomness { reason })?;
    // Exactly sized: the key bytes are encrypted in place and never reallocated.
    let mut ciphertext = Vec::with_capacity(KEY_LEN + TAG_LEN);
    ciphertext.extend_from_slice(key.get());
    match crypto::encrypt(wrapping, &nonce, ad, &mut ciphertext) {
        Ok(tag) => {
            ciphertext.extend_from_slice(&tag);
            Ok((nonce, ciphertext))
        }
        Err(_) => {
            // AES-GCM does not refuse 32 bytes; if it ever did, the buffer
            // still holds the plaintext key.
            zeroize::Zeroize::zeroize(&mut ciphertext);
            Err(KeyWrapError::Cipher)
        }
    }
}

/// Decrypts a wrapped key; `None` unless `wrapping`, `ad`, `nonce` and
/// `ciphertext` are exactly those it was wrapped with.
fn unwrap_key(
    wrapping: &KeyBytes,
    ad: &[u8],
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> Option<KeyBytes> {
    let (body, tag) = ciphertext.split_last_chunk::<TAG_LEN>()?;
    if body.len() != KEY_LEN {
        return None;
    }
    // Decrypted inside a `KeyBytes`, which zeroizes itself if this fails.
    let mut key = KeyBytes::zeroed();
    key.get_mut().copy_from_slice(body);
    crypto::decrypt(wrapping, nonce, ad, key.get_mut(), tag).ok()?;
    Some(key)
}
